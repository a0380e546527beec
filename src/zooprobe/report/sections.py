"""Report sections on the probe scores: the summary table, rank agreement, own heads, seeds,
the ImageNot protocol, the sweep variables and the tunnel effect.

Each section formats records of :mod:`zooprobe.analysis.verdicts`; no verdict is made here.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from zooprobe.analysis import stats
from zooprobe.analysis import tunnel
from zooprobe.analysis import verdicts
from zooprobe.report.blocks import Section, bounds_text, table_html
from zooprobe.report.figures import Style, improvement_scatter, png_data_uri


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Models x benchmarks: score at the selected layer with its CI, and the rank."""
    chosen = scores[scores.metric == "score"].copy()
    chosen["cell"] = [estimate_cell(r) for r in chosen.itertuples()]
    ranks = scores[scores.metric == "rank"].set_index(["benchmark", "model"]).value
    chosen["cell"] += [f" (#{int(ranks[(r.benchmark, r.model)])})" for r in chosen.itertuples()]
    table = chosen.pivot(index="model", columns="benchmark", values="cell")
    return table[list(dict.fromkeys(chosen.benchmark))]


def selected_layer_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Models x benchmarks: the layer each score is read at (each task chooses its own, on its val split)."""
    chosen = scores[scores.metric == "score"]
    table = chosen.pivot(index="model", columns="benchmark", values="layer")
    return table[list(dict.fromkeys(chosen.benchmark))]


def head_section(scores: pd.DataFrame) -> Section | None:
    """Own-head accuracy beside any published accuracy, and whether the published order holds."""
    head = scores[scores.metric == "head_accuracy"]
    if head.empty:
        return None
    cells = head.assign(cell=[estimate_cell(r) for r in head.itertuples()])
    table = cells.pivot(index="model", columns="benchmark", values="cell")
    published = scores[scores.metric == "published_accuracy"]
    parts = ["<p>Top-1 accuracy of each model's own classifier on the sets of its label space [95% CI]"
             + ("" if published.empty else ", beside the accuracy published with its checkpoint"
                if (published.method == "published with the checkpoint").all()
                else ", beside its published top-1 (from the table row named; there over the full test set of that"
                     " benchmark, here over these images)") + ".</p>"]
    if not published.empty:
        table.insert(0, "published", published.set_index("model").value.map("{:.4f}".format))
        # A published results table (timm's) rather than the checkpoint: name the row each number is from.
        where = published.set_index("model").method
        if (where != "published with the checkpoint").any():
            table.insert(1, "published in", where.str.removeprefix("published in "))
        parts.append(table_html(table))
        for record in verdicts.published_order(scores):
            pairs = "; ".join(
                f"{html.escape(p['first'])} &minus; {html.escape(p['second'])} = {p['difference']:+.3f} "
                f"[{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}] (Holm p = {p['p_holm']:.3g})" for p in record["pairs"])
            parts.append(
                f"<p><b>Published order on {html.escape(record['benchmark'])}: {record['verdict']}.</b> "
                f"Published: {' &gt; '.join(map(html.escape, record['published']))}. Measured (point estimates"
                f"{'' if record['point_order_matches'] else ', a different order'}): "
                f"{' &gt; '.join(map(html.escape, record['measured']))}. Kendall tau between published and measured "
                f"accuracy {record['tau']:.2f} [{record['tau_ci'][0]:.2f}, {record['tau_ci'][1]:.2f}] (95% CI over test "
                f"examples). Each neighbouring pair of the published order, measured accuracy difference with its "
                f"paired 95% CI over the same test examples: {pairs}. <em>holds</em> needs every pair in the published "
                f"direction at Holm-adjusted p &lt; {verdicts.ALPHA}; <em>contradicted</em>, one pair significantly "
                f"reversed; <em>not resolved</em>, neither.</p>")
    else:
        parts.append(table_html(table))
    return Section("The models' own heads", Markup("\n".join(parts)), anchor="heads")


INTERVALS_SENTENCE = (
    "Two 95% intervals come with each rank correlation. <em>Given the zoo</em> (percentile): each bootstrap "
    "replicate redraws the test examples (one joint draw for a shifted copy of a test split and the split "
    "itself, which share their rows) and the seeds within each architecture, recomputes every score and then "
    "the correlation; it answers how sure we are of the correlation of these architectures' true scores. "
    "<em>Over a population of models</em> (BCa): each replicate also redraws the architectures themselves "
    "(Kendall tau by the Bayesian bootstrap, Spearman rho with replacement), so it answers how sure we are "
    "of the correlation among architectures like these. Seeds of one architecture are one unit: their scores "
    "are averaged before ranking.")


def permutation_sentence() -> str:
    """What the permutation p-values are, and when they are exact."""
    budget = stats.PERMUTATIONS
    exact_up_to = max(m for m in range(1, 13) if np.prod(range(1, m + 1)) <= budget)
    return (f"p-values are two-sided permutation tests that permute whole units: exact, over all m! orders, when "
            f"m! &le; {budget:,} (m &le; {exact_up_to} units; then no p is below 2/m!, e.g. 0.083 for 4 units), "
            f"otherwise Monte Carlo over {budget:,} random orders with p = (k+1)/(n+1). Holm-adjusted p-values "
            f"control the family-wise error over all pairs of benchmarks and decide every verdict; "
            f"Benjamini-Hochberg ones (false discovery rate) are in scores.csv.")


def agreement_table(scores: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """One row per pair of benchmarks: tau and rho with both intervals, raw and adjusted p, and the verdict."""
    rows = {}
    for statistic, label in (("kendall_tau", "tau"), ("spearman_rho", "rho")):
        for record in verdicts.agreement_findings(scores, prefix=prefix, statistic=statistic):
            row = rows.setdefault(record["pair"], {"units": record["n_units"]})
            row[label] = f"{record['value']:.2f}"
            row[f"{label} CI given zoo"] = "[{:.2f}, {:.2f}]".format(*record["given_zoo"])
            # Marked, and explained once under the table (EXACT_BOUND_NOTE), to keep the column narrow.
            row[f"{label} CI population"] = ("[{:.2f}, {:.2f}]".format(*record["population"])
                                             + (" exact*" if record["population_degenerate"] else ""))
            row[f"{label} p"] = f"{record['p']:.3g}"
            row[f"{label} p (Holm)"] = f"{record['p_holm']:.3g}"
            if statistic == "kendall_tau":
                row["verdict (tau)"] = record["verdict"] + (f": {record['reason']}" if record["reason"] else "")
    return pd.DataFrame.from_dict(rows, orient="index")


EXACT_BOUND_NOTE = ("* Every pair of units is ordered alike on both benchmarks, so no bootstrap redraw can "
                    "disorder them: the population interval is the exact bound over disjoint pairs.")


def interval_text(value: float, ci_low: float, ci_high: float, digits: int = 3) -> str:
    """The report's one way to print an estimate.

    Args:
        value: point estimate.
        ci_low: lower end of its interval.
        ci_high: upper end.
        digits: decimals.

    Returns:
        ``value [low, high]``.
    """
    return f"{value:.{digits}f} {bounds_text(ci_low, ci_high, digits)}"


def estimate_cell(row: Any, digits: int = 3) -> str:
    """A score row (anything with ``value``, ``ci_low``, ``ci_high``) as :func:`interval_text`."""
    return interval_text(row.value, row.ci_low, row.ci_high, digits)


TUNNEL_HEADINGS = {
    "tunnel": ("Tunnel effect (Harun et al. 2024): probes trained on each OOD set",
               "One probe per layer trained on the OOD set's own train split (C on its val split) and scored on its "
               "test split, against the ID probes on the ID test split: the quantity Harun et al. define."),
    "shift": ("ID probes under shift (not the tunnel effect as defined)",
              "The ID probe of each layer scored on a same-label shifted set: how an ID probe survives covariate "
              "shift."),
}


def tunnel_section(scores: pd.DataFrame) -> Section | None:
    """Both tunnel families, labelled: % OOD retained, ID/OOD curve correlation and ID/OOD alignment, with CIs."""
    parts = []
    for family, (heading, what) in TUNNEL_HEADINGS.items():
        names = [f"{family}_{metric}" for metric in tunnel.METRICS]
        part = scores[scores.metric.isin(names)]
        if part.empty:
            continue
        cells = {(row.model, row.benchmark, row.metric): estimate_cell(row, 1 if row.metric.endswith("pct") else 3)
                 for row in part.itertuples()}
        parts += [f"<h3>{html.escape(heading)}</h3>", f"<p>{html.escape(what)} Per model and OOD set: "
                  f"<code>{family}_retained_pct</code> = 100 x acc(penultimate) / acc(best layer) on the OOD curve; "
                  f"<code>{family}_id_ood_pearson</code> = Pearson r between the ID and OOD layer-wise accuracy "
                  f"curves; <code>{family}_id_ood_alignment</code> = (acc_ID - chance) x (acc_OOD - chance) at the "
                  "penultimate layer. Brackets: 95% percentile intervals over bootstrap redraws of the ID and OOD "
                  "test examples, every metric recomputed on each redraw.</p>",
                  table_html(pd.Series(cells).unstack().rename_axis(["model", "OOD set"]))]
    if not parts:
        return None
    return Section("Tunnel effect", Markup("\n".join(parts)), anchor="tunnel")


def imagenot_section(scores: pd.DataFrame, sweep: dict[str, Any] | None, colours: Style | None = None
                     ) -> Section | None:
    """The ImageNot protocol: per-dataset architecture rankings, their agreement, and the improvement fit."""
    accuracy = scores[scores.metric == "imagenot_accuracy"]
    if accuracy.empty or not sweep:
        return None
    datasets = list(sweep["datasets"])
    sd = scores[(scores.metric == "seed_sd") & (scores.layer == "head")].set_index(["benchmark", "model"]).value
    improvement = scores[scores.metric == "relative_improvement"].set_index(["benchmark", "model"])
    cells = {}
    for row in accuracy.itertuples():
        gain = improvement.loc[(row.benchmark, row.model)]
        cells[(row.model, row.benchmark)] = (f"{row.value:.3f} ± {sd[(row.benchmark, row.model)]:.3f} "
                                             f"({gain.value:+.1f}% [{gain.ci_low:+.1f}, {gain.ci_high:+.1f}])")
    table = pd.Series(cells).unstack()[datasets]
    parts = [
        f"<p>Every architecture trained from scratch with the same recipe on each of {', '.join(datasets)}, "
        f"seeds {sweep['seeds']}. Cells: own-head test accuracy, mean ± sd over seeds (% improvement over "
        f"<b>{html.escape(sweep['baseline'])}</b> [95% CI over seeds and test examples]).</p>",
        table_html(table.rename_axis("configuration")),
    ]
    parts += [f"<p>Rank agreement of the configurations between datasets. {INTERVALS_SENTENCE} "
              f"{permutation_sentence()}</p>", table_html(agreement_table(scores, prefix="imagenot_")),
              f"<p>{EXACT_BOUND_NOTE}</p>"]
    for record in verdicts.improvement_findings(scores):
        a, b = record["a"], record["b"]
        reason = f"; {record['reason']}" if record["reason"] else ""
        parts.append(
            f"<p><b>{html.escape(a)} vs {html.escape(b)}:</b> the ranking {record['verdict']} (Kendall tau "
            f"{record['value']:.2f}, Holm-adjusted p = {record['p_holm']:.3g}{html.escape(reason)}); "
            f"improvements on {html.escape(b)} against {html.escape(a)}: slope "
            f"{interval_text(**record['slope'], digits=2)}, R² {interval_text(**record['r2'], digits=2)} "
            f"(95% CIs over seeds and test examples).</p>")
        parts.append(f"<img alt='improvement scatter' src='{png_data_uri(improvement_scatter(scores, a, b, colours))}'>")
    parts.append("<h3>Seed variation against rank differences</h3><ul>")
    for record in verdicts.seed_check(scores, prefix="imagenot_"):
        parts.append(f"<li><b>{html.escape(record['benchmark'])}</b>: {_seed_check(record)}</li>")
    parts.append("</ul>")
    return Section("ImageNot protocol (Salaudeen & Hardt 2024)", Markup("\n".join(parts)), anchor="imagenot")


def _seed_check(record: dict[str, Any]) -> str:
    """How many neighbouring differences in a ranking exceed what seeds and test examples allow."""
    detail = "; ".join(f"{html.escape(p['first'])} &minus; {html.escape(p['second'])} = {p['difference']:+.3f} "
                       f"[{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}], Holm p = {p['p_holm']:.3g}" for p in record["pairs"])
    return (f"{record['resolved']} of {record['total']} neighbouring differences are larger than seed-to-seed and "
            f"test-set variation allow (paired bootstrap over seeds and test examples, Holm-adjusted p &lt; "
            f"{verdicts.ALPHA}). {detail}.")


def seed_section(scores: pd.DataFrame) -> Section | None:
    """Models trained with several seeds: mean ± sd of the score per benchmark, and the rank check."""
    mean = scores[scores.metric == "seed_mean"]
    if mean.empty:
        return None
    sd = scores[(scores.metric == "seed_sd") & (scores.layer == "selected")].set_index(["benchmark", "model"]).value
    cells = {(r.model, r.benchmark): f"{r.value:.3f} ± {sd[(r.benchmark, r.model)]:.3f} (n={r.n})"
             for r in mean.itertuples()}
    parts = ["<p>Models trained with several seeds (named <code>&lt;model&gt;-s&lt;seed&gt;</code>): the probe score "
             "at the selected layer, mean ± sd over seeds. In every rank statistic these seeds are one unit.</p>",
             table_html(pd.Series(cells).unstack().rename_axis("model")), "<ul>"]
    for record in verdicts.seed_check(scores):
        parts.append(f"<li><b>{html.escape(record['benchmark'])}</b>: {_seed_check(record)}</li>")
    parts.append("</ul>")
    return Section("Seeds", Markup("\n".join(parts)), anchor="seeds")


def variable_section(scores: pd.DataFrame) -> Section | None:
    """Paired Wilcoxon tests and Cliff's delta of the tunnel metrics across each sweep variable's settings."""
    part = scores[scores.benchmark.str.startswith("variable:")]
    if part.empty:
        return None
    table = part.pivot_table(index=["benchmark", "model", "layer"], columns="metric", values="value")
    table["pairs"] = part.groupby(["benchmark", "model", "layer"]).n.first()
    return Section("Training variables and the tunnel effect", Markup("\n".join([
        "<p>Models paired on everything but one variable (architecture, other settings, dataset, seed, OOD set). "
        "<code>cliffs_delta</code> &gt; 0 and <code>median_difference</code> &gt; 0 mean the metric is higher with "
        "the first-named setting; <code>wilcoxon_p</code> is the two-sided paired signed-rank p-value, "
        "<code>wilcoxon_p_holm</code> and <code>wilcoxon_p_bh</code> its Holm and Benjamini-Hochberg adjustments over "
        "every test of this table; call a variable's effect significant only on the adjusted values.</p>",
        table_html(table, float_format="%.3g"),
    ])), anchor="variables")
