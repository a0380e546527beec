"""Stage command ``extract`` (layer-wise features of one model on one dataset), and ``layers``
(what layers a model offers it)."""

from __future__ import annotations

import argparse

from zooprobe.cli.common import json_arg, run_provenance
from zooprobe.params.settings import POOLINGS


def cmd_extract(args: argparse.Namespace) -> None:
    from zooprobe.extract.jobs import extract_to_file

    extract_to_file(model=args.model, entry=args.spec, settings_section=args.settings,
                    execution_section=args.execution, data_path=args.data, weights=args.weights, out=args.out,
                    threads=args.threads, spatial_grid=args.spatial_grid, feature_dtype=args.feature_dtype,
                    provenance=run_provenance())


def cmd_layers(args: argparse.Namespace) -> None:
    from zooprobe.extract.layers import layers_table
    from zooprobe.params.spec import ModelConfigError

    try:
        print(layers_table(args.entry, params=args.params, pooling=args.pooling, weights=args.weights))
    except ModelConfigError as error:
        raise SystemExit(str(error)) from None


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to ``sub``."""
    p = sub.add_parser("extract", help="extract layer-wise features of one model on one dataset")
    p.add_argument("--model", required=True)
    p.add_argument("--spec", type=json_arg, required=True)
    p.add_argument("--settings", type=json_arg, required=True, help="the extract params section, as JSON")
    p.add_argument("--execution", type=json_arg, default={},
                   help="the execution.extract params section (batch size, device, workers), as JSON")
    p.add_argument("--data", required=True)
    p.add_argument("--weights")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--spatial-grid", type=int, default=None,
                   help="keep layers spatial, (N, C, h, w) pooled to at most this grid, for dense probes")
    p.add_argument("--feature-dtype", choices=("float32", "float16"), default="float32")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("layers", help="list a model's layer names, activation shapes and pooled widths "
                                      "(the names models.<name>.layers takes)")
    p.add_argument("entry", metavar="MODEL_ENTRY",
                   help="the model's params entry as JSON, e.g. '{\"source\": \"timm\", \"arch\": \"resnet10t\"}', "
                        "or a model name with --params")
    p.add_argument("--params", help="params file (YAML) to look a model name up in")
    p.add_argument("--pooling", choices=POOLINGS, default="avg", help="pooling whose widths are listed")
    p.add_argument("--weights", help="state-dict file to load (default: the architecture without weights)")
    p.set_defaults(func=cmd_layers)
