"""Dense probes of one model: every task and layer, the layer choice, and the ``dense-probe`` stage.

Heads train on ``train`` images, the layer is chosen on ``val`` (or is the last), and scores are
means over ``test`` images with bootstrap CIs from one joint draw shared by the dataset's tasks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from zooprobe.analysis import stats
from zooprobe.probes.dense.heads import DenseHead, DenseProbeSettings, fit_dense_probe, predict_dense
from zooprobe.probes.dense.metrics import DEPTH_ALIGNMENTS, align_depth, per_image_metrics
from zooprobe.probes.inputs import ProbeInputError, read_annotated_features
from zooprobe.probes.rows import layer_row
from zooprobe.zoo.pooling import concat_at_stride

log = logging.getLogger("zooprobe")

SCORE_METRIC = {"depth": "delta1", "normals": "neg_mean_angle", "figure_ground": "iou"}
LABEL_OF_TASK = {"depth": "depth", "normals": "normals", "figure_ground": "mask"}
LAYER_CHOICES: tuple[str, ...] = ("last", "best")
CONCAT_LAYER = "concat"  # the extra "layer" of every layer resampled to one grid (settings: concat)


def dense_benchmark_name(task: str, dataset: str) -> str:
    """The benchmark a dense task on a dataset scores: ``<task>@<dataset>``."""
    return f"{task}@{dataset}"


def _scored_metrics(head: DenseHead, features: np.ndarray, gt: np.ndarray, *, task: str,
                    depth_alignment: str) -> dict[str, np.ndarray]:
    """Per-image metrics of ``head`` on some images (depth aligned per image first); higher-is-better
    ``neg_mean_angle`` added for normals."""
    pred = predict_dense(head, features, task=task, size=tuple(gt.shape[1:3]))
    if task == "depth":
        pred = align_depth(pred, gt, method=depth_alignment)
    metrics = per_image_metrics(task, pred, gt)
    if task == "normals":
        metrics["neg_mean_angle"] = -metrics["mean_angle"]
    return metrics


def _resampled_means(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Bootstrap replicates of the mean over the images that have a value (finite).

    Every task of a dataset resamples the same test images with the same counts (a joint draw);
    an image with no labelled pixel for this task has no value and drops out of the mean.
    """
    scored = np.isfinite(values)
    weights = counts[:, scored]
    return weights @ values[scored] / np.maximum(weights.sum(axis=1), 1)


def probe_layers(layers: dict[str, np.ndarray], labels: dict[str, np.ndarray], split: np.ndarray, *,
                 tasks: list[str], dataset: str, settings: DenseProbeSettings, layer_choice: str, n_boot: int,
                 depth_alignment: str) -> list[dict[str, object]]:
    """Fit a dense head per task and layer on the train images, choose the layer on val, score on test.

    No choice looks at the scored images: with ``layer_choice="best"`` the layer whose head scores
    best on the ``val`` images stands for the model (ties: the earlier layer), and its ``test``
    score is reported; with ``last`` the last layer does, and val images are not needed. Heads
    train on ``train`` images only, whatever the choice, so both choices score the same heads.

    Args:
        layers: layer -> spatial features (N, C, h, w).
        labels: the dataset's dense labels (``depth``, ``normals``, ``mask``).
        split: per-image split; ``train`` images train, ``val`` images choose the layer, ``test`` images score.
        tasks: dense tasks to probe (those whose labels the dataset has).
        dataset: the dataset's name, for the benchmark names (``<task>@<dataset>``) and errors.
        settings: head and optimisation.
        layer_choice: ``last`` or ``best`` (on val) layer stands for the model.
        n_boot: bootstrap resamples of test images (seeded by ``settings.seed``, so paired across models
            and joint across the tasks of the dataset).
        depth_alignment: per-image alignment of predicted depth before scoring, one of :data:`DEPTH_ALIGNMENTS`.

    Returns:
        One result per task: rows (layer, metric, value, CI; every metric is the mean over the test
        images with a labelled pixel of the per-image value), the score metric (higher is better),
        the selected layer, the split that chose it (``layer_chosen_on``: ``val`` or ``none``), the
        val score of every layer (``val_scores``), the selected layer's test score and its
        bootstrap replicates.
    """
    if layer_choice not in LAYER_CHOICES:
        raise ValueError(f"unknown layer choice {layer_choice!r}; valid: {list(LAYER_CHOICES)}")
    if depth_alignment not in DEPTH_ALIGNMENTS:
        raise ValueError(f"unknown depth alignment {depth_alignment!r}; valid: {list(DEPTH_ALIGNMENTS)}")
    train, val, test = split == "train", split == "val", split == "test"
    if not train.any() or not test.any():
        raise ValueError(f"dense probes need train and test images; the splits of {dataset!r} are {sorted(set(split))}")
    if layer_choice == "best" and not val.any():
        raise ValueError(f"dense.layer 'best' chooses the layer on val images, and {dataset!r} has none (splits "
                         f"{sorted(set(split))}); give it a val split (procedural scenes: a val fraction in "
                         f"splits; nyuv2-mat: val_fraction, carved from the official train frames) or set "
                         f"dense.layer: last")
    counts = stats.bootstrap_counts(int(test.sum()), n_boot=n_boot, seed=settings.seed)
    results = []
    for task in tasks:
        gt = labels[LABEL_OF_TASK[task]]
        metric = SCORE_METRIC[task]
        rows, test_scores, val_scores = [], {}, {}
        for layer, features in layers.items():
            head = fit_dense_probe(features[train], gt[train], task=task, settings=settings)
            if layer_choice == "best":
                val_values = _scored_metrics(head, features[val], gt[val], task=task,
                                             depth_alignment=depth_alignment)[metric]
                if not np.isfinite(val_values).any():
                    raise ValueError(f"{task}@{dataset}: no val image has a labelled pixel to choose the layer on")
                val_scores[layer] = float(np.nanmean(val_values))
            metrics = _scored_metrics(head, features[test], gt[test], task=task, depth_alignment=depth_alignment)
            for name, values in metrics.items():
                scored = np.isfinite(values)
                if not scored.any():
                    raise ValueError(f"{task}@{dataset}: no test image has a labelled pixel")
                replicates = _resampled_means(values, counts)
                if name == metric:
                    test_scores[layer] = (float(values[scored].mean()), replicates)
                if name == "neg_mean_angle":
                    continue
                rows.append(layer_row(layer, name, stats.Estimate(
                    float(values[scored].mean()), *stats.percentile_interval(replicates), int(scored.sum()))))
        names = list(layers)
        chosen = names[-1] if layer_choice == "last" else max(names, key=lambda n: val_scores[n])
        results.append({"benchmark": dense_benchmark_name(task, dataset), "kind": "dense", "rows": rows,
                        "score_metric": metric, "selected_layer": chosen,
                        "layer_chosen_on": "val" if layer_choice == "best" else "none",
                        "val_scores": val_scores, "n_val": int(val.sum()) if layer_choice == "best" else 0,
                        "score": test_scores[chosen][0],
                        "replicates": [float(v) for v in test_scores[chosen][1]], "extra": {}})
    return results


