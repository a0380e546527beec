"""A self-contained HTML report: figures are embedded PNGs, tables are plain HTML."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import matplotlib

matplotlib.use("Agg")  # No display on cluster nodes or CI.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from zooprobe.analysis import stats
from zooprobe.analysis import tunnel
from zooprobe.analysis import verdicts  # noqa: E402
from zooprobe.analysis.scores import agreement_matrix  # noqa: E402


def _png(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def agreement_heatmap(scores: pd.DataFrame) -> plt.Figure:
    """Kendall tau between every pair of benchmarks, each cell with both 95% intervals."""
    names, value, low, high = agreement_matrix(scores, "kendall_tau_given_zoo")
    _, _, pop_low, pop_high = agreement_matrix(scores, "kendall_tau_population")
    fig, ax = plt.subplots(figsize=(1.6 + 1.45 * len(names), 1.0 + 1.1 * len(names)))
    image = ax.imshow(value, vmin=-1, vmax=1, cmap="RdBu_r")
    for i in range(len(names)):
        for j in range(len(names)):
            text = ("1" if i == j else "n/a" if not np.isfinite(value[i, j])
                    else f"{value[i, j]:.2f}\nzoo [{low[i, j]:.2f}, {high[i, j]:.2f}]\n"
                         f"pop. [{pop_low[i, j]:.2f}, {pop_high[i, j]:.2f}]")
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if abs(value[i, j]) > 0.6 else "black")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_title("Kendall tau [95% CI given the zoo; 95% CI over a population of models]", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def bump_chart(scores: pd.DataFrame) -> plt.Figure:
    """Each model's rank on each benchmark, joined by lines: crossings are ranking changes."""
    ranks = scores[scores.metric == "rank"].pivot(index="model", columns="benchmark", values="value")
    order = list(dict.fromkeys(scores[scores.metric == "rank"].benchmark))
    # Only models ranked on every benchmark (prediction tables, say, are ranked on one).
    ranks = ranks[order].dropna()
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(order), 0.9 + 0.45 * len(ranks)))
    for model, row in ranks.iterrows():
        ax.plot(range(len(order)), row.values, marker="o", linewidth=2, label=model)
        ax.annotate(model, (len(order) - 1, row.values[-1]), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.set_xticks(range(len(order)), order, rotation=20, ha="right")
    ax.set_ylim(len(ranks) + 0.5, 0.5)
    ax.set_yticks(range(1, len(ranks) + 1))
    ax.set_ylabel("rank (1 = best)")
    ax.set_title("Model ranks across benchmarks")
    ax.grid(alpha=0.3)
    return fig


def layer_curves(scores: pd.DataFrame, layer_order: dict[str, list[str]]) -> plt.Figure:
    """Probe accuracy per layer for every model: ID solid, OOD dashed, with 95% CI bands."""
    accuracy = scores[scores.metric == "accuracy"]
    models = sorted(accuracy.model.unique())
    columns = min(3, len(models))
    rows = int(np.ceil(len(models) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False, sharey=True)
    benchmarks = list(dict.fromkeys(accuracy.benchmark))
    colours = {name: plt.cm.tab10(i % 10) for i, name in enumerate(benchmarks)}
    for ax, model in zip(axes.flat, models):
        layers = layer_order[model]
        for benchmark in benchmarks:
            part = accuracy[(accuracy.model == model) & (accuracy.benchmark == benchmark)].set_index("layer")
            part = part.reindex([layer for layer in layers if layer in part.index])
            if part.empty:
                continue
            x = np.arange(len(part))
            style = "-" if benchmark in layer_order.get("__id__", []) else "--"
            ax.plot(x, part.value, style, marker=".", color=colours[benchmark], label=benchmark)
            ax.fill_between(x, part.ci_low, part.ci_high, color=colours[benchmark], alpha=0.15)
            best = int(np.nanargmax(part.value.to_numpy()))
            ax.plot(x[best], part.value.iloc[best], marker="*", markersize=11, color=colours[benchmark],
                    markeredgecolor="black", linestyle="none")
        ax.set_title(model)
        ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(models):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("linear-probe accuracy")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Layer-wise accuracy (solid: in-distribution, dashed: OOD; star: best layer)")
    # Leave a fixed half inch above the panels for the title, whatever the number of rows.
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return fig


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Models x benchmarks: score at the selected layer with its CI, and the rank."""
    chosen = scores[scores.metric == "score"].copy()
    chosen["cell"] = [f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" for r in chosen.itertuples()]
    ranks = scores[scores.metric == "rank"].set_index(["benchmark", "model"]).value
    chosen["cell"] += [f" (#{int(ranks[(r.benchmark, r.model)])})" for r in chosen.itertuples()]
    table = chosen.pivot(index="model", columns="benchmark", values="cell")
    table = table[list(dict.fromkeys(chosen.benchmark))]
    layers = chosen.drop_duplicates("model").set_index("model").layer
    table.insert(0, "selected layer", layers)
    return table


def head_section(scores: pd.DataFrame) -> str:
    """Own-head accuracy beside any published accuracy, and whether the published order holds."""
    head = scores[scores.metric == "head_accuracy"]
    if head.empty:
        return ""
    cells = head.assign(cell=[f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" for r in head.itertuples()])
    table = cells.pivot(index="model", columns="benchmark", values="cell")
    published = scores[scores.metric == "published_accuracy"]
    parts = ["<h2>The models' own heads</h2>",
             "<p>Top-1 accuracy of each model's own classifier on the sets of its label space [95% CI]"
             + (", beside the accuracy published with its checkpoint" if not published.empty else "") + ".</p>"]
    if not published.empty:
        table.insert(0, "published", published.set_index("model").value.map("{:.4f}".format))
        parts.append(table.to_html(na_rep=""))
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
        parts.append(table.to_html(na_rep=""))
    return "\n".join(parts)


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
            row[f"{label} CI population"] = ("[{:.2f}, {:.2f}]".format(*record["population"])
                                             + (" (every pair ordered alike: exact bound over disjoint "
                                                "pairs, since no bootstrap redraw can disorder them)"
                                                if record["population_degenerate"] else ""))
            row[f"{label} p"] = f"{record['p']:.3g}"
            row[f"{label} p (Holm)"] = f"{record['p_holm']:.3g}"
            if statistic == "kendall_tau":
                row["verdict (tau)"] = record["verdict"] + (f": {record['reason']}" if record["reason"] else "")
    return pd.DataFrame.from_dict(rows, orient="index")


def _cell(row: Any, digits: int = 3) -> str:
    return f"{row.value:.{digits}f} [{row.ci_low:.{digits}f}, {row.ci_high:.{digits}f}]"


TUNNEL_HEADINGS = {
    "tunnel": ("Tunnel effect (Harun et al. 2024): probes trained on each OOD set",
               "One probe per layer trained on the OOD set's own train split (C on its val split) and scored on its "
               "test split, against the ID probes on the ID test split: the quantity Harun et al. define."),
    "shift": ("ID probes under shift (not the tunnel effect as defined)",
              "The ID probe of each layer scored on a same-label shifted set: how an ID probe survives covariate "
              "shift."),
}


def tunnel_section(scores: pd.DataFrame) -> str:
    """Both tunnel families, labelled: % OOD retained, ID/OOD curve correlation and ID/OOD alignment, with CIs."""
    parts = []
    for family, (heading, what) in TUNNEL_HEADINGS.items():
        names = [f"{family}_{metric}" for metric in tunnel.METRICS]
        part = scores[scores.metric.isin(names)]
        if part.empty:
            continue
        cells = {(row.model, row.benchmark, row.metric): _cell(row, 1 if row.metric.endswith("pct") else 3)
                 for row in part.itertuples()}
        parts += [f"<h3>{html.escape(heading)}</h3>", f"<p>{html.escape(what)} Per model and OOD set: "
                  f"<code>{family}_retained_pct</code> = 100 x acc(penultimate) / acc(best layer) on the OOD curve; "
                  f"<code>{family}_id_ood_pearson</code> = Pearson r between the ID and OOD layer-wise accuracy "
                  f"curves; <code>{family}_id_ood_alignment</code> = (acc_ID - chance) x (acc_OOD - chance) at the "
                  "penultimate layer. Brackets: 95% percentile intervals over bootstrap redraws of the ID and OOD "
                  "test examples, every metric recomputed on each redraw.</p>",
                  pd.Series(cells).unstack().to_html(na_rep="")]
    if not parts:
        return ""
    return "\n".join(["<h2>Tunnel effect</h2>", *parts])


def improvement_scatter(scores: pd.DataFrame, a: str, b: str) -> plt.Figure:
    """Each architecture's % improvement over the baseline on dataset A against dataset B, with the fit line."""
    improvement = scores[scores.metric == "relative_improvement"].pivot(index="model", columns="benchmark",
                                                                         values="value")
    pair = scores[(scores.benchmark == f"{a}~{b}")].set_index("metric").value
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.scatter(improvement[a], improvement[b], s=40, zorder=3)
    for model, row in improvement.iterrows():
        ax.annotate(model, (row[a], row[b]), xytext=(4, 3), textcoords="offset points", fontsize=8)
    low, high = np.nanmin(improvement[[a, b]].to_numpy()), np.nanmax(improvement[[a, b]].to_numpy())
    x = np.linspace(low, high, 20)
    ax.plot(x, x, ":", color="grey", label="y = x")
    if np.isfinite(pair.get("improvement_slope", np.nan)):
        ax.plot(x, pair["improvement_slope"] * x + pair["improvement_intercept"], "-", color="C3",
                label=f"fit: slope {pair['improvement_slope']:.2f}, R² {pair['improvement_r2']:.2f}")
    ax.set_xlabel(f"% improvement over baseline on {a}")
    ax.set_ylabel(f"% improvement over baseline on {b}")
    ax.set_title(f"ImageNot: improvements on {a} vs {b}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def imagenot_section(scores: pd.DataFrame, sweep: dict[str, Any] | None) -> str:
    """The ImageNot protocol: per-dataset architecture rankings, their agreement, and the improvement fit."""
    accuracy = scores[scores.metric == "imagenot_accuracy"]
    if accuracy.empty or not sweep:
        return ""
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
        "<h2>ImageNot protocol (Salaudeen &amp; Hardt 2024)</h2>",
        f"<p>Every architecture trained from scratch with the same recipe on each of {', '.join(datasets)}, "
        f"seeds {sweep['seeds']}. Cells: own-head test accuracy, mean ± sd over seeds (% improvement over "
        f"<b>{html.escape(sweep['baseline'])}</b> [95% CI over seeds and test examples]).</p>",
        table.to_html(escape=True),
    ]
    parts += [f"<p>Rank agreement of the configurations between datasets. {INTERVALS_SENTENCE} "
              f"{permutation_sentence()}</p>", agreement_table(scores, prefix="imagenot_").to_html(escape=True)]
    for record in verdicts.agreement_findings(scores, prefix="imagenot_"):
        a, b = record["a"], record["b"]
        values = scores[scores.benchmark == record["pair"]].set_index("metric")
        slope, r2 = values.loc["improvement_slope"], values.loc["improvement_r2"]
        reason = f"; {record['reason']}" if record["reason"] else ""
        parts.append(
            f"<p><b>{html.escape(a)} vs {html.escape(b)}:</b> the ranking {record['verdict']} (Kendall tau "
            f"{record['value']:.2f}, Holm-adjusted p = {record['p_holm']:.3g}{html.escape(reason)}); "
            f"improvements on {html.escape(b)} against {html.escape(a)}: slope {_cell(slope, 2)}, R² {_cell(r2, 2)} "
            f"(95% CIs over seeds and test examples).</p>")
        parts.append(f"<img alt='improvement scatter' src='{_png(improvement_scatter(scores, a, b))}'>")
    parts.append("<h3>Seed variation against rank differences</h3><ul>")
    for record in verdicts.seed_check(scores, prefix="imagenot_"):
        parts.append(f"<li><b>{html.escape(record['benchmark'])}</b>: {_seed_check(record)}</li>")
    parts.append("</ul>")
    return "\n".join(parts)


def _seed_check(record: dict[str, Any]) -> str:
    """How many neighbouring differences in a ranking exceed what seeds and test examples allow."""
    detail = "; ".join(f"{html.escape(p['first'])} &minus; {html.escape(p['second'])} = {p['difference']:+.3f} "
                       f"[{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}], Holm p = {p['p_holm']:.3g}" for p in record["pairs"])
    return (f"{record['resolved']} of {record['total']} neighbouring differences are larger than seed-to-seed and "
            f"test-set variation allow (paired bootstrap over seeds and test examples, Holm-adjusted p &lt; "
            f"{verdicts.ALPHA}). {detail}.")


def seed_section(scores: pd.DataFrame) -> str:
    """Models trained with several seeds: mean ± sd of the score per benchmark, and the rank check."""
    mean = scores[scores.metric == "seed_mean"]
    if mean.empty:
        return ""
    sd = scores[(scores.metric == "seed_sd") & (scores.layer == "selected")].set_index(["benchmark", "model"]).value
    cells = {(r.model, r.benchmark): f"{r.value:.3f} ± {sd[(r.benchmark, r.model)]:.3f} (n={r.n})"
             for r in mean.itertuples()}
    parts = ["<h2>Seeds</h2>",
             "<p>Models trained with several seeds (named <code>&lt;model&gt;-s&lt;seed&gt;</code>): the probe score "
             "at the selected layer, mean ± sd over seeds. In every rank statistic these seeds are one unit.</p>",
             pd.Series(cells).unstack().to_html(na_rep=""), "<ul>"]
    for record in verdicts.seed_check(scores):
        parts.append(f"<li><b>{html.escape(record['benchmark'])}</b>: {_seed_check(record)}</li>")
    parts.append("</ul>")
    return "\n".join(parts)


def variable_section(scores: pd.DataFrame) -> str:
    """Paired Wilcoxon tests and Cliff's delta of the tunnel metrics across each sweep variable's settings."""
    part = scores[scores.benchmark.str.startswith("variable:")]
    if part.empty:
        return ""
    table = part.pivot_table(index=["benchmark", "model", "layer"], columns="metric", values="value")
    table["pairs"] = part.groupby(["benchmark", "model", "layer"]).n.first()
    return "\n".join([
        "<h2>Training variables and the tunnel effect</h2>",
        "<p>Models paired on everything but one variable (architecture, other settings, dataset, seed, OOD set). "
        "<code>cliffs_delta</code> &gt; 0 and <code>median_difference</code> &gt; 0 mean the metric is higher with "
        "the first-named setting; <code>wilcoxon_p</code> is the two-sided paired signed-rank p-value, "
        "<code>wilcoxon_p_holm</code> and <code>wilcoxon_p_bh</code> its Holm and Benjamini-Hochberg adjustments over "
        "every test of this table; call a variable's effect significant only on the adjusted values.</p>",
        table.to_html(float_format="%.3g", na_rep=""),
    ])


ALIGNMENT_SCORE_NAMES = {"rsa_subject_mean": "RSA, mean over subjects (Spearman)", "rsa": "RSA (Spearman)",
                         "odd_one_out_accuracy": "odd-one-out accuracy",
                         "neg_cross_entropy": "minus cross-entropy to human labels", "delta1": "depth delta1",
                         "neg_mean_angle": "minus mean normal error (deg)", "iou": "figure-ground IoU"}


def _curve_rsa(scores: pd.DataFrame, benchmarks: list[str]) -> pd.DataFrame:
    """Per-layer RSA rows to plot: the subject-mean RSA where a benchmark has one (the quantity its noise
    ceiling bounds), else the RSA with the group similarity."""
    rsa = scores[scores.metric.isin(["rsa", "rsa_subject_mean"]) & scores.benchmark.isin(benchmarks)]
    with_subjects = set(rsa[rsa.metric == "rsa_subject_mean"].benchmark)
    return rsa[(rsa.metric == "rsa_subject_mean") | ~rsa.benchmark.isin(with_subjects)]


def alignment_layer_curves(scores: pd.DataFrame, benchmarks: list[str]) -> plt.Figure:
    """RSA per layer for every model on each similarity benchmark (x: relative depth), with 95% CI bands.

    Where per-subject RDMs exist the curve is the subject-mean RSA, under its noise-ceiling band."""
    rsa = _curve_rsa(scores, benchmarks)
    names = list(dict.fromkeys(rsa.benchmark))
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 3.6), squeeze=False, sharey=True)
    models = sorted(rsa.model.unique())
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(models)}
    for ax, benchmark in zip(axes.flat, names):
        for model in models:
            part = rsa[(rsa.benchmark == benchmark) & (rsa.model == model)]
            if part.empty:
                continue
            x = np.linspace(0, 1, len(part)) if len(part) > 1 else np.zeros(1)
            ax.plot(x, part.value, marker=".", color=colours[model], label=model)
            ax.fill_between(x, part.ci_low, part.ci_high, color=colours[model], alpha=0.12)
        ceiling = scores[(scores.benchmark == benchmark) & (scores.metric == "noise_ceiling_lower")]
        if not ceiling.empty:
            lower = float(ceiling.value.iloc[0])
            upper = float(scores[(scores.benchmark == benchmark) & (scores.metric == "noise_ceiling_upper")].value.iloc[0])
            ax.axhspan(lower, upper, color="grey", alpha=0.25, label="noise ceiling")
        ax.set_title(benchmark if ceiling.empty else f"{benchmark} (mean over subjects)")
        ax.set_xlabel("relative depth (first to last extracted layer)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("RSA with human similarity")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Human alignment per layer (95% CI over stimuli)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return fig


def accuracy_alignment_scatter(scores: pd.DataFrame, accuracy_benchmark: str, benchmarks: list[str],
                               title: str = "Accuracy against human alignment") -> plt.Figure:
    """Each alignment (or dense) score against the probe accuracy, across models, with a least-squares line."""
    chosen = scores[scores.metric == "score"].pivot(index="model", columns="benchmark", values="value")
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(4.2 * len(benchmarks), 3.8), squeeze=False)
    for ax, benchmark in zip(axes.flat, benchmarks):
        pair = chosen[[accuracy_benchmark, benchmark]].dropna()
        ax.scatter(pair[accuracy_benchmark], pair[benchmark], s=36, zorder=3)
        for model, row in pair.iterrows():
            ax.annotate(model, (row[accuracy_benchmark], row[benchmark]), xytext=(3, 3), textcoords="offset points",
                        fontsize=7)
        title = benchmark
        rho = scores[(scores.benchmark.isin([f"{accuracy_benchmark}~{benchmark}", f"{benchmark}~{accuracy_benchmark}"]))
                     & (scores.metric == "spearman_rho_population")]
        if len(pair) >= 3:
            slope, intercept, r2 = stats.linear_fit(pair[accuracy_benchmark].to_numpy(), pair[benchmark].to_numpy())
            x = np.linspace(pair[accuracy_benchmark].min(), pair[accuracy_benchmark].max(), 10)
            ax.plot(x, slope * x + intercept, color="C3", label=f"fit: slope {slope:.2f}, R² {r2:.2f}")
            ax.legend(fontsize=7)
        if not rho.empty:
            r = rho.iloc[0]
            title += f"\nSpearman {r.value:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] over models, n={int(r.n)}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"{accuracy_benchmark} probe accuracy")
        ax.set_ylabel(ALIGNMENT_SCORE_NAMES.get(_score_metric(scores, benchmark), "alignment"))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return fig


