"""Settings of introspective classification (``introspective`` params), without importing torch.

The sampler, the from-scratch ICN and the feature-space probe (zooprobe.train.icn) read these
dataclasses; the Snakefile and every job check the params with them cheaply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, TypeVar

from zooprobe.params.sections import section_from_config
from zooprobe.params.settings import OptimiserSettings

SAMPLER_INITS: tuple[str, ...] = ("previous", "noise")
PROBE_HEADS: tuple[str, ...] = ("linear", "mlp")


@dataclass(frozen=True)
class SamplerSettings:
    """Langevin dynamics on the input: ``x <- clip(x + step_size * grad score + sqrt(2 step_size T) * N(0, 1))``.

    With the noise tied to the step this way the chain's stationary distribution (as the step
    goes to 0) is ``∝ exp(score(x) / T)`` restricted to the clamping box, so the samples are
    draws from the classifier-defined distribution, not points near its modes.

    Attributes:
        steps: Langevin steps per round.
        step_size: gradient step (pixels in [0, 1]; standardised units for feature probes).
        temperature: T; 1 samples the model's own distribution, lower values concentrate the
            samples on high scores (the old independent noise ``sigma`` at step ``s`` is
            ``T = sigma**2 / (2 s)``).
        init: ``previous`` (persistent chains: each round continues from the previous round's
            samples of the same class; the first round starts from noise) or ``noise`` (every
            round restarts from Gaussian noise with the real data's mean and sd).
    """

    steps: int = 30
    step_size: float = 0.01
    temperature: float = 1.0
    init: str = "previous"

    def __post_init__(self) -> None:
        if self.init not in SAMPLER_INITS:
            raise ValueError(f"sampler init {self.init!r} is not one of {list(SAMPLER_INITS)}")
        if self.steps < 0 or self.step_size < 0 or self.temperature < 0:
            raise ValueError(f"sampler steps, step_size and temperature must be >= 0, got {self}")

    @property
    def noise_sd(self) -> float:
        """Standard deviation of each step's Gaussian noise, ``sqrt(2 step_size T)``."""
        return math.sqrt(2.0 * self.step_size * self.temperature)

    @classmethod
    def from_config(cls, section: Mapping[str, Any], *, name: str) -> "SamplerSettings":
        """Build from a ``sampler`` params section; the removed ``noise`` key fails with its replacement.

        Args:
            section: the mapping from params.yaml.
            name: the section's name, for the error message.

        Returns:
            The settings. Unknown keys fail with the valid ones.
        """
        if "noise" in section:
            step = section.get("step_size", cls.step_size)
            hint = (f" (noise {section['noise']} at step_size {step} is temperature "
                    f"{float(section['noise']) ** 2 / (2 * float(step)):.3g})" if step else "")
            raise ValueError(f"{name}: 'noise' was replaced by 'temperature': the sampler is Langevin dynamics, "
                             f"whose noise sd is sqrt(2 * step_size * temperature); an independent noise sd "
                             f"sigma is temperature sigma**2 / (2 * step_size){hint}")
        return section_from_config(cls, section, name=name)


@dataclass(frozen=True)
class IntrospectiveSettings:
    """Reclassification-by-synthesis for a model trained from scratch (``introspective.model``).

    Attributes:
        rounds: synthesis rounds, at evenly spaced epoch boundaries (must be < ``train.epochs``).
        samples_per_class: pseudo-negatives synthesised per class per round (M).
        grid_per_class: samples per class kept for the per-round grid.
        sampler: the Langevin sampler's settings.
    """

    rounds: int = 2
    samples_per_class: int = 20
    grid_per_class: int = 4
    sampler: SamplerSettings = field(default_factory=SamplerSettings)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "IntrospectiveSettings":
        """Build from ``introspective.model`` (see :func:`_with_sampler`)."""
        return _with_sampler(cls, section, name="introspective.model")


def round_epochs(rounds: int, epochs: int) -> list[int]:
    """Epochs before which a round synthesises: evenly spaced, never before the first epoch.

    Args:
        rounds: number of rounds.
        epochs: epochs of the recipe.

    Returns:
        ``rounds`` distinct epoch indices in ``[1, epochs)``.
    """
    if rounds < 0 or (rounds and rounds >= epochs):
        raise ValueError(f"introspective rounds ({rounds}) must be between 0 and train.epochs - 1 ({epochs - 1}): "
                         f"each round sits at an epoch boundary after the first epoch; raise train.epochs or "
                         f"lower the rounds")
    return [r * epochs // (rounds + 1) for r in range(1, rounds + 1)]


@dataclass(frozen=True)
class FeatureProbeSettings(OptimiserSettings):
    """An introspective probe on frozen features (``introspective.probe``), fitted with AdamW.

    Attributes:
        epochs, batch_size, lr, weight_decay: as in :class:`OptimiserSettings`, with a probe's defaults.
        head: ``linear`` or ``mlp`` (one hidden layer of ``hidden`` units).
        hidden: MLP width.
        rounds: synthesis rounds (0 is the plain probe); evenly spaced epoch boundaries.
        samples_per_class: pseudo-negatives per class per round.
        sampler: Langevin dynamics in standardised feature space, clamped to the training features' range.
    """

    epochs: int = 60
    batch_size: int = 256
    lr: float = 0.01
    weight_decay: float = 1e-4
    head: str = "linear"
    hidden: int = 256
    rounds: int = 2
    samples_per_class: int = 50
    sampler: SamplerSettings = field(default_factory=lambda: SamplerSettings(steps=30, step_size=0.1))

    def __post_init__(self) -> None:
        if self.head not in PROBE_HEADS:
            raise ValueError(f"introspective probe head {self.head!r} is not one of {list(PROBE_HEADS)}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "FeatureProbeSettings":
        """Build from ``introspective.probe``, less its task and seed lists (see :func:`_with_sampler`)."""
        return _with_sampler(cls, {key: value for key, value in section.items() if key not in ("tasks", "seeds")},
                             name="introspective.probe")


Settings = TypeVar("Settings", IntrospectiveSettings, FeatureProbeSettings)


def _with_sampler(cls: type[Settings], section: Mapping[str, Any], *, name: str) -> Settings:
    """Build ``cls`` from a params section whose ``sampler`` key is a nested sampler section.

    Args:
        cls: :class:`IntrospectiveSettings` or :class:`FeatureProbeSettings`.
        section: the mapping from params.yaml.
        name: the section's name, for error messages.

    Returns:
        The settings. Unknown keys, here or under ``sampler``, fail with the valid ones.
    """
    values = dict(section)
    sampler = SamplerSettings.from_config(values.pop("sampler", {}), name=f"{name}.sampler")
    return replace(section_from_config(cls, values, name=name), sampler=sampler)
