"""Dense-probe heads on frozen (N, C, h, w) features: losses, the heads, fitting and prediction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from zooprobe.probes.dense.metrics import DENSE_TASKS, pixel_mask, valid_pixels

HEADS: tuple[str, ...] = ("linear", "conv")
OUTPUT_CHANNELS = {"depth": 1, "normals": 3, "figure_ground": 1}
# Weight of the squared mean log error in the scale-invariant loss (Eigen et al. use 0.5).
SCALE_INVARIANCE = 0.5
CONV_HIDDEN = 64


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
    keep = pixel_mask(valid, labels.shape[:3]) & valid_pixels(task, labels)
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
