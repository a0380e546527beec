"""A self-contained HTML report: one Jinja2 template, figures as embedded PNGs, tables that sort.

The report only formats: every comparison it puts into words comes as a record from
:mod:`zooprobe.analysis.verdicts` (worded in :mod:`zooprobe.report.findings`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import jinja2
import numpy as np
import pandas as pd
import yaml
from markupsafe import Markup

from zooprobe import code_version
from zooprobe.analysis import verdicts
from zooprobe.io.atomic import atomic_output
from zooprobe.report import findings as wording
from zooprobe.report.alignment import alignment_section, dense_section
from zooprobe.report.blocks import Section, figure_html, table_html
from zooprobe.report.field import (calibration_section, concordance_section, consistency_section, robustness_section,
                                   similarity_section)
from zooprobe.report.figures import (Style, agreement_heatmap, bump_chart, layer_curves, model_colours, png_data_uri,
                                     score_plot)
from zooprobe.report.icn import introspective_section
from zooprobe.report.sections import (EXACT_BOUND_NOTE, INTERVALS_SENTENCE, agreement_table, head_section, imagenot_section,
                                      permutation_sentence, seed_section, selected_layer_table, summary_table,
                                      tunnel_section, variable_section)

TEMPLATE = "report.html.j2"
STRENGTH_LABELS = {"result": "result", "weak": "too weak to say", "note": "description"}
READING_NOTE = ("Each model is scored at the layer chosen on its task's in-distribution validation split; scores "
                "have 95% percentile bootstrap CIs over test examples. A verdict needs a Holm-adjusted permutation "
                "p below 0.05 over all pairs of benchmarks; rank correlations carry two intervals (given the zoo, "
                "and over a population of models), defined in the agreement section.")
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
        robustness: the effective-robustness records of the analysis summary.
        concordance: the analysis summary's concordance record (Kendall's W, Friedman, Nemenyi).
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
    robustness: list[dict[str, Any]] = field(default_factory=list)
    concordance: dict[str, Any] = field(default_factory=dict)


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
                        config=config, title=settings.get("title", DEFAULT_TITLE), introspective=introspective,
                        robustness=summary.get("robustness", []), concordance=summary.get("concordance", {}))


def _score_sections(inputs: ReportInputs, colours: Style) -> list[Section]:
    """The scores, their agreement between benchmarks, and the layer curves."""
    scores = inputs.scores
    chosen = scores[scores.metric == "score"]
    if chosen.empty:
        return []
    benchmarks = list(dict.fromkeys(chosen.benchmark))
    sections = [Section("Scores at the selected layer", Markup("\n".join([
        "<p>Each cell: score [95% CI over test examples] (#rank, 1 = best). Click a header to sort.</p>",
        table_html(summary_table(scores).rename_axis("model")),
        "<h3>Selected layer per model and benchmark</h3>",
        "<p>Each task chooses its layer on its own in-distribution validation split; its OOD sets are read at "
        "the same layer.</p>",
        table_html(selected_layer_table(scores).rename_axis("model")),
        figure_html(png_data_uri(score_plot(scores, benchmarks, colours)),
                "Score per benchmark at the selected layer, models sorted, 95% CI over test examples."),
    ])), anchor="scores")]
    if not scores[scores.metric == "kendall_tau_given_zoo"].empty:
        sections.append(Section("Does the ranking hold? Agreement between benchmarks", Markup("\n".join([
            f"<p>Kendall tau-b and Spearman rho of the unit scores for every pair of benchmarks. {INTERVALS_SENTENCE} "
            f"{permutation_sentence()}</p>", table_html(agreement_table(scores).rename_axis("pair")),
            f"<p>{EXACT_BOUND_NOTE}</p>",
            figure_html(png_data_uri(agreement_heatmap(scores)), "Ranking agreement: Kendall tau with both intervals."),
            figure_html(png_data_uri(bump_chart(scores, colours)),
                    "Ranks across benchmarks: crossing lines are ranking changes (point estimates)."),
        ])), anchor="agreement"))
    if not scores[scores.metric == "accuracy"].empty:
        sections.append(Section("Layer by layer", Markup(figure_html(
            png_data_uri(layer_curves(scores, inputs.layer_order, inputs.id_benchmarks, colours)),
            "Layer-wise ID and OOD accuracy: linear-probe accuracy per layer with 95% CI bands; the marker is the "
            "layer chosen on the ID validation split.")), anchor="layers"))
    return sections


def provenance_table(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per model with named columns, from the per-(model, task) provenance records.

    Args:
        records: the analysis summary's ``provenance`` list.

    Returns:
        Columns ``model``, ``arch``, ``weights_sha256``, ``pooling``, ``seed``, ``zooprobe_version``, one
        ``preprocessing: <key>`` column per preprocessing field, and ``selected layer (<task>)`` per task.
        A field that differs between a model's tasks lists every value, separated by "; ".
    """
    rows: dict[str, dict[str, Any]] = {}
    for record in records:
        row = rows.setdefault(record["model"], {"model": record["model"]})
        fields = {k: v for k, v in record.items() if k not in ("model", "task", "preprocessing", "selected_layer")}
        preprocessing = record.get("preprocessing") or {}
        if not isinstance(preprocessing, dict):
            preprocessing = {"": preprocessing}
        fields |= {f"preprocessing: {k}" if k else "preprocessing": v for k, v in preprocessing.items()}
        fields[f"selected layer ({record.get('task', '')})"] = record.get("selected_layer")
        for key, value in fields.items():
            text = json.dumps(value) if isinstance(value, (dict, list)) else "" if value is None else str(value)
            known = row.get(key)
            row[key] = text if known in (None, text) else f"{known}; {text}" if text not in known.split("; ") else known
    frame = pd.DataFrame(list(rows.values()))
    first = [c for c in ("model", "arch", "weights_sha256", "pooling", "seed", "zooprobe_version") if c in frame]
    layers = sorted(c for c in frame if c.startswith("selected layer"))
    return frame[first + layers + [c for c in frame if c not in first and c not in layers]]


