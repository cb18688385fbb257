"""The automatic subset family (by removed H values), and selection at any size: the baselines, the
coverage-aware stratified rules, a budget (a fraction or a size) and RS2's per-epoch draws. Pure functions
of the scores table."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import CCS_HARD_CUT, CCS_STRATA, DEFAULT_SELECTION, H0_CUT
from .errors import HpruneError
from .scores import random_order

WINNING_TICKET = "winning-ticket"
RANDOM = "random"  # the baseline every selection is judged against, at equal size

# The paper's family for R = 6 (digits are removed H values); all of them are in `subset_family(6)`.
PAPER_FAMILY_R6 = ["06", "016", "0126", "01236", "0156", "012346", "012356"]

# method -> (scores column, keep the highest values?)
SELECTION_METHODS = {
    RANDOM: ("random_order", False),
    "ambiguous": ("variability", True),
    "hard": ("confidence", False),
    "easy": ("confidence", True),
    "forgetting": ("forgetting", True),
    "el2n": ("el2n", True),
    "aum": ("aum", False),
}


@dataclass(frozen=True)
class StratifiedRule:
    """Coverage-aware selection after CCS (Zheng et al., ICLR 2023): cut the hard end (likely mislabelled), cut
    the rest into strata by score, spread the budget evenly over the strata from the smallest up, and draw at
    random within each. A pure difficulty ranking starves the easy core and some classes at small sizes; this
    keeps every region of the score. Low scores are hard (H, AUM)."""

    score: str  # the scores column the strata are made from
    cut: float  # share cut from the hard end before stratifying
    cut_from_zero: bool  # the cut comes from the examples scored 0 (H = 0), lowest confidence first; else from all, lowest score first
    bins: int | None = None  # equal-width strata over the score's range (CCS); None: one stratum per value (H's R + 1 levels)
    by_class: str | None = None  # "quota": each class keeps its share and is stratified alone; "joint": one stratum per (score, class)
    adaptive: bool = False  # stratum weights count ** (1 - kept share): even (CCS) at large budgets, near random at small ones
    ticket_first: bool = False  # the paper's order: the winning ticket (0 < H < R) first, then H = R, then H = 0 (each at random)


STRATIFIED_METHODS = {
    "hscore-stratified": StratifiedRule("h_score", H0_CUT, cut_from_zero=True, by_class="quota"),
    "hscore-joint": StratifiedRule("h_score", H0_CUT, cut_from_zero=True, by_class="joint"),
    "hscore-adaptive": StratifiedRule("h_score", H0_CUT, cut_from_zero=True, by_class="quota", adaptive=True),
    "hscore-ticket": StratifiedRule("h_score", H0_CUT, cut_from_zero=True, by_class="quota", ticket_first=True),
    "ccs": StratifiedRule("aum", CCS_HARD_CUT, cut_from_zero=False, bins=CCS_STRATA),
}
BUDGET_METHODS = (*SELECTION_METHODS, *STRATIFIED_METHODS)  # every method that fills a size it is given


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
    scores: pd.DataFrame, method: str, size: int, *, class_balanced: bool = False, seed: int | None = None,
    n_runs: int | None = None,
) -> np.ndarray:
    """Example ids of the `size` examples a method keeps (sorted by id): a baseline ranking or a stratified rule.

    Ties are broken by the seeded random order, so ties never favour the start of the file. With
    `seed`, "random" and the stratified rules draw from that seed (a fresh draw per phase-2 seed) instead of
    using the scoring's `random_order` column.
    Class-balanced selection gives each class its share of `size` (largest remainder) and ranks or
    stratifies within the class. `n_runs` (R) is needed by hscore-ticket only (runs_of gives it).
    """
    if method not in BUDGET_METHODS:
        raise HpruneError(f"unknown method {method!r}; choose one of: {', '.join(BUDGET_METHODS)}")
    if not 0 <= size <= len(scores):
        raise HpruneError(f"subset size {size} is outside 0..{len(scores)}")
    rank = random_order(len(scores), seed=seed) if seed is not None else scores["random_order"].to_numpy()
    if method in STRATIFIED_METHODS:
        chosen = stratified_positions(scores, STRATIFIED_METHODS[method], size, rank=rank, class_balanced=class_balanced,
                                      n_runs=n_runs)
        return np.sort(scores["example_id"].to_numpy()[chosen])
    column, highest = SELECTION_METHODS[method]
    key = rank.astype(np.float64) if method == RANDOM else scores[column].to_numpy(dtype=np.float64)
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


def stratified_positions(scores: pd.DataFrame, rule: StratifiedRule, size: int, *, rank: np.ndarray,
                         class_balanced: bool = False, n_runs: int | None = None) -> np.ndarray:
    """Row positions of the `size` examples a stratified rule keeps; `rank` is the random order within a stratum.
    The cut never leaves fewer than `size` examples. `class_balanced` stratifies within class quotas whatever the rule says.
    A ticket-first rule needs `n_runs` (R): a hard task may have no example right in every run."""
    if rule.ticket_first and n_runs is None:
        raise ValueError("a ticket-first rule needs n_runs, the R of the scoring (subsets.runs_of)")
    n = len(scores)
    score = scores[rule.score].to_numpy(dtype=np.float64)
    hard_first = np.lexsort((rank, scores["confidence"].to_numpy(), score))
    candidates = score == 0 if rule.cut_from_zero else np.ones(n, dtype=bool)
    n_cut = min(int(rule.cut * candidates.sum()), n - size)
    pool = np.setdiff1d(np.arange(n), hard_first[candidates[hard_first]][:n_cut])
    strata, labels, pool_rank = score_strata(score[pool], rule.bins), scores["label_id"].to_numpy()[pool], rank[pool]
    tiers = ticket_tiers(score[pool], n_runs) if rule.ticket_first else np.zeros(len(pool), dtype=np.int64)
    power = 1 - size / n if rule.adaptive else 0.0
    by_class = "quota" if class_balanced else rule.by_class
    if by_class == "joint":
        strata = strata * (labels.max() + 1) + labels
    if by_class != "quota":
        return pool[fill_tiers(tiers, strata, size, pool_rank, power=power)]
    classes, counts = np.unique(labels, return_counts=True)
    picked = [pool[labels == c][fill_tiers(tiers[labels == c], strata[labels == c], q, pool_rank[labels == c], power=power)]
              for c, q in zip(classes, _largest_remainder(counts, size))]
    return np.concatenate(picked)


def ticket_tiers(h: np.ndarray, n_runs: int) -> np.ndarray:
    """0 for the winning ticket (0 < H < R), 1 for H = R, 2 for H = 0: the order in which the paper's family gives
    levels back."""
    return np.where(h == 0, 2, np.where(h >= n_runs, 1, 0))


def fill_tiers(tiers: np.ndarray, strata: np.ndarray, budget: int, rank: np.ndarray, *, power: float = 0.0) -> np.ndarray:
    """Positions of `budget` examples: tier 0 first, spread over its strata (allocate_in_strata), then each next
    tier in turn as far as the budget goes."""
    picked = []
    for tier in np.unique(tiers):
        members = np.flatnonzero(tiers == tier)
        take = min(budget, len(members))
        picked.append(members[allocate_in_strata(strata[members], take, rank[members], power=power)])
        budget -= take
    return np.concatenate(picked or [np.array([], dtype=np.int64)])


def score_strata(values: np.ndarray, bins: int | None) -> np.ndarray:
    """Stratum of each value: its rank among the distinct values (bins None), or its equal-width bin over the range."""
    if bins is None:
        return np.unique(values, return_inverse=True)[1]
    if len(values) == 0 or np.ptp(values) == 0:
        return np.zeros(len(values), dtype=np.int64)
    low, high = values.min(), values.max()
    return np.minimum(((values - low) / (high - low) * bins).astype(np.int64), bins - 1)


def allocate_in_strata(strata: np.ndarray, budget: int, rank: np.ndarray, *, power: float = 0.0) -> np.ndarray:
    """Positions of `budget` examples spread over the strata by `even_allocation` (weights count ** power), the
    lowest `rank` of each stratum."""
    _, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    quota = even_allocation(counts, budget, weights=counts.astype(np.float64) ** power)
    order = np.lexsort((rank, inverse))  # by stratum, then at random within it
    starts = np.cumsum(counts) - counts
    return np.concatenate([order[start:start + q] for start, q in zip(starts, quota)] or [np.array([], dtype=np.int64)])


def even_allocation(counts: np.ndarray, budget: int, weights: np.ndarray | None = None) -> np.ndarray:
    """CCS's allocation of a budget over strata of these sizes: from the stratum that fills first up, each gets
    its share of what is left (even, or by `weights`), or all its examples when it has fewer. Sums to the budget
    when the strata hold it. Weights equal to the counts give random's proportional shares."""
    counts = np.asarray(counts, dtype=np.int64)
    weights = np.ones(len(counts)) if weights is None else np.asarray(weights, dtype=np.float64)
    quota = np.zeros_like(counts)
    left, order = budget, np.argsort(counts / weights, kind="stable")
    for k, stratum in enumerate(order):
        quota[stratum] = min(counts[stratum], int(left * weights[stratum] / weights[order[k:]].sum()))
        left -= quota[stratum]
    for stratum in order[::-1]:  # what rounding down left over, to the strata with room
        extra = min(counts[stratum] - quota[stratum], left)
        quota[stratum] += extra
        left -= extra
    return quota


