"""From per-example probe predictions to rankings, agreement, paired comparisons and tunnel metrics.

A *benchmark* is one evaluation set of one probe task: the task's own ``test`` split (ID)
or one of its OOD sets. It carries the set's name, with the probe kind appended for a k-NN probe
(:func:`benchmark_name`), so a linear and a k-NN probe of one set are two benchmarks; both are
resampled with the set's one draw, so their comparison stays paired. A model's score on a benchmark is the accuracy of its probe at the
layer chosen on the ID validation split, so no test data picks the layer. Rank statistics
take architectures, not seeds, as their units (:mod:`zooprobe.analysis.agreement`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from zooprobe.analysis import agreement
from zooprobe.analysis import stats
from zooprobe.analysis import tunnel
from zooprobe.analysis.comparisons import agreement_rows, published_order_rows, random_init_rows, seed_rows
from zooprobe.analysis.rows import HUMAN, SCORE_COLUMNS, score_row
from zooprobe.params.spec import PRE_LOGITS, benchmark_name

# The checkpoint entry holding a published top-1 accuracy in percent (akamaster's CIFAR ResNets).
PUBLISHED_KEY = "best_prec1"
# What an alignment or dense benchmark's replicates redrew, by its score metric.
REPLICATE_UNITS = {"rsa": "stimuli", "rsa_subject_mean": "stimuli", "odd_one_out_accuracy": "stimuli",
                   "neg_cross_entropy": "images",
                   "delta1": "test images", "neg_mean_angle": "test images", "iou": "test images"}
@dataclass
class ProbeRun:
    """One probe result file: a model's per-layer predictions on a task's evaluation sets."""

    model: str
    task: str
    predictions: dict[str, dict[str, np.ndarray]]
    labels: dict[str, np.ndarray]
    provenance: dict[str, Any]
    head: dict[str, np.ndarray] = field(default_factory=dict)
    transfer: dict[str, dict[str, Any]] = field(default_factory=dict)
    head_confidence: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def selected_layer(self) -> str:
        """The layer with the best ID validation accuracy (first one on ties)."""
        val = self.provenance["val_accuracy"]
        return max(self.provenance["layers"], key=lambda layer: val[layer])

    def benchmark(self, eval_name: str) -> str:
        """The benchmark this run's probe scores on ``eval_name`` (:func:`benchmark_name`)."""
        return benchmark_name(eval_name, self.provenance.get("probe", "linear"))

    def correct(self, eval_name: str, layer: str) -> np.ndarray:
        """Boolean (N,) correctness of one layer's probe on one evaluation set."""
        return self.predictions[eval_name][layer] == self.labels[eval_name]


@dataclass(frozen=True)
class Design:
    """What the analysis needs to know of how the zoo was built, from the params (``zooprobe.params.config``).

    Attributes:
        units: model -> its unit: the entry a ``seeds:`` list expanded, or a sweep configuration
            trained on one dataset. Models not named are their own unit.
        shared_rows: evaluation set -> the set whose test rows it copies, row for row (a shifted
            copy of a test split); such sets are resampled with one joint draw.
        random_init_pairs: (trained model, random-init model of the same architecture).
    """

    units: Mapping[str, str] = field(default_factory=dict)
    shared_rows: Mapping[str, str] = field(default_factory=dict)
    random_init_pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_config(cls, value: Mapping[str, Any] | None) -> "Design":
        value = value or {}
        return cls(dict(value.get("units", {})), dict(value.get("shared_rows", {})),
                   tuple(tuple(pair) for pair in value.get("random_init_pairs", [])))


def benchmarks_of(runs: list[ProbeRun]) -> list[tuple[str, str, bool]]:
    """List (task, evaluation set, is_ood) in task order, ID first."""
    seen: dict[tuple[str, str], bool] = {}
    for run in runs:
        for eval_name in run.predictions:
            seen.setdefault((run.task, eval_name), eval_name != run.provenance["id_eval"])
    return sorted(((t, e, ood) for (t, e), ood in seen.items()), key=lambda item: (item[0], item[2], item[1]))


def published_accuracy(run: ProbeRun) -> tuple[float, str] | None:
    """The top-1 accuracy (in percent) published for a run's model, and where it was published, if any.

    A checkpoint's own record (akamaster's ``best_prec1``) or the row of a published results table
    that the model entry names (``published: {table, name, img_size}``, recorded by the probe stage).
    """
    if PUBLISHED_KEY in run.provenance.get("checkpoint_info", {}):
        return float(run.provenance["checkpoint_info"][PUBLISHED_KEY]), "published with the checkpoint"
    table = run.provenance.get("published")
    if table:
        return float(table["top1"]), f"published in {Path(table['table']).name} ({table['name']} at {table['img_size']} px)"
    return None


