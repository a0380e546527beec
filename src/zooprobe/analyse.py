"""From per-example probe predictions to rankings, agreement and tunnel-effect metrics.

A *benchmark* is one evaluation set of one probe task: the task's own ``test`` split (ID)
or one of its OOD sets. A model's score on a benchmark is the accuracy of its probe at the
layer chosen on the ID validation split, so no test data picks the layer.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from zooprobe import stats
from zooprobe.spec import PRE_LOGITS

SCORE_COLUMNS = ["benchmark", "model", "layer", "metric", "value", "ci_low", "ci_high", "n"]
ALL_MODELS = "(all)"
HUMAN = "(human)"
# Fewer shared models than this make a rank correlation meaningless.
MIN_SHARED_MODELS = 3
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


def score_table(runs: list[ProbeRun], *, n_boot: int, seed: int,
                alignment: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Build the tidy score table.

    Args:
        runs: every probe result.
        n_boot: bootstrap resamples for each CI.
        seed: seed of every resample.

    Returns:
        DataFrame with :data:`SCORE_COLUMNS`. Metrics: ``accuracy`` per layer; per model at
        the selected layer ``score`` and ``rank``; on OOD benchmarks ``ood_retained_pct``
        and ``best_layer_accuracy``; per pair of benchmarks ``kendall_tau`` and
        ``spearman_rho`` (model ``(all)``). With ``alignment`` (the payloads of ``zooprobe align``
        and ``align-tables``), each alignment benchmark adds its rows, a ``score`` and ``rank``
        per model, and joins the agreement matrix, paired with the other benchmarks on the
        models both have.
    """
    rows: list[dict[str, Any]] = []
    # benchmark -> (models, scores, bootstrap replicates (B, models)) for the agreement matrix.
    rankings: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
    models = sorted({run.model for run in runs})
    by_key = {(run.model, run.task): run for run in runs}
    for index, (task, eval_name, is_ood) in enumerate(benchmarks_of(runs)):
        task_runs = [by_key[(model, task)] for model in models]
        # One set of resamples per benchmark, shared by every model and layer (paired intervals).
        # Independent test sets get independent resamples: the seed differs per benchmark.
        counts = stats.bootstrap_counts(len(task_runs[0].labels[eval_name]), n_boot=n_boot, seed=seed + index)
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
            if is_ood:
                rows.extend(_tunnel_rows(run, eval_name, per_layer))
        for run, rank in zip(task_runs, stats.ranks(np.array(scores))):
            rows.append(_row(eval_name, run.model, run.selected_layer, "rank",
                             stats.Estimate(float(rank), np.nan, np.nan, len(task_runs))))
        correct = np.stack([run.correct(eval_name, run.selected_layer) for run in task_runs]).astype(float)
        rankings[eval_name] = ([run.model for run in task_runs], correct.mean(axis=1),
                               counts @ correct.T / correct.shape[1])
    rows.extend(alignment_rows(alignment or [], rankings))
    rows.extend(agreement_rows(rankings, seed=seed))
    table = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    return pd.concat([table, seed_table(table)], ignore_index=True)


