"""An introspective classifier trained from scratch: the shared recipe plus synthesis rounds."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from zooprobe.data.imageset import ImageSet
from zooprobe.params.introspective import IntrospectiveSettings
from zooprobe.params.settings import Recipe
from zooprobe.params.spec import ModelSpec
from zooprobe.train.icn.sampler import PixelSynthesiser
from zooprobe.train.recipe import train_model


def train_introspective(spec: ModelSpec, data: ImageSet, recipe: Recipe, settings: IntrospectiveSettings, *,
                        threads: int = 1, progress: bool = True) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Train ``spec``'s architecture from scratch as an introspective classifier.

    Args:
        spec: a ``trained`` zoo entry (its ``introspective:`` prefix, if any, is implied here).
        data: image set; ``train`` is fitted, ``val`` scored after each epoch.
        recipe: the shared :class:`zooprobe.params.settings.Recipe` (same as the baseline's).
        settings: rounds and sampler.
        threads: torch CPU threads.
        progress: show a progress bar.

    Returns:
        The checkpoint (K+1 outputs; ``negative_class`` = K; ``sample_grids``, one uint8 grid per
        round; ``rounds``, the sampler's log; ``introspective_settings``, rounds and sampler with
        defaults filled in) and the per-epoch history.
    """
    train = data.subset("train")
    synthesiser = PixelSynthesiser(settings, epochs=recipe.epochs, num_classes=len(data.class_names),
                                   real=train.images, seed=recipe.seed + spec.seed + 1)
    checkpoint, history = train_model(spec, data, recipe, threads=threads, progress=progress,
                                      negative_output=True, synthesise=synthesiser)
    checkpoint["negative_class"] = len(data.class_names)
    checkpoint["sample_grids"] = [torch.from_numpy(grid) for grid in synthesiser.grids]
    checkpoint["rounds"] = [dict(r) for r in synthesiser.rounds]
    # Provenance: the settings in force, defaults filled in (the sampler's kind is implied: Langevin).
    checkpoint["introspective_settings"] = asdict(settings)
    return checkpoint, history
