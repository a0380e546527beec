"""Linear probes on frozen features: fit on the ID train split, pick C on val, score everywhere."""

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
