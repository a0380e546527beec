"""Dense-probe metrics: which pixels carry a label, per-task metrics, and per-image depth alignment.

No torch here: the metrics score decoded numpy predictions (:func:`zooprobe.probes.dense.heads.predict_dense`).
"""

from __future__ import annotations

import numpy as np

DENSE_TASKS: tuple[str, ...] = ("depth", "normals", "figure_ground")
NORMAL_THRESHOLDS_DEG: tuple[float, ...] = (11.25, 22.5, 30.0)
DEPTH_DELTA_BASE = 1.25
# A true normal shorter than this is "no normal" (a zero vector marks unknown pixels), not a direction.
MIN_NORMAL_NORM = 1e-6
# Per-image alignment of a predicted depth map to the truth before scoring:
# median: multiply by the median of gt/pred (scale only; the scale-invariant loss leaves a scale free);
# scale_shift: least-squares a * pred + b against gt in depth space, as probe3d's match_scale_and_shift
# (El Banani et al. 2024), the protocol Chen et al.'s mid-level probes report.
DEPTH_ALIGNMENTS: tuple[str, ...] = ("median", "scale_shift")


def pixel_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` as bool, or every pixel of ``shape`` when there is none."""
    return np.ones(shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)


def valid_depth(gt: np.ndarray) -> np.ndarray:
    """Pixels with a usable true depth: finite and positive (0 marks "no reading" in NYUv2 and here)."""
    gt = np.asarray(gt)
    with np.errstate(invalid="ignore"):
        return np.isfinite(gt) & (gt > 0)


def valid_normals(gt: np.ndarray) -> np.ndarray:
    """Pixels with a usable true normal (last axis: 3 components): finite and of non-zero length.

    A zero vector has no direction; scored as one it would give 90 degrees whatever the prediction.
    """
    gt = np.asarray(gt, dtype=np.float64)
    finite = np.isfinite(gt).all(axis=-1)
    return finite & (np.linalg.norm(np.where(np.isfinite(gt), gt, 0.0), axis=-1) > MIN_NORMAL_NORM)


def valid_pixels(task: str, gt: np.ndarray) -> np.ndarray:
    """Pixels of ``gt`` that carry a label for ``task``: (N, H, W) bool (masks: every pixel)."""
    if task == "depth":
        return valid_depth(gt)
    if task == "normals":
        return valid_normals(gt)
    if task == "figure_ground":
        return np.ones(np.shape(gt), dtype=bool)
    raise ValueError(f"unknown dense task {task!r}; valid: {list(DENSE_TASKS)}")


def _nan_metrics(names: list[str]) -> dict[str, float]:
    return {name: float("nan") for name in names}


def depth_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """delta1/2/3, AbsRel and RMSE of positive depths over the valid pixels.

    Args:
        pred: predicted depth, any shape.
        gt: true depth, same shape, positive where valid.
        valid: pixels to score; pixels whose gt is not finite and positive are always left out.

    Returns:
        ``delta1``, ``delta2``, ``delta3`` (fractions), ``abs_rel`` and ``rmse``; NaN when no pixel is valid.
    """
    keep = pixel_mask(valid, gt.shape) & valid_depth(gt)
    if not keep.any():
        return _nan_metrics(["delta1", "delta2", "delta3", "abs_rel", "rmse"])
    # A scale-and-shift alignment may push a prediction to or below zero: clip it to a tiny depth.
    p, g = np.maximum(np.asarray(pred, dtype=np.float64)[keep], 1e-6), np.asarray(gt, dtype=np.float64)[keep]
    ratio = np.maximum(p / g, g / p)
    out = {f"delta{k}": float(np.mean(ratio < DEPTH_DELTA_BASE ** k)) for k in (1, 2, 3)}
    out["abs_rel"] = float(np.mean(np.abs(p - g) / g))
    out["rmse"] = float(np.sqrt(np.mean((p - g) ** 2)))
    return out


def angular_error_deg(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Angle in degrees between predicted and true normals (last axis: 3 components)."""
    p = pred / np.maximum(np.linalg.norm(pred, axis=-1, keepdims=True), 1e-12)
    g = gt / np.maximum(np.linalg.norm(gt, axis=-1, keepdims=True), 1e-12)
    return np.degrees(np.arccos(np.clip((p * g).sum(-1), -1.0, 1.0)))


def normal_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """Mean and median angular error (degrees) and % of pixels within 11.25, 22.5 and 30 degrees.

    Args:
        pred: predicted normals (..., 3), any length.
        gt: true normals (..., 3).
        valid: pixels to score; pixels whose true normal is non-finite or of ~zero length are always
            left out (:func:`valid_normals`).

    Returns:
        ``mean_angle``, ``median_angle`` and ``within_<t>`` (percent); NaN when no pixel is valid.
    """
    gt = np.asarray(gt, dtype=np.float64)
    keep = pixel_mask(valid, gt.shape[:-1]) & valid_normals(gt)
    if not keep.any():
        return _nan_metrics(["mean_angle", "median_angle", *(f"within_{t:g}" for t in NORMAL_THRESHOLDS_DEG)])
    errors = angular_error_deg(np.asarray(pred, dtype=np.float64)[keep], gt[keep])
    out = {"mean_angle": float(errors.mean()), "median_angle": float(np.median(errors))}
    for threshold in NORMAL_THRESHOLDS_DEG:
        out[f"within_{threshold:g}"] = float(100 * np.mean(errors < threshold))
    return out


def figure_ground_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """Foreground IoU and pixel accuracy of binary masks."""
    keep = pixel_mask(valid, gt.shape)
    p, g = np.asarray(pred, dtype=bool)[keep], np.asarray(gt, dtype=bool)[keep]
    union = np.sum(p | g)
    return {"iou": float(np.sum(p & g) / union) if union else 1.0, "pixel_accuracy": float(np.mean(p == g))}


def task_metrics(task: str, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """The metrics of ``task`` (one of :data:`DENSE_TASKS`) on decoded predictions."""
    if task == "depth":
        return depth_metrics(pred, gt, valid)
    if task == "normals":
        return normal_metrics(pred, gt, valid)
    if task == "figure_ground":
        return figure_ground_metrics(pred, gt, valid)
    raise ValueError(f"unknown dense task {task!r}; valid: {list(DENSE_TASKS)}")


def align_depth_scale(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Rescale each predicted depth map by its median ratio to the truth over its valid pixels, so
    that delta and AbsRel measure shape, not global scale (the scale the scale-invariant loss leaves free)."""
    keep = pixel_mask(valid, gt.shape) & valid_depth(gt)
    out = np.empty_like(pred, dtype=np.float64)
    for i in range(len(pred)):
        ratio = np.median(gt[i][keep[i]] / np.maximum(pred[i][keep[i]], 1e-6)) if keep[i].any() else 1.0
        out[i] = pred[i] * ratio
    return out


def align_depth_scale_shift(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Fit ``a * pred + b`` to the truth by least squares per image over its valid pixels, in depth
    (not log or inverse depth) space, as probe3d's ``match_scale_and_shift`` (El Banani et al. 2024).

    Args:
        pred: predicted depth (N, H, W).
        gt: true depth (N, H, W).
        valid: pixels to fit on; pixels whose gt is not finite and positive are always left out.

    Returns:
        The aligned maps (N, H, W) float64. A map with one distinct predicted value gets the
        minimum-norm solution (its fitted values are the mean true depth); one with no valid pixel
        is returned unchanged.
    """
    keep = pixel_mask(valid, gt.shape) & valid_depth(gt)
    out = np.array(pred, dtype=np.float64)
    for i in range(len(pred)):
        if not keep[i].any():
            continue
        p = out[i][keep[i]]
        design = np.stack([p, np.ones_like(p)], axis=1)
        (scale, shift), *_ = np.linalg.lstsq(design, np.asarray(gt[i][keep[i]], dtype=np.float64), rcond=None)
        out[i] = scale * out[i] + shift
    return out


def align_depth(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, *, method: str) -> np.ndarray:
    """Align predicted depth maps to the truth per image with ``method`` (one of :data:`DEPTH_ALIGNMENTS`)."""
    if method == "median":
        return align_depth_scale(pred, gt, valid)
    if method == "scale_shift":
        return align_depth_scale_shift(pred, gt, valid)
    raise ValueError(f"unknown depth alignment {method!r}; valid: {list(DEPTH_ALIGNMENTS)}")


def per_image_metrics(task: str, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None
                      ) -> dict[str, np.ndarray]:
    """Every metric of ``task`` computed image by image: name -> (N,) array (NaN for an image with no
    labelled pixel)."""
    keep = pixel_mask(valid, gt.shape[:3])
    per_image = [task_metrics(task, pred[i], gt[i], keep[i]) for i in range(len(gt))]
    return {name: np.array([m[name] for m in per_image]) for name in per_image[0]}


