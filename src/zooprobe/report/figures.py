"""The report's figures (matplotlib, Agg backend) and their embedding as PNG data URIs."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # No display on cluster nodes or CI.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from zooprobe.analysis import stats  # noqa: E402
from zooprobe.analysis.agreement import agreement_matrix  # noqa: E402


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


def layer_curves(scores: pd.DataFrame, layer_order: dict[str, list[str]], id_benchmarks: list[str]) -> plt.Figure:
    """Probe accuracy per layer for every model: ID solid, OOD dashed, with 95% CI bands.

    Args:
        scores: the tidy score table.
        layer_order: model -> its layers, input to output.
        id_benchmarks: the in-distribution benchmarks (drawn solid).

    Returns:
        One panel per model.
    """
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
            style = "-" if benchmark in id_benchmarks else "--"
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


def alignment_layer_curves(scores: pd.DataFrame, benchmarks: list[str]) -> plt.Figure:
    """RSA per layer for every model on each similarity benchmark (x: relative depth), with 95% CI bands.

    Where per-subject RDMs exist the curve is the subject-mean RSA, under its noise-ceiling band."""
    rsa = curve_rsa(scores, benchmarks)
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


def sample_grid_figure(rounds: list[np.ndarray], caption: str) -> plt.Figure:
    """The ICN's pseudo-negatives, one panel per round (a class per row)."""
    fig, axes = plt.subplots(1, len(rounds), figsize=(2.2 * len(rounds), 4.4), squeeze=False)
    for index, (ax, grid) in enumerate(zip(axes[0], rounds)):
        ax.imshow(grid, interpolation="nearest")
        ax.set_title(f"round {index + 1}", fontsize=9)
        ax.axis("off")
    fig.suptitle(caption, fontsize=10)
    return fig
