"""The field's standard kit over the pipeline's results: effective robustness, error consistency, concordance, ECE.

Each method's library lives in its own module (:mod:`zooprobe.analysis.robustness`,
:mod:`zooprobe.analysis.consistency`, :mod:`zooprobe.analysis.concordance`, :mod:`zooprobe.analysis.calibration`);
this module feeds them the analysis stage's probe runs and score rows, with the resamples issue 11 defines:

- Test examples are redrawn with the analysis's own draws (:class:`zooprobe.analysis.scores.ExampleDraws`,
  one per test set, shared by sets that copy its rows), so a fit or a kappa is resampled exactly as
  the scores it is made of.
- Seeds of one unit (``Design.units``) are one point of an effective-robustness fit and one row of
  the concordance (their mean), never separate models; error consistency is a property of two
  trained models, so it is computed per model pair.

Rows follow the score table's conventions: a pair of benchmarks is ``a~b`` (the ID and OOD
benchmarks of a fit), a pair of models is ``a~b`` in the model column, and statistics over every
benchmark have the benchmark :data:`ALL_BENCHMARKS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from zooprobe.analysis import stats
from zooprobe.analysis.calibration import calibration_error
from zooprobe.analysis.concordance import MIN_BENCHMARKS, ConcordanceError, rank_concordance
from zooprobe.analysis.consistency import error_consistency_matrix
from zooprobe.analysis.robustness import MIN_MODELS as ROBUSTNESS_MIN_MODELS
from zooprobe.analysis.robustness import RobustnessError, effective_robustness
from zooprobe.analysis.rows import ALL_MODELS, score_row
from zooprobe.analysis.scores import ExampleDraws, ProbeRun, benchmarks_of

ALL_BENCHMARKS = "(all)"
# Where a score comes from: the probe at the layer chosen on ID val, or the model's own head.
SOURCES = {"selected": "probe at the selected layer", "head": "own head"}


@dataclass
class FieldResults:
    """Score rows of the field's methods, and what the report draws from them.

    Attributes:
        rows: rows of :data:`zooprobe.analysis.rows.SCORE_COLUMNS`.
        robustness: one record per fit: ``id``, ``ood``, ``source`` (a key of :data:`SOURCES`) and the
            fit (:meth:`zooprobe.analysis.robustness.RobustnessFit.to_json`), or ``skipped`` with why.
        concordance: :meth:`zooprobe.analysis.concordance.RankConcordance.to_json` over the benchmarks
            that score every unit, with ``left_out`` benchmarks; or ``skipped`` with why.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    robustness: list[dict[str, Any]] = field(default_factory=list)
    concordance: dict[str, Any] = field(default_factory=dict)


def _unit_of(units: Mapping[str, str], model: str) -> str:
    return units.get(model, model)


def _unit_means(models: Sequence[str], matrix: np.ndarray, units: Mapping[str, str]) -> tuple[list[str], np.ndarray]:
    """Rows of ``matrix`` (one per model) averaged over the models of each unit, units in first-seen order."""
    order = list(dict.fromkeys(_unit_of(units, m) for m in models))
    members = {u: [i for i, m in enumerate(models) if _unit_of(units, m) == u] for u in order}
    return order, np.stack([matrix[members[u]].mean(axis=0) for u in order])


def _sources(task_runs: Sequence[ProbeRun]) -> tuple[str, ...]:
    """The score sources of a task: an own-head task (``probe: head``) has only its heads, which its
    one-layer "probe" repeats."""
    return ("head",) if all(run.provenance.get("probe") == "head" for run in task_runs) else tuple(SOURCES)


def _correctness(runs: Sequence[ProbeRun], eval_name: str, source: str) -> tuple[list[str], np.ndarray]:
    """Models and their boolean (M, N) correctness on one set, from the probe's selected layer or the head."""
    if source == "head":
        runs = [run for run in runs if run.head]
        return [r.model for r in runs], np.stack([r.head[eval_name] == r.labels[eval_name] for r in runs]) \
            if runs else np.empty((0, 0), bool)
    return [r.model for r in runs], np.stack([r.correct(eval_name, r.selected_layer) for r in runs])


