"""The analyse stage as one call: read probe and alignment results, score them, write the table and summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from zooprobe.analysis.field_methods import FieldResults, field_results
from zooprobe.analysis.imagenot import imagenot_table, variable_table
from zooprobe.analysis.scores import Design, ExampleDraws, ProbeRun, score_table
from zooprobe.analysis.similarity import similarity_rows
from zooprobe.analysis.verdicts import agreement_findings
from zooprobe.io import h5io
from zooprobe.io.atomic import atomic_output

# The provenance fields of a probe result that the report lists, beside the selected layer.
PROVENANCE_FIELDS = ("model", "task", "arch", "weights_sha256", "pooling", "preprocessing", "seed", "zooprobe_version")


def read_probe_runs(paths: Sequence[str | Path]) -> list[ProbeRun]:
    """Read probe result files (``zooprobe probe``), in the order given.

    Args:
        paths: HDF5 probe results.

    Returns:
        One :class:`ProbeRun` per file, with its own-head predictions and confidences and its transfer
        predictions where it has them.
    """
    runs = []
    for path in paths:
        predictions, labels, provenance, head = h5io.read_probe_result(path)
        runs.append(ProbeRun(provenance["model"], provenance["task"], predictions, labels, provenance, head,
                             h5io.read_transfer_predictions(path), h5io.read_head_confidence(path)))
    return runs


def read_alignment_payloads(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read alignment and dense-probe results (JSON: one payload, or a list of them), in the order given.

    Args:
        paths: results of ``align``, ``align-tables`` and ``dense-probe``.

    Returns:
        Every payload, flattened into one list.
    """
    payloads: list[dict[str, Any]] = []
    for path in paths:
        payload = json.loads(Path(path).read_text())
        payloads += payload if isinstance(payload, list) else [payload]
    return payloads


def analysis_summary(runs: Sequence[ProbeRun], alignment: Sequence[Mapping[str, Any]],
                     scores: pd.DataFrame, field: FieldResults | None = None) -> dict[str, Any]:
    """What the report needs beside the score table.

    Args:
        runs: the probe results that were scored.
        alignment: the alignment and dense payloads that were scored.
        scores: the score table.
        field: the effective-robustness fits and the concordance (:mod:`zooprobe.analysis.field_methods`).

    Returns:
        ``layer_order`` (model -> layers), the ``alignment_benchmarks``, ``dense_benchmarks`` and
        ``id_benchmarks``, one ``provenance`` record per probe result, and the rank ``agreement``
        findings per statistic (:func:`zooprobe.analysis.verdicts.agreement_findings`), the
        effective-robustness ``robustness`` records and the ``concordance`` record.
    """
    field = field or FieldResults()
    return {
        "robustness": field.robustness,
        "concordance": field.concordance,
        "layer_order": {run.model: run.provenance["layers"] for run in runs},
        "alignment_benchmarks": sorted({p["benchmark"] for p in alignment if p.get("kind") != "dense"}),
        "dense_benchmarks": sorted({p["benchmark"] for p in alignment if p.get("kind") == "dense"}),
        "id_benchmarks": sorted({run.benchmark(run.provenance["id_eval"]) for run in runs}),
        "provenance": [{k: run.provenance[k] for k in PROVENANCE_FIELDS} | {"selected_layer": run.selected_layer}
                       for run in runs],
        "agreement": {f"{prefix}{statistic}": agreement_findings(scores, prefix=prefix, statistic=statistic)
                      for prefix in ("", "imagenot_") for statistic in ("kendall_tau", "spearman_rho")},
    }


def run_analysis(*, probes: Sequence[str | Path], alignment: Sequence[str | Path], settings: Mapping[str, Any],
                 sweep: dict[str, Any] | None, design: Mapping[str, Any] | None, scores_path: str | Path,
                 summary_path: str | Path, similarity: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Score every probe and alignment result and write the score table (CSV) and its summary (JSON).

    Args:
        probes: probe result files.
        alignment: alignment, then dense-probe, result files.
        settings: the ``analyse`` params (``n_bootstrap``, ``seed``).
        sweep: the ``sweep`` params section, or None when the run has no sweep.
        design: units, shared test rows and random-init pairs (``zooprobe.params.config.analysis_design``).
        scores_path: where the score table goes.
        summary_path: where the summary goes.
        similarity: the ``cka`` stage's records (JSON), one per task.

    Returns:
        The score table written.
    """
    runs = read_probe_runs(probes)
    payloads = read_alignment_payloads(alignment)
    n_boot, seed, design = settings["n_bootstrap"], settings["seed"], Design.from_config(design)
    # One set of draws for the scores and the field methods: each method redraws the examples its scores did.
    draws = ExampleDraws(n_boot, seed, design.shared_rows)
    scores = score_table(runs, n_boot=n_boot, seed=seed, alignment=payloads, design=design, draws=draws)
    field = field_results(runs, scores, draws=draws, units=design.units, n_boot=n_boot, seed=seed)
    cka = similarity_rows([json.loads(Path(path).read_text()) for path in similarity])
    scores = pd.concat([scores, pd.DataFrame(field.rows + cka, columns=scores.columns)], ignore_index=True)
    if sweep:
        imagenot = imagenot_table(runs, sweep, n_boot=n_boot, seed=seed)
        scores = pd.concat([scores, imagenot, variable_table(scores, sweep)], ignore_index=True)
    with atomic_output(scores_path) as tmp:
        scores.to_csv(tmp, index=False)
    with atomic_output(summary_path) as tmp:
        tmp.write_text(json.dumps(analysis_summary(runs, payloads, scores, field), indent=2, sort_keys=True))
    return scores