def published_accuracies(runs: list[ProbeRun]) -> dict[str, float]:
    """Model -> its published top-1 accuracy (in percent), for the runs that have one."""
    return {run.model: found[0] for run in runs if (found := published_accuracy(run)) is not None}


class ExampleDraws:
    """One bootstrap count matrix per resample stream; sets that share rows share a stream."""

    def __init__(self, n_boot: int, seed: int, shared_rows: Mapping[str, str]) -> None:
        self.n_boot, self.seed, self.shared_rows, self._counts = n_boot, seed, shared_rows, {}

    def draw(self, eval_name: str) -> str:
        return self.shared_rows.get(eval_name, eval_name)

    def __call__(self, eval_name: str, n: int) -> np.ndarray:
        draw = self.draw(eval_name)
        if draw not in self._counts:
            self._counts[draw] = stats.bootstrap_counts(n, n_boot=self.n_boot, seed=stats.stream_seed(self.seed, draw))
        if self._counts[draw].shape[1] != n:
            raise ValueError(f"evaluation set {eval_name!r} has {n} test rows but shares rows with {draw!r}, which has "
                             f"{self._counts[draw].shape[1]}; a shifted copy must keep every row of the split it copies")
        return self._counts[draw]


def score_table(runs: list[ProbeRun], *, n_boot: int, seed: int, alignment: list[dict[str, Any]] | None = None,
                design: Design | None = None, draws: "ExampleDraws | None" = None) -> pd.DataFrame:
    """Build the tidy score table.

    Args:
        runs: every probe result.
        n_boot: bootstrap resamples for each CI.
        seed: seed of every resample.
        alignment: the payloads of ``zooprobe align``, ``align-tables`` and ``dense-probe``.
        design: units, shared rows and random-init pairs from the params.
        draws: the test-example draws to use (``ExampleDraws(n_boot, seed, design.shared_rows)`` when
            None), to share them with other scores of the same analysis.

    Returns:
        DataFrame with :data:`SCORE_COLUMNS`. Per layer ``accuracy``; per model at the selected layer
        ``score`` and ``rank``; on OOD benchmarks ``best_layer_accuracy`` and the ``shift_*`` metrics of
        :mod:`zooprobe.analysis.tunnel`; on transfer sets ``transfer_accuracy`` per layer and the ``tunnel_*`` metrics;
        per pair of benchmarks (model ``(all)``) ``<statistic>_given_zoo`` and ``<statistic>_population``
        for Kendall tau and Spearman rho, ``<statistic>_pvalue`` and its ``_holm`` and ``_bh``
        adjustments over the matrix; seed summaries and the paired checks of :mod:`zooprobe.analysis.comparisons`.
    """
    design = design or Design()
    stats.warn_if_few_resamples(n_boot, "analyse.n_bootstrap")
    counts = draws if draws is not None else ExampleDraws(n_boot, seed, design.shared_rows)
    rows: list[dict[str, Any]] = []
    rankings: dict[str, agreement.Ranking] = {}
    heads: dict[str, agreement.Ranking] = {}
    models = sorted({run.model for run in runs})
    by_key = {(run.model, run.task): run for run in runs}
    for task, eval_name, is_ood in benchmarks_of(runs):
        task_runs = [by_key[(model, task)] for model in models]
        benchmark = task_runs[0].benchmark(eval_name)
        # One resample per test set, shared by every model, layer and probe kind, so comparisons stay paired.
        boot = counts(eval_name, len(task_runs[0].labels[eval_name]))
        id_boot = counts(task_runs[0].provenance["id_eval"], len(task_runs[0].labels[task_runs[0].provenance["id_eval"]]))
        for run in task_runs:
            rows.extend(_probe_rows(run, eval_name, is_ood, boot))
            # The tunnel metrics compare layers; an own-head run (probe: head) has one.
            if is_ood and run.provenance.get("probe") != "head":
                rows.extend(_tunnel_rows(run, eval_name, "shift", id_boot=id_boot, ood_boot=boot,
                                         joint=counts.draw(eval_name) == counts.draw(run.provenance["id_eval"])))
        correct = np.stack([run.correct(eval_name, run.selected_layer) for run in task_runs]).astype(float)
        rankings[benchmark] = agreement.Ranking(tuple(models), correct.mean(axis=1), boot @ correct.T / correct.shape[1],
                                                "test examples", counts.draw(eval_name), correct.shape[1])
        rows.extend(_rank_rows(benchmark, rankings[benchmark], [run.selected_layer for run in task_runs]))
        headed = [run for run in task_runs if run.head]
        if headed and not is_ood:
            head_correct = np.stack([run.head[eval_name] == run.labels[eval_name] for run in headed]).astype(float)
            heads[benchmark] = agreement.Ranking(tuple(r.model for r in headed), head_correct.mean(axis=1),
                                                 boot @ head_correct.T / head_correct.shape[1], "test examples",
                                                 counts.draw(eval_name), head_correct.shape[1])
    for run in runs:
        rows.extend(_transfer_rows(run, counts))
    rows.extend(alignment_rows(alignment or [], rankings))
    resampler = agreement.Resampler(n_boot=n_boot, seed=seed)
    rows.extend(agreement_rows(rankings, units=design.units, resampler=resampler))
    rows.extend(seed_rows(rankings, units=design.units, resampler=resampler))
    rows.extend(published_order_rows(published_accuracies(runs), heads, resampler=resampler))
    rows.extend(random_init_rows(rankings, design.random_init_pairs, resampler=resampler))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _probe_rows(run: ProbeRun, eval_name: str, is_ood: bool, boot: np.ndarray) -> list[dict[str, Any]]:
    """Accuracy per layer, the selected layer's score, the best layer, own head and published accuracy."""
    rows = []
    benchmark = run.benchmark(eval_name)
    per_layer = {layer: stats.bootstrap_accuracy(run.correct(eval_name, layer), counts=boot)
                 for layer in run.provenance["layers"]}
    for layer, est in per_layer.items():
        rows.append(score_row(benchmark, run.model, layer, "accuracy", est))
    rows.append(score_row(benchmark, run.model, run.selected_layer, "score", per_layer[run.selected_layer]))
    best_layer = max(per_layer, key=lambda layer: per_layer[layer].value)
    rows.append(score_row(benchmark, run.model, best_layer, "best_layer_accuracy", per_layer[best_layer]))
    if run.head:
        rows.append(score_row(benchmark, run.model, "head", "head_accuracy",
                         stats.bootstrap_accuracy(run.head[eval_name] == run.labels[eval_name], counts=boot)))
    published = published_accuracy(run)
    if published is not None and not is_ood:
        rows.append(score_row(benchmark, run.model, "head", "published_accuracy",
                         stats.no_interval(published[0] / 100.0, 0, published[1])))
    return rows


