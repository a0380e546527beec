"""From per-example probe predictions to rankings, agreement and tunnel-effect metrics.

A *benchmark* is one evaluation set of one probe task: the task's own ``test`` split (ID)
or one of its OOD sets. A model's score on a benchmark is the accuracy of its probe at the
layer chosen on the ID validation split, so no test data picks the layer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from zooprobe import stats
from zooprobe.models import PRE_LOGITS

SCORE_COLUMNS = ["benchmark", "model", "layer", "metric", "value", "ci_low", "ci_high", "n"]
ALL_MODELS = "(all)"
# The checkpoint entry holding a published top-1 accuracy in percent (akamaster's CIFAR ResNets).
PUBLISHED_KEY = "best_prec1"


@dataclass
class ProbeRun:
    """One probe result file: a model's per-layer predictions on a task's evaluation sets."""

    model: str
    task: str
    predictions: dict[str, dict[str, np.ndarray]]
    labels: dict[str, np.ndarray]
    provenance: dict[str, Any]
    head: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def selected_layer(self) -> str:
        """The layer with the best ID validation accuracy (first one on ties)."""
        val = self.provenance["val_accuracy"]
        return max(self.provenance["layers"], key=lambda layer: val[layer])

    def correct(self, eval_name: str, layer: str) -> np.ndarray:
        """Boolean (N,) correctness of one layer's probe on one evaluation set."""
        return self.predictions[eval_name][layer] == self.labels[eval_name]


def benchmarks_of(runs: list[ProbeRun]) -> list[tuple[str, str, bool]]:
    """List (task, evaluation set, is_ood) in task order, ID first."""
    seen: dict[tuple[str, str], bool] = {}
    for run in runs:
        for eval_name in run.predictions:
            seen.setdefault((run.task, eval_name), eval_name != run.provenance["id_eval"])
    return sorted(((t, e, ood) for (t, e), ood in seen.items()), key=lambda item: (item[0], item[2], item[1]))


def score_table(runs: list[ProbeRun], *, n_boot: int, seed: int) -> pd.DataFrame:
    """Build the tidy score table.

    Args:
        runs: every probe result.
        n_boot: bootstrap resamples for each CI.
        seed: seed of every resample.

    Returns:
        DataFrame with :data:`SCORE_COLUMNS`. Metrics: ``accuracy`` per layer; per model at
        the selected layer ``score`` and ``rank``; on OOD benchmarks ``ood_retained_pct``
        and ``best_layer_accuracy``; per pair of benchmarks ``kendall_tau`` and
        ``spearman_rho`` (model ``(all)``).
    """
    rows: list[dict[str, Any]] = []
    models = sorted({run.model for run in runs})
    by_key = {(run.model, run.task): run for run in runs}
    selected_correct: dict[str, np.ndarray] = {}
    resamples: dict[str, np.ndarray] = {}
    for index, (task, eval_name, is_ood) in enumerate(benchmarks_of(runs)):
        task_runs = [by_key[(model, task)] for model in models]
        # One set of resamples per benchmark, shared by every model and layer (paired intervals).
        # Independent test sets get independent resamples: the seed differs per benchmark.
        counts = resamples[eval_name] = stats.bootstrap_counts(len(task_runs[0].labels[eval_name]),
                                                               n_boot=n_boot, seed=seed + index)
        scores = []
        for run in task_runs:
            per_layer = {layer: stats.bootstrap_accuracy(run.correct(eval_name, layer), counts=counts)
                         for layer in run.provenance["layers"]}
            for layer, est in per_layer.items():
                rows.append(_row(eval_name, run.model, layer, "accuracy", est))
            chosen = run.selected_layer
            rows.append(_row(eval_name, run.model, chosen, "score", per_layer[chosen]))
            scores.append(per_layer[chosen].value)
            best_layer = max(per_layer, key=lambda layer: per_layer[layer].value)
            rows.append(_row(eval_name, run.model, best_layer, "best_layer_accuracy", per_layer[best_layer]))
            if run.head:
                rows.append(_row(eval_name, run.model, "head", "head_accuracy", stats.bootstrap_accuracy(
                    run.head[eval_name] == run.labels[eval_name], counts=counts)))
            published = run.provenance.get("checkpoint_info", {}).get(PUBLISHED_KEY)
            if published is not None and not is_ood:
                rows.append(_row(eval_name, run.model, "head", "published_accuracy",
                                 stats.Estimate(published / 100.0, np.nan, np.nan, 0)))
            if is_ood and PRE_LOGITS in per_layer:
                retained = stats.ood_retained_pct(per_layer[PRE_LOGITS].value, per_layer[best_layer].value)
                rows.append(_row(eval_name, run.model, PRE_LOGITS, "ood_retained_pct",
                                 stats.Estimate(retained, np.nan, np.nan, per_layer[PRE_LOGITS].n)))
        for run, rank in zip(task_runs, stats.ranks(np.array(scores))):
            rows.append(_row(eval_name, run.model, run.selected_layer, "rank",
                             stats.Estimate(float(rank), np.nan, np.nan, len(task_runs))))
        selected_correct[eval_name] = np.stack([run.correct(eval_name, run.selected_layer) for run in task_runs])
    for a, b in itertools.combinations(selected_correct, 2):
        agreement = stats.bootstrap_rank_agreement(selected_correct[a], selected_correct[b], n_boot=n_boot, seed=seed,
                                                   counts_a=resamples[a], counts_b=resamples[b])
        for metric, est in agreement.items():
            rows.append(_row(f"{a}~{b}", ALL_MODELS, "selected", metric, est))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _row(benchmark: str, model: str, layer: str, metric: str, est: stats.Estimate) -> dict[str, Any]:
    return dict(benchmark=benchmark, model=model, layer=layer, metric=metric, value=est.value,
                ci_low=est.ci_low, ci_high=est.ci_high, n=est.n)


def agreement_matrix(scores: pd.DataFrame, metric: str = "kendall_tau") -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Square (value, ci_low, ci_high) matrices of one agreement metric over benchmarks.

    Returns:
        (benchmark names, values, lower bounds, upper bounds); the diagonal is 1.
    """
    pairs = scores[scores.metric == metric]
    names = list(dict.fromkeys(name for pair in pairs.benchmark for name in pair.split("~")))
    size = len(names)
    value, low, high = (np.eye(size) for _ in range(3))
    for row in pairs.itertuples():
        a, b = row.benchmark.split("~")
        i, j = names.index(a), names.index(b)
        for matrix, x in ((value, row.value), (low, row.ci_low), (high, row.ci_high)):
            matrix[i, j] = matrix[j, i] = x
    return names, value, low, high
