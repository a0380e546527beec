"""Sources that read files: image folders, downloaded files in known formats, sets inside packages.

* ``imagefolder``: ``root/<class>/*.jpg|png`` folders (:func:`build_imagefolder`);
* ``url``: files fetched by URL with their sha256 (:func:`fetch_files`), then converted by their
  ``format`` (:data:`FILE_FORMATS`, :func:`build_from_files`);
* ``packaged``: sets that ship inside an installed package (:data:`PACKAGED_SETS`).
"""

from __future__ import annotations

import csv
import gzip
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
from PIL import Image

from zooprobe.data.dense_sets import build_nyuv2
from zooprobe.data.human import build_things_triplets, label_probs_by_order
from zooprobe.data.imageset import (SPLIT_NAMES, ChunkedImageSet, ImageSet, as_rgb, carve_val,
                                   shorter_side_center_crop, stratified_split)
from zooprobe.io.fetch import fetch


# ----------------------------------------------------------------------------- packaged
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    # scikit-learn only for this set: importing it takes seconds, which no other source should pay.
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are 0..16; scale to the full uint8 range.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, digits.target.astype(np.int64), [str(c) for c in digits.target_names]


PACKAGED_SETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]] = {
    "sklearn:digits": _sklearn_digits,
}


def build_packaged(*, name: str, size: int, splits: dict[str, float], seed: int, **_: Any) -> ImageSet:
    """Build a set that ships inside an installed package.

    Args:
        name: one of ``PACKAGED_SETS``.
        size: output side length in pixels.
        splits: split fractions.
        seed: seed of the split.

    Returns:
        RGB :class:`ImageSet`.
    """
    if name not in PACKAGED_SETS:
        raise ValueError(f"unknown packaged set {name!r}; valid: {sorted(PACKAGED_SETS)}")
    images, labels, class_names = PACKAGED_SETS[name]()
    return ImageSet(as_rgb(images, size), labels, stratified_split(labels, splits, seed), class_names,
                    {"source": "packaged", "name": name})



# ----------------------------------------------------------------------------- image folders
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")


# Rows decoded per task of the pool, and written per chunk: about 38 MB of 224-px RGB images.
CHUNK_ROWS = 256


def _load_image(path: Path, size: int | None) -> np.ndarray:
    """Decode one image file to RGB uint8; with ``size``, its aspect-preserving ``size`` square."""
    try:
        with Image.open(path) as image:
            # Greyscale, palette, CMYK and alpha images all become RGB.
            image = image.convert("RGB")
            return shorter_side_center_crop(image, size) if size else np.asarray(image)
    except (OSError, SyntaxError, ValueError) as error:  # PIL: truncated, corrupt, or not an image
        raise ValueError(f"{path}: cannot decode this image ({error}); it is truncated or not an image. "
                         f"Replace it with an intact copy, or remove it from the folder") from None


def _load_chunk(paths: list[Path], size: int | None, shape: tuple[int, int, int]) -> np.ndarray:
    out = np.empty((len(paths), *shape), dtype=np.uint8)
    for i, path in enumerate(paths):
        image = _load_image(path, size)
        if image.shape != shape:
            raise ValueError(f"images differ in size [{shape}, {image.shape}] ({path}); set 'size' to resize them "
                             f"to one")
        out[i] = image
    return out


def _image_shape(paths: list[Path], size: int | None) -> tuple[int, int, int]:
    """The stored (H, W, 3) of every image; without ``size`` read from the file headers, which must agree."""
    if size:
        return (size, size, 3)
    shapes = set()
    for path in paths:
        try:
            with Image.open(path) as image:  # reads the header only
                shapes.add((image.size[1], image.size[0], 3))
        except (OSError, SyntaxError, ValueError):
            _load_image(path, size)  # raises the clear error
    if len(shapes) > 1:
        raise ValueError(f"images differ in size {sorted(shapes)}; set 'size' to resize them to one")
    return shapes.pop() if shapes else (0, 0, 3)


