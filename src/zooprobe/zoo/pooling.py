"""Pooling one layer's activations into what the extract stage stores.

A (N, C, H, W) map, a (N, tokens, D) transformer sequence or a (N, D) vector becomes a (N, D)
matrix (:func:`pool`), or stays spatial for dense probes (:func:`spatial_map`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from zooprobe.params.settings import POOLINGS

# What ``pool`` averages in a (N, tokens, D) sequence, as recorded in provenance.
TOKEN_POOLING = "patch_tokens"


def pool(feature: torch.Tensor, pooling: str, *, num_prefix_tokens: int = 0) -> torch.Tensor:
    """Pool one intermediate into a (N, D) matrix.

    Token sequences are pooled as CNN maps are: the prefix tokens (class, register, distillation) are
    dropped, ``avg`` averages the patch tokens and ``avg2x2`` pools the patch grid, put back as (N, D, h, w).

    Args:
        feature: (N, C, H, W) map, (N, tokens, D) sequence or (N, D) vector.
        pooling: ``avg`` (global average) or ``avg2x2`` (2x2 adaptive average, Harun et al. 2024).
        num_prefix_tokens: leading tokens of a sequence that are not patches (timm's ``num_prefix_tokens``);
            ignored for maps and vectors.

    Returns:
        (N, D) float tensor (N, 4D for ``avg2x2`` of a map or sequence); vectors pass through unchanged.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; valid: {list(POOLINGS)}")
    if feature.ndim == 2:
        return feature
    if feature.ndim == 3:
        tokens = feature.shape[1]
        if not 0 <= num_prefix_tokens < tokens:
            raise ValueError(f"num_prefix_tokens must be in 0..{tokens - 1} for a sequence of {tokens} tokens, "
                             f"got {num_prefix_tokens}")
        patches = feature[:, num_prefix_tokens:]
        if pooling == "avg":
            return patches.mean(dim=1)
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise ValueError(f"avg2x2 needs a square grid of patch tokens, but {tokens} tokens less "
                             f"{num_prefix_tokens} prefix tokens leave {patches.shape[1]}; use pooling: avg")
        feature = patches.reshape(feature.shape[0], side, side, feature.shape[2]).permute(0, 3, 1, 2)
    if feature.ndim != 4:
        raise ValueError(f"expected a (N, C, H, W) map or (N, D) vector, got shape {tuple(feature.shape)}")
    if pooling == "avg":
        return feature.mean(dim=(2, 3))
    return F.adaptive_avg_pool2d(feature, 2).flatten(1)


# Most prefix tokens (class, register, distillation) a token sequence may carry before its grid.
MAX_PREFIX_TOKENS = 16


def spatial_map(feature: torch.Tensor, *, grid: int | None = None, num_prefix_tokens: int | None = None
                ) -> torch.Tensor:
    """Keep one layer spatial, as (N, C, h, w), for dense probes.

    Args:
        feature: a (N, C, h, w) map, or a (N, tokens, D) transformer sequence whose last h*w
            tokens are patches on a square grid (the first ones, e.g. CLS, are dropped), or a
            (N, D) vector such as pre-logits, kept as a 1 x 1 map.
        grid: average-pool maps larger than ``grid`` x ``grid`` down to that size (bounds storage).
        num_prefix_tokens: the sequence's leading non-patch tokens when the extractor knows them;
            ``None`` infers them as the tokens beyond the largest square grid.

    Returns:
        (N, C, h, w) tensor.
    """
    if feature.ndim == 2:
        return feature[:, :, None, None]
    if feature.ndim == 3:
        tokens = feature.shape[1]
        side = math.isqrt(tokens - (num_prefix_tokens or 0))
        if num_prefix_tokens is not None and num_prefix_tokens + side * side != tokens:
            raise ValueError(f"{tokens} tokens less {num_prefix_tokens} prefix tokens are not a square grid of patches")
        if tokens - side * side > MAX_PREFIX_TOKENS:
            raise ValueError(f"{tokens} tokens are not a square grid of patches after at most "
                             f"{MAX_PREFIX_TOKENS} prefix tokens; cannot put them back on a grid")
        patches = feature[:, tokens - side * side:]
        feature = patches.reshape(feature.shape[0], side, side, feature.shape[2]).permute(0, 3, 1, 2)
    if feature.ndim != 4:
        raise ValueError(f"expected a (N, C, h, w) map or (N, tokens, D) sequence, got shape {tuple(feature.shape)}")
    if grid is not None and (feature.shape[2] > grid or feature.shape[3] > grid):
        feature = F.adaptive_avg_pool2d(feature, (min(grid, feature.shape[2]), min(grid, feature.shape[3])))
    return feature


def concat_at_stride(maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Resample several layers' maps to one (h, w) with bilinear interpolation and stack their channels."""
    return torch.cat([F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False) for m in maps], dim=1)
