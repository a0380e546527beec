"""Settings of the torch stages (``train``, ``extract``) as frozen dataclasses, without importing torch.

The Snakefile and every job check these sections cheaply; the modules that run models read
the same dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from zooprobe.params.sections import section_from_config

# Where a job may run (zooprobe.zoo.devices picks one).
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
# How a layer becomes a (N, D) matrix (zooprobe.zoo.pooling).
POOLINGS: tuple[str, ...] = ("avg", "avg2x2")
# Arithmetic of the forward pass: fp32, or autocast to bf16 or fp16 (zooprobe.extract.features).
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class OptimiserSettings:
    """What every AdamW fit here is given: passes, minibatch size, learning rate, weight decay.

    Attributes:
        epochs: passes over the training data.
        batch_size: minibatch size.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
    """

    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05


@dataclass(frozen=True)
class Recipe(OptimiserSettings):
    """The shared training recipe (the ImageNot protocol). Defaults are the embedded default's values.

    Attributes:
        warmup_fraction: share of the steps with a linear learning-rate warmup.
        label_smoothing: smoothing of the real labels.
        augment: random reflect-padded translations.
        seed: shifts every model's seed (initialisation and data order).
        device: ``auto``, ``cpu`` or ``cuda``.
    """

    warmup_fraction: float = 0.1
    label_smoothing: float = 0.1
    augment: bool = True
    seed: int = 0
    device: str = "auto"

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "Recipe":
        """Build from the ``train`` params section.

        Args:
            section: the mapping from params.yaml.

        Returns:
            The recipe. Unknown keys fail with the valid ones.
        """
        return section_from_config(cls, section, name="train")


# What extraction computes (params section ``extract``) against how it runs (``execution.extract``):
# the execution settings change features by at most rounding (about 1e-6), so changing them reruns no job.
SCIENCE_KEYS = ("pooling", "precision")
EXECUTION_KEYS = ("batch_size", "device", "channels_last", "num_workers")


@dataclass(frozen=True)
class ExtractSettings:
    """The ``extract`` params section with ``execution.extract``.

    Attributes:
        pooling: a pooling in :data:`POOLINGS`.
        batch_size: images per forward pass.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        precision: ``fp32``, or autocast to ``bf16`` or ``fp16``; features are stored as float32.
        channels_last: run convolutions in channels-last layout (faster on tensor cores).
        num_workers: loader worker processes; ``auto`` is 0 on the CPU (the forward pass needs
            every core) and up to 4 on a GPU.
    """

    pooling: str = "avg"
    batch_size: int = 256
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    num_workers: int | str = "auto"

    def __post_init__(self) -> None:
        checks = [("pooling", self.pooling, POOLINGS), ("device", self.device, DEVICES),
                  ("precision", self.precision, PRECISIONS)]
        for name, value, valid in checks:
            if value not in valid:
                raise ValueError(f"extract.{name}: unknown value {value!r}; valid: {list(valid)}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"execution.extract.batch_size must be a positive integer, got {self.batch_size!r}")
        if self.num_workers != "auto" and (not isinstance(self.num_workers, int) or self.num_workers < 0):
            raise ValueError(f"execution.extract.num_workers must be 'auto' or an integer >= 0, got {self.num_workers!r}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any], execution: Mapping[str, Any] | None = None) -> "ExtractSettings":
        """Build from the ``extract`` params section and ``execution.extract``.

        Args:
            section: the ``extract`` mapping (what changes the features).
            execution: the ``execution.extract`` mapping (how the job runs).

        Returns:
            The settings. Unknown keys, or a key in the wrong section, fail with the valid ones.
        """
        execution = execution or {}
        for key in section:
            if key in EXECUTION_KEYS:
                raise ValueError(f"extract.{key} is an execution setting: move it to execution.extract, where "
                                 f"changing it reruns no job (valid extract keys: {list(SCIENCE_KEYS)})")
        for key in execution:
            if key in SCIENCE_KEYS:
                raise ValueError(f"execution.extract.{key} changes the features: set it under extract "
                                 f"(valid execution.extract keys: {list(EXECUTION_KEYS)})")
        return section_from_config(cls, {**section, **execution}, name="extract")

    def execution(self) -> dict[str, Any]:
        """The execution settings, as recorded in provenance (they do not change the numbers)."""
        return {key: getattr(self, key) for key in EXECUTION_KEYS}
