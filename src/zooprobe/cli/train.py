"""Stage commands of models trained here: ``train`` and the introspective ``icn-*`` commands."""

from __future__ import annotations

import argparse
import logging

from zooprobe.cli.common import json_arg, named_paths, run_provenance

log = logging.getLogger("zooprobe")


def cmd_train(args: argparse.Namespace) -> None:
    from zooprobe.params.spec import ModelConfigError
    from zooprobe.train.jobs import train_to_file

    try:
        history = train_to_file(model=args.model, entry=args.spec, recipe_section=args.recipe, data_path=args.data,
                                out=args.out, introspective_section=args.introspective, threads=args.threads,
                                provenance=run_provenance())
    except ModelConfigError as error:
        raise SystemExit(str(error)) from None
    log.info("trained %s: %s", args.model, history[-1])


def cmd_icn_compare(args: argparse.Namespace) -> None:
    from zooprobe.data.label_space import LabelSpaceError
    from zooprobe.train.icn.comparison import run_comparison

    try:
        run_comparison(dataset=args.dataset, arch_name=args.arch_name, arch_entry=args.arch, seed=args.seed,
                       recipe_section=args.recipe, settings_section=args.settings, epsilons_255=args.epsilons,
                       data_path=args.data, ood_paths=named_paths(args.ood), threads=args.threads, out=args.out,
                       grids_out=args.grids, provenance=run_provenance())
    except LabelSpaceError as error:
        raise SystemExit(str(error)) from None


def cmd_icn_probe(args: argparse.Namespace) -> None:
    from zooprobe.train.icn.probe import run_feature_probes

    run_feature_probes(model=args.model, task=args.task, settings_section=args.settings, id_name=args.id_name,
                       id_path=args.id, ood_paths=named_paths(args.ood), out=args.out, provenance=run_provenance())
    log.info("wrote %s", args.out)


def cmd_icn_table(args: argparse.Namespace) -> None:
    from zooprobe.train.icn.tables import MissingSeedsError, write_icn_tables

    try:
        summary = write_icn_tables(compare_paths=args.compare, probe_paths=args.probes, seeds=args.seeds,
                                   scores_out=args.scores, summary_out=args.summary)
    except MissingSeedsError as error:
        raise SystemExit(str(error)) from None
    log.info("wrote %s and %s (%d verdicts)", args.scores, args.summary, len(summary["verdicts"]))


def _training_options() -> argparse.ArgumentParser:
    """The options of every command that trains a network from scratch: the recipe and the CPU threads."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--recipe", type=json_arg, required=True, help="the train params section, as JSON")
    parent.add_argument("--threads", type=int, default=1)
    return parent


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to ``sub``."""
    training = _training_options()
    p = sub.add_parser("train", parents=[training], help="train one model from scratch with the shared recipe")
    p.add_argument("--model", required=True)
    p.add_argument("--spec", type=json_arg, required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--introspective", type=json_arg, default=None,
                   help="the introspective.model params, as JSON, for an 'introspective:<arch>' model")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("icn-compare", parents=[training],
                       help="train one architecture as a baseline and as an ICN with one seed; "
                            "score test, OOD and FGSM error")
    p.add_argument("--dataset", required=True, help="the ID dataset's name")
    p.add_argument("--arch-name", required=True, help="the architecture's name under introspective.compare")
    p.add_argument("--arch", type=json_arg, required=True, help="its entry (arch, input_size, arch_kwargs), as JSON")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--settings", type=json_arg, required=True, help="the introspective.model params, as JSON")
    p.add_argument("--epsilons", type=json_arg, required=True, help="FGSM budgets in 1/255 units, as JSON")
    p.add_argument("--data", required=True)
    p.add_argument("--ood", nargs="*", default=[], help="NAME=PATH of each OOD dataset")
    p.add_argument("--out", required=True, help="scores and histories (JSON)")
    p.add_argument("--grids", required=True, help="the ICN's sample grid per round (npz)")
    p.set_defaults(func=cmd_icn_compare)

    p = sub.add_parser("icn-probe", help="plain and introspective probes on one model's frozen features, per layer")
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--settings", type=json_arg, required=True, help="the introspective.probe params, as JSON")
    p.add_argument("--id-name", required=True)
    p.add_argument("--id", required=True, help="features on the in-distribution set")
    p.add_argument("--ood", nargs="*", default=[], help="NAME=PATH features on each OOD set")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_icn_probe)

    p = sub.add_parser("icn-table", help="collect ICN comparisons and probes into a tidy table and verdicts")
    p.add_argument("--compare", nargs="*", default=[], help="icn-compare results (JSON)")
    p.add_argument("--probes", nargs="*", default=[], help="icn-probe results (JSON)")
    p.add_argument("--seeds", type=json_arg, default=None, help="seeds every comparison must have, as JSON")
    p.add_argument("--scores", required=True, help="tidy CSV of every ICN score")
    p.add_argument("--summary", required=True, help="verdicts per dataset and metric (JSON)")
    p.set_defaults(func=cmd_icn_table)
