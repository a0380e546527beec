"""Error consistency: a hand computation, sklearn's Cohen kappa, the degenerate case, pairing, and CI coverage."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from zooprobe.analysis import stats
from zooprobe.analysis.consistency import DEGENERATE_REASON, error_consistency, error_consistency_matrix


def test_kappa_equals_a_hand_computation():
    # 10 examples: both right on 5, only A on 1, only B on 2, both wrong on 2.
    a = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    b = np.array([1, 1, 1, 1, 1, 0, 1, 1, 0, 0], dtype=bool)
    # By hand: p1 = 0.6, p2 = 0.7; c_obs = (5 + 2) / 10 = 0.7; c_exp = 0.42 + 0.12 = 0.54;
    # kappa = (0.7 - 0.54) / 0.46 = 0.16 / 0.46.
    found = error_consistency(a, b, n_boot=1000, seed=1)
    assert found.observed == pytest.approx(0.7)
    assert found.expected == pytest.approx(0.54)
    assert found.kappa.value == pytest.approx(0.16 / 0.46)
    assert found.kappa.n == 10 and found.kappa.method == "percentile" and found.kappa.resampled == "test examples"
    assert found.kappa.ci_low <= found.kappa.value <= found.kappa.ci_high
    assert found.reason == ""


def test_kappa_equals_sklearn_cohen_kappa_on_the_correctness_vectors():
    rng = np.random.default_rng(3)
    correct = rng.random((6, 500)) < rng.uniform(0.3, 0.9, size=(6, 1))
    correct[1] = correct[0] ^ (rng.random(500) < 0.1)  # one strongly consistent pair
    found = error_consistency_matrix(correct, n_boot=1000, seed=0)
    for i in range(6):
        for j in range(6):
            assert found.kappa[i, j] == pytest.approx(cohen_kappa_score(correct[i], correct[j]), abs=1e-12)
    assert found.kappa[0, 1] > 0.6
    np.testing.assert_array_equal(found.kappa, found.kappa.T)
    np.testing.assert_array_equal(found.ci_low, found.ci_low.T)


def test_the_matrix_and_the_pair_function_agree_and_replicates_are_paired():
    rng = np.random.default_rng(4)
    correct = rng.random((4, 300)) < 0.7
    counts = stats.bootstrap_counts(300, n_boot=1000, seed=9)
    matrix = error_consistency_matrix(correct, models=list("wxyz"), counts=counts)
    pair = error_consistency(correct[1], correct[3], counts=counts)
    assert matrix.pair("x", "z") == pair
    # Paired: each replicate's kappa is that of the resampled examples, repeated as drawn, for both models.
    replicates = []
    for row in counts[:50].astype(int):
        a, b = np.repeat(correct[1], row), np.repeat(correct[3], row)
        replicates.append(cohen_kappa_score(a, b))
    small = error_consistency(correct[1], correct[3], counts=counts[:50])
    low, high = stats.percentile_interval(np.array(replicates))
    assert (small.kappa.ci_low, small.kappa.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert [p[:2] for p in matrix.pairs()] == [("w", "x"), ("w", "y"), ("w", "z"), ("x", "y"), ("x", "z"), ("y", "z")]


def test_degenerate_pairs_are_nan_with_a_reason():
    all_right = np.ones(20, dtype=bool)
    found = error_consistency(all_right, all_right, n_boot=1000)
    assert np.isnan(found.kappa.value) and found.reason == DEGENERATE_REASON and found.expected == 1.0
    assert found.undefined_replicates == 1000
    # All right against all wrong is defined: they never agree, c_exp = 0, kappa = 0.
    opposite = error_consistency(all_right, ~all_right, n_boot=1000)
    assert opposite.kappa.value == 0.0 and opposite.reason == ""
    # One error in 20: some resamples drop it, and those replicates are dropped as undefined.
    one_error = all_right.copy()
    one_error[0] = False
    nearly = error_consistency(one_error, one_error, n_boot=1000, seed=2)
    assert nearly.kappa.value == 1.0 and 0 < nearly.undefined_replicates < 1000
    # (1 - 1/20)^20 = 0.358 of resamples miss the error.
    assert nearly.undefined_replicates / 1000 == pytest.approx((1 - 1 / 20) ** 20, abs=0.05)


@pytest.mark.parametrize("bad, message", [
    ((np.ones(5, bool), np.ones(6, bool)), "same examples"),
    ((np.ones((2, 5), bool), np.ones((2, 5), bool)), "1-D"),
    ((np.array([0.0, 0.5, 1.0]), np.ones(3, bool)), "boolean"),
])
def test_bad_pairs_are_refused_with_what_is_expected(bad, message):
    with pytest.raises(ValueError, match=message):
        error_consistency(*bad, n_boot=1000)


def test_bad_matrices_are_refused_with_what_is_expected():
    with pytest.raises(ValueError, match="M >= 2 models"):
        error_consistency_matrix(np.ones((1, 5), bool), n_boot=1000)
    with pytest.raises(ValueError, match="3 distinct names"):
        error_consistency_matrix(np.ones((3, 5), bool), models=["a", "b"], n_boot=1000)
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        error_consistency_matrix(np.ones((3, 5), bool), counts=np.ones((10, 4)))


def simulate_pair(rng: np.random.Generator, n: int, p1: float, p2: float, kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """N examples of two models whose population accuracies are p1, p2 and population kappa is ``kappa``.

    From kappa = 2 (p11 - p1 p2) / (p1 + p2 - 2 p1 p2): p11 = p1 p2 + kappa (p1 + p2 - 2 p1 p2) / 2.
    """
    p11 = p1 * p2 + kappa * (p1 + p2 - 2 * p1 * p2) / 2
    cells = np.array([p11, p1 - p11, p2 - p11, 1 - p1 - p2 + p11])  # (right, right), (right, wrong), (wrong, right), (wrong, wrong)
    assert np.all(cells >= 0)
    cell = rng.choice(4, size=n, p=cells)
    return np.isin(cell, (0, 1)), np.isin(cell, (0, 2))


COVERAGE_DATASETS = 300


def test_the_paired_interval_covers_the_population_kappa():
    """300 simulated benchmarks of 500 examples, accuracies 0.75 and 0.65, population kappa 0.3:
    the 95% percentile interval covers 0.3 in 91-99% of them (binomial sd at 300 is 1.3 points)."""
    rng = np.random.default_rng(20261202)
    truth = 0.3
    hits = []
    for dataset in range(COVERAGE_DATASETS):
        a, b = simulate_pair(rng, 500, 0.75, 0.65, truth)
        found = error_consistency(a, b, n_boot=1000, seed=dataset)
        hits.append(found.kappa.ci_low <= truth <= found.kappa.ci_high)
    coverage = float(np.mean(hits))
    print(f"error consistency CI coverage: {coverage:.3f} over {COVERAGE_DATASETS} datasets")
    assert 0.91 <= coverage <= 0.99
