"""Rankings across many benchmarks: Kendall's W, the Friedman test and the Nemenyi critical difference.

m benchmarks each rank the same k models (1 = best, ties share their mean rank).

- **Kendall's W** (coefficient of concordance, with the tie correction): 1 when every benchmark
  ranks the models alike, 0 when their rankings cancel out. ``W = 12 S / (m^2 (k^3 - k) - m sum_j T_j)``,
  S the squared deviations of the models' rank sums from their mean and ``T_j = sum (t^3 - t)`` over
  the tie groups of benchmark j. Its interval (``kendall_w_ci_over_models``) is a BCa bootstrap over
  **models**: each replicate draws k models with replacement and recomputes W of the benchmarks'
  scores of those models (a model drawn twice is tied with itself on every benchmark, as Spearman's
  rho treats it in :mod:`zooprobe.analysis.agreement`); the acceleration comes from a jackknife over
  models. It answers "would another zoo from the same population of models show this concordance
  among these benchmarks?". The benchmarks are held fixed: with a handful of them a resample over
  benchmarks has few distinct values, and a benchmark drawn twice agrees with itself.
  In 300 simulated zoos (5 benchmarks scoring normal skill plus noise of sd 0.8, no ties) the 95%
  interval covered the population W (from the population Spearman rho) in 94.0%, 96.0% and 94.3%
  of zoos of 10, 25 and 60 models (``tests/test_concordance.py``, ``w_coverage``).
- **Friedman test** with benchmarks as blocks and models as treatments: chi-square with k - 1
  degrees of freedom, tie-corrected as ``scipy.stats.friedmanchisquare`` (``chi2 = m (k - 1) W``).
- **Nemenyi critical difference** (Demšar 2006): two models' mean ranks differ significantly at
  ``alpha`` when they differ by at least ``CD = q_alpha sqrt(k (k + 1) / (6 m))``, with
  ``q_alpha = studentized_range.ppf(1 - alpha, k, inf) / sqrt(2)``. Nemenyi's test already controls
  the family-wise error over all k (k - 1) / 2 pairs; Demšar runs it after the Friedman test rejects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from zooprobe.analysis.stats import CI_LEVEL, Estimate, bca_interval, bootstrap_counts, stream_seed, weighted_grades

DEFAULT_ALPHA = 0.05
DEFAULT_BOOTSTRAP = 1000
MIN_BENCHMARKS = 2
MIN_MODELS = 3
# Replicate rows per chunk of the weighted W, to keep (rows, m, k) arrays near this many entries.
_CHUNK_ENTRIES = 4_000_000
MODELS_RESAMPLED = "models (drawn with replacement; benchmarks and their scores fixed)"


class ConcordanceError(ValueError):
    """The scores cannot be compared; the message says how to fix it."""


def benchmark_ranks(scores: np.ndarray) -> np.ndarray:
    """(m, k) ranks of k models within each of m benchmarks: 1 is the best (highest) score, ties share their mean."""
    return sps.rankdata(-np.asarray(scores, dtype=float), method="average", axis=1)


def tie_terms(ranks: np.ndarray) -> np.ndarray:
    """(m,) sum over the tie groups of each benchmark of t^3 - t (0 without ties)."""
    out = np.zeros(len(ranks))
    for j, row in enumerate(np.asarray(ranks)):
        _, sizes = np.unique(row, return_counts=True)
        out[j] = float(np.sum(sizes.astype(float) ** 3 - sizes))
    return out


def kendall_w(scores: np.ndarray) -> float:
    """Kendall's W of m benchmarks' scores of k models, tie-corrected; NaN when every benchmark ties every model.

    Args:
        scores: (m, k), higher is better.

    Returns:
        W in [0, 1].
    """
    ranks = benchmark_ranks(scores)
    m, k = ranks.shape
    spread = float(np.sum((ranks.sum(axis=0) - m * (k + 1) / 2) ** 2))
    denominator = m ** 2 * (k ** 3 - k) - m * tie_terms(ranks).sum()
    return 12 * spread / denominator if denominator > 0 else float("nan")


def weighted_kendall_w(scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Kendall's W of weighted samples of the models, one per row of ``weights``.

    For integer weights (bootstrap counts) this is W of the sample with model i repeated ``w_i``
    times (repeats tie): the tie-corrected W equals sum_i w_i (sum_j c_ij)^2 / (m sum_j sum_i w_i c_ij^2),
    with c_ij model i's weighted mid-distribution grade on benchmark j, centred.

    Args:
        scores: (m, k).
        weights: (B, k) non-negative weights.

    Returns:
        (B,) values; NaN where every benchmark ties every drawn model.
    """
    scores, weights = np.asarray(scores, dtype=float), np.atleast_2d(np.asarray(weights, dtype=float))
    m, k = scores.shape
    out = np.empty(len(weights))
    step = max(1, _CHUNK_ENTRIES // (m * k))
    for start in range(0, len(weights), step):
        w = weights[start:start + step]
        rows = len(w)
        w_rows = np.repeat(w, m, axis=0)  # replicate b, benchmark j -> row b * m + j
        grades = weighted_grades(np.tile(scores, (rows, 1)), w_rows).reshape(rows, m, k)
        total = w.sum(axis=1)[:, None, None]
        centred = grades - (w[:, None, :] * grades).sum(axis=2, keepdims=True) / total
        numerator = (w * centred.sum(axis=1) ** 2).sum(axis=1)
        denominator = m * (w[:, None, :] * centred ** 2).sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + rows] = np.where(denominator > 1e-24, numerator / denominator, np.nan)
    return out


