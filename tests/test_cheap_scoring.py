"""Cheap scoring: `--score-epochs N` trains only the first N epochs of the --epochs schedule, and its
scores are exactly the prefix computation on a full scoring's dynamics (docs/cheap-scoring.md)."""
import json

import numpy as np
import pandas as pd

from conftest import head_rows
from hprune.cli import main
from hprune.dynamics.store import FIELDS, RunDynamics
from hprune.scores import score_table

RUNS, EPOCHS = 2, 3


def _score(train, model, out, *extra) -> int:
    return main(["score", "--train", str(train), "--model", model, "--runs", str(RUNS), "--epochs", str(EPOCHS),
                 "--batch-size", "8", "--lr", "1e-3", "--threads", "1", "--out", str(out), "--quiet", *extra])


def test_scores_from_the_first_epoch_equal_the_prefix_of_a_full_scoring(tmp_path, tiny_bert):
    train = head_rows("trec", "train", 48, tmp_path / "train.jsonl")
    full, cheap = tmp_path / "full", tmp_path / "cheap"
    assert _score(train, tiny_bert, full) == 0
    assert _score(train, tiny_bert, cheap, "--score-epochs", "1") == 0

    prefix = {k: [] for k in FIELDS}
    for r in range(RUNS):
        whole, first = RunDynamics.load(full / "dynamics" / f"run-{r}.npz"), RunDynamics.load(cheap / "dynamics" / f"run-{r}.npz")
        assert first.epochs_done == 1 and first.correct.shape[0] == 1
        for k in FIELDS:
            np.testing.assert_array_equal(getattr(first, k), getattr(whole, k)[:1], err_msg=f"run {r} {k}")
            prefix[k].append(getattr(whole, k)[:1])
    scores = pd.read_parquet(cheap / "scores.parquet")
    want = score_table(*(np.stack(prefix[k]) for k in FIELDS), example_ids=scores["example_id"].to_numpy(),
                       labels=scores["label_id"].to_numpy(), label_names=sorted(scores["label"].unique()))
    np.testing.assert_array_equal(scores["h_score"], want["h_score"])
    np.testing.assert_allclose(scores[["confidence", "aum", "el2n"]], want[["confidence", "aum", "el2n"]])
    manifest = json.loads((cheap / "manifest.json").read_text())
    assert manifest["config"]["score_epochs"] == 1 and manifest["config"]["epochs"] == EPOCHS
    assert "score_epochs" not in json.loads((full / "manifest.json").read_text())["config"]  # earlier scorings keep their identity


def test_score_epochs_beyond_the_schedule_is_refused(tmp_path, tiny_bert, capsys):
    train = head_rows("trec", "train", 16, tmp_path / "train.jsonl")
    assert _score(train, tiny_bert, tmp_path / "out", "--score-epochs", "4") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --score-epochs 4 must be between 1 and --epochs (3)")
    assert not (tmp_path / "out").exists()


def test_a_small_proxy_model_scores_and_a_larger_one_fine_tunes(tmp_path, tiny_bert):
    """Scoring with a cheap proxy and fine-tuning another model on its subsets (S2L's idea): compare's
    --model is the phase-2 model; the scoring's model only chose the subset."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    larger = tmp_path / "larger-bert"
    BertModel(BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
                         max_position_embeddings=128)).save_pretrained(larger)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(larger)
    train = head_rows("trec", "train", 64, tmp_path / "train.jsonl")
    evalf = head_rows("trec", "test", 32, tmp_path / "test.jsonl")
    assert _score(train, tiny_bert, tmp_path / "scoring") == 0
    out = tmp_path / "compare"
    assert main(["compare", str(tmp_path / "scoring"), "--eval", str(evalf), "--model", str(larger), "--subsets", "winning-ticket",
                 "--methods", "hscore", "--seeds", "1", "--epochs", "1", "--batch-size", "16", "--threads", "1", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "compare.json").read_text())["model"] == str(larger)
    results = pd.read_csv(out / "results.csv")
    wt = json.loads((tmp_path / "scoring" / "subsets.json").read_text())[0]["size"]
    assert results.set_index("method")["size"].to_dict() == {"full": 64, "hscore": wt}