def consistency_rows(runs: Sequence[ProbeRun], draws: ExampleDraws) -> list[dict[str, Any]]:
    """Error consistency (Geirhos et al. 2020) of every pair of models on every probe benchmark.

    Args:
        runs: every probe result.
        draws: the analysis's test-example draws (kappa's interval redraws the examples with them).

    Returns:
        Rows ``(benchmark, "a~b", "selected" | "head", "error_consistency")``, the pair in model order.
    """
    rows: list[dict[str, Any]] = []
    by_key = {(run.model, run.task): run for run in runs}
    models = sorted({run.model for run in runs})
    for task, eval_name, _ in benchmarks_of(list(runs)):
        task_runs = [by_key[(m, task)] for m in models if (m, task) in by_key]
        benchmark = task_runs[0].benchmark(eval_name)
        for source in _sources(task_runs):
            names, correct = _correctness(task_runs, eval_name, source)
            if len(names) < 2:
                continue
            found = error_consistency_matrix(correct, models=names, counts=draws(eval_name, correct.shape[1]))
            for a, b, entry in found.pairs():
                rows.append(score_row(benchmark, f"{a}~{b}", source, "error_consistency", entry.kappa))
    return rows


def calibration_rows(runs: Sequence[ProbeRun], draws: ExampleDraws) -> list[dict[str, Any]]:
    """Expected calibration error of each own head on its ID set and every OOD set (15 equal-mass bins).

    Args:
        runs: every probe result; those whose head confidences were stored are scored.
        draws: the analysis's test-example draws (every replicate re-bins its redrawn examples).

    Returns:
        Rows ``(benchmark, model, "head", "ece")``; the binning is named in the row's method.
    """
    rows: list[dict[str, Any]] = []
    for run in runs:
        for eval_name, confidence in run.head_confidence.items():
            correct = run.head[eval_name] == run.labels[eval_name]
            found = calibration_error(confidence, correct, counts=draws(eval_name, len(correct)))
            estimate = found.ece
            rows.append(score_row(run.benchmark(eval_name), run.model, "head", "ece", stats.Estimate(
                estimate.value, estimate.ci_low, estimate.ci_high, estimate.n, f"{estimate.method}; {found.binning}",
                estimate.resampled)))
    return rows


