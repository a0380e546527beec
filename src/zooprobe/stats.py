"""Ranking statistics: ranks, rank correlations, and bootstrap intervals over test examples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

CI_LEVEL = 0.95


def ranks(scores: np.ndarray) -> np.ndarray:
    """Rank scores so that 1 is the best (highest); ties share their average rank."""
    return stats.rankdata(-np.asarray(scores, dtype=float), method="average")


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall tau-b of two score vectors; NaN when either is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.kendalltau(a, b, variant="b").statistic)


def spearman_rho(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rho of two score vectors; NaN when either is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a percentile bootstrap interval."""

    value: float
    ci_low: float
    ci_high: float
    n: int


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_accuracy(correct: np.ndarray, *, n_boot: int, seed: int, level: float = CI_LEVEL) -> Estimate:
    """Accuracy with a percentile bootstrap CI over examples.

    Args:
        correct: boolean (N,) array, one entry per test example.
        n_boot: bootstrap resamples.
        seed: seed of the resampling.
        level: interval coverage.

    Returns:
        :class:`Estimate` of the mean.
    """
    correct = np.asarray(correct, dtype=float)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(correct), size=(n_boot, len(correct)))
    low, high = _percentiles(correct[index].mean(axis=1), level)
    return Estimate(float(correct.mean()), low, high, len(correct))


def bootstrap_rank_agreement(correct_a: np.ndarray, correct_b: np.ndarray, *, n_boot: int, seed: int,
                             level: float = CI_LEVEL) -> dict[str, Estimate]:
    """Kendall tau-b and Spearman rho between two benchmarks' model rankings, with bootstrap CIs.

    Each resample draws the test examples of each benchmark with replacement (the same draw
    for every model, so the comparison stays paired), recomputes every model's accuracy and
    then the rank correlation. The interval therefore reflects test-set noise.

    Args:
        correct_a: boolean (M models, N_a examples) on benchmark A.
        correct_b: boolean (M models, N_b examples) on benchmark B, same model order.
        n_boot: bootstrap resamples.
        seed: seed of the resampling.
        level: interval coverage.

    Returns:
        ``{"kendall_tau": Estimate, "spearman_rho": Estimate}``; ``n`` is the number of models.
    """
    correct_a, correct_b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if correct_a.shape[0] != correct_b.shape[0]:
        raise ValueError(f"both benchmarks need the same models, got {correct_a.shape[0]} and {correct_b.shape[0]}")
    rng = np.random.default_rng(seed)
    acc_a, acc_b = correct_a.mean(axis=1), correct_b.mean(axis=1)
    taus, rhos = np.empty(n_boot), np.empty(n_boot)
    for i in range(n_boot):
        boot_a = correct_a[:, rng.integers(0, correct_a.shape[1], correct_a.shape[1])].mean(axis=1)
        boot_b = correct_b[:, rng.integers(0, correct_b.shape[1], correct_b.shape[1])].mean(axis=1)
        taus[i], rhos[i] = kendall_tau(boot_a, boot_b), spearman_rho(boot_a, boot_b)
    m = correct_a.shape[0]
    return {
        "kendall_tau": Estimate(kendall_tau(acc_a, acc_b), *_percentiles(taus, level), m),
        "spearman_rho": Estimate(spearman_rho(acc_a, acc_b), *_percentiles(rhos, level), m),
    }


def ood_retained_pct(acc_penultimate: float, acc_best: float) -> float:
    """% OOD performance retained (Harun et al. 2024): 100 * acc(penultimate) / acc(best layer)."""
    return float("nan") if acc_best <= 0 else 100.0 * acc_penultimate / acc_best
