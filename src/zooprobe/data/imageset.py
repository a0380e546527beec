"""The image-set type and the pure helpers every source shares.

A leaf module: it imports nothing from zooprobe, so :mod:`zooprobe.io.h5io` (which stores an
:class:`ImageSet`) and every source module can import it without a cycle.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def content_sha256(images: Any, *, labels: np.ndarray, split: np.ndarray, class_names: Sequence[str],
                   human: Mapping[str, np.ndarray], dense: Mapping[str, np.ndarray],
                   chunk_rows: int | None = None, encoded: Sequence[bytes] | None = None) -> str:
    """The sha256 of an image set's content: pixels, labels, splits, class names and annotations.

    Args:
        images: the uint8 images (N, H, W, C): an array, or anything sliced by rows into arrays
            (an HDF5 dataset), so a reader can hash a large file without holding every pixel.
        labels: int labels (N,).
        split: split names (N,).
        class_names: the name of each label.
        human: human judgements by kind (see :class:`ImageSet`).
        dense: per-pixel labels by kind (see :class:`ImageSet`).
        chunk_rows: hash the pixels this many rows at a time (``None``: all at once).
        encoded: the encoded file bytes of each row, when the set keeps them (see :class:`ImageSet`).

    Returns:
        The hex digest; the same for the same content whatever ``chunk_rows`` is.
    """
    digest = hashlib.sha256()
    step = chunk_rows or max(1, len(images))
    for start in range(0, len(images), step):
        digest.update(np.ascontiguousarray(images[start:start + step]).tobytes())
    encoded_digest = None
    if encoded is not None:
        encoded_digest = hashlib.sha256()
        for blob in encoded:
            update_encoded_digest(encoded_digest, blob)
    return finish_content_sha256(digest, labels=labels, split=split, class_names=class_names, human=human,
                                 dense=dense, encoded_sha256=encoded_digest.hexdigest() if encoded_digest else None)


def update_encoded_digest(digest: Any, blob: bytes) -> None:
    """Feed one row's encoded bytes to the digest of a set's encoded images (length first, so rows cannot merge)."""
    digest.update(len(blob).to_bytes(8, "little"))
    digest.update(blob)


def finish_content_sha256(digest: Any, *, labels: np.ndarray, split: np.ndarray, class_names: Sequence[str],
                          human: Mapping[str, np.ndarray], dense: Mapping[str, np.ndarray],
                          encoded_sha256: str | None = None) -> str:
    """Complete a :func:`content_sha256` whose ``digest`` has already taken every pixel, row by row in order.

    A streaming writer feeds each chunk of pixels to a ``hashlib.sha256()`` as it writes it, then
    calls this, so the file's hash equals :func:`content_sha256` of the same content.

    Args:
        digest: a ``hashlib.sha256`` object updated with the images' bytes, rows in order.
        labels, split, class_names, human, dense: as for :func:`content_sha256`.
        encoded_sha256: the hex digest of the rows' encoded bytes (:func:`update_encoded_digest`, rows in
            order), when the set keeps them.

    Returns:
        The hex digest.
    """
    digest.update(np.ascontiguousarray(labels.astype(np.int64)).tobytes())
    digest.update(np.ascontiguousarray(split.astype("U5")).tobytes())
    digest.update("\n".join(class_names).encode())
    # Absent for ordinary sets, so their hashes are unchanged.
    for group, arrays in (("human", human), ("dense", dense)):
        for kind in sorted(arrays):
            digest.update(f"{group}/{kind}".encode())
            digest.update(np.ascontiguousarray(arrays[kind], dtype=np.float64).tobytes())
    if encoded_sha256 is not None:  # absent for sets without encoded bytes: their hashes are unchanged
        digest.update(f"encoded/{encoded_sha256}".encode())
    return digest.hexdigest()


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
        encoded: each row's original encoded file (a JPEG's bytes), kept so that extraction can decode
            the photograph and apply a pretrained model's own eval transform to it, instead of to the
            stored square (``keep_encoded`` of an image folder); ``None`` for sets that do not keep them.
    """

    images: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    human: dict[str, np.ndarray] = field(default_factory=dict)
    dense: dict[str, np.ndarray] = field(default_factory=dict)
    encoded: list[bytes] | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (n,) or self.split.shape != (n,):
            raise ValueError(f"labels and split must have shape ({n},), got {self.labels.shape} and {self.split.shape}")
        unknown = set(np.unique(self.split)) - set(SPLIT_NAMES)
        if unknown:
            raise ValueError(f"unknown split names {sorted(unknown)}; valid: {list(SPLIT_NAMES)}")
        if self.encoded is not None and len(self.encoded) != n:
            raise ValueError(f"encoded must hold one file per image ({n}), got {len(self.encoded)}")

    def content_sha256(self) -> str:
        """Return a sha256 over images, labels and splits, so a changed pixel changes the hash."""
        return content_sha256(self.images, labels=self.labels, split=self.split, class_names=self.class_names,
                              human=self.human, dense=self.dense, encoded=self.encoded)

    def stored_provenance(self) -> dict[str, Any]:
        """The provenance a file of this set records: its ``attrs``, then its content sha256 and shape.

        Returns:
            ``attrs`` with ``content_sha256``, ``class_names``, ``n`` and ``image_shape`` added, in that order.
        """
        return dict(self.attrs, content_sha256=self.content_sha256(), class_names=self.class_names,
                    n=len(self.labels), image_shape=list(self.images.shape[1:]))

    def subset(self, split: str) -> "ImageSet":
        """Return the examples of one split, in their stored order (per-row human labels kept)."""
        keep = self.split == split
        human = {"label_probs": self.human["label_probs"][keep]} if "label_probs" in self.human else {}
        return ImageSet(self.images[keep], self.labels[keep], self.split[keep], list(self.class_names), dict(self.attrs),
                        human=human)


