"""The one module that reads and writes HDF5.

Three file kinds share one layout convention: arrays as datasets, and provenance as a JSON
string attribute ``provenance`` (plus flat copies of its scalar entries, so ``h5ls -v``
shows them). Every writer goes through :func:`zooprobe.io.atomic.atomic_output`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import h5py
import numpy as np

from zooprobe.data.imageset import (ChunkedImageSet, ImageSet, content_sha256, finish_content_sha256,
                                   update_encoded_digest)
from zooprobe.io.atomic import WriterLock, atomic_output
from zooprobe.io.fetch import ChecksumError
from zooprobe.io.records import Features, feature_resume_key, require_recorded_content, restore_hint

FORMAT_VERSION = 1
# Rows of images hashed at a time when a file is verified (about 50 MB of 224-px photographs).
VERIFY_ROWS = 1024
# The dataset of an image set's encoded files (one variable-length uint8 row per image), when it keeps them.
ENCODED = "encoded"


def _open(path: str | Path, mode: str = "r") -> h5py.File:
    """Open an HDF5 file, turning HDF5's low-level errors into one that names the file and the fix."""
    try:
        return h5py.File(path, mode)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise OSError(f"{path} cannot be read as HDF5 ({error}): it is truncated or not a file zooprobe wrote; "
                      f"{restore_hint(path)}") from None


def _set_provenance(node: h5py.Group, provenance: Mapping[str, Any]) -> None:
    node.attrs["provenance"] = json.dumps(provenance, sort_keys=True, default=str)
    node.attrs["format_version"] = FORMAT_VERSION
    for key, value in provenance.items():
        if isinstance(value, (str, int, float, bool)):
            node.attrs[key] = value


def _get_provenance(node: h5py.Group) -> dict[str, Any]:
    return json.loads(node.attrs["provenance"])


def _strings(values: np.ndarray) -> np.ndarray:
    return np.char.decode(values.astype("S"), "utf-8") if values.dtype.kind == "S" else values.astype(str)


