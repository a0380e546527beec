"""The report's figures (matplotlib, Agg backend) and their embedding as PNG data URIs.

Every figure that shows models takes ``colours``, one colour per model from :func:`model_colours`,
so that a model looks the same in every figure of a report.
"""

from __future__ import annotations

import base64
import io
import textwrap
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # No display on cluster nodes or CI.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from zooprobe.analysis import stats  # noqa: E402
from zooprobe.analysis.agreement import agreement_matrix  # noqa: E402
from zooprobe.analysis.concordance import RankConcordance  # noqa: E402
from zooprobe.analysis.pairs import pair_matrices  # noqa: E402
from zooprobe.analysis.robustness import RobustnessFit, clip_bounds, link_functions  # noqa: E402
from zooprobe.report.blocks import id_first  # noqa: E402

# Okabe & Ito (2008), safe for the common colour-vision deficiencies (less their yellow, which thin lines
# on white do not show), then Paul Tol's "muted" set for larger zoos; past both, colours repeat and the
# markers of MARKERS tell models apart.
COLOUR_BLIND_SAFE = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000",
                     "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255",
                     "#AA4499")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
# Fits, bands and group bars are not models, so they take a grey no model is given.
NOT_A_MODEL = "#666666"
Style = Mapping[str, tuple[str, str]]