def friedman_test(scores: np.ndarray) -> tuple[float, float]:
    """Friedman's chi-square over m benchmarks (blocks) of k models (treatments), tie-corrected as scipy's.

    Args:
        scores: (m, k).

    Returns:
        (chi-square, p) with k - 1 degrees of freedom.
    """
    ranks = benchmark_ranks(scores)
    m, k = ranks.shape
    sums = ranks.sum(axis=0)
    chi2 = 12.0 / (m * k * (k + 1)) * float(np.sum(sums ** 2)) - 3.0 * m * (k + 1)
    correction = 1.0 - tie_terms(ranks).sum() / (k * (k * k - 1) * m)
    if correction <= 0:
        return float("nan"), float("nan")
    chi2 /= correction
    return float(chi2), float(sps.chi2.sf(chi2, k - 1))


def nemenyi_critical_difference(k: int, n_benchmarks: int, *, alpha: float = DEFAULT_ALPHA) -> tuple[float, float]:
    """Nemenyi's critical difference of mean ranks (Demšar 2006, eq. 5 and table 5a).

    Args:
        k: models compared.
        n_benchmarks: benchmarks (blocks) each model's mean rank is over.
        alpha: family-wise significance level over all pairs.

    Returns:
        (CD, q_alpha), q_alpha the studentized-range quantile over sqrt(2) (2.569 for k = 4, alpha = 0.05).
    """
    if k < 2 or n_benchmarks < 1:
        raise ConcordanceError(f"a critical difference needs at least 2 models and 1 benchmark, got {k} and "
                               f"{n_benchmarks}")
    q_alpha = float(sps.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2))
    return q_alpha * float(np.sqrt(k * (k + 1) / (6.0 * n_benchmarks))), q_alpha


def nemenyi_groups(mean_ranks: np.ndarray, critical_difference: float) -> list[tuple[int, ...]]:
    """The maximal runs of models, in mean-rank order, whose mean ranks all lie within less than CD.

    These are the bars of a critical-difference diagram: no two models under one bar differ
    significantly. Runs inside a longer run are dropped; a model alone under no bar differs from all.

    Args:
        mean_ranks: (k,) mean ranks.
        critical_difference: from :func:`nemenyi_critical_difference`.

    Returns:
        Index tuples into ``mean_ranks``, each sorted by mean rank, in order of their first model.
    """
    order = np.argsort(mean_ranks, kind="stable")
    ranked = np.asarray(mean_ranks, dtype=float)[order]
    groups: list[tuple[int, ...]] = []
    last_end = 0
    for start in range(len(ranked)):
        end = int(np.searchsorted(ranked, ranked[start] + critical_difference, side="left"))
        if end - start >= 2 and end > last_end:  # longer than one model, and not inside the previous run
            groups.append(tuple(int(i) for i in order[start:end]))
        last_end = max(last_end, end)
    return groups