def budget_size(n_examples: int, *, fraction: float | None = None, size: int | None = None) -> int:
    """How many examples a budget keeps: round(fraction x n_examples) (halves up), or `size`."""
    if fraction is not None and size is not None:
        raise HpruneError(f"--fraction {fraction:g} and --size {size} both set the budget; give one of them")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise HpruneError(f"--fraction {fraction:g} is outside (0, 1]; give the share of the rows to keep, e.g. --fraction 0.3")
        size = math.floor(fraction * n_examples + 0.5)
        if size == 0:
            raise HpruneError(f"--fraction {fraction:g} of {n_examples} rows keeps no row; give at least --fraction {1 / n_examples:.2g}")
        return size
    if size is None or not 1 <= size <= n_examples:
        raise HpruneError(f"--size {size} is not between 1 and the {n_examples} scored rows; give a size up to {n_examples}, or --fraction")
    return size


def choose(scores: pd.DataFrame, subsets: list[dict], *, name: str | None = None, fraction: float | None = None,
           size: int | None = None, method: str | None = None, seed: int | None = None) -> tuple[np.ndarray, str]:
    """The example ids a user's choice keeps, and what the choice was in words: an automatic subset by name
    (default the winning ticket), or a budget (`fraction` or `size`) filled by `method` (default
    config.DEFAULT_SELECTION)."""
    budget = fraction is not None or size is not None
    if budget and name is not None:
        given = f"--fraction {fraction:g}" if fraction is not None else f"--size {size}"
        raise HpruneError(f"subset {name} and {given} both choose the rows; give the subset or the budget, not both")
    if not budget:
        if method is not None:
            raise HpruneError(f"--method {method} fills a budget; give --fraction or --size with it, or leave it out")
        subset = find_subset(subsets, name or WINNING_TICKET)
        return scores["example_id"].to_numpy()[subset_mask(scores["h_score"].to_numpy(), subset["removed_h"])], f"subset {subset['name']}"
    n = budget_size(len(scores), fraction=fraction, size=size)
    method = method or DEFAULT_SELECTION
    return select(scores, method, n, seed=seed, n_runs=runs_of(subsets)), f"{method} at {n} rows"