@dataclass
class ChunkedImageSet:
    """An image set whose pixels come lazily, chunk by chunk: everything of an :class:`ImageSet` but the pixels.

    A large source (an image folder of 50,000 photographs) lists its files, labels and splits
    first, then decodes the images a chunk at a time while the writer stores them, so memory does
    not grow with the number of images.

    Attributes:
        image_shape: (H, W, C) of every image.
        labels, split, class_names, attrs, human, dense: as in :class:`ImageSet`.
        chunks: called once, yields uint8 arrays (rows, H, W, C) whose rows, in order, are the images.
        encoded_chunks: for a set that keeps its encoded files (see :class:`ImageSet`), called once,
            yields lists of each row's file bytes, rows in order; ``None`` otherwise.
    """

    image_shape: tuple[int, ...]
    labels: np.ndarray
    split: np.ndarray
    class_names: list[str]
    chunks: Callable[[], Iterator[np.ndarray]]
    attrs: dict[str, Any] = field(default_factory=dict)
    human: dict[str, np.ndarray] = field(default_factory=dict)
    dense: dict[str, np.ndarray] = field(default_factory=dict)
    encoded_chunks: Callable[[], Iterator[list[bytes]]] | None = None

    @classmethod
    def of(cls, images: "ImageSet", *, chunk_rows: int = 256) -> "ChunkedImageSet":
        """The chunked view of an in-memory set (its arrays shared, not copied)."""
        encoded = images.encoded
        return cls(tuple(images.images.shape[1:]), images.labels, images.split, images.class_names,
                   lambda: (images.images[i:i + chunk_rows] for i in range(0, len(images.images), chunk_rows)),
                   images.attrs, images.human, images.dense,
                   encoded_chunks=None if encoded is None else
                   lambda: (encoded[i:i + chunk_rows] for i in range(0, len(encoded), chunk_rows)))

    def materialize(self) -> "ImageSet":
        """Decode every chunk into one in-memory :class:`ImageSet` (for small sets and direct callers)."""
        parts = list(self.chunks())
        images = np.concatenate(parts) if parts else np.empty((0, *self.image_shape), dtype=np.uint8)
        encoded = None if self.encoded_chunks is None else [blob for part in self.encoded_chunks() for blob in part]
        return ImageSet(images, self.labels, self.split, self.class_names, self.attrs, human=self.human,
                        dense=self.dense, encoded=encoded)


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


def first_per_class(part: ImageSet, max_per_class: int) -> ImageSet:
    """The first ``max_per_class`` examples of each class of ``part``, in stored order.

    Args:
        part: the set to thin out.
        max_per_class: examples kept per class.

    Returns:
        A new :class:`ImageSet` with those rows (same class names and attrs).
    """
    seen = np.zeros(len(part.class_names), dtype=int)
    keep = np.zeros(len(part.labels), dtype=bool)
    for i, label in enumerate(part.labels):
        keep[i], seen[label] = seen[label] < max_per_class, seen[label] + 1
    return ImageSet(part.images[keep], part.labels[keep], part.split[keep], part.class_names, part.attrs)


def shorter_side_center_crop(image: Any, size: int, *, resample: Any = None) -> np.ndarray:
    """Resize a PIL image's shorter side to ``size`` and center-crop the longer one: an aspect-preserving square.

    A model's evaluation transform (resize the shorter side to ``input_size / crop_pct``, center-crop
    ``input_size``) keeps only a central square of the photograph, so this stored square loses
    nothing it would use, provided ``size`` is at least the model's resize size. A square image is
    resized exactly as a plain resize would (same filter), so square sources store the same bytes.

    Args:
        image: a PIL image (any mode; the caller converts to RGB or L first).
        size: side of the stored square in pixels.
        resample: a PIL filter; ``None`` is bilinear, what every source stores with.

    Returns:
        uint8 (size, size) or (size, size, C).
    """
    from PIL import Image

    width, height = image.size
    if (width, height) != (size, size):
        scale = size / min(width, height)
        # The shorter side lands on size exactly; the longer is rounded, never below size.
        new = (size, max(size, round(height * scale))) if width <= height else (max(size, round(width * scale)), size)
        image = image.resize(new, Image.Resampling.BILINEAR if resample is None else resample)
        left, top = (new[0] - size) // 2, (new[1] - size) // 2
        if new != (size, size):
            image = image.crop((left, top, left + size, top + size))
    return np.asarray(image)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 (N, H, W, C) images to (N, size, size, C): shorter side to ``size``, then center-cropped.

    See :func:`shorter_side_center_crop`; square images are plainly resized with bilinear filtering.
    """
    # PIL only here, so a reader that merely stores or hashes sets never imports it.
    from PIL import Image

    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, images.shape[3]), dtype=np.uint8)
    for i, image in enumerate(images):
        pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
        out[i] = shorter_side_center_crop(pil, size).reshape(size, size, -1)
    return out


def as_rgb(images: np.ndarray, size: int | None) -> np.ndarray:
    """Uint8 (N, H, W[, C]) arrays as RGB (N, size, size, 3): resized when ``size`` is set, grey repeated.

    Args:
        images: (N, H, W) or (N, H, W, C) with C 1 or 3, any integer dtype in 0..255.
        size: output side; ``None`` keeps the input size.

    Returns:
        uint8 (N, H', W', 3).
    """
    if images.ndim == 3:
        images = images[..., None]
    images = resize_images(images.astype(np.uint8), size) if size else images.astype(np.uint8)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images
