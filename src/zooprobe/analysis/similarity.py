"""The ``cka`` stage: how alike the zoo's representations are, by linear CKA (Kornblith et al. 2019).

For one probe task, two families of matrices (:mod:`zooprobe.analysis.representations` computes
them in feature space, streaming row chunks, so no N x N Gram matrix is formed):

- **between models**: every pair of models, each at the layer its task selected on the ID val split
  (the layer its score is read at), on each of the task's evaluation sets: the ID test rows and
  every row of each OOD set, the rows the scores use.
- **between layers**: every pair of one model's layers, on each of the same sets.

An own-head task (``probe: head``) selects no layer; its models are compared at ``pre_logits``,
the representation the head reads (or, where it was not extracted, the deepest layer that was).
CKA carries no interval here: a bootstrap replicate needs a pass of its own over the features
(:mod:`zooprobe.analysis.representations`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from zooprobe.analysis.representations import CHUNK_ROWS, ESTIMATORS, cka_between_layers, cka_between_models
from zooprobe.analysis import stats
from zooprobe.analysis.rows import score_row
from zooprobe.analysis.scores import ProbeRun
from zooprobe.io import h5io
from zooprobe.io.atomic import atomic_output
from zooprobe.params.spec import PRE_LOGITS

METHOD = {"biased": "linear CKA (Kornblith et al. 2019), biased HSIC; no interval",
          "debiased": "linear CKA, debiased HSIC (Song et al. 2012); no interval"}


class SimilarityInputError(ValueError):
    """Probe results and features that do not belong together; the message names what to rerun."""


def _compared_layer(provenance: Mapping[str, Any], selected: str, extracted: list[str]) -> str:
    """The selected layer; for an own-head task, ``pre_logits`` or else the deepest layer extracted."""
    if provenance.get("probe") != "head":
        return selected
    return PRE_LOGITS if PRE_LOGITS in extracted else extracted[-1]


def task_similarity(*, task: str, probes: Mapping[str, str | Path], features: Mapping[str, Mapping[str, str | Path]],
                    estimator: str = "biased", chunk_rows: int = CHUNK_ROWS) -> dict[str, Any]:
    """CKA between the models of one task on each of its sets, and between each model's layers.

    Args:
        task: the task's name.
        probes: model -> its probe result on the task (which layer it selected, which sets it scored).
        features: model -> set name -> its feature file on that set (the task's ID and OOD sets).
        estimator: ``biased`` (Kornblith et al.) or ``debiased`` (Song et al. 2012).
        chunk_rows: rows read at a time.

    Returns:
        ``{"task", "estimator", "between_models": [...], "between_layers": [...]}``: each entry has
        ``benchmark``, ``names`` (models, or one model's layers in depth order), the ``cka`` matrix
        (nested lists) and ``n``; a models entry records ``layers`` (model -> the layer compared), a
        layers entry its ``model``.

    Raises:
        ValueError: an unknown estimator, naming the valid ones.
        SimilarityInputError: a probe result of another task, or a model without features on a set.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"CKA estimator {estimator!r}: valid choices are {list(ESTIMATORS)}")
    debiased = estimator == "debiased"
    runs = {}
    for model, path in probes.items():
        predictions, labels, provenance, _ = h5io.read_probe_result(path)
        runs[model] = ProbeRun(provenance["model"], provenance["task"], predictions, labels, provenance)
    for model, run in runs.items():
        if run.task != task or run.model != model:
            raise SimilarityInputError(f"{probes[model]} holds the probe of {run.model!r} on task {run.task!r}, not "
                                       f"{model!r} on {task!r}; pass each model's result on this task")
    first = next(iter(runs.values()))
    id_name = first.provenance["id_eval"]
    sets = list(first.predictions)  # the ID set first, then the OOD sets, as the probe stage scored them
    read: dict[tuple[str, str], h5io.Features] = {}
    for model in runs:
        for name in sets:
            if name not in features.get(model, {}):
                raise SimilarityInputError(f"no features of {model!r} on {name!r}; give every model's features on "
                                           f"the task's sets {sets}")
            read[(model, name)] = h5io.read_features(features[model][name], chunk_rows=chunk_rows)
    layers = {model: _compared_layer(run.provenance, run.selected_layer, list(read[(model, id_name)].layers))
              for model, run in runs.items()}

    def rows_of(model: str, name: str) -> Any:
        found = read[(model, name)]
        # The rows the scores use: the ID set's test split, every row of an OOD set.
        rows = found.split == "test" if name == id_name else slice(None)
        if len(found.labels[rows]) != len(runs[model].labels[name]):
            raise SimilarityInputError(f"{features[model][name]} has {len(found.labels[rows])} scored rows but the "
                                       f"probe result of {model!r} scored {len(runs[model].labels[name])} on "
                                       f"{name!r}; the features changed after probing: rerun the probe stage")
        return rows

    between_models = []
    for name in sets:
        sources = {model: read[(model, name)].layers[layers[model]][rows_of(model, name)] for model in runs}
        matrix = cka_between_models({model: (lambda chunks=chunks: chunks) for model, chunks in sources.items()},
                                    debiased=debiased)
        between_models.append({"benchmark": first.benchmark(name), "set": name, "names": list(matrix.names),
                               "layers": layers, "cka": matrix.cka.tolist(), "n": matrix.n})
    between_layers = []
    for model, run in runs.items():
        for name in sets:
            found = read[(model, name)]
            order = [layer for layer in found.provenance["layers"] if layer in found.layers]
            if len(order) < 2:
                continue
            sources = {layer: found.layers[layer][rows_of(model, name)] for layer in order}
            matrix = cka_between_layers({layer: (lambda chunks=chunks: chunks) for layer, chunks in sources.items()},
                                        debiased=debiased)
            between_layers.append({"benchmark": run.benchmark(name), "set": name, "model": model,
                                   "names": list(matrix.names), "cka": matrix.cka.tolist(), "n": matrix.n})
    return {"task": task, "estimator": estimator, "between_models": between_models, "between_layers": between_layers}


def write_task_similarity(out: str | Path, **inputs: Any) -> dict[str, Any]:
    """Run :func:`task_similarity` and write its record as JSON, atomically.

    Args:
        out: the JSON file.
        **inputs: the arguments of :func:`task_similarity`.

    Returns:
        The record written.
    """
    record = task_similarity(**inputs)
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return record


def similarity_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score rows of the ``cka`` stage's records.

    Returns:
        ``(benchmark, "a~b", "selected", "cka")`` per pair of models, and ``(set, model, "l1~l2",
        "cka_layers")`` per pair of one model's layers, the layers in depth order; the estimator is
        named in the method. Layer CKA depends on the set, not the probe, so two tasks on one ID set
        (a linear and a k-NN probe) give its rows once.
    """
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for record in records:
        method = METHOD[record["estimator"]]
        for entry in record["between_models"]:
            names = entry["names"]
            for i, a in enumerate(names):
                for j in range(i + 1, len(names)):
                    rows.append(score_row(entry["benchmark"], f"{a}~{names[j]}", "selected", "cka",
                                          stats.no_interval(entry["cka"][i][j], entry["n"], method)))
        for entry in record["between_layers"]:
            if (entry["set"], entry["model"], record["estimator"]) in seen:
                continue
            seen.add((entry["set"], entry["model"], record["estimator"]))
            names = entry["names"]
            for i, a in enumerate(names):
                for j in range(i + 1, len(names)):
                    rows.append(score_row(entry["set"], entry["model"], f"{a}~{names[j]}", "cka_layers",
                                          stats.no_interval(entry["cka"][i][j], entry["n"], method)))
    return rows