def _score_metric(scores: pd.DataFrame, benchmark: str) -> str:
    metrics = set(scores[scores.benchmark == benchmark].metric)
    for name in ALIGNMENT_SCORE_NAMES:
        if name == "neg_cross_entropy" and "cross_entropy" in metrics:
            return name
        if name == "neg_mean_angle" and "mean_angle" in metrics:
            return name
        if name in metrics:
            return name
    return ""


def alignment_section(scores: pd.DataFrame, benchmarks: list[str], accuracy_benchmarks: list[str]) -> str:
    """Human alignment: RSA per layer with CIs, noise ceilings, odd-one-out, and human label agreement."""
    if not benchmarks:
        return ""
    parts = ["<h2>Human alignment</h2>",
             "<p>RSA is the Spearman correlation between the model's pairwise cosine or correlation similarity "
             "and the human similarity over the upper triangle, with a 95% CI from resampling stimuli: "
             "<code>rsa</code> against the group similarity, and, where per-subject RDMs exist, "
             "<code>rsa_subject_mean</code>, the mean over subjects of the RSA with each subject's RDM, which is "
             "what the noise ceiling bounds. The alignment score that ranks models is the subject-mean RSA "
             "where it exists, else the RSA (or the odd-one-out accuracy, chance 1/3, where only triplets are "
             "given, or minus the cross-entropy to the human label distributions), at the layer named in the "
             "align params: <code>last</code>, or <code>best_cv</code>, chosen on one half of the stimuli and "
             "scored on the other (rows of layer <code>best_cv</code>). Odd-one-out intervals also resample "
             "stimuli. These rankings join the agreement matrix above.</p>"]
    rsa = scores[(scores.metric == "rsa") & scores.benchmark.isin(benchmarks)]
    for benchmark in dict.fromkeys(rsa.benchmark):
        part = rsa[rsa.benchmark == benchmark]
        ceiling = scores[(scores.benchmark == benchmark) & scores.metric.str.startswith("noise_ceiling")]
        parts.append(f"<h3>{html.escape(benchmark)}: RSA [95% CI] at every extracted layer</h3>")
        if not ceiling.empty:
            c = ceiling.set_index("metric").value
            estimate = f", estimate {c['noise_ceiling_estimate']:.3f}" if "noise_ceiling_estimate" in c else ""
            parts.append(f"<p>Noise ceiling from the individual subjects' RDMs: lower {c['noise_ceiling_lower']:.3f}, "
                         f"upper {c['noise_ceiling_upper']:.3f}{estimate}. The bounds bound the subject-mean RSA (the "
                         f"curve in the figure below), not the RSA with the mean RDM in this table; "
                         f"<code>rsa_fraction_of_ceiling</code> in scores.csv divides the subject-mean RSA by the "
                         f"estimate (the square root of the mean correlation between subjects, which lies between "
                         f"the bounds), both on every stimulus resample.</p>")
        subject_mean = scores[(scores.benchmark == benchmark) & (scores.metric == "rsa_subject_mean")]
        for model in sorted(part.model.unique()):
            lines = [(model, part[part.model == model])]
            if not subject_mean.empty:
                lines.append((f"{model}, mean over subjects", subject_mean[subject_mean.model == model]))
            cells = ["<tr><th>{}</th>{}</tr>".format(html.escape(name), " ".join(
                f"<td>{html.escape(str(r.layer))}<br>{_cell(r)}</td>" for r in rows.itertuples()))
                for name, rows in lines]
            parts.append(f"<table>{''.join(cells)}</table>")
    # Per layer, or (layer best_cv) cross-validated at the layers that the ranking score chose.
    odd = scores[scores.metric.isin(["odd_one_out_accuracy", "odd_one_out_accuracy_cv"])
                 & scores.benchmark.isin(benchmarks)]
    selected = scores[(scores.metric == "score") & scores.benchmark.isin(benchmarks)].set_index(["benchmark", "model"])
    if not odd.empty:
        odd = odd[[(b, m) in selected.index and selected.loc[(b, m), "layer"] == layer
                   for b, m, layer in zip(odd.benchmark, odd.model, odd.layer)]]
        table = odd.assign(cell=[_cell(r) for r in odd.itertuples()]).pivot(index="model", columns="benchmark",
                                                                              values="cell")
        parts += ["<h3>Odd-one-out accuracy at the selected layer [95% CI] (chance 0.333)</h3>",
                  table.to_html(escape=True, na_rep="")]
    labels = scores[scores.metric.isin(["cross_entropy", "kl", "entropy_spearman"]) & scores.benchmark.isin(benchmarks)]
    for benchmark in dict.fromkeys(labels.benchmark):
        part = labels[labels.benchmark == benchmark]
        table = part.assign(cell=[_cell(r) for r in part.itertuples()]).pivot(index="model", columns="metric",
                                                                                values="cell")
        order = part[part.metric == "cross_entropy"].sort_values("value").model
        parts += [f"<h3>{html.escape(benchmark)}: agreement with human label distributions [95% CI]</h3>",
                  "<p>Per image, cross-entropy -sum h log p and KL(h || p) between the human distribution h and "
                  "the model's softmax p (lower is better), averaged over images; and the Spearman correlation of "
                  "per-image entropies. Rows include published prediction tables.</p>",
                  table.loc[list(order)].to_html(escape=True)]
    if not rsa.empty:
        parts += ["<h3>Alignment per layer</h3>",
                  f"<img alt='alignment per layer' src='{_png(alignment_layer_curves(scores, benchmarks))}'>"]
    if accuracy_benchmarks:
        parts += ["<h3>Accuracy against alignment</h3>",
                  f"<img alt='accuracy against alignment' "
                  f"src='{_png(accuracy_alignment_scatter(scores, accuracy_benchmarks[0], benchmarks))}'>"]
    return "\n".join(parts)


