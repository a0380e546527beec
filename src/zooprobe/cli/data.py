"""Stage commands of datasets and checkpoints: ``dataset``, ``fetch-checkpoint``."""

from __future__ import annotations

import argparse
import logging

from zooprobe.cli.common import json_arg, run_provenance
from zooprobe.io.fetch import fetch

log = logging.getLogger("zooprobe")


# ----------------------------------------------------------------------------- stages
def cmd_dataset(args: argparse.Namespace) -> None:
    # Imported here, not at the top: the command table imports every command module, and the sources
    # pull in HDF5, PIL and SciPy, which the other commands need not load.
    from zooprobe.data.registry import build_dataset

    stored = build_dataset(name=args.name, spec=args.spec, out=args.out, base=args.base,
                           download_dir=args.download_dir, provenance=run_provenance(), threads=args.threads)
    log.info("wrote %s: %d images %s, sha256 %s", args.out, stored["n"], tuple(stored["image_shape"]),
             stored["content_sha256"][:12])


def cmd_fetch_checkpoint(args: argparse.Namespace) -> None:
    fetch(args.url, sha256=args.sha256, dest=args.out)
    log.info("fetched %s", args.out)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to ``sub``."""
    p = sub.add_parser("dataset", help="build one dataset file")
    p.add_argument("--name", required=True)
    p.add_argument("--spec", type=json_arg, required=True, help="the dataset's params entry, as JSON")
    p.add_argument("--base", help="the dataset a 'shift' or 'corrupt' source shifts")
    p.add_argument("--download-dir", help="where a 'url' source keeps its downloaded files")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1, help="threads decoding images (imagefolder sources)")
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("fetch-checkpoint", help="download a checkpoint and verify its sha256")
    p.add_argument("--url", required=True)
    p.add_argument("--sha256", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_fetch_checkpoint)
