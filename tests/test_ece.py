"""ECE with equal-mass bins: a hand computation, re-binned replicates, its finite-N bias, and CI coverage."""
from __future__ import annotations

import numpy as np
import pytest

from zooprobe.analysis import stats
from zooprobe.analysis.calibration import (BINNING, calibrated_noise_floor, calibration_error, ece_from_confidence,
                                           expected_calibration_error)

CONF = np.array([0.9, 0.6, 0.8, 0.55, 0.95, 0.7, 0.65])
HIT = np.array([1, 0, 1, 1, 1, 0, 1], dtype=bool)


def test_ece_equals_a_hand_computation():
    # Sorted: 0.55 (right), 0.6 (wrong), 0.65 (right) | 0.7 (wrong), 0.8 (right) | 0.9, 0.95 (right).
    # Three equal-mass bins of 7 examples: sizes 3, 2, 2.
    # |acc - conf| * size: 3 |2/3 - 0.6| = 0.2; 2 |1/2 - 0.75| = 0.5; 2 |1 - 0.925| = 0.15; ECE = 0.85 / 7.
    assert ece_from_confidence(CONF, HIT, n_bins=3) == pytest.approx(0.85 / 7)
    # From softmax outputs: class 0 gets the confidence, the label is 0 when the prediction is right.
    probabilities = np.stack([CONF, 1 - CONF], axis=1)
    labels = np.where(HIT, 0, 1)
    found = expected_calibration_error(probabilities, labels, n_bins=3, n_boot=1000)
    assert found.ece.value == pytest.approx(0.85 / 7)
    np.testing.assert_array_equal(found.bin_count, [3, 2, 2])
    np.testing.assert_allclose(found.bin_confidence, [0.6, 0.75, 0.925])
    np.testing.assert_allclose(found.bin_accuracy, [2 / 3, 0.5, 1.0])
    assert found.binning == "3 equal-mass bins"
    assert found.ece.resampled == "test examples" and found.ece.method.startswith("percentile")


def test_the_default_is_fifteen_equal_mass_bins_and_says_so():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, 1000)
    found = calibration_error(conf, rng.random(1000) < conf, n_boot=1000)
    assert found.binning == BINNING == "15 equal-mass bins"
    assert len(found.bin_count) == 15 and set(found.bin_count) == {66, 67}  # 1000 = 10 x 67 + 5 x 66


def test_each_replicate_is_the_ece_of_the_expanded_resample_re_binned():
    rng = np.random.default_rng(1)
    n = 101
    conf = np.round(rng.uniform(0.4, 1.0, n), 2)  # rounded: many ties across bin edges
    hit = rng.random(n) < conf
    counts = stats.bootstrap_counts(n, n_boot=40, seed=3)
    by_hand = [ece_from_confidence(np.repeat(conf, row), np.repeat(hit, row), n_bins=15)
               for row in counts.astype(int)]
    found = calibration_error(conf, hit, counts=counts)
    low, high = stats.percentile_interval(np.array(by_hand))
    assert (found.ece.ci_low, found.ece.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert len(set(np.round(by_hand, 12))) > 30  # the replicates differ: the check compares real spreads


def expected_calibrated_ece(conf: np.ndarray, n_bins: int = 15) -> float:
    """Normal approximation to the mean ECE of a perfectly calibrated model: in each bin, the sum of
    (hit - conf) has mean 0 and variance sum conf (1 - conf), so E|sum| = sqrt(2/pi) sqrt(that)."""
    conf = np.sort(conf)
    return float(sum(np.sqrt(2 / np.pi) * np.sqrt(np.sum(b * (1 - b))) for b in np.array_split(conf, n_bins)) / len(conf))


def test_a_perfectly_calibrated_model_scores_its_finite_n_bias_and_near_zero_at_large_n():
    """Correctness drawn as Bernoulli(confidence), confidences U(0.5, 1): 200 datasets of 1,000 examples.
    The mean ECE is the finite-N bias (within 10% of its normal approximation), not 0; at 100,000 examples
    it falls below 0.01."""
    rng = np.random.default_rng(2)
    eces, floors = [], []
    for dataset in range(200):
        conf = rng.uniform(0.5, 1.0, 1000)
        # Only the point ECE is the object here (the interval's coverage is the next test's): no bootstrap.
        eces.append(ece_from_confidence(conf, rng.random(1000) < conf))
        if dataset < 5:
            floors.append(calibrated_noise_floor(conf, n_sim=1000, seed=dataset).value)
    approximation = expected_calibrated_ece(rng.uniform(0.5, 1.0, 1000))
    print(f"perfectly calibrated, N=1000: mean ECE {np.mean(eces):.4f} (normal approximation {approximation:.4f}, "
          f"noise floor {np.mean(floors):.4f})")
    assert np.mean(eces) == pytest.approx(approximation, rel=0.10)
    assert np.mean(floors) == pytest.approx(approximation, rel=0.10)
    conf = rng.uniform(0.5, 1.0, 100_000)
    large = ece_from_confidence(conf, rng.random(100_000) < conf)
    print(f"perfectly calibrated, N=100000: ECE {large:.4f}")
    assert large < 0.01


def test_the_interval_covers_the_ece_of_a_miscalibrated_model():
    """Overconfident by 0.1 everywhere (accuracy = confidence - 0.1, confidences U(0.6, 1)): the population
    ECE is 0.1 under any binning. 200 datasets of 1,000 examples: the interval covers 0.1 in 90-99%
    (binomial sd at 200 is 1.5 points)."""
    rng = np.random.default_rng(3)
    hits = []
    for dataset in range(200):
        conf = rng.uniform(0.6, 1.0, 1000)
        found = calibration_error(conf, rng.random(1000) < conf - 0.1, n_boot=1000, seed=dataset)
        hits.append(found.ece.ci_low <= 0.1 <= found.ece.ci_high)
    coverage = float(np.mean(hits))
    print(f"ECE CI coverage, overconfident by 0.1: {coverage:.3f} over 200 datasets")
    assert 0.90 <= coverage <= 0.99


@pytest.mark.parametrize("probabilities, labels, message", [
    (np.full((20, 3), 0.5), np.zeros(20, int), "sum to 1"),
    (np.full((20, 3), 1 / 3), np.zeros(19, int), "20 integer classes"),
    (np.full((20, 3), 1 / 3), np.full(20, 3), r"0 \.\. 2"),
    (np.full((20, 3), 1 / 3), np.zeros(20), "integer classes"),
    (np.full(20, 0.5), np.zeros(20, int), r"\(N, C\)"),
    (np.tile([2.0, -1.0], (20, 1)), np.zeros(20, int), "softmax"),
    (np.full((10, 2), 0.5), np.zeros(10, int), "cannot fill 15"),
])
def test_bad_inputs_are_refused_with_what_is_expected(probabilities, labels, message):
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(probabilities, labels, n_boot=1000)


def test_bad_confidences_and_counts_are_refused():
    with pytest.raises(ValueError, match="same examples"):
        ece_from_confidence(CONF, HIT[:-1], n_bins=3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ece_from_confidence(CONF + 0.5, HIT, n_bins=3)
    with pytest.raises(ValueError, match=r"\(B, 7\)"):
        calibration_error(CONF, HIT, n_bins=3, counts=np.ones((5, 6)))
