"""Stage commands of probes: ``probe``, ``align``, ``align-tables``, ``dense-probe``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from zooprobe.cli.common import _json, _named_paths, _provenance_base, _write_json

log = logging.getLogger("zooprobe")


def cmd_probe(args: argparse.Namespace) -> None:
    import numpy as np

    from zooprobe.io import h5io
    from zooprobe.probes.linear import probe_every_layer, transfer_split

    settings = args.settings
    id_features = h5io.read_features(args.id)
    evals = {args.id_name: id_features}
    for name, path in _named_paths(args.ood).items():
        evals[name] = h5io.read_features(path)
        # A probe's predictions only mean something on a set with the same label space.
        if evals[name].provenance["class_names"] != id_features.provenance["class_names"]:
            raise SystemExit(f"OOD set {name!r} has classes {evals[name].provenance['class_names']}, but the "
                             f"ID set {args.id_name!r} has {id_features.provenance['class_names']}; "
                             f"an OOD set must share the ID label space (a set with other classes can be a "
                             f"transfer set: probe.tasks.{args.task}.transfer)")
    sweep = dict(c_grid=tuple(settings["c_grid"]), max_iter=settings["max_iter"], seed=settings["seed"])
    train, val, test = (id_features.split == s for s in ("train", "val", "test"))
    layers = list(id_features.provenance["layers"])
    on_id = probe_every_layer(
        layers=layers, train_x={layer: id_features.layers[layer][train] for layer in layers},
        train_y=id_features.labels[train], val_x={layer: id_features.layers[layer][val] for layer in layers},
        val_y=id_features.labels[val], evaluate={name: {layer: (f.layers[layer][test] if name == args.id_name
                                                                else f.layers[layer]) for layer in layers}
                                                 for name, f in evals.items()}, **sweep)
    for layer in layers:
        log.info("%s/%s %s: C=%g val=%.3f", args.model, args.task, layer, on_id.chosen_c[layer],
                 on_id.val_accuracy[layer])
    labels = {name: (f.labels[test] if name == args.id_name else f.labels) for name, f in evals.items()}
    transfer: dict[str, dict[str, Any]] = {}
    versions = {name: f.provenance["zooprobe_version"] for name, f in evals.items()}
    for name, path in _named_paths(args.transfer).items():
        # The tunnel effect as Harun et al. define it: probes trained on the transfer set itself.
        features = evals[name] if name in evals else h5io.read_features(path)
        versions[name] = features.provenance["zooprobe_version"]
        split, how = transfer_split(features.labels, features.split, seed=settings["seed"])
        rows = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
        own = probe_every_layer(
            layers=layers, train_x={layer: features.layers[layer][rows["train"]] for layer in layers},
            train_y=features.labels[rows["train"]], val_x={layer: features.layers[layer][rows["val"]] for layer in layers},
            val_y=features.labels[rows["val"]], evaluate={name: {layer: features.layers[layer][rows["test"]]
                                                                 for layer in layers}}, **sweep)
        transfer[name] = {"predictions": own.predictions[name], "labels": features.labels[rows["test"]],
                          "rows": rows["test"], "n_rows": len(features.labels), "split": how,
                          "chosen_c": own.chosen_c, "val_accuracy": own.val_accuracy,
                          "num_classes": len(features.provenance["class_names"])}
        log.info("%s/%s transfer probes on %s (%s): val %s", args.model, args.task, name, how,
                 {layer: round(acc, 3) for layer, acc in own.val_accuracy.items()})
    head = None
    if args.score_head:
        missing = [name for name, f in evals.items() if f.head_pred is None]
        if missing:
            raise SystemExit(f"--score-head: no head predictions in the features of {missing}; the model's head "
                             f"has {id_features.provenance.get('num_classes', '?')} outputs, not one per class")
        head = {name: (f.head_pred[test] if name == args.id_name else f.head_pred) for name, f in evals.items()}
    source = id_features.provenance
    provenance = dict(_provenance_base(), model=args.model, task=args.task, probe="linear", id_eval=args.id_name,
                      layers=layers, chosen_c=on_id.chosen_c, val_accuracy=on_id.val_accuracy, seed=settings["seed"],
                      c_grid=settings["c_grid"], weights_sha256=source["weights_sha256"],
                      pooling=source["pooling"], preprocessing=source["preprocessing"], arch=source["arch"],
                      checkpoint_info=source.get("checkpoint_info", {}), head_scored=head is not None,
                      transfer={name: {k: v for k, v in t.items() if k not in ("predictions", "labels", "rows")}
                                for name, t in transfer.items()},
                      feature_versions=versions)
    h5io.write_probe_result(args.out, predictions=on_id.predictions, labels=labels, provenance=provenance, head=head,
                            transfer={name: (t["predictions"], t["labels"], t["rows"]) for name, t in transfer.items()})

def _alignment_payload(benchmark: str, model: str, result: Any, provenance: dict[str, Any]) -> dict[str, Any]:
    return {"benchmark": benchmark, "model": model, "rows": result.rows, "score_metric": result.score_metric,
            "selected_layer": result.selected_layer, "score": result.score,
            "replicates": [float(v) for v in result.replicates], "extra": result.extra,
            "layer_selection": result.selection, "provenance": provenance | {"layer_selection": result.selection}}

def cmd_align(args: argparse.Namespace) -> None:
    from zooprobe.probes import alignment
    from zooprobe.io import h5io

    settings = args.settings
    human, split, info = h5io.read_annotations(args.data, "human")
    features = h5io.read_features(args.features)
    if features.provenance["dataset_sha256"] != info["content_sha256"]:
        raise SystemExit(f"{args.features} was extracted from another version of {args.data}; rerun extract")
    provenance = dict(_provenance_base(), benchmark=args.benchmark, model=args.model, dataset=info["name"],
                      dataset_sha256=info["content_sha256"], weights_sha256=features.provenance["weights_sha256"],
                      settings=settings)
    if "label_probs" in human:
        if features.head_logits is None:
            raise SystemExit(f"model {args.model!r} kept no head logits on {info['name']!r}: its head does not "
                             f"predict this set's {len(info['class_names'])} classes, so it has no label "
                             f"distribution to compare with the humans'")
        rows = alignment.labelled_rows(human, split)
        result = alignment.align_predictions(alignment.softmax(features.head_logits[rows]),
                                             human["label_probs"][rows], n_boot=settings["n_boot"],
                                             seed=settings["seed"])
    else:
        result = alignment.align_representation(
            features.layers, human, similarity=settings["similarity"], layer_choice=settings["layer"],
            n_triplets=settings["n_triplets"], n_boot=settings["n_boot"], seed=settings["seed"])
    _write_json(args.out, _alignment_payload(args.benchmark, args.model, result, provenance))
    log.info("%s on %s: %s = %.4f at layer %s", args.model, args.benchmark, result.score_metric, result.score,
             result.selected_layer)

def cmd_align_tables(args: argparse.Namespace) -> None:
    import numpy as np

    from zooprobe.probes import alignment
    from zooprobe.io import h5io
    from zooprobe.io.fetch import sha256_of

    settings = args.settings
    human, split, info = h5io.read_annotations(args.data, "human")
    if "label_probs" not in human:
        raise SystemExit(f"{args.data} has no human label distributions to score prediction tables against")
    rows = alignment.labelled_rows(human, split)
    ranks = human["order_rank"][rows].astype(int)
    tables = sorted(Path(args.tables).glob("*.npz"))
    if not tables:
        raise SystemExit(f"{args.tables}: no .npz prediction tables (with 'logits' or 'probs') found")
    payload = []
    for path in tables:
        with np.load(path, allow_pickle=False) as arrays:
            probs = alignment.table_probabilities(dict(arrays))
        if ranks.max() >= len(probs):
            raise SystemExit(f"{path} has {len(probs)} rows; the human labels reach row {ranks.max()}")
        name = path.stem.removesuffix("_test")
        result = alignment.align_predictions(probs[ranks], human["label_probs"][rows], n_boot=settings["n_boot"],
                                             seed=settings["seed"])
        provenance = dict(_provenance_base(), benchmark=args.benchmark, model=name, source="prediction table",
                          table=path.name, table_sha256=sha256_of(path), dataset=info["name"],
                          dataset_sha256=info["content_sha256"], settings=settings)
        payload.append(_alignment_payload(args.benchmark, name, result, provenance))
        log.info("table %s on %s: cross-entropy %.4f", name, args.benchmark, -result.score)
    _write_json(args.out, payload)

def cmd_dense_probe(args: argparse.Namespace) -> None:
    from zooprobe.probes import dense
    from zooprobe.io import h5io

    settings = args.settings
    labels, split, info = h5io.read_annotations(args.data, "dense")
    features = h5io.read_features(args.features)
    if features.provenance["dataset_sha256"] != info["content_sha256"]:
        raise SystemExit(f"{args.features} was extracted from another version of {args.data}; rerun extract")
    tasks = [task for task in settings["tasks"] if dense.LABEL_OF_TASK[task] in labels]
    if not tasks:
        raise SystemExit(f"{args.data} has none of the labels of the tasks {settings['tasks']} "
                         f"(it has {sorted(labels) or 'no dense labels'})")
    probe = dense.DenseProbeSettings(head=settings["head"], epochs=settings["epochs"], lr=settings["lr"],
                                     batch_size=settings["batch_size"], seed=settings["seed"])
    layers = {name: values.astype("float32") for name, values in features.layers.items()}
    if settings.get("concat"):
        import torch

        from zooprobe.zoo.pooling import concat_at_stride

        # Every layer resampled to the finest grid among them, channels stacked: one more "layer".
        maps = [torch.from_numpy(values) for values in layers.values()]
        finest = max((m.shape[2], m.shape[3]) for m in maps)
        layers["concat"] = concat_at_stride(maps, finest).numpy()
    results = dense.probe_layers(layers, labels, split, tasks=tasks, dataset=args.dataset, settings=probe,
                                 layer_choice=settings["layer"], n_boot=settings["n_boot"],
                                 depth_alignment=settings["depth_alignment"])
    provenance = dict(_provenance_base(), model=args.model, dataset=args.dataset,
                      dataset_sha256=info["content_sha256"], weights_sha256=features.provenance["weights_sha256"],
                      spatial_grid=features.provenance.get("spatial_grid"), settings=settings,
                      split_counts={name: int((split == name).sum()) for name in ("train", "val", "test")})
    _write_json(args.out, [dict(result, model=args.model, provenance=dict(
        provenance, layer_chosen_on=result["layer_chosen_on"])) for result in results])
    for result in results:
        log.info("%s on %s: %s = %.4f at layer %s (chosen on %s)", args.model, result["benchmark"],
                 result["score_metric"], result["score"], result["selected_layer"], result["layer_chosen_on"])


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to ``sub``."""
    p = sub.add_parser("probe", help="fit linear probes per layer and score them on ID and OOD sets")
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--settings", type=_json, required=True)
    p.add_argument("--id-name", required=True)
    p.add_argument("--id", required=True, help="features on the in-distribution set")
    p.add_argument("--ood", nargs="*", help="NAME=PATH features on each OOD set")
    p.add_argument("--transfer", nargs="*", help="NAME=PATH features on each transfer set (probes of its own)")
    p.add_argument("--score-head", action="store_true", help="also score the model's own head (same label space)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_probe)

    # One model's features (or head) scored against a dataset's extra labels: human or per-pixel.
    for name, func, target, help_text, section in (
        ("align", cmd_align, "--benchmark", "score one model's features or head against human judgements", "align"),
        ("dense-probe", cmd_dense_probe, "--dataset",
         "fit dense heads (depth, normals, figure-ground) on spatial features", "dense"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--model", required=True)
        p.add_argument(target, required=True)
        p.add_argument("--settings", type=_json, required=True, help=f"the {section} params section, as JSON")
        p.add_argument("--data", required=True, help="the dataset file, with its human or dense labels")
        p.add_argument("--features", required=True, help="the model's features on that dataset")
        p.add_argument("--out", required=True)
        p.set_defaults(func=func)

    p = sub.add_parser("align-tables", help="score published prediction tables against human label distributions")
    p.add_argument("--benchmark", required=True)
    p.add_argument("--settings", type=_json, required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--tables", required=True, help="folder of .npz tables with 'logits' or 'probs'")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_align_tables)