def decode_in_chunks(paths: list[Path], *, size: int | None, shape: tuple[int, int, int], threads: int = 1,
                     chunk_rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """Decode image files chunk by chunk, ``threads`` chunks at a time, yielding the chunks in file order.

    Threads, not processes: PIL releases the GIL while it decodes a JPEG and resizes it, so threads
    decode in parallel without copying pixels between processes. At most ``threads + 1`` chunks
    are in memory, whatever the number of files.

    Args:
        paths: the image files, in row order.
        size: side of the stored aspect-preserving square (``None``: the images' own size).
        shape: (H, W, 3) every decoded image must have.
        threads: decoding threads (at least 1).
        chunk_rows: images per chunk.

    Returns:
        An iterator of uint8 (rows, H, W, 3) arrays.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    starts = range(0, len(paths), chunk_rows)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque[Future[np.ndarray]] = deque()
        for start in starts:
            pending.append(pool.submit(_load_chunk, paths[start:start + chunk_rows], size, shape))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def build_imagefolder(*, root: str | Path, split_dirs: dict[str, str] | None = None,
                      splits: dict[str, float] | None = None, order_csv: str | None = None,
                      val_fraction: float = 0.0, max_per_class: int | dict[str, int] | None = None,
                      size: int | None = None, human_labels: str | None = None,
                      allow_empty_classes: bool = False, seed: int = 0, threads: int = 1,
                      keep_encoded: bool = False, **_: Any) -> ImageSet:
    """Build a set from ``root/<class>/*.jpg|png`` folders, in memory (see :func:`stream_imagefolder`).

    Returns:
        :class:`ImageSet` with class names from the sorted folder names.
    """
    return stream_imagefolder(root=root, split_dirs=split_dirs, splits=splits, order_csv=order_csv,
                              val_fraction=val_fraction, max_per_class=max_per_class, size=size,
                              human_labels=human_labels, allow_empty_classes=allow_empty_classes, seed=seed,
                              threads=threads, keep_encoded=keep_encoded).materialize()


def stream_imagefolder(*, root: str | Path, split_dirs: dict[str, str] | None = None,
                       splits: dict[str, float] | None = None, order_csv: str | None = None,
                       val_fraction: float = 0.0, max_per_class: int | dict[str, int] | None = None,
                       size: int | None = None, human_labels: str | None = None,
                       allow_empty_classes: bool = False, seed: int = 0, threads: int = 1,
                       keep_encoded: bool = False, **_: Any) -> ChunkedImageSet:
    """A set from ``root/<class>/*.jpg|png`` folders: files, labels and splits now, pixels chunk by chunk.

    Args:
        root: the folder.
        split_dirs: split name -> subfolder holding ``<class>/`` folders (e.g. ``{train: train, test: test}``);
            without it, ``root`` holds the class folders and ``splits`` assigns splits.
        splits: split fractions, when ``split_dirs`` is not given.
        order_csv: CSV (relative to ``root``) with a ``path`` column; listed files come first, in its order,
            so the examples keep an external order (e.g. the original CIFAR-10 test order).
        val_fraction: move this stratified fraction of ``train`` into ``val``.
        max_per_class: keep the first N files of each class in each split (after ordering); a mapping
            gives N per split folder name (absent: keep all).
        size: store every image as a ``size`` x ``size`` square that keeps its aspect ratio (shorter
            side resized to ``size``, longer side center-cropped: :func:`shorter_side_center_crop`);
            without it every image must have the same size.
        human_labels: ``.npy`` (relative to ``root`` or absolute) of human label distributions, row r
            for the file at rank r of ``order_csv`` (CIFAR-10H); stored as ``human["label_probs"]``.
        allow_empty_classes: keep a class folder without images as a class with no examples (it still
            gets a label and an output); otherwise such a folder is an error.
        seed: seed of the split assignment.
        threads: images are decoded by this many threads (see :func:`decode_in_chunks`).
        keep_encoded: also keep each file's bytes (:attr:`ImageSet.encoded`), so that a pretrained
            model's eval transform can be applied to the original photograph.

    Returns:
        :class:`ChunkedImageSet` with class names from the sorted folder names; its chunks decode the
        images in row order, ``CHUNK_ROWS`` at a time.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    folders = {name: root / sub for name, sub in (split_dirs or {"all": "."}).items()}
    unknown = set(folders) - set(SPLIT_NAMES) - ({"all"} if not split_dirs else set())
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; valid: {list(SPLIT_NAMES)}")
    class_names = sorted(p.name for p in next(iter(folders.values())).iterdir() if p.is_dir())
    if not class_names:
        raise ValueError(f"{root}: no class folders found; expected {root}/<class>/*.jpg")
    rank: dict[str, int] = {}
    if order_csv:
        with open(root / order_csv, newline="") as f:
            rank = {row["path"]: i for i, row in enumerate(csv.DictReader(f))}
    paths, labels, split = [], [], []
    for split_name, folder in folders.items():
        empty = []
        for label, class_name in enumerate(class_names):
            if not (folder / class_name).is_dir():
                raise ValueError(f"{folder}: no folder for class {class_name!r}; every split folder needs the same "
                                 f"class folders ({class_names})")
            files = sorted((p for p in (folder / class_name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                           key=lambda p: (rank.get(p.relative_to(root).as_posix(), len(rank)), p.name))
            if not files:
                empty.append(class_name)
            cap = max_per_class.get(split_name) if isinstance(max_per_class, dict) else max_per_class
            files = files[:cap] if cap else files
            paths += files
            labels += [label] * len(files)
            split += [split_name] * len(files)
        if len(empty) == len(class_names):
            raise ValueError(f"{folder}: its class folders {class_names} hold no images ({', '.join(IMAGE_SUFFIXES)}); "
                             f"put the images in {folder}/<class>/")
        if empty and not allow_empty_classes:
            raise ValueError(f"{folder}: class folders {empty} hold no images ({', '.join(IMAGE_SUFFIXES)}); add "
                             f"images, remove the folders, or set allow_empty_classes: true to keep them as classes "
                             f"with no examples")
    if rank:
        # Interleave classes again in the external order, as the original set was.
        order = np.argsort([rank.get(p.relative_to(root).as_posix(), len(rank) + i) for i, p in enumerate(paths)],
                           kind="stable")
        paths, labels, split = [paths[i] for i in order], [labels[i] for i in order], [split[i] for i in order]
    labels_array = np.array(labels, dtype=np.int64)
    split_array = np.array(split, dtype="U5")
    if not split_dirs:
        split_array = stratified_split(labels_array, splits or {"test": 1.0}, seed)
    carve_val(labels_array, split_array, val_fraction, seed)
    human = {}
    if human_labels:
        if not rank:
            raise ValueError("'human_labels' needs 'order_csv': its rows follow that order")
        ranks = np.array([rank.get(p.relative_to(root).as_posix(), -1) for p in paths])
        human["label_probs"] = label_probs_by_order(root / human_labels, ranks)
        # Each row's index in the external order, to join other tables in that order (prediction tables).
        human["order_rank"] = ranks
    shape = _image_shape(paths, size)
    return ChunkedImageSet(shape, labels_array, split_array, class_names,
                           lambda: decode_in_chunks(paths, size=size, shape=shape, threads=threads),
                           {"source": "imagefolder", "root_name": root.name, "files": len(paths)}, human=human,
                           encoded_chunks=(lambda: read_in_chunks(paths)) if keep_encoded else None)


def read_in_chunks(paths: list[Path], *, chunk_rows: int = CHUNK_ROWS) -> Iterator[list[bytes]]:
    """Each file's bytes, ``chunk_rows`` files at a time, in order (an image folder's ``keep_encoded``)."""
    for start in range(0, len(paths), chunk_rows):
        yield [path.read_bytes() for path in paths[start:start + chunk_rows]]


# ----------------------------------------------------------------------------- downloaded files
def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _labelled_arrays(images: np.ndarray, labels: np.ndarray, class_names: list[str], *, format: str,
                     size: int | None, splits: dict[str, float] | None, seed: int) -> ImageSet:
    """An RGB set from arrays read out of downloaded files, split by ``splits`` (default: all ``test``)."""
    return ImageSet(as_rgb(images, size), labels, stratified_split(labels, splits or {"test": 1.0}, seed), class_names,
                    {"source": "url", "format": format})


def _mnist_idx(files: Mapping[str, Path], *, size: int | None, splits: dict[str, float] | None, seed: int,
               **_: Any) -> ImageSet:
    images, labels = read_idx(files["images"]), read_idx(files["labels"]).astype(np.int64)
    return _labelled_arrays(images, labels, [str(i) for i in range(10)], format="mnist-idx", size=size,
                            splits=splits, seed=seed)


def _npz(files: Mapping[str, Path], *, size: int | None, splits: dict[str, float] | None, seed: int,
         **_: Any) -> ImageSet:
    with np.load(files["arrays"], allow_pickle=False) as arrays:
        images, labels = arrays["images"], arrays["labels"].astype(np.int64)
        class_names = ([str(c) for c in arrays["class_names"]] if "class_names" in arrays
                       else [str(i) for i in range(int(labels.max()) + 1)])
    return _labelled_arrays(images, labels, class_names, format="npz", size=size, splits=splits, seed=seed)


def _things_triplets(files: Mapping[str, Path], *, size: int | None, **_: Any) -> ImageSet:
    return build_things_triplets(dict(files), size=size or 224)


def _nyuv2_mat(files: Mapping[str, Path], *, size: int | None, splits: dict[str, float] | None, seed: int,
               val_fraction: float, **_: Any) -> ImageSet:
    missing = [role for role in ("mat", "splits") if role not in files]
    if missing:
        raise ValueError(f"format 'nyuv2-mat' needs file roles ['mat', 'splits'] (the labeled .mat and NYU's "
                         f"official splits.mat); missing {missing}")
    if splits:
        raise ValueError("format 'nyuv2-mat' takes its train/test split from the 'splits' file (NYU's official, "
                         "by scene), not from split fractions; drop 'splits' and use val_fraction for a val split")
    return build_nyuv2(files["mat"], split_file=files["splits"], size=size, val_fraction=val_fraction, seed=seed)


# Format of a ``url`` source -> its converter, called with the files by role and the source's params.
FILE_FORMATS: dict[str, Callable[..., ImageSet]] = {
    "mnist-idx": _mnist_idx,
    "npz": _npz,
    "things-triplets": _things_triplets,
    "nyuv2-mat": _nyuv2_mat,
}


def build_from_files(files: dict[str, Path], *, format: str, size: int | None = None,
                     splits: dict[str, float] | None = None, seed: int = 0, val_fraction: float = 0.0,
                     **_: Any) -> ImageSet:
    """Convert downloaded files into an :class:`ImageSet`.

    Args:
        files: role -> local path. ``mnist-idx`` needs roles ``images`` and ``labels``; ``npz`` needs
            ``arrays``, an npz with ``images`` (N, H, W[, C]) uint8 and ``labels``, optionally ``class_names``;
            ``things-triplets`` needs ``triplets`` and ``images`` (see :func:`zooprobe.data.human.build_things_triplets`);
            ``nyuv2-mat`` needs ``mat`` and ``splits`` (see :func:`zooprobe.data.dense_sets.build_nyuv2`).
        format: one of :data:`FILE_FORMATS`: ``mnist-idx``, ``npz``, ``things-triplets`` or ``nyuv2-mat``.
        size: resize to ``size`` x ``size``.
        splits: split fractions (not for ``nyuv2-mat``, whose split is the official file's).
        seed: seed of the split (of the val carve-out for ``nyuv2-mat``).
        val_fraction: ``nyuv2-mat``: share of the official train frames moved to ``val``.

    Returns:
        RGB :class:`ImageSet`.
    """
    if format not in FILE_FORMATS:
        raise ValueError(f"unknown file format {format!r}; valid: {list(FILE_FORMATS)}")
    return FILE_FORMATS[format](files, size=size, splits=splits, seed=seed, val_fraction=val_fraction)


def fetch_files(entries: Mapping[str, Mapping[str, str]], *, download_dir: str | Path,
                mirror: str | None = None) -> dict[str, Path]:
    """Download a ``url`` source's files (or reuse verified copies), each checked against its sha256.

    Args:
        entries: role -> ``{url, sha256}``, as in the params.
        download_dir: folder the files are kept in, under their URL's file name.
        mirror: replaces ``scheme://host`` of every URL (see :func:`zooprobe.io.fetch.resolve_url`).

    Returns:
        role -> local path, in the order of ``entries``.
    """
    return {role: fetch(entry["url"], sha256=entry["sha256"], mirror=mirror,
                        dest=Path(download_dir) / Path(entry["url"]).name)
            for role, entry in entries.items()}
