"""Statistics shared by every stage: rank correlations (plain and weighted), bootstrap intervals,
permutation tests and multiplicity corrections.

Interval methods, and why each is used where it is (README "Statistics" has the simulations):

- *Percentile* intervals for means over many test examples (accuracies, paired differences of
  accuracies, RSA over stimuli): their bootstrap distributions are close to normal, and percentile
  intervals on an accuracy and on a paired difference covered 96% and 94% in
  ``tests/test_calibration.py``.
- *BCa* (bias-corrected and accelerated; Efron 1987) for rank correlations over a population of
  models, where few units make the statistic skewed and bounded; the acceleration comes from a
  jackknife over the units.
"""

from __future__ import annotations

import itertools
import math
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

CI_LEVEL = 0.95
# Below this many resamples the 2.5% and 97.5% percentiles rest on fewer than 25 replicates each,
# and a 95% interval moves visibly from one seed to the next.
MIN_STABLE_BOOTSTRAP = 1000
PERMUTATIONS = 10_000
# Row chunks keep (rows x pairs) sign matrices to about this many entries.
_CHUNK_ENTRIES = 4_000_000
# Above this many units a row's Kendall tau goes through scipy's O(M log M) routine, since the
# vectorised pairwise form costs O(M^2) per row (60 ms a row at 1,500 models).
LARGE_ZOO = 100


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


