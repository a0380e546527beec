"""Report section on introspective classification (ICN): the error tables, verdicts and sample grids."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from zooprobe.analysis import verdicts
from zooprobe.report.blocks import Section, table_html
from zooprobe.report.figures import png_data_uri, sample_grid_figure


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
    return table_html(pd.DataFrame(rows), index=False)


def introspective_section(introspective: dict[str, Any] | None) -> Section | None:
    """Baseline against introspective classifier (ICN): error table, per-round samples, verdicts."""
    if not introspective:
        return None
    records = introspective["verdicts"]
    scratch = [v for v in records if v["experiment"] == "from_scratch"]
    probes = [v for v in records if v["experiment"] == "probe"]
    parts = ["<p>Jin, Lazarow &amp; Tu (2017): each round, pseudo-negatives are drawn by Langevin dynamics on the "
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
        for record in verdicts.icn_headlines(records):
            test = record["test"]
            others = "; ".join(f"{metric}: {verdict}" for metric, verdict in record["others"])
            parts.append(f"<p><strong>{html.escape(record['dataset'])}, {html.escape(record['arch'])}: ICN "
                         f"{record['headline']} on test error"
                         + (f" ({_pct(test['icn_mean'], test['icn_sd'])}% against "
                            f"{_pct(test['baseline_mean'], test['baseline_sd'])}%, {test['n_seeds']} seeds)"
                            if test else "") + f".</strong> {html.escape(others)}.</p>")
        parts += [_verdict_table(scratch, with_layer=False),
                  "<p>Training times (the ICN's include sampling) are in each job's log "
                  "(<code>logs/icn_compare/</code>), not in the results, so that a rerun writes the same bytes.</p>"]
    for entry in introspective.get("grids", []):
        caption = f"{entry['dataset']}, {entry['arch']}, seed {entry['seed']}: pseudo-negatives per round"
        if entry["rounds"]:
            uri = png_data_uri(sample_grid_figure(entry["rounds"], caption))
            parts += [f"<h3>{html.escape(caption)}</h3>", f"<img alt='{html.escape(caption)}' src='{uri}'>"]
    if probes:
        parts += ["<h3>Introspective probe on frozen features</h3>",
                  "<p>A head with K+1 outputs on standardised features; its pseudo-negatives are synthesised in "
                  "feature space and clamped to the training features' range. The plain probe is the same head "
                  "and optimiser with zero rounds. Both are read at the layer where the plain probe's mean "
                  "validation error is lowest.</p>", _verdict_table(probes, with_layer=True)]
    return Section("Introspective classification (reclassification-by-synthesis)", Markup("\n".join(parts)),
                   anchor="introspective")
