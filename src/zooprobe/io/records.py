"""What zooprobe's files hold, as plain Python: the records read back and the checks on them.

Nothing here touches HDF5 (only :mod:`zooprobe.io.h5io` does); these are the parts of reading and
writing that are plain data: the feature record, the content check of an image-set file, and the
key that says whether a partial feature file may be resumed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np


@dataclass
class Features:
    """Layer-wise features of one model on one image set.

    ``layers`` maps a layer to its (N, D) array, or, read with ``h5io.read_features(chunk_rows=...)``, to
    the layer left on disk (``h5io.LayerOnDisk``: indexing its rows gives row chunks to stream).
    """

    layers: dict[str, Any]
    labels: np.ndarray
    split: np.ndarray
    provenance: dict[str, Any]
    head_pred: np.ndarray | None = None
    head_logits: np.ndarray | None = None


class StaleFileError(ValueError):
    """A file whose content no longer matches the sha256 recorded when it was written."""


def restore_hint(path: str | Path) -> str:
    """How to get a good copy of a pipeline output back, for error messages."""
    return (f"restore it with `dvc checkout --force {path}`, or delete it and rerun the job that writes it "
            f"(`snakemake {path}`)")


def require_recorded_content(path: str | Path, *, recorded: str, actual: str) -> None:
    """Fail unless a file's content sha256 is the one recorded in it.

    Args:
        path: the file, for the message.
        recorded: the sha256 its provenance records.
        actual: the sha256 of its content now.

    Raises:
        StaleFileError: naming the file, both hashes (shortened) and how to restore it.
    """
    if actual != recorded:
        raise StaleFileError(f"{path} was changed after it was written: its content sha256 is {actual[:16]}..., "
                             f"not the {recorded[:16]}... recorded in it (and in the provenance of everything "
                             f"computed from it); {restore_hint(path)}")


def feature_resume_key(provenance: Mapping[str, Any], *, n: int, dims: Mapping[str, Any], dtype: str,
                       with_head: bool, head_classes: int, labels: np.ndarray) -> str:
    """The key a partial feature file records, so that only a run computing the same rows resumes it.

    Args:
        provenance: the features' provenance; its ``execution`` entry is left out.
        n: rows of the file.
        dims: layer -> width or spatial shape.
        dtype: the feature dtype.
        with_head: whether the head's logits are kept.
        head_classes: their width.
        labels: the set's labels.

    Returns:
        A hex sha256.
    """
    # How the rows were computed must match for them to be reusable; how the job ran (batch size,
    # device, workers) changes them by rounding at most, so a resumed run may differ there.
    stable = {k: v for k, v in provenance.items() if k != "execution"}
    layout = dict(provenance=stable, n=n, dims=dict(dims), dtype=dtype, with_head=with_head, head_classes=head_classes,
                  labels=hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64)).hexdigest())
    return hashlib.sha256(json.dumps(layout, sort_keys=True, default=str).encode()).hexdigest()
