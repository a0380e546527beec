"""Baseline against ICN, trained from scratch with one architecture and one seed.

The baseline is the same (K+1)-output network trained by the same code with zero rounds, so
the comparison isolates the pseudo-negatives.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from zooprobe.data.imageset import ImageSet
from zooprobe.data.label_space import require_same_label_space
from zooprobe.io import h5io
from zooprobe.io.atomic import atomic_output, write_json
from zooprobe.params.introspective import IntrospectiveSettings
from zooprobe.params.settings import Recipe
from zooprobe.params.spec import ModelSpec
from zooprobe.train.icn.evaluation import FGSM_EPSILONS_255, evaluate
from zooprobe.train.icn.training import train_introspective
from zooprobe.train.recipe import train_model
from zooprobe.zoo.factory import build_timm, preprocessing_of

log = logging.getLogger(__name__)


def compare_from_scratch(spec: ModelSpec, data: ImageSet, ood: Mapping[str, ImageSet], recipe: Recipe,
                         settings: IntrospectiveSettings, *, epsilons_255: Sequence[int] = FGSM_EPSILONS_255,
                         threads: int = 1) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Train the baseline and the ICN of one architecture with one seed, and score both.

    The baseline is the same (K+1)-output network trained by the same code with zero rounds.

    Args:
        spec: the architecture as a ``trained`` :class:`zooprobe.params.spec.ModelSpec` (its seed is the run's).
        data: the ID set (``train``, ``val``, ``test`` splits).
        ood: shifted sets with the same classes.
        recipe: the shared recipe.
        settings: the ICN's rounds and sampler.
        epsilons_255: FGSM budgets.
        threads: torch CPU threads.

    Returns:
        ``{"baseline": {...}, "icn": {...}}`` with each arm's scores and history (the
        ICN's also its rounds), and the ICN's sample grid of each round.
    """
    result: dict[str, Any] = {}
    grids: list[np.ndarray] = []
    test = data.subset("test")
    for arm in ("baseline", "icn"):
        started = time.perf_counter()
        if arm == "baseline":
            checkpoint, history = train_model(spec, data, recipe, threads=threads, progress=False,
                                               negative_output=True)
        else:
            checkpoint, history = train_introspective(spec, data, recipe, settings, threads=threads, progress=False)
            grids = [grid.numpy() for grid in checkpoint["sample_grids"]]
        log.info("%s %s trained in %.1f s", arm, spec.name, time.perf_counter() - started)  # in the log, not the result
        model = build_timm(spec, num_classes=len(data.class_names) + 1)
        model.load_state_dict(checkpoint["state_dict"])
        torch.set_num_threads(threads)
        scores = evaluate(model, preprocessing_of(model), test, ood, epsilons_255=epsilons_255)
        result[arm] = {"scores": scores, "history": [{k: v for k, v in h.items() if k != "seconds"} for h in history],
                       "weights_sha256": checkpoint["weights_sha256"], "rounds": checkpoint.get("rounds", [])}
    return result, grids


def run_comparison(*, dataset: str, arch_name: str, arch_entry: Mapping[str, Any], seed: int,
                   recipe_section: Mapping[str, Any], settings_section: Mapping[str, Any],
                   epsilons_255: Sequence[int], data_path: str | Path, ood_paths: Mapping[str, str | Path],
                   threads: int, out: str | Path, grids_out: str | Path, provenance: Mapping[str, Any]
                   ) -> dict[str, Any]:
    """The ``icn-compare`` stage: :func:`compare_from_scratch` on files, scores to JSON and grids to npz.

    Args:
        dataset: the ID dataset's name.
        arch_name: the architecture's name under ``introspective.compare``.
        arch_entry: its entry (``arch``, ``input_size``, ``arch_kwargs``).
        seed: the run's seed.
        recipe_section: the ``train`` params.
        settings_section: the ``introspective.model`` params.
        epsilons_255: FGSM budgets in 1/255 units.
        data_path: the ID image set.
        ood_paths: each OOD image set, by name; each must have the ID set's classes.
        threads: torch CPU threads.
        out: the JSON result (scores and histories).
        grids_out: the ICN's sample grid per round (npz).
        provenance: what every output records first (the code version).

    Returns:
        ``{"baseline": {...}, "icn": {...}}`` as :func:`compare_from_scratch` returns it.

    Raises:
        LabelSpaceError: an OOD set has other classes than the ID set.
    """
    spec = ModelSpec.from_config(f"{arch_name}-s{seed}", dict(arch_entry, source="trained", train_on=dataset,
                                                              seed=seed))
    data = h5io.read_image_set(data_path)
    ood = {}
    for name, path in ood_paths.items():
        shifted = h5io.read_image_set(path)
        require_same_label_space(ood_name=name, ood_classes=shifted.class_names, id_name=dataset,
                                 id_classes=data.class_names)
        ood[name] = shifted
    settings = IntrospectiveSettings.from_config(settings_section)
    result, grids = compare_from_scratch(spec, data, ood, Recipe.from_config(recipe_section), settings,
                                         epsilons_255=epsilons_255, threads=threads)
    provenance = dict(provenance, dataset=dataset, dataset_sha256=data.attrs["content_sha256"],
                      arch=arch_entry, seed=seed, recipe=recipe_section, settings=settings_section,
                      settings_used=asdict(settings),
                      ood={name: s.attrs["content_sha256"] for name, s in ood.items()})
    write_json(out, dict(result, dataset=dataset, arch=arch_name, seed=seed, provenance=provenance))
    with atomic_output(grids_out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, dataset=np.array(dataset), arch=np.array(arch_name),
                                seed=np.array(seed), **{f"round_{i + 1}": grid for i, grid in enumerate(grids)})
    for arm in ("baseline", "icn"):
        log.info("%s %s on %s: %s", arm, spec.name, dataset,
                 ", ".join(f"{k}={v:.4f}" for k, v in result[arm]["scores"].items()))
    return result
