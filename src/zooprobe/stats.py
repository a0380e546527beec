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


def kendall_tau_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row of ``a`` with the same row of ``b`` (NaN for a constant row).

    tau-b = sum over pairs of sign(da) * sign(db) / sqrt(sum sign(da)^2 * sum sign(db)^2), which
    is scipy's tau-b, vectorised over bootstrap resamples.
    """
    i, j = np.triu_indices(a.shape[1], k=1)
    sign_a, sign_b = np.sign(a[:, i] - a[:, j]), np.sign(b[:, i] - b[:, j])
    denominator = np.sqrt((sign_a ** 2).sum(axis=1) * (sign_b ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (sign_a * sign_b).sum(axis=1) / denominator, np.nan)


def spearman_rho_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rho of each row of ``a`` with the same row of ``b`` (NaN for a constant row)."""
    rank_a, rank_b = stats.rankdata(a, axis=1), stats.rankdata(b, axis=1)
    rank_a -= rank_a.mean(axis=1, keepdims=True)
    rank_b -= rank_b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rank_a ** 2).sum(axis=1) * (rank_b ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rank_a * rank_b).sum(axis=1) / denominator, np.nan)


def pearson_r_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``a`` with the same row of ``b`` (NaN for a constant row)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a ** 2).sum(axis=1) * (b ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / denominator, np.nan)


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


def bootstrap_counts(n: int, *, n_boot: int, seed: int) -> np.ndarray:
    """How often each of ``n`` examples is drawn in each of ``n_boot`` resamples with replacement.

    Sharing one count matrix across models and layers keeps their intervals paired and makes
    each interval one matrix product instead of a fresh resample.

    Returns:
        float (n_boot, n) array whose rows sum to ``n``.
    """
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)


def bootstrap_accuracy(correct: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = CI_LEVEL,
                       counts: np.ndarray | None = None) -> Estimate:
    """Accuracy with a percentile bootstrap CI over examples.

    Args:
        correct: boolean (N,) array, one entry per test example.
        n_boot: bootstrap resamples (ignored when ``counts`` is given).
        seed: seed of the resampling (ignored when ``counts`` is given).
        level: interval coverage.
        counts: a :func:`bootstrap_counts` matrix for these N examples, to reuse resamples.

    Returns:
        :class:`Estimate` of the mean.
    """
    correct = np.asarray(correct, dtype=float)
    if counts is None:
        counts = bootstrap_counts(len(correct), n_boot=n_boot, seed=seed)
    low, high = _percentiles(counts @ correct / len(correct), level)
    return Estimate(float(correct.mean()), low, high, len(correct))


def bootstrap_rank_agreement(correct_a: np.ndarray, correct_b: np.ndarray, *, n_boot: int, seed: int,
                             level: float = CI_LEVEL, counts_a: np.ndarray | None = None,
                             counts_b: np.ndarray | None = None) -> dict[str, Estimate]:
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
        counts_a: a :func:`bootstrap_counts` matrix over A's examples, to share resamples across pairs.
        counts_b: likewise for B; both default to fresh draws seeded by ``seed``.

    Returns:
        ``{"kendall_tau": Estimate, "spearman_rho": Estimate}``; ``n`` is the number of models.
    """
    correct_a, correct_b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if correct_a.shape[0] != correct_b.shape[0]:
        raise ValueError(f"both benchmarks need the same models, got {correct_a.shape[0]} and {correct_b.shape[0]}")
    if counts_a is None:
        counts_a = bootstrap_counts(correct_a.shape[1], n_boot=n_boot, seed=seed)
    if counts_b is None:
        counts_b = bootstrap_counts(correct_b.shape[1], n_boot=n_boot, seed=seed + 1)
    # (n_boot, models): every model's accuracy in every resample.
    boot_a = counts_a @ correct_a.T / correct_a.shape[1]
    boot_b = counts_b @ correct_b.T / correct_b.shape[1]
    return rank_agreement_from_replicates(correct_a.mean(axis=1), correct_b.mean(axis=1), boot_a, boot_b, level=level)


def rank_agreement_from_replicates(scores_a: np.ndarray, scores_b: np.ndarray, boot_a: np.ndarray,
                                   boot_b: np.ndarray, *, level: float = CI_LEVEL) -> dict[str, Estimate]:
    """Kendall tau-b and Spearman rho of two benchmarks' scores, with CIs from bootstrap replicates.

    Args:
        scores_a: (M,) every model's score on benchmark A (higher is better).
        scores_b: (M,) the same models on B.
        boot_a: (B, M) the scores recomputed on each resample of A's test data (the same resample
            for every model), e.g. accuracies or RSA over resampled stimuli.
        boot_b: (B, M) likewise for B.
        level: interval coverage.

    Returns:
        ``{"kendall_tau": Estimate, "spearman_rho": Estimate}``; ``n`` is the number of models.
    """
    taus, rhos = kendall_tau_rows(boot_a, boot_b), spearman_rho_rows(boot_a, boot_b)
    m = len(scores_a)
    return {
        "kendall_tau": Estimate(kendall_tau(scores_a, scores_b), *_percentiles(taus, level), m),
        "spearman_rho": Estimate(spearman_rho(scores_a, scores_b), *_percentiles(rhos, level), m),
    }


def percentile_interval(samples: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap replicates."""
    return _percentiles(np.asarray(samples, dtype=float), level)


