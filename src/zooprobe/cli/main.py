"""The ``zooprobe`` command: one subcommand per pipeline stage, called by the Snakemake rules.

Each subcommand reads its inputs, calls pure functions from the library, and writes its
outputs atomically. Params arrive as JSON strings, exactly the keys the stage reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger("zooprobe")


def _json(text: str) -> Any:
    return json.loads(text)


def _named_paths(items: Sequence[str] | None) -> dict[str, str]:
    """``NAME=PATH`` arguments (e.g. ``--ood``) as a mapping, in the order given."""
    return {name: path for name, _, path in (item.partition("=") for item in items or [])}


def _provenance_base() -> dict[str, Any]:
    from zooprobe import code_version

    # No wall-clock time or host name: the same inputs, params and code give byte-identical outputs.
    return {"zooprobe_version": code_version()}


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


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from zooprobe.io import h5io
    from zooprobe.io.atomic import atomic_output
    from zooprobe.zoo.models import ModelSpec
    from zooprobe.train.recipe import Recipe, train_model

    spec = ModelSpec.from_config(args.model, args.spec)
    data = h5io.read_image_set(args.data)
    recipe = Recipe.from_config(args.recipe)
    if spec.augment is not None:  # a model (e.g. a sweep variant) may switch augmentation on or off
        recipe = dataclasses.replace(recipe, augment=spec.augment)
    if spec.introspective:
        from zooprobe.train.icn.introspective import IntrospectiveSettings, train_introspective

        if args.introspective is None:
            raise SystemExit(f"model {args.model!r} is {spec.arch!r}: pass the introspective.model params "
                             f"with --introspective")
        settings = IntrospectiveSettings.from_config(args.introspective)
        checkpoint, history = train_introspective(spec, data, recipe, settings, threads=args.threads)
    else:
        checkpoint, history = train_model(spec, data, recipe, threads=args.threads)
    # An introspective model also records its rounds and sampler as used (defaults filled in).
    used = {"introspective": checkpoint["introspective_settings"]} if "introspective_settings" in checkpoint else {}
    checkpoint["provenance"] = json.dumps(dict(_provenance_base(), model=args.model, spec=args.spec, **used,
                                               dataset=data.attrs.get("name"),
                                               dataset_sha256=data.attrs["content_sha256"]))
    for row in history:  # timings go to the log, never into the checkpoint
        log.info("epoch %d: %s", row["epoch"], row)
    buffer = io.BytesIO()  # torch.save names its archive after the file: a temporary name would differ per run
    torch.save(checkpoint, buffer)
    with atomic_output(args.out) as tmp:
        tmp.write_bytes(buffer.getvalue())
    log.info("trained %s: %s", args.model, history[-1])


def cmd_icn_compare(args: argparse.Namespace) -> None:
    import numpy as np

    from zooprobe.io import h5io
    from zooprobe.io.atomic import atomic_output
    from zooprobe.train.icn.introspective import IntrospectiveSettings, compare_from_scratch
    from zooprobe.zoo.models import ModelSpec
    from zooprobe.train.recipe import Recipe

    spec = ModelSpec.from_config(f"{args.arch_name}-s{args.seed}", dict(args.arch, source="trained",
                                                                         train_on=args.dataset, seed=args.seed))
    data = h5io.read_image_set(args.data)
    ood = {}
    for name, path in _named_paths(args.ood).items():
        shifted = h5io.read_image_set(path)
        if list(shifted.class_names) != list(data.class_names):
            raise SystemExit(f"OOD set {name!r} has classes {shifted.class_names}, but {args.dataset!r} has "
                             f"{data.class_names}; an OOD set must share the ID label space")
        ood[name] = shifted
    settings = IntrospectiveSettings.from_config(args.settings)
    result, grids = compare_from_scratch(spec, data, ood, Recipe.from_config(args.recipe), settings,
                                         epsilons_255=args.epsilons, threads=args.threads)
    provenance = dict(_provenance_base(), dataset=args.dataset, dataset_sha256=data.attrs["content_sha256"],
                      arch=args.arch, seed=args.seed, recipe=args.recipe, settings=args.settings,
                      settings_used=dataclasses.asdict(settings),
                      ood={name: s.attrs["content_sha256"] for name, s in ood.items()})
    _write_json(args.out, dict(result, dataset=args.dataset, arch=args.arch_name, seed=args.seed,
                               provenance=provenance))
    with atomic_output(args.grids) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, dataset=np.array(args.dataset), arch=np.array(args.arch_name),
                                seed=np.array(args.seed), **{f"round_{i + 1}": grid for i, grid in enumerate(grids)})
    for arm in ("baseline", "icn"):
        log.info("%s %s-s%d on %s: %s", arm, args.arch_name, args.seed, args.dataset,
                 ", ".join(f"{k}={v:.4f}" for k, v in result[arm]["scores"].items()))


def cmd_icn_probe(args: argparse.Namespace) -> None:
    from zooprobe.io import h5io
    from zooprobe.train.icn.introspective import FeatureProbeSettings, compare_probes

    settings = FeatureProbeSettings.from_config(args.settings)
    id_features = h5io.read_features(args.id)
    ood = {name: h5io.read_features(path) for name, path in _named_paths(args.ood).items()}
    train, val, test = (id_features.split == s for s in ("train", "val", "test"))
    rows = []
    for layer in id_features.provenance["layers"]:
        x, y = id_features.layers[layer], id_features.labels
        evals = {args.id_name: (x[test], y[test])} | {name: (f.layers[layer], f.labels) for name, f in ood.items()}
        for row in compare_probes((x[train], y[train]), (x[val], y[val]), evals,
                                  num_classes=len(id_features.provenance["class_names"]), settings=settings,
                                  seeds=args.settings["seeds"]):
            rows.append(dict(row, layer=layer))
            log.info("%s/%s %s seed %d %s: %s", args.model, args.task, layer, row["seed"], row["method"],
                     {k: round(v, 4) for k, v in row["accuracy"].items()})
    provenance = dict(_provenance_base(), model=args.model, task=args.task, settings=args.settings,
                      settings_used=dataclasses.asdict(settings),
                      weights_sha256=id_features.provenance["weights_sha256"],
                      pooling=id_features.provenance["pooling"], layers=id_features.provenance["layers"])
    _write_json(args.out, {"model": args.model, "task": args.task, "id_eval": args.id_name, "rows": rows,
                           "provenance": provenance})


def cmd_icn_table(args: argparse.Namespace) -> None:
    from zooprobe.io.atomic import atomic_output
    from zooprobe.train.icn.introspective import icn_tables

    compare = [json.loads(Path(path).read_text()) for path in args.compare]
    if args.seeds is not None:
        found: dict[tuple[str, str], set[int]] = {}
        for result in compare:
            found.setdefault((result["dataset"], result["arch"]), set()).add(result["seed"])
        for (dataset, arch), seeds in found.items():
            if seeds != set(args.seeds):
                raise SystemExit(f"{arch} on {dataset}: results for seeds {sorted(seeds)}, expected {args.seeds}")
    probes = [json.loads(Path(path).read_text()) for path in args.probes]
    scores, summary = icn_tables(compare, probes)
    with atomic_output(args.scores) as tmp:
        scores.to_csv(tmp, index=False)
    _write_json(args.summary, summary)
    for row in summary["verdicts"]:
        log.info("%s: %s %s %s: %s", row["experiment"], row["dataset"], row["arch"], row["metric"], row["verdict"])


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


def _write_json(path: str, payload: Any) -> None:
    from zooprobe.io.atomic import atomic_output

    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=1, sort_keys=True, default=float))


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

        from zooprobe.zoo.models import concat_at_stride

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


def cmd_analyse(args: argparse.Namespace) -> None:
    from zooprobe.io import h5io
    from zooprobe.analysis.scores import Design, ProbeRun, score_table
    from zooprobe.analysis.verdicts import agreement_findings
    from zooprobe.io.atomic import atomic_output

    runs = []
    for path in args.probes:
        predictions, labels, provenance, head = h5io.read_probe_result(path)
        runs.append(ProbeRun(provenance["model"], provenance["task"], predictions, labels, provenance, head,
                             h5io.read_transfer_predictions(path)))
    alignment = []
    for path in [*args.alignment, *args.dense]:
        payload = json.loads(Path(path).read_text())
        alignment += payload if isinstance(payload, list) else [payload]
    scores = score_table(runs, n_boot=args.settings["n_bootstrap"], seed=args.settings["seed"], alignment=alignment,
                         design=Design.from_config(args.design))
    if args.sweep:
        import pandas as pd

        from zooprobe.analysis.imagenot import imagenot_table, variable_table

        imagenot = imagenot_table(runs, args.sweep, n_boot=args.settings["n_bootstrap"], seed=args.settings["seed"])
        scores = pd.concat([scores, imagenot, variable_table(scores, args.sweep)], ignore_index=True)
    with atomic_output(args.scores) as tmp:
        scores.to_csv(tmp, index=False)
    summary = {
        "layer_order": {run.model: run.provenance["layers"] for run in runs},
        "alignment_benchmarks": sorted({p["benchmark"] for p in alignment if p.get("kind") != "dense"}),
        "dense_benchmarks": sorted({p["benchmark"] for p in alignment if p.get("kind") == "dense"}),
        "id_benchmarks": sorted({run.provenance["id_eval"] for run in runs}),
        "provenance": [{k: run.provenance[k] for k in ("model", "task", "arch", "weights_sha256", "pooling",
                                                       "preprocessing", "seed", "zooprobe_version")}
                       | {"selected_layer": run.selected_layer} for run in runs],
        # Rank agreement per pair of benchmarks with both intervals, adjusted p and verdict (zooprobe.analysis.verdicts).
        "agreement": {f"{prefix}{statistic}": agreement_findings(scores, prefix=prefix, statistic=statistic)
                      for prefix in ("", "imagenot_") for statistic in ("kendall_tau", "spearman_rho")},
    }
    with atomic_output(args.summary) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    log.info("wrote %s (%d rows)", args.scores, len(scores))


def cmd_report(args: argparse.Namespace) -> None:
    import pandas as pd

    from zooprobe.io.atomic import atomic_output
    from zooprobe.report.html import render_report

    scores = pd.read_csv(args.scores)
    summary = json.loads(Path(args.summary).read_text())
    layer_order = dict(summary["layer_order"], __id__=summary["id_benchmarks"],
                       __alignment__=summary.get("alignment_benchmarks", []),
                       __dense__=summary.get("dense_benchmarks", []))
    introspective = None
    if args.icn_summary:
        import numpy as np

        introspective = json.loads(Path(args.icn_summary[0]).read_text())
        introspective["grids"] = []
        for path in args.icn_grids:
            with np.load(path) as grids:
                rounds = sorted((k for k in grids.files if k.startswith("round_")), key=lambda k: int(k[6:]))
                introspective["grids"].append({"dataset": str(grids["dataset"]), "arch": str(grids["arch"]),
                                               "seed": int(grids["seed"]), "rounds": [grids[k] for k in rounds]})
    page = render_report(scores=scores, layer_order=layer_order, config=args.config,
                         provenance=summary["provenance"], title=args.settings.get("title", "zooprobe report"),
                         introspective=introspective)
    with atomic_output(args.out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("wrote %s (%.0f kB)", args.out, len(page) / 1024)


def cmd_check_config(args: argparse.Namespace) -> None:
    import yaml

    from zooprobe.params.config import check_config

    specs = check_config(yaml.safe_load(Path(args.params).read_text()))
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


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="zooprobe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

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

    p = sub.add_parser("train", help="train one model from scratch with the shared recipe")
    p.add_argument("--model", required=True)
    p.add_argument("--spec", type=_json, required=True)
    p.add_argument("--recipe", type=_json, required=True, help="the train params section, as JSON")
    p.add_argument("--data", required=True)
    p.add_argument("--introspective", type=_json, default=None,
                   help="the introspective.model params, as JSON, for an 'introspective:<arch>' model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("icn-compare", help="train one architecture as a baseline and as an ICN with one seed; "
                                           "score test, OOD and FGSM error")
    p.add_argument("--dataset", required=True, help="the ID dataset's name")
    p.add_argument("--arch-name", required=True, help="the architecture's name under introspective.compare")
    p.add_argument("--arch", type=_json, required=True, help="its entry (arch, input_size, arch_kwargs), as JSON")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--recipe", type=_json, required=True, help="the train params section, as JSON")
    p.add_argument("--settings", type=_json, required=True, help="the introspective.model params, as JSON")
    p.add_argument("--epsilons", type=_json, required=True, help="FGSM budgets in 1/255 units, as JSON")
    p.add_argument("--data", required=True)
    p.add_argument("--ood", nargs="*", default=[], help="NAME=PATH of each OOD dataset")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="scores and histories (JSON)")
    p.add_argument("--grids", required=True, help="the ICN's sample grid per round (npz)")
    p.set_defaults(func=cmd_icn_compare)

    p = sub.add_parser("icn-probe", help="plain and introspective probes on one model's frozen features, per layer")
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--settings", type=_json, required=True, help="the introspective.probe params, as JSON")
    p.add_argument("--id-name", required=True)
    p.add_argument("--id", required=True, help="features on the in-distribution set")
    p.add_argument("--ood", nargs="*", default=[], help="NAME=PATH features on each OOD set")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_icn_probe)

    p = sub.add_parser("icn-table", help="collect ICN comparisons and probes into a tidy table and verdicts")
    p.add_argument("--compare", nargs="*", default=[], help="icn-compare results (JSON)")
    p.add_argument("--probes", nargs="*", default=[], help="icn-probe results (JSON)")
    p.add_argument("--seeds", type=_json, default=None, help="seeds every comparison must have, as JSON")
    p.add_argument("--scores", required=True, help="tidy CSV of every ICN score")
    p.add_argument("--summary", required=True, help="verdicts per dataset and metric (JSON)")
    p.set_defaults(func=cmd_icn_table)

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


    p = sub.add_parser("analyse", help="rank models and compare rankings across benchmarks")
    p.add_argument("--probes", nargs="+", required=True)
    p.add_argument("--settings", type=_json, required=True)
    p.add_argument("--sweep", type=_json, default=None, help="the sweep params section, as JSON (null: none)")
    p.add_argument("--alignment", nargs="*", default=[], help="alignment results (JSON) from align and align-tables")
    p.add_argument("--dense", nargs="*", default=[], help="dense-probe results (JSON) from dense-probe")
    p.add_argument("--design", type=_json, default=None,
                   help="units, shared test rows and random-init pairs, as JSON (zooprobe.params.config.analysis_design)")
    p.add_argument("--scores", required=True)
    p.add_argument("--summary", required=True)
    p.set_defaults(func=cmd_analyse)

    p = sub.add_parser("report", help="render the HTML report")
    p.add_argument("--scores", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--config", type=_json, required=True)
    p.add_argument("--settings", type=_json, default={})
    p.add_argument("--icn-summary", nargs="*", default=[], help="icn-table summary (JSON), if the run has one")
    p.add_argument("--icn-grids", nargs="*", default=[], help="icn-compare sample grids (npz) to show")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report)

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
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``zooprobe`` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
