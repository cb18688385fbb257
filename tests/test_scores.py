"""Score maths on hand-built arrays: known answers, the reference expression, and properties."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hprune.scores import aum_scores, confidence, el2n_scores, forgetting_events, h_scores, random_order, variability


def test_h_score_hand_built():
    # 3 runs, 2 epochs, 4 examples
    correct = np.array(
        [
            [[1, 1, 0, 1], [1, 0, 0, 1]],
            [[1, 1, 0, 1], [1, 1, 0, 1]],
            [[1, 0, 1, 1], [1, 1, 1, 1]],
        ]
    )
    np.testing.assert_array_equal(h_scores(correct), [3, 1, 1, 3])


def test_h_score_matches_reference_expression():
    rng = np.random.default_rng(0)
    R, E, N = 6, 3, 200
    correct = rng.random((R, E, N)) < 0.7
    rewards = correct.transpose(1, 2, 0).astype(np.int64)  # the authors' layout: (epochs, examples, runs)
    reference = rewards[:E].prod(0)[:, :R].sum(1)
    np.testing.assert_array_equal(h_scores(correct), reference)


def test_no_copy_write_bug():
    """`scores[idx][mask] += 1` writes to a copy; h_scores must count for real."""
    correct = np.ones((4, 2, 5), dtype=bool)
    assert h_scores(correct).tolist() == [4] * 5


def test_confidence_and_variability():
    probs = np.array([[[0.2, 1.0], [0.4, 1.0]], [[0.6, 1.0], [0.8, 1.0]]])  # (2 runs, 2 epochs, 2 examples)
    np.testing.assert_allclose(confidence(probs), [0.5, 1.0])
    np.testing.assert_allclose(variability(probs), [np.std([0.2, 0.4, 0.6, 0.8]), 0.0])


def test_forgetting_events():
    correct = np.array(
        [
            [[1, 0, 1, 0], [0, 0, 1, 1], [1, 0, 0, 1]],  # run 0: ex0 forgot once; ex1 never learned; ex2 once; ex3 none
            [[1, 0, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1]],  # run 1: ex0 once; ex1 none; ex2 none; ex3 none
        ]
    )
    np.testing.assert_allclose(forgetting_events(correct), [1.0, (3 + 0) / 2, 0.5, 0.0])


def test_el2n_uses_first_epoch_mean_over_runs():
    el2n = np.array([[[0.2, 1.0], [9.0, 9.0]], [[0.4, 0.0], [9.0, 9.0]]])
    np.testing.assert_allclose(el2n_scores(el2n), [0.3, 0.5])


def test_aum_on_logit_margins_keeps_their_range():
    margins = np.array([[[3.0, -2.0], [5.0, -4.0]]])
    np.testing.assert_allclose(aum_scores(margins), [4.0, -3.0])


def test_random_order_is_a_seeded_permutation():
    a, b = random_order(50, seed=3), random_order(50, seed=3)
    np.testing.assert_array_equal(a, b)
    assert sorted(a) == list(range(50))
    assert not np.array_equal(a, random_order(50, seed=4))


shapes = st.tuples(st.integers(1, 7), st.integers(1, 4), st.integers(1, 30))


@settings(max_examples=60, deadline=None)
@given(shapes.flatmap(lambda s: arrays(bool, s)), st.randoms(use_true_random=False))
def test_h_properties(correct, rnd):
    R = correct.shape[0]
    h = h_scores(correct)
    assert ((0 <= h) & (h <= R)).all()
    # The order in which examples were seen (or stored) does not change any example's score.
    perm = list(range(correct.shape[2]))
    rnd.shuffle(perm)
    np.testing.assert_array_equal(h_scores(correct[:, :, perm]), h[perm])
    # Epoch order does not matter either (H is a product over epochs); run order neither.
    np.testing.assert_array_equal(h_scores(correct[::-1, ::-1]), h)