def render_report(inputs: ReportInputs) -> str:
    """Render the whole report as one HTML string.

    Args:
        inputs: the score table and everything beside it.

    Returns:
        A self-contained HTML document: findings first, then the sections that ran, then provenance
        and params.
    """
    scores = inputs.scores
    # Pairs of models (error consistency, "a~b") are not models: they get no colour.
    named = scores.model.dropna()
    colours = model_colours(list(named[~named.isin(["(all)"]) & ~named.str.contains("~", regex=False)].unique()))
    sections = [*_score_sections(inputs, colours)]
    for section in (concordance_section(inputs.concordance), robustness_section(inputs.robustness),
                    consistency_section(scores, inputs.id_benchmarks), similarity_section(scores, inputs.id_benchmarks),
                    calibration_section(scores, inputs.id_benchmarks),
                    head_section(scores), seed_section(scores),
                    imagenot_section(scores, inputs.config.get("sweep"), colours), tunnel_section(scores),
                    variable_section(scores),
                    alignment_section(scores, inputs.alignment_benchmarks, inputs.id_benchmarks, colours),
                    dense_section(scores, inputs.dense_benchmarks, inputs.id_benchmarks, colours),
                    introspective_section(inputs.introspective)):
        if section is not None:
            sections.append(section)
    agreement = verdicts.agreement_findings(scores)
    findings = wording.ranking_findings(agreement)
    findings += [f for f in (wording.mover_sentence(verdicts.rank_movers(scores)),) if f is not None]
    findings += wording.section_findings(scores, introspective=inputs.introspective,
                                         present={s.id for s in sections}, concordance=inputs.concordance,
                                         robustness=inputs.robustness, id_benchmarks=inputs.id_benchmarks)
    environment = jinja2.Environment(loader=jinja2.PackageLoader("zooprobe.report", "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    chosen = scores[scores.metric == "score"]
    return environment.get_template(TEMPLATE).render(
        title=inputs.title, version=code_version(), sections=sections, findings=findings,
        strength_labels=STRENGTH_LABELS, reading_note=READING_NOTE,
        n_models=chosen.model.nunique(), n_benchmarks=chosen.benchmark.nunique(),
        provenance=table_html(provenance_table(inputs.provenance), index=False) if inputs.provenance else "",
        params_yaml=yaml.safe_dump(inputs.config, sort_keys=False, default_flow_style=False))


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
