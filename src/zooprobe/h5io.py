"""The one module that reads and writes HDF5.

Three file kinds share one layout convention: arrays as datasets, and provenance as a JSON
string attribute ``provenance`` (plus flat copies of its scalar entries, so ``h5ls -v``
shows them). Every writer goes through :func:`zooprobe.atomic.atomic_output`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from zooprobe.atomic import atomic_output
from zooprobe.datasets import ImageSet

FORMAT_VERSION = 1


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
def write_image_set(path: str | Path, images: ImageSet) -> None:
    """Write an :class:`ImageSet` atomically.

    Args:
        path: output ``.h5`` path.
        images: the set; its ``attrs`` become the provenance, with the content sha256 added.
    """
    provenance = dict(images.attrs, content_sha256=images.content_sha256(), class_names=images.class_names,
                      n=len(images.labels), image_shape=list(images.images.shape[1:]))
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("images", data=images.images, chunks=(min(256, len(images.images)), *images.images.shape[1:]))
        f.create_dataset("labels", data=images.labels.astype(np.int64))
        f.create_dataset("split", data=images.split.astype("S5"))
        _set_provenance(f, provenance)


def read_image_set(path: str | Path) -> ImageSet:
    """Read a file written by :func:`write_image_set`.

    Returns:
        The :class:`ImageSet`, with the stored provenance as ``attrs``.
    """
    with h5py.File(path, "r") as f:
        provenance = _get_provenance(f)
        return ImageSet(f["images"][...], f["labels"][...], _strings(f["split"][...]),
                        list(provenance["class_names"]), provenance)


def read_image_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Return (labels, split, provenance) of an image-set file without reading its pixels."""
    with h5py.File(path, "r") as f:
        return f["labels"][...], _strings(f["split"][...]), _get_provenance(f)


def iter_image_batches(path: str | Path, batch_size: int) -> Iterator[np.ndarray]:
    """Yield uint8 image batches in stored order, reading one batch at a time."""
    with h5py.File(path, "r") as f:
        images = f["images"]
        for start in range(0, len(images), batch_size):
            yield images[start:start + batch_size]


# ----------------------------------------------------------------------------- features
@dataclass
class Features:
    """Layer-wise features of one model on one image set."""

    layers: dict[str, np.ndarray]
    labels: np.ndarray
    split: np.ndarray
    provenance: dict[str, Any]
    head_pred: np.ndarray | None = None


class FeatureWriter:
    """Write features batch by batch, so host memory holds one batch, not the whole set.

    Use as a context manager: the file appears under its final name only when every row
    was written and the block exits without error.
    """

    def __init__(self, path: str | Path, *, n: int, layer_dims: Mapping[str, int], labels: np.ndarray,
                 split: np.ndarray, provenance: Mapping[str, Any], dtype: str = "float32",
                 with_head: bool = False) -> None:
        self._path, self._n, self._dims, self._with_head = Path(path), n, dict(layer_dims), with_head
        self._labels, self._split, self._provenance, self._dtype = labels, split, dict(provenance), dtype
        self._written = 0

    def __enter__(self) -> "FeatureWriter":
        self._atomic = atomic_output(self._path)
        tmp = self._atomic.__enter__()
        self._file = h5py.File(tmp, "w")
        group = self._file.create_group("layers")
        for name, dim in self._dims.items():
            group.create_dataset(name, shape=(self._n, dim), dtype=self._dtype, chunks=(min(self._n, 512), dim))
        self._file.create_dataset("labels", data=self._labels.astype(np.int64))
        self._file.create_dataset("split", data=self._split.astype("S5"))
        if self._with_head:
            self._file.create_dataset("head_pred", shape=(self._n,), dtype=np.int64)
        _set_provenance(self._file, dict(self._provenance, layers=list(self._dims)))
        return self

    def write(self, batch: Mapping[str, np.ndarray], head_pred: np.ndarray | None = None) -> None:
        """Append one batch: a (B, D) array for every layer, and the head's (B,) predictions if kept."""
        size = len(next(iter(batch.values())))
        for name, values in batch.items():
            self._file["layers"][name][self._written:self._written + size] = values
        if self._with_head:
            self._file["head_pred"][self._written:self._written + size] = head_pred
        self._written += size

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self._file.close()
        if exc_type is None and self._written != self._n:
            exc = RuntimeError(f"{self._path}: wrote {self._written} of {self._n} rows")
            self._atomic.__exit__(type(exc), exc, None)
            raise exc
        return bool(self._atomic.__exit__(exc_type, exc, tb))


def read_features(path: str | Path, layers: list[str] | None = None) -> Features:
    """Read a feature file.

    Args:
        path: file written by :class:`FeatureWriter`.
        layers: which layers to load; ``None`` loads all.

    Returns:
        :class:`Features`.
    """
    with h5py.File(path, "r") as f:
        names = layers if layers is not None else list(f["layers"])
        provenance = _get_provenance(f)
        return Features({name: f["layers"][name][...] for name in provenance["layers"] if name in names},
                        f["labels"][...], _strings(f["split"][...]), provenance,
                        f["head_pred"][...] if "head_pred" in f else None)


# ----------------------------------------------------------------------------- probe results
def write_probe_result(path: str | Path, *, predictions: Mapping[str, Mapping[str, np.ndarray]],
                       labels: Mapping[str, np.ndarray], provenance: Mapping[str, Any],
                       head: Mapping[str, np.ndarray] | None = None) -> None:
    """Write per-example probe predictions, so analyses can resample test examples.

    Args:
        path: output ``.h5`` path.
        predictions: evaluation set -> layer -> predicted labels (N_eval,).
        labels: evaluation set -> true labels (N_eval,).
        provenance: model, task, seed, chosen regularisation and so on.
        head: evaluation set -> the model's own head's predictions, when its label space is the task's.
    """
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        for eval_name, per_layer in predictions.items():
            group = f.create_group(f"evals/{eval_name}")
            group.create_dataset("labels", data=np.asarray(labels[eval_name], dtype=np.int64))
            for layer, predicted in per_layer.items():
                group.create_dataset(f"pred/{layer}", data=np.asarray(predicted, dtype=np.int64))
            if head is not None:
                group.create_dataset("head", data=np.asarray(head[eval_name], dtype=np.int64))
        _set_provenance(f, provenance)


def read_probe_result(path: str | Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray],
                                                 dict[str, Any], dict[str, np.ndarray]]:
    """Read a file written by :func:`write_probe_result`.

    Returns:
        (predictions, labels, provenance, head), shaped as the writer's arguments; layers keep
        the order given in the provenance; ``head`` is empty when none was stored.
    """
    with h5py.File(path, "r") as f:
        provenance = _get_provenance(f)
        order = provenance.get("layers")
        predictions, labels, head = {}, {}, {}
        for eval_name, group in f["evals"].items():
            names = order or list(group["pred"])
            predictions[eval_name] = {layer: group["pred"][layer][...] for layer in names}
            labels[eval_name] = group["labels"][...]
            if "head" in group:
                head[eval_name] = group["head"][...]
        return predictions, labels, provenance, head
