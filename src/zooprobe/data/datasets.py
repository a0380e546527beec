"""Image sets in memory, and the sources that build them.

Every source returns an :class:`ImageSet`; :mod:`zooprobe.io.h5io` is the one place that
stores it. Sources here need no network: scikit-learn's bundled digits, procedurally
generated shapes, and shifted copies of another set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from zooprobe.data import cifar_corruptions
from zooprobe.data import procedural

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


@dataclass
class ImageSet:
    """A labelled image set with a split per example.

    Attributes:
        images: uint8 array (N, H, W, C).
        labels: int64 array (N,).
        split: per-example split name, one of ``SPLIT_NAMES``.
        class_names: the name of each label.
        attrs: provenance (source, parameters) stored beside the data.
        human: human judgements aligned with the rows (see :mod:`zooprobe.data.human`), e.g.
            ``similarity`` (N, N) or ``label_probs`` (N, K); empty for ordinary sets.
        dense: per-pixel labels aligned with the images (see :mod:`zooprobe.data.dense_sets`):
            ``depth`` (N, H, W), ``normals`` (N, H, W, 3), ``mask`` (N, H, W); empty for ordinary sets.
    """

    images: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    human: dict[str, np.ndarray] = field(default_factory=dict)
    dense: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (n,) or self.split.shape != (n,):
            raise ValueError(f"labels and split must have shape ({n},), got {self.labels.shape} and {self.split.shape}")
        unknown = set(np.unique(self.split)) - set(SPLIT_NAMES)
        if unknown:
            raise ValueError(f"unknown split names {sorted(unknown)}; valid: {list(SPLIT_NAMES)}")

    def content_sha256(self) -> str:
        """Return a sha256 over images, labels and splits, so a changed pixel changes the hash."""
        digest = hashlib.sha256(np.ascontiguousarray(self.images).tobytes())
        digest.update(self.content_sha256_tail())
        return digest.hexdigest()

    def content_sha256_tail(self) -> bytes:
        """Everything :meth:`content_sha256` hashes after the pixels, so a reader can hash the pixels in chunks."""
        parts = [np.ascontiguousarray(array).tobytes() for array in (self.labels.astype(np.int64), self.split.astype("U5"))]
        parts.append("\n".join(self.class_names).encode())
        # Absent for ordinary sets, so their hashes are unchanged.
        for group, arrays in (("human", self.human), ("dense", self.dense)):
            for kind in sorted(arrays):
                parts.append(f"{group}/{kind}".encode())
                parts.append(np.ascontiguousarray(arrays[kind], dtype=np.float64).tobytes())
        return b"".join(parts)

    def subset(self, split: str) -> "ImageSet":
        """Return the examples of one split, in their stored order (per-row human labels kept)."""
        keep = self.split == split
        human = {"label_probs": self.human["label_probs"][keep]} if "label_probs" in self.human else {}
        return ImageSet(self.images[keep], self.labels[keep], self.split[keep], list(self.class_names), dict(self.attrs),
                        human=human)


def stratified_split(labels: np.ndarray, fractions: dict[str, float], seed: int) -> np.ndarray:
    """Assign each example a split, keeping class proportions in every split.

    Args:
        labels: int labels (N,).
        fractions: split name to fraction; must sum to 1.
        seed: seed of the shuffle.

    Returns:
        Array (N,) of split names.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    split = np.empty(len(labels), dtype="U5")
    names = list(fractions)
    for label in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == label))
        bounds = np.round(np.cumsum([fractions[name] for name in names]) * len(index)).astype(int)
        for name, start, stop in zip(names, np.r_[0, bounds[:-1]], bounds):
            split[index[start:stop]] = name
    return split


