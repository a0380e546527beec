"""Report sections of the field's methods: rankings across all benchmarks, effective robustness, error consistency.

Each section formats what :mod:`zooprobe.analysis.field_methods` computed (score rows and the
summary's records); nothing is fitted or tested here.
"""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from markupsafe import Markup

from zooprobe.analysis.concordance import RankConcordance
from zooprobe.analysis.field_methods import SOURCES
from zooprobe.analysis.pairs import pair_matrices
from zooprobe.analysis.robustness import RobustnessFit
from zooprobe.report.blocks import Section, bounds_text, figure_html, id_first, table_html
from zooprobe.report.figures import (critical_difference_diagram, effective_robustness_scatter,
                                     error_consistency_heatmaps, png_data_uri, similarity_heatmaps)

# Scatter plots are drawn for the probe's fits (own heads get the table, to keep the page small), and for
# the heads' where the task has no probe (probe: head).
SCATTER_SOURCE = "selected"
# More models than this make the diagram's names illegible; the section then gives the table only.
CD_MAX_MODELS = 40


def concordance_section(record: Mapping[str, Any] | None) -> Section | None:
    """Kendall's W with its interval, the Friedman test, and the critical-difference diagram."""
    if not record or "kendall_w" not in record:
        return None
    result = RankConcordance.from_json(record)
    w = result.kendall_w_ci_over_models
    parts = [f"<p>Kendall's W = {w.value:.3f} {bounds_text(w.ci_low, w.ci_high)} ({w.method} 95% interval over "
             f"{html.escape(w.resampled)}) over {len(result.benchmarks)} benchmarks and {len(result.mean_ranks)} "
             f"models (units): 1 = every benchmark ranks them alike, 0 = no agreement. Friedman chi2 = "
             f"{result.friedman_chi2:.2f} on {len(result.mean_ranks) - 1} df, p = {result.friedman_p:.3g}. The "
             f"Nemenyi critical difference of mean ranks at alpha {result.alpha:g} is {result.critical_difference:.2f}; "
             "models whose mean ranks differ by less are joined by a bar.</p>",
             f"<p>Benchmarks: {html.escape(', '.join(result.benchmarks))}.</p>"]
    if record.get("left_out"):
        parts.append(f"<p>Left out (they do not score every model): {html.escape(', '.join(record['left_out']))}.</p>")
    ranks = result.mean_ranks.rename("mean rank (1 = best)").to_frame().rename_axis("model")
    parts.append(table_html(ranks, float_format="%.2f"))
    if len(result.mean_ranks) <= CD_MAX_MODELS:
        parts.append(figure_html(png_data_uri(critical_difference_diagram(result, max_models=CD_MAX_MODELS)),
                             "Critical-difference diagram (Demšar 2006): mean rank over every benchmark; bars join "
                             "models the Nemenyi test does not separate."))
    return Section("Rankings across all benchmarks", Markup("\n".join(parts)), anchor="concordance")


def robustness_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per fit: the pair, the source, slope, intercept and R² with their intervals, or why it was skipped."""
    rows = []
    for record in records:
        row = {"ID": record["id"], "OOD": record["ood"], "scores of": SOURCES[record["source"]]}
        if "fit" not in record:
            rows.append(row | {"slope": "", "intercept": "", "R²": "", "note": record["skipped"]})
            continue
        fit = record["fit"]
        cells = {label: f"{fit[name]:.3f} {bounds_text(*fit[name + '_ci_over_models'])}"
                 for name, label in (("slope", "slope"), ("intercept", "intercept"), ("r2", "R²"))}
        rows.append(row | cells | {"models": fit["n_models"], "note": "; ".join(fit["clipped"]) or ""})
    return pd.DataFrame(rows)


def robustness_section(records: Sequence[Mapping[str, Any]], *, shown: int = 5) -> Section | None:
    """The probit fits of OOD on ID accuracy, each model's effective robustness, and the scatter per pair."""
    if not records:
        return None
    parts = ["<p>Accuracy on the line (Taori et al. 2020; Miller et al. 2021): for each (ID, OOD) pair of "
             "benchmarks, the least-squares line of probit(OOD accuracy) on probit(ID accuracy) over the models "
             "(seeds of one configuration are one point). A model's effective robustness is its OOD accuracy minus "
             "the line's, in accuracy points. Intervals: 95% percentile over bootstrap redraws of the models and, "
             "within each, of the test examples (the analysis's draws); R²'s redraws the models only.</p>",
             table_html(robustness_table(records), index=False)]
    probed = {(r["id"], r["ood"]) for r in records if r["source"] == SCATTER_SOURCE}
    for record in records:
        if "fit" not in record:
            continue
        fit = RobustnessFit.from_json(record["fit"])
        table = fit.table.assign(
            effective_robustness=lambda t: [f"{100 * v:+.1f} {bounds_text(100 * lo, 100 * hi, 1)}" for v, lo, hi in
                                            zip(t.effective_robustness, t.er_ci_low, t.er_ci_high)])
        table = table.sort_values("er_ci_low", ascending=False, kind="stable")
        label = f"{record['id']} → {record['ood']} ({SOURCES[record['source']]})"
        parts.append(f"<h3>{html.escape(label)}</h3>")
        parts.append(table_html(table[["model", "id_accuracy", "ood_accuracy", "predicted_ood",
                                       "effective_robustness"]].rename(columns={
                                           "effective_robustness": "effective robustness (points) [95% CI]"}),
                                index=False, float_format="%.3f"))
        if record["source"] == SCATTER_SOURCE or (record["id"], record["ood"]) not in probed:
            parts.append(figure_html(png_data_uri(effective_robustness_scatter(
                fit, id_name=record["id"], ood_name=record["ood"], labelled=shown)),
                f"{label}: OOD against ID accuracy on probit axes, the fit with its 95% band, and y = x."))
    return Section("Effective robustness", Markup("\n".join(parts)), anchor="robustness")


