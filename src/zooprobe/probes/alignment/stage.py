"""What the ``align`` and ``align-tables`` stages compute: from the input files to the JSON payload."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from zooprobe.io import h5io
from zooprobe.io.fetch import sha256_of
from zooprobe.probes.alignment.human_labels import align_predictions, labelled_rows, softmax, table_probabilities
from zooprobe.probes.alignment.representation import align_representation
from zooprobe.probes.alignment.result import alignment_payload
from zooprobe.probes.inputs import ProbeInputError, read_annotated_features

log = logging.getLogger("zooprobe")


def align_model(*, data: str | Path, features: str | Path, benchmark: str, model: str, settings: Mapping[str, Any],
                run: Mapping[str, Any]) -> dict[str, Any]:
    """Score one model's features (or head) against a benchmark's human judgements.

    A set with human label distributions scores the head's softmax (:func:`align_predictions`);
    any other scores every layer's representation (:func:`align_representation`).

    Args:
        data: the benchmark's dataset file, with its ``human`` arrays.
        features: the model's features on it.
        benchmark: the benchmark's name.
        model: the model's name.
        settings: the ``align`` params section (similarity, layer, n_triplets, n_boot, seed).
        run: what every output of this run records (the code version).

    Returns:
        The payload (:func:`alignment_payload`).

    Raises:
        ProbeInputError: stale features, or a label-distribution set and a model without head logits.
    """
    inputs = read_annotated_features(data, features, "human")
    human, info, read = inputs.annotations, inputs.dataset, inputs.features
    provenance = inputs.provenance(run, model=model, settings=settings, benchmark=benchmark, dataset=info["name"])
    if "label_probs" in human:
        if read.head_logits is None:
            raise ProbeInputError(f"model {model!r} kept no head logits on {info['name']!r}: its head does not "
                                  f"predict this set's {len(info['class_names'])} classes, so it has no label "
                                  f"distribution to compare with the humans'")
        rows = labelled_rows(human, inputs.split)
        result = align_predictions(softmax(read.head_logits[rows]), human["label_probs"][rows],
                                   n_boot=settings["n_boot"], seed=settings["seed"])
    else:
        result = align_representation(
            read.layers, human, similarity=settings["similarity"], layer_choice=settings["layer"],
            n_triplets=settings["n_triplets"], n_boot=settings["n_boot"], seed=settings["seed"])
    log.info("%s on %s: %s = %.4f at layer %s", model, benchmark, result.score_metric, result.score,
             result.selected_layer)
    return alignment_payload(benchmark, model, result, provenance)


def align_tables(*, data: str | Path, tables: str | Path, benchmark: str, settings: Mapping[str, Any],
                 run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Score every published prediction table in a folder against the human label distributions.

    Args:
        data: the dataset file, with ``label_probs`` and ``order_rank`` (each row's index in the tables).
        tables: folder of ``.npz`` tables with ``logits`` or ``probs``; a table's name (minus ``_test``)
            is the model's.
        benchmark: the benchmark's name.
        settings: the ``align`` params section (n_boot, seed).
        run: what every output of this run records (the code version).

    Returns:
        One payload per table, in file-name order.

    Raises:
        ProbeInputError: no label distributions, no tables, or a table shorter than the labelled rows reach.
    """
    human, split, info = h5io.read_annotations(data, "human")
    if "label_probs" not in human:
        raise ProbeInputError(f"{data} has no human label distributions to score prediction tables against")
    rows = labelled_rows(human, split)
    ranks = human["order_rank"][rows].astype(int)
    paths = sorted(Path(tables).glob("*.npz"))
    if not paths:
        raise ProbeInputError(f"{tables}: no .npz prediction tables (with 'logits' or 'probs') found")
    payload = []
    for path in paths:
        with np.load(path, allow_pickle=False) as arrays:
            probs = table_probabilities(dict(arrays))
        if ranks.max() >= len(probs):
            raise ProbeInputError(f"{path} has {len(probs)} rows; the human labels reach row {ranks.max()}")
        name = path.stem.removesuffix("_test")
        result = align_predictions(probs[ranks], human["label_probs"][rows], n_boot=settings["n_boot"],
                                   seed=settings["seed"])
        provenance = dict(run, benchmark=benchmark, model=name, source="prediction table", table=path.name,
                          table_sha256=sha256_of(path), dataset=info["name"], dataset_sha256=info["content_sha256"],
                          settings=settings)
        payload.append(alignment_payload(benchmark, name, result, provenance))
        log.info("table %s on %s: cross-entropy %.4f", name, benchmark, -result.score)
    return payload