# ----------------------------------------------------------------------------- image sets
class ImageSetWriter:
    """Write an image set chunk by chunk, so memory holds one chunk of pixels, not the whole set.

    Use as a context manager. The file is written to a temporary sibling and renamed onto ``path``
    only when every row was written and the block exits without error (``zooprobe.io.atomic``);
    on an error (a corrupt image, a wrong sha256) nothing is left under ``path``. The content
    sha256 is computed as the chunks arrive, so it equals
    :func:`zooprobe.data.imageset.content_sha256` of the same content, and the file holds the same
    arrays and provenance as :func:`write_image_set` of the in-memory set.

    Args:
        path: output ``.h5`` path.
        image_shape: (H, W, C) of every image.
        labels: int labels (N,); N is the number of rows to write.
        split: split names (N,).
        class_names: the name of each label.
        attrs: the provenance; ``content_sha256``, ``class_names``, ``n`` and ``image_shape`` are added.
        human: human judgements by kind (see :class:`ImageSet`).
        dense: per-pixel labels by kind (see :class:`ImageSet`).
        expected_sha256: when set, the content must have this sha256, else ``ChecksumError`` on close.
        describe: how the error names the set (e.g. ``dataset 'cifar10'``).
        with_encoded: the set keeps each image's encoded file too (:meth:`write_encoded`, every row).
    """

    def __init__(self, path: str | Path, *, image_shape: Sequence[int], labels: np.ndarray, split: np.ndarray,
                 class_names: Sequence[str], attrs: Mapping[str, Any],
                 human: Mapping[str, np.ndarray] | None = None, dense: Mapping[str, np.ndarray] | None = None,
                 expected_sha256: str | None = None, describe: str = "the image set",
                 with_encoded: bool = False) -> None:
        self.path, self.image_shape = Path(path), tuple(int(d) for d in image_shape)
        self.labels, self.split, self.class_names = labels, split, list(class_names)
        self.attrs, self.human, self.dense = dict(attrs), dict(human or {}), dict(dense or {})
        self.expected_sha256, self.describe = expected_sha256, describe
        self.n, self.rows_written = len(labels), 0
        self.with_encoded, self.encoded_written = with_encoded, 0
        self.content_sha256: str | None = None
        self._digest = hashlib.sha256()
        self._encoded_digest = hashlib.sha256()

    def __enter__(self) -> "ImageSetWriter":
        self._atomic = atomic_output(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._file = h5py.File(tmp, "w")
            self._images = self._file.create_dataset("images", shape=(self.n, *self.image_shape), dtype=np.uint8,
                                                     chunks=(min(256, self.n), *self.image_shape))
            self._encoded = (self._file.create_dataset(ENCODED, shape=(self.n,), dtype=h5py.vlen_dtype(np.uint8))
                             if self.with_encoded else None)
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, rows: np.ndarray) -> None:
        """Append uint8 rows (k, H, W, C) after those already written."""
        if rows.dtype != np.uint8 or tuple(rows.shape[1:]) != self.image_shape:
            raise ValueError(f"rows must be uint8 (k, {', '.join(map(str, self.image_shape))}), got {rows.dtype} "
                             f"{rows.shape}")
        stop = self.rows_written + len(rows)
        if stop > self.n:
            raise ValueError(f"{stop} rows written, but the set has {self.n}")
        self._images[self.rows_written:stop] = rows
        self._digest.update(np.ascontiguousarray(rows).tobytes())
        self.rows_written = stop

    def write_encoded(self, blobs: Sequence[bytes]) -> None:
        """Append the encoded files of the next rows (a writer made ``with_encoded``), rows in order."""
        if self._encoded is None:
            raise ValueError("this writer was made without with_encoded=True")
        stop = self.encoded_written + len(blobs)
        if stop > self.n:
            raise ValueError(f"{stop} encoded rows written, but the set has {self.n}")
        # Row by row: a slice assignment would read equal-length files as one 2-D array.
        for i, blob in enumerate(blobs, start=self.encoded_written):
            self._encoded[i] = np.frombuffer(blob, dtype=np.uint8)
            update_encoded_digest(self._encoded_digest, blob)
        self.encoded_written = stop

    def _finish(self) -> None:
        if self.rows_written != self.n:
            raise ValueError(f"{self.rows_written} of {self.n} rows were written")
        if self.with_encoded and self.encoded_written != self.n:
            raise ValueError(f"{self.encoded_written} of {self.n} encoded rows were written")
        self.content_sha256 = finish_content_sha256(
            self._digest, labels=self.labels, split=self.split, class_names=self.class_names, human=self.human,
            dense=self.dense, encoded_sha256=self._encoded_digest.hexdigest() if self.with_encoded else None)
        if self.expected_sha256 and self.content_sha256 != self.expected_sha256.lower():
            raise ChecksumError(f"sha256 mismatch for {self.describe}: expected {self.expected_sha256.lower()}, got "
                                f"{self.content_sha256}. The source content changed; fix the sha256 in the params "
                                f"if intended.")
        f = self._file
        f.create_dataset("labels", data=self.labels.astype(np.int64))
        f.create_dataset("split", data=self.split.astype("S5"))
        for kind, values in self.human.items():
            f.create_dataset(f"human/{kind}", data=values)
        for kind, values in self.dense.items():
            f.create_dataset(f"dense/{kind}", data=values, chunks=(1, *values.shape[1:]), compression="gzip")
        # The order of ImageSet.stored_provenance.
        _set_provenance(f, dict(self.attrs, content_sha256=self.content_sha256, class_names=self.class_names,
                                n=self.n, image_shape=list(self.image_shape)))

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is None:
                self._finish()
        except BaseException:
            self._file.close()
            self._atomic.__exit__(*sys.exc_info())
            raise
        self._file.close()
        self._atomic.__exit__(*exc)

    @property
    def provenance(self) -> dict[str, Any]:
        """The provenance the closed file records."""
        return dict(self.attrs, content_sha256=self.content_sha256, class_names=self.class_names, n=self.n,
                    image_shape=list(self.image_shape))


