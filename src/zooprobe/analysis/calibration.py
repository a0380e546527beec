"""Expected calibration error (ECE) of a classifier's max-softmax confidence, with equal-mass bins.

The N test examples are sorted by confidence (the largest predicted probability; ties keep their
input order) and split into :data:`ECE_BINS` bins of as equal size as N allows (sizes differ by at
most one, larger bins first, as ``numpy.array_split``). With n_b examples in bin b, their mean
confidence conf_b and their accuracy acc_b,

    ECE = sum_b (n_b / N) |acc_b - conf_b|.

Equal-mass bins (not equal-width) keep every bin populated whatever the confidence distribution;
the result says so (:data:`BINNING`).

The interval is a percentile bootstrap over test examples that **re-bins each replicate**: the
resample, sorted by confidence, is split into equal-mass bins again. It is computed from the
(B, N) count matrix without expanding resamples: an example drawn c times occupies c consecutive
places of the sorted resample (the examples keep one global order by (confidence, index)), so each
bin's sums are differences of the cumulative sums at the bin edges, an example straddling an edge
split between the two bins, exactly as in the expanded resample.

ECE is biased upward at finite N: each bin's |acc_b - conf_b| is at least its sampling noise, of
order sqrt(acc (1 - acc) / n_b), so a perfectly calibrated model scores above 0 (about 0.04 at
N = 1,000 and confidences around 0.75; ``tests/test_ece.py`` measures it), and an interval for a
well-calibrated model need not cover 0. Compare ECEs at equal N, and read small ones with
:func:`calibrated_noise_floor` beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zooprobe.analysis import stats

ECE_BINS = 15
BINNING = f"{ECE_BINS} equal-mass bins"
METHOD = "percentile (each replicate re-binned)"
RESAMPLED = "test examples"
# How far a row of predicted probabilities may sum from 1 (float32 softmax outputs round to ~1e-6 each).
SUM_TOLERANCE = 1e-3
# Simulations drawn at once by calibrated_noise_floor (a block is this many x N booleans).
SIMULATION_BLOCK = 100
# Bootstrap replicates re-binned at once (each holds a few N-long float rows).
REPLICATE_BLOCK = 128


@dataclass(frozen=True)
class CalibrationError:
    """A model's ECE on one evaluation set, with its interval and its reliability diagram.

    Attributes:
        ece: the estimate; its interval resampled test examples and re-binned each replicate.
        binning: how the bins were made, e.g. ``"15 equal-mass bins"``.
        bin_confidence: (bins,) mean confidence of each bin, lowest confidence first.
        bin_accuracy: (bins,) accuracy of each bin.
        bin_count: (bins,) examples in each bin.
    """

    ece: stats.Estimate
    binning: str
    bin_confidence: np.ndarray
    bin_accuracy: np.ndarray
    bin_count: np.ndarray


def _bin_edges(n: int, n_bins: int) -> np.ndarray:
    """The n_bins + 1 places (0 .. n) where the equal-mass bins of n sorted examples start and end."""
    sizes = np.full(n_bins, n // n_bins)
    sizes[: n % n_bins] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def _check_bins(n: int, n_bins: int) -> None:
    if n_bins < 1:
        raise ValueError(f"n_bins must be a positive number of bins (the default is {ECE_BINS}), got {n_bins}")
    if n < n_bins:
        raise ValueError(f"{n} examples cannot fill {n_bins} equal-mass bins; give at least {n_bins} examples "
                         "or fewer bins")


def confidence_and_correct(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max-softmax confidence and correctness of the argmax prediction.

    Args:
        probabilities: (N, C) predicted class probabilities, each row summing to 1 within :data:`SUM_TOLERANCE`.
        labels: (N,) integer true classes in 0 .. C-1.

    Returns:
        (confidence, correct): float (N,) and bool (N,).

    Raises:
        ValueError: for a non-(N, C) array, values outside [0, 1], rows not summing to 1 (logits
            given instead of probabilities: apply a softmax first), or labels of the wrong length or range.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be an (N, C) array with C >= 2 classes, got shape {p.shape}")
    if y.shape != (p.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be {p.shape[0]} integer classes, one per row of probabilities, "
                         f"got shape {y.shape} and dtype {y.dtype}")
    if np.any((y < 0) | (y >= p.shape[1])):
        raise ValueError(f"labels must lie in 0 .. {p.shape[1] - 1}, got {int(y.min())} .. {int(y.max())}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError("probabilities must be finite and in [0, 1]; for logits apply a softmax first")
    worst = float(np.max(np.abs(p.sum(axis=1) - 1))) if len(p) else 0.0
    if worst > SUM_TOLERANCE:
        raise ValueError(f"each row of probabilities must sum to 1 (within {SUM_TOLERANCE}); the worst row is off by "
                         f"{worst:.3g}. Give softmax probabilities, not logits or scores")
    return p.max(axis=1), p.argmax(axis=1) == y


def _check_confidence(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    conf, hit = np.asarray(confidence, dtype=np.float64), np.asarray(correct)
    if conf.ndim != 1 or hit.shape != conf.shape:
        raise ValueError(f"confidence and correct must be 1-D over the same examples, got shapes {conf.shape} and {hit.shape}")
    if not np.all(np.isfinite(conf)) or np.any(conf < 0) or np.any(conf > 1):
        raise ValueError("confidence must be probabilities in [0, 1] (the largest softmax output)")
    if hit.dtype != bool:
        if not np.all(np.isin(hit, (0, 1))):
            raise ValueError("correct must be boolean (or 0/1): whether each prediction was right")
        hit = hit.astype(bool)
    return conf, hit


def ece_from_confidence(confidence: np.ndarray, correct: np.ndarray, *, n_bins: int = ECE_BINS) -> float:
    """ECE with ``n_bins`` equal-mass bins (module docstring), without an interval.

    Args:
        confidence: (N,) confidence of each prediction, in [0, 1].
        correct: (N,) whether each prediction was right.
        n_bins: bins.

    Returns:
        The ECE in [0, 1].
    """
    conf, hit = _check_confidence(confidence, correct)
    _check_bins(len(conf), n_bins)
    order = np.argsort(conf, kind="stable")
    edges = _bin_edges(len(conf), n_bins)
    gap = np.add.reduceat(hit[order].astype(float) - conf[order], edges[:-1])
    return float(np.abs(gap).sum() / len(conf))


def _replicate_ece(conf_sorted: np.ndarray, hit_sorted: np.ndarray, counts_sorted: np.ndarray, n_bins: int) -> np.ndarray:
    """The ECE of each resample (rows of counts, columns in the sorted order), re-binned in each."""
    total = counts_sorted.sum(axis=1)
    if np.any(total != total[0]):
        raise ValueError("every bootstrap resample must draw the same number of examples")
    m = int(round(total[0]))
    edges = _bin_edges(m, n_bins).astype(float)
    value = hit_sorted.astype(float) - conf_sorted  # what each example adds to its bin's (acc - conf) sum
    out = np.empty(len(counts_sorted))
    last = len(value) - 1
    for block in range(0, len(counts_sorted), REPLICATE_BLOCK):
        weights = counts_sorted[block:block + REPLICATE_BLOCK]
        zero = np.zeros((len(weights), 1))
        places = np.hstack([zero, np.cumsum(weights, axis=1)])          # where each example's copies start
        sums = np.hstack([zero, np.cumsum(weights * value, axis=1)])
        rows = np.arange(len(weights))[:, None]
        # The example at place t: the last one starting at or before t (places are sorted in each row).
        k = np.minimum(np.stack([(places <= edge).sum(axis=1) - 1 for edge in edges], axis=1), last)
        # F(t): the sum over the first t places of the expanded, sorted resample (linear inside an example).
        cumulative = sums[rows, k] + (edges - places[rows, k]) * value[k]
        out[block:block + REPLICATE_BLOCK] = np.abs(np.diff(cumulative, axis=1)).sum(axis=1) / m
    return out


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, *, n_bins: int = ECE_BINS,
                               n_boot: int = 1000, seed: int | list[int] = 0, level: float = stats.CI_LEVEL,
                               counts: np.ndarray | None = None) -> CalibrationError:
    """ECE of a model's max-softmax confidence on one evaluation set, with a bootstrap CI over test examples.

    Args:
        probabilities: (N, C) softmax outputs of the model's own head.
        labels: (N,) true classes.
        n_bins: equal-mass bins (:data:`ECE_BINS` = 15 by default, as issue 22 asks).
        n_boot: bootstrap resamples (ignored when ``counts`` is given).
        seed: seed of the resampling (ignored when ``counts`` is given).
        level: interval coverage.
        counts: a (B, N) :func:`stats.bootstrap_counts` matrix, to share resamples with the accuracy's interval.

    Returns:
        :class:`CalibrationError`: the estimate (percentile interval, every replicate re-binned), the
        binning, and the bins of the full data.

    Raises:
        ValueError: as :func:`confidence_and_correct`, for fewer examples than bins, or a count
            matrix of the wrong shape.
    """
    conf, hit = confidence_and_correct(probabilities, labels)
    return calibration_error(conf, hit, n_bins=n_bins, n_boot=n_boot, seed=seed, level=level, counts=counts)


def calibration_error(confidence: np.ndarray, correct: np.ndarray, *, n_bins: int = ECE_BINS, n_boot: int = 1000,
                      seed: int | list[int] = 0, level: float = stats.CI_LEVEL,
                      counts: np.ndarray | None = None) -> CalibrationError:
    """:func:`expected_calibration_error` from confidences and correctness (e.g. stored predictions).

    Args:
        confidence: (N,) confidence of each prediction, in [0, 1].
        correct: (N,) whether each prediction was right.
        n_bins, n_boot, seed, level, counts: as :func:`expected_calibration_error`.

    Returns:
        :class:`CalibrationError`.
    """
    conf, hit = _check_confidence(confidence, correct)
    n = len(conf)
    _check_bins(n, n_bins)
    if counts is None:
        if n_boot < 1:
            raise ValueError(f"n_boot must be a positive number of bootstrap resamples, got {n_boot}")
        stats.warn_if_few_resamples(n_boot)
        counts = stats.bootstrap_counts(n, n_boot=n_boot, seed=seed)
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or counts.shape[1] != n:
        raise ValueError(f"counts must be a (B, {n}) bootstrap count matrix for these {n} examples, got {counts.shape}")
    order = np.argsort(conf, kind="stable")
    edges = _bin_edges(n, n_bins)
    count = np.diff(edges)
    bin_conf = np.add.reduceat(conf[order], edges[:-1]) / count
    bin_acc = np.add.reduceat(hit[order].astype(float), edges[:-1]) / count
    value = float(np.sum(count * np.abs(bin_acc - bin_conf)) / n)
    low, high = stats.percentile_interval(_replicate_ece(conf[order], hit[order], counts[:, order], n_bins), level)
    binning = BINNING if n_bins == ECE_BINS else f"{n_bins} equal-mass bins"
    return CalibrationError(stats.Estimate(value, low, high, n, METHOD, RESAMPLED), binning, bin_conf, bin_acc, count)


def calibrated_noise_floor(confidence: np.ndarray, *, n_bins: int = ECE_BINS, n_sim: int = 1000,
                           seed: int = 0) -> stats.Estimate:
    """The ECE a *perfectly calibrated* model with these confidences would score, by simulation.

    Each simulation draws correctness as Bernoulli(confidence) for every example and computes the
    ECE; the mean is the finite-N bias of ECE at this N and confidence distribution, the interval
    the central 95% of the simulated ECEs. An observed ECE inside it is no evidence of miscalibration.

    Args:
        confidence: (N,) the model's confidences.
        n_bins: bins, as used for the observed ECE.
        n_sim: simulations.
        seed: seed of the draws.

    Returns:
        :class:`stats.Estimate` of the mean simulated ECE, method ``"simulated, perfectly calibrated"``.
    """
    conf, _ = _check_confidence(confidence, np.zeros(len(np.atleast_1d(confidence)), bool))
    _check_bins(len(conf), n_bins)
    if n_sim < 1:
        raise ValueError(f"n_sim must be a positive number of simulations, got {n_sim}")
    rng = np.random.default_rng(seed)
    order = np.argsort(conf, kind="stable")
    conf_sorted, edges = conf[order], _bin_edges(len(conf), n_bins)
    simulated = np.empty(n_sim)
    for start in range(0, n_sim, SIMULATION_BLOCK):
        rows = min(SIMULATION_BLOCK, n_sim - start)
        hits = rng.random((rows, len(conf))) < conf_sorted  # drawn in sorted order: the bins stay fixed
        gaps = np.add.reduceat(hits - conf_sorted, edges[:-1], axis=1)
        simulated[start:start + rows] = np.abs(gaps).sum(axis=1) / len(conf)
    low, high = stats.percentile_interval(simulated)
    return stats.Estimate(float(simulated.mean()), low, high, len(conf), "simulated, perfectly calibrated",
                          f"correctness drawn as Bernoulli(confidence), {n_sim} times")
