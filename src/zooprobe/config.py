"""Checks of the params that a JSON schema cannot express: cross-references and model names.

The schema (``schemas/params.schema.yaml``) checks types and enumerations when Snakemake
parses the workflow; :func:`check_config` then checks that every referenced dataset, model
and layer exists, so a typo fails before any job starts, with the valid choices listed.
"""

from __future__ import annotations

from typing import Any, Mapping

from zooprobe.models import ModelConfigError, ModelSpec


class ConfigError(ValueError):
    """Params that name something that does not exist; the message lists the valid choices."""


def expand_path(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Expand ``$VARIABLES`` in a path from the params, failing clearly when one is unset.

    Params name shared locations as, e.g., ``$ZOOPROBE_ASSETS/cifar10-jpeg``, so that no
    machine-specific path is written into params or code.

    Args:
        text: the path as written in the params.
        environ: the environment (default ``os.environ``).

    Returns:
        The expanded path.
    """
    import os
    import re

    environ = os.environ if environ is None else environ
    missing = [name for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text) if not environ.get(name)]
    if missing:
        raise ConfigError(f"path {text!r} uses unset environment variable(s) {missing}; set them, e.g. "
                          f"export {missing[0]}=/path/to/shared/assets")
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: environ[m.group(1)], text)


def _require(name: Any, valid: list[str], what: str, where: str) -> None:
    if name not in valid:
        raise ConfigError(f"{where}: unknown {what} {name!r}; valid {what}s: {', '.join(sorted(valid))}")


def declared_splits(entry: Mapping[str, Any]) -> set[str]:
    """The splits a dataset entry will have, read from its params alone."""
    if entry["source"] in ("shift", "corrupt"):
        return {"test"}
    splits = set(entry.get("split_dirs") or entry.get("split_kwargs") or {name for name, fraction in entry.get("splits", {"test": 1}).items()
                                              if fraction > 0})
    if entry.get("val_fraction") and "train" in splits:
        splits.add("val")
    return splits


def model_specs(config: Mapping[str, Any]) -> dict[str, ModelSpec]:
    """Parse the ``models`` section into specs, failing on unknown sources or architectures."""
    specs = {}
    for name, entry in config["models"].items():
        try:
            specs[name] = ModelSpec.from_config(name, entry)
        except ModelConfigError as error:
            raise ConfigError(str(error)) from None
    return specs


def check_config(config: Mapping[str, Any], *, check_layers: bool = True) -> dict[str, ModelSpec]:
    """Check every cross-reference in the params.

    Args:
        config: params already validated against the schema.
        check_layers: also build each model that names ``layers`` and check those names.

    Returns:
        The parsed model specs, by name.
    """
    datasets = list(config["datasets"])
    for name, entry in config["datasets"].items():
        if entry["source"] in ("shift", "corrupt"):
            _require(entry["of"], [d for d in datasets if d != name], "dataset", f"datasets.{name}.of")
            if config["datasets"][entry["of"]]["source"] in ("shift", "corrupt"):
                raise ConfigError(f"datasets.{name}.of: {entry['of']!r} is itself a shifted copy; shift an ID set")
        if "splits" in entry and abs(sum(entry["splits"].values()) - 1) > 1e-6:
            raise ConfigError(f"datasets.{name}.splits: fractions must sum to 1, got {entry['splits']}")
    for task, entry in config["probe"]["tasks"].items():
        _require(entry["id"], datasets, "dataset", f"probe.tasks.{task}.id")
        id_splits = declared_splits(config["datasets"][entry["id"]])
        if not {"train", "val", "test"} <= id_splits:
            raise ConfigError(f"probe.tasks.{task}.id: {entry['id']!r} needs train, val and test splits, "
                              f"has {sorted(id_splits)}")
        for ood in entry.get("ood", []):
            _require(ood, datasets, "dataset", f"probe.tasks.{task}.ood")
    specs = model_specs(config)
    for name, spec in specs.items():
        if spec.source == "trained":
            _require(spec.train_on, datasets, "dataset", f"models.{name}.train_on")
            splits = declared_splits(config["datasets"][spec.train_on])
            if not {"train", "val"} <= splits:
                raise ConfigError(f"models.{name}.train_on: {spec.train_on!r} needs train and val splits, "
                                  f"has {sorted(splits)}")
        if spec.head_dataset:
            _require(spec.head_dataset, datasets, "dataset", f"models.{name}.head_dataset")
        if check_layers and spec.layers:
            _check_layers(spec)
    return specs


def _check_layers(spec: ModelSpec) -> None:
    from dataclasses import replace

    from zooprobe.models import PRE_LOGITS, create_model

    # The architecture alone names the layers: build it without loading any weights.
    source = spec.source if spec.source in ("torchvision", "pypi") else "timm"
    bare = replace(spec, source=source, pretrained=False, checkpoint=None, layers=())
    valid = create_model(bare).layer_names
    unknown = [layer for layer in spec.layers if layer not in valid]
    if unknown:
        raise ConfigError(f"models.{spec.name}.layers: unknown layers {unknown}; valid layers: {valid} "
                          f"({PRE_LOGITS!r} is the penultimate, pooled representation of timm models)")