@dataclass(frozen=True)
class RankConcordance:
    """How far m benchmarks agree on the ranking of k models (module docstring).

    Attributes:
        benchmarks: the m benchmark names.
        mean_ranks: each model's mean rank over the benchmarks (1 = best), best first.
        kendall_w_ci_over_models: W with its BCa interval over models.
        friedman_chi2, friedman_p: the Friedman test (k - 1 degrees of freedom).
        alpha: level of the Nemenyi test.
        q_alpha: studentized-range quantile over sqrt(2).
        critical_difference: Nemenyi's CD of mean ranks.
        groups: the diagram's bars: model names not significantly different, each best first.
    """

    benchmarks: tuple[str, ...]
    mean_ranks: pd.Series
    kendall_w_ci_over_models: Estimate
    friedman_chi2: float
    friedman_p: float
    alpha: float
    q_alpha: float
    critical_difference: float
    groups: tuple[tuple[str, ...], ...]
    n_bootstrap: int
    seed: int
    level: float

    def to_json(self) -> dict[str, Any]:
        """Every field as plain JSON types."""
        w = self.kendall_w_ci_over_models
        return {"benchmarks": list(self.benchmarks), "n_models": len(self.mean_ranks), "kendall_w": w.value,
                "kendall_w_ci_over_models": [w.ci_low, w.ci_high], "kendall_w_method": w.method,
                "resampled": w.resampled, "friedman_chi2": self.friedman_chi2, "friedman_df": len(self.mean_ranks) - 1,
                "friedman_p": self.friedman_p, "alpha": self.alpha, "q_alpha": self.q_alpha,
                "critical_difference": self.critical_difference, "groups": [list(g) for g in self.groups],
                "mean_ranks": {str(k): float(v) for k, v in self.mean_ranks.items()},
                "n_bootstrap": self.n_bootstrap, "seed": self.seed, "level": self.level}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> "RankConcordance":
        """The result :meth:`to_json` wrote (the report draws it from the analysis summary)."""
        low, high = record["kendall_w_ci_over_models"]
        return cls(benchmarks=tuple(record["benchmarks"]),
                   mean_ranks=pd.Series(record["mean_ranks"], name="mean_rank").sort_values(kind="stable"),
                   kendall_w_ci_over_models=Estimate(record["kendall_w"], low, high, record["n_models"],
                                                     record["kendall_w_method"], record["resampled"]),
                   friedman_chi2=record["friedman_chi2"], friedman_p=record["friedman_p"], alpha=record["alpha"],
                   q_alpha=record["q_alpha"], critical_difference=record["critical_difference"],
                   groups=tuple(tuple(g) for g in record["groups"]), n_bootstrap=record["n_bootstrap"],
                   seed=record["seed"], level=record["level"])


