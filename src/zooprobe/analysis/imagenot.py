"""The ImageNot protocol (Salaudeen & Hardt 2024) and the sweep variables' tests.

Every configuration (an architecture with one setting of each sweep variable) is trained from
scratch with one recipe on every sweep dataset with every seed. Its score on a dataset is its own
head's test accuracy there, averaged over seeds. Seeds are a level of the bootstrap: each replicate
redraws the seeds within every configuration and the test examples (shared by all models), so the
intervals carry seed-to-seed variation as well as test-set noise.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pandas as pd

from zooprobe.analysis import agreement
from zooprobe.analysis import stats
from zooprobe.analysis.comparisons import agreement_rows, seed_rows
from zooprobe.analysis.rows import ALL_MODELS, SCORE_COLUMNS, adjusted_rows, score_row
from zooprobe.analysis.scores import ProbeRun


def _relative_improvement(accuracy: np.ndarray | float, baseline: np.ndarray | float) -> np.ndarray:
    """% improvement in accuracy over the baseline configuration: 100 * (acc - acc_base) / acc_base."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * (np.asarray(accuracy) - np.asarray(baseline)) / np.asarray(baseline)


def imagenot_table(runs: list[ProbeRun], sweep: dict[str, Any], *, n_boot: int, seed: int) -> pd.DataFrame:
    """Do configurations keep their order across datasets?

    Args:
        runs: probe results; a sweep model's head is scored on the task whose ID set it trained on.
        sweep: the ``sweep`` params section.
        n_boot: bootstrap resamples (each redraws seeds within configurations and test examples).
        seed: seed of the resamples.

    Returns:
        Rows in :data:`zooprobe.analysis.rows.SCORE_COLUMNS`, layer ``head``. Per dataset and configuration:
        ``imagenot_accuracy`` (seed mean), ``seed_sd`` and ``relative_improvement`` (% over the
        baseline's accuracy), with intervals over seeds and test examples; the seed check of
        neighbouring configurations (``imagenot_seed_check_difference``, Holm-adjusted). Per pair of
        datasets (model ``(all)``): ``imagenot_kendall_tau`` and ``imagenot_spearman_rho`` with both
        agreement intervals, permutation p-values over configurations and their adjustments, and the
        least-squares fit of the improvements on B against those on A (``improvement_slope``,
        ``improvement_intercept``, ``improvement_r2``), its intervals over seeds and test examples.
    """
    from zooprobe.params.config import sweep_baseline, sweep_members

    members = sweep_members({"sweep": sweep})
    configurations = list(dict.fromkeys(member.configuration for member in members.values()))
    datasets, baseline = list(sweep["datasets"]), sweep_baseline({"sweep": sweep})
    correct: dict[str, np.ndarray] = {}
    for run in runs:
        member = members.get(run.model)
        if member and run.head and run.provenance["id_eval"] == member.dataset:
            correct[member.name] = run.head[member.dataset] == run.labels[member.dataset]
    missing = [name for name in members if name not in correct]
    if missing:
        raise ValueError(f"no own-head scores for sweep models {missing[:5]}: every sweep dataset needs a probe task "
                         "whose id is that dataset")
    unit_of = {name: member.configuration for name, member in members.items()}
    resampler = agreement.Resampler(n_boot=n_boot, seed=seed)
    rankings: dict[str, agreement.Ranking] = {}
    for dataset in datasets:
        names = tuple(name for name, member in members.items() if member.dataset == dataset)
        matrix = np.stack([correct[name] for name in names]).astype(float)
        counts = stats.bootstrap_counts(matrix.shape[1], n_boot=n_boot, seed=stats.stream_seed(seed, "imagenot", dataset))
        rankings[dataset] = agreement.Ranking(names, matrix.mean(axis=1), counts @ matrix.T / matrix.shape[1],
                                              "test examples", dataset, matrix.shape[1])
    rows: list[dict[str, Any]] = []
    units = {dataset: agreement.unit_scores(rankings[dataset], unit_of, resampler, units=configurations)
             for dataset in datasets}
    for dataset, scores in units.items():
        base = scores.index(baseline)
        for i, configuration in enumerate(configurations):
            mean, sd = agreement.seed_summary(scores, rankings[dataset], configuration)
            rows.append(score_row(dataset, configuration, "head", "imagenot_accuracy", mean))
            rows.append(score_row(dataset, configuration, "head", "seed_sd", sd))
            improvement = _relative_improvement(scores.replicates[:, i], scores.replicates[:, base])
            rows.append(score_row(dataset, configuration, "head", "relative_improvement", stats.Estimate(
                float(_relative_improvement(scores.point[i], scores.point[base])), *stats.percentile_interval(improvement),
                mean.n, "percentile", scores.resampled)))
    rows.extend(r for r in seed_rows(rankings, units=unit_of, resampler=resampler, prefix="imagenot_", layer="head")
                if "seed_check" in r["metric"])
    rows.extend(agreement_rows(rankings, units=unit_of, resampler=resampler, prefix="imagenot_", layer="head"))
    others = [i for i, configuration in enumerate(configurations) if configuration != baseline]
    for a, b in itertools.combinations(datasets, 2):
        rows.extend(_improvement_fit_rows(units[a], units[b], others, configurations.index(baseline), f"{a}~{b}"))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _improvement_fit_rows(a: agreement.UnitScores, b: agreement.UnitScores, others: list[int], base: int,
                          pair: str) -> list[dict[str, Any]]:
    """The least-squares fit of the improvements on B against those on A, with intervals over seeds and examples."""
    x = _relative_improvement(a.point[others], a.point[base])
    y = _relative_improvement(b.point[others], b.point[base])
    fit = stats.linear_fit(x, y)
    rows_used = min(len(a.replicates), len(b.replicates))
    boot_x = _relative_improvement(a.replicates[:rows_used, others], a.replicates[:rows_used, [base]])
    boot_y = _relative_improvement(b.replicates[:rows_used, others], b.replicates[:rows_used, [base]])
    boot_fit = np.array([stats.linear_fit(bx, by) for bx, by in zip(boot_x, boot_y)]).reshape(-1, 3)
    resampled = f"{a.resampled} (each dataset's own draw)"
    return [score_row(pair, ALL_MODELS, "head", metric, stats.Estimate(
        value, *stats.percentile_interval(boot_fit[:, column]), len(others), "percentile", resampled))
        for column, (metric, value) in enumerate(zip(("improvement_slope", "improvement_intercept", "improvement_r2"),
                                                     fit))]


