"""Stage commands of models trained here: ``train`` and the introspective ``icn-*`` commands."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
from pathlib import Path

from zooprobe.cli.common import _json, _named_paths, _provenance_base, _write_json

log = logging.getLogger("zooprobe")


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


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to ``sub``."""
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
