"""What the align and dense-probe stages read: a dataset's extra labels and a model's features on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from zooprobe.io import h5io


class ProbeInputError(ValueError):
    """Inputs a probe stage cannot score: stale features, missing labels, a head without the needed outputs."""


def head_confidence(features: h5io.Features, rows: Any) -> np.ndarray | None:
    """The head's softmax probability of its predicted class on ``rows``, for calibration (ECE).

    Args:
        features: a model's features on a set, with the head's logits kept.
        rows: the scored rows (a mask, indices or a slice).

    Returns:
        float64 (N,) confidences; None without logits, or when the head has other outputs than the
        set's classes (a head over a superset: the softmax over all its outputs is not the
        confidence of the prediction restricted to the subset, so no calibration is claimed for it).
    """
    logits = features.head_logits
    if logits is None or logits.shape[1] != len(features.provenance.get("class_names", ())):
        return None
    z = np.asarray(logits[rows], dtype=np.float64)
    z -= z.max(axis=1, keepdims=True)  # softmax without overflow
    probabilities = np.exp(z)
    return probabilities.max(axis=1) / probabilities.sum(axis=1)


@dataclass(frozen=True)
class AnnotatedFeatures:
    """A model's features on a dataset, with that dataset's human or dense labels.

    Attributes:
        annotations: the dataset's ``human`` or ``dense`` arrays, aligned with its rows.
        split: per-row split name.
        dataset: the dataset file's provenance (``name``, ``content_sha256``, ``class_names``, ...).
        features: the model's features on those rows.
    """

    annotations: dict[str, np.ndarray]
    split: np.ndarray
    dataset: dict[str, Any]
    features: h5io.Features

    def provenance(self, run: Mapping[str, Any], *, model: str, settings: Any, **more: Any) -> dict[str, Any]:
        """Provenance of scores computed from these inputs.

        Args:
            run: what every output of this run records (the code version).
            model: the model's name.
            settings: the stage's params section.
            **more: stage-specific entries (benchmark, dataset, ...).

        Returns:
            ``run`` with the model, the dataset's and the weights' sha256, the settings and ``more``.
        """
        return dict(run, model=model, dataset_sha256=self.dataset["content_sha256"],
                    weights_sha256=self.features.provenance["weights_sha256"], settings=settings, **more)


def read_annotated_features(data: str | Path, features: str | Path, group: str) -> AnnotatedFeatures:
    """Read a dataset's ``human`` or ``dense`` labels and a model's features on it, checked to match.

    Args:
        data: the dataset file (its content is checked against its recorded sha256).
        features: the model's features on it.
        group: ``human`` or ``dense``.

    Returns:
        :class:`AnnotatedFeatures`.

    Raises:
        ProbeInputError: the features were extracted from another version of the dataset.
    """
    annotations, split, dataset = h5io.read_annotations(data, group)
    read = h5io.read_features(features)
    if read.provenance["dataset_sha256"] != dataset["content_sha256"]:
        raise ProbeInputError(f"{features} was extracted from another version of {data}; rerun extract")
    return AnnotatedFeatures(annotations, split, dataset, read)
