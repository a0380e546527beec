"""Stage command ``extract``: layer-wise features of one model on one dataset."""

from __future__ import annotations

import argparse
import logging

from zooprobe.cli.common import _json, _provenance_base

log = logging.getLogger("zooprobe")


def cmd_extract(args: argparse.Namespace) -> None:
    import torch

    from zooprobe.io import h5io
    from zooprobe.zoo.devices import pick_device
    from zooprobe.extract.features import ExtractSettings, extract_to_writer, layer_dims
    from zooprobe.zoo.models import ModelSpec, create_model
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    settings = ExtractSettings.from_config(args.settings, args.execution)
    spec = ModelSpec.from_config(args.model, args.spec)
    extractor = create_model(spec, weights=args.weights)
    layers = extractor.select_layers(spec.layers)
    device = pick_device(settings.device)
    labels, split, info = h5io.read_image_labels(args.data)
    # Keep the model's own predictions when its head could be over this set's classes; the probe
    # stage scores them only where the params say the label spaces are the same.
    with_head = extractor.num_classes == len(info["class_names"])
    grid = args.spatial_grid
    dims = layer_dims(extractor, tuple(info["image_shape"]), layers=layers, pooling=settings.pooling, device=device,
                      spatial_grid=grid)
    # Everything that changes the numbers is recorded, and a resumed run must match all of it.
    provenance = dict(_provenance_base(), model=args.model, arch=spec.arch, source=spec.source,
                      weights_sha256=extractor.weights_sha256(), pooling=settings.pooling,
                      # Which tokens of a transformer's sequences were pooled (patch tokens only).
                      **extractor.token_pooling(),
                      preprocessing=extractor.preprocessing.as_dict(), seed=spec.seed, precision=settings.precision,
                      # How it ran: recorded, but not part of what a resumed run must match.
                      execution=dict(settings.execution(), device=str(device)),
                      spatial_grid=grid, feature_dtype=args.feature_dtype,
                      dataset=info["name"],
                      dataset_sha256=info["content_sha256"], class_names=info["class_names"],
                      checkpoint_info=extractor.checkpoint_info)
    with h5io.FeatureWriter(args.out, n=info["n"], layer_dims=dims, labels=labels, split=split,
                            provenance=provenance, with_head=with_head, dtype=args.feature_dtype,
                            head_classes=extractor.num_classes if with_head else 0, resume=True) as writer:
        if writer.rows_done:
            log.info("resuming %s at row %d of %d", args.out, writer.rows_done, info["n"])
        bar = tqdm(total=info["n"], initial=writer.rows_done, desc=f"extract {args.model}/{info['name']}",
                   mininterval=2)
        run = extract_to_writer(extractor, lambda start: h5io.ImageBatches(args.data, settings.batch_size, start=start),
                                writer, layers=layers, settings=settings, device=device, with_head=with_head,
                                progress=bar.update, spatial_grid=grid)
        bar.close()
    log.info("wrote %s: %d rows (resumed at %d) in %.1f s, %.0f images/s on %s with %d loader workers; "
             "layers %s; head kept: %s", args.out, run.rows, run.resumed_from, run.seconds, run.images_per_second,
             run.device, run.num_workers, dims, with_head)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to ``sub``."""
    p = sub.add_parser("extract", help="extract layer-wise features of one model on one dataset")
    p.add_argument("--model", required=True)
    p.add_argument("--spec", type=_json, required=True)
    p.add_argument("--settings", type=_json, required=True, help="the extract params section, as JSON")
    p.add_argument("--execution", type=_json, default={},
                   help="the execution.extract params section (batch size, device, workers), as JSON")
    p.add_argument("--data", required=True)
    p.add_argument("--weights")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--spatial-grid", type=int, default=None,
                   help="keep layers spatial, (N, C, h, w) pooled to at most this grid, for dense probes")
    p.add_argument("--feature-dtype", choices=("float32", "float16"), default="float32")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_extract)
