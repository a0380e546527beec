"""Error consistency (Geirhos et al. 2020): do two models err on the same examples, beyond chance?

For two models' correctness on the same N examples, with accuracies p1 and p2,

- c_obs = the share of examples where both are right or both are wrong,
- c_exp = p1 p2 + (1 - p1)(1 - p2), the share two independent models with these accuracies agree on,
- kappa = (c_obs - c_exp) / (1 - c_exp), Cohen's kappa of the two binary correctness vectors.

In counts (r1, r2 examples right for each model, r12 right for both) kappa is
2 (N r12 - r1 r2) / (N (r1 + r2) - 2 r1 r2), which is what this module computes: integer counts
make the degenerate case exact. kappa is undefined when c_exp = 1, i.e. both models are right on
every example or both wrong on every example (they then agree on everything, and so would any two
models with those accuracies); it is NaN there, with :data:`DEGENERATE_REASON` recorded.

Intervals are percentile bootstraps over test examples, *paired*: each replicate draws one
resample of the examples and scores both models on it (one :func:`stats.bootstrap_counts` matrix
shared by every model). Replicates where the resample makes kappa undefined are dropped (counted
in ``undefined_replicates``). The whole bootstrap is matrix products of that count matrix with the
correctness vectors and their pairwise products, so a zoo of M models costs one
(B x N) @ (N x pairs) product, done in chunks of pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from zooprobe.analysis import stats

METHOD = "percentile"
RESAMPLED = "test examples"  # one resample per replicate, shared by both models of every pair
DEGENERATE_REASON = "c_exp = 1: both models are right on every example, or both wrong on every example"
# Columns of the (N x pairs) product matrix built at once; bounds its memory to about 8 x this x N bytes.
PAIR_CHUNK = 256


def _kappa_from_counts(n: np.ndarray | float, right_a: np.ndarray, right_b: np.ndarray,
                       right_both: np.ndarray) -> np.ndarray:
    """kappa from example counts (arrays broadcast); NaN where c_exp = 1 (denominator 0)."""
    numerator = 2.0 * (n * right_both - right_a * right_b)
    denominator = n * (right_a + right_b) - 2.0 * right_a * right_b
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator != 0, numerator / np.where(denominator != 0, denominator, 1.0), np.nan)


def _as_correctness(correct: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(correct)
    if array.dtype != bool:
        if not np.all(np.isin(array, (0, 1))):
            raise ValueError(f"{name} must be a boolean correctness array (or 0/1), got values other than 0 and 1")
        array = array.astype(bool)
    return array


@dataclass(frozen=True)
class ErrorConsistency:
    """Error consistency of one pair of models on one benchmark.

    Attributes:
        kappa: the estimate with its paired percentile interval over test examples.
        observed: c_obs, the share of examples both got right or both got wrong.
        expected: c_exp, the agreement two independent models with these accuracies would have.
        undefined_replicates: bootstrap replicates in which kappa was undefined (dropped).
        reason: why kappa is NaN (:data:`DEGENERATE_REASON`), or empty.
    """

    kappa: stats.Estimate
    observed: float
    expected: float
    undefined_replicates: int = 0
    reason: str = ""


@dataclass(frozen=True)
class ConsistencyMatrix:
    """Error consistency of every pair of M models on one benchmark (symmetric matrices).

    Attributes:
        models: the M model names, in row and column order.
        kappa, ci_low, ci_high: (M, M) estimates and percentile bounds; the diagonal is 1 where
            defined (a model with itself), NaN where c_exp = 1.
        observed, expected: (M, M) c_obs and c_exp.
        undefined_replicates: (M, M) replicates dropped as undefined.
        n: test examples.
        method, resampled: how the intervals were made and what they resampled.
    """

    models: tuple[str, ...]
    kappa: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    observed: np.ndarray
    expected: np.ndarray
    undefined_replicates: np.ndarray
    n: int
    method: str = METHOD
    resampled: str = RESAMPLED

    def pair(self, a: str, b: str) -> ErrorConsistency:
        """The entry for models ``a`` and ``b`` as an :class:`ErrorConsistency`."""
        i, j = self.models.index(a), self.models.index(b)
        estimate = stats.Estimate(float(self.kappa[i, j]), float(self.ci_low[i, j]), float(self.ci_high[i, j]),
                                  self.n, self.method, self.resampled)
        reason = DEGENERATE_REASON if np.isnan(self.kappa[i, j]) else ""
        return ErrorConsistency(estimate, float(self.observed[i, j]), float(self.expected[i, j]),
                                int(self.undefined_replicates[i, j]), reason)

    def pairs(self) -> list[tuple[str, str, ErrorConsistency]]:
        """Every unordered pair (a before b in model order) with its entry, for score rows ``a~b``."""
        return [(a, b, self.pair(a, b)) for i, a in enumerate(self.models) for b in self.models[i + 1:]]


def _counts_matrix(n: int, *, n_boot: int, seed: int | list[int], counts: np.ndarray | None) -> np.ndarray:
    if counts is None:
        if n_boot < 1:
            raise ValueError(f"n_boot must be a positive number of bootstrap resamples, got {n_boot}")
        stats.warn_if_few_resamples(n_boot)
        return stats.bootstrap_counts(n, n_boot=n_boot, seed=seed)
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or counts.shape[1] != n:
        raise ValueError(f"counts must be a (B, {n}) bootstrap count matrix for these {n} examples "
                         f"(stats.bootstrap_counts), got shape {counts.shape}")
    return counts


def error_consistency(correct_a: np.ndarray, correct_b: np.ndarray, *, n_boot: int = 1000,
                      seed: int | list[int] = 0, level: float = stats.CI_LEVEL,
                      counts: np.ndarray | None = None) -> ErrorConsistency:
    """Error consistency (Cohen's kappa of correctness) of two models on the same examples, with a paired CI.

    Args:
        correct_a: boolean (N,) correctness of model A, one entry per test example.
        correct_b: boolean (N,) correctness of model B on the same examples in the same order.
        n_boot: bootstrap resamples (ignored when ``counts`` is given).
        seed: seed of the resampling (ignored when ``counts`` is given).
        level: interval coverage.
        counts: a (B, N) :func:`stats.bootstrap_counts` matrix, to share resamples with other scores.

    Returns:
        :class:`ErrorConsistency`; kappa's interval is a percentile interval over test examples,
        both models scored on the same resample in each replicate.

    Raises:
        ValueError: when the vectors are not 1-D, differ in length, are empty, or are not boolean.
    """
    a, b = _as_correctness(correct_a, "correct_a"), _as_correctness(correct_b, "correct_b")
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must be 1-D correctness vectors over the same examples, "
                         f"got shapes {a.shape} and {b.shape}")
    found = error_consistency_matrix(np.stack([a, b]), models=("a", "b"), n_boot=n_boot, seed=seed, level=level,
                                     counts=counts)
    return found.pair("a", "b")


def error_consistency_matrix(correct: np.ndarray, *, models: Sequence[str] | None = None, n_boot: int = 1000,
                             seed: int | list[int] = 0, level: float = stats.CI_LEVEL,
                             counts: np.ndarray | None = None, pair_chunk: int = PAIR_CHUNK) -> ConsistencyMatrix:
    """Error consistency of every pair of M models on one benchmark, with paired percentile CIs over examples.

    Args:
        correct: boolean (M, N) correctness, one row per model, the same N test examples in each row.
        models: M names (default ``m0``, ``m1``, ...).
        n_boot: bootstrap resamples (ignored when ``counts`` is given).
        seed: seed of the resampling (ignored when ``counts`` is given).
        level: interval coverage.
        counts: a (B, N) :func:`stats.bootstrap_counts` matrix shared by all models.
        pair_chunk: pairs whose both-right indicators are multiplied by ``counts`` at once (memory).

    Returns:
        :class:`ConsistencyMatrix`, symmetric; every pair's replicates use the same resamples.

    Raises:
        ValueError: for a non-2-D or non-boolean ``correct``, no examples, fewer than 2 models, or a
            ``models`` list of the wrong length.
    """
    c = _as_correctness(correct, "correct")
    if c.ndim != 2 or c.shape[0] < 2 or c.shape[1] < 1:
        raise ValueError(f"correct must be an (M, N) correctness matrix with M >= 2 models and N >= 1 examples, "
                         f"got shape {c.shape}")
    m, n = c.shape
    names = tuple(models) if models is not None else tuple(f"m{i}" for i in range(m))
    if len(names) != m or len(set(names)) != m:
        raise ValueError(f"models must be {m} distinct names, one per row of correct, got {len(names)}: {names[:5]}")
    w = _counts_matrix(n, n_boot=n_boot, seed=seed, counts=counts)
    cf = c.astype(float)
    right = cf.sum(axis=1)                        # (M,)
    right_both = cf @ cf.T                        # (M, M) exact integer counts
    kappa = _kappa_from_counts(float(n), right[:, None], right[None, :], right_both)
    observed = (n - right[:, None] - right[None, :] + 2 * right_both) / n
    p = right / n
    expected = p[:, None] * p[None, :] + (1 - p[:, None]) * (1 - p[None, :])

    # Replicates: resampled counts of "right" per model, and of "both right" per pair.
    boot_right = w @ cf.T                         # (B, M)
    n_rep = w.sum(axis=1)                         # (B,) = N for a bootstrap count matrix
    i_idx, j_idx = np.triu_indices(m, k=1)
    low, high = np.full((m, m), np.nan), np.full((m, m), np.nan)
    undefined = np.zeros((m, m), dtype=int)
    for start in range(0, len(i_idx), max(1, pair_chunk)):
        i, j = i_idx[start:start + pair_chunk], j_idx[start:start + pair_chunk]
        boot_both = w @ (cf[i] * cf[j]).T         # (B, chunk)
        replicates = _kappa_from_counts(n_rep[:, None], boot_right[:, i], boot_right[:, j], boot_both)
        for column, (a, b) in enumerate(zip(i, j)):
            low[a, b], high[a, b] = stats.percentile_interval(replicates[:, column], level)
            undefined[a, b] = int(np.sum(np.isnan(replicates[:, column])))
    # The diagonal: a model with itself has kappa 1 in every replicate where it is defined.
    for a in range(m):
        boot_self = _kappa_from_counts(n_rep, boot_right[:, a], boot_right[:, a], boot_right[:, a])
        low[a, a], high[a, a] = stats.percentile_interval(boot_self, level)
        undefined[a, a] = int(np.sum(np.isnan(boot_self)))
    upper = np.triu_indices(m, k=1)
    for matrix in (low, high, undefined):
        matrix.T[upper] = matrix[upper]
    return ConsistencyMatrix(names, kappa, low, high, observed, expected, undefined, n)