DENSE_TABLE_METRICS = {"depth": ("delta1", "depth delta1 (higher is better)"),
                       "normals": ("mean_angle", "mean angular error of normals in degrees (lower is better)"),
                       "figure_ground": ("iou", "figure-ground IoU (higher is better)")}


def dense_section(scores: pd.DataFrame, benchmarks: list[str], accuracy_benchmarks: list[str]) -> str:
    """Dense probes: per-layer depth delta1, normal error and IoU, trained against random init, and
    mid-level against classification."""
    if not benchmarks:
        return ""
    parts = ["<h2>Mid-level vision: dense probes (Chen, Marks & Cheng 2024)</h2>",
             "<p>A linear (1x1 convolution) or small convolutional head on frozen spatial features, one per "
             "layer, trained on the train images and scored on the test images; every metric is the mean over "
             "test images of the per-image value, with a 95% bootstrap CI over images. Depth is scored after "
             "aligning each prediction's scale to the truth by the median ratio (the head is trained with the "
             "scale-invariant loss).</p>"]
    for benchmark in benchmarks:
        task = benchmark.split("@")[0]
        metric, label = DENSE_TABLE_METRICS[task]
        part = scores[(scores.benchmark == benchmark) & (scores.metric == metric)]
        parts.append(f"<h3>{html.escape(benchmark)}: {html.escape(label)} per layer [95% CI]</h3>")
        for model in sorted(part.model.unique()):
            rows = part[part.model == model]
            cells = " ".join(f"<td>{html.escape(str(r.layer))}<br>{_cell(r)}</td>" for r in rows.itertuples())
            parts.append(f"<table><tr><th>{html.escape(model)}</th>{cells}</tr></table>")
    comparisons = [
        f"<li>{html.escape(r['benchmark'])}: trained <b>{html.escape(r['trained'])}</b> {r['verdict']} its random-init "
        f"copy <b>{html.escape(r['random_init'])}</b>: score difference {r['difference']:+.3f} "
        f"[{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] (paired 95% CI over the same test images), Holm-adjusted p = "
        f"{r['p_holm']:.3g}</li>" for r in verdicts.random_init_comparisons(scores) if r["benchmark"] in benchmarks]
    if comparisons:
        parts += ["<h3>Trained against random-init copies of the same architecture</h3>",
                  f"<p>Scores at each model's selected layer; a verdict needs Holm-adjusted p &lt; {verdicts.ALPHA} "
                  "over every trained/random-init comparison of the run.</p>", "<ul>", *comparisons, "</ul>"]
    if accuracy_benchmarks:
        figure = accuracy_alignment_scatter(scores, accuracy_benchmarks[0], benchmarks,
                                            title="Mid-level against classification")
        parts += ["<h3>Mid-level against classification</h3>",
                  f"<img alt='mid-level against classification' src='{_png(figure)}'>"]
    return "\n".join(parts)