def write_chunked_image_set(path: str | Path, images: ChunkedImageSet, *, expected_sha256: str | None = None,
                            describe: str = "the image set") -> dict[str, Any]:
    """Write a :class:`ChunkedImageSet` atomically, one chunk of pixels in memory at a time.

    Args:
        path: output ``.h5`` path.
        images: the set; its ``attrs`` become the provenance, with the content sha256 added.
        expected_sha256: when set, the content must have this sha256 (nothing is written otherwise).
        describe: how a sha256 mismatch names the set.

    Returns:
        The provenance the file records.

    Raises:
        ChecksumError: ``expected_sha256`` is set and the content has another.
    """
    with ImageSetWriter(path, image_shape=images.image_shape, labels=images.labels, split=images.split,
                        class_names=images.class_names, attrs=images.attrs, human=images.human, dense=images.dense,
                        expected_sha256=expected_sha256, describe=describe,
                        with_encoded=images.encoded_chunks is not None) as writer:
        for rows in images.chunks():
            writer.write(rows)
        for blobs in images.encoded_chunks() if images.encoded_chunks is not None else ():
            writer.write_encoded(blobs)
    return writer.provenance


def write_image_set(path: str | Path, images: ImageSet) -> None:
    """Write an :class:`ImageSet` atomically (through :class:`ImageSetWriter`, in chunks of 256 rows).

    Args:
        path: output ``.h5`` path.
        images: the set; its ``attrs`` become the provenance, with the content sha256 added.
    """
    write_chunked_image_set(path, ChunkedImageSet.of(images))


def read_image_set(path: str | Path) -> ImageSet:
    """Read a file written by :func:`write_image_set`, checking its content against its recorded sha256.

    Returns:
        The :class:`ImageSet`, with the stored provenance as ``attrs``.

    Raises:
        StaleFileError: the content was changed after the file was written.
    """
    with _open(path) as f:
        provenance = _get_provenance(f)
        images = ImageSet(f["images"][...], f["labels"][...], _strings(f["split"][...]),
                          list(provenance["class_names"]), provenance, human=_read_group(f, "human"),
                          dense=_read_group(f, "dense"),
                          encoded=[row.tobytes() for row in f[ENCODED][...]] if ENCODED in f else None)
    require_recorded_content(path, recorded=provenance["content_sha256"], actual=images.content_sha256())
    return images


def verify_image_set(path: str | Path) -> dict[str, Any]:
    """Check an image-set file's content against its recorded sha256, reading the pixels in chunks.

    The hash is :func:`zooprobe.data.imageset.content_sha256`, computed without holding the
    images in memory.

    Returns:
        The file's provenance.

    Raises:
        StaleFileError: the content was changed after the file was written.
    """
    with _open(path) as f:
        provenance = _get_provenance(f)
        actual = content_sha256(f["images"], chunk_rows=VERIFY_ROWS, labels=f["labels"][...],
                                split=_strings(f["split"][...]), class_names=list(provenance["class_names"]),
                                human=_read_group(f, "human"), dense=_read_group(f, "dense"),
                                encoded=_encoded_rows(f[ENCODED]) if ENCODED in f else None)
    require_recorded_content(path, recorded=provenance["content_sha256"], actual=actual)
    return provenance


def _encoded_rows(dataset: h5py.Dataset) -> Any:
    """Each row's encoded bytes, read VERIFY_ROWS rows at a time (never the whole dataset at once)."""
    for start in range(0, len(dataset), VERIFY_ROWS):
        for row in dataset[start:start + VERIFY_ROWS]:
            yield row.tobytes()


def has_encoded_images(path: str | Path) -> bool:
    """Whether an image-set file keeps each image's encoded file (an image folder's ``keep_encoded``)."""
    with _open(path) as f:
        return ENCODED in f


def _read_group(f: h5py.File, group: str) -> dict[str, np.ndarray]:
    return {kind: f[group][kind][...] for kind in f[group]} if group in f else {}


def read_annotations(path: str | Path, group: str) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """Return (the ``human`` or ``dense`` arrays, split, provenance) of an image-set file without its pixels."""
    if group not in ("human", "dense"):
        raise ValueError(f"unknown annotation group {group!r}; valid: ['human', 'dense']")
    verify_image_set(path)
    with _open(path) as f:
        return _read_group(f, group), _strings(f["split"][...]), _get_provenance(f)