def _rank_rows(benchmark: str, ranking: agreement.Ranking, layers: list[str]) -> list[dict[str, Any]]:
    return [score_row(benchmark, model, layer, "rank", stats.no_interval(rank, len(ranking.models)))
            for model, layer, rank in zip(ranking.models, layers, stats.ranks(ranking.scores))]


def alignment_rows(payloads: list[dict[str, Any]], rankings: dict[str, agreement.Ranking]) -> list[dict[str, Any]]:
    """Rows of every alignment (and dense) result, plus score and rank per model; fills ``rankings`` in place."""
    rows: list[dict[str, Any]] = []
    by_benchmark: dict[str, list[dict[str, Any]]] = {}
    for payload in payloads:
        by_benchmark.setdefault(payload["benchmark"], []).append(payload)
    for benchmark, results in sorted(by_benchmark.items()):
        results = sorted(results, key=lambda r: r["model"])
        unit = REPLICATE_UNITS.get(results[0]["score_metric"], "test data")
        for result in results:
            for row in result["rows"]:
                interval = np.isfinite(row.get("ci_low", np.nan))
                rows.append({"benchmark": benchmark, "model": result["model"], "method": "percentile" if interval
                             else "", "resampled": unit if interval else "", **row})
            low, high = stats.percentile_interval(result["replicates"])
            rows.append(score_row(benchmark, result["model"], result["selected_layer"], "score",
                             stats.Estimate(result["score"], low, high, len(result["replicates"]), "percentile", unit)))
        for name, value in results[0]["extra"].items():  # benchmark-level, e.g. the noise ceiling
            rows.append(score_row(benchmark, HUMAN, "-", name, stats.no_interval(value, 0)))
        replicates = min(len(r["replicates"]) for r in results)
        # Dense benchmarks of one dataset resample its test images with one seed: a joint draw.
        draw = f"dense:{benchmark.split('@')[-1]}" if results[0].get("kind") == "dense" else f"alignment:{benchmark}"
        rankings[benchmark] = agreement.Ranking(
            tuple(r["model"] for r in results), np.array([r["score"] for r in results]),
            np.stack([np.asarray(r["replicates"][:replicates]) for r in results], axis=1), unit, draw,
            int(next((row["n"] for row in results[0]["rows"] if row["layer"] == results[0]["selected_layer"]), 0)))
        rows.extend(_rank_rows(benchmark, rankings[benchmark], [r["selected_layer"] for r in results]))
    return rows


