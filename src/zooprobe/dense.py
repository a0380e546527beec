"""Dense probes on frozen spatial features: depth, surface normals and figure-ground.

Following Chen, Marks & Cheng (2024), a small head reads a frozen (N, C, h, w) feature map and
predicts a per-pixel target at the label resolution:

* ``linear``: a 1x1 convolution, then bilinear upsampling;
* ``conv``: two 3x3 convolutions with ReLU, a 1x1 convolution, then upsampling.

Tasks, their losses and metrics:

* ``depth``: predicts log depth with the scale-invariant loss (Eigen et al. 2014); metrics
  delta1..3 (share of pixels with max(pred/gt, gt/pred) < 1.25**k), AbsRel and RMSE;
* ``normals``: predicts a 3-vector normalised per pixel, with the angular (cosine) loss;
  metrics mean and median angular error in degrees and % of pixels within 11.25, 22.5 and 30;
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


# ----------------------------------------------------------------------------- metrics
def _valid(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)


def depth_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """delta1/2/3, AbsRel and RMSE of positive depths over the valid pixels.

    Args:
        pred: predicted depth, any shape.
        gt: true depth, same shape, positive where valid.
        valid: pixels to score (default: every pixel with gt > 0).

    Returns:
        ``delta1``, ``delta2``, ``delta3`` (fractions), ``abs_rel`` and ``rmse``.
    """
    keep = _valid(valid, gt.shape) & (gt > 0)
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
    """Mean and median angular error (degrees) and % of pixels within 11.25, 22.5 and 30 degrees."""
    errors = angular_error_deg(np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64))
    errors = errors[_valid(valid, errors.shape)]
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
        valid: bool (N, H, W) pixels with a label (default all).

    Returns:
        The trained head, in eval mode.
    """
    if task not in DENSE_TASKS:
        raise ValueError(f"unknown dense task {task!r}; valid: {list(DENSE_TASKS)}")
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = _targets(task, labels)
    mask = torch.from_numpy(_valid(valid, labels.shape[:3]).astype(np.float32))
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
    :func:`align_depth_scale`.
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
    """Rescale each predicted depth map by its median ratio to the truth (the usual protocol for
    scale-invariant predictions), so that delta and AbsRel measure shape, not global scale."""
    keep = _valid(valid, gt.shape) & (gt > 0)
    out = np.empty_like(pred, dtype=np.float64)
    for i in range(len(pred)):
        ratio = np.median(gt[i][keep[i]] / np.maximum(pred[i][keep[i]], 1e-6)) if keep[i].any() else 1.0
        out[i] = pred[i] * ratio
    return out


# ----------------------------------------------------------------------------- per model
SCORE_METRIC = {"depth": "delta1", "normals": "neg_mean_angle", "figure_ground": "iou"}
LABEL_OF_TASK = {"depth": "depth", "normals": "normals", "figure_ground": "mask"}
LAYER_CHOICES: tuple[str, ...] = ("last", "best")


def per_image_metrics(task: str, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None
                      ) -> dict[str, np.ndarray]:
    """Every metric of ``task`` computed image by image: name -> (N,) array."""
    keep = _valid(valid, gt.shape[:3])
    per_image = [task_metrics(task, pred[i], gt[i], keep[i]) for i in range(len(gt))]
    return {name: np.array([m[name] for m in per_image]) for name in per_image[0]}


def dense_benchmark_name(task: str, dataset: str) -> str:
    return f"{task}@{dataset}"


def probe_layers(layers: dict[str, np.ndarray], labels: dict[str, np.ndarray], split: np.ndarray, *,
                 tasks: list[str], dataset: str, settings: DenseProbeSettings, layer_choice: str, n_boot: int
                 ) -> list[dict[str, object]]:
    """Fit a dense head per task and layer on the train images and score it on the test images.

    Args:
        layers: layer -> spatial features (N, C, h, w).
        labels: the dataset's dense labels (``depth``, ``normals``, ``mask``).
        split: per-image split; ``train`` and ``val`` images train, ``test`` images score.
        tasks: dense tasks to probe (those whose labels the dataset has).
        dataset: the dataset's name, for the benchmark names (``<task>@<dataset>``).
        settings: head and optimisation.
        layer_choice: ``last`` or ``best`` layer stands for the model.
        n_boot: bootstrap resamples of test images (seeded by ``settings.seed``, so paired across models).

    Returns:
        One result per task: rows (layer, metric, value, CI; every metric is the mean over test
        images of the per-image value), the score metric (higher is better), the selected layer,
        its score and bootstrap replicates.
    """
    from zooprobe import stats

    if layer_choice not in LAYER_CHOICES:
        raise ValueError(f"unknown layer choice {layer_choice!r}; valid: {list(LAYER_CHOICES)}")
    train, test = np.isin(split, ("train", "val")), split == "test"
    if not train.any() or not test.any():
        raise ValueError(f"dense probes need train and test images; the splits here are {sorted(set(split))}")
    counts = stats.bootstrap_counts(int(test.sum()), n_boot=n_boot, seed=settings.seed)
    results = []
    for task in tasks:
        gt = labels[LABEL_OF_TASK[task]]
        valid = gt > 0 if task == "depth" else None
        rows, scores = [], {}
        for layer, features in layers.items():
            head = fit_dense_probe(features[train], gt[train], task=task, settings=settings,
                                   valid=None if valid is None else valid[train])
            pred = predict_dense(head, features[test], task=task, size=tuple(gt.shape[1:3]))
            test_valid = None if valid is None else valid[test]
            if task == "depth":
                pred = align_depth_scale(pred, gt[test], test_valid)
            metrics = per_image_metrics(task, pred, gt[test], test_valid)
            if task == "normals":
                metrics["neg_mean_angle"] = -metrics["mean_angle"]
            for name, values in metrics.items():
                replicates = counts @ values / len(values)
                if name == SCORE_METRIC[task]:
                    scores[layer] = (float(values.mean()), replicates)
                if name == "neg_mean_angle":
                    continue
                low, high = stats.percentile_interval(replicates)
                rows.append({"layer": layer, "metric": name, "value": float(values.mean()), "ci_low": low,
                             "ci_high": high, "n": len(values)})
        names = list(layers)
        chosen = names[-1] if layer_choice == "last" else max(names, key=lambda n: scores[n][0])
        results.append({"benchmark": dense_benchmark_name(task, dataset), "kind": "dense", "rows": rows,
                        "score_metric": SCORE_METRIC[task], "selected_layer": chosen, "score": scores[chosen][0],
                        "replicates": [float(v) for v in scores[chosen][1]], "extra": {}})
    return results
