"""The automatic subset family, selection at equal size and at a budget, the stratified rules and RS2's draws."""
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hprune.config import CCS_HARD_CUT, DEFAULT_SELECTION
from hprune.errors import HpruneError
from hprune.scores import random_order
from hprune.subsets import (BUDGET_METHODS, PAPER_FAMILY_R6, STRATIFIED_METHODS, WINNING_TICKET, budget_size, choose, describe_subsets,
                            even_allocation, find_subset, nearest_subset, rs2_epochs, runs_of, score_strata, select, starved_classes,
                            stratified_positions, subset_family, subset_mask, ticket_tiers)


def test_paper_family_for_six_runs():
    family = subset_family(6)
    codes = {s["code"] for s in family}
    assert set(PAPER_FAMILY_R6) <= codes
    assert family[0]["name"] == WINNING_TICKET and family[0]["removed_h"] == [0, 6]
    assert sum(s["paper"] for s in family) == len(PAPER_FAMILY_R6)
    assert find_subset(family, "06") is family[0]
    assert find_subset(family, "0156")["removed_h"] == [0, 1, 5, 6]


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.lists(st.integers(0, 12), min_size=1, max_size=200))
def test_every_subset_nests_in_the_winning_ticket(R, h):
    h = np.minimum(np.array(h), R)
    family = subset_family(R)
    wt = subset_mask(h, family[0]["removed_h"])
    assert not wt[(h == 0) | (h == R)].any()
    for s in family:
        assert 0 in s["removed_h"] and R in s["removed_h"]
        mask = subset_mask(h, s["removed_h"])
        assert not (mask & ~wt).any()
        assert sorted(s["removed_h"] + s["kept_h"]) == list(range(R + 1))
    assert len({s["name"] for s in family}) == len(family)


def test_single_run_is_refused():
    with pytest.raises(HpruneError, match="--runs 2 or more"):
        subset_family(1)