def sample_grid_figure(rounds: list[np.ndarray], caption: str) -> plt.Figure:
    """The ICN's pseudo-negatives, one panel per round (a class per row)."""
    fig, axes = plt.subplots(1, len(rounds), figsize=(2.2 * len(rounds), 4.4), squeeze=False)
    for index, (ax, grid) in enumerate(zip(axes[0], rounds)):
        ax.imshow(grid, interpolation="nearest")
        ax.set_title(f"round {index + 1}", fontsize=9)
        ax.axis("off")
    fig.suptitle(caption, fontsize=10)
    return fig


def _pct(mean: float, sd: float) -> str:
    return f"{100 * mean:.2f} ± {100 * sd:.2f}" if np.isfinite(sd) else f"{100 * mean:.2f}"


def _verdict_table(records: list[dict[str, Any]], *, with_layer: bool) -> str:
    rows = [{"dataset": v["dataset"], "model": v["arch"], **({"layer": v["layer"]} if with_layer else {}),
             "metric": v["metric"], "seeds": v["n_seeds"],
             "baseline error % (mean ± sd)": _pct(v["baseline_mean"], v["baseline_sd"]),
             "ICN error % (mean ± sd)": _pct(v["icn_mean"], v["icn_sd"]),
             "ICN − baseline, pp [95% CI]": f"{100 * v['diff_mean']:+.2f} [{100 * v['diff_low']:+.2f}, "
                                             f"{100 * v['diff_high']:+.2f}]",
             "paired t p": f"{v['p']:.3g}", f"Holm p (over {v['family_size']})": f"{v['p_holm']:.3g}",
             "verdict": v["verdict"]} for v in records]
    return pd.DataFrame(rows).to_html(index=False, escape=True)


