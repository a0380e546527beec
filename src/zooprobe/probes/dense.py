"""Dense probes on frozen spatial features: depth, surface normals and figure-ground.

Following Chen, Marks & Cheng (2024), a small head reads a frozen (N, C, h, w) feature map and
predicts a per-pixel target at the label resolution:

* ``linear``: a 1x1 convolution, then bilinear upsampling;
* ``conv``: two 3x3 convolutions with ReLU, a 1x1 convolution, then upsampling.

Tasks, their losses and metrics:

* ``depth``: predicts log depth with the scale-invariant loss (Eigen et al. 2014); each predicted
  map is aligned to the truth per image (:data:`DEPTH_ALIGNMENTS`), then scored with delta1..3
  (share of pixels with max(pred/gt, gt/pred) < 1.25**k), AbsRel and RMSE over the pixels whose
  true depth is finite and positive;
* ``normals``: predicts a 3-vector normalised per pixel, with the angular (cosine) loss;
  metrics mean and median angular error in degrees and % of pixels within 11.25, 22.5 and 30,
  over the pixels whose true normal is finite and of non-zero length;
* ``figure_ground``: predicts a foreground logit with binary cross-entropy; metrics
  foreground IoU and pixel accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

DENSE_TASKS: tuple[str, ...] = ("depth", "normals", "figure_ground")
HEADS: tuple[str, ...] = ("linear", "conv")
OUTPUT_CHANNELS = {"depth": 1, "normals": 3, "figure_ground": 1}
NORMAL_THRESHOLDS_DEG: tuple[float, ...] = (11.25, 22.5, 30.0)
DEPTH_DELTA_BASE = 1.25
# Weight of the squared mean log error in the scale-invariant loss (Eigen et al. use 0.5).
SCALE_INVARIANCE = 0.5
CONV_HIDDEN = 64
# A true normal shorter than this is "no normal" (a zero vector marks unknown pixels), not a direction.
MIN_NORMAL_NORM = 1e-6
# Per-image alignment of a predicted depth map to the truth before scoring:
# median: multiply by the median of gt/pred (scale only; the scale-invariant loss leaves a scale free);
# scale_shift: least-squares a * pred + b against gt in depth space, as probe3d's match_scale_and_shift
# (El Banani et al. 2024), the protocol Chen et al.'s mid-level probes report.
DEPTH_ALIGNMENTS: tuple[str, ...] = ("median", "scale_shift")


# ----------------------------------------------------------------------------- metrics
def _valid(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
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
    keep = _valid(valid, gt.shape) & valid_depth(gt)
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
    keep = _valid(valid, gt.shape[:-1]) & valid_normals(gt)
    if not keep.any():
        return _nan_metrics(["mean_angle", "median_angle", *(f"within_{t:g}" for t in NORMAL_THRESHOLDS_DEG)])
    errors = angular_error_deg(np.asarray(pred, dtype=np.float64)[keep], gt[keep])
    out = {"mean_angle": float(errors.mean()), "median_angle": float(np.median(errors))}
    for threshold in NORMAL_THRESHOLDS_DEG:
        out[f"within_{threshold:g}"] = float(100 * np.mean(errors < threshold))
    return out


def figure_ground_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """Foreground IoU and pixel accuracy of binary masks."""
    keep = _valid(valid, gt.shape)
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


# ----------------------------------------------------------------------------- losses
def scale_invariant_loss(pred_log: torch.Tensor, gt_log: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Eigen et al. (2014): mean(d^2) - lambda * mean(d)^2 with d = log pred - log gt, per image."""
    d = (pred_log - gt_log) * valid
    count = valid.sum(dim=(1, 2)).clamp(min=1)
    mean_sq = (d ** 2).sum(dim=(1, 2)) / count
    mean = d.sum(dim=(1, 2)) / count
    return (mean_sq - SCALE_INVARIANCE * mean ** 2).mean()