def read_image_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Return (labels, split, provenance) of an image-set file, after checking its content sha256 (in chunks)."""
    verify_image_set(path)
    with _open(path) as f:
        return f["labels"][...], _strings(f["split"][...]), _get_provenance(f)


class ImageBatches:
    """Uint8 image batches of an image-set file, for a ``torch.utils.data.DataLoader``.

    A map-style dataset whose item ``i`` is the ``i``-th batch of rows from ``start``: the
    loader is built with ``batch_size=None``, so each worker reads a whole batch with one
    HDF5 slice (far faster than one read per image). The file is opened lazily in each
    process that reads, because an open HDF5 handle must not cross a fork.

    With ``decode``, an item is instead each row's encoded file (see :func:`has_encoded_images`)
    passed through ``decode`` (bytes -> uint8 (H, W, C), the same shape for every row) and stacked:
    a pretrained model's eval transform applied to the original photograph, in the loader's workers.

    Args:
        path: an image-set file written by :func:`write_image_set`.
        batch_size: rows per item.
        start: first row (a resumed extraction starts where it stopped).
        decode: turns one row's encoded bytes into its uint8 image; it must pickle (loader workers).
    """

    def __init__(self, path: str | Path, batch_size: int, *, start: int = 0,
                 decode: Callable[[bytes], np.ndarray] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.path, self.batch_size, self.start, self.decode = str(path), batch_size, start, decode
        with _open(self.path) as f:
            self.n = len(f["images"])
            self.image_shape = tuple(f["images"].shape[1:])
            if decode is not None and ENCODED not in f:
                raise ValueError(f"{path} keeps no encoded images to decode; build it from an image folder with "
                                 f"keep_encoded: true")
        if not 0 <= start <= self.n:
            raise ValueError(f"start row {start} outside 0..{self.n}")
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return -(-(self.n - self.start) // self.batch_size)

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(index)
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        lo = self.start + index * self.batch_size
        if self.decode is not None:
            rows = self._file[ENCODED][lo:min(lo + self.batch_size, self.n)]
            return np.stack([self.decode(row.tobytes()) for row in rows])
        return self._file["images"][lo:min(lo + self.batch_size, self.n)]

    def __getstate__(self) -> dict[str, Any]:
        # Workers get the path, never the parent's open handle.
        return dict(self.__dict__, _file=None, _pid=None)


def read_mat_arrays(path: str | Path, names: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Numeric arrays from a MATLAB v7.3 file (HDF5 inside), axes reversed as MATLAB stores them.

    Args:
        path: the ``.mat`` file.
        names: the arrays to read.

    Returns:
        (the arrays of ``names`` that the file has, by name; the names of everything in the file).
    """
    with h5py.File(path, "r") as f:
        return {name: np.asarray(f[name][...]) for name in names if name in f}, sorted(f)


