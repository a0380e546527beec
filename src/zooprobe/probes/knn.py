"""Weighted k-nearest-neighbour probes on frozen features (``probe: knn``), as DINO evaluates them.

Caron et al. (2021, "Emerging properties in self-supervised vision transformers") and DINOv2's
evaluation score a representation without fitting anything: each test feature, L2-normalised, finds
its k most cosine-similar training features, and each neighbour votes for its label with weight
``exp(similarity / T)``. The class with the largest total wins. k is chosen on the val split from
:data:`K_GRID`; T is DINO's :data:`TEMPERATURE`.

Similarities are computed :data:`QUERY_CHUNK` query rows at a time, so a chunk x N_train block is the
largest matrix held, never N_query x N_train.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

# Neighbour counts swept on val (DINO reports k = 20; DINOv2 sweeps 10, 20, 100, 200 on ImageNet's
# 1.3 M images; these suit training sets of hundreds to tens of thousands).
K_GRID: tuple[int, ...] = (10, 20, 50)
# DINO's temperature of the neighbours' votes: exp(cosine similarity / T).
TEMPERATURE = 0.07
# Query rows per similarity block.
QUERY_CHUNK = 1024


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (an all-zero row stays zero, so it is similar to nothing)."""
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, np.finfo(np.float32).tiny)


def neighbour_votes(*, train: np.ndarray, train_labels: np.ndarray, queries: np.ndarray, ks: tuple[int, ...],
                    num_classes: int, temperature: float = TEMPERATURE) -> dict[int, np.ndarray]:
    """Each query's weighted votes per class, from its k nearest training rows, for every k of ``ks``.

    Args:
        train: (N, D) unit-norm training features (:func:`unit_rows`).
        train_labels: (N,) their labels, in 0..num_classes-1.
        queries: (M, D) unit-norm features to classify.
        ks: neighbour counts; a k above N uses all N rows.
        num_classes: number of classes.
        temperature: vote weight ``exp(similarity / temperature)``.

    Returns:
        k -> (M, num_classes) vote totals.
    """
    if len(train) == 0:
        raise ValueError("a k-NN probe needs training rows; the train split is empty")
    k_max = min(max(ks), len(train))
    votes = {k: np.zeros((len(queries), num_classes)) for k in ks}
    for start in range(0, len(queries), QUERY_CHUNK):
        similarity = queries[start:start + QUERY_CHUNK] @ train.T
        nearest = np.argpartition(-similarity, k_max - 1, axis=1)[:, :k_max]
        top = np.take_along_axis(similarity, nearest, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        nearest, top = np.take_along_axis(nearest, order, axis=1), np.take_along_axis(top, order, axis=1)
        # Shifting by the largest similarity (1 at most) before exp keeps the weights finite at small T;
        # it scales a row's votes by one factor, which changes no decision.
        weights = np.exp((top.astype(np.float64) - 1.0) / temperature)
        neighbour_labels = train_labels[nearest]
        rows = np.arange(len(top))[:, None]
        for k in ks:
            used = min(k, k_max)
            block = np.zeros((len(top), num_classes))
            np.add.at(block, (np.broadcast_to(rows, (len(top), used)), neighbour_labels[:, :used]),
                      weights[:, :used])
            votes[k][start:start + len(top)] = block
    return votes


@dataclass
class KnnClassifier:
    """A weighted k-NN probe: the training rows it votes with and how.

    Attributes:
        train: (N, D) unit-norm training features.
        train_labels: (N,) their labels.
        num_classes: number of classes.
        k: neighbours that vote.
        temperature: vote weight ``exp(similarity / temperature)``.
    """

    train: np.ndarray
    train_labels: np.ndarray
    num_classes: int
    k: int
    temperature: float = TEMPERATURE

    def _votes(self, features: np.ndarray) -> np.ndarray:
        return neighbour_votes(train=self.train, train_labels=self.train_labels, queries=unit_rows(features),
                               ks=(self.k,), num_classes=self.num_classes, temperature=self.temperature)[self.k]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(M,) labels with the most vote weight (ties: the smaller label)."""
        return self._votes(features).argmax(axis=1).astype(np.int64)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(M, num_classes) each class's share of a query's vote weight."""
        votes = self._votes(features)
        return votes / np.maximum(votes.sum(axis=1, keepdims=True), np.finfo(float).tiny)


@dataclass
class KnnFit:
    """A k-NN probe and how its k was chosen.

    Attributes:
        model: the probe at the chosen k (``predict`` and ``predict_proba`` on (N, D) features).
        k: the chosen neighbour count.
        val_accuracy: validation accuracy at that k.
        val_accuracy_by_k: k -> validation accuracy, for every k of the grid.
    """

    model: KnnClassifier
    k: int
    val_accuracy: float
    val_accuracy_by_k: dict[int, float]


def fit_knn_probe(*, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                  k_grid: tuple[int, ...] = K_GRID, temperature: float = TEMPERATURE,
                  num_classes: int | None = None) -> KnnFit:
    """Choose k on val for a weighted k-NN probe on ``train_x``.

    Args:
        train_x: (N_train, D) training features.
        train_y: (N_train,) labels.
        val_x: (N_val, D) validation features.
        val_y: (N_val,) labels.
        k_grid: neighbour counts to try.
        temperature: vote weight ``exp(similarity / temperature)``.
        num_classes: number of classes (default: the largest label seen, plus one).

    Returns:
        :class:`KnnFit` at the k with the best validation accuracy (ties: the smaller k).

    Raises:
        ValueError: an empty or non-positive grid, or an empty train split.
    """
    if not k_grid or min(k_grid) < 1:
        raise ValueError(f"k_grid must hold positive neighbour counts, got {list(k_grid)}")
    train_y, val_y = np.asarray(train_y, dtype=np.int64), np.asarray(val_y, dtype=np.int64)
    if num_classes is None:
        num_classes = int(max(train_y.max(initial=-1), val_y.max(initial=-1))) + 1
    train = unit_rows(train_x)
    ks = tuple(sorted(set(int(k) for k in k_grid)))
    votes = neighbour_votes(train=train, train_labels=train_y, queries=unit_rows(val_x), ks=ks,
                            num_classes=num_classes, temperature=temperature)
    scores = {k: float((votes[k].argmax(axis=1) == val_y).mean()) if len(val_y) else float("nan") for k in ks}
    best = max(ks, key=lambda k: (np.nan_to_num(scores[k], nan=-1.0), -k))
    return KnnFit(model=KnnClassifier(train, train_y, num_classes, best, temperature), k=best,
                  val_accuracy=scores[best], val_accuracy_by_k=scores)
