"""The ``zooprobe`` command: one subcommand per pipeline stage, called by the Snakemake rules.

Each subcommand reads its inputs, calls pure functions from the library, and writes its
outputs atomically. Params arrive as JSON strings, exactly the keys the stage reads.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

log = logging.getLogger("zooprobe")

COMMAND_MODULES = ("data", "train", "extract", "probes", "analysis", "tools")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every subcommand."""
    import importlib

    parser = argparse.ArgumentParser(prog="zooprobe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"zooprobe.cli.{name}").add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``zooprobe`` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    args = build_parser().parse_args(argv)
    args.func(args)
