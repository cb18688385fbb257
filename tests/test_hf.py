"""hprune.integrations.hf.DynamicsTrainer: a transformers Trainer that records dynamics by example id.

Exact equality with hprune's own loop while learning is out of reach by design: the Trainer's
RandomSampler draws other batches in another order than training.epoch_batches (length-grouped,
seeded by (seed, epoch)), and its optimizer, loss normalisation under accumulation and dropout RNG
use differ, so the weights after step one differ. With lr = 0 and dropout off, a step's logits for
an example depend on that example alone (not on order, batch or step), so what the Trainer records
must equal what the plain loop records, example by example.
"""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import classifier_without_dropout, head_rows
from hprune.cli import main
from hprune.data import load_data
from hprune.dynamics.record import DynamicsRecorder
from hprune.dynamics.store import RunDynamics
from hprune.engine.models import load_classifier
from hprune.config import TrainConfig
from hprune.engine.loop import fine_tune, seed_everything
from hprune.data import tokenize

pytest.importorskip("accelerate")  # the Trainer needs it (pip install 'hprune[hf]')

N = 64


def _args(tmp_path, seed, **kw):
    from transformers import TrainingArguments

    base = dict(output_dir=str(tmp_path / "hf"), per_device_train_batch_size=8, num_train_epochs=2, learning_rate=1e-3,
                save_strategy="no", report_to=[], logging_strategy="no", use_cpu=True, seed=seed, disable_tqdm=True)
    return TrainingArguments(**{**base, **kw})


