"""Evaluation metrics for classification: accuracy, macro F1 and Matthews correlation (CoLA's)."""
from __future__ import annotations

import numpy as np

# What classification_metrics returns, in the order tables show them.
METRICS = ("accuracy", "macro_f1", "mcc")
# Every metric of every task kind (hprune.tasks: multiple choice has accuracy, extractive QA exact and f1).
ALL_METRICS = (*METRICS, "exact", "f1")
TEST_PREFIX = "test_"  # the same metrics on the optional second held-out file (`hprune compare --test`)


def classification_metrics(labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    preds = np.asarray(logits).argmax(-1)
    labels = np.asarray(labels)
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "macro_f1": float(f1_score(labels, preds, average="macro", zero_division=0)),
        "mcc": float(matthews_corrcoef(labels, preds)),
    }