def _layer_correctness(predictions: Mapping[str, np.ndarray], labels: np.ndarray, layers: list[str]) -> np.ndarray:
    return np.stack([predictions[layer] == labels for layer in layers])


def _tunnel_rows(run: ProbeRun, ood_name: str, family: str, *, id_boot: np.ndarray, ood_boot: np.ndarray,
                 joint: bool, ood_predictions: Mapping[str, np.ndarray] | None = None,
                 ood_labels: np.ndarray | None = None, ood_classes: int | None = None) -> list[dict[str, Any]]:
    """The tunnel metrics of :mod:`zooprobe.analysis.tunnel` for one model on one OOD set, with percentile CIs.

    The ID curve is the ID probe of each layer on the ID test split; the OOD curve is, for family
    ``shift``, the same probes on the OOD set, and for ``tunnel``, the OOD set's own probes on its
    test rows (``ood_predictions``, ``ood_labels``). Both curves are recomputed on every bootstrap
    replicate, with the draws the rest of the analysis uses.
    """
    id_eval, layers = run.provenance["id_eval"], run.provenance["layers"]
    if ood_predictions is None:
        ood_predictions, ood_labels = run.predictions[ood_name], run.labels[ood_name]
    id_chance = 1.0 / len(np.unique(run.labels[id_eval]))
    ood_chance = 1.0 / ood_classes if ood_classes else id_chance
    id_curves = tunnel.curve_replicates(_layer_correctness(run.predictions[id_eval], run.labels[id_eval], layers),
                                        id_boot)
    ood_curves = tunnel.curve_replicates(_layer_correctness(ood_predictions, ood_labels, layers), ood_boot)
    resampled = f"ID and OOD test examples ({'one joint draw' if joint else 'independent draws'})"
    estimates = tunnel.tunnel_estimates(id_curves, ood_curves, family=family,
                                        penultimate=layers.index(PRE_LOGITS) if PRE_LOGITS in layers else None,
                                        id_chance=id_chance, ood_chance=ood_chance, n=len(ood_labels),
                                        resampled=resampled)
    return [score_row(run.benchmark(ood_name), run.model, "all" if name.endswith("pearson") else PRE_LOGITS, name, est)
            for name, est in estimates.items()]


def _transfer_rows(run: ProbeRun, counts: "ExampleDraws") -> list[dict[str, Any]]:
    """Accuracy per layer of each transfer set's own probes, and the ``tunnel_*`` metrics.

    A transfer set's test rows are a subset of its rows; their replicates take those columns of
    the set's draw (the ID test draw, for a copy of the ID test split), so every curve is redrawn
    jointly with the rest of the analysis.
    """
    rows: list[dict[str, Any]] = []
    id_eval, layers = run.provenance["id_eval"], run.provenance["layers"]
    id_boot = counts(id_eval, len(run.labels[id_eval]))
    for name, found in run.transfer.items():
        info = run.provenance["transfer"][name]
        boot = counts(name, info["n_rows"])[:, found["rows"]]
        correct = _layer_correctness(found["predictions"], found["labels"], layers)
        curves = tunnel.curve_replicates(correct, boot)
        resampled = "transfer test examples (the set's own draw)" if counts.draw(name) == name else \
            f"transfer test examples (the draw of {counts.draw(name)!r}, whose rows the set copies)"
        for column, layer in enumerate(layers):
            low, high = stats.percentile_interval(curves[1:, column][np.isfinite(curves[1:, column])])
            rows.append(score_row(run.benchmark(name), run.model, layer, "transfer_accuracy", stats.Estimate(
                float(curves[0, column]), low, high, len(found["labels"]), "percentile", resampled)))
        rows.extend(_tunnel_rows(run, name, "tunnel", id_boot=id_boot, ood_boot=boot,
                                 joint=counts.draw(name) == counts.draw(id_eval), ood_predictions=found["predictions"],
                                 ood_labels=found["labels"], ood_classes=info["num_classes"]))
    return rows
