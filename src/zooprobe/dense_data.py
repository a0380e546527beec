"""Image sets with per-pixel labels for dense probes: procedural scenes, NYUv2, Middlebury.

Each builder returns an :class:`~zooprobe.datasets.ImageSet` whose ``dense`` mapping holds the
labels aligned with the images: ``depth`` (N, H, W) float32 with 0 where unknown,
``normals`` (N, H, W, 3) and ``mask`` (N, H, W) uint8 figure-ground, where the source has them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zooprobe.datasets import ImageSet, stratified_split
from zooprobe.scenes import render_scenes

# Middlebury 2014 "Motorcycle" as scikit-image ships it (down-sampled 4x); from its docstring.
MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_BASELINE_MM = 193.001
MOTORCYCLE_DOFFS_PX = 31.086  # "Principal point dx": the two cameras' principal points differ by this


def build_scenes(*, n: int, size: int, splits: dict[str, float], seed: int, **_: Any) -> ImageSet:
    """``n`` procedural scenes (see :mod:`zooprobe.scenes`) with depth, normals and masks.

    There is one class: the dense labels carry the task.
    """
    scenes = render_scenes(n, size, seed)
    labels = np.zeros(n, dtype=np.int64)
    split = stratified_split(labels, splits, seed)
    return ImageSet(scenes.image, labels, split, ["scene"], {"source": "procedural", "generator": "scenes"},
                    dense={"depth": scenes.depth, "normals": scenes.normals, "mask": scenes.mask})


def motorcycle_depth_m(disparity: np.ndarray) -> np.ndarray:
    """Depth in metres from the Motorcycle disparity (pixels); 0 where the disparity is unknown (NaN)."""
    disparity = np.asarray(disparity, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        depth = MOTORCYCLE_BASELINE_MM * MOTORCYCLE_FOCAL_PX / (disparity + MOTORCYCLE_DOFFS_PX) / 1000.0
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def build_middlebury_motorcycle(*, size: int | None = None, **_: Any) -> ImageSet:
    """The Middlebury 2014 "Motorcycle" left image with metric depth, a real-image depth sanity check.

    Args:
        size: resize the (500, 741) image and depth to ``size`` x ``size`` (depth by nearest
            neighbour, so unknown pixels stay unknown); ``None`` keeps the original.

    Returns:
        One ``test`` image with ``dense["depth"]`` in metres, 0 where unknown.
    """
    from skimage.data import stereo_motorcycle

    left, _right, disparity = stereo_motorcycle()
    disparity = disparity[..., 0] if disparity.ndim == 3 else disparity
    depth = motorcycle_depth_m(disparity)
    image = np.asarray(left, dtype=np.uint8)
    if size:
        from PIL import Image

        image = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
        depth = np.asarray(Image.fromarray(depth).resize((size, size), Image.Resampling.NEAREST))
    return ImageSet(image[None], np.zeros(1, dtype=np.int64), np.array(["test"]), ["motorcycle"],
                    {"source": "middlebury", "scene": "Motorcycle", "depth_unit": "m"},
                    dense={"depth": depth[None].astype(np.float32)})


def build_nyuv2(path: str | Path, *, size: int | None = None, splits: dict[str, float] | None = None,
                seed: int = 0, **_: Any) -> ImageSet:
    """NYU Depth v2 labeled set from its MATLAB v7.3 file (``nyu_depth_v2_labeled.mat``).

    Args:
        path: the ``.mat`` file (HDF5 inside; ``images`` and ``depths`` as MATLAB stores them).
        size: resize to ``size`` x ``size``.
        splits: split fractions (default all ``test``).
        seed: seed of the split.

    Returns:
        RGB images with ``dense["depth"]`` in metres (0 where the sensor gave none).
    """
    from zooprobe.h5io import read_nyuv2_mat

    images, depths = read_nyuv2_mat(path)
    if size:
        from PIL import Image

        images = np.stack([np.asarray(Image.fromarray(i).resize((size, size), Image.Resampling.BILINEAR))
                           for i in images])
        depths = np.stack([np.asarray(Image.fromarray(d).resize((size, size), Image.Resampling.NEAREST))
                           for d in depths])
    labels = np.zeros(len(images), dtype=np.int64)
    return ImageSet(images, labels, stratified_split(labels, splits or {"test": 1.0}, seed), ["scene"],
                    {"source": "url", "format": "nyuv2-mat"}, dense={"depth": depths.astype(np.float32)})
