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
