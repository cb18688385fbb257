"""The learning report and its warnings: a run that did not learn must be called out."""
import json

import numpy as np
import pandas as pd

from conftest import trec_files
from hprune.cli import main
from hprune.diagnostics import learning_report, learning_warnings
from hprune.subsets import describe_subsets


def test_lr_too_small_to_learn_is_warned(tmp_path, tiny_bert, capsys):
    train, evalf = trec_files(tmp_path, 80, 40)
    out = tmp_path / "scores"
    rc = main(["score", "--train", str(train), "--eval", str(evalf), "--model", tiny_bert, "--runs", "2", "--epochs", "1",
               "--lr", "1e-9", "--batch-size", "16", "--threads", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "did not clearly learn the task" in err and "raise --lr" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert any("did not clearly learn" in w for w in manifest["warnings"])
    assert manifest["learning_report"]["majority_baseline"] > 0
    assert all(len(r["eval_accuracy"]) == 1 for r in manifest["learning_report"]["runs"])
    assert main(["subsets", str(out)]) == 0
    shown = capsys.readouterr()
    assert "majority-class baseline" in shown.out and "did not clearly learn" in shown.err


def _scores(h, labels):
    return pd.DataFrame({"example_id": range(len(h)), "label": labels, "h_score": h})


def test_runs_that_learned_and_a_label_free_h_give_no_warning():
    labels = np.array(["a", "b"] * 50)
    correct = np.ones((2, 2, 100), dtype=bool)
    correct[:, 0, ::3] = False
    report = learning_report(correct, np.array([0, 1] * 50), seeds=[0, 1])
    h = np.tile([0, 0, 1, 1, 2, 2, 1, 1], 13)[:100]
    scores = _scores(h, labels)
    assert learning_warnings(report, scores, describe_subsets(scores, 2), 2) == []


def test_h_decided_by_the_label_is_warned():
    labels = np.array(["a"] * 50 + ["b"] * 50)
    report = learning_report(np.ones((2, 2, 100), dtype=bool), np.array([0] * 50 + [1] * 50), seeds=[0, 1])
    h = np.array([0] * 50 + [1] * 25 + [2] * 25)
    scores = _scores(h, labels)
    warnings = learning_warnings(report, scores, describe_subsets(scores, 2), 2)
    assert any("accounts for" in w and "variance of H" in w for w in warnings)
    assert any("winning-ticket leaves classes" in w and "a: 0" in w for w in warnings)


def test_balanced_class_weights_make_every_class_weigh_the_same():
    from hprune.engine.loop import balanced_class_weights

    labels = np.array([0] * 90 + [1] * 9 + [3] * 1)
    w = balanced_class_weights(labels, 4)
    np.testing.assert_allclose(w, [100 / 270, 100 / 27, 0.0, 100 / 3])
    counts = np.bincount(labels, minlength=4)
    np.testing.assert_allclose((w * counts)[counts > 0], 100 / 3)  # each present class: n / K in total


def test_defaults_weight_classification_classes_and_paper_settings_do_not():
    import pytest

    from hprune.config import train_config
    from hprune.errors import HpruneError

    assert train_config(n_examples=1000).class_weight == "balanced"
    assert train_config(n_examples=1000, class_weight="none").class_weight is None
    assert train_config(paper_settings=True).class_weight is None
    assert train_config(task_type="multiple-choice").class_weight is None
    with pytest.raises(HpruneError, match="applies to classification"):
        train_config(task_type="extractive-qa", class_weight="balanced")


def test_a_weighted_loss_trains_and_is_recorded_in_the_config(tmp_path, tiny_bert):
    train, evalf = trec_files(tmp_path, 60, 20)
    losses = {}
    for weight in ("balanced", "none"):
        out = tmp_path / weight
        assert main(["train", "--train", str(train), "--eval", str(evalf), "--model", tiny_bert, "--epochs", "1",
                     "--class-weight", weight, "--threads", "1", "--out", str(out), "--quiet"]) == 0
        saved = json.loads((out / "metrics.json").read_text())
        assert saved["config"]["class_weight"] == (None if weight == "none" else "balanced")
        losses[weight] = saved["metrics"]["train_loss"]
    assert np.isfinite(losses["balanced"]).all() and losses["balanced"] != losses["none"]


def test_bf16_on_a_cpu_without_bf16_units_is_warned(tmp_path, tiny_bert, capsys, monkeypatch):
    import hprune.engine.loop

    monkeypatch.setattr(hprune.engine.loop, "bf16_is_slow", lambda: True)
    train, evalf = trec_files(tmp_path, 40, 20)
    assert main(["train", "--train", str(train), "--eval", str(evalf), "--model", tiny_bert, "--epochs", "1", "--bf16",
                 "--threads", "1", "--out", str(tmp_path / "bf16"), "--quiet"]) == 0
    assert "leave --bf16 off" in capsys.readouterr().err


def test_a_run_that_learned_every_class_is_not_called_unlearned_for_missing_the_majority_baseline():
    labels = np.array([0] * 80 + [1] * 20)
    correct = np.zeros((2, 1, 100), dtype=bool)
    correct[0, 0, :56] = True  # class-balanced training: 70% of class 0, 90% of class 1 right
    correct[0, 0, 80:98] = True
    correct[1, 0, :80] = True  # predicts the majority class only
    report = learning_report(correct, labels, seeds=[0, 1])
    assert report["runs"][0]["train_accuracy"] == [0.74] and report["runs"][0]["train_balanced_accuracy"] == [0.8]
    assert report["learned_threshold"] == 0.85 and report["balanced_threshold"] == 0.625
    warnings = learning_warnings(report, _scores(np.ones(100, dtype=int), labels.astype(str)), [], 2)
    assert len(warnings) == 1 and "1 of 2 scoring runs" in warnings[0] and "run 1: 0.80 (balanced 0.50)" in warnings[0]


def test_the_advice_follows_the_learning_rate_the_runs_used():
    from hprune.diagnostics import TRAINER_ADVICE, what_to_change

    assert what_to_change({"lr": 2e-5, "epochs": 3, "max_length": 128}).startswith("raise --lr (now 2e-05; small models want 0.0001 or more), add --epochs (now 3)")
    advice = what_to_change({"lr": 1e-4, "epochs": 3, "max_length": 128})
    assert advice.startswith("add --epochs (now 3)") and "raise --lr" not in advice and "another --lr (now 0.0001)" in advice
    assert what_to_change(None).startswith("raise --lr (small models")
    # a Trainer user (hprune.integrations.hf.DynamicsTrainer) is told the TrainingArguments, not hprune's options
    assert what_to_change({"lr": 2e-5, "epochs": 3}, advice=TRAINER_ADVICE) == (
        "raise learning_rate (now 2e-05; small models want 0.0001 or more), raise num_train_epochs (now 3), "
        "or raise the tokenizer's max_length if texts are cut")
