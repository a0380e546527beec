"""The ``train`` stage as one call: one zoo entry trained from scratch, its checkpoint written atomically."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from pathlib import Path
from typing import Any, Mapping

import torch

from zooprobe.io import h5io
from zooprobe.io.atomic import atomic_output
from zooprobe.params.introspective import IntrospectiveSettings
from zooprobe.params.settings import Recipe
from zooprobe.params.spec import ModelConfigError, ModelSpec
from zooprobe.train.icn.training import train_introspective
from zooprobe.train.recipe import train_model

log = logging.getLogger(__name__)


def train_to_file(*, model: str, entry: Mapping[str, Any], recipe_section: Mapping[str, Any], data_path: str | Path,
                  out: str | Path, introspective_section: Mapping[str, Any] | None, threads: int,
                  provenance: Mapping[str, Any]) -> list[dict[str, float]]:
    """Train one ``trained`` zoo entry on its dataset with the shared recipe and write its checkpoint.

    An ``introspective:<arch>`` entry trains as an introspective classifier with
    ``introspective_section``; an entry's own ``augment`` (a sweep variable) overrides the recipe's.

    Args:
        model: the zoo name.
        entry: its params entry.
        recipe_section: the ``train`` params.
        data_path: the image set it trains on (``train``, and ``val`` scored after each epoch).
        out: the checkpoint (loads with ``torch.load(weights_only=True)``).
        introspective_section: the ``introspective.model`` params, needed by an introspective entry.
        threads: torch CPU threads.
        provenance: what every output records first (the code version).

    Returns:
        The per-epoch history, with wall-clock seconds (which the checkpoint leaves out).

    Raises:
        ModelConfigError: an introspective entry without ``introspective_section``.
    """
    spec = ModelSpec.from_config(model, entry)
    data = h5io.read_image_set(data_path)
    recipe = Recipe.from_config(recipe_section)
    if spec.augment is not None:  # a model (e.g. a sweep variant) may switch augmentation on or off
        recipe = dataclasses.replace(recipe, augment=spec.augment)
    if spec.introspective:
        if introspective_section is None:
            raise ModelConfigError(f"model {model!r} is {spec.arch!r}: pass the introspective.model params "
                                   f"with --introspective")
        settings = IntrospectiveSettings.from_config(introspective_section)
        checkpoint, history = train_introspective(spec, data, recipe, settings, threads=threads)
    else:
        checkpoint, history = train_model(spec, data, recipe, threads=threads)
    # An introspective model also records its rounds and sampler as used (defaults filled in).
    used = {"introspective": checkpoint["introspective_settings"]} if "introspective_settings" in checkpoint else {}
    checkpoint["provenance"] = json.dumps(dict(provenance, model=model, spec=entry, **used,
                                               dataset=data.attrs.get("name"),
                                               dataset_sha256=data.attrs["content_sha256"]))
    for row in history:  # timings go to the log, never into the checkpoint
        log.info("epoch %d: %s", row["epoch"], row)
    buffer = io.BytesIO()  # torch.save names its archive after the file: a temporary name would differ per run
    torch.save(checkpoint, buffer)
    with atomic_output(out) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return history