def carve_val(labels: np.ndarray, split: np.ndarray, fraction: float, seed: int) -> None:
    """Move a stratified ``fraction`` of the ``train`` examples into ``val``, in place."""
    if not fraction:
        return
    train = np.flatnonzero(split == "train")
    moved = stratified_split(labels[train], {"train": 1 - fraction, "val": fraction}, seed)
    split[train[moved == "val"]] = "val"


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 (N, H, W, C) images to (N, size, size, C) with bilinear filtering."""
    from PIL import Image

    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, images.shape[3]), dtype=np.uint8)
    for i, image in enumerate(images):
        pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
        resized = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))
        out[i] = resized.reshape(size, size, -1)
    return out


# ----------------------------------------------------------------------------- packaged
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
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
    images = resize_images(images, size)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return ImageSet(images, labels, stratified_split(labels, splits, seed), class_names,
                    {"source": "packaged", "name": name})


# ----------------------------------------------------------------------------- procedural
def build_procedural(*, generator: str, n_per_class: int, size: int, splits: dict[str, float],
                     seed: int, background: str = "plain", **_: Any) -> ImageSet:
    """Build a procedurally generated set, deterministic given ``seed``.

    Args:
        generator: one of ``procedural.GENERATORS``.
        n_per_class: examples per class.
        size: side length in pixels.
        splits: split fractions.
        seed: seed of images and split.
        background: one of ``procedural.BACKGROUNDS``; a non-plain one is a style shift.

    Returns:
        :class:`ImageSet`.
    """
    if generator not in procedural.GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; valid: {sorted(procedural.GENERATORS)}")
    images, labels, class_names = procedural.GENERATORS[generator](
        n_per_class=n_per_class, size=size, seed=seed, background=background)
    return ImageSet(images, labels, stratified_split(labels, splits, seed + 1), class_names,
                    {"source": "procedural", "generator": generator, "background": background})


# ----------------------------------------------------------------------------- shifts
def _gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (8, 16, 28, 40, 56)[severity - 1]
    return np.clip(images + rng.normal(0, sigma, images.shape), 0, 255)


def _gaussian_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    sigma = (0.5, 0.8, 1.1, 1.5, 2.0)[severity - 1]
    return gaussian_filter(images.astype(np.float64), sigma=(0, sigma, sigma, 0))


def _low_contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    keep = (0.6, 0.45, 0.3, 0.2, 0.12)[severity - 1]
    mean = images.mean(axis=(1, 2, 3), keepdims=True)
    return (images - mean) * keep + mean


def _pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factor = (0.75, 0.6, 0.5, 0.4, 0.3)[severity - 1]
    side = images.shape[1]
    small = resize_images(images.astype(np.uint8), max(2, int(side * factor)))
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.Resampling.NEAREST)) for im in small])


SHIFTS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": _gaussian_noise,
    "gaussian_blur": _gaussian_blur,
    "low_contrast": _low_contrast,
    "pixelate": _pixelate,
}


def build_shift(base: ImageSet, *, shift: str, severity: int, seed: int, split: str = "test", **_: Any) -> ImageSet:
    """Build a distribution-shifted copy of one split of ``base``; every example becomes ``test``.

    Args:
        base: the in-distribution set.
        shift: one of ``SHIFTS``.
        severity: 1 (mild) to 5 (strong).
        seed: seed of the random part of the shift.
        split: which split of ``base`` to shift.

    Returns:
        :class:`ImageSet` whose examples are all in the ``test`` split.
    """
    if shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}; valid: {sorted(SHIFTS)}")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    part = base.subset(split)
    shifted = SHIFTS[shift](part.images.astype(np.float64), severity, np.random.default_rng(seed))
    images = np.clip(np.round(shifted), 0, 255).astype(np.uint8)
    attrs = {"source": "shift", "shift": shift, "severity": severity, "of_split": split,
             "of_sha256": base.content_sha256()}
    return ImageSet(images, part.labels.copy(), np.full(len(images), "test", dtype="U5"), list(base.class_names), attrs)


# ----------------------------------------------------------------------------- image folders
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")


def _load_images(paths: list[Path], size: int | None) -> np.ndarray:
    from PIL import Image

    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                if size and image.size != (size, size):
                    image = image.resize((size, size), Image.Resampling.BILINEAR)
                images.append(np.asarray(image))
        except (OSError, SyntaxError, ValueError) as error:  # PIL: truncated, corrupt, or not an image
            raise ValueError(f"{path}: cannot decode this image ({error}); it is truncated or not an image. "
                             f"Replace it with an intact copy, or remove it from the folder") from None
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise ValueError(f"images differ in size {sorted(shapes)}; set 'size' to resize them to one")
    return np.stack(images)


def build_imagefolder(*, root: str | Path, split_dirs: dict[str, str] | None = None,
                      splits: dict[str, float] | None = None, order_csv: str | None = None,
                      val_fraction: float = 0.0, max_per_class: int | dict[str, int] | None = None,
                      size: int | None = None, human_labels: str | None = None,
                      allow_empty_classes: bool = False, seed: int = 0, **_: Any) -> ImageSet:
    """Build a set from ``root/<class>/*.jpg|png`` folders.

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
        size: resize every image to ``size`` x ``size``.
        human_labels: ``.npy`` (relative to ``root`` or absolute) of human label distributions, row r
            for the file at rank r of ``order_csv`` (CIFAR-10H); stored as ``human["label_probs"]``.
        allow_empty_classes: keep a class folder without images as a class with no examples (it still
            gets a label and an output); otherwise such a folder is an error.
        seed: seed of the split assignment.

    Returns:
        :class:`ImageSet` with class names from the sorted folder names.
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
        import csv

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
        from zooprobe.data.human import label_probs_by_order

        if not rank:
            raise ValueError("'human_labels' needs 'order_csv': its rows follow that order")
        ranks = np.array([rank.get(p.relative_to(root).as_posix(), -1) for p in paths])
        human["label_probs"] = label_probs_by_order(root / human_labels, ranks)
        # Each row's index in the external order, to join other tables in that order (prediction tables).
        human["order_rank"] = ranks
    return ImageSet(_load_images(paths, size), labels_array, split_array, class_names,
                    {"source": "imagefolder", "root_name": root.name, "files": len(paths)}, human=human)


# ----------------------------------------------------------------------------- corruptions
# imagecorruptions 1.1.2 corruptions that run with numpy 2 and scikit-image 0.26 (glass_blur,
# gaussian_blur and fog fail there): ImageNet-C's parameters, tuned for 224-px photographs.
IMAGENET_C_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "zoom_blur", "snow", "frost",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression", "speckle_noise", "spatter",
    "saturate",
)
# Every corruption some parameter set implements (the CIFAR-10-C ones are in zooprobe.data.cifar_corruptions).
CORRUPTIONS: tuple[str, ...] = IMAGENET_C_CORRUPTIONS + tuple(
    sorted(set(cifar_corruptions.CORRUPTIONS) - set(IMAGENET_C_CORRUPTIONS)))
CORRUPTION_PARAMETERS: tuple[str, ...] = ("auto", "cifar", "imagenet")
# ``parameters: auto`` uses the CIFAR-10-C constants for images whose longer side is at most this many
# pixels and ImageNet-C's above. 64 px (Tiny ImageNet's side) is far nearer the 32 px the CIFAR constants
# were set for than the 224 px of ImageNet-C's, on a log scale (their geometric midpoint is about 85 px).
CIFAR_SCALE_MAX_SIDE = 64


def corruption_parameters(*, requested: str, image_shape: tuple[int, ...]) -> str:
    """Which parameter set a ``corrupt`` dataset uses: ``cifar`` or ``imagenet``.

    Args:
        requested: ``auto`` (by image size, see :data:`CIFAR_SCALE_MAX_SIDE`), ``cifar`` or ``imagenet``.
        image_shape: (H, W, C) of the images to corrupt.

    Returns:
        ``cifar`` or ``imagenet``.
    """
    if requested not in CORRUPTION_PARAMETERS:
        raise ValueError(f"unknown corruption parameters {requested!r}; valid: {list(CORRUPTION_PARAMETERS)}")
    if requested != "auto":
        return requested
    return "cifar" if max(image_shape[:2]) <= CIFAR_SCALE_MAX_SIDE else "imagenet"


def _first_per_class(part: ImageSet, max_per_class: int) -> ImageSet:
    """The first ``max_per_class`` examples of each class, in stored order."""
    seen = np.zeros(len(part.class_names), dtype=int)
    keep = np.zeros(len(part.labels), dtype=bool)
    for i, label in enumerate(part.labels):
        keep[i], seen[label] = seen[label] < max_per_class, seen[label] + 1
    return ImageSet(part.images[keep], part.labels[keep], part.split[keep], part.class_names, part.attrs)


def _imagenet_c(images: np.ndarray, *, corruption: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt uint8 (N, H, W, 3) images with imagecorruptions' ImageNet-C parameters, rounded to uint8."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # imagecorruptions imports pkg_resources, which warns on import.
        from imagecorruptions import corrupt

    np.random.seed(seed)  # imagecorruptions draws from numpy's global generator
    return np.stack([np.clip(np.round(np.asarray(corrupt(image, severity=severity, corruption_name=corruption),
                                                 dtype=np.float64)), 0, 255).astype(np.uint8)
                     for image in images])


def _cifar_c(images: np.ndarray, *, corruption: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt uint8 (N, H, W, 3) images with the CIFAR-10-C parameters, one seeded generator for the set."""
    import warnings

    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the helpers borrowed from imagecorruptions import pkg_resources
        return np.stack([cifar_corruptions.corrupt(image, corruption=corruption, severity=severity, rng=rng)
                         for image in images])


def build_corrupt(base: ImageSet, *, corruption: str, severity: int, seed: int, split: str = "test",
                  max_per_class: int | None = None, parameters: str = "auto", **_: Any) -> ImageSet:
    """Build a corrupted copy of one split of ``base``, with CIFAR-10-C or ImageNet-C parameters.

    Args:
        base: the clean set.
        corruption: one of :data:`CORRUPTIONS`; at the CIFAR scale one of
            ``zooprobe.data.cifar_corruptions.CORRUPTIONS``, at the ImageNet scale one of :data:`IMAGENET_C_CORRUPTIONS`.
        severity: 1..5.
        seed: seed of the corruption's randomness.
        split: which split of ``base`` to corrupt.
        max_per_class: corrupt only the first N examples of each class, in stored order.
        parameters: ``cifar`` (the 32-px constants of Hendrycks & Dietterich's make_cifar_c.py),
            ``imagenet`` (ImageNet-C's, from the ``imagecorruptions`` package) or ``auto`` (``cifar`` for
            images up to :data:`CIFAR_SCALE_MAX_SIDE` px, else ``imagenet``).

    Returns:
        :class:`ImageSet` whose examples are all in the ``test`` split; its attrs record the parameter set
        used, the constant at this severity and the code it comes from.
    """
    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown or unsupported corruption {corruption!r}; valid: {list(CORRUPTIONS)}")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    part = base.subset(split)
    chosen = corruption_parameters(requested=parameters, image_shape=part.images.shape[1:])
    if chosen == "cifar":
        constant: Any = cifar_corruptions.parameter(corruption=corruption, severity=severity)
        code = cifar_corruptions.SOURCE
    elif corruption not in IMAGENET_C_CORRUPTIONS:
        raise ValueError(f"corruption {corruption!r} runs only with the CIFAR-10-C parameters here (imagecorruptions' "
                         f"version fails with numpy 2 / scikit-image 0.26); with parameters: imagenet the valid "
                         f"ones are {list(IMAGENET_C_CORRUPTIONS)}")
    else:
        from importlib.metadata import version

        constant, code = None, f"imagecorruptions {version('imagecorruptions')} (ImageNet-C parameters)"
    if max_per_class:
        part = _first_per_class(part, max_per_class)
    corrupt_images = _cifar_c if chosen == "cifar" else _imagenet_c
    images = corrupt_images(part.images, corruption=corruption, severity=severity, seed=seed)
    attrs = {"source": "corrupt", "corruption": corruption, "severity": severity, "of_split": split,
             "max_per_class": max_per_class or 0, "of_sha256": base.content_sha256(),
             "corruption_parameters": chosen, "corruption_parameters_requested": parameters,
             "cifar_scale_max_side": CIFAR_SCALE_MAX_SIDE, "corruption_code": code}
    if constant is not None:
        attrs["corruption_constant"] = list(constant) if isinstance(constant, tuple) else constant
    return ImageSet(images, part.labels.copy(), np.full(len(images), "test", dtype="U5"), list(base.class_names), attrs)


# ----------------------------------------------------------------------------- downloaded files
def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not."""
    import gzip

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def build_from_files(files: dict[str, Path], *, format: str, size: int | None = None,
                     splits: dict[str, float] | None = None, seed: int = 0, val_fraction: float = 0.0,
                     **_: Any) -> ImageSet:
    """Convert downloaded files into an :class:`ImageSet`.

    Args:
        files: role -> local path. ``mnist-idx`` needs roles ``images`` and ``labels``; ``npz`` needs
            ``arrays``, an npz with ``images`` (N, H, W[, C]) uint8 and ``labels``, optionally ``class_names``;
            ``things-triplets`` needs ``triplets`` and ``images`` (see :func:`zooprobe.data.human.build_things_triplets`);
            ``nyuv2-mat`` needs ``mat`` and ``splits`` (see :func:`zooprobe.data.dense_sets.build_nyuv2`).
        format: ``mnist-idx``, ``npz``, ``things-triplets`` or ``nyuv2-mat``.
        size: resize to ``size`` x ``size``.
        splits: split fractions (not for ``nyuv2-mat``, whose split is the official file's).
        seed: seed of the split (of the val carve-out for ``nyuv2-mat``).
        val_fraction: ``nyuv2-mat``: share of the official train frames moved to ``val``.

    Returns:
        RGB :class:`ImageSet`.
    """
    if format == "nyuv2-mat":
        from zooprobe.data.dense_sets import build_nyuv2

        missing = [role for role in ("mat", "splits") if role not in files]
        if missing:
            raise ValueError(f"format 'nyuv2-mat' needs file roles ['mat', 'splits'] (the labeled .mat and NYU's "
                             f"official splits.mat); missing {missing}")
        if splits:
            raise ValueError("format 'nyuv2-mat' takes its train/test split from the 'splits' file (NYU's official, "
                             "by scene), not from split fractions; drop 'splits' and use val_fraction for a val split")
        return build_nyuv2(files["mat"], split_file=files["splits"], size=size, val_fraction=val_fraction, seed=seed)
    if format == "things-triplets":
        from zooprobe.data.human import build_things_triplets

        return build_things_triplets(files, size=size or 224)
    if format == "mnist-idx":
        images, labels = read_idx(files["images"]), read_idx(files["labels"]).astype(np.int64)
        class_names = [str(i) for i in range(10)]
    elif format == "npz":
        with np.load(files["arrays"], allow_pickle=False) as arrays:
            images, labels = arrays["images"], arrays["labels"].astype(np.int64)
            class_names = ([str(c) for c in arrays["class_names"]] if "class_names" in arrays
                           else [str(i) for i in range(int(labels.max()) + 1)])
    else:
        raise ValueError(f"unknown file format {format!r}; valid: ['mnist-idx', 'npz', 'things-triplets', 'nyuv2-mat']")
    if images.ndim == 3:
        images = images[..., None]
    images = resize_images(images.astype(np.uint8), size) if size else images.astype(np.uint8)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return ImageSet(images, labels, stratified_split(labels, splits or {"test": 1.0}, seed), class_names,
                    {"source": "url", "format": format})


# ----------------------------------------------------------------------------- torchvision
def build_torchvision(*, name: str, root: str | Path, split_kwargs: dict[str, dict[str, Any]],
                      download: bool = False, size: int | None = None, val_fraction: float = 0.0,
                      max_per_class: int | None = None, seed: int = 0, **_: Any) -> ImageSet:
    """Build a set from any ``torchvision.datasets`` class.

    Args:
        name: the class name, e.g. ``CIFAR10``, ``MNIST``, ``SVHN``, ``STL10``.
        root: its ``root`` folder (pre-populated when offline).
        split_kwargs: split name -> keyword arguments selecting that split, e.g.
            ``{train: {train: true}, test: {train: false}}`` or ``{test: {split: test}}``.
        download: let torchvision download into ``root`` (needs the network).
        size: resize to ``size`` x ``size``.
        val_fraction: move this stratified fraction of ``train`` into ``val``.
        max_per_class: keep the first N examples of each class in each split.
        seed: seed of the validation split.

    Returns:
        RGB :class:`ImageSet`; class names from the dataset's ``classes`` when it has them.
    """
    import torchvision.datasets

    cls = getattr(torchvision.datasets, name, None)
    if not isinstance(cls, type):
        valid = sorted(n for n in dir(torchvision.datasets) if n[0].isupper())
        raise ValueError(f"unknown torchvision dataset {name!r}; valid: {valid}")
    unknown = set(split_kwargs) - set(SPLIT_NAMES)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; valid: {list(SPLIT_NAMES)}")
    images, labels, split, class_names = [], [], [], None
    for split_name, kwargs in split_kwargs.items():
        dataset = cls(root=str(root), download=download, **kwargs)
        class_names = class_names or [str(c) for c in getattr(dataset, "classes", [])]
        seen: dict[int, int] = {}
        for image, label in dataset:
            label = int(label)
            if max_per_class and seen.get(label, 0) >= max_per_class:
                continue
            seen[label] = seen.get(label, 0) + 1
            array = np.asarray(image.convert("RGB"))
            images.append(array)
            labels.append(label)
            split.append(split_name)
    labels_array = np.array(labels, dtype=np.int64)
    stacked = np.stack(images)
    stacked = resize_images(stacked, size) if size else stacked
    split_array = np.array(split, dtype="U5")
    carve_val(labels_array, split_array, val_fraction, seed)
    class_names = class_names or [str(i) for i in range(int(labels_array.max()) + 1)]
    return ImageSet(stacked, labels_array, split_array, class_names, {"source": "torchvision", "name": name})


SOURCES: tuple[str, ...] = ("packaged", "procedural", "shift", "imagefolder", "corrupt", "url", "torchvision",
                            "peterson", "kriegeskorte92", "middlebury")
