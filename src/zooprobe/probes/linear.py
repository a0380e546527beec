"""Linear probes on frozen features: fit on a train split, pick C on val, score everywhere.

The ID probe of a task is fitted on the ID set and scored on its test split and every OOD set (how
an ID probe survives the shift); a transfer set gets probes of its own, fitted on its own train
split (the tunnel effect as Harun et al. 2024 measure it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# Inverse L2 strengths swept on the validation split (dinov2-style named sweep).
C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0)
MAX_ITER = 300


@dataclass
class ProbeFit:
    """A fitted probe and how it was chosen."""

    model: object
    c: float
    val_accuracy: float
    val_accuracy_by_c: dict[float, float]


def fit_linear_probe(*, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                     c_grid: tuple[float, ...] = C_GRID, max_iter: int = MAX_ITER, seed: int = 0) -> ProbeFit:
    """Fit a multinomial logistic-regression probe, choosing C by validation accuracy.

    Args:
        train_x: (N_train, D) features.
        train_y: (N_train,) labels.
        val_x: (N_val, D) features.
        val_y: (N_val,) labels.
        c_grid: inverse regularisation strengths to try.
        max_iter: L-BFGS iterations per fit.
        seed: seed of the solver.

    Returns:
        :class:`ProbeFit` holding the probe with the best validation accuracy (ties: smaller C).
    """
    if not c_grid:
        raise ValueError("c_grid must name at least one C")
    scores: dict[float, float] = {}
    best: tuple[float, float, object] | None = None
    for c in sorted(c_grid):
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
        with warnings.catch_warnings():
            # A capped iteration count is a deliberate speed/accuracy trade-off, not an error.
            warnings.simplefilter("ignore", ConvergenceWarning)
            probe.fit(train_x, train_y)
        scores[c] = float((probe.predict(val_x) == val_y).mean())
        if best is None or scores[c] > best[0]:
            best = (scores[c], c, probe)
    assert best is not None
    return ProbeFit(model=best[2], c=best[1], val_accuracy=best[0], val_accuracy_by_c=scores)


# A transfer set with only test rows (a shifted copy of a test split, say) is carved, class by class,
# into these fractions for its own probes; the carve-out is seeded and recorded in provenance.
TRANSFER_CARVE_OUT: dict[str, float] = {"train": 0.5, "val": 0.2, "test": 0.3}
PROBE_SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class LayerProbes:
    """One probe per layer, fitted on one set's train split with C chosen on its val split.

    Attributes:
        predictions: evaluation name -> layer -> predicted labels.
        chosen_c: layer -> the C chosen on val.
        val_accuracy: layer -> validation accuracy at that C.
    """

    predictions: dict[str, dict[str, np.ndarray]]
    chosen_c: dict[str, float]
    val_accuracy: dict[str, float]


def probe_every_layer(*, layers: list[str], train_x: dict[str, np.ndarray], train_y: np.ndarray,
                      val_x: dict[str, np.ndarray], val_y: np.ndarray, evaluate: dict[str, dict[str, np.ndarray]],
                      c_grid: tuple[float, ...], max_iter: int, seed: int) -> LayerProbes:
    """Fit :func:`fit_linear_probe` at every layer and predict every evaluation set with it.

    Args:
        layers: layer names, in order.
        train_x: layer -> (N_train, D) training features.
        train_y: (N_train,) training labels.
        val_x: layer -> (N_val, D) validation features.
        val_y: (N_val,) validation labels.
        evaluate: evaluation name -> layer -> (N_eval, D) features to predict.
        c_grid: inverse regularisation strengths swept on val.
        max_iter: L-BFGS iterations per fit.
        seed: seed of the solver.

    Returns:
        :class:`LayerProbes`.
    """
    out = LayerProbes({name: {} for name in evaluate}, {}, {})
    for layer in layers:
        fit = fit_linear_probe(train_x=train_x[layer], train_y=train_y, val_x=val_x[layer], val_y=val_y,
                               c_grid=c_grid, max_iter=max_iter, seed=seed)
        out.chosen_c[layer], out.val_accuracy[layer] = fit.c, fit.val_accuracy
        for name, features in evaluate.items():
            out.predictions[name][layer] = fit.model.predict(features[layer])
    return out


def transfer_split(labels: np.ndarray, split: np.ndarray, *, seed: int) -> tuple[np.ndarray, str]:
    """The train/val/test split a transfer set's own probes use.

    A set with train, val and test rows keeps them. A set without (typically test rows only) is
    carved class by class into :data:`TRANSFER_CARVE_OUT` with a seeded permutation, each class
    keeping at least one row in every split.

    Args:
        labels: (N,) labels of the set.
        split: (N,) stored split names.
        seed: seed of the carve-out.

    Returns:
        ((N,) split names to use, a description for provenance).

    Raises:
        ValueError: a class has fewer than three rows, so cannot be carved into three splits.
    """
    split = np.asarray(split).astype(str)
    if set(PROBE_SPLITS) <= set(np.unique(split)):
        return split, "own train/val/test splits"
    rng = np.random.default_rng(seed)
    carved = np.empty(len(labels), dtype="U5")
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        if len(rows) < len(PROBE_SPLITS):
            raise ValueError(f"class {label} has {len(rows)} rows; carving a transfer set into train/val/test needs "
                             f"at least 3 per class (give the dataset its own splits, or more images)")
        n_train = min(max(1, round(TRANSFER_CARVE_OUT["train"] * len(rows))), len(rows) - 2)
        n_val = min(max(1, round(TRANSFER_CARVE_OUT["val"] * len(rows))), len(rows) - n_train - 1)
        carved[rows[:n_train]], carved[rows[n_train:n_train + n_val]], carved[rows[n_train + n_val:]] = PROBE_SPLITS
    fractions = "/".join(f"{name} {share:g}" for name, share in TRANSFER_CARVE_OUT.items())
    return carved, f"carved from all rows per class ({fractions}), seed {seed}"