def _row_chunks(rows: int, width: int) -> list[slice]:
    step = max(1, _CHUNK_ENTRIES // max(width, 1))
    return [slice(start, start + step) for start in range(0, rows, step)]


def kendall_tau_rows(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Kendall tau-b of each row of ``a`` with the same row of ``b`` (NaN for a constant row).

    tau-b = sum over pairs of sign(da) * sign(db) / sqrt(sum sign(da)^2 * sum sign(db)^2), which is
    scipy's tau-b. With ``weights`` (one per column and row), pair (i, j) counts w_i * w_j: the tau-b
    of a weighted sample, e.g. a bootstrap resample (integer counts; duplicate draws of one unit form
    no pair) or a Bayesian-bootstrap one (Dirichlet weights).
    """
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    integer = weights is None or bool(np.all(weights == np.round(weights)))
    if a.shape[1] > LARGE_ZOO and integer:
        # Integer weights are a resample with repeats: scipy's tau-b of it equals the weighted form.
        out = np.empty(a.shape[0])
        for row in range(a.shape[0]):
            repeats = None if weights is None else weights[row].astype(int)
            x, y = (a[row], b[row]) if repeats is None else (np.repeat(a[row], repeats), np.repeat(b[row], repeats))
            out[row] = kendall_tau(x, y)
        return out
    i, j = np.triu_indices(a.shape[1], k=1)
    out = np.full(a.shape[0], np.nan)
    for rows in _row_chunks(a.shape[0], len(i)):
        sign_a = np.sign(a[rows, i] - a[rows, j])
        sign_b = np.sign(b[rows, i] - b[rows, j])
        pair = 1.0 if weights is None else weights[rows, i] * weights[rows, j]
        numerator = (pair * sign_a * sign_b).sum(axis=1)
        denominator = np.sqrt((pair * sign_a ** 2).sum(axis=1) * (pair * sign_b ** 2).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[rows] = np.where(denominator > 0, numerator / denominator, np.nan)
    return out


def _weighted_pearson_rows(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    w = np.ones_like(a) if weights is None else weights
    w = w / w.sum(axis=1, keepdims=True)
    # A variance at rounding level (all weight on tied values) is 0: no correlation, not noise.
    floor_a, floor_b = 1e-24 * (1 + (w * a ** 2).sum(axis=1)), 1e-24 * (1 + (w * b ** 2).sum(axis=1))
    a = a - (w * a).sum(axis=1, keepdims=True)
    b = b - (w * b).sum(axis=1, keepdims=True)
    var_a, var_b = (w * a ** 2).sum(axis=1), (w * b ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((var_a > floor_a) & (var_b > floor_b), (w * a * b).sum(axis=1) / np.sqrt(var_a * var_b), np.nan)


def weighted_grades(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mid-distribution grades F(x_i) = W(x < x_i) + W(x = x_i) / 2 of each row's weighted sample.

    With equal weights these are (midrank - 1/2) / M, so their Pearson correlation is Spearman's rho.
    """
    order = np.argsort(x, axis=1, kind="stable")
    cumulative = np.concatenate([np.zeros((len(x), 1)), np.cumsum(np.take_along_axis(weights, order, 1), 1)], 1)
    low = stats.rankdata(x, method="min", axis=1).astype(int)  # 1-based position of the first tie
    high = stats.rankdata(x, method="max", axis=1).astype(int)
    below = np.take_along_axis(cumulative, low - 1, 1)
    tied = np.take_along_axis(cumulative, high, 1) - below
    return (below + tied / 2) / cumulative[:, -1:]


def spearman_rho_rows(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Spearman rho of each row of ``a`` with the same row of ``b`` (NaN for a constant row).

    With ``weights``, the rho of the weighted sample: the weighted Pearson correlation of the
    weighted mid-distribution grades (for integer weights, rho of the sample with each unit repeated).
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if weights is None:
        return _weighted_pearson_rows(stats.rankdata(a, axis=1), stats.rankdata(b, axis=1), None)
    return _weighted_pearson_rows(weighted_grades(a, weights), weighted_grades(b, weights), weights)


def pearson_r_rows(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Pearson r of each row of ``a`` with the same row of ``b`` (NaN for a constant row), optionally weighted."""
    return _weighted_pearson_rows(np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float)), weights)


RANK_STATISTICS = {"kendall_tau": kendall_tau_rows, "spearman_rho": spearman_rho_rows}
CORRELATIONS = {**RANK_STATISTICS, "pearson_r": pearson_r_rows}


def leave_one_out(statistic: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The jackknife values of a correlation: the statistic with each unit left out in turn.

    Args:
        statistic: ``"kendall_tau"``, ``"spearman_rho"`` or ``"pearson_r"``.
        a, b: (M,) scores of M units.

    Returns:
        (M,) values; entry k leaves unit k out.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    m = len(a)
    if statistic == "kendall_tau":
        # One M x M sign matrix gives every leave-one-out tau-b from row sums, in O(M^2).
        sign_a, sign_b = np.sign(a[:, None] - a[None]), np.sign(b[:, None] - b[None])
        concordance, ties_a, ties_b = sign_a * sign_b, sign_a ** 2, sign_b ** 2
        numerator = concordance.sum() / 2 - concordance.sum(axis=1)
        denominator = np.sqrt((ties_a.sum() / 2 - ties_a.sum(axis=1)) * (ties_b.sum() / 2 - ties_b.sum(axis=1)))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, numerator / denominator, np.nan)
    keep = ~np.eye(m, dtype=bool)
    rows_a, rows_b = a[None].repeat(m, 0)[keep].reshape(m, m - 1), b[None].repeat(m, 0)[keep].reshape(m, m - 1)
    function = {"spearman_rho": spearman_rho_rows, "pearson_r": pearson_r_rows}[statistic]
    return function(rows_a, rows_b)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with an interval, how the interval was made, and what it resampled.

    ``method`` names the interval (``percentile``, ``BCa``, ``t``) or, for a p-value, the test;
    ``resampled`` names the levels the bootstrap drew, outermost first (empty without an interval).
    """

    value: float
    ci_low: float
    ci_high: float
    n: int
    method: str = ""
    resampled: str = ""

    def as_row(self, **keys: Any) -> dict[str, Any]:
        """One tidy score row: ``keys`` (benchmark, model, layer, metric, ...), then this estimate's fields;
        the one place a score row is built, so every table has the same columns in the same order."""
        return {**keys, "value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n,
                "method": self.method, "resampled": self.resampled}


def no_interval(value: float, n: int, method: str = "") -> Estimate:
    """An estimate that carries no interval (a rank, a count, a p-value)."""
    return Estimate(float(value), float("nan"), float("nan"), int(n), method, "")


def percentile_interval(samples: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap replicates (NaN replicates are dropped)."""
    samples = np.asarray(samples, dtype=float)
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bca_interval(samples: np.ndarray, point: float, jackknife: np.ndarray,
                 level: float = CI_LEVEL) -> tuple[float, float]:
    """Bias-corrected and accelerated bootstrap interval (Efron 1987; Efron & Tibshirani 1993, ch. 14).

    Args:
        samples: bootstrap replicates of the statistic (NaN ones are dropped).
        point: the statistic on the original data.
        jackknife: the statistic with each unit left out (:func:`leave_one_out`), for the acceleration.
        level: coverage.

    Returns:
        (low, high). The bias correction counts replicates equal to ``point`` as half below, which
        matters for rank statistics with few units (their replicates take few distinct values).
    """
    samples = np.asarray(samples, dtype=float)
    finite = samples[np.isfinite(samples)]
    if finite.size == 0 or not np.isfinite(point):
        return float("nan"), float("nan")
    if np.ptp(finite) == 0:
        return float(finite[0]), float(finite[0])
    below = (np.sum(finite < point) + 0.5 * np.sum(finite == point)) / finite.size
    bias = stats.norm.ppf(np.clip(below, 0.5 / finite.size, 1 - 0.5 / finite.size))
    jack = np.asarray(jackknife, dtype=float)
    jack = jack[np.isfinite(jack)]
    spread = jack.mean() - jack if jack.size else np.zeros(1)
    scale = 6 * np.sum(spread ** 2) ** 1.5
    acceleration = float(np.sum(spread ** 3) / scale) if scale > 0 else 0.0
    z = stats.norm.ppf([(1 - level) / 2, (1 + level) / 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        adjusted = stats.norm.cdf(bias + (bias + z) / (1 - acceleration * (bias + z)))
    adjusted = np.clip(np.nan_to_num(adjusted, nan=0.5), 0.0, 1.0)
    low, high = np.percentile(finite, 100 * adjusted)
    return float(low), float(high)


def warn_if_few_resamples(n_boot: int, what: str = "n_bootstrap") -> None:
    """Warn when too few resamples make a 95% interval unstable (below :data:`MIN_STABLE_BOOTSTRAP`)."""
    if 0 < n_boot < MIN_STABLE_BOOTSTRAP:
        warnings.warn(f"{what}={n_boot} is below {MIN_STABLE_BOOTSTRAP}: each end of a 95% interval then rests on "
                      f"fewer than {int(0.025 * MIN_STABLE_BOOTSTRAP)} replicates and moves with the seed; use at least "
                      f"{MIN_STABLE_BOOTSTRAP} for results you report", UserWarning, stacklevel=2)


def stream_seed(seed: int, *names: str) -> list[int]:
    """Entropy for ``np.random.default_rng`` from a seed and names, stable across runs and platforms.

    Each named stream (a benchmark's test set, a unit's seeds) draws the same resamples whatever
    else the analysis holds, so adding a benchmark does not change another one's interval.
    """
    return [int(seed), *(zlib.crc32(name.encode()) for name in names)]


def bootstrap_counts(n: int, *, n_boot: int, seed: int | list[int]) -> np.ndarray:
    """How often each of ``n`` examples is drawn in each of ``n_boot`` resamples with replacement.

    Sharing one count matrix across models and layers keeps their intervals paired and makes
    each interval one matrix product instead of a fresh resample.

    Returns:
        float (n_boot, n) array whose rows sum to ``n``.
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


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
    low, high = percentile_interval(counts @ correct / len(correct), level)
    return Estimate(float(correct.mean()), low, high, len(correct), "percentile", "test examples")


def bootstrap_pvalue(differences: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the difference is 0", from replicates of a paired difference.

    Twice the smaller tail beyond 0, with the observed data counted as one replicate on each side
    ((k + 1) / (B + 1)), so p is never 0; it inverts the percentile interval (p < 0.05 exactly when
    the 95% percentile interval excludes 0, up to the +1).
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan")
    tail = min(np.sum(d <= 0), np.sum(d >= 0))
    return float(min(1.0, 2 * (tail + 1) / (d.size + 1)))


def permutation_method(m: int, n_perm: int = PERMUTATIONS) -> str:
    """How :func:`permutation_pvalue` tests m units: exact enumeration when m! <= n_perm, else Monte Carlo."""
    if math.factorial(m) <= n_perm:
        return f"permutation, exact ({math.factorial(m)} orders of {m} units)"
    return f"permutation, Monte Carlo ({n_perm} orders of {m} units, p = (k+1)/(n+1))"


def permutation_pvalue(a: np.ndarray, b: np.ndarray, *, statistic: str = "kendall_tau", n_perm: int = PERMUTATIONS,
                       seed: int = 0) -> float:
    """Two-sided permutation p-value of a rank correlation: how often shuffled pairings match or beat it.

    Enumeration is exact when m! <= ``n_perm`` (7 units or fewer at the default 10,000): p is the
    share of all m! orders, the observed one included, whose |statistic| reaches the observed one.
    Otherwise ``n_perm`` random orders are drawn and p = (k + 1) / (n_perm + 1) (Phipson & Smyth
    2010), never 0. With m units no p can be below 2 / m! (0.083 for 4 units).

    Args:
        a: scores of the units on benchmark A (one per architecture: average seeds first).
        b: the same units' scores on benchmark B.
        statistic: ``"kendall_tau"`` or ``"spearman_rho"``.
        n_perm: permutation budget.
        seed: seed of the draws.

    Returns:
        p in (0, 1]; NaN when either score vector is constant.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rows = RANK_STATISTICS[statistic]
    observed = rows(a[None], b[None])[0]
    if not np.isfinite(observed):
        return float("nan")
    m = len(a)
    exact = math.factorial(m) <= n_perm
    if exact:
        orders = np.array(list(itertools.permutations(range(m))))
    else:
        rng = np.random.default_rng(seed)
        orders = np.argsort(rng.random((n_perm, m)), axis=1)
    null = rows(np.broadcast_to(a, (len(orders), m)), b[orders])
    extreme = int(np.sum(np.abs(null) >= abs(observed) - 1e-12))
    return extreme / len(orders) if exact else (extreme + 1) / (len(orders) + 1)


# ----------------------------------------------------------------------------- multiplicity
def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error). NaN entries are not tests and stay NaN.

    The i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) p_(j)).
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    if tested.size:
        order = tested[np.argsort(p[tested], kind="stable")]
        m = order.size
        out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), by scipy; NaN entries stay NaN."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.isfinite(p)
    if tested.any():
        out[tested] = stats.false_discovery_control(p[tested], method="bh")
    return out


# ----------------------------------------------------------------------------- other tests
def cliffs_delta(x: np.ndarray, y: np.ndarray) -> float:
    """Cliff's delta: P(x > y) - P(x < y) over all pairs, in [-1, 1]."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size == 0 or y.size == 0:
        return float("nan")
    return float(np.sign(x[:, None] - y[None, :]).mean())


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