def angular_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(angle) over valid pixels; channels on axis 1."""
    cosine = F.cosine_similarity(pred, gt, dim=1)
    return ((1 - cosine) * valid).sum() / valid.sum().clamp(min=1)


# ----------------------------------------------------------------------------- heads
class DenseHead(torch.nn.Module):
    """A probe head from (N, C, h, w) features to (N, out, H, W) at the label resolution."""

    def __init__(self, channels: int, out_channels: int, *, kind: str = "linear") -> None:
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"unknown dense head {kind!r}; valid: {list(HEADS)}")
        self.norm = torch.nn.BatchNorm2d(channels, affine=False)  # feature scales differ by layer and model
        if kind == "linear":
            self.body = torch.nn.Conv2d(channels, out_channels, 1)
        else:
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(channels, CONV_HIDDEN, 3, padding=1), torch.nn.ReLU(),
                torch.nn.Conv2d(CONV_HIDDEN, CONV_HIDDEN, 3, padding=1), torch.nn.ReLU(),
                torch.nn.Conv2d(CONV_HIDDEN, out_channels, 1))

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = self.body(self.norm(features))
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class DenseProbeSettings:
    """How one dense head is trained: Adam over shuffled mini-batches for a fixed number of epochs."""

    head: str = "linear"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-2
    weight_decay: float = 1e-4
    seed: int = 0


def _targets(task: str, labels: np.ndarray) -> torch.Tensor:
    """Training targets: log depth (N, H, W), normals (N, 3, H, W), masks (N, H, W)."""
    if task == "depth":
        return torch.from_numpy(np.log(np.maximum(labels, 1e-6)).astype(np.float32))
    if task == "normals":
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(labels, -1, 1)).astype(np.float32))
    return torch.from_numpy(labels.astype(np.float32))


def _loss(task: str, out: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    if task == "depth":
        return scale_invariant_loss(out[:, 0], target, valid)
    if task == "normals":
        return angular_loss(out, target, valid)
    return (F.binary_cross_entropy_with_logits(out[:, 0], target, reduction="none") * valid).sum() / valid.sum()


def fit_dense_probe(features: np.ndarray, labels: np.ndarray, *, task: str, settings: DenseProbeSettings,
                    valid: np.ndarray | None = None) -> DenseHead:
    """Fit a dense head on frozen features.

    Args:
        features: float (N, C, h, w).
        labels: depth (N, H, W), normals (N, H, W, 3) or masks (N, H, W).
        task: one of :data:`DENSE_TASKS`.
        settings: head kind and optimisation.
        valid: bool (N, H, W) pixels to train on; pixels without a usable label
            (:func:`valid_pixels`) are always left out.

    Returns:
        The trained head, in eval mode.
    """
    if task not in DENSE_TASKS:
        raise ValueError(f"unknown dense task {task!r}; valid: {list(DENSE_TASKS)}")
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    keep = _valid(valid, labels.shape[:3]) & valid_pixels(task, labels)
    # Unlabelled pixels get a harmless finite target: NaN times a zero mask is still NaN in the loss.
    filler = 1.0 if task == "depth" else 0.0
    labels = np.where(keep[..., None] if labels.ndim == 4 else keep, labels, filler)
    y = _targets(task, labels)
    mask = torch.from_numpy(keep.astype(np.float32))
    size = tuple(labels.shape[1:3])
    head = DenseHead(x.shape[1], OUTPUT_CHANNELS[task], kind=settings.head)
    optimizer = torch.optim.Adam(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    for _ in range(settings.epochs):
        head.train()
        for index in torch.randperm(len(x), generator=generator).split(settings.batch_size):
            loss = _loss(task, head(x[index], size), y[index], mask[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return head.eval()


@torch.inference_mode()
def predict_dense(head: DenseHead, features: np.ndarray, *, task: str, size: tuple[int, int],
                  batch_size: int = 64) -> np.ndarray:
    """Decoded predictions: depth (N, H, W), unit normals (N, H, W, 3) or masks (N, H, W).

    The scale-invariant loss fixes depth only up to a global scale per image; score it after
    :func:`align_depth`.
    """
    outs = []
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    for start in range(0, len(x), batch_size):
        outs.append(head(x[start:start + batch_size], size))
    out = torch.cat(outs)
    if task == "depth":
        return torch.exp(out[:, 0]).numpy()
    if task == "normals":
        return F.normalize(out, dim=1).permute(0, 2, 3, 1).numpy()
    return (out[:, 0] > 0).numpy().astype(np.uint8)


def align_depth_scale(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Rescale each predicted depth map by its median ratio to the truth over its valid pixels, so
    that delta and AbsRel measure shape, not global scale (the scale the scale-invariant loss leaves free)."""
    keep = _valid(valid, gt.shape) & valid_depth(gt)
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
    keep = _valid(valid, gt.shape) & valid_depth(gt)
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


