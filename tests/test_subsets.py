"""The automatic subset family and selection at equal size."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hprune.errors import HpruneError
from hprune.scores import random_order
from hprune.subsets import PAPER_FAMILY_R6, WINNING_TICKET, describe_subsets, find_subset, select, starved_classes, subset_family, subset_mask


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