def introspective_section(introspective: dict[str, Any] | None) -> str:
    """Baseline against introspective classifier (ICN): error table, per-round samples, verdicts."""
    if not introspective:
        return ""
    records = introspective["verdicts"]
    scratch = [v for v in records if v["experiment"] == "from_scratch"]
    probes = [v for v in records if v["experiment"] == "probe"]
    parts = ["<h2>Introspective classification (reclassification-by-synthesis)</h2>",
             "<p>Jin, Lazarow &amp; Tu (2017): each round, pseudo-negatives are drawn by Langevin dynamics on the "
             "input from the distribution exp(class score / T) that the current classifier defines (class score: "
             "logit of the class minus logit of 'pseudo-negative', a (K+1)-th output), and join the training set as "
             "negatives with hard labels. The baseline is the same "
             "network trained by the same code with zero rounds: same recipe, epochs over the real data, "
             "learning-rate schedule and seed. Errors are over the ID test split, each OOD set, and the test split "
             "under FGSM at each budget. The difference is paired by seed, with a 95% t interval and a paired t-test; "
             "<em>helped</em> or <em>hurt</em> means the t-test's p-value, Holm-adjusted over every comparison of "
             "the experiment (all datasets, models and metrics of the table), is below 0.05. FGSM is a single-step "
             "attack: an ICN "
             "that flattens the gradient of its class logits looks robust to it without being robust to stronger "
             "attacks, so read its rows as FGSM error only.</p>"]
    if scratch:
        parts.append("<h3>Trained from scratch: baseline against ICN</h3>")
        for dataset in sorted({v["dataset"] for v in scratch}):
            for arch in sorted({v["arch"] for v in scratch if v["dataset"] == dataset}):
                mine = [v for v in scratch if v["dataset"] == dataset and v["arch"] == arch]
                test = next((v for v in mine if v["metric"] == "test_error"), None)
                others = "; ".join(f"{v['metric']}: {v['verdict']}" for v in mine if v["metric"] != "test_error")
                headline = ("helped" if test and test["verdict"] == "helped" else "hurt" if test and
                            test["verdict"] == "hurt" else "made no clear difference")
                parts.append(f"<p><strong>{html.escape(dataset)}, {html.escape(arch)}: ICN {headline} on test error"
                             + (f" ({_pct(test['icn_mean'], test['icn_sd'])}% against "
                                f"{_pct(test['baseline_mean'], test['baseline_sd'])}%, {test['n_seeds']} seeds)"
                                if test else "") + f".</strong> {html.escape(others)}.</p>")
        parts += [_verdict_table(scratch, with_layer=False),
                  "<p>Training times (the ICN's include sampling) are in each job's log "
                  "(<code>logs/icn_compare/</code>), not in the results, so that a rerun writes the same bytes.</p>"]
    for entry in introspective.get("grids", []):
        caption = f"{entry['dataset']}, {entry['arch']}, seed {entry['seed']}: pseudo-negatives per round"
        if entry["rounds"]:
            parts += [f"<h3>{html.escape(caption)}</h3>",
                      f"<img alt='{html.escape(caption)}' src='{_png(sample_grid_figure(entry['rounds'], caption))}'>"]
    if probes:
        parts += ["<h3>Introspective probe on frozen features</h3>",
                  "<p>A head with K+1 outputs on standardised features; its pseudo-negatives are synthesised in "
                  "feature space and clamped to the training features' range. The plain probe is the same head "
                  "and optimiser with zero rounds. Both are read at the layer where the plain probe's mean "
                  "validation error is lowest.</p>", _verdict_table(probes, with_layer=True)]
    return "\n".join(parts)