def model_colours(models: Sequence[str]) -> dict[str, tuple[str, str]]:
    """One (colour, marker) per model, in sorted name order, for every figure of a report.

    Args:
        models: the models of the report, in any order (duplicates are ignored).

    Returns:
        model -> (hex colour, matplotlib marker). Sorting first makes the style of a model depend
        only on the set of models, not on the order a table lists them in.
    """
    names = sorted(set(models))
    palette = len(COLOUR_BLIND_SAFE)
    return {name: (COLOUR_BLIND_SAFE[i % palette], MARKERS[(i // palette) % len(MARKERS)])
            for i, name in enumerate(names)}


def _style(colours: Style | None, model: str) -> tuple[str, str]:
    return (colours or {}).get(model, ("#555555", "o"))


def png_data_uri(fig: plt.Figure) -> str:
    """Encode a figure as an embeddable PNG and close it.

    Args:
        fig: the figure; closed afterwards, so that a long report does not hold every figure open.

    Returns:
        A ``data:image/png;base64,...`` URI for an ``<img src>``.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    # A palette of 256 colours: a plot of a few flat colours and anti-aliased text looks the same and
    # weighs about a third, which keeps a report of many figures within a few MB.
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    buffer = io.BytesIO()
    image.save(buffer, format="png", optimize=True)
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


def bump_chart(scores: pd.DataFrame, colours: Style | None = None) -> plt.Figure:
    """Each model's rank on each benchmark, joined by lines: crossings are ranking changes."""
    ranks = scores[scores.metric == "rank"].pivot(index="model", columns="benchmark", values="value")
    order = list(dict.fromkeys(scores[scores.metric == "rank"].benchmark))
    # Only models ranked on every benchmark (prediction tables, say, are ranked on one).
    ranks = ranks[order].dropna()
    fig, ax = plt.subplots(figsize=(2.4 + 1.6 * len(order), 0.9 + 0.45 * len(ranks)))
    for model, row in ranks.iterrows():
        colour, marker = _style(colours, model)
        ax.plot(range(len(order)), row.values, marker=marker, linewidth=2, color=colour, label=model)
        ax.annotate(model, (len(order) - 1, row.values[-1]), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=8, color=colour)
    ax.set_xticks(range(len(order)), order, rotation=20, ha="right")
    ax.set_ylim(len(ranks) + 0.5, 0.5)
    ax.set_yticks(range(1, len(ranks) + 1))
    ax.set_ylabel("rank (1 = best)")
    ax.set_title("Model ranks across benchmarks (point estimates)")
    ax.grid(alpha=0.3)
    return fig


def score_plot(scores: pd.DataFrame, benchmarks: Sequence[str], colours: Style | None = None) -> plt.Figure:
    """Per benchmark, every model's score at its selected layer with its 95% CI, best model on top.

    Args:
        scores: the tidy score table (rows of metric ``score``).
        benchmarks: the benchmarks to draw, one panel each.
        colours: :func:`model_colours`.

    Returns:
        A grid of panels, three per row.
    """
    chosen = scores[(scores.metric == "score") & scores.benchmark.isin(benchmarks)]
    names = [b for b in benchmarks if b in set(chosen.benchmark)]
    columns = min(3, max(1, len(names)))
    rows = int(np.ceil(len(names) / columns))
    most = max((int((chosen.benchmark == b).sum()) for b in names), default=1)
    fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, (0.8 + 0.28 * most) * rows), squeeze=False)
    for ax, benchmark in zip(axes.flat, names):
        part = chosen[chosen.benchmark == benchmark].sort_values("value")
        y = np.arange(len(part))
        for position, row in zip(y, part.itertuples()):
            colour, marker = _style(colours, row.model)
            ax.errorbar(row.value, position, xerr=[[row.value - row.ci_low], [row.ci_high - row.value]],
                        fmt=marker, color=colour, capsize=3)
        ax.set_yticks(y, part.model, fontsize=8)
        ax.set_title(benchmark, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    fig.suptitle("Score at the selected layer, 95% CI over test examples (best on top)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return fig


def layer_curves(scores: pd.DataFrame, layer_order: dict[str, list[str]], id_benchmarks: list[str],
                 colours: Style | None = None) -> plt.Figure:
    """Probe accuracy per layer: one panel per benchmark, one line per model, with 95% CI bands.

    Args:
        scores: the tidy score table.
        layer_order: model -> its layers, input to output.
        id_benchmarks: the in-distribution benchmarks (their panels come first).
        colours: :func:`model_colours`.

    Returns:
        Panels of accuracy against relative depth (first to last probed layer), since models differ in
        their number of layers; the large marker is the layer each model's score is read at.
    """
    accuracy = scores[scores.metric == "accuracy"]
    found = list(dict.fromkeys(accuracy.benchmark))
    benchmarks = id_first(found, id_benchmarks)
    selected = scores[scores.metric == "score"].set_index(["benchmark", "model"]).layer
    columns = min(3, max(1, len(benchmarks)))
    rows = int(np.ceil(len(benchmarks) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.4 * rows), squeeze=False, sharey=True)
    for ax, benchmark in zip(axes.flat, benchmarks):
        for model in sorted(accuracy[accuracy.benchmark == benchmark].model.unique()):
            part = accuracy[(accuracy.model == model) & (accuracy.benchmark == benchmark)].set_index("layer")
            part = part.reindex([layer for layer in layer_order.get(model, part.index) if layer in part.index])
            if part.empty:
                continue
            colour, marker = _style(colours, model)
            x = np.linspace(0, 1, len(part)) if len(part) > 1 else np.zeros(1)
            ax.plot(x, part.value, "-", color=colour, label=model, linewidth=1.6)
            ax.fill_between(x, part.ci_low, part.ci_high, color=colour, alpha=0.12)
            chosen = selected.get((benchmark, model))
            if chosen in part.index:
                at = list(part.index).index(chosen)
                ax.plot(x[at], part.value.iloc[at], marker=marker, markersize=8, color=colour,
                        markeredgecolor="black", linestyle="none")
        kind = "in-distribution" if benchmark in id_benchmarks else "OOD"
        ax.set_title(f"{benchmark} ({kind})", fontsize=9)
        ax.set_xlabel("relative depth (first to last probed layer)", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(benchmarks):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("linear-probe accuracy")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Layer-wise accuracy with 95% CI bands (marker: the layer chosen on the ID val split)", fontsize=10)
    # Leave a fixed half inch above the panels for the title, whatever the number of rows.
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return fig


def benchmark_scatter(scores: pd.DataFrame, x_benchmark: str, y_benchmark: str, *, colours: Style | None = None,
                      ax: plt.Axes | None = None, y_label: str | None = None) -> plt.Figure:
    """Any two benchmarks' scores against each other, one point per model with both 95% CIs.

    Args:
        scores: the tidy score table (rows of metric ``score``).
        x_benchmark: benchmark on the x axis.
        y_benchmark: benchmark on the y axis.
        colours: :func:`model_colours`.
        ax: draw into this axis (else a new figure).
        y_label: the y axis label (default: the benchmark's name).

    Returns:
        The figure drawn into. The least-squares line is drawn with 3 or more models; the title gives
        the Spearman rho over models with its population interval where the analysis computed one.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 4.0))
    chosen = scores[scores.metric == "score"]
    x_rows = chosen[chosen.benchmark == x_benchmark].set_index("model")
    y_rows = chosen[chosen.benchmark == y_benchmark].set_index("model")
    models = [m for m in x_rows.index if m in y_rows.index]
    for model in models:
        colour, marker = _style(colours, model)
        xr, yr = x_rows.loc[model], y_rows.loc[model]
        ax.errorbar(xr.value, yr.value, xerr=[[xr.value - xr.ci_low], [xr.ci_high - xr.value]],
                    yerr=[[yr.value - yr.ci_low], [yr.ci_high - yr.value]], fmt=marker, color=colour,
                    capsize=2, zorder=3)
        ax.annotate(model, (xr.value, yr.value), xytext=(3, 3), textcoords="offset points", fontsize=7, color=colour)
    title = y_benchmark
    if len(models) >= 3:
        x_values, y_values = x_rows.loc[models, "value"].to_numpy(), y_rows.loc[models, "value"].to_numpy()
        slope, intercept, r2 = stats.linear_fit(x_values, y_values)
        line = np.linspace(x_values.min(), x_values.max(), 10)
        ax.plot(line, slope * line + intercept, color="#555555", linestyle="--",
                label=f"least squares: slope {slope:.2f}, R² {r2:.2f}")
        ax.legend(fontsize=7)
    rho = scores[scores.benchmark.isin([f"{x_benchmark}~{y_benchmark}", f"{y_benchmark}~{x_benchmark}"])
                 & (scores.metric == "spearman_rho_population")]
    if not rho.empty:
        r = rho.iloc[0]
        title += f"\nSpearman {r.value:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] over models, n={int(r.n)}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"{x_benchmark} score")
    ax.set_ylabel(y_label or f"{y_benchmark} score")
    ax.grid(alpha=0.3)
    return ax.figure


def improvement_scatter(scores: pd.DataFrame, a: str, b: str, colours: Style | None = None) -> plt.Figure:
    """Each architecture's % improvement over the baseline on dataset A against dataset B, with the fit line."""
    improvement = scores[scores.metric == "relative_improvement"].pivot(index="model", columns="benchmark",
                                                                         values="value")
    pair = scores[(scores.benchmark == f"{a}~{b}")].set_index("metric").value
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for model, row in improvement.iterrows():
        colour, marker = _style(colours, model)
        ax.scatter(row[a], row[b], s=40, zorder=3, color=colour, marker=marker)
        ax.annotate(model, (row[a], row[b]), xytext=(4, 3), textcoords="offset points", fontsize=8, color=colour)
    low, high = np.nanmin(improvement[[a, b]].to_numpy()), np.nanmax(improvement[[a, b]].to_numpy())
    x = np.linspace(low, high, 20)
    ax.plot(x, x, ":", color="grey", label="y = x")
    if np.isfinite(pair.get("improvement_slope", np.nan)):
        ax.plot(x, pair["improvement_slope"] * x + pair["improvement_intercept"], "--", color="#555555",
                label=f"fit: slope {pair['improvement_slope']:.2f}, R² {pair['improvement_r2']:.2f}")
    ax.set_xlabel(f"% improvement over baseline on {a}")
    ax.set_ylabel(f"% improvement over baseline on {b}")
    ax.set_title(f"ImageNot: improvements on {a} vs {b}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


ALIGNMENT_SCORE_NAMES = {"rsa_subject_mean": "RSA, mean over subjects (Spearman)", "rsa": "RSA (Spearman)",
                         "odd_one_out_accuracy": "odd-one-out accuracy",
                         "neg_cross_entropy": "minus cross-entropy to human labels", "delta1": "depth delta1",
                         "neg_mean_angle": "minus mean normal error (deg)", "iou": "figure-ground IoU"}


def curve_rsa(scores: pd.DataFrame, benchmarks: list[str]) -> pd.DataFrame:
    """Per-layer RSA rows to plot: the subject-mean RSA where a benchmark has one (the quantity its noise
    ceiling bounds), else the RSA with the group similarity."""
    rsa = scores[scores.metric.isin(["rsa", "rsa_subject_mean"]) & scores.benchmark.isin(benchmarks)]
    with_subjects = set(rsa[rsa.metric == "rsa_subject_mean"].benchmark)
    return rsa[(rsa.metric == "rsa_subject_mean") | ~rsa.benchmark.isin(with_subjects)]


def alignment_layer_curves(scores: pd.DataFrame, benchmarks: list[str], colours: Style | None = None) -> plt.Figure:
    """RSA per layer for every model on each similarity benchmark (x: relative depth), with 95% CI bands.

    Where per-subject RDMs exist the curve is the subject-mean RSA, under its noise-ceiling band."""
    rsa = curve_rsa(scores, benchmarks)
    names = list(dict.fromkeys(rsa.benchmark))
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 3.6), squeeze=False, sharey=True)
    models = sorted(rsa.model.unique())
    for ax, benchmark in zip(axes.flat, names):
        for model in models:
            part = rsa[(rsa.benchmark == benchmark) & (rsa.model == model)]
            if part.empty:
                continue
            x = np.linspace(0, 1, len(part)) if len(part) > 1 else np.zeros(1)
            colour, marker = _style(colours, model)
            ax.plot(x, part.value, marker=marker, markersize=3, color=colour, label=model)
            ax.fill_between(x, part.ci_low, part.ci_high, color=colour, alpha=0.12)
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
                               title: str = "Accuracy against human alignment",
                               colours: Style | None = None) -> plt.Figure:
    """Each alignment (or dense) score against the probe accuracy, across models: :func:`benchmark_scatter` panels."""
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(4.2 * len(benchmarks), 3.9), squeeze=False)
    for ax, benchmark in zip(axes.flat, benchmarks):
        benchmark_scatter(scores, accuracy_benchmark, benchmark, colours=colours, ax=ax,
                          y_label=ALIGNMENT_SCORE_NAMES.get(_score_metric(scores, benchmark), "alignment"))
        ax.set_xlabel(f"{accuracy_benchmark} probe accuracy")
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


def sample_grid_figure(rounds: list[np.ndarray], caption: str) -> plt.Figure:
    """The ICN's pseudo-negatives, one panel per round (a class per row)."""
    fig, axes = plt.subplots(1, len(rounds), figsize=(2.2 * len(rounds), 4.4), squeeze=False)
    for index, (ax, grid) in enumerate(zip(axes[0], rounds)):
        ax.imshow(grid, interpolation="nearest")
        ax.set_title(f"round {index + 1}", fontsize=9)
        ax.axis("off")
    fig.suptitle(caption, fontsize=10)
    return fig


# Accuracies marked on a probit or logit axis.
LINKED_ACCURACY_TICKS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def effective_robustness_scatter(fit: RobustnessFit, *, id_name: str, ood_name: str,
                                 labelled: int = 5) -> plt.Figure:
    """OOD against ID accuracy on link-scaled axes (ticks in accuracy), with the fit, its 95% band and y = x.

    Args:
        fit: from :func:`zooprobe.analysis.robustness.effective_robustness`.
        id_name: the ID benchmark, for the x label.
        ood_name: the OOD benchmark, for the y label.
        labelled: how many of the most and of the least effectively robust models get their name.

    Returns:
        The figure; the band is the pointwise percentile interval of the bootstrap lines (what they
        redrew is in the title).
    """
    forward, _ = link_functions(fit.link)
    low, high = clip_bounds(None)
    table = fit.table
    x = forward(np.clip(table.id_accuracy.to_numpy(), low, high))
    y = forward(np.clip(table.ood_accuracy.to_numpy(), low, high))
    fig, ax = plt.subplots(figsize=(6.0, 5.2))
    points_er = 100 * table.effective_robustness.to_numpy()
    reach = max(float(np.max(np.abs(points_er))), 1e-9)  # a colour scale centred on 0: white is on the line
    points = ax.scatter(x, y, s=18, c=points_er, cmap="coolwarm_r", vmin=-reach, vmax=reach, zorder=3,
                        edgecolors="black", linewidths=0.3)
    fig.colorbar(points, ax=ax, shrink=0.8, label="effective robustness (accuracy points)")
    span = np.linspace(min(x.min(), y.min()) - 0.1, max(x.max(), y.max()) + 0.1, 100)
    ax.plot(span, span, ":", color="grey", label="y = x (no drop)")
    slope, intercept = fit.slope_ci_over_models, fit.intercept_ci_over_models
    ax.plot(span, intercept.value + slope.value * span, "-", color=NOT_A_MODEL,
            label=f"fit: slope {slope.value:.2f} [{slope.ci_low:.2f}, {slope.ci_high:.2f}], "
                  f"R² {fit.r2_ci_over_models.value:.3f}")
    if len(fit.fit_replicates):
        lines = fit.fit_replicates[:, [1]] + fit.fit_replicates[:, [0]] * span[None]
        band = np.array([stats.percentile_interval(column, fit.level) for column in lines.T])
        ax.fill_between(span, band[:, 0], band[:, 1], color=NOT_A_MODEL, alpha=0.2, linewidth=0)
    named = pd.concat([fit.most_robust(labelled), fit.least_robust(labelled)]).drop_duplicates("model")
    right = span[0] + 0.7 * (span[-1] - span[0])
    for row in named.itertuples():
        # Labels of points near the right edge go to their left, inside the axes.
        leftward = x[row.Index] > right
        ax.annotate(f"{row.model} ({100 * row.effective_robustness:+.1f})", (x[row.Index], y[row.Index]),
                    xytext=(-4 if leftward else 4, 2), textcoords="offset points", fontsize=6,
                    ha="right" if leftward else "left")
    ticks = [t for t in LINKED_ACCURACY_TICKS if span[0] <= forward(t) <= span[-1]]
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks([forward(t) for t in ticks], [f"{100 * t:g}" for t in ticks])
    ax.set_xlim(span[0], span[-1])
    ax.set_ylim(min(y.min(), x.min()) - 0.1, max(y.max(), x.max()) + 0.1)
    ax.set_xlabel(f"{id_name} accuracy (%, {fit.link} scale)")
    ax.set_ylabel(f"{ood_name} accuracy (%, {fit.link} scale)")
    band = textwrap.fill(f"band: {int(round(100 * fit.level))}% over {fit.resampled}", 95)
    ax.set_title(f"Accuracy on the line: {fit.n_models} models, labels give effective robustness (points)\n{band}",
                 fontsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return fig


def critical_difference_diagram(result: RankConcordance, *, max_models: int = 40) -> plt.Figure:
    """Demšar's critical-difference diagram: models on a mean-rank axis (1 = best, left), a thick bar
    joining each group whose mean ranks differ by less than the Nemenyi CD, and the CD as a scale bar.

    Args:
        result: from :func:`zooprobe.analysis.concordance.rank_concordance`.
        max_models: refuse more models than this: their names would not fit (draw a subset's
            diagram from a :func:`rank_concordance` of that subset instead).

    Returns:
        The figure.

    Raises:
        ValueError: more than ``max_models`` models.
    """
    ranks = result.mean_ranks
    k = len(ranks)
    if k > max_models:
        raise ValueError(f"{k} models are too many for a readable diagram (max_models={max_models}); "
                         "pass a larger max_models or compute the concordance of fewer models")
    half = (k + 1) // 2
    fig, ax = plt.subplots(figsize=(7.5, 1.6 + 0.28 * half + 0.12 * len(result.groups)))
    ax.set_xlim(0.5, k + 0.5)  # best on the left (Demšar draws it on the right); names sit outside the axis
    ax.set_ylim(-(half + 1.5), 2.0 + 0.25 * len(result.groups))
    ax.axhline(0, color="black", linewidth=1)
    for tick in range(1, k + 1):
        ax.plot([tick, tick], [0, 0.15], color="black", linewidth=0.8)
        ax.text(tick, 0.3, str(tick), ha="center", va="bottom", fontsize=7)
    for i, (model, rank) in enumerate(ranks.items()):
        left = i < half
        row = -(i + 1) if left else -(k - i)
        edge = 0.5 if left else k + 0.5
        ax.plot([rank, rank, edge], [0, row, row], color="grey", linewidth=0.7)
        ax.text(edge - 0.1 if left else edge + 0.1, row, f"{model} ({rank:.2f})", ha="right" if left else "left",
                va="center", fontsize=7)
    for level, group in enumerate(result.groups):
        members = ranks[list(group)]
        height = 0.9 + 0.25 * level
        ax.plot([members.min(), members.max()], [height, height], color=NOT_A_MODEL, linewidth=3, solid_capstyle="round")
    cd = result.critical_difference
    ax.plot([1, 1 + cd], [1.0 + 0.25 * len(result.groups)] * 2, color="black", linewidth=1.5)
    ax.text(1 + cd / 2, 1.1 + 0.25 * len(result.groups), f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=7)
    ax.axis("off")
    w = result.kendall_w_ci_over_models
    ax.set_title(f"Mean rank over {len(result.benchmarks)} benchmarks; bars: not significantly different "
                 f"(Nemenyi, alpha {result.alpha:g})\nFriedman chi2 {result.friedman_chi2:.1f}, p = "
                 f"{result.friedman_p:.2g}; Kendall's W {w.value:.2f} [{w.ci_low:.2f}, {w.ci_high:.2f}] "
                 f"over {w.resampled or 'nothing'}", fontsize=8)
    return fig


def error_consistency_heatmaps(scores: pd.DataFrame, benchmarks: Sequence[str], *, source: str,
                               max_models: int = 30, columns: int = 3) -> plt.Figure:
    """Error consistency (Cohen's kappa) of every pair of models, one panel per benchmark.

    Args:
        scores: the score table with ``error_consistency`` rows (model ``a~b``).
        benchmarks: the panels, in order.
        source: ``selected`` (the probe at the selected layer) or ``head`` (own heads).
        max_models: refuse larger matrices, whose cells would not be legible.
        columns: panels per row.

    Returns:
        The figure; each cell prints kappa and its 95% interval over test examples.

    Raises:
        ValueError: a benchmark without rows for ``source``, or more than ``max_models`` models.
    """
    rows = scores[(scores.metric == "error_consistency") & (scores.layer == source)]
    panels = []
    for benchmark in benchmarks:
        part = rows[rows.benchmark == benchmark]
        if part.empty:
            raise ValueError(f"no error_consistency rows for benchmark {benchmark!r} and source {source!r}; "
                             f"benchmarks with rows: {sorted(set(rows.benchmark))}")
        models, matrices = pair_matrices(part, "model", ("value", "ci_low", "ci_high"))
        if len(models) > max_models:
            raise ValueError(f"{len(models)} models are too many for a legible matrix (max_models={max_models})")
        panels.append((benchmark, models, matrices))
    size = max(len(models) for _, models, _ in panels)
    width = min(columns, len(panels))
    rows_of_panels = -(-len(panels) // width)
    fig, axes = plt.subplots(rows_of_panels, width, figsize=(1.0 + (0.95 * size + 1.6) * width,
                                                              0.8 + (0.8 * size + 1.4) * rows_of_panels),
                             squeeze=False, constrained_layout=True)
    image = None
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    for ax, (benchmark, models, matrices) in zip(axes.flat, panels):
        k = len(models)
        value, low, high = matrices["value"], matrices["ci_low"], matrices["ci_high"]
        image = ax.imshow(value, vmin=-1, vmax=1, cmap="RdBu_r")
        for i in range(k):
            for j in range(k):
                if i != j:
                    text = "n/a" if not np.isfinite(value[i, j]) else f"{value[i, j]:.2f}\n[{low[i, j]:.2f}, {high[i, j]:.2f}]"
                    ax.text(j, i, text, ha="center", va="center", fontsize=6,
                            color="white" if np.isfinite(value[i, j]) and abs(value[i, j]) > 0.6 else "black")
        ax.set_xticks(range(k), models, rotation=40, ha="right", fontsize=7)
        ax.set_yticks(range(k), models, fontsize=7)
        ax.set_title(benchmark, fontsize=9)
    fig.suptitle(f"Error consistency, Cohen's kappa ({'own heads' if source == 'head' else 'probes at the selected layer'}"
                 "): 0 = errors as independent as the accuracies allow; [95% CI over test examples]", fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6)
    return fig


def similarity_heatmaps(panels: Sequence[tuple[str, Sequence[str], np.ndarray]], *, title: str,
                        columns: int = 4) -> plt.Figure:
    """Symmetric similarity matrices (CKA), one panel each, in rows of ``columns`` panels.

    Args:
        panels: (panel title, names in row order, (K, K) matrix with 1 on the diagonal) per panel.
        title: the figure's title.
        columns: panels per row.

    Returns:
        The figure; each cell prints its value (no interval: CKA is given as a point estimate).
    """
    rows = -(-len(panels) // columns)
    size = max(len(names) for _, names, _ in panels)
    width = min(columns, len(panels))
    fig, axes = plt.subplots(rows, width, figsize=(1.2 + width * (0.5 * size + 1.4), 0.8 + rows * (0.5 * size + 1.3)),
                             squeeze=False, constrained_layout=True)
    image = None
    for ax, (name, names, matrix) in zip(axes.flat, panels):
        matrix = np.asarray(matrix, dtype=float)
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        if len(names) <= 12:
            for i in range(len(names)):
                for j in range(len(names)):
                    if i != j:
                        ax.text(j, i, "n/a" if not np.isfinite(matrix[i, j]) else f"{matrix[i, j]:.2f}", ha="center",
                                va="center", fontsize=6, color="black" if matrix[i, j] > 0.6 else "white")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=6)
        ax.set_yticks(range(len(names)), names, fontsize=6)
        ax.set_title(name, fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.7)
    return fig
