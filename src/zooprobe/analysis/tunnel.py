"""Tunnel-effect metrics (Masarczyk et al. 2023; Harun et al. 2024) from layer-wise accuracy curves.

Two curves per model go in: the ID curve (the ID probe of each layer on the ID test split) and an
OOD curve. Which OOD curve makes two different quantities, kept under different names:

* ``tunnel_*`` (the tunnel effect as Harun et al. define it): the OOD curve comes from probes
  *trained on the OOD (transfer) set's own train split*, one per layer, scored on its test split
  (``probe.tasks.<task>.transfer``);
* ``shift_*``: the OOD curve is the *ID* probe of each layer scored on a same-label shifted set
  (``probe.tasks.<task>.ood``), i.e. how an ID probe survives covariate shift.

Each family has ``<family>_retained_pct`` = 100 x acc_OOD(penultimate) / max over layers of
acc_OOD, ``<family>_id_ood_pearson`` = Pearson r of the two curves over layers and
``<family>_id_ood_alignment`` = (acc_ID - chance_ID) x (acc_OOD - chance_OOD) at the penultimate
layer. Every metric is recomputed on each bootstrap replicate of the curves (the test examples
the analysis already redraws), which gives its percentile interval. The max in the retained %
is taken within each replicate, so the interval carries the noise of the best layer. Test noise
pulls the Pearson r of two curves toward 0 (each layer's accuracy gets noise of its own), and each
replicate is pulled as far again, so its percentile interval is widened on the side of the
bootstrap's bias estimate, as for rank correlations given the zoo
(:func:`zooprobe.analysis.agreement.widened_percentile`): an independent simulation found the plain
percentile interval covering a true r of 0.99 over 12 layers 0-65% of the time.
"""

from __future__ import annotations

import numpy as np

from zooprobe.analysis import agreement
from zooprobe.analysis import stats

FAMILIES: dict[str, str] = {
    "tunnel": "probes trained on the OOD set's own train split (Harun et al. 2024)",
    "shift": "the ID probe scored on a same-label shifted set",
}
METRICS: tuple[str, ...] = ("retained_pct", "id_ood_pearson", "id_ood_alignment")
# Metrics whose percentile interval is widened by the bootstrap's bias estimate (module docstring).
WIDENED: dict[str, str] = {"id_ood_pearson": agreement.WIDENED_METHOD}
# Pearson r of two curves needs at least this many layers to mean anything.
MIN_LAYERS_FOR_PEARSON = 3


def curve_replicates(correct: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Layer-wise accuracy, its point estimate first, then one curve per bootstrap replicate.

    Args:
        correct: (L, N) per-layer correctness on N test examples.
        counts: (B, N) bootstrap draw counts of those examples (a column subset of a larger draw
            is allowed: each replicate's accuracy is weighted by its own counts).

    Returns:
        (B + 1, L) accuracies; a replicate that drew none of the examples is NaN.
    """
    correct = np.asarray(correct, dtype=float)
    counts = np.asarray(counts, dtype=float)
    drawn = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = (counts @ correct.T) / drawn
    return np.vstack([correct.mean(axis=1), replicates])


def tunnel_metrics(id_curves: np.ndarray, ood_curves: np.ndarray, *, penultimate: int | None, id_chance: float,
                   ood_chance: float) -> dict[str, np.ndarray]:
    """The three metrics for every row of two stacks of curves.

    Args:
        id_curves: (R, L) ID accuracy curves (point estimate and replicates).
        ood_curves: (R, L) OOD accuracy curves, rows paired with ``id_curves``.
        penultimate: index of the penultimate layer in the curves; None (a model without one)
            leaves the retained % and the alignment undefined.
        id_chance: chance accuracy on the ID set (1 / its number of classes).
        ood_chance: chance accuracy on the OOD set.

    Returns:
        metric name (:data:`METRICS`) -> (R,) values; NaN where undefined (a flat curve has no
        Pearson r; an all-zero OOD curve has no retained %).
    """
    id_curves, ood_curves = np.asarray(id_curves, dtype=float), np.asarray(ood_curves, dtype=float)
    undefined = np.full(len(id_curves), np.nan)
    best = ood_curves.max(axis=1)
    if penultimate is None:
        retained = alignment = undefined
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            retained = np.where(best > 0, 100.0 * ood_curves[:, penultimate] / best, np.nan)
        alignment = (id_curves[:, penultimate] - id_chance) * (ood_curves[:, penultimate] - ood_chance)
    if id_curves.shape[1] >= MIN_LAYERS_FOR_PEARSON:
        pearson = stats.pearson_r_rows(id_curves, ood_curves)
    else:
        pearson = undefined
    return {"retained_pct": retained, "id_ood_pearson": pearson, "id_ood_alignment": alignment}


def tunnel_estimates(id_curves: np.ndarray, ood_curves: np.ndarray, *, family: str, penultimate: int | None,
                     id_chance: float, ood_chance: float, n: int, resampled: str,
                     level: float = stats.CI_LEVEL) -> dict[str, stats.Estimate]:
    """Each metric's point estimate with its percentile interval over the replicates.

    Args:
        id_curves, ood_curves: (B + 1, L) from :func:`curve_replicates`, row 0 the point estimate.
        family: a key of :data:`FAMILIES`, prefixed to each metric's name.
        penultimate, id_chance, ood_chance: as in :func:`tunnel_metrics`.
        n: OOD test examples behind the curve.
        resampled: what the replicates redrew, for the interval's label.
        level: interval coverage.

    Returns:
        ``<family>_<metric>`` -> :class:`~zooprobe.analysis.stats.Estimate`; metrics undefined at the point
        estimate are left out, replicates where one is undefined are dropped from its interval.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown tunnel family {family!r}; valid: {list(FAMILIES)}")
    values = tunnel_metrics(id_curves, ood_curves, penultimate=penultimate, id_chance=id_chance,
                            ood_chance=ood_chance)
    out: dict[str, stats.Estimate] = {}
    for metric, column in values.items():
        if not np.isfinite(column[0]):
            continue
        replicates = column[1:][np.isfinite(column[1:])]
        method = WIDENED[metric] if metric in WIDENED else "percentile"
        if not len(replicates):
            low, high = np.nan, np.nan
        elif metric in WIDENED:
            low, high = agreement.widened_percentile(replicates, float(column[0]), level)
        else:
            low, high = stats.percentile_interval(replicates, level)
        out[f"{family}_{metric}"] = stats.Estimate(float(column[0]), low, high, n, method, resampled)
    return out
