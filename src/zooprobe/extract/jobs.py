"""The ``extract`` stage as one call: one model's layer-wise features on one image set, resumable."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

import torch
from tqdm import tqdm

from zooprobe.data.label_space import HEAD_LABEL_SPACES, subset_head_predictions
from zooprobe.extract.features import ExtractionRun, extract_to_writer, layer_dims
from zooprobe.io import h5io
from zooprobe.params.settings import ExtractSettings
from zooprobe.params.spec import ModelSpec
from zooprobe.zoo.devices import pick_device
from zooprobe.zoo.factory import create_model

log = logging.getLogger(__name__)


def extract_to_file(*, model: str, entry: Mapping[str, Any], settings_section: Mapping[str, Any],
                    execution_section: Mapping[str, Any], data_path: str | Path, weights: str | Path | None,
                    out: str | Path, threads: int, spatial_grid: int | None, feature_dtype: str,
                    provenance: Mapping[str, Any]) -> ExtractionRun:
    """Extract one model's features on one image set into an HDF5 file, resuming a partial one.

    Args:
        model: the zoo name.
        entry: its params entry.
        settings_section: the ``extract`` params (what changes the features).
        execution_section: the ``execution.extract`` params (how the job runs).
        data_path: the image set.
        weights: the state-dict file of a ``trained`` or ``checkpoint`` entry.
        out: the features file.
        threads: torch CPU threads.
        spatial_grid: keep layers spatial, (N, C, h, w) pooled to at most this grid, for dense probes.
        feature_dtype: ``float32`` or ``float16`` on disk.
        provenance: what every output records first (the code version).

    Returns:
        What the run did (rows, resume point, time, device).
    """
    torch.set_num_threads(threads)
    settings = ExtractSettings.from_config(settings_section, execution_section)
    spec = ModelSpec.from_config(model, entry)
    extractor = create_model(spec, weights=weights)
    layers = extractor.select_layers(spec.layers)
    device = pick_device(settings.device)
    labels, split, info = h5io.read_image_labels(data_path)
    # Keep the model's own predictions when its head could be over this set's classes; the probe
    # stage scores them only where the params say the label spaces are the same.
    with_head = extractor.num_classes == len(info["class_names"])
    # A set that declares its classes as ids of a head label space (head_classes) keeps the head's
    # full logits, and its predictions take the argmax over the set's classes only.
    head_classes = info.get("head_classes")
    subset = bool(head_classes) and extractor.num_classes == HEAD_LABEL_SPACES[head_classes["space"]]
    with_head = (with_head and not head_classes) or subset
    # A published model on a set that kept its photographs' files sees its own eval transform applied
    # to each original once, through PIL, as the reference transform does (not a second resampling of
    # the stored square); everything else reads the stored squares.
    from_encoded = extractor.preprocessing.eval_transform and h5io.has_encoded_images(data_path)
    dims = layer_dims(extractor, tuple(info["image_shape"]), layers=layers, pooling=settings.pooling, device=device,
                      spatial_grid=spatial_grid)
    # Everything that changes the numbers is recorded, and a resumed run must match all of it.
    provenance = dict(provenance, model=model, arch=spec.arch, source=spec.source,
                      weights_sha256=extractor.weights_sha256(), pooling=settings.pooling,
                      # Which tokens of a transformer's sequences were pooled (patch tokens only).
                      **extractor.token_pooling(),
                      preprocessing=extractor.preprocessing.as_dict(stored_size=int(info["image_shape"][0]),
                                                                    from_encoded=from_encoded),
                      seed=spec.seed, precision=settings.precision,
                      # How it ran: recorded, but not part of what a resumed run must match.
                      execution=dict(settings.execution(), device=str(device)),
                      spatial_grid=spatial_grid, feature_dtype=feature_dtype,
                      dataset=info["name"],
                      dataset_sha256=info["content_sha256"], class_names=info["class_names"],
                      checkpoint_info=extractor.checkpoint_info,
                      **({"head_classes": dict(head_classes, head_outputs=extractor.num_classes)} if head_classes else {}))
    with h5io.FeatureWriter(out, n=info["n"], layer_dims=dims, labels=labels, split=split,
                            provenance=provenance, with_head=with_head, dtype=feature_dtype,
                            head_classes=extractor.num_classes if with_head else 0, resume=True) as writer:
        if writer.rows_done:
            log.info("resuming %s at row %d of %d", out, writer.rows_done, info["n"])
        bar = tqdm(total=info["n"], initial=writer.rows_done, desc=f"extract {model}/{info['name']}", mininterval=2)
        target = _SubsetHeadWriter(writer, head_classes["indices"]) if subset else writer
        decode = extractor.preprocessing.decode if from_encoded else None
        run = extract_to_writer(extractor,
                                lambda start: h5io.ImageBatches(data_path, settings.batch_size, start=start, decode=decode),
                                target, layers=layers, settings=settings, device=device, with_head=with_head,
                                progress=bar.update, spatial_grid=spatial_grid, transformed=from_encoded)
        bar.close()
    log.info("wrote %s: %d rows (resumed at %d) in %.1f s, %.0f images/s on %s with %d loader workers; "
             "layers %s; head kept: %s", out, run.rows, run.resumed_from, run.seconds, run.images_per_second,
             run.device, run.num_workers, dims, with_head)
    return run


class _SubsetHeadWriter:
    """A feature writer whose head predictions are the argmax over a subset of the head's classes.

    Args:
        writer: the entered :class:`zooprobe.io.h5io.FeatureWriter` (it stores the full logits).
        class_indices: the head output index of each of the set's classes, in its label order.
    """

    def __init__(self, writer: h5io.FeatureWriter, class_indices: Sequence[int]) -> None:
        self._writer, self._class_indices = writer, list(class_indices)

    @property
    def rows_done(self) -> int:
        return self._writer.rows_done

    def write(self, batch: Mapping[str, np.ndarray], head_logits: np.ndarray | None = None) -> None:
        self._writer.write(batch, head_logits, head_pred=subset_head_predictions(
            np.asarray(head_logits), class_indices=self._class_indices))
