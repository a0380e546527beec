"""Tools a user runs by hand, apart from the stages: ``check-config``, ``compare-rankings``, ``dvc-*``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path


log = logging.getLogger("zooprobe")


def cmd_check_config(args: argparse.Namespace) -> None:
    import yaml

    from zooprobe.zoo.checks import check_zoo

    specs = check_zoo(yaml.safe_load(Path(args.params).read_text()))
    print(f"ok: {len(specs)} models")

# ----------------------------------------------------------------------------- leaderboards
def cmd_compare_rankings(args: argparse.Namespace) -> None:
    from zooprobe.analysis.leaderboard import (LeaderboardError, aligned_correctness, compare_rankings, format_text,
                                      join_leaderboards, read_board)

    try:
        on = [c.strip() for c in args.on.split(",") if c.strip()] if args.on else None
        table_a, correct_a = read_board(Path(args.table_a), labels=args.labels_a and Path(args.labels_a))
        table_b, correct_b = read_board(Path(args.table_b), labels=args.labels_b and Path(args.labels_b))
        from_predictions = Path(args.table_a).is_dir() or Path(args.table_b).is_dir()
        on = on or (["model"] if from_predictions else None)
        if on is None:
            raise LeaderboardError("give the key columns to join on, e.g. --on model,img_size")
        score = args.score or ("accuracy" if from_predictions else None)
        if score is None:
            raise LeaderboardError(f"give the score column, e.g. --score top1; table A has {list(table_a.columns)}")
        joined = join_leaderboards(table_a, table_b, on=on, score_a=score, score_b=args.score_b)
    except LeaderboardError as error:
        raise SystemExit(f"compare-rankings: {error}") from None
    result = compare_rankings(joined, n_bootstrap=args.bootstrap, top_k=args.top, seed=args.seed,
                              correct_a=aligned_correctness(joined, correct_a), correct_b=aligned_correctness(joined, correct_b))
    if args.format == "json":
        print(json.dumps(result.to_json(movers=args.movers), indent=2, default=float))
    else:
        print(format_text(result, on=on, names=(args.table_a, args.table_b), movers=args.movers))

# ----------------------------------------------------------------------------- DVC
def cmd_dvc_sync(args: argparse.Namespace) -> None:
    from zooprobe.workflow.dvcsync import sync

    problems = sync(Path(args.directory), dvc_yaml=args.dvc_yaml, configfile=args.configfile, check=args.check)
    if problems:
        raise SystemExit(f"{args.dvc_yaml} disagrees with the Snakemake DAG; run "
                         f"`zooprobe dvc-sync{_config_arg(args)}` and commit it:\n  " + "\n  ".join(problems))
    print(f"{args.dvc_yaml} {'matches' if args.check else 'written from'} the Snakemake DAG")

def cmd_dvc_commit(args: argparse.Namespace) -> None:
    from zooprobe.workflow.dvcsync import run_dvc, sync

    root = Path(args.directory)
    problems = sync(root, dvc_yaml=args.dvc_yaml, configfile=args.configfile, check=True)
    if problems:
        raise SystemExit(f"not committing: {args.dvc_yaml} disagrees with the Snakemake DAG; run "
                         f"`zooprobe dvc-sync{_config_arg(args)}` first:\n  " + "\n  ".join(problems))
    # One DVC command after the run, never inside parallel jobs: DVC holds a repository lock.
    run_dvc(root, "commit", "--force", "--quiet")
    print("recorded every output in dvc.lock and the DVC cache; now `git add dvc.lock`, commit, and `dvc push`")

def cmd_dvc_restore(args: argparse.Namespace) -> None:
    import subprocess

    from zooprobe.workflow.dvcsync import changed_stages, describe_status, restore_command

    root = Path(args.directory)
    status = changed_stages(root)
    if status:
        raise SystemExit("the workspace does not match dvc.lock, so its files cannot be marked up to date; "
                         "run `dvc pull` (or `dvc checkout`) first. `dvc status` reports:\n" + describe_status(status))
    result = subprocess.run(restore_command(args.configfile, args.cores), cwd=root)
    if result.returncode != 0:
        raise SystemExit(f"snakemake --touch failed (exit {result.returncode})")
    print("every output now matches dvc.lock and is up to date for Snakemake")

def _config_arg(args: argparse.Namespace) -> str:
    return f" --configfile {args.configfile}" if args.configfile else ""


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to ``sub``."""
    p = sub.add_parser("compare-rankings", help="compare two leaderboards: rank correlations with bootstrap CIs",
                       description="Join two leaderboards (CSV tables, or folders of per-model predictions with "
                                   "their labels file) and compare the model rankings.")
    p.add_argument("table_a", help="CSV leaderboard, or a folder of prediction files (.json labels, .npz logits)")
    p.add_argument("table_b")
    p.add_argument("--on", help="key columns to join on, comma-separated (default for prediction folders: model)")
    p.add_argument("--score", help="score column of A (and of B unless --score-b); prediction folders: accuracy")
    p.add_argument("--score-b", help="score column of B, when it differs")
    p.add_argument("--labels-a", help="true labels for a prediction folder A (.npy, .json, or .npz with 'labels')")
    p.add_argument("--labels-b", help="true labels for a prediction folder B")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of models (default 1000)")
    p.add_argument("--top", type=int, default=10, help="K for Kendall tau among A's top K (default 10)")
    p.add_argument("--movers", type=int, default=5, help="how many of the biggest rank moves to list")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_compare_rankings)

    for name, func, help_text in (
        ("dvc-sync", cmd_dvc_sync, "write dvc.yaml from the Snakemake DAG (--check: only compare)"),
        ("dvc-commit", cmd_dvc_commit, "after a run, record every output in dvc.lock and the DVC cache"),
        ("dvc-restore", cmd_dvc_restore, "after `dvc pull`, check the files match dvc.lock and mark them up to date"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--configfile", help="the params file the workflow runs with, if not params.yaml")
        p.add_argument("--directory", default=".", help="the workflow's folder (default: here)")
        p.add_argument("--dvc-yaml", default="dvc.yaml")
        if name == "dvc-sync":
            p.add_argument("--check", action="store_true", help="fail when dvc.yaml disagrees with the DAG")
        if name == "dvc-restore":
            p.add_argument("--cores", type=int, default=1)
        p.set_defaults(func=func)

    p = sub.add_parser("check-config", help="check a params file's cross-references")
    p.add_argument("params")
    p.set_defaults(func=cmd_check_config)