def concat_layer(layers: Mapping[str, np.ndarray]) -> np.ndarray:
    """Every layer resampled to the finest grid among them, channels stacked: one more "layer".

    Args:
        layers: layer -> float32 spatial features (N, C, h, w).

    Returns:
        (N, sum of C, h, w) float32 at the largest (h, w).
    """
    maps = [torch.from_numpy(values) for values in layers.values()]
    finest = max((m.shape[2], m.shape[3]) for m in maps)
    return concat_at_stride(maps, finest).numpy()


def dense_probe(*, data: str | Path, features: str | Path, dataset: str, model: str, settings: Mapping[str, Any],
                run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``dense-probe`` stage: one model's dense heads on one dataset, one payload per task it has labels for.

    Args:
        data: the dataset file, with its ``dense`` labels.
        features: the model's spatial features on it.
        dataset: the dataset's name (benchmarks are ``<task>@<dataset>``).
        model: the model's name.
        settings: the ``dense`` params section (tasks, head, epochs, lr, batch_size, seed, concat, layer,
            n_boot, depth_alignment).
        run: what every output of this run records (the code version).

    Returns:
        :func:`probe_layers`' results, each with the model and its provenance.

    Raises:
        ProbeInputError: stale features, or a dataset without the labels of any of the tasks.
    """
    inputs = read_annotated_features(data, features, "dense")
    labels, split = inputs.annotations, inputs.split
    tasks = [task for task in settings["tasks"] if LABEL_OF_TASK[task] in labels]
    if not tasks:
        raise ProbeInputError(f"{data} has none of the labels of the tasks {settings['tasks']} "
                              f"(it has {sorted(labels) or 'no dense labels'})")
    probe = DenseProbeSettings(head=settings["head"], epochs=settings["epochs"], lr=settings["lr"],
                               batch_size=settings["batch_size"], seed=settings["seed"])
    layers = {name: values.astype("float32") for name, values in inputs.features.layers.items()}
    if settings.get("concat"):
        layers[CONCAT_LAYER] = concat_layer(layers)
    results = probe_layers(layers, labels, split, tasks=tasks, dataset=dataset, settings=probe,
                           layer_choice=settings["layer"], n_boot=settings["n_boot"],
                           depth_alignment=settings["depth_alignment"])
    provenance = inputs.provenance(run, model=model, settings=settings, dataset=dataset,
                                   spatial_grid=inputs.features.provenance.get("spatial_grid"),
                                   split_counts={name: int((split == name).sum()) for name in ("train", "val", "test")})
    for result in results:
        log.info("%s on %s: %s = %.4f at layer %s (chosen on %s)", model, result["benchmark"],
                 result["score_metric"], result["score"], result["selected_layer"], result["layer_chosen_on"])
    return [dict(result, model=model, provenance=dict(provenance, layer_chosen_on=result["layer_chosen_on"]))
            for result in results]