# ----------------------------------------------------------------------------- per model
SCORE_METRIC = {"depth": "delta1", "normals": "neg_mean_angle", "figure_ground": "iou"}
LABEL_OF_TASK = {"depth": "depth", "normals": "normals", "figure_ground": "mask"}
LAYER_CHOICES: tuple[str, ...] = ("last", "best")


def per_image_metrics(task: str, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None
                      ) -> dict[str, np.ndarray]:
    """Every metric of ``task`` computed image by image: name -> (N,) array (NaN for an image with no
    labelled pixel)."""
    keep = _valid(valid, gt.shape[:3])
    per_image = [task_metrics(task, pred[i], gt[i], keep[i]) for i in range(len(gt))]
    return {name: np.array([m[name] for m in per_image]) for name in per_image[0]}


def dense_benchmark_name(task: str, dataset: str) -> str:
    return f"{task}@{dataset}"


def _scored_metrics(head: DenseHead, features: np.ndarray, gt: np.ndarray, *, task: str,
                    depth_alignment: str) -> dict[str, np.ndarray]:
    """Per-image metrics of ``head`` on some images (depth aligned per image first); higher-is-better
    ``neg_mean_angle`` added for normals."""
    pred = predict_dense(head, features, task=task, size=tuple(gt.shape[1:3]))
    if task == "depth":
        pred = align_depth(pred, gt, method=depth_alignment)
    metrics = per_image_metrics(task, pred, gt)
    if task == "normals":
        metrics["neg_mean_angle"] = -metrics["mean_angle"]
    return metrics