def ood_retained_pct(acc_penultimate: float, acc_best: float) -> float:
    """% OOD performance retained (Harun et al. 2024): 100 * acc(penultimate) / acc(best layer)."""
    return float("nan") if acc_best <= 0 else 100.0 * acc_penultimate / acc_best


PERMUTATIONS = 10_000


def permutation_pvalue(a: np.ndarray, b: np.ndarray, *, statistic: str = "kendall_tau", n_perm: int = PERMUTATIONS,
                       seed: int = 0) -> float:
    """Two-sided permutation p-value of a rank correlation: how often shuffled pairings match or beat it.

    Every permutation of the models is enumerated when there are at most ``n_perm`` of them (8
    models or fewer); otherwise ``n_perm`` random ones are drawn, and the observed pairing counts
    as one of them, so p is never 0.

    Args:
        a: scores of the models on benchmark A.
        b: the same models' scores on benchmark B.
        statistic: ``"kendall_tau"`` or ``"spearman_rho"``.
        n_perm: permutations to draw when enumerating all is too many.
        seed: seed of the draws.

    Returns:
        p in (0, 1]; NaN when either score vector is constant.
    """
    import itertools
    import math

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rows = {"kendall_tau": kendall_tau_rows, "spearman_rho": spearman_rho_rows}[statistic]
    observed = rows(a[None], b[None])[0]
    if not np.isfinite(observed):
        return float("nan")
    m = len(a)
    if math.factorial(m) <= n_perm:
        orders = np.array(list(itertools.permutations(range(m))))
        exact = True
    else:
        rng = np.random.default_rng(seed)
        orders = np.array([rng.permutation(m) for _ in range(n_perm)])
        exact = False
    null = rows(np.broadcast_to(a, (len(orders), m)), b[orders])
    extreme = int(np.sum(np.abs(null) >= abs(observed) - 1e-12))
    return extreme / len(orders) if exact else (extreme + 1) / (len(orders) + 1)


def cliffs_delta(x: np.ndarray, y: np.ndarray) -> float:
    """Cliff's delta: P(x > y) - P(x < y) over all pairs, in [-1, 1]."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size == 0 or y.size == 0:
        return float("nan")
    diff = np.sign(x[:, None] - y[None, :])
    return float(diff.mean())


def paired_wilcoxon(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired samples (NaN when all differences are 0)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size == 0 or np.allclose(x, y):
        return float("nan")
    return float(stats.wilcoxon(x, y).pvalue)


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line y = slope * x + intercept, and R^2; NaN for fewer than 3 points or constant x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 3 or np.ptp(x) == 0:
        return float("nan"), float("nan"), float("nan")
    fit = stats.linregress(x, y)
    return float(fit.slope), float(fit.intercept), float(fit.rvalue ** 2)