def _scores(n=100, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    return pd.DataFrame({
        "example_id": np.arange(n), "label": [f"c{k}" for k in labels], "label_id": labels,
        "h_score": rng.integers(0, 7, n), "confidence": rng.random(n), "variability": rng.random(n),
        "forgetting": rng.integers(0, 3, n).astype(float), "el2n": rng.random(n), "aum": rng.normal(size=n),
        "random_order": random_order(n, seed=seed),
    })


@pytest.mark.parametrize("method", ["random", "ambiguous", "hard", "easy", "forgetting", "el2n", "aum"])
@pytest.mark.parametrize("balanced", [False, True])
@pytest.mark.parametrize("size", [0, 1, 37, 100])
def test_selection_size_is_exact(method, balanced, size):
    ids = select(_scores(), method, size, class_balanced=balanced)
    assert len(ids) == size and len(set(ids)) == size


def test_selection_picks_the_right_end():
    s = _scores()
    top = select(s, "ambiguous", 10)
    assert set(top) == set(s.nlargest(10, "variability")["example_id"])
    low = select(s, "aum", 10)
    assert set(low) == set(s.nsmallest(10, "aum")["example_id"])
    rand = select(s, "random", 10)
    assert set(rand) == set(s.nsmallest(10, "random_order")["example_id"])


def test_class_balanced_keeps_class_shares():
    s = _scores(300)
    ids = select(s, "easy", 60, class_balanced=True)
    got = s.set_index("example_id").loc[ids, "label"].value_counts()
    want = s["label"].value_counts() * 60 / 300
    assert (abs(got - want) <= 1).all()


def test_ties_are_broken_by_random_order_not_file_position():
    s = _scores(100)
    s["forgetting"] = 0.0
    ids = select(s, "forgetting", 10)
    assert set(ids) == set(s.nsmallest(10, "random_order")["example_id"])


def test_describe_counts_classes_and_flags_starved_ones():
    s = pd.DataFrame({"example_id": range(12), "label": list("aaaaabbbbbcc"), "h_score": [1] * 5 + [0, 0, 0, 0, 2] + [0, 0]})
    wt = describe_subsets(s, 2)[0]
    assert wt["size"] == 5 and wt["per_class"] == {"a": 5, "b": 0, "c": 0} and wt["fraction"] == 5 / 12
    assert starved_classes(wt, s) == ["b"]  # c had 2 examples in all: rare in the data, not starved by pruning


def test_random_baseline_draws_a_fresh_subset_per_seed():
    s = _scores(200)
    a, b = select(s, "random", 50, seed=1000), select(s, "random", 50, seed=1001)
    assert len(a) == len(b) == 50 and set(a) != set(b)
    np.testing.assert_array_equal(a, select(s, "random", 50, seed=1000))


def test_label_share_of_h_variance():
    from hprune.diagnostics import label_share_of_h_variance

    labels = np.array(list("aaabbb"))
    assert label_share_of_h_variance(np.array([0, 0, 0, 5, 5, 5]), labels) == 1.0
    assert label_share_of_h_variance(np.array([0, 5, 2, 0, 5, 2]), labels) == 0.0
    assert label_share_of_h_variance(np.array([3, 3, 3, 3, 3, 3]), labels) == 0.0


# --- selection at a budget


@pytest.mark.parametrize("n,fraction,size", [(100, 0.3, 30), (5452, 0.3, 1636), (5452, 0.5, 2726), (5452, 0.7, 3816), (5, 0.5, 3), (7, 1.0, 7), (10, 0.04, 0)])
def test_budget_size_is_round_fraction_times_n(n, fraction, size):
    if size == 0:
        with pytest.raises(HpruneError, match="keeps no row"):
            budget_size(n, fraction=fraction)
    else:
        assert budget_size(n, fraction=fraction) == size
    assert budget_size(n, size=min(n, 3)) == min(n, 3)


@pytest.mark.parametrize("kwargs,message", [
    ({"fraction": 0.0}, "--fraction 0 is outside (0, 1]"), ({"fraction": 1.5}, "--fraction 1.5 is outside (0, 1]"),
    ({"fraction": float("nan")}, "outside (0, 1]"), ({"size": 101}, "--size 101 is not between 1 and the 100 scored rows"),
    ({"size": 0}, "not between 1"), ({"fraction": 0.3, "size": 5}, "both set the budget"),
])
def test_budget_size_refuses_bad_budgets(kwargs, message):
    with pytest.raises(HpruneError, match=re.escape(message)):
        budget_size(100, **kwargs)


@pytest.mark.parametrize("method", BUDGET_METHODS)
@pytest.mark.parametrize("size", [1, 29, 30, 71, 100])
@pytest.mark.parametrize("balanced", [False, True])
def test_every_budget_method_keeps_exactly_the_size(method, size, balanced):
    ids = select(_scores(), method, size, class_balanced=balanced, seed=3, n_runs=6)
    assert len(ids) == size and len(set(ids)) == size


def test_even_allocation_fills_small_strata_first_then_shares_evenly():
    assert even_allocation([10, 2, 5, 100], 40).tolist() == [10, 2, 5, 23]
    assert even_allocation([10, 2, 5, 100], 8).tolist() == [2, 2, 2, 2]
    assert even_allocation([10, 10], 5).tolist() == [2, 3]
    assert even_allocation([3, 3, 3], 9).tolist() == [3, 3, 3]


def test_weighted_allocation_by_the_counts_is_proportional():
    assert even_allocation([10, 30, 60], 50, weights=[10, 30, 60]).tolist() == [5, 15, 30]
    assert even_allocation([10, 30, 60], 50, weights=[1, 1, 1]).tolist() == even_allocation([10, 30, 60], 50).tolist() == [10, 20, 20]


@settings(max_examples=60, deadline=None)
# no subnormal powers: the training loop's torch.set_flush_denormal(True) stays on for the rest of the test process
@given(st.lists(st.integers(1, 50), min_size=1, max_size=12), st.integers(0, 600), st.floats(0, 1, allow_subnormal=False))
def test_weighted_allocation_spends_the_budget_within_the_strata(counts, budget, power):
    counts = np.array(counts)
    budget = min(budget, counts.sum())
    quota = even_allocation(counts, budget, weights=counts ** power)
    assert quota.sum() == budget and (quota >= 0).all() and (quota <= counts).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=12), st.integers(0, 600))
def test_even_allocation_spends_the_budget_within_the_strata(counts, budget):
    budget = min(budget, sum(counts))
    quota = even_allocation(np.array(counts), budget)
    assert quota.sum() == budget and (quota >= 0).all() and (quota <= counts).all()
    full = quota < counts  # a stratum not taken whole gets at least as much as any other
    assert not full.any() or quota[full].min() >= quota.max() - 1


