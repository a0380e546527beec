"""Stage commands of probes: ``probe``, ``align``, ``align-tables``, ``dense-probe``."""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any, Callable, Iterator

from zooprobe.io.atomic import write_json
from zooprobe.cli.common import json_arg, named_paths, run_provenance

# Library imports stay inside the commands: building the parser (every ``zooprobe`` call, dvc-sync,
# check-config) must not pay for h5py, sklearn or torch.

# The options several probe commands share, each with one meaning everywhere.
SHARED_OPTIONS: dict[str, dict[str, Any]] = {
    "--model": dict(required=True, help="the model's name"),
    "--settings": dict(type=json_arg, required=True, help="the stage's params section, as JSON"),
    "--data": dict(required=True, help="the dataset file, with its human or dense labels"),
    "--features": dict(required=True, help="the model's features on that dataset"),
    "--out": dict(required=True, help="the output file"),
}


def _parent(option: str) -> argparse.ArgumentParser:
    """A parent parser holding one of :data:`SHARED_OPTIONS`."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(option, **SHARED_OPTIONS[option])
    return parent


@contextlib.contextmanager
def _inputs_refused() -> Iterator[None]:
    """Report inputs a probe cannot use as a one-line error, as every stage command does, not a traceback."""
    from zooprobe.data.label_space import LabelSpaceError
    from zooprobe.probes.inputs import ProbeInputError

    try:
        yield
    except (LabelSpaceError, ProbeInputError) as error:
        raise SystemExit(str(error)) from None


# OpenMP threads that sleep at a barrier instead of spinning there. On a CPU shared with other jobs a
# spinning thread burns the core its partner needs: the torch probe's fit at D = 512 took 11.1 s spinning
# and 4.3 s sleeping, back to back under a load average of 5 on 2 cores (benchmarks/RESULTS.md). It must
# be set before the OpenMP runtime starts, so before torch is imported.
OMP_WAIT_POLICY = "PASSIVE"


def cmd_probe(args: argparse.Namespace) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
    from zooprobe.probes.linear import probe_feature_files
    from zooprobe.probes.own_head import score_own_head_files

    with _inputs_refused():
        if args.kind == "head":
            score_own_head_files(model=args.model, task=args.task, id_name=args.id_name, id_path=args.id,
                                 ood_paths=named_paths(args.ood), run=run_provenance(), published=args.published,
                                 out=args.out)
            return
        probe_feature_files(model=args.model, task=args.task, id_name=args.id_name, id_path=args.id,
                            ood_paths=named_paths(args.ood), transfer_paths=named_paths(args.transfer),
                            settings=args.settings, score_head=args.score_head, run=run_provenance(),
                            out=args.out, kind=args.kind, device=args.device, threads=args.threads)


def _write_payload(stage: Callable[..., Any], args: argparse.Namespace, **inputs: Any) -> None:
    """Call a stage that returns a JSON payload with the run's settings and provenance; write it to ``--out``."""
    with _inputs_refused():
        payload = stage(settings=args.settings, run=run_provenance(), **inputs)
    write_json(args.out, payload)


def cmd_align(args: argparse.Namespace) -> None:
    from zooprobe.probes.alignment.stage import align_model

    _write_payload(align_model, args, data=args.data, features=args.features, benchmark=args.benchmark,
                   model=args.model)


def cmd_align_tables(args: argparse.Namespace) -> None:
    from zooprobe.probes.alignment.stage import align_tables

    _write_payload(align_tables, args, data=args.data, tables=args.tables, benchmark=args.benchmark)


def cmd_dense_probe(args: argparse.Namespace) -> None:
    from zooprobe.probes.dense.probe import dense_probe

    _write_payload(dense_probe, args, data=args.data, features=args.features, dataset=args.dataset,
                   model=args.model)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to ``sub``."""
    model, settings, data, features, out = (_parent(option) for option in SHARED_OPTIONS)

    p = sub.add_parser("probe", parents=[model, settings, out],
                       help="fit linear probes per layer and score them on ID and OOD sets")
    p.add_argument("--task", required=True)
    p.add_argument("--kind", default="linear", choices=["linear", "sklearn", "knn", "head"],
                   help="probe kind: linear (the torch probe: the C sweep C by C, warm-started, on the GPU when there is one), "
                        "sklearn (the same objective fitted by scikit-learn, for comparison), knn (DINO's weighted "
                        "k-nearest-neighbour vote, k chosen on val), or head (no probe: score "
                        "the model's own head on every set, for probe: head tasks)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the torch probe (the job's threads)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where the torch probe runs (how it runs, not what it computes)")
    p.add_argument("--id-name", required=True)
    p.add_argument("--id", required=True, help="features on the in-distribution set")
    p.add_argument("--ood", nargs="*", help="NAME=PATH features on each OOD set")
    p.add_argument("--transfer", nargs="*", help="NAME=PATH features on each transfer set (probes of its own)")
    p.add_argument("--score-head", action="store_true", help="also score the model's own head (same label space)")
    p.add_argument("--published", type=json_arg, default=None,
                   help="JSON {table, name, img_size}: the model's row of a published results table")
    p.set_defaults(func=cmd_probe)

    # One model's features (or head) scored against a dataset's extra labels: human or per-pixel.
    p = sub.add_parser("align", parents=[model, settings, data, features, out],
                       help="score one model's features or head against human judgements")
    p.add_argument("--benchmark", required=True)
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("dense-probe", parents=[model, settings, data, features, out],
                       help="fit dense heads (depth, normals, figure-ground) on spatial features")
    p.add_argument("--dataset", required=True)
    p.set_defaults(func=cmd_dense_probe)

    p = sub.add_parser("align-tables", parents=[settings, data, out],
                       help="score published prediction tables against human label distributions")
    p.add_argument("--benchmark", required=True)
    p.add_argument("--tables", required=True, help="folder of .npz tables with 'logits' or 'probs'")
    p.set_defaults(func=cmd_align_tables)
