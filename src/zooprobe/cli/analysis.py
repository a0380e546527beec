"""Stage commands ``cka``, ``analyse`` and ``report``."""

from __future__ import annotations

import argparse
import logging

from zooprobe.cli.common import json_arg, named_paths

log = logging.getLogger("zooprobe")


def cmd_analyse(args: argparse.Namespace) -> None:
    from zooprobe.analysis.run import run_analysis

    scores = run_analysis(probes=args.probes, alignment=[*args.alignment, *args.dense], settings=args.settings,
                          sweep=args.sweep, design=args.design, scores_path=args.scores, summary_path=args.summary,
                          similarity=args.cka)
    log.info("wrote %s (%d rows)", args.scores, len(scores))


def cmd_cka(args: argparse.Namespace) -> None:
    from zooprobe.analysis.similarity import write_task_similarity

    features: dict[str, dict[str, str]] = {}
    for key, path in named_paths(args.features).items():
        model, sep, name = key.partition(":")
        if not sep:
            raise SystemExit(f"--features {key}={path}: give MODEL:SET=PATH")
        features.setdefault(model, {})[name] = path
    record = write_task_similarity(args.out, task=args.task, probes=named_paths(args.probes), features=features,
                                   estimator=args.estimator)
    log.info("wrote %s: %d model matrices, %d layer matrices", args.out, len(record["between_models"]),
             len(record["between_layers"]))


def cmd_report(args: argparse.Namespace) -> None:
    from zooprobe.report.render import write_report

    page = write_report(args.out, scores_path=args.scores, summary_path=args.summary, config=args.config,
                        settings=args.settings, icn_summary=args.icn_summary, icn_grids=args.icn_grids)
    log.info("wrote %s (%.0f kB)", args.out, len(page) / 1024)


def _score_files() -> argparse.ArgumentParser:
    """The options both commands share: analyse writes these two files, report reads them."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--scores", required=True, help="the tidy score table (CSV)")
    parent.add_argument("--summary", required=True, help="the analysis summary (JSON) beside it")
    return parent


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to ``sub``."""
    files = _score_files()
    p = sub.add_parser("analyse", parents=[files], help="rank models and compare rankings across benchmarks")
    p.add_argument("--probes", nargs="+", required=True)
    p.add_argument("--settings", type=json_arg, required=True)
    p.add_argument("--sweep", type=json_arg, default=None, help="the sweep params section, as JSON (null: none)")
    p.add_argument("--alignment", nargs="*", default=[], help="alignment results (JSON) from align and align-tables")
    p.add_argument("--dense", nargs="*", default=[], help="dense-probe results (JSON) from dense-probe")
    p.add_argument("--design", type=json_arg, default=None,
                   help="units, shared test rows and random-init pairs, as JSON (zooprobe.params.config.analysis_design)")
    p.add_argument("--cka", nargs="*", default=[], help="the cka stage's records (JSON), one per task")
    p.set_defaults(func=cmd_analyse)

    p = sub.add_parser("cka", help="linear CKA between models and between layers on one task's sets")
    p.add_argument("--task", required=True)
    p.add_argument("--probes", nargs="+", required=True, help="MODEL=PATH of each model's probe result on the task")
    p.add_argument("--features", nargs="+", required=True, help="MODEL:SET=PATH of each model's features on each set")
    p.add_argument("--estimator", choices=["biased", "debiased"], default="biased")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_cka)

    p = sub.add_parser("report", parents=[files], help="render the HTML report")
    p.add_argument("--config", type=json_arg, required=True)
    p.add_argument("--settings", type=json_arg, default={})
    p.add_argument("--icn-summary", nargs="*", default=[], help="icn-table summary (JSON), if the run has one")
    p.add_argument("--icn-grids", nargs="*", default=[], help="icn-compare sample grids (npz) to show")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report)