def _resampled_means(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Bootstrap replicates of the mean over the images that have a value (finite).

    Every task of a dataset resamples the same test images with the same counts (a joint draw);
    an image with no labelled pixel for this task has no value and drops out of the mean.
    """
    scored = np.isfinite(values)
    weights = counts[:, scored]
    return weights @ values[scored] / np.maximum(weights.sum(axis=1), 1)


def probe_layers(layers: dict[str, np.ndarray], labels: dict[str, np.ndarray], split: np.ndarray, *,
                 tasks: list[str], dataset: str, settings: DenseProbeSettings, layer_choice: str, n_boot: int,
                 depth_alignment: str) -> list[dict[str, object]]:
    """Fit a dense head per task and layer on the train images, choose the layer on val, score on test.

    No choice looks at the scored images: with ``layer_choice="best"`` the layer whose head scores
    best on the ``val`` images stands for the model (ties: the earlier layer), and its ``test``
    score is reported; with ``last`` the last layer does, and val images are not needed. Heads
    train on ``train`` images only, whatever the choice, so both choices score the same heads.

    Args:
        layers: layer -> spatial features (N, C, h, w).
        labels: the dataset's dense labels (``depth``, ``normals``, ``mask``).
        split: per-image split; ``train`` images train, ``val`` images choose the layer, ``test`` images score.
        tasks: dense tasks to probe (those whose labels the dataset has).
        dataset: the dataset's name, for the benchmark names (``<task>@<dataset>``) and errors.
        settings: head and optimisation.
        layer_choice: ``last`` or ``best`` (on val) layer stands for the model.
        n_boot: bootstrap resamples of test images (seeded by ``settings.seed``, so paired across models
            and joint across the tasks of the dataset).
        depth_alignment: per-image alignment of predicted depth before scoring, one of :data:`DEPTH_ALIGNMENTS`.

    Returns:
        One result per task: rows (layer, metric, value, CI; every metric is the mean over the test
        images with a labelled pixel of the per-image value), the score metric (higher is better),
        the selected layer, the split that chose it (``layer_chosen_on``: ``val`` or ``none``), the
        val score of every layer (``val_scores``), the selected layer's test score and its
        bootstrap replicates.
    """
    from zooprobe.analysis import stats

    if layer_choice not in LAYER_CHOICES:
        raise ValueError(f"unknown layer choice {layer_choice!r}; valid: {list(LAYER_CHOICES)}")
    if depth_alignment not in DEPTH_ALIGNMENTS:
        raise ValueError(f"unknown depth alignment {depth_alignment!r}; valid: {list(DEPTH_ALIGNMENTS)}")
    train, val, test = split == "train", split == "val", split == "test"
    if not train.any() or not test.any():
        raise ValueError(f"dense probes need train and test images; the splits of {dataset!r} are {sorted(set(split))}")
    if layer_choice == "best" and not val.any():
        raise ValueError(f"dense.layer 'best' chooses the layer on val images, and {dataset!r} has none (splits "
                         f"{sorted(set(split))}); give it a val split (procedural scenes: a val fraction in "
                         f"splits; nyuv2-mat: val_fraction, carved from the official train frames) or set "
                         f"dense.layer: last")
    counts = stats.bootstrap_counts(int(test.sum()), n_boot=n_boot, seed=settings.seed)
    results = []
    for task in tasks:
        gt = labels[LABEL_OF_TASK[task]]
        metric = SCORE_METRIC[task]
        rows, test_scores, val_scores = [], {}, {}
        for layer, features in layers.items():
            head = fit_dense_probe(features[train], gt[train], task=task, settings=settings)
            if layer_choice == "best":
                val_values = _scored_metrics(head, features[val], gt[val], task=task,
                                             depth_alignment=depth_alignment)[metric]
                if not np.isfinite(val_values).any():
                    raise ValueError(f"{task}@{dataset}: no val image has a labelled pixel to choose the layer on")
                val_scores[layer] = float(np.nanmean(val_values))
            metrics = _scored_metrics(head, features[test], gt[test], task=task, depth_alignment=depth_alignment)
            for name, values in metrics.items():
                scored = np.isfinite(values)
                if not scored.any():
                    raise ValueError(f"{task}@{dataset}: no test image has a labelled pixel")
                replicates = _resampled_means(values, counts)
                if name == metric:
                    test_scores[layer] = (float(values[scored].mean()), replicates)
                if name == "neg_mean_angle":
                    continue
                low, high = stats.percentile_interval(replicates)
                rows.append({"layer": layer, "metric": name, "value": float(values[scored].mean()), "ci_low": low,
                             "ci_high": high, "n": int(scored.sum())})
        names = list(layers)
        chosen = names[-1] if layer_choice == "last" else max(names, key=lambda n: val_scores[n])
        results.append({"benchmark": dense_benchmark_name(task, dataset), "kind": "dense", "rows": rows,
                        "score_metric": metric, "selected_layer": chosen,
                        "layer_chosen_on": "val" if layer_choice == "best" else "none",
                        "val_scores": val_scores, "n_val": int(val.sum()) if layer_choice == "best" else 0,
                        "score": test_scores[chosen][0],
                        "replicates": [float(v) for v in test_scores[chosen][1]], "extra": {}})
    return results
