"""The ``probe`` stage for tasks with ``probe: head``: the model's own classifier is the probe.

For test sets too small to fit linear probes (one image per class), a model is scored by its own
head only. Its predictions were written at extraction: the argmax of the logits, or on a set that
declares ``head_classes`` the argmax over that set's classes' logits
(:func:`zooprobe.data.label_space.subset_head_predictions`). The result file has one "layer",
``head``, so the analysis ranks models by own-head accuracy and compares rankings as for probes.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from zooprobe.io import h5io
from zooprobe.io.records import Features
from zooprobe.params.config import expand_path
from zooprobe.probes.inputs import ProbeInputError, head_confidence
from zooprobe.probes.linear import ProbeResult

# The one "layer" of an own-head result.
HEAD_LAYER = "head"


def published_row(*, table: str | Path, name: str, img_size: int) -> dict[str, Any]:
    """One model's row of a published results table (timm's ``results-imagenet.csv`` layout).

    Args:
        table: the CSV file (columns ``model``, ``img_size``, ``top1``, ...); ``$VARIABLES`` are expanded.
        name: the ``model`` column's value.
        img_size: the ``img_size`` column's value (a model can appear at several).

    Returns:
        The provenance record: table path and sha256, the row as read, and ``top1`` in percent.

    Raises:
        ProbeInputError: no such row (naming the rows of that model that exist).
    """
    path = Path(expand_path(str(table)))
    data = path.read_bytes()
    rows = list(csv.DictReader(data.decode("utf-8").splitlines()))
    matching = [row for row in rows if row["model"] == name]
    chosen = [row for row in matching if int(row["img_size"]) == int(img_size)]
    if not chosen:
        raise ProbeInputError(f"{path}: no row with model {name!r} at img_size {img_size}; that model's rows: "
                              f"{[(r['model'], r['img_size']) for r in matching] or 'none'}")
    return {"table": str(table), "table_sha256": hashlib.sha256(data).hexdigest(), "name": name,
            "img_size": int(img_size), "row": chosen[0], "top1": float(chosen[0]["top1"])}


def score_own_head(*, model: str, task: str, id_name: str, id_features: Features, ood: Mapping[str, Features],
                   run: Mapping[str, Any], published: Mapping[str, Any] | None = None) -> ProbeResult:
    """Own-head predictions on every row of the ID set and each OOD set, as a one-layer probe result.

    Args:
        model: the model's name.
        task: the task's name.
        id_name: the task's clean set.
        id_features: the model's features on it (with head predictions).
        ood: shifted set name -> features.
        run: what every output records (the code version).
        published: the model's published-table row (:func:`published_row`), recorded in provenance.

    Returns:
        :class:`ProbeResult` with ``predictions[set][HEAD_LAYER]`` and ``head`` the same predictions.

    Raises:
        ProbeInputError: a set without head predictions (the model's head is not over its classes).
    """
    evals = {id_name: id_features, **ood}
    missing = {name: f.provenance.get("head_classes", {}).get("space") for name, f in evals.items()
               if f.head_pred is None}
    if missing:
        raise ProbeInputError(f"probe.tasks.{task} (probe: head): model {model!r} wrote no own-head predictions on "
                              f"{sorted(missing)}: its head's outputs are not those sets' classes (declared "
                              f"head_classes: {sorted(set(map(str, missing.values())))})")
    # No probe is fitted, so no split is held out: the ID set is scored on its test rows as every task is.
    rows = {name: (f.split == "test") if name == id_name else slice(None) for name, f in evals.items()}
    head = {name: np.asarray(f.head_pred[rows[name]]) for name, f in evals.items()}
    labels = {name: f.labels[rows[name]] for name, f in evals.items()}
    source = id_features.provenance
    provenance = dict(run, model=model, task=task, probe="head", id_eval=id_name, layers=[HEAD_LAYER],
                      # One candidate "layer", so nothing is chosen on validation data.
                      val_accuracy={HEAD_LAYER: float("nan")}, chosen_c={}, seed=0,
                      weights_sha256=source["weights_sha256"], pooling=source["pooling"],
                      preprocessing=source["preprocessing"], arch=source["arch"],
                      checkpoint_info=source.get("checkpoint_info", {}), head_scored=True,
                      head_classes={name: f.provenance.get("head_classes") for name, f in evals.items()},
                      transfer={}, feature_versions={name: f.provenance["zooprobe_version"] for name, f in evals.items()},
                      **({"published": dict(published)} if published else {}))
    return ProbeResult(predictions={name: {HEAD_LAYER: pred} for name, pred in head.items()}, labels=labels,
                       provenance=provenance, head=head, transfer={},
                       head_confidence={name: head_confidence(f, rows[name]) for name, f in evals.items()})


def score_own_head_files(*, model: str, task: str, id_name: str, id_path: str, ood_paths: Mapping[str, str],
                         run: Mapping[str, Any], published: Mapping[str, Any] | None, out: str) -> None:
    """:func:`score_own_head` on feature files, written as a probe result file.

    Args:
        model, task, id_name, run: as in :func:`score_own_head`.
        id_path: the model's feature file on the ID set.
        ood_paths: shifted set name -> feature file.
        published: the model entry's ``published`` mapping (``table``, ``name``, ``img_size``), or ``None``.
        out: the probe result file.
    """
    result = score_own_head(model=model, task=task, id_name=id_name, id_features=h5io.read_features(id_path, layers=[]),
                            ood={name: h5io.read_features(path, layers=[]) for name, path in ood_paths.items()}, run=run,
                            published=published_row(**published) if published else None)
    h5io.write_probe_result(out, predictions=result.predictions, labels=result.labels,
                            provenance=result.provenance, head=result.head, transfer=result.transfer,
                            head_confidence=result.head_confidence)