def alignment_rows(payloads: list[dict[str, Any]],
                   rankings: dict[str, tuple[list[str], np.ndarray, np.ndarray]]) -> list[dict[str, Any]]:
    """Rows of every alignment result, plus score and rank per model; fills ``rankings`` in place."""
    rows: list[dict[str, Any]] = []
    by_benchmark: dict[str, list[dict[str, Any]]] = {}
    for payload in payloads:
        by_benchmark.setdefault(payload["benchmark"], []).append(payload)
    for benchmark, results in sorted(by_benchmark.items()):
        results = sorted(results, key=lambda r: r["model"])
        for result in results:
            for row in result["rows"]:
                rows.append({"benchmark": benchmark, "model": result["model"], **row})
            low, high = stats.percentile_interval(result["replicates"])
            rows.append({"benchmark": benchmark, "model": result["model"], "layer": result["selected_layer"],
                         "metric": "score", "value": result["score"], "ci_low": low, "ci_high": high,
                         "n": len(result["replicates"])})
        for name, value in results[0]["extra"].items():  # benchmark-level, e.g. the noise ceiling
            rows.append({"benchmark": benchmark, "model": HUMAN, "layer": "-", "metric": name, "value": value,
                         "ci_low": np.nan, "ci_high": np.nan, "n": 0})
        scores = np.array([r["score"] for r in results])
        for result, rank in zip(results, stats.ranks(scores)):
            rows.append({"benchmark": benchmark, "model": result["model"], "layer": result["selected_layer"],
                         "metric": "rank", "value": float(rank), "ci_low": np.nan, "ci_high": np.nan,
                         "n": len(results)})
        replicates = min(len(r["replicates"]) for r in results)
        rankings[benchmark] = ([r["model"] for r in results], scores,
                               np.stack([np.asarray(r["replicates"][:replicates]) for r in results], axis=1))
    return rows


def agreement_rows(rankings: dict[str, tuple[list[str], np.ndarray, np.ndarray]], *, seed: int
                   ) -> list[dict[str, Any]]:
    """Kendall tau and Spearman rho, with CIs and permutation p-values, for every pair of benchmarks.

    A pair is compared on the models both benchmarks scored (at least :data:`MIN_SHARED_MODELS`).
    """
    rows: list[dict[str, Any]] = []
    for a, b in itertools.combinations(rankings, 2):
        (models_a, scores_a, boot_a), (models_b, scores_b, boot_b) = rankings[a], rankings[b]
        shared = [m for m in models_a if m in models_b]
        if len(shared) < MIN_SHARED_MODELS:
            continue
        ia, ib = [models_a.index(m) for m in shared], [models_b.index(m) for m in shared]
        replicates = min(len(boot_a), len(boot_b))
        agreement = stats.rank_agreement_from_replicates(scores_a[ia], scores_b[ib], boot_a[:replicates, ia],
                                                         boot_b[:replicates, ib])
        for metric, est in agreement.items():
            rows.append(_row(f"{a}~{b}", ALL_MODELS, "selected", metric, est))
            p_value = stats.permutation_pvalue(scores_a[ia], scores_b[ib], statistic=metric, seed=seed)
            rows.append(_row(f"{a}~{b}", ALL_MODELS, "selected", f"{metric}_pvalue",
                             stats.Estimate(p_value, np.nan, np.nan, est.n)))
    return rows


SEED_SUFFIX = re.compile(r"^(?P<base>.+)-s(?P<seed>\d+)$")


