"""A self-contained HTML report: figures are embedded PNGs, tables are plain HTML.

The report only formats: every comparison it puts into words comes as a record from
:mod:`zooprobe.analysis.verdicts`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from zooprobe.io.atomic import atomic_output
from zooprobe.report.alignment import alignment_section, dense_section
from zooprobe.report.figures import agreement_heatmap, bump_chart, layer_curves, png_data_uri
from zooprobe.report.icn import introspective_section
from zooprobe.report.sections import (INTERVALS_SENTENCE, agreement_table, head_section, imagenot_section,
                                      permutation_sentence, seed_section, summary_table, tunnel_section,
                                      variable_section)

DEFAULT_TITLE = "zooprobe report"


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report shows.

    Attributes:
        scores: the tidy score table (``zooprobe analyse``).
        layer_order: model -> its layers, input to output.
        id_benchmarks: the in-distribution benchmarks.
        alignment_benchmarks: the human-alignment benchmarks.
        dense_benchmarks: the dense-probe benchmarks.
        provenance: one record per probe result (model, weights hash, pooling, selected layer, ...).
        config: the params the run used.
        title: page title.
        introspective: the ICN summary (verdicts) with its sample ``grids``, if the run has one.
    """

    scores: pd.DataFrame
    layer_order: dict[str, list[str]]
    id_benchmarks: list[str]
    alignment_benchmarks: list[str]
    dense_benchmarks: list[str]
    provenance: list[dict[str, Any]]
    config: dict[str, Any]
    title: str = DEFAULT_TITLE
    introspective: dict[str, Any] | None = None


def read_icn_grids(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read icn-compare sample grids (npz), in the order given.

    Args:
        paths: grid files with ``dataset``, ``arch``, ``seed`` and one ``round_<i>`` image per round.

    Returns:
        One ``{"dataset", "arch", "seed", "rounds"}`` record per file, rounds in numeric order.
    """
    grids_read = []
    for path in paths:
        with np.load(path) as grids:
            rounds = sorted((k for k in grids.files if k.startswith("round_")), key=lambda k: int(k[6:]))
            grids_read.append({"dataset": str(grids["dataset"]), "arch": str(grids["arch"]),
                               "seed": int(grids["seed"]), "rounds": [grids[k] for k in rounds]})
    return grids_read


def read_report_inputs(*, scores_path: str | Path, summary_path: str | Path, config: dict[str, Any],
                       settings: dict[str, Any], icn_summary: Sequence[str | Path] = (),
                       icn_grids: Sequence[str | Path] = ()) -> ReportInputs:
    """Read what ``zooprobe analyse`` (and ``icn-table``, ``icn-compare``) wrote.

    Args:
        scores_path: the score table (CSV).
        summary_path: the analysis summary (JSON).
        config: the params the run used.
        settings: the ``report`` params (``title``).
        icn_summary: the icn-table summary, if the run has one (only the first is read).
        icn_grids: icn-compare sample grids to show (read only with a summary).

    Returns:
        The report's inputs.
    """
    summary = json.loads(Path(summary_path).read_text())
    introspective = None
    if icn_summary:
        introspective = dict(json.loads(Path(icn_summary[0]).read_text()), grids=read_icn_grids(icn_grids))
    return ReportInputs(scores=pd.read_csv(scores_path), layer_order=summary["layer_order"],
                        id_benchmarks=summary["id_benchmarks"],
                        alignment_benchmarks=summary.get("alignment_benchmarks", []),
                        dense_benchmarks=summary.get("dense_benchmarks", []), provenance=summary["provenance"],
                        config=config, title=settings.get("title", DEFAULT_TITLE), introspective=introspective)


def render_report(inputs: ReportInputs) -> str:
    """Render the whole report as one HTML string.

    Args:
        inputs: the score table and everything beside it.

    Returns:
        A self-contained HTML document.
    """
    scores, title = inputs.scores, inputs.title
    figures = {
        "Ranking agreement: Kendall tau with both intervals": png_data_uri(agreement_heatmap(scores)),
        "Ranks across benchmarks": png_data_uri(bump_chart(scores)),
        "Layer-wise ID and OOD accuracy": png_data_uri(layer_curves(scores, inputs.layer_order, inputs.id_benchmarks)),
    }
    prov = pd.DataFrame(inputs.provenance)
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
    parts.append(imagenot_section(scores, inputs.config.get("sweep")))
    parts.append(tunnel_section(scores))
    parts.append(variable_section(scores))
    parts.append(alignment_section(scores, inputs.alignment_benchmarks, inputs.id_benchmarks))
    parts.append(dense_section(scores, inputs.dense_benchmarks, inputs.id_benchmarks))
    parts.append(introspective_section(inputs.introspective))
    parts += [
        "<h2>What was run</h2><h3>Provenance</h3>", prov.to_html(index=False, escape=True),
        "<h3>Params</h3>", f"<pre>{html.escape(json.dumps(inputs.config, indent=2, sort_keys=True))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(out: str | Path, **inputs: Any) -> str:
    """Read the report's inputs (:func:`read_report_inputs`), render them and write the page atomically.

    Args:
        out: where the HTML goes.
        **inputs: the arguments of :func:`read_report_inputs`.

    Returns:
        The page written.
    """
    page = render_report(read_report_inputs(**inputs))
    with atomic_output(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return page
