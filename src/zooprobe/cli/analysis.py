"""Stage commands ``analyse`` and ``report``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from zooprobe.cli.common import _json

log = logging.getLogger("zooprobe")


def cmd_analyse(args: argparse.Namespace) -> None:
    from zooprobe.io import h5io
    from zooprobe.analysis.scores import Design, ProbeRun, score_table
    from zooprobe.analysis.verdicts import agreement_findings
    from zooprobe.io.atomic import atomic_output

    runs = []
    for path in args.probes:
        predictions, labels, provenance, head = h5io.read_probe_result(path)
        runs.append(ProbeRun(provenance["model"], provenance["task"], predictions, labels, provenance, head,
                             h5io.read_transfer_predictions(path)))
    alignment = []
    for path in [*args.alignment, *args.dense]:
        payload = json.loads(Path(path).read_text())
        alignment += payload if isinstance(payload, list) else [payload]
    scores = score_table(runs, n_boot=args.settings["n_bootstrap"], seed=args.settings["seed"], alignment=alignment,
                         design=Design.from_config(args.design))
    if args.sweep:
        import pandas as pd

        from zooprobe.analysis.imagenot import imagenot_table, variable_table

        imagenot = imagenot_table(runs, args.sweep, n_boot=args.settings["n_bootstrap"], seed=args.settings["seed"])
        scores = pd.concat([scores, imagenot, variable_table(scores, args.sweep)], ignore_index=True)
    with atomic_output(args.scores) as tmp:
        scores.to_csv(tmp, index=False)
    summary = {
        "layer_order": {run.model: run.provenance["layers"] for run in runs},
        "alignment_benchmarks": sorted({p["benchmark"] for p in alignment if p.get("kind") != "dense"}),
        "dense_benchmarks": sorted({p["benchmark"] for p in alignment if p.get("kind") == "dense"}),
        "id_benchmarks": sorted({run.provenance["id_eval"] for run in runs}),
        "provenance": [{k: run.provenance[k] for k in ("model", "task", "arch", "weights_sha256", "pooling",
                                                       "preprocessing", "seed", "zooprobe_version")}
                       | {"selected_layer": run.selected_layer} for run in runs],
        # Rank agreement per pair of benchmarks with both intervals, adjusted p and verdict (zooprobe.analysis.verdicts).
        "agreement": {f"{prefix}{statistic}": agreement_findings(scores, prefix=prefix, statistic=statistic)
                      for prefix in ("", "imagenot_") for statistic in ("kendall_tau", "spearman_rho")},
    }
    with atomic_output(args.summary) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    log.info("wrote %s (%d rows)", args.scores, len(scores))

def cmd_report(args: argparse.Namespace) -> None:
    import pandas as pd

    from zooprobe.io.atomic import atomic_output
    from zooprobe.report.html import render_report

    scores = pd.read_csv(args.scores)
    summary = json.loads(Path(args.summary).read_text())
    layer_order = dict(summary["layer_order"], __id__=summary["id_benchmarks"],
                       __alignment__=summary.get("alignment_benchmarks", []),
                       __dense__=summary.get("dense_benchmarks", []))
    introspective = None
    if args.icn_summary:
        import numpy as np

        introspective = json.loads(Path(args.icn_summary[0]).read_text())
        introspective["grids"] = []
        for path in args.icn_grids:
            with np.load(path) as grids:
                rounds = sorted((k for k in grids.files if k.startswith("round_")), key=lambda k: int(k[6:]))
                introspective["grids"].append({"dataset": str(grids["dataset"]), "arch": str(grids["arch"]),
                                               "seed": int(grids["seed"]), "rounds": [grids[k] for k in rounds]})
    page = render_report(scores=scores, layer_order=layer_order, config=args.config,
                         provenance=summary["provenance"], title=args.settings.get("title", "zooprobe report"),
                         introspective=introspective)
    with atomic_output(args.out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("wrote %s (%.0f kB)", args.out, len(page) / 1024)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to ``sub``."""
    p = sub.add_parser("analyse", help="rank models and compare rankings across benchmarks")
    p.add_argument("--probes", nargs="+", required=True)
    p.add_argument("--settings", type=_json, required=True)
    p.add_argument("--sweep", type=_json, default=None, help="the sweep params section, as JSON (null: none)")
    p.add_argument("--alignment", nargs="*", default=[], help="alignment results (JSON) from align and align-tables")
    p.add_argument("--dense", nargs="*", default=[], help="dense-probe results (JSON) from dense-probe")
    p.add_argument("--design", type=_json, default=None,
                   help="units, shared test rows and random-init pairs, as JSON (zooprobe.params.config.analysis_design)")
    p.add_argument("--scores", required=True)
    p.add_argument("--summary", required=True)
    p.set_defaults(func=cmd_analyse)

    p = sub.add_parser("report", help="render the HTML report")
    p.add_argument("--scores", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--config", type=_json, required=True)
    p.add_argument("--settings", type=_json, default={})
    p.add_argument("--icn-summary", nargs="*", default=[], help="icn-table summary (JSON), if the run has one")
    p.add_argument("--icn-grids", nargs="*", default=[], help="icn-compare sample grids (npz) to show")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report)