# ----------------------------------------------------------------------------- sweep variables
# Both tunnel families (zooprobe.analysis.tunnel): probes trained on the OOD set, and the ID probe under shift.
VARIABLE_METRICS = ("tunnel_retained_pct", "tunnel_id_ood_alignment", "shift_retained_pct", "shift_id_ood_alignment")


def variable_table(scores: pd.DataFrame, sweep: dict[str, Any]) -> pd.DataFrame:
    """Does a training variable (resolution, augmentation, depth, ...) change the tunnel-effect metrics?

    For each sweep variable and each of its settings after the first, models are paired with the
    model that differs only in that variable (same architecture, other settings, dataset, seed)
    on the same OOD set. Each of :data:`VARIABLE_METRICS` is compared with a two-sided paired
    Wilcoxon signed-rank test and Cliff's delta (positive: higher with the later setting).

    Returns:
        Rows in :data:`SCORE_COLUMNS` with benchmark ``variable:<name>``, model ``<setting> vs <first>``,
        layer the compared metric, metrics ``wilcoxon_p`` (with ``wilcoxon_p_holm`` and ``wilcoxon_p_bh``
        over every test of the table), ``cliffs_delta`` and ``median_difference``; ``n`` is the number
        of pairs.
    """
    from zooprobe.params.config import sweep_members

    variables = dict(sorted((sweep.get("variants") or {}).items()))  # the order of sweep_members' settings
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
                results = {"wilcoxon_p": (stats.paired_wilcoxon(other, first), "Wilcoxon signed-rank, two-sided"),
                           "cliffs_delta": (stats.cliffs_delta(other, first), ""),
                           "median_difference": (float(np.median(other - first)) if len(first) else float("nan"), "")}
                for name, (value, method) in results.items():
                    rows.append(score_row(f"variable:{variable}", label, metric, name,
                                     stats.no_interval(value, len(first), method)))
    rows += adjusted_rows(rows, "wilcoxon_p", "variable tests")
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _label(variable: str, value: Any) -> str:
    return f"{variable}={json.dumps(value, sort_keys=True)}"
