"""Pseudo-negatives by Langevin dynamics on a classifier's class score, and their per-round grid."""

from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np
import torch
import torchvision.utils

from zooprobe.params.introspective import IntrospectiveSettings, SamplerSettings, round_epochs

log = logging.getLogger(__name__)

SAMPLE_BATCH = 256  # images per Langevin chunk: bounds memory, whatever samples_per_class is


def class_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``logit_target - logit_negative``: the log ratio p(target | x) / p(pseudo-negative | x).

    Args:
        logits: (n, K+1) with the pseudo-negative output last.
        targets: (n,) class indices in ``[0, K)``.

    Returns:
        (n,) scores.
    """
    return logits.gather(1, targets[:, None])[:, 0] - logits[:, -1]


def langevin(score: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, settings: SamplerSettings, *,
             low: torch.Tensor | float | None, high: torch.Tensor | float | None,
             generator: torch.Generator) -> torch.Tensor:
    """Run Langevin chains on ``score`` (the unnormalised log density) from ``start``.

    Each step is ``x <- clip(x + step_size * grad score(x) + sqrt(2 step_size T) * eps, low, high)``
    with ``eps ~ N(0, I)`` (the unadjusted Langevin algorithm; the gradient is exact, not a
    minibatch estimate). Its stationary distribution approaches ``∝ exp(score / T)`` on the box as
    the step shrinks; clamping is the projection onto the box.

    Args:
        score: maps a batch to one log density (up to a constant) per row.
        start: initial batch, one chain per row (its device is used throughout).
        settings: steps, step size and temperature.
        low: lower bound of valid values (a float, or a tensor broadcastable to a row); None for none.
        high: upper bound; None for none.
        generator: CPU generator of the noise, so samples do not depend on the device.

    Returns:
        The final batch, detached.
    """
    x = start.detach().clone()
    noise_sd = settings.noise_sd
    for _ in range(settings.steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(score(x).sum(), x)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x.detach() + settings.step_size * grad + noise_sd * noise
        if low is not None or high is not None:
            x = torch.clamp(x, low, high)
    return x.detach()


def tile_grid(samples: np.ndarray) -> np.ndarray:
    """Lay (K, g, H, W, C) images out as one (K*(H+1)-1, g*(W+1)-1, C) uint8 grid, a class per row.

    Tiles are one white (255) pixel apart, with no outer border.

    Args:
        samples: uint8 images, K classes by g samples each.

    Returns:
        The grid, channels last.
    """
    k, g, h, w, c = samples.shape
    if k * g == 1:  # make_grid returns a single image as it is
        return np.ascontiguousarray(samples[0, 0])
    tiles = torch.from_numpy(np.ascontiguousarray(samples.reshape(k * g, h, w, c))).permute(0, 3, 1, 2)
    grid = torchvision.utils.make_grid(tiles, nrow=g, padding=1, pad_value=255)
    # make_grid also pads the outer border (cropped here) and turns one channel into three (the first is kept).
    return grid[:c, 1:-1, 1:-1].permute(1, 2, 0).contiguous().numpy()


class PixelSynthesiser:
    """The per-epoch hook of :func:`zooprobe.train.recipe.train_model` that runs the synthesis rounds.

    Before each round's epoch it draws ``samples_per_class`` images per class by Langevin
    dynamics on the class score, clamped to [0, 1] (from the previous round's samples with
    ``init: previous``), keeps a grid of them and returns them as new negatives.
    """

    def __init__(self, settings: IntrospectiveSettings, *, epochs: int, num_classes: int, real: np.ndarray,
                 seed: int) -> None:
        self.settings = settings
        self.epochs = round_epochs(settings.rounds, epochs)
        self.num_classes = num_classes
        pixels = torch.from_numpy(real).float().div(255.0)
        self.image_shape = tuple(real.shape[1:])
        # Starting noise matches the real images' per-channel mean and sd.
        self.mean, self.std = pixels.mean(dim=(0, 1, 2)), pixels.std(dim=(0, 1, 2))
        self.generator = torch.Generator().manual_seed(seed)
        self.previous: torch.Tensor | None = None
        self.grids: list[np.ndarray] = []
        self.rounds: list[dict[str, float]] = []

    def targets(self) -> torch.Tensor:
        return torch.arange(self.num_classes).repeat_interleave(self.settings.samples_per_class)

    def __call__(self, epoch: int, model: torch.nn.Module, preprocess: Callable[[torch.Tensor], torch.Tensor]
                 ) -> torch.Tensor | None:
        if epoch not in self.epochs:
            return None
        started = time.perf_counter()
        targets = self.targets()
        if self.settings.sampler.init == "previous" and self.previous is not None:
            start = self.previous
        else:
            noise = torch.randn((len(targets), *self.image_shape), generator=self.generator)
            start = (self.mean + self.std * noise).clamp(0, 1)
        device = next(model.parameters()).device
        model.eval()
        samples, before, after = [], [], []
        for chunk in range(0, len(targets), SAMPLE_BATCH):
            y = targets[chunk:chunk + SAMPLE_BATCH].to(device)

            def score(x: torch.Tensor, y: torch.Tensor = y) -> torch.Tensor:
                return class_scores(model(preprocess(x)), y)

            x0 = start[chunk:chunk + SAMPLE_BATCH].to(device)
            x = langevin(score, x0, self.settings.sampler, low=0.0, high=1.0, generator=self.generator)
            with torch.no_grad():
                before.append(score(x0).cpu())
                after.append(score(x).cpu())
            samples.append(x.cpu())
        synthesised = torch.cat(samples)
        self.previous = synthesised
        keep = min(self.settings.grid_per_class, self.settings.samples_per_class)
        per_class = synthesised.view(self.num_classes, self.settings.samples_per_class, *self.image_shape)[:, :keep]
        self.grids.append(tile_grid((per_class.numpy() * 255).round().astype(np.uint8)))
        self.rounds.append({"round": len(self.rounds) + 1, "epoch": epoch, "samples": len(targets),
                            "score_before": float(torch.cat(before).mean()),
                            "score_after": float(torch.cat(after).mean())})
        # Timings go to the log only: a rerun must write the same bytes.
        log.info("round %d before epoch %d: class score %.2f -> %.2f over %d samples in %.1f s", len(self.rounds),
                 epoch + 1, self.rounds[-1]["score_before"], self.rounds[-1]["score_after"], len(targets),
                 time.perf_counter() - started)
        return synthesised