def runs_of(subsets: list[dict]) -> int:
    """R, the number of scoring runs, of an automatic family: the winning ticket removes H = 0 and H = R."""
    return max(find_subset(subsets, WINNING_TICKET)["removed_h"])


def nearest_subset(subsets: list[dict], size: int) -> dict:
    """The non-empty automatic subset nearest in size (the larger on a tie): the paper's answer to a budget."""
    held = [s for s in subsets if s["size"] > 0]
    if not held:
        raise HpruneError("every automatic subset is empty on this data (all H = 0 or R); leave hscore out of --methods")
    return min(held, key=lambda s: (abs(s["size"] - size), -s["size"]))


def rs2_epochs(n_examples: int, size: int, epochs: int, *, seed: int) -> list[np.ndarray]:
    """RS2 without replacement (Okanovic et al., arXiv 2305.18424): the positions trained in each epoch, `size`
    of them, a new random subset every epoch: the examples not yet seen in this round first, so that no
    example is seen twice before every other is seen once. As many example-steps as a static subset of that size."""
    rng = np.random.default_rng(seed)
    unseen, out = rng.permutation(n_examples), []
    for _ in range(epochs):
        taken = unseen[:size]
        unseen = unseen[size:]
        if len(taken) < size:  # a new round: the rest of the old one, topped up from the others
            others = rng.permutation(np.setdiff1d(np.arange(n_examples), taken))
            top_up = size - len(taken)
            taken, unseen = np.concatenate([taken, others[:top_up]]), np.concatenate([others[top_up:], rng.permutation(taken)])
        out.append(np.sort(taken))
    return out


def _largest_remainder(counts: np.ndarray, size: int) -> np.ndarray:
    share = counts * size / counts.sum()
    quota = np.floor(share).astype(np.int64)
    rest = size - quota.sum()
    quota[np.argsort(-(share - quota), kind="stable")[:rest]] += 1
    return quota