def robustness_results(runs: Sequence[ProbeRun], draws: ExampleDraws, *, units: Mapping[str, str],
                       n_boot: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The probit fit of OOD on ID accuracy over units for every (ID, OOD) pair of benchmarks of one task.

    Args:
        runs: every probe result.
        draws: the analysis's test-example draws; an OOD set that copies the ID rows is one joint draw.
        units: model -> unit; a unit's seeds are one point (their mean correctness per example).
        n_boot: bootstrap replicates of every interval.
        seed: seed of the resampling over units.

    Returns:
        (rows, records): per fit, ``er_slope``, ``er_intercept`` and ``er_r2`` rows (model ``(all)``) and
        one ``effective_robustness`` row per unit (OOD accuracy minus the line's, 0 to 1), the
        benchmark being ``<ID>~<OOD>`` and the layer the source; and the records of :class:`FieldResults`.
    """
    rows: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    by_key = {(run.model, run.task): run for run in runs}
    models = sorted({run.model for run in runs})
    for task, eval_name, is_ood in benchmarks_of(list(runs)):
        if not is_ood:
            continue
        task_runs = [by_key[(m, task)] for m in models if (m, task) in by_key]
        id_name = task_runs[0].provenance["id_eval"]
        id_benchmark, ood_benchmark = task_runs[0].benchmark(id_name), task_runs[0].benchmark(eval_name)
        for source in _sources(task_runs):
            names, correct_id = _correctness(task_runs, id_name, source)
            if not names:
                continue
            _, correct_ood = _correctness(task_runs, eval_name, source)
            unit_names, unit_id = _unit_means(names, correct_id.astype(float), units)
            _, unit_ood = _unit_means(names, correct_ood.astype(float), units)
            record: dict[str, Any] = {"id": id_benchmark, "ood": ood_benchmark, "source": source}
            if len(unit_names) < ROBUSTNESS_MIN_MODELS:
                records.append(record | {"skipped": f"{len(unit_names)} units; a line needs {ROBUSTNESS_MIN_MODELS}"})
                continue
            id_counts = draws(id_name, unit_id.shape[1])
            ood_counts = draws(eval_name, unit_ood.shape[1])
            try:
                fit = effective_robustness(unit_names, unit_id.mean(axis=1), unit_ood.mean(axis=1),
                                           correct_id=unit_id, correct_ood=unit_ood, n_bootstrap=n_boot,
                                           seed=stats.stream_seed(seed, "effective robustness", eval_name, source)[0],
                                           id_counts=id_counts, ood_counts=ood_counts)
            except RobustnessError as error:  # e.g. every unit at one ID accuracy: no line
                records.append(record | {"skipped": str(error)})
                continue
            pair = f"{id_benchmark}~{ood_benchmark}"
            for name in ("slope", "intercept", "r2"):
                rows.append(score_row(pair, ALL_MODELS, source, f"er_{name}", getattr(fit, f"{name}_ci_over_models")))
            for row in fit.table.itertuples():
                rows.append(score_row(pair, row.model, source, "effective_robustness", stats.Estimate(
                    float(row.effective_robustness), float(row.er_ci_low), float(row.er_ci_high), fit.n_models,
                    "percentile" if n_boot else "", fit.resampled if n_boot else "")))
            records.append(record | {"fit": fit.to_json()})
    return rows, records


def concordance_result(scores: pd.DataFrame, *, units: Mapping[str, str], n_boot: int, seed: int
                       ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Kendall's W, the Friedman test and the Nemenyi critical difference over every benchmark's ranking.

    Args:
        scores: the score table; its ``score`` rows (higher is better) are the rankings.
        units: model -> unit; a unit is ranked by its seeds' mean score.
        n_boot: replicates of W's interval (over units; benchmarks fixed).
        seed: seed of that resampling.

    Returns:
        (rows, record): ``kendall_w`` (with its BCa interval over units), ``friedman_pvalue`` and
        ``nemenyi_cd`` rows (benchmark and model ``(all)``) and a ``mean_rank`` row per unit; and the
        record of :class:`FieldResults`. Only benchmarks that score every unit join (the ranks need
        complete rows); the others are listed in ``left_out``.
    """
    chosen = scores[(scores.metric == "score") & np.isfinite(scores.value)]
    table = chosen.assign(unit=[_unit_of(units, m) for m in chosen.model]).pivot_table(
        index="unit", columns="benchmark", values="value", aggfunc="mean")
    if table.empty:
        return [], {"skipped": "no benchmark has scores"}
    complete = [b for b in table.columns if table[b].notna().all()]
    if len(complete) < MIN_BENCHMARKS:
        # Keep the units the best-covered benchmarks share, rather than none.
        coverage = table.notna().sum().sort_values(ascending=False, kind="stable")
        units_kept = table.index[table[coverage.index[0]].notna()]
        complete = [b for b in table.columns if table.loc[units_kept, b].notna().all()]
        table = table.loc[units_kept]
    left_out = sorted(set(table.columns) - set(complete))
    try:
        result = rank_concordance(table[complete], n_bootstrap=n_boot, seed=seed)
    except ConcordanceError as error:
        return [], {"skipped": str(error), "left_out": left_out}
    w = result.kendall_w_ci_over_models
    m = len(result.benchmarks)
    rows = [score_row(ALL_BENCHMARKS, ALL_MODELS, "selected", "kendall_w", w),
            score_row(ALL_BENCHMARKS, ALL_MODELS, "selected", "friedman_pvalue", stats.no_interval(
                result.friedman_p, len(result.mean_ranks), f"Friedman chi2 {result.friedman_chi2:.3f} on "
                f"{len(result.mean_ranks) - 1} df over {m} benchmarks")),
            score_row(ALL_BENCHMARKS, ALL_MODELS, "selected", "nemenyi_cd", stats.no_interval(
                result.critical_difference, m, f"Nemenyi, alpha {result.alpha:g}, q {result.q_alpha:.3f}"))]
    rows += [score_row(ALL_BENCHMARKS, unit, "selected", "mean_rank", stats.no_interval(rank, m))
             for unit, rank in result.mean_ranks.items()]
    return rows, result.to_json() | {"left_out": left_out}


def field_results(runs: Sequence[ProbeRun], scores: pd.DataFrame, *, draws: ExampleDraws, units: Mapping[str, str],
                  n_boot: int, seed: int) -> FieldResults:
    """Every method of this module over one analysis.

    Args:
        runs: every probe result.
        scores: the score table of :func:`zooprobe.analysis.scores.score_table` over the same runs.
        draws: the test-example draws that table used (the same seed and shared rows).
        units: model -> unit.
        n_boot: bootstrap replicates of every interval.
        seed: seed of every resample.

    Returns:
        :class:`FieldResults`.
    """
    found = FieldResults()
    if runs:
        found.rows += consistency_rows(runs, draws)
        found.rows += calibration_rows(runs, draws)
        robustness_rows, found.robustness = robustness_results(runs, draws, units=units, n_boot=n_boot, seed=seed)
        found.rows += robustness_rows
    concordance_rows, found.concordance = concordance_result(scores, units=units, n_boot=n_boot, seed=seed)
    found.rows += concordance_rows
    return found