def render_report(*, scores: pd.DataFrame, layer_order: dict[str, list[str]], config: dict[str, Any],
                  provenance: list[dict[str, Any]], title: str = "zooprobe report",
                  introspective: dict[str, Any] | None = None) -> str:
    """Render the whole report as one HTML string.

    Args:
        scores: the tidy score table.
        layer_order: model -> its layers input to output; key ``__id__`` lists ID benchmarks.
        config: the params the run used.
        provenance: one record per probe result (model, weights hash, layers, pooling, ...).
        title: page title.
        introspective: the ICN summary (verdicts) with its sample ``grids``, if the run has one.

    Returns:
        A self-contained HTML document.
    """
    figures = {
        "Ranking agreement: Kendall tau with both intervals": _png(agreement_heatmap(scores)),
        "Ranks across benchmarks": _png(bump_chart(scores)),
        "Layer-wise ID and OOD accuracy": _png(layer_curves(scores, layer_order)),
    }
    prov = pd.DataFrame(provenance)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px}"
        "th{background:#f3f3f3}img{max-width:100%}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}"
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Does a model's ranking hold up? Each model is scored by a linear probe at the layer chosen on the "
        "in-distribution validation split. A model's score has a 95% percentile bootstrap CI over test examples; "
        "rank correlations have two intervals, described below.</p>",
        "<h2>Scores at the selected layer [95% CI] (#rank)</h2>", summary_table(scores).to_html(escape=True),
        "<h2>Ranking agreement between benchmarks</h2>",
        f"<p>Kendall tau-b and Spearman rho of the unit scores for every pair of benchmarks. {INTERVALS_SENTENCE} "
        f"{permutation_sentence()}</p>", agreement_table(scores).to_html(escape=True),
    ]
    for caption, uri in figures.items():
        parts += [f"<h2>{html.escape(caption)}</h2>", f"<img alt='{html.escape(caption)}' src='{uri}'>"]
    parts.append(head_section(scores))
    parts.append(seed_section(scores))
    parts.append(imagenot_section(scores, config.get("sweep")))
    parts.append(tunnel_section(scores))
    parts.append(variable_section(scores))
    parts.append(alignment_section(scores, layer_order.get("__alignment__", []), layer_order.get("__id__", [])))
    parts.append(dense_section(scores, layer_order.get("__dense__", []), layer_order.get("__id__", [])))
    parts.append(introspective_section(introspective))
    parts += [
        "<h2>What was run</h2><h3>Provenance</h3>", prov.to_html(index=False, escape=True),
        "<h3>Params</h3>", f"<pre>{html.escape(json.dumps(config, indent=2, sort_keys=True))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)