def _hand_built():
    """40 examples: H = 0 (8, confidence 0.1 .. 0.8), H = 1 (4), H = 2 (28); two classes, a and b."""
    h = np.array([0] * 8 + [1] * 4 + [2] * 28)
    labels = np.array([0, 1] * 4 + [0, 1] * 2 + [0] * 20 + [1] * 8)
    conf = np.concatenate([np.arange(1, 9) / 10, np.full(32, 0.5)])
    n = len(h)
    return pd.DataFrame({"example_id": np.arange(n), "label": np.array(["a", "b"])[labels], "label_id": labels, "h_score": h,
                         "confidence": conf, "aum": h.astype(float), "random_order": random_order(n, seed=0)})


def test_hscore_rules_cut_the_least_confident_half_of_h0_and_spread_the_rest_over_h():
    s = _hand_built()
    rank = s["random_order"].to_numpy()
    ids = stratified_positions(s, STRATIFIED_METHODS["hscore-joint"], 12, rank=rank)
    kept = s.iloc[ids]
    assert not kept["example_id"].isin([0, 1, 2, 3]).any()  # H = 0 at confidence 0.1 .. 0.4: cut (half of H = 0)
    # strata (H, class): (0,a) 2 left, (0,b) 2, (1,a) 2, (1,b) 2, (2,a) 20, (2,b) 8: 12 over 6 strata -> 2 each
    assert kept.groupby(["h_score", "label_id"]).size().tolist() == [2] * 6
    quota = stratified_positions(s, STRATIFIED_METHODS["hscore-stratified"], 20, rank=rank)
    kept = s.iloc[quota]
    # class shares of the 36 left after the cut: a 2+2+20 = 24, b 2+2+8 = 12 -> 20 x 2/3 = 13.3 and 6.7 -> 13 and 7
    assert kept["label"].value_counts().to_dict() == {"a": 13, "b": 7}
    # class a: H strata 2, 2, 20 with 13 -> 2, 2, 9
    assert kept[kept["label"] == "a"].groupby("h_score").size().tolist() == [2, 2, 9]


def test_hscore_adaptive_is_even_at_large_budgets_and_near_proportional_at_small_ones():
    s = _hand_built()
    rank = s["random_order"].to_numpy()
    adaptive, stratified = STRATIFIED_METHODS["hscore-adaptive"], STRATIFIED_METHODS["hscore-stratified"]
    # 30 of 40 kept: weights count ** 0.25 in class a (strata 2, 2, 20) -> the two small strata whole, as the even rule does
    kept = s.iloc[stratified_positions(s, adaptive, 30, rank=rank)]
    even = s.iloc[stratified_positions(s, stratified, 30, rank=rank)]
    assert kept.groupby(["label", "h_score"]).size().to_dict() == even.groupby(["label", "h_score"]).size().to_dict()
    # 4 of 40 kept: weights count ** 0.9; class a's 3 go by its strata sizes 2, 2, 20 -> all to H = 2, where even gives 1, 1, 1
    kept = s.iloc[stratified_positions(s, adaptive, 4, rank=rank)]
    assert kept[kept["label"] == "a"]["h_score"].tolist() == [2, 2, 2]
    even = s.iloc[stratified_positions(s, stratified, 4, rank=rank)]
    assert sorted(even[even["label"] == "a"]["h_score"]) == [0, 1, 2]


def test_hscore_ticket_fills_from_the_winning_ticket_then_h_r_then_h0():
    s = _hand_built()  # R = 2: the winning ticket is H = 1
    rank, rule = s["random_order"].to_numpy(), STRATIFIED_METHODS["hscore-ticket"]
    kept = s.iloc[stratified_positions(s, rule, 10, rank=rank, n_runs=2)]
    # class quotas 7 and 3 (of 24 and 12 left after the cut): each takes its 2 of H = 1 first, then H = 2, no H = 0
    assert kept.groupby(["label", "h_score"]).size().to_dict() == {("a", 1): 2, ("a", 2): 5, ("b", 1): 2, ("b", 2): 1}
    kept = s.iloc[stratified_positions(s, rule, 34, rank=rank, n_runs=2)]
    # quotas 23 and 11: all of H = 1 and H = 2 (22 and 10), then one of the H = 0 left after the cut, each
    assert kept.groupby(["label", "h_score"]).size().to_dict() == {("a", 0): 1, ("a", 1): 2, ("a", 2): 20,
                                                                   ("b", 0): 1, ("b", 1): 2, ("b", 2): 8}
    # R = 3 with no example right in all 3 runs: H = 1 and H = 2 are both the winning ticket, one tier
    kept = s.iloc[stratified_positions(s, rule, 10, rank=rank, n_runs=3)]
    assert set(kept["h_score"]) == {1, 2} and not ticket_tiers(kept["h_score"].to_numpy(), 3).any()
    with pytest.raises(ValueError, match="n_runs"):
        stratified_positions(s, rule, 10, rank=rank)


