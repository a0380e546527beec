"""Tools a user runs by hand, apart from the stages: ``check-config``, ``compare-rankings``, ``dvc-*``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Callable


log = logging.getLogger("zooprobe")


def cmd_check_config(args: argparse.Namespace) -> None:
    import yaml

    from zooprobe.zoo.checks import check_zoo

    specs = check_zoo(yaml.safe_load(Path(args.params).read_text()))
    print(f"ok: {len(specs)} models")

# ----------------------------------------------------------------------------- leaderboards
def cmd_compare_rankings(args: argparse.Namespace) -> None:
    from zooprobe.analysis.leaderboard import LeaderboardError, compare_leaderboard_files

    try:
        print(compare_leaderboard_files(args.table_a, args.table_b, on=args.on, score=args.score,
                                        score_b=args.score_b, labels_a=args.labels_a, labels_b=args.labels_b,
                                        n_bootstrap=args.bootstrap, top_k=args.top, seed=args.seed,
                                        movers=args.movers, output_format=args.format,
                                        effective_robustness=args.effective_robustness, link=args.link,
                                        accuracy_scale=args.accuracy_scale, n_a=args.n_a, n_b=args.n_b,
                                        also=args.also or (),
                                        concordance=args.concordance, alpha=args.alpha))
    except LeaderboardError as error:
        raise SystemExit(f"compare-rankings: {error}") from None

# ----------------------------------------------------------------------------- DVC
def cmd_dvc_sync(args: argparse.Namespace) -> None:
    from zooprobe.workflow.dvcrun import config_arg
    from zooprobe.workflow.dvcsync import sync

    problems = sync(Path(args.directory), dvc_yaml=args.dvc_yaml, configfile=args.configfile, check=args.check)
    if problems:
        raise SystemExit(f"{args.dvc_yaml} disagrees with the Snakemake DAG; run "
                         f"`zooprobe dvc-sync{config_arg(args.configfile)}` and commit it:\n  " + "\n  ".join(problems))
    print(f"{args.dvc_yaml} {'matches' if args.check else 'written from'} the Snakemake DAG")

def cmd_dvc_commit(args: argparse.Namespace) -> None:
    from zooprobe.workflow.dvcrun import commit_outputs

    _dvc_step(lambda: commit_outputs(Path(args.directory), dvc_yaml=args.dvc_yaml, configfile=args.configfile),
              "recorded every output in dvc.lock and the DVC cache; now `git add dvc.lock`, commit, and `dvc push`")

def cmd_dvc_restore(args: argparse.Namespace) -> None:
    from zooprobe.workflow.dvcrun import restore_workspace

    _dvc_step(lambda: restore_workspace(Path(args.directory), configfile=args.configfile, cores=args.cores),
              "every output now matches dvc.lock and is up to date for Snakemake")

def _dvc_step(step: Callable[[], None], done: str) -> None:
    """Run one DVC step; its refusal (DvcSyncError) becomes the command's error message, without a traceback."""
    from zooprobe.workflow.dvcsync import DvcSyncError

    try:
        step()
    except DvcSyncError as error:
        raise SystemExit(str(error)) from None
    print(done)


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
    p.add_argument("--effective-robustness", action="store_true",
                   help="also fit B's accuracy against A's on probit axes (accuracy on the line) and list the "
                        "--movers most and least effectively robust models")
    p.add_argument("--link", choices=("probit", "logit"), default="probit", help="link of that fit (default probit)")
    p.add_argument("--accuracy-scale", choices=("auto", "fraction", "percent"), default="auto",
                   help="how the score columns hold accuracies (auto: above 1 means percent)")
    p.add_argument("--n-a", type=int, help="test-set size of a CSV table A (e.g. 50000 for ImageNet val): the "
                   "effective-robustness intervals then redraw its accuracies as binomials")
    p.add_argument("--n-b", type=int, help="test-set size of a CSV table B (e.g. 10000 for ImageNet-V2)")
    p.add_argument("--concordance", action="store_true",
                   help="also Kendall's W (CI over models), the Friedman test and the Nemenyi critical difference "
                        "over A, B and every --also table")
    p.add_argument("--also", action="append", metavar="TABLE",
                   help="a further leaderboard for --concordance (repeatable): a CSV with the --score column, or "
                        "FOLDER=LABELS for a prediction folder")
    p.add_argument("--alpha", type=float, default=0.05, help="level of the Nemenyi critical difference (default 0.05)")
    p.set_defaults(func=cmd_compare_rankings)

    # What every dvc-* command needs to find the workflow and its files.
    workflow_options = argparse.ArgumentParser(add_help=False)
    workflow_options.add_argument("--configfile", help="the params file the workflow runs with, if not params.yaml")
    workflow_options.add_argument("--directory", default=".", help="the workflow's folder (default: here)")
    workflow_options.add_argument("--dvc-yaml", default="dvc.yaml")

    p = sub.add_parser("dvc-sync", parents=[workflow_options],
                       help="write dvc.yaml from the Snakemake DAG (--check: only compare)")
    p.add_argument("--check", action="store_true", help="fail when dvc.yaml disagrees with the DAG")
    p.set_defaults(func=cmd_dvc_sync)
    p = sub.add_parser("dvc-commit", parents=[workflow_options],
                       help="after a run, record every output in dvc.lock and the DVC cache")
    p.set_defaults(func=cmd_dvc_commit)
    p = sub.add_parser("dvc-restore", parents=[workflow_options],
                       help="after `dvc pull`, check the files match dvc.lock and mark them up to date")
    p.add_argument("--cores", type=int, default=1)
    p.set_defaults(func=cmd_dvc_restore)

    p = sub.add_parser("check-config", help="check a params file's cross-references")
    p.add_argument("params")
    p.set_defaults(func=cmd_check_config)
