"""Per-example scores from training dynamics, as pure functions on arrays.

Every array argument is laid out (R, E, N): R runs (seeds), E epochs, N examples. Values are what the
training step saw for that example in that epoch: `correct` (bool), `probs` (gold-label probability),
`margins` (gold logit minus the largest other logit), `el2n` (L2 norm of softmax minus one-hot).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def _check(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3:
        raise ValueError(f"{name} must have shape (runs, epochs, examples), got {a.shape}")
    return a


def h_scores(correct: np.ndarray) -> np.ndarray:
    """H[i] = number of runs in which example i was correct in every epoch (0 <= H <= R)."""
    correct = _check(correct, "correct").astype(bool)
    return correct.all(axis=1).sum(axis=0).astype(np.int64)


def confidence(probs: np.ndarray) -> np.ndarray:
    """Dataset Cartography confidence: mean gold-label probability over all runs and epochs."""
    probs = _check(probs, "probs").astype(np.float64)
    return probs.reshape(-1, probs.shape[-1]).mean(axis=0)


def variability(probs: np.ndarray) -> np.ndarray:
    """Dataset Cartography variability: std of the gold-label probability over all runs and epochs."""
    probs = _check(probs, "probs").astype(np.float64)
    return probs.reshape(-1, probs.shape[-1]).std(axis=0)


def forgetting_events(correct: np.ndarray) -> np.ndarray:
    """Mean over runs of correct->incorrect transitions between consecutive epochs (Toneva et al.).

    An example never correct in a run gets E for that run, more than any learned example can have
    (at most E // 2 events fit in E presentations), so never-learned examples rank as most forgotten.
    """
    correct = _check(correct, "correct").astype(bool)
    n_epochs = correct.shape[1]
    events = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1).astype(np.float64)
    never = ~correct.any(axis=1)
    events[never] = n_epochs
    return events.mean(axis=0)


def el2n_scores(el2n: np.ndarray) -> np.ndarray:
    """EL2N (Paul et al.): the first epoch's error norm, averaged over runs (early in training)."""
    el2n = _check(el2n, "el2n").astype(np.float64)
    return el2n[:, 0].mean(axis=0)


def aum_scores(margins: np.ndarray) -> np.ndarray:
    """Area under the margin (Pleiss et al.): mean over epochs and runs of the logit margin."""
    margins = _check(margins, "margins").astype(np.float64)
    return margins.reshape(-1, margins.shape[-1]).mean(axis=0)


def random_order(n_examples: int, *, seed: int) -> np.ndarray:
    """Rank of each example in a seeded random permutation (0 = picked first)."""
    order = np.random.default_rng(seed).permutation(n_examples)
    rank = np.empty(n_examples, dtype=np.int64)
    rank[order] = np.arange(n_examples)
    return rank


def score_table(
    correct: np.ndarray,
    probs: np.ndarray,
    margins: np.ndarray,
    el2n: np.ndarray,
    *,
    example_ids: np.ndarray,
    labels: np.ndarray,
    label_names: list[str],
    seed: int = 0,
) -> pd.DataFrame:
    """All scores as one table, one row per example, in the order of the user's file."""
    labels = np.asarray(labels)
    return pd.DataFrame(
        {
            "example_id": np.asarray(example_ids, dtype=np.int64),
            "label": [label_names[k] for k in labels],
            "label_id": labels.astype(np.int64),
            "h_score": h_scores(correct),
            "confidence": confidence(probs),
            "variability": variability(probs),
            "forgetting": forgetting_events(correct),
            "el2n": el2n_scores(el2n),
            "aum": aum_scores(margins),
            "random_order": random_order(len(labels), seed=seed),
        }
    )