def seed_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Spread over seeds: models named ``<base>-s<seed>`` (``seeds:`` entries and sweep models) are one
    model trained with several seeds.

    Returns:
        Per benchmark and base model with at least two seeds: ``seed_mean`` and ``seed_sd``
        (sample sd) of the score at the selected layer; ``n`` is the number of seeds.
    """
    chosen = scores[scores.metric == "score"].copy()
    chosen["base"] = [m.group("base") if (m := SEED_SUFFIX.match(name)) else None for name in chosen.model]
    rows = []
    for (benchmark, base), group in chosen.dropna(subset=["base"]).groupby(["benchmark", "base"], sort=False):
        if len(group) < 2:
            continue
        values = group.value.to_numpy(float)
        rows.append(_row(benchmark, base, "selected", "seed_mean",
                         stats.Estimate(float(values.mean()), float(values.min()), float(values.max()), len(values))))
        rows.append(_row(benchmark, base, "selected", "seed_sd",
                         stats.Estimate(float(values.std(ddof=1)), np.nan, np.nan, len(values))))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _tunnel_rows(run: ProbeRun, ood_eval: str, ood_per_layer: dict[str, stats.Estimate]) -> list[dict[str, Any]]:
    """Tunnel-effect metrics of Harun et al. 2024 for one model on one OOD set.

    ``id_ood_pearson``: Pearson r between the ID and OOD layer-wise accuracy curves.
    ``id_ood_alignment``: (acc_ID - chance_ID) * (acc_OOD - chance_OOD) at the penultimate layer
    (chance is 1 / number of classes in the ID test labels; the OOD set shares the label space).
    """
    id_eval = run.provenance["id_eval"]
    layers = run.provenance["layers"]
    id_curve = np.array([run.correct(id_eval, layer).mean() for layer in layers])
    ood_curve = np.array([ood_per_layer[layer].value for layer in layers])
    rows = []
    if len(layers) >= 3 and np.ptp(id_curve) > 0 and np.ptp(ood_curve) > 0:
        r = float(np.corrcoef(id_curve, ood_curve)[0, 1])
        rows.append(_row(ood_eval, run.model, "all", "id_ood_pearson", stats.Estimate(r, np.nan, np.nan, len(layers))))
    if PRE_LOGITS in layers:
        chance = 1.0 / len(np.unique(run.labels[id_eval]))
        last = layers.index(PRE_LOGITS)
        alignment = (id_curve[last] - chance) * (ood_curve[last] - chance)
        rows.append(_row(ood_eval, run.model, PRE_LOGITS, "id_ood_alignment",
                         stats.Estimate(float(alignment), np.nan, np.nan, ood_per_layer[PRE_LOGITS].n)))
    return rows


# ----------------------------------------------------------------------------- ImageNot
def imagenot_table(runs: list[ProbeRun], sweep: dict[str, Any], *, n_boot: int, seed: int) -> pd.DataFrame:
    """The ImageNot protocol (Salaudeen & Hardt 2024): do architectures keep their order across datasets?

    Every architecture is trained from scratch with one recipe on every sweep dataset with every
    seed; its score on a dataset is its own head's test accuracy there, averaged over seeds.

    Args:
        runs: probe results; a sweep model's head is scored on the task whose ID set it trained on.
        sweep: the ``sweep`` params section.
        n_boot: bootstrap resamples of each dataset's test examples.
        seed: seed of the resamples.

    Returns:
        Rows in :data:`SCORE_COLUMNS`, layer ``head``. Per dataset and architecture:
        ``imagenot_accuracy`` (mean over seeds, CI over test examples), ``seed_sd`` and
        ``relative_improvement`` (% over the baseline architecture's accuracy). Per pair of
        datasets (model ``(all)``): ``imagenot_kendall_tau`` and ``imagenot_spearman_rho`` of the
        architecture rankings with CIs and permutation p-values, and the least-squares fit of the
        improvements on B against those on A: ``improvement_slope``, ``improvement_intercept``,
        ``improvement_r2``.
    """
    from zooprobe.config import sweep_baseline, sweep_members

    members = sweep_members({"sweep": sweep})
    # The ranked unit is a configuration: an architecture with one setting of each sweep variable.
    archs = list(dict.fromkeys(member.configuration for member in members.values()))
    datasets, seeds = list(sweep["datasets"]), list(sweep["seeds"])
    baseline = sweep_baseline({"sweep": sweep})
    correct: dict[tuple[str, str, int], np.ndarray] = {}
    for run in runs:
        member = members.get(run.model)
        if member and run.head and run.provenance["id_eval"] == member.dataset:
            correct[(member.configuration, member.dataset, member.seed)] = (
                run.head[member.dataset] == run.labels[member.dataset])
    missing = [m.name for m in members.values() if (m.configuration, m.dataset, m.seed) not in correct]
    if missing:
        raise ValueError(f"no own-head scores for sweep models {missing[:5]}: every sweep dataset needs a probe task "
                         "whose id is that dataset")
    rows: list[dict[str, Any]] = []
    boot_acc: dict[str, np.ndarray] = {}  # dataset -> (n_boot, archs) seed-mean accuracy per resample
    point_acc: dict[str, np.ndarray] = {}
    for index, dataset in enumerate(datasets):
        n = len(correct[(archs[0], dataset, seeds[0])])
        counts = stats.bootstrap_counts(n, n_boot=n_boot, seed=seed + 7919 * (index + 1))
        per_seed = np.array([[correct[(arch, dataset, s)] for s in seeds] for arch in archs], dtype=float)  # A,S,N
        point = per_seed.mean(axis=2)  # (archs, seeds)
        boot = np.einsum("bn,asn->bas", counts, per_seed) / n  # (n_boot, archs, seeds)
        point_acc[dataset], boot_acc[dataset] = point.mean(axis=1), boot.mean(axis=2)
        base = archs.index(baseline)
        for i, arch in enumerate(archs):
            rows.append(_row(dataset, arch, "head", "imagenot_accuracy", stats.Estimate(
                float(point_acc[dataset][i]), *stats._percentiles(boot_acc[dataset][:, i], stats.CI_LEVEL), len(seeds))))
            sd = float(point[i].std(ddof=1)) if len(seeds) > 1 else float("nan")
            rows.append(_row(dataset, arch, "head", "seed_sd", stats.Estimate(sd, np.nan, np.nan, len(seeds))))
            improvement = _relative_improvement(point_acc[dataset][i], point_acc[dataset][base])
            boot_improvement = _relative_improvement(boot_acc[dataset][:, i], boot_acc[dataset][:, base])
            rows.append(_row(dataset, arch, "head", "relative_improvement", stats.Estimate(
                float(improvement), *stats._percentiles(boot_improvement, stats.CI_LEVEL), n)))
    others = [i for i, arch in enumerate(archs) if arch != baseline]
    for a, b in itertools.combinations(datasets, 2):
        pair = f"{a}~{b}"
        for metric, function, rows_function in (("imagenot_kendall_tau", stats.kendall_tau, stats.kendall_tau_rows),
                                                ("imagenot_spearman_rho", stats.spearman_rho, stats.spearman_rho_rows)):
            value = function(point_acc[a], point_acc[b])
            rows.append(_row(pair, ALL_MODELS, "head", metric, stats.Estimate(
                value, *stats._percentiles(rows_function(boot_acc[a], boot_acc[b]), stats.CI_LEVEL), len(archs))))
            p_value = stats.permutation_pvalue(point_acc[a], point_acc[b], statistic=metric.removeprefix("imagenot_"),
                                               seed=seed)
            rows.append(_row(pair, ALL_MODELS, "head", f"{metric}_pvalue",
                             stats.Estimate(p_value, np.nan, np.nan, len(archs))))
        base = archs.index(baseline)
        x = _relative_improvement(point_acc[a][others], point_acc[a][base])
        y = _relative_improvement(point_acc[b][others], point_acc[b][base])
        slope, intercept, r2 = stats.linear_fit(x, y)
        boot_x = _relative_improvement(boot_acc[a][:, others], boot_acc[a][:, [base]])
        boot_y = _relative_improvement(boot_acc[b][:, others], boot_acc[b][:, [base]])
        boot_fit = np.array([stats.linear_fit(bx, by) for bx, by in zip(boot_x, boot_y)]).reshape(-1, 3)
        for metric, value, column in (("improvement_slope", slope, 0), ("improvement_intercept", intercept, 1),
                                      ("improvement_r2", r2, 2)):
            rows.append(_row(pair, ALL_MODELS, "head", metric, stats.Estimate(
                value, *stats._percentiles(boot_fit[:, column], stats.CI_LEVEL), len(others))))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _relative_improvement(accuracy: np.ndarray | float, baseline: np.ndarray | float) -> np.ndarray:
    """% improvement in accuracy over the baseline architecture: 100 * (acc - acc_base) / acc_base."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * (np.asarray(accuracy) - np.asarray(baseline)) / np.asarray(baseline)


def _row(benchmark: str, model: str, layer: str, metric: str, est: stats.Estimate) -> dict[str, Any]:
    return dict(benchmark=benchmark, model=model, layer=layer, metric=metric, value=est.value,
                ci_low=est.ci_low, ci_high=est.ci_high, n=est.n)


def agreement_matrix(scores: pd.DataFrame, metric: str = "kendall_tau") -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Square (value, ci_low, ci_high) matrices of one agreement metric over benchmarks.

    Returns:
        (benchmark names, values, lower bounds, upper bounds); the diagonal is 1, and a pair with
        too few shared models is NaN.
    """
    pairs = scores[scores.metric == metric]
    names = list(dict.fromkeys(name for pair in pairs.benchmark for name in pair.split("~")))
    size = len(names)
    value, low, high = (np.where(np.eye(size) == 1, 1.0, np.nan) for _ in range(3))
    for row in pairs.itertuples():
        a, b = row.benchmark.split("~")
        i, j = names.index(a), names.index(b)
        for matrix, x in ((value, row.value), (low, row.ci_low), (high, row.ci_high)):
            matrix[i, j] = matrix[j, i] = x
    return names, value, low, high


# ----------------------------------------------------------------------------- sweep variables
VARIABLE_METRICS = ("ood_retained_pct", "id_ood_alignment")


def variable_table(scores: pd.DataFrame, sweep: dict[str, Any]) -> pd.DataFrame:
    """Does a training variable (resolution, augmentation, depth, ...) change the tunnel-effect metrics?

    For each sweep variable and each of its settings after the first, models are paired with the
    model that differs only in that variable (same architecture, other settings, dataset, seed)
    on the same OOD set. Each of :data:`VARIABLE_METRICS` is compared with a two-sided paired
    Wilcoxon signed-rank test and Cliff's delta (positive: higher with the later setting).

    Returns:
        Rows in :data:`SCORE_COLUMNS` with benchmark ``variable:<name>``, model ``<setting> vs <first>``,
        layer the compared metric, metrics ``wilcoxon_p``, ``cliffs_delta`` and ``median_difference``;
        ``n`` is the number of pairs.
    """
    from zooprobe.config import sweep_members

    variables = sweep.get("variants") or {}
    members = sweep_members({"sweep": sweep})
    rows: list[dict[str, Any]] = []
    for metric in VARIABLE_METRICS:
        values = scores[scores.metric == metric].set_index(["model", "benchmark"]).value
        for variable, settings in variables.items():
            position = list(variables).index(variable)
            for later in settings[1:]:
                first_values, later_values = [], []
                for member in members.values():
                    if member.settings[position][1] != settings[0]:
                        continue
                    partner_settings = list(member.settings)
                    partner_settings[position] = (variable, later)
                    partner = next((m for m in members.values() if m.arch == member.arch and m.dataset == member.dataset
                                    and m.seed == member.seed and list(m.settings) == partner_settings), None)
                    if partner is None or member.name not in values.index.get_level_values(0):
                        continue
                    for benchmark, value in values.loc[member.name].items():
                        if (partner.name, benchmark) in values.index:
                            first_values.append(value)
                            later_values.append(values.loc[(partner.name, benchmark)])
                first, other = np.array(first_values), np.array(later_values)
                label = f"{_label(variable, later)} vs {_label(variable, settings[0])}"
                results = {"wilcoxon_p": stats.paired_wilcoxon(other, first),
                           "cliffs_delta": stats.cliffs_delta(other, first),
                           "median_difference": float(np.median(other - first)) if len(first) else float("nan")}
                for name, value in results.items():
                    rows.append(_row(f"variable:{variable}", label, metric, name,
                                     stats.Estimate(value, np.nan, np.nan, len(first))))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _label(variable: str, value: Any) -> str:
    return f"{variable}={json.dumps(value, sort_keys=True)}"