# ----------------------------------------------------------------------------- features
class FeatureWriter:
    """Write features batch by batch, so host memory holds one batch, not the whole set.

    Use as a context manager. Rows go to a hidden sibling ``.<name>.partial`` that records how
    many rows are safely written (``rows_done``, updated after each batch is flushed to the
    operating system). The file appears under its final name only when every row was written
    and the block exits without error, so a killed job never leaves a file that looks complete.

    With ``resume=True`` a partial file left by a killed or failed run continues from its
    ``rows_done``, provided it was started with the same provenance (model weights, dataset,
    layers, pooling, preprocessing, precision, code version; not the ``execution`` entry) and layout; anything
    else (including a partial file HDF5 cannot open) starts afresh. Read :attr:`rows_done`
    after entering to know where to start. Inside the block it holds a :class:`~zooprobe.io.atomic.WriterLock`.
    """

    def __init__(self, path: str | Path, *, n: int, layer_dims: Mapping[str, int | tuple[int, ...]],
                 labels: np.ndarray, split: np.ndarray, provenance: Mapping[str, Any], dtype: str = "float32",
                 with_head: bool = False, head_classes: int = 0, resume: bool = False) -> None:
        if with_head and head_classes < 1:
            raise ValueError("with_head needs head_classes, the width of the model's logits")
        self._path, self._n, self._dims, self._dtype, self._resume = Path(path), n, dict(layer_dims), dtype, resume
        self._with_head, self._head_classes = with_head, head_classes
        self._labels, self._split, self._provenance = labels, split, dict(provenance)
        self._partial = self._path.with_name(f".{self._path.name}.partial")
        self._lock = WriterLock(self._partial)
        self.rows_done = 0

    def _open_partial(self, key: str) -> h5py.File | None:
        """The partial file of an earlier run with the same key, or ``None``."""
        if not (self._resume and self._partial.exists()):
            return None
        try:
            f = h5py.File(self._partial, "r+")
        except OSError:  # killed in the middle of a metadata write: unreadable, start afresh
            return None
        if f.attrs.get("resume_key") == key and 0 <= int(f.attrs.get("rows_done", -1)) <= self._n:
            return f
        f.close()
        return None

    def __enter__(self) -> "FeatureWriter":
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            return self._start()
        except BaseException:
            self._lock.release()
            raise

    def _start(self) -> "FeatureWriter":
        key = feature_resume_key(self._provenance, n=self._n, dims=self._dims, dtype=self._dtype,
                                 with_head=self._with_head, head_classes=self._head_classes, labels=self._labels)
        self._file = self._open_partial(key)
        if self._file is not None:
            self.rows_done = int(self._file.attrs["rows_done"])
            return self
        self._partial.unlink(missing_ok=True)
        self._file = h5py.File(self._partial, "w")
        group = self._file.create_group("layers")
        for name, dim in self._dims.items():
            # A layer is (N, D) pooled, or (N, C, h, w) kept spatial for dense probes.
            shape = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
            rows = max(1, min(self._n, 512, (1 << 20) // max(1, int(np.prod(shape)) * np.dtype(self._dtype).itemsize)))
            group.create_dataset(name, shape=(self._n, *shape), dtype=self._dtype, chunks=(rows, *shape))
        self._file.create_dataset("labels", data=self._labels.astype(np.int64))
        self._file.create_dataset("split", data=self._split.astype("S5"))
        if self._with_head:
            self._file.create_dataset("head_pred", shape=(self._n,), dtype=np.int64)
            self._file.create_dataset("head_logits", shape=(self._n, self._head_classes), dtype=np.float32,
                                      chunks=(min(self._n, 512), self._head_classes))
        _set_provenance(self._file, dict(self._provenance, layers=list(self._dims)))
        self._file.attrs["resume_key"] = key
        self._file.attrs["rows_done"] = 0
        self._file.flush()
        return self

    def write(self, batch: Mapping[str, np.ndarray], head_logits: np.ndarray | None = None,
              head_pred: np.ndarray | None = None) -> None:
        """Append one batch: a (B, D) array for every layer, and the head's (B, K) logits if kept.

        ``head_pred`` overrides the logits' argmax as the predicted labels (a head over a superset
        of the set's classes: ``zooprobe.data.label_space.subset_head_predictions``).
        """
        size = len(next(iter(batch.values())))
        if self.rows_done + size > self._n:
            raise ValueError(f"{self._path}: batch of {size} rows after row {self.rows_done} overflows {self._n}")
        end = self.rows_done + size
        for name, values in batch.items():
            self._file["layers"][name][self.rows_done:end] = values
        if self._with_head:
            self._file["head_logits"][self.rows_done:end] = head_logits
            self._file["head_pred"][self.rows_done:end] = (np.asarray(head_logits).argmax(axis=1) if head_pred is None
                                                           else head_pred)
        # The rows reach the OS before the counter that vouches for them does.
        self._file.flush()
        self.rows_done = end
        self._file.attrs["rows_done"] = end
        self._file.flush()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            return self._finish(exc_type)
        finally:
            self._lock.release()

    def _finish(self, exc_type: Any) -> bool:
        complete = exc_type is None and self.rows_done == self._n
        if complete:
            del self._file.attrs["rows_done"], self._file.attrs["resume_key"]
        self._file.close()
        if complete:
            os.replace(self._partial, self._path)
            return False
        if not self._resume:
            self._partial.unlink(missing_ok=True)
        if exc_type is None:
            raise RuntimeError(f"{self._path}: wrote {self.rows_done} of {self._n} rows")
        return False


def read_features(path: str | Path, layers: list[str] | None = None, *, chunk_rows: int | None = None) -> Features:
    """Read a feature file.

    Args:
        path: file written by :class:`FeatureWriter`.
        layers: which layers to load; ``None`` loads all.
        chunk_rows: None loads each layer into memory; a number leaves the layers on disk
            (:class:`LayerOnDisk`: indexing its rows gives :class:`FeatureRowChunks` of at most this many
            rows), so a probe can stream a matrix larger than memory. Labels, split and head outputs are
            read either way.

    Returns:
        :class:`Features`.
    """
    with _open(path) as f:
        names = layers if layers is not None else list(f["layers"])
        provenance = _get_provenance(f)
        load = ((lambda name: f["layers"][name][...]) if chunk_rows is None
                else (lambda name: LayerOnDisk(path, name, chunk_rows=chunk_rows)))
        return Features({name: load(name) for name in provenance["layers"] if name in names},
                        f["labels"][...], _strings(f["split"][...]), provenance,
                        f["head_pred"][...] if "head_pred" in f else None,
                        f["head_logits"][...] if "head_logits" in f else None)


# ----------------------------------------------------------------------------- probe results
def _write_predictions(group: h5py.Group, per_layer: Mapping[str, np.ndarray]) -> None:
    for layer, predicted in per_layer.items():
        group.create_dataset(f"pred/{layer}", data=np.asarray(predicted, dtype=np.int64))


def _read_predictions(group: h5py.Group, order: Sequence[str] | None) -> dict[str, np.ndarray]:
    """Layer -> predictions of one group, in the provenance's layer ``order`` (else the stored one)."""
    return {layer: group["pred"][layer][...] for layer in order or list(group["pred"])}


def write_probe_result(path: str | Path, *, predictions: Mapping[str, Mapping[str, np.ndarray]],
                       labels: Mapping[str, np.ndarray], provenance: Mapping[str, Any],
                       head: Mapping[str, np.ndarray] | None = None,
                       transfer: Mapping[str, tuple[Mapping[str, np.ndarray], np.ndarray, np.ndarray]] | None = None,
                       head_confidence: Mapping[str, np.ndarray] | None = None) -> None:
    """Write per-example probe predictions, so analyses can resample test examples.

    Args:
        path: output ``.h5`` path.
        predictions: evaluation set -> layer -> predicted labels (N_eval,).
        labels: evaluation set -> true labels (N_eval,).
        provenance: model, task, seed, chosen regularisation and so on.
        head: evaluation set -> the model's own head's predictions, when its label space is the task's.
        transfer: transfer set -> (layer -> predictions of its own probes on its test rows, their true
            labels, the indices of those rows in the set).
        head_confidence: evaluation set -> the head's softmax probability of its prediction, for the
            sets where one was computed (:func:`zooprobe.probes.inputs.head_confidence`).
    """
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        for name, (per_layer, truth, rows) in (transfer or {}).items():
            group = f.create_group(f"transfer/{name}")
            group.create_dataset("labels", data=np.asarray(truth, dtype=np.int64))
            group.create_dataset("rows", data=np.asarray(rows, dtype=np.int64))
            _write_predictions(group, per_layer)
        for eval_name, per_layer in predictions.items():
            group = f.create_group(f"evals/{eval_name}")
            group.create_dataset("labels", data=np.asarray(labels[eval_name], dtype=np.int64))
            _write_predictions(group, per_layer)
            if head is not None:
                group.create_dataset("head", data=np.asarray(head[eval_name], dtype=np.int64))
            if (head_confidence or {}).get(eval_name) is not None:
                group.create_dataset("head_confidence", data=np.asarray(head_confidence[eval_name], dtype=np.float64))
        _set_provenance(f, provenance)


def read_probe_result(path: str | Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray],
                                                 dict[str, Any], dict[str, np.ndarray]]:
    """Read a file written by :func:`write_probe_result`.

    Returns:
        (predictions, labels, provenance, head), shaped as the writer's arguments; layers keep
        the order given in the provenance; ``head`` is empty when none was stored.
    """
    with _open(path) as f:
        provenance = _get_provenance(f)
        order = provenance.get("layers")
        predictions, labels, head = {}, {}, {}
        for eval_name, group in f["evals"].items():
            predictions[eval_name] = _read_predictions(group, order)
            labels[eval_name] = group["labels"][...]
            if "head" in group:
                head[eval_name] = group["head"][...]
        return predictions, labels, provenance, head


def read_transfer_predictions(path: str | Path) -> dict[str, dict[str, Any]]:
    """The transfer probes of a file written by :func:`write_probe_result`.

    Returns:
        transfer set -> ``predictions`` (layer -> labels predicted on its test rows, in the
        provenance's layer order), ``labels`` and ``rows`` (those rows' indices in the set); empty
        when the task has no transfer sets.
    """
    with _open(path) as f:
        order = _get_provenance(f).get("layers")
        out = {}
        for name, group in (f["transfer"].items() if "transfer" in f else ()):
            out[name] = {"predictions": _read_predictions(group, order),
                         "labels": group["labels"][...], "rows": group["rows"][...]}
        return out


def read_head_confidence(path: str | Path) -> dict[str, np.ndarray]:
    """Evaluation set -> the head's confidence per row, of a file written by :func:`write_probe_result`;
    empty where none was stored."""
    with _open(path) as f:
        return {name: group["head_confidence"][...] for name, group in f["evals"].items() if "head_confidence" in group}


# ----------------------------------------------------------------------------- chunked feature reads
class LayerOnDisk:
    """One layer of a feature file left on disk; indexing it with rows gives their :class:`FeatureRowChunks`.

    ``layer[rows]`` takes a boolean mask over all rows, ascending row indices, or ``slice(None)`` (all
    rows), the selections the probe stage makes, and keeps file order: so a label array indexed the
    same way lines up with the chunks' rows. Any other order is refused rather than silently sorted.

    Args:
        path: file written by :class:`FeatureWriter`.
        layer: the layer.
        chunk_rows: most rows in one chunk.
    """

    def __init__(self, path: str | Path, layer: str, *, chunk_rows: int) -> None:
        self.path, self.layer, self.chunk_rows = Path(path), layer, chunk_rows

    def __getitem__(self, rows: np.ndarray | slice) -> "FeatureRowChunks":
        if isinstance(rows, slice):
            if rows != slice(None):
                raise ValueError(f"{self.path} layer {self.layer!r}: only slice(None) (all rows) is supported, "
                                 f"got {rows}; pass a boolean mask or ascending row indices")
            rows = None
        else:
            rows = np.asarray(rows)
            if rows.dtype != bool and np.any(np.diff(rows) <= 0):
                raise ValueError(f"{self.path} layer {self.layer!r}: row indices must be ascending and distinct, so "
                                 f"the chunks keep the order of labels indexed the same way")
        return FeatureRowChunks(self.path, self.layer, rows=rows, chunk_rows=self.chunk_rows)


class FeatureRowChunks:
    """Row chunks of one layer of a feature file, read one chunk at a time (probing a matrix larger than memory).

    Iterating opens the file, yields float32 arrays of the chosen rows in file order, each from at most
    ``chunk_rows`` consecutive file rows, and closes it; it can be iterated any number of times (a solver passes over the rows
    once per function evaluation). Rows are read as contiguous slices and selected within each slice,
    since HDF5 fancy indexing is slow.

    Args:
        path: file written by :class:`FeatureWriter`.
        layer: the layer to read.
        rows: indices of the rows to read, or a boolean mask over all rows; ``None`` reads all.
        chunk_rows: most rows in one yielded chunk.
    """

    def __init__(self, path: str | Path, layer: str, *, rows: np.ndarray | None = None, chunk_rows: int = 4096) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        self.path, self.layer, self.chunk_rows = Path(path), layer, chunk_rows
        with _open(path) as f:
            if layer not in f["layers"]:
                raise KeyError(f"{path}: no layer {layer!r}; it holds {list(f['layers'])}")
            shape = f["layers"][layer].shape
        self._n_all, self.dim = shape[0], int(np.prod(shape[1:]))
        if rows is None:
            self._rows = np.arange(self._n_all)
        else:
            rows = np.asarray(rows)
            self._rows = np.flatnonzero(rows) if rows.dtype == bool else np.sort(rows.astype(np.int64))

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Any:
        with _open(self.path) as f:
            data = f["layers"][self.layer]
            if not len(self._rows):
                return
            # Slices of chunk_rows file rows bound the memory even when the chosen rows are sparse.
            for start in range(int(self._rows[0]), int(self._rows[-1]) + 1, self.chunk_rows):
                lo, hi = np.searchsorted(self._rows, [start, start + self.chunk_rows])
                if lo == hi:
                    continue
                wanted = self._rows[lo:hi]
                block = data[int(wanted[0]):int(wanted[-1]) + 1]
                if len(block) != len(wanted):  # rows left out within the slice: select (a copy); else none
                    block = block[wanted - wanted[0]]
                chunk = np.asarray(block, dtype=np.float32).reshape(len(wanted), self.dim)
                del block
                yield chunk
                # Dropped before the next read, so a consumer that lets go of a chunk holds at most one.
                del chunk