def test_trainer_records_every_micro_batch_once_per_epoch_and_scores(tmp_path, tiny_bert):
    import datasets

    from hprune.integrations.hf import DynamicsTrainer

    data = load_data(str(head_rows("trec", "train", N, tmp_path / "train.jsonl")))
    out = tmp_path / "scoring"
    for run in range(2):
        seed_everything(run)
        tokenizer, model = load_classifier(tiny_bert, data.label_names)
        # A user's dataset: text and label columns; remove_unused_columns (the default) drops `text`.
        ds = datasets.Dataset.from_dict({"text": data.texts, "label": data.labels.tolist()})
        ds = ds.map(lambda b: tokenizer(b["text"], truncation=True, max_length=64), batched=True)
        trainer = DynamicsTrainer(model=model, args=_args(tmp_path, run, gradient_accumulation_steps=4), train_dataset=ds,
                                  processing_class=tokenizer, scoring_dir=out, run=run, data=data)
        calls = []
        record = trainer.compute_loss

        def counting(model, inputs, *a, **kw):
            calls.append((int(trainer.state.epoch), inputs["example_id"].tolist()))
            return record(model, inputs, *a, **kw)

        trainer.compute_loss = counting
        trainer.train()
        for epoch in range(2):
            batches = [ids for e, ids in calls if e == epoch]
            assert len(batches) == -(-N // 8)  # every micro-batch, not only each accumulation group's last
            assert sorted(i for b in batches for i in b) == list(range(N))  # each example once
        dyn = RunDynamics.load(out / "dynamics" / f"run-{run}.npz")
        assert dyn.epochs_done == 2 and trainer.recording.recorder.seen.all()
        info = json.loads((out / "dynamics" / f"run-{run}.json").read_text())
        assert info["seed"] == run and info["config"]["grad_accum"] == 4 and len(info["train_loss"]) == 2
        assert info["device"] == "cpu" and info["threads"] >= 1 and info["load"] >= 0  # beside its train_seconds
    # Two runs in the folder: the scoring files are written, and the CLI works on them.
    scores = pd.read_parquet(out / "scores.parquet")
    assert scores["example_id"].tolist() == list(range(N)) and scores["h_score"].between(0, 2).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["seeds"] == [0, 1]
    assert manifest["fingerprint"] == data.fingerprint and manifest["train_source"] == data.source
    assert not any("--lr" in w or "--epochs" in w for w in manifest["warnings"])  # advice in TrainingArguments' words
    assert trainer.recording.scoring_.subsets[0]["name"] == "winning-ticket"
    assert main(["subsets", str(out)]) == 0
    assert main(["export", str(out), "--out", str(tmp_path / "wt.jsonl")]) == 0


def test_trainer_records_what_the_plain_loop_records_at_lr0(tmp_path, tiny_bert):
    from hprune.integrations.hf import DynamicsTrainer

    data = load_data(str(head_rows("trec", "train", N, tmp_path / "train.jsonl")))
    tokenizer, model = classifier_without_dropout(tiny_bert, data.label_names)
    features = tokenize(tokenizer, data.texts, None, 64)
    plain = RunDynamics.empty(2, N)
    recorder = DynamicsRecorder(plain)
    fine_tune(model, tokenizer, features, data.labels, TrainConfig(epochs=2, lr=0.0, batch_size=8, warmup_ratio=0.0),
              seed=0, on_step=recorder.record)

    tokenizer, model = classifier_without_dropout(tiny_bert, data.label_names)
    # A plain list of dicts without ids, and a collator that keeps only what it knows: ids still arrive.
    enc = tokenizer(data.texts, truncation=True, max_length=64)
    rows = [{**{k: enc[k][i] for k in enc}, "labels": int(y)} for i, y in enumerate(data.labels)]

    def collator(batch):
        out = tokenizer.pad([{k: f[k] for k in ("input_ids", "attention_mask", "token_type_ids")} for f in batch], return_tensors="pt")
        out["labels"] = torch.tensor([f["labels"] for f in batch])
        return out

    trainer = DynamicsTrainer(model=model, args=_args(tmp_path, 0, learning_rate=0.0, gradient_accumulation_steps=4),
                              train_dataset=rows, data_collator=collator, scoring_dir=tmp_path / "hf-scoring")
    trainer.train()
    got = trainer.recording.recorder.dynamics
    assert got.epochs_done == 2
    for epoch in range(2):
        np.testing.assert_allclose(got.probs[epoch], plain.probs[epoch], atol=2e-3)
        np.testing.assert_allclose(got.margins[epoch], plain.margins[epoch], atol=1e-2)
        np.testing.assert_array_equal(got.correct[epoch], plain.correct[epoch])
    assert not (tmp_path / "hf-scoring" / "scores.parquet").exists()  # one run: nothing to score yet


def test_an_unmodified_trainer_with_the_hook_records_what_the_plain_loop_records_at_lr0(tmp_path, tiny_bert):
    import datasets
    from transformers import Trainer

    from hprune.integrations.hf import DynamicsHook

    data = load_data(str(head_rows("trec", "train", N, tmp_path / "train.jsonl")))
    tokenizer, model = classifier_without_dropout(tiny_bert, data.label_names)
    plain = RunDynamics.empty(2, N)
    fine_tune(model, tokenizer, tokenize(tokenizer, data.texts, None, 64), data.labels,
              TrainConfig(epochs=2, lr=0.0, batch_size=8, warmup_ratio=0.0), seed=0, on_step=DynamicsRecorder(plain).record)
    out = tmp_path / "hook-scoring"
    for run in range(2):
        tokenizer, model = classifier_without_dropout(tiny_bert, data.label_names)
        ds = datasets.Dataset.from_dict({"text": data.texts, "label": data.labels.tolist()})
        ds = ds.map(lambda b: tokenizer(b["text"], truncation=True, max_length=64), batched=True)
        hook = DynamicsHook(out, run=run, data=data)
        trainer = Trainer(model=model, args=_args(tmp_path, run, learning_rate=0.0, gradient_accumulation_steps=4, eval_strategy="epoch"),
                          train_dataset=hook.with_ids(ds), eval_dataset=ds.select(range(16)), processing_class=tokenizer,
                          compute_loss_func=hook.compute_loss, callbacks=[hook])
        trainer.train()
        got = hook.recorder.dynamics
        assert got.epochs_done == 2
        for epoch in range(2):
            np.testing.assert_allclose(got.probs[epoch], plain.probs[epoch], atol=2e-3)
            assert (got.correct[epoch] == plain.correct[epoch]).mean() > 0.95  # argmax ties aside
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["executor"] == "DynamicsHook" and manifest["fingerprint"] == data.fingerprint and manifest["config"]["seeds"] == [0, 1]
    assert main(["export", str(out), "--out", str(tmp_path / "hook-wt.jsonl")]) == 0
