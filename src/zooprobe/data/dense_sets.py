"""Image sets with per-pixel labels for dense probes: procedural scenes, NYUv2, Middlebury.

Each builder returns an :class:`~zooprobe.data.imageset.ImageSet` whose ``dense`` mapping holds the
labels aligned with the images: ``depth`` (N, H, W) float32 with 0 where unknown,
``normals`` (N, H, W, 3) and ``mask`` (N, H, W) uint8 figure-ground, where the source has them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zooprobe.data.imageset import ImageSet, carve_val, stratified_split
from zooprobe.data.scenes import render_scenes
from zooprobe.io.h5io import read_mat_arrays

# Middlebury 2014 "Motorcycle" as scikit-image ships it (down-sampled 4x); from its docstring.
MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_BASELINE_MM = 193.001
MOTORCYCLE_DOFFS_PX = 31.086  # "Principal point dx": the two cameras' principal points differ by this


def build_scenes(*, n: int, size: int, splits: dict[str, float], seed: int, **_: Any) -> ImageSet:
    """``n`` procedural scenes (see :mod:`zooprobe.data.scenes`) with depth, normals and masks.

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


# NYU Depth v2's official split (Silberman et al. 2012), distributed beside the labeled set as
# splits.mat: 1-based frame indices, 795 train and 654 test frames, disjoint by scene.
NYUV2_SPLIT_KEYS: tuple[str, str] = ("trainNdxs", "testNdxs")


def read_nyuv2_splits(path: str | Path, *, n_frames: int) -> np.ndarray:
    """The official train/test split of NYUv2's labeled frames from its ``splits.mat``.

    Args:
        path: the split file, MATLAB (v5, or v7.3 which is HDF5) with ``trainNdxs`` and ``testNdxs``,
            1-based indices into the labeled frames as NYU distributes them.
        n_frames: frames in the labeled ``.mat``; the two index sets must partition them.

    Returns:
        (n_frames,) split names, ``train`` or ``test``.
    """
    import scipy.io

    try:
        arrays = scipy.io.loadmat(str(path), variable_names=list(NYUV2_SPLIT_KEYS))
    except (NotImplementedError, ValueError) as not_v5:  # MATLAB v7.3 files are HDF5, which only h5io reads
        try:
            arrays, _found = read_mat_arrays(path, NYUV2_SPLIT_KEYS)
        except OSError as not_hdf5:
            raise ValueError(f"{path}: not a MATLAB split file (v5: {not_v5}; v7.3/HDF5: {not_hdf5})") from not_hdf5
    missing = [key for key in NYUV2_SPLIT_KEYS if key not in arrays]
    if missing:
        raise ValueError(f"{path}: no {missing} in this split file; expected NYUv2's splits.mat with "
                         f"{list(NYUV2_SPLIT_KEYS)} (1-based frame indices)")
    train, test = (np.asarray(arrays[key]).ravel() for key in NYUV2_SPLIT_KEYS)
    for key, index in zip(NYUV2_SPLIT_KEYS, (train, test)):
        if index.size == 0 or not np.all(index == np.round(index)) or index.min() < 1 or index.max() > n_frames:
            raise ValueError(f"{path}: {key} must be 1-based frame indices in 1..{n_frames} (the labeled set's "
                             f"frames); got values in {index.min() if index.size else None}.."
                             f"{index.max() if index.size else None}")
    train, test = train.astype(np.int64) - 1, test.astype(np.int64) - 1
    each_once = len(train) + len(test) == n_frames and len(np.unique(np.r_[train, test])) == n_frames
    if not each_once:
        raise ValueError(f"{path}: {list(NYUV2_SPLIT_KEYS)} must partition the {n_frames} labeled frames, each frame "
                         f"once; got {len(train)} train and {len(test)} test indices, "
                         f"{np.intersect1d(train, test).size} in both")
    split = np.empty(n_frames, dtype="U5")
    split[train], split[test] = "train", "test"
    return split


def read_nyuv2_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, 3) uint8 and depths (N, H, W) float32 metres from NYUv2's labeled ``.mat``.

    The file is MATLAB v7.3, i.e. HDF5, which stores MATLAB's column-major arrays with their axes
    reversed: ``images`` is (N, 3, W, H) and ``depths`` (N, W, H) as h5py reads them.
    """
    arrays, found = read_mat_arrays(path, ("images", "depths"))
    missing = [name for name in ("images", "depths") if name not in arrays]
    if missing:
        raise ValueError(f"{path}: no {missing} in this file; expected NYUv2's nyu_depth_v2_labeled.mat "
                         f"(found {found})")
    images = np.ascontiguousarray(arrays["images"].transpose(0, 3, 2, 1)).astype(np.uint8)
    depths = np.ascontiguousarray(arrays["depths"].transpose(0, 2, 1)).astype(np.float32)
    return images, depths


def build_nyuv2(path: str | Path, *, split_file: str | Path, size: int | None = None, val_fraction: float = 0.0,
                seed: int = 0, **_: Any) -> ImageSet:
    """NYU Depth v2 labeled set from its MATLAB v7.3 file, split as NYU's ``splits.mat`` says.

    Args:
        path: the ``.mat`` file (HDF5 inside; ``images`` and ``depths`` as MATLAB stores them).
        split_file: the official split (:func:`read_nyuv2_splits`): train and test frames come from
            different scenes, so no scene is in both.
        size: resize to ``size`` x ``size``.
        val_fraction: share of the official train frames moved, seeded, to ``val`` (to choose the dense
            layer on). They are drawn frame by frame, so val shares scenes with train (never with test).
        seed: seed of the val carve-out.

    Returns:
        RGB images with ``dense["depth"]`` in metres (0 where the sensor gave none).
    """
    images, depths = read_nyuv2_mat(path)
    split = read_nyuv2_splits(split_file, n_frames=len(images))
    labels = np.zeros(len(images), dtype=np.int64)
    if val_fraction:
        carve_val(labels, split, val_fraction, seed)
    if size:
        from PIL import Image

        images = np.stack([np.asarray(Image.fromarray(i).resize((size, size), Image.Resampling.BILINEAR))
                           for i in images])
        depths = np.stack([np.asarray(Image.fromarray(d).resize((size, size), Image.Resampling.NEAREST))
                           for d in depths])
    return ImageSet(images, labels, split, ["scene"],
                    {"source": "url", "format": "nyuv2-mat", "split": "official (splits.mat)",
                     "val_fraction": float(val_fraction)}, dense={"depth": depths.astype(np.float32)})