def consistency_section(scores: pd.DataFrame, id_benchmarks: Sequence[str]) -> Section | None:
    """Error consistency of every pair of models, a heatmap per benchmark and source."""
    rows = scores[scores.metric == "error_consistency"]
    if rows.empty:
        return None
    parts = ["<p>Error consistency (Geirhos et al. 2020): Cohen's kappa of two models' per-example correctness, "
             "kappa = (c_obs - c_exp) / (1 - c_exp), where c_exp is the agreement two independent models with "
             "these accuracies would have. 0: the errors overlap no more than chance; 1: the same examples are "
             "missed. Brackets: 95% percentile intervals over bootstrap redraws of the test examples, both "
             "models of a pair scored on the same redraw.</p>"]
    for source, label in SOURCES.items():
        part = rows[rows.layer == source]
        if part.empty:
            continue
        ordered = id_first(list(dict.fromkeys(part.benchmark)), id_benchmarks)
        parts.append(f"<h3>{html.escape(label.capitalize())}</h3>")
        parts.append(figure_html(png_data_uri(error_consistency_heatmaps(scores, ordered, source=source)),
                             f"Error consistency ({label}), per benchmark, with 95% CIs over test examples."))
    return Section("Error consistency", Markup("\n".join(parts)), anchor="consistency")


def calibration_section(scores: pd.DataFrame, id_benchmarks: Sequence[str]) -> Section | None:
    """ECE of each own head on its ID set and every OOD set, with intervals, the binning said."""
    rows = scores[scores.metric == "ece"]
    if rows.empty:
        return None
    ordered = id_first(list(dict.fromkeys(rows.benchmark)), id_benchmarks)
    cells = rows.assign(cell=[f"{r.value:.3f} {bounds_text(r.ci_low, r.ci_high)}" for r in rows.itertuples()]
                        ).pivot(index="model", columns="benchmark", values="cell")[ordered]
    binning = "; ".join(sorted(set(rows.method)))
    body = (f"<p>Expected calibration error of each model's own head (max-softmax confidence against accuracy), "
            f"on its in-distribution test set ({html.escape(', '.join(b for b in ordered if b in id_benchmarks))}) "
            f"and every shifted set. Binning and interval: {html.escape(binning)}; brackets are 95% intervals over "
            "bootstrap redraws of the test examples. ECE has a positive finite-sample bias, so small sets read "
            "high even for a calibrated head.</p>")
    return Section("Calibration under shift", Markup(body + table_html(cells.rename_axis("model"))), anchor="calibration")


def _cka_matrix(part: pd.DataFrame, pair_column: str) -> tuple[list[str], np.ndarray]:
    names, matrices = pair_matrices(part, pair_column)
    return names, matrices["value"]


def similarity_section(scores: pd.DataFrame, id_benchmarks: Sequence[str]) -> Section | None:
    """Linear CKA between models at their selected layers (per benchmark) and between each model's layers
    (on its ID sets; the score table has every set)."""
    models = scores[scores.metric == "cka"]
    layers = scores[(scores.metric == "cka_layers") & scores.benchmark.isin(id_benchmarks)]
    if models.empty and layers.empty:
        return None
    method = "; ".join(sorted(set(models.method) | set(layers.method)))
    parts = [f"<p>Linear CKA (Kornblith et al. 2019) between feature matrices of the same examples: 1 = the same "
             f"representation up to rotation and scale, 0 = unrelated. Computed in feature space from streamed row "
             f"chunks ({html.escape(method)}). Between models: each at the layer its task selected on ID validation "
             "data, on the rows each benchmark scores. Between layers: one model's layers on its ID test rows (the "
             "shifted sets' are in <code>scores.csv</code>, metric <code>cka_layers</code>).</p>"]
    if not models.empty:
        panels = [(benchmark, *_cka_matrix(part, "model")) for benchmark, part in models.groupby("benchmark", sort=False)]
        parts.append(figure_html(png_data_uri(similarity_heatmaps(panels, title="CKA between models at their selected layers")),
                             "Linear CKA between every pair of models, one panel per benchmark."))
    if not layers.empty:
        panels = [(f"{model} on {benchmark}", *_cka_matrix(part, "layer"))
                  for (benchmark, model), part in layers.groupby(["benchmark", "model"], sort=False)]
        parts.append(figure_html(png_data_uri(similarity_heatmaps(panels, title="CKA between the layers of each model")),
                             "Linear CKA between every pair of a model's layers (input to output), on its ID test rows."))
    return Section("Representational similarity (CKA)", Markup("\n".join(parts)), anchor="similarity")