def rank_concordance(scores: pd.DataFrame, *, alpha: float = DEFAULT_ALPHA, n_bootstrap: int = DEFAULT_BOOTSTRAP,
                     seed: int = 0, level: float = CI_LEVEL) -> RankConcordance:
    """Kendall's W with its interval over models, the Friedman test and the Nemenyi critical difference.

    Args:
        scores: one row per model (the index names them), one column per benchmark, higher is better;
            no missing values (join the benchmarks first).
        alpha: level of the Nemenyi critical difference.
        n_bootstrap: replicates of the interval of W; 0 gives none (NaN).
        seed: seed of the resampling.
        level: coverage of that interval.

    Returns:
        A :class:`RankConcordance`.

    Raises:
        ConcordanceError: fewer than 2 benchmarks or 3 models, or missing scores.
    """
    if scores.isna().any().any():
        missing = scores.index[scores.isna().any(axis=1)].tolist()[:3]
        raise ConcordanceError(f"models {missing} lack a score on some benchmark; keep only the models every "
                               "benchmark scores (an inner join)")
    k, m = scores.shape
    if m < MIN_BENCHMARKS or k < MIN_MODELS:
        raise ConcordanceError(f"concordance needs at least {MIN_BENCHMARKS} benchmarks and {MIN_MODELS} models, "
                               f"got {m} and {k}")
    matrix = scores.to_numpy(float).T  # (m benchmarks, k models)
    w = kendall_w(matrix)
    if n_bootstrap:
        counts = bootstrap_counts(k, n_boot=n_bootstrap, seed=stream_seed(seed, "models"))
        jackknife = weighted_kendall_w(matrix, 1.0 - np.eye(k))
        low, high = bca_interval(weighted_kendall_w(matrix, counts), w, jackknife, level)
        estimate = Estimate(w, low, high, k, "BCa", MODELS_RESAMPLED)
    else:
        estimate = Estimate(w, float("nan"), float("nan"), k)
    chi2, p = friedman_test(matrix)
    mean = benchmark_ranks(matrix).mean(axis=0)
    cd, q_alpha = nemenyi_critical_difference(k, m, alpha=alpha)
    names = [str(name) for name in scores.index]
    groups = tuple(tuple(names[i] for i in group) for group in nemenyi_groups(mean, cd))
    mean_ranks = pd.Series(mean, index=names, name="mean_rank").sort_values(kind="stable")
    return RankConcordance(benchmarks=tuple(str(c) for c in scores.columns), mean_ranks=mean_ranks,
                           kendall_w_ci_over_models=estimate, friedman_chi2=chi2, friedman_p=p, alpha=alpha,
                           q_alpha=q_alpha, critical_difference=cd, groups=groups, n_bootstrap=n_bootstrap,
                           seed=seed, level=level)


def format_text(result: RankConcordance, *, shown: int = 10) -> str:
    """Kendall's W with its interval, the Friedman test, the critical difference and the best mean ranks.

    Args:
        result: from :func:`rank_concordance`.
        shown: how many of the best mean ranks to list.

    Returns:
        Lines of text.
    """
    w = result.kendall_w_ci_over_models
    k, m = len(result.mean_ranks), len(result.benchmarks)
    lines = [f"concordance of {m} benchmarks ranking {k} models: {', '.join(result.benchmarks)}",
             f"Kendall's W (tie-corrected)  {w.value:.3f}  [{w.ci_low:.3f}, {w.ci_high:.3f}]  "
             f"({int(round(100 * result.level))}% {w.method or 'no'} CI, {result.n_bootstrap} replicates "
             f"redrawing {w.resampled or 'nothing'})",
             f"Friedman chi2 = {result.friedman_chi2:.2f}, df = {k - 1}, "
             f"p {'< 1e-300 (underflows)' if result.friedman_p == 0 else f'= {result.friedman_p:.3g}'} "
             f"(benchmarks as blocks)",
             f"Nemenyi CD = {result.critical_difference:.3f} mean ranks (alpha {result.alpha:g}, q_alpha "
             f"{result.q_alpha:.3f}); {len(result.groups)} groups of models not significantly different",
             "", f"the {min(shown, k)} best mean ranks:"]
    width = max(len(str(name)) for name in result.mean_ranks.index[:shown])
    lines += [f"{name:<{width}}  {rank:8.2f}" for name, rank in result.mean_ranks.head(shown).items()]
    return "\n".join(lines)


def concordance_from_boards(boards: Sequence[pd.Series], names: Sequence[str], *, alpha: float = DEFAULT_ALPHA,
                            n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> RankConcordance:
    """:func:`rank_concordance` of several score columns, keeping the models every one scores.

    Args:
        boards: one score Series per benchmark, indexed by model.
        names: the benchmarks' names.
        alpha: level of the Nemenyi critical difference.
        n_bootstrap: replicates of W's interval.
        seed: seed of the resampling.

    Returns:
        A :class:`RankConcordance`.
    """
    table = pd.concat([board.rename(name) for board, name in zip(boards, names)], axis=1, join="inner")
    return rank_concordance(table, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)
