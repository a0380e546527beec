"""Rule params read from params.yaml, and which keys each reads: the machinery behind ``from_config``.

The rules (rules/*.smk) build every param that carries science settings with ``from_config``, so
that a param knows the params.yaml keys it reads; ``zooprobe dvc-sync`` lists exactly those keys as
the DVC stage's params, and Snakemake and DVC agree on what a job reads. This module imports
neither Snakemake nor torch: the Snakefile calls it at parse time, in every job too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

# Where the NVIDIA driver lists the GPUs it sees, one folder each.
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def as_json(value: Any) -> str:
    """A param as the CLI receives it: JSON with sorted keys, so that the command (and its hash) stays stable.

    Args:
        value: any JSON-serialisable value.

    Returns:
        The JSON text.
    """
    return json.dumps(value, sort_keys=True)


def config_value(config: Mapping[str, Any], dotted_key: str) -> Any:
    """The value at a dotted path of the config, e.g. ``"probe.tasks.shapes"``.

    Args:
        config: the workflow's config.
        dotted_key: keys joined by dots.

    Returns:
        The value found there.

    Raises:
        KeyError: naming the missing key and the keys that exist at that level.
    """
    value: Any = config
    walked = []
    for part in dotted_key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            choices = sorted(value) if isinstance(value, Mapping) else []
            raise KeyError(f"params have no key {'.'.join([*walked, part])!r}; "
                           f"{'.'.join(walked) or 'the top level'} has {choices}")
        value = value[part]
        walked.append(part)
    return value


KeySource = str | Callable[[Any], list[str]]


class ConfigParam:
    """A rule param computed from named config keys; Snakemake calls it with the job's wildcards.

    Attributes:
        keys: dotted keys (may hold ``{wildcard}`` fields) or functions of the wildcards that
            return a list of keys.
        derive: computes the param from the wildcards; None: the one key's value as JSON.
    """

    def __init__(self, config: Mapping[str, Any], keys: Sequence[KeySource],
                 derive: Callable[[Any], Any] | None = None) -> None:
        if derive is None and (len(keys) != 1 or callable(keys[0])):
            raise ValueError("from_config: give one key, or a derive function")
        self.config = config
        self.keys = tuple(keys)
        self.derive = derive

    def __call__(self, wildcards: Any) -> Any:
        """The param's value for one job."""
        if self.derive is not None:
            return self.derive(wildcards)
        return as_json(config_value(self.config, _fill(self.keys[0], wildcards)))

    def config_keys_for(self, wildcards: Any) -> list[str]:
        """The dotted params keys the param reads for one job, in the order given (dvc-sync reads this)."""
        found: list[str] = []
        for key in self.keys:
            found += key(wildcards) if callable(key) else [_fill(key, wildcards)]
        return found


def _fill(key: str, wildcards: Any) -> str:
    # Snakemake's Wildcards (like a dict) unpacks to its names and values.
    return key.format(**wildcards)


def from_config(config: Mapping[str, Any], *keys: KeySource,
                derive: Callable[[Any], Any] | None = None) -> ConfigParam:
    """A rule param read from the named config keys, e.g. ``from_config(config, "extract")``.

    Args:
        config: the workflow's config (read when a job's params are computed).
        keys: dotted keys, which may hold wildcards, or functions of the wildcards returning keys.
        derive: computes the param from the wildcards; without it the param is the one key's value as JSON.

    Returns:
        The param function, which also answers ``config_keys_for(wildcards)``.
    """
    return ConfigParam(config, keys, derive)


def section_keys(config: Mapping[str, Any], section: str, skip: Sequence[str] = ()) -> list[str]:
    """The dotted keys of a config section's settings, in params order.

    Args:
        config: the workflow's config.
        section: a dotted section, e.g. ``"probe"`` or ``"introspective.probe"``; absent or empty: no keys.
        skip: keys of the section that are not settings (e.g. ``tasks``, read by other params).

    Returns:
        ``section.key`` for each key not skipped.
    """
    try:
        entries = config_value(config, section) or {}
    except KeyError:
        entries = {}
    return [f"{section}.{key}" for key in entries if key not in skip]


def section_settings(config: Mapping[str, Any], section: str, skip: Sequence[str] = ()) -> ConfigParam:
    """The one settings param of a stage: a section's keys but the skipped ones, as a JSON object.

    Args:
        config: the workflow's config.
        section: a dotted section, e.g. ``"probe"``, ``"align"``, ``"introspective.probe"``.
        skip: keys left out (they reach the job as other params, or not at all).

    Returns:
        The param: ``{"key": value, ...}`` as JSON, reading exactly those keys.
    """
    keys = section_keys(config, section, skip)

    def settings(wildcards: Any) -> str:
        return as_json({key[len(section) + 1:]: config_value(config, key) for key in keys})

    return ConfigParam(config, keys, derive=settings)


def host_sees_gpu(environ: Mapping[str, str] | None = None, nvidia_gpus: Path = NVIDIA_GPUS) -> bool:
    """Whether this host shows an NVIDIA GPU to its processes, without importing torch.

    CUDA_VISIBLE_DEVICES set to nothing (or -1) hides every GPU, as CUDA itself reads it; otherwise the
    driver's GPU list in /proc, or else ``nvidia-smi -L``, says whether there is one.

    Args:
        environ: the environment (default: this process's).
        nvidia_gpus: the driver's GPU list folder.

    Returns:
        True when a GPU is visible.
    """
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    if nvidia_gpus.is_dir() and any(nvidia_gpus.iterdir()):
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listing.returncode == 0 and "GPU" in listing.stdout


def gpu_wanted(device: str, *, host_has_gpu: Callable[[], bool] = host_sees_gpu) -> int:
    """The ``gpu`` resource of a job that runs a model: 1 when it will run on a GPU, else 0.

    Decided without torch, because every job parses the Snakefile again: ``cuda`` always wants one,
    ``auto`` wants one when the host shows one (see ``host_sees_gpu``), ``cpu`` never.

    Args:
        device: the params' device setting: ``auto``, ``cuda`` or ``cpu`` (the schema allows no other).
        host_has_gpu: asked only for ``auto``.

    Returns:
        1 or 0.
    """
    return int(device == "cuda" or (device == "auto" and host_has_gpu()))
