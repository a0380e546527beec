"""Stage commands of datasets and checkpoints: ``dataset``, ``fetch-checkpoint``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from zooprobe.cli.common import _json, _provenance_base

log = logging.getLogger("zooprobe")


# ----------------------------------------------------------------------------- stages
def cmd_dataset(args: argparse.Namespace) -> None:
    from zooprobe.data import datasets
    from zooprobe.io import h5io
    from zooprobe.params.config import expand_path

    spec = dict(args.spec)
    source = spec.pop("source")
    expected_sha256 = spec.pop("sha256", None)
    if source in ("shift", "corrupt"):
        if not args.base:
            raise SystemExit(f"a {source!r} dataset needs --base <path of the dataset it shifts>")
        build = datasets.build_shift if source == "shift" else datasets.build_corrupt
        built = build(h5io.read_image_set(args.base), **spec)
    elif source == "packaged":
        built = datasets.build_packaged(**spec)
    elif source == "procedural" and spec.get("generator") == "scenes":
        from zooprobe.data.dense_sets import build_scenes

        built = build_scenes(n=spec["n_per_class"], size=spec["size"], splits=spec["splits"], seed=spec["seed"])
    elif source == "procedural":
        built = datasets.build_procedural(**spec)
    elif source == "imagefolder":
        built = datasets.build_imagefolder(**dict(spec, root=expand_path(spec["root"])))
    elif source == "torchvision":
        built = datasets.build_torchvision(**dict(spec, root=expand_path(spec["root"])))
    elif source == "middlebury":
        from zooprobe.data.dense_sets import build_middlebury_motorcycle

        built = build_middlebury_motorcycle(**spec)
    elif source in ("peterson", "kriegeskorte92"):
        from zooprobe.data import human

        build = human.build_peterson if source == "peterson" else human.build_kriegeskorte92
        built = build(**dict(spec, root=expand_path(spec["root"])))
    elif source == "url":
        from zooprobe.io.fetch import fetch

        if not args.download_dir:
            raise SystemExit("a 'url' dataset needs --download-dir <folder for the downloaded files>")
        mirror = expand_path(spec.pop("mirror")) if spec.get("mirror") else None
        files = {role: fetch(entry["url"], sha256=entry["sha256"], mirror=mirror,
                             dest=Path(args.download_dir) / Path(entry["url"]).name)
                 for role, entry in spec.pop("files").items()}
        built = datasets.build_from_files(files, **spec)
    else:
        raise SystemExit(f"unknown dataset source {source!r}; valid: {list(datasets.SOURCES)}")
    if expected_sha256:
        from zooprobe.io.fetch import ChecksumError

        actual = built.content_sha256()
        if actual != expected_sha256.lower():
            raise ChecksumError(f"sha256 mismatch for dataset {args.name!r}: expected {expected_sha256.lower()}, got "
                                f"{actual}. The source content changed; fix the sha256 in the params if intended.")
    built.attrs.update(_provenance_base(), name=args.name, params=args.spec)
    h5io.write_image_set(args.out, built)
    log.info("wrote %s: %d images %s, sha256 %s", args.out, len(built.labels), built.images.shape[1:],
             built.content_sha256()[:12])

def cmd_fetch_checkpoint(args: argparse.Namespace) -> None:
    from zooprobe.io.fetch import fetch

    fetch(args.url, sha256=args.sha256, dest=args.out)
    log.info("fetched %s", args.out)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to ``sub``."""
    p = sub.add_parser("dataset", help="build one dataset file")
    p.add_argument("--name", required=True)
    p.add_argument("--spec", type=_json, required=True, help="the dataset's params entry, as JSON")
    p.add_argument("--base", help="the dataset a 'shift' or 'corrupt' source shifts")
    p.add_argument("--download-dir", help="where a 'url' source keeps its downloaded files")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("fetch-checkpoint", help="download a checkpoint and verify its sha256")
    p.add_argument("--url", required=True)
    p.add_argument("--sha256", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_fetch_checkpoint)