def test_runs_of_reads_r_from_the_family():
    assert runs_of(describe_subsets(_scores(), 6)) == 6 and runs_of(describe_subsets(_scores(), 3)) == 3


def test_the_cut_never_leaves_fewer_than_the_budget():
    s = _hand_built()
    ids = stratified_positions(s, STRATIFIED_METHODS["hscore-joint"], 38, rank=s["random_order"].to_numpy())
    assert len(ids) == 38 and set(range(40)) - set(ids) <= {0, 1}  # only the two least confident of H = 0 can go


def test_ccs_cuts_the_lowest_aum_and_uses_equal_width_strata():
    assert score_strata(np.array([0.0, 0.49, 0.5, 0.99, 1.0]), 2).tolist() == [0, 0, 1, 1, 1]
    assert score_strata(np.array([3.0, 3.0]), 50).tolist() == [0, 0]
    assert score_strata(np.array([2.0, 0.0, 2.0, 5.0]), None).tolist() == [1, 0, 1, 2]
    s = _scores(200)
    ids = select(s, "ccs", 100)
    lowest = s.nsmallest(int(CCS_HARD_CUT * 200), "aum")["example_id"]
    assert not set(lowest) & set(ids)


def test_stratified_rules_draw_afresh_per_seed_and_repeat_without_one():
    s = _scores(300)
    assert set(select(s, "hscore-stratified", 90, seed=1000)) != set(select(s, "hscore-stratified", 90, seed=1001))
    np.testing.assert_array_equal(select(s, "ccs", 90), select(s, "ccs", 90))


def test_choose_a_subset_or_a_budget_but_not_both():
    s = _scores(100)
    family = describe_subsets(s, 6)
    ids, chosen = choose(s, family)
    assert chosen == "subset winning-ticket" and set(ids) == set(s["example_id"][s["h_score"].between(1, 5)])
    ids, chosen = choose(s, family, fraction=0.3)
    assert len(ids) == 30 and chosen == f"{DEFAULT_SELECTION} at 30 rows"
    assert len(choose(s, family, size=7, method="random")[0]) == 7
    with pytest.raises(HpruneError, match="subset 0126 and --fraction 0.3 both choose the rows; give the subset or the budget, not both"):
        choose(s, family, name="0126", fraction=0.3)
    with pytest.raises(HpruneError, match="--method ccs fills a budget"):
        choose(s, family, method="ccs")
    with pytest.raises(HpruneError, match="unknown method 'nope'"):
        choose(s, family, size=5, method="nope")


def test_nearest_subset_in_size():
    family = [{"name": "a", "size": 50}, {"name": "b", "size": 30}, {"name": "c", "size": 0}, {"name": "d", "size": 10}]
    assert nearest_subset(family, 40)["name"] == "a"  # a tie goes to the larger
    assert nearest_subset(family, 1)["name"] == "d"
    with pytest.raises(HpruneError, match="every automatic subset is empty"):
        nearest_subset([{"name": "c", "size": 0}], 5)


@pytest.mark.parametrize("n,size,epochs", [(10, 7, 4), (10, 3, 3), (100, 30, 3), (9, 9, 2), (10, 5, 5)])
def test_rs2_draws_a_new_subset_of_the_same_size_every_epoch(n, size, epochs):
    draws = rs2_epochs(n, size, epochs, seed=1)
    assert [len(d) for d in draws] == [size] * epochs and all(len(set(d)) == size for d in draws)
    if size < n:
        assert len({tuple(d) for d in draws}) == epochs  # a different subset each epoch
    seen = np.zeros(n, dtype=int)
    for d in draws:  # without replacement: no example seen twice before every other is seen once
        seen[d] += 1
        assert seen.max() - seen.min() <= 1
    assert [d.tolist() for d in draws] == [d.tolist() for d in rs2_epochs(n, size, epochs, seed=1)]
    assert [d.tolist() for d in draws] != [d.tolist() for d in rs2_epochs(n, size, epochs, seed=2)] or size == n
