"""Report sections on human alignment (RSA, odd-one-out, human labels) and mid-level dense probes."""

from __future__ import annotations

import html

import pandas as pd
from markupsafe import Markup

from zooprobe.analysis import verdicts
from zooprobe.report.blocks import Section, table_html
from zooprobe.report.figures import Style, accuracy_alignment_scatter, alignment_layer_curves, png_data_uri
from zooprobe.report.sections import estimate_cell


def alignment_section(scores: pd.DataFrame, benchmarks: list[str], accuracy_benchmarks: list[str],
                      colours: Style | None = None) -> Section | None:
    """Human alignment: RSA per layer with CIs, noise ceilings, odd-one-out, and human label agreement."""
    if not benchmarks:
        return None
    parts = ["<p>RSA is the Spearman correlation between the model's pairwise cosine or correlation similarity "
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
                f"<td>{html.escape(str(r.layer))}<br>{estimate_cell(r)}</td>" for r in rows.itertuples()))
                for name, rows in lines]
            parts.append(f"<table>{''.join(cells)}</table>")
    # Per layer, or (layer best_cv) cross-validated at the layers that the ranking score chose.
    odd = scores[scores.metric.isin(["odd_one_out_accuracy", "odd_one_out_accuracy_cv"])
                 & scores.benchmark.isin(benchmarks)]
    selected = scores[(scores.metric == "score") & scores.benchmark.isin(benchmarks)].set_index(["benchmark", "model"])
    if not odd.empty:
        odd = odd[[(b, m) in selected.index and selected.loc[(b, m), "layer"] == layer
                   for b, m, layer in zip(odd.benchmark, odd.model, odd.layer)]]
        table = odd.assign(cell=[estimate_cell(r) for r in odd.itertuples()]).pivot(index="model", columns="benchmark",
                                                                              values="cell")
        parts += ["<h3>Odd-one-out accuracy at the selected layer [95% CI] (chance 0.333)</h3>",
                  table_html(table)]
    labels = scores[scores.metric.isin(["cross_entropy", "kl", "entropy_spearman"]) & scores.benchmark.isin(benchmarks)]
    for benchmark in dict.fromkeys(labels.benchmark):
        part = labels[labels.benchmark == benchmark]
        table = part.assign(cell=[estimate_cell(r) for r in part.itertuples()]).pivot(index="model", columns="metric",
                                                                                values="cell")
        order = part[part.metric == "cross_entropy"].sort_values("value").model
        parts += [f"<h3>{html.escape(benchmark)}: agreement with human label distributions [95% CI]</h3>",
                  "<p>Per image, cross-entropy -sum h log p and KL(h || p) between the human distribution h and "
                  "the model's softmax p (lower is better), averaged over images; and the Spearman correlation of "
                  "per-image entropies. Rows include published prediction tables.</p>",
                  table_html(table.loc[list(order)])]
    if not rsa.empty:
        parts += ["<h3>Alignment per layer</h3>",
                  f"<img alt='alignment per layer' src='{png_data_uri(alignment_layer_curves(scores, benchmarks, colours))}'>"]
    if accuracy_benchmarks:
        parts += ["<h3>Accuracy against alignment</h3>",
                  f"<img alt='accuracy against alignment' "
                  f"src='{png_data_uri(accuracy_alignment_scatter(scores, accuracy_benchmarks[0], benchmarks, colours=colours))}'>"]
    return Section("Human alignment", Markup("\n".join(parts)), anchor="alignment")


DENSE_TABLE_METRICS = {"depth": ("delta1", "depth delta1 (higher is better)"),
                       "normals": ("mean_angle", "mean angular error of normals in degrees (lower is better)"),
                       "figure_ground": ("iou", "figure-ground IoU (higher is better)")}


def dense_section(scores: pd.DataFrame, benchmarks: list[str], accuracy_benchmarks: list[str],
                  colours: Style | None = None) -> Section | None:
    """Dense probes: per-layer depth delta1, normal error and IoU, trained against random init, and
    mid-level against classification."""
    if not benchmarks:
        return None
    parts = ["<p>A linear (1x1 convolution) or small convolutional head on frozen spatial features, one per "
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
            cells = " ".join(f"<td>{html.escape(str(r.layer))}<br>{estimate_cell(r)}</td>" for r in rows.itertuples())
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
                                            title="Mid-level against classification", colours=colours)
        parts += ["<h3>Mid-level against classification</h3>",
                  f"<img alt='mid-level against classification' src='{png_data_uri(figure)}'>"]
    return Section("Mid-level vision: dense probes (Chen, Marks & Cheng 2024)", Markup("\n".join(parts)),
                   anchor="dense")
