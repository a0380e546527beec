"""Linear CKA (Kornblith et al. 2019) between feature matrices, streamed in row chunks.

For features X (N x p) and Y (N x q) of the same N examples, with column-centred Xc, Yc,

    HSIC(X, Y) = ||Yc^T Xc||_F^2 / (N - 1)^2 = tr(K H L H) / (N - 1)^2,   K = X X^T, L = Y Y^T,
    CKA(X, Y) = HSIC(X, Y) / sqrt(HSIC(X, X) HSIC(Y, Y)).

Everything here is in *feature space*: one pass over row chunks accumulates Y^T X (q x p) and the
column sums, and centring is applied algebraically (Yc^T Xc = Y^T X - s_y s_x^T / N), so no N x N
Gram matrix is formed. Cost: O(N p q) time and O(p q) memory per pair, which beats the Gram form's
O(N^2) memory whenever p q < N^2. Before accumulating, every chunk is shifted by the column means of
the first chunk; the centred quantities do not change, and the shift removes most of the
cancellation that large feature means would cause in float64 sums.

The *debiased* estimator (``debiased=True``) is the unbiased HSIC of Song et al. (2012), used for
CKA by Nguyen et al. (2021): with K~, L~ the Gram matrices with zeroed diagonals,

    HSIC_1 = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((N-1)(N-2)) - 2 / (N-2) 1^T K~ L~ 1] / (N (N-3)).

For linear kernels each term has a feature-space form in the row norms a_i = ||x_i||^2, b_i = ||y_i||^2
and the column sums s_x, s_y:

    tr(K~ L~)      = ||Y^T X||_F^2 - sum_i a_i b_i
    1^T K~ 1       = ||s_x||^2 - sum_i a_i
    1^T K~ L~ 1    = s_y^T (Y^T X) s_x - s_y . sum_i a_i y_i - s_x . sum_i b_i x_i + sum_i a_i b_i

so it too is one pass with O(p q) memory. HSIC_1 does not change when a constant is added to every
row of X (or Y), which is what lets each pass use its own shift. It needs N >= 4, and HSIC_1(X, X)
can be <= 0 in small samples; the debiased CKA is then NaN.

No bootstrap interval is offered: a replicate needs its own pass over the data (weighted sums per
resample), B times the cost of the point estimate.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np

# Rows per chunk when whole arrays are given (a 4,096 x 2,048 float64 chunk is 64 MiB).
CHUNK_ROWS = 4096
MIN_ROWS = 2
MIN_ROWS_DEBIASED = 4
ESTIMATORS = ("biased", "debiased")


def _rows(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (rows, features) chunk of a feature matrix, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite features; CKA needs finite features")
    return array


class _Cross:
    """Running sums over rows of (x, y) chunks from which both HSIC estimators of X and Y follow."""

    def __init__(self) -> None:
        self.n = 0
        self.shift_x: np.ndarray | None = None
        self.shift_y: np.ndarray | None = None

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.shift_x is None:
            self.shift_x, self.shift_y = x.mean(axis=0), y.mean(axis=0)
            p, q = x.shape[1], y.shape[1]
            self.yx, self.sx, self.sy = np.zeros((q, p)), np.zeros(p), np.zeros(q)
            self.ab = self.sum_a = self.sum_b = 0.0
            self.ay, self.bx = np.zeros(q), np.zeros(p)
        elif x.shape[1] != self.shift_x.shape[0] or y.shape[1] != self.shift_y.shape[0]:
            raise ValueError(f"every chunk must have the same features as the first: x {self.shift_x.shape[0]}, "
                             f"y {self.shift_y.shape[0]} columns, got {x.shape[1]} and {y.shape[1]}")
        x, y = x - self.shift_x, y - self.shift_y
        a, b = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
        self.n += x.shape[0]
        self.yx += y.T @ x
        self.sx += x.sum(axis=0)
        self.sy += y.sum(axis=0)
        self.ab += float(a @ b)
        self.sum_a += float(a.sum())
        self.sum_b += float(b.sum())
        self.ay += a @ y
        self.bx += b @ x

    def hsic(self, *, debiased: bool) -> float:
        n = self.n
        if debiased:
            if n < MIN_ROWS_DEBIASED:
                raise ValueError(f"the debiased HSIC needs at least {MIN_ROWS_DEBIASED} rows, got {n}")
            trace = float(np.sum(self.yx ** 2)) - self.ab
            sum_k, sum_l = float(self.sx @ self.sx) - self.sum_a, float(self.sy @ self.sy) - self.sum_b
            kl = float(self.sy @ self.yx @ self.sx) - float(self.sy @ self.ay) - float(self.sx @ self.bx) + self.ab
            return (trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2 * kl / (n - 2)) / (n * (n - 3))
        if n < MIN_ROWS:
            raise ValueError(f"HSIC needs at least {MIN_ROWS} rows, got {n}")
        centred = self.yx - np.outer(self.sy, self.sx) / n
        return float(np.sum(centred ** 2)) / (n - 1) ** 2


def _estimator(debiased: bool) -> None:
    if not isinstance(debiased, (bool, np.bool_)):
        raise ValueError(f"debiased must be True or False (estimators: {ESTIMATORS}), got {debiased!r}")


def _cka(xy: float, xx: float, yy: float) -> float:
    if not (xx > 0 and yy > 0):
        return float("nan")  # a constant feature matrix, or a debiased self-HSIC <= 0 in a small sample
    return float(xy / np.sqrt(xx * yy))


def hsic_chunks(chunks: Iterable[tuple[np.ndarray, np.ndarray]], *, debiased: bool = False) -> float:
    """Linear HSIC of X and Y from one pass over row chunks (module docstring for both estimators).

    Args:
        chunks: (x_chunk, y_chunk) pairs, rows of the same examples in the same order, e.g. read
            from two HDF5 datasets; x chunks all have p columns, y chunks q columns.
        debiased: Song et al.'s unbiased HSIC instead of ||Yc^T Xc||_F^2 / (N-1)^2.

    Returns:
        The HSIC estimate.

    Raises:
        ValueError: for chunk pairs with different row counts, changing widths, non-finite features,
            or too few rows (2, or 4 for the debiased estimator).
    """
    _estimator(debiased)
    cross = _Cross()
    for index, (x, y) in enumerate(chunks):
        x, y = _rows(x, f"x chunk {index}"), _rows(y, f"y chunk {index}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"chunk {index}: x has {x.shape[0]} rows and y {y.shape[0]}; both must hold the same examples")
        cross.add(x, y)
    return cross.hsic(debiased=debiased)


def linear_cka_chunks(chunks: Iterable[tuple[np.ndarray, np.ndarray]], *, debiased: bool = False) -> float:
    """Linear CKA of X and Y from one pass over row chunks, never forming an N x N matrix.

    The pass accumulates the sums for HSIC(X, Y), HSIC(X, X) and HSIC(Y, Y) together (memory
    O(p q + p^2 + q^2)).

    Args:
        chunks: (x_chunk, y_chunk) pairs as in :func:`hsic_chunks`.
        debiased: use the unbiased HSIC in numerator and denominator (Nguyen et al. 2021).

    Returns:
        CKA in [0, 1] for the biased estimator (the debiased one can fall slightly outside); NaN when
        either matrix is constant, or its debiased self-HSIC is <= 0.

    Raises:
        ValueError: as :func:`hsic_chunks`.
    """
    _estimator(debiased)
    xy, xx, yy = _Cross(), _Cross(), _Cross()
    for index, (x, y) in enumerate(chunks):
        x, y = _rows(x, f"x chunk {index}"), _rows(y, f"y chunk {index}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"chunk {index}: x has {x.shape[0]} rows and y {y.shape[0]}; both must hold the same examples")
        xy.add(x, y)
        xx.add(x, x)
        yy.add(y, y)
    return _cka(xy.hsic(debiased=debiased), xx.hsic(debiased=debiased), yy.hsic(debiased=debiased))


def row_chunks(x: np.ndarray, y: np.ndarray, *, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x_chunk, y_chunk) pairs of ``chunk_rows`` rows of two in-memory feature matrices.

    Raises:
        ValueError: when the matrices are not 2-D, differ in rows, or ``chunk_rows`` < 1.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must be (N, p) and (N, q) feature matrices of the same N examples, "
                         f"got shapes {x.shape} and {y.shape}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive number of rows, got {chunk_rows}")
    for start in range(0, x.shape[0], chunk_rows):
        yield x[start:start + chunk_rows], y[start:start + chunk_rows]


def linear_cka(x: np.ndarray, y: np.ndarray, *, debiased: bool = False, chunk_rows: int = CHUNK_ROWS) -> float:
    """Linear CKA of two in-memory feature matrices (computed in chunks of rows, as :func:`linear_cka_chunks`).

    Args:
        x: (N, p) features of N examples.
        y: (N, q) features of the same examples.
        debiased: use the unbiased HSIC.
        chunk_rows: rows per chunk.

    Returns:
        The CKA (NaN for a constant matrix).
    """
    return linear_cka_chunks(row_chunks(x, y, chunk_rows=chunk_rows), debiased=debiased)


@dataclass(frozen=True)
class CKAMatrix:
    """Linear CKA between every pair of feature sets (models at their layers, or one model's layers).

    Attributes:
        names: the feature sets, in row and column order.
        cka: (K, K) symmetric; the diagonal is 1 (NaN for a constant feature set).
        estimator: ``"biased"`` or ``"debiased"``.
        n: examples (rows) the features share.
    """

    names: tuple[str, ...]
    cka: np.ndarray
    estimator: str
    n: int

    def pairs(self) -> list[tuple[str, str, float]]:
        """Every unordered pair (a before b in order) with its CKA, for score rows ``a~b``."""
        return [(a, b, float(self.cka[i, j])) for (i, a), (j, b) in itertools.combinations(enumerate(self.names), 2)]


ChunkSource = Callable[[], Iterable[np.ndarray]]


def _pass(sources: list[ChunkSource], names: list[str]) -> Iterator[tuple[np.ndarray, ...]]:
    """Zip fresh iterators of row chunks, checking that every source has the same rows per chunk."""
    iterators = [iter(source()) for source in sources]
    for index, chunks in enumerate(itertools.zip_longest(*iterators)):
        if any(chunk is None for chunk in chunks):
            ended = [name for name, chunk in zip(names, chunks) if chunk is None]
            raise ValueError(f"{ended} ran out of chunks at chunk {index} before the others; every source must "
                             "yield the same examples in the same chunks")
        arrays = tuple(_rows(chunk, f"{name} chunk {index}") for name, chunk in zip(names, chunks))
        if len({array.shape[0] for array in arrays}) != 1:
            raise ValueError(f"chunk {index} has rows {dict(zip(names, (a.shape[0] for a in arrays)))}; every source "
                             "must yield the same examples in the same chunks")
        yield arrays


def cka_matrix(sources: Mapping[str, ChunkSource], *, debiased: bool = False) -> CKAMatrix:
    """Linear CKA of every pair of feature sets, each streamed in row chunks.

    One pass per feature set gives its self-HSIC, then one pass per pair (reading both sets) gives
    their cross-HSIC: K + K(K-1)/2 passes, each holding one p x q sum at a time, so memory stays
    O(max p q) however many sets there are, at the price of re-reading each set K times.

    Args:
        sources: name -> a function that returns a *fresh* iterable of (rows, features) chunks of
            that set's features, e.g. a reader of one model's layer in an HDF5 file; every source
            must yield the same examples in the same order and chunking.
        debiased: use the unbiased HSIC (Song et al. 2012).

    Returns:
        :class:`CKAMatrix`.

    Raises:
        ValueError: for fewer than 2 sources, sources that disagree in rows or chunking, or too few rows.
    """
    _estimator(debiased)
    names = list(sources)
    if len(names) < 2:
        raise ValueError(f"cka_matrix needs at least 2 feature sets, got {names}")
    self_hsic, n = {}, None
    for name in names:
        cross = _Cross()
        for (chunk,) in _pass([sources[name]], [name]):
            cross.add(chunk, chunk)
        if n is not None and cross.n != n:
            raise ValueError(f"{name} has {cross.n} rows and {names[0]} {n}; every source must hold the same examples")
        n = cross.n
        self_hsic[name] = cross.hsic(debiased=debiased)
    k = len(names)
    cka = np.eye(k)
    for i, j in itertools.combinations(range(k), 2):
        cross = _Cross()
        for x, y in _pass([sources[names[i]], sources[names[j]]], [names[i], names[j]]):
            cross.add(x, y)
        cka[i, j] = cka[j, i] = _cka(cross.hsic(debiased=debiased), self_hsic[names[i]], self_hsic[names[j]])
    for i, name in enumerate(names):
        if not self_hsic[name] > 0:
            cka[i, :] = cka[:, i] = np.nan
    return CKAMatrix(tuple(names), cka, ESTIMATORS[int(debiased)], int(n))


def cka_between_models(selected_features: Mapping[str, ChunkSource], *, debiased: bool = False) -> CKAMatrix:
    """CKA between every pair of models, each at its selected layer, on one benchmark's test features.

    Args:
        selected_features: model -> a fresh-chunk source of its selected layer's features (as :func:`cka_matrix`).
        debiased: use the unbiased HSIC.

    Returns:
        :class:`CKAMatrix` over the models.
    """
    return cka_matrix(selected_features, debiased=debiased)


def cka_between_layers(layer_features: Mapping[str, ChunkSource], *, debiased: bool = False) -> CKAMatrix:
    """CKA between every pair of one model's layers, on one benchmark's test features.

    Args:
        layer_features: layer -> a fresh-chunk source of the model's features at that layer.
        debiased: use the unbiased HSIC.

    Returns:
        :class:`CKAMatrix` over the layers, in the mapping's order (give it in depth order).
    """
    return cka_matrix(layer_features, debiased=debiased)
