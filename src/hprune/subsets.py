"""The automatic subset family (by removed H values) and baseline selection at equal size."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import HpruneError
from .scores import random_order

WINNING_TICKET = "winning-ticket"

# The paper's family for R = 6 (digits are removed H values); all of them are in `subset_family(6)`.
PAPER_FAMILY_R6 = ["06", "016", "0126", "01236", "0156", "012346", "012356"]

# method -> (scores column, keep the highest values?)
SELECTION_METHODS = {
    "random": ("random_order", False),
    "ambiguous": ("variability", True),
    "hard": ("confidence", False),
    "easy": ("confidence", True),
    "forgetting": ("forgetting", True),
    "el2n": ("el2n", True),
    "aum": ("aum", False),
}


def _code(removed: list[int], n_runs: int) -> str:
    return ("" if n_runs < 10 else "-").join(str(h) for h in removed)


def subset_family(n_runs: int) -> list[dict]:
    """Every subset that removes H = 0 and H = R and peels further levels off the low and high ends.

    Removing {0..a} and {R-b..R} (a, b >= 0) keeps the contiguous band a+1 .. R-b-1; each subset is
    inside the winning ticket (a = b = 0), the largest. Ordered from fewest to most removed levels.
    """
    if n_runs < 2:
        raise HpruneError(
            f"--runs {n_runs} leaves no example between H = 0 and H = R; use --runs 2 or more (the paper uses 6)"
        )
    family = []
    for n_removed in range(2, n_runs + 1):
        for a in range(n_removed - 1):
            b = n_removed - 2 - a
            removed = list(range(a + 1)) + list(range(n_runs - b, n_runs + 1))
            code = _code(removed, n_runs)
            family.append(
                {
                    "name": WINNING_TICKET if n_removed == 2 else code,
                    "code": code,
                    "removed_h": removed,
                    "kept_h": list(range(a + 1, n_runs - b)),
                    "paper": n_runs == 6 and code in PAPER_FAMILY_R6,
                }
            )
    return family


def find_subset(subsets: list[dict], name: str) -> dict:
    """Look a subset up by its name or its removed-H code (`06` is the winning ticket for R = 6)."""
    for s in subsets:
        if name in (s["name"], s.get("code")):
            return s
    names = ", ".join(s["name"] for s in subsets)
    raise HpruneError(f"no subset named {name!r}; choose one of: {names}")


def subset_mask(h: np.ndarray, removed_h: list[int]) -> np.ndarray:
    """True for the examples whose H value is not removed."""
    return ~np.isin(np.asarray(h), removed_h)


def describe_subsets(scores: pd.DataFrame, n_runs: int) -> list[dict]:
    """The family with size, fraction and per-class counts of each subset on this data."""
    h = scores["h_score"].to_numpy()
    labels = scores["label"].astype(str)
    class_names = sorted(labels.unique())
    out = []
    for s in subset_family(n_runs):
        mask = subset_mask(h, s["removed_h"])
        counts = labels[mask].value_counts()
        out.append(
            {
                **s,
                "size": int(mask.sum()),
                "fraction": float(mask.mean()) if len(mask) else 0.0,
                "per_class": {c: int(counts.get(c, 0)) for c in class_names},
            }
        )
    return out


def starved_classes(subset: dict, scores: pd.DataFrame, *, min_share: float = 0.1, min_count: int = 5) -> list[str]:
    """Classes that a subset leaves with no or very few examples.

    A class is starved when it keeps fewer than `min_count` examples (while it had more) or less than
    `min_share` of what a random subset of the same size would give it. A class with fewer than
    `min_count` examples in the whole set is never starved: pruning cannot make it rarer than the data
    made it (ARC-Easy's fifth choice is the answer of 2 questions out of 2,251).
    """
    full = scores["label"].astype(str).value_counts()
    n = len(scores)
    out = []
    for c, kept in subset["per_class"].items():
        if full[c] < min_count:
            continue
        expected = full[c] * subset["size"] / n
        if (kept < min_count and full[c] > kept) or kept < min_share * expected:
            out.append(c)
    return out


def select(
    scores: pd.DataFrame, method: str, size: int, *, class_balanced: bool = False, seed: int | None = None
) -> np.ndarray:
    """Example ids of the `size` examples a baseline method keeps (sorted by id).

    Ties are broken by the seeded random order, so ties never favour the start of the file. With
    `seed`, "random" draws its own subset from that seed (a fresh draw per phase-2 seed) instead of
    using the scoring's `random_order` column.
    Class-balanced selection gives each class its share of `size` (largest remainder) and ranks
    within the class.
    """
    if method not in SELECTION_METHODS:
        raise HpruneError(f"unknown method {method!r}; choose one of: {', '.join(SELECTION_METHODS)}")
    if not 0 <= size <= len(scores):
        raise HpruneError(f"subset size {size} is outside 0..{len(scores)}")
    column, highest = SELECTION_METHODS[method]
    if method == "random" and seed is not None:
        key = random_order(len(scores), seed=seed).astype(np.float64)
    else:
        key = scores[column].to_numpy(dtype=np.float64)
    key = -key if highest else key
    order = np.lexsort((scores["random_order"].to_numpy(), key))  # last key is primary
    if not class_balanced:
        chosen = order[:size]
    else:
        labels = scores["label_id"].to_numpy()
        classes, counts = np.unique(labels, return_counts=True)
        quota = _largest_remainder(counts, size)
        ranked = labels[order]
        chosen = np.concatenate([order[ranked == c][:q] for c, q in zip(classes, quota)])
    return np.sort(scores["example_id"].to_numpy()[chosen])


def _largest_remainder(counts: np.ndarray, size: int) -> np.ndarray:
    share = counts * size / counts.sum()
    quota = np.floor(share).astype(np.int64)
    rest = size - quota.sum()
    quota[np.argsort(-(share - quota), kind="stable")[:rest]] += 1
    return quota
