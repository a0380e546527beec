"""What a model offers the extract stage: its layer names, their activation shapes and pooled widths.

Like thingsvision's ``show_model``: ``zooprobe layers MODEL_ENTRY`` prints this, so that
``models.<name>.layers`` can be written without reading the model's code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml

from zooprobe.extract.features import layer_dims
from zooprobe.params.config import model_entries
from zooprobe.params.settings import POOLINGS
from zooprobe.params.spec import ModelConfigError, ModelSpec
from zooprobe.zoo.devices import pick_device
from zooprobe.zoo.factory import architecture_only, create_model


@dataclass(frozen=True)
class LayerInfo:
    """One layer an extractor can return.

    Attributes:
        name: the name ``models.<name>.layers`` uses.
        shape: one image's activation, without the batch axis: (C, H, W), (tokens, D) or (D,).
        width: the columns the extract stage writes for it with the pooling asked for.
    """

    name: str
    shape: tuple[int, ...]
    width: int


def model_entry(argument: str, params: str | Path | None = None) -> tuple[str, Mapping[str, Any]]:
    """Read a model entry given as JSON, or by name from a params file.

    Args:
        argument: a params entry as JSON (``'{"source": "timm", "arch": "resnet10t"}'``), or the
            name of a model in ``params``.
        params: a params file (YAML); needed when ``argument`` is a name.

    Returns:
        The model's name (``entry`` for a JSON entry) and its entry.
    """
    if argument.lstrip().startswith("{"):
        try:
            entry = json.loads(argument)
        except json.JSONDecodeError as error:
            raise ModelConfigError(f"MODEL_ENTRY {argument!r} is not valid JSON ({error})") from None
        return "entry", entry
    if params is None:
        raise ModelConfigError(f"MODEL_ENTRY {argument!r} is not a JSON entry; give an entry such as "
                               f"'{{\"source\": \"timm\", \"arch\": \"resnet10t\"}}', or a model name with "
                               f"--params params.yaml")
    entries = model_entries(yaml.safe_load(Path(params).read_text()) or {})
    if argument not in entries:
        raise ModelConfigError(f"{params}: no model {argument!r}; valid models: {', '.join(entries) or 'none'}")
    return argument, entries[argument]


def describe_layers(spec: ModelSpec, *, pooling: str = "avg", weights: str | Path | None = None) -> list[LayerInfo]:
    """Every layer of a zoo entry, input to output, with its shape and pooled width (one blank image, on the CPU).

    Args:
        spec: the zoo entry.
        pooling: a pooling in :data:`zooprobe.params.settings.POOLINGS`.
        weights: a state-dict file to load; without one, the architecture is built with no weights at all
            (:func:`zooprobe.zoo.factory.architecture_only`), which names the same layers.

    Returns:
        One :class:`LayerInfo` per layer.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; valid: {list(POOLINGS)}")
    extractor = create_model(spec, weights=weights) if weights else create_model(architecture_only(spec))
    names = extractor.layer_names
    side = extractor.preprocessing.input_size
    blank = torch.zeros((1, side, side, 3), dtype=torch.uint8)
    with torch.inference_mode():
        outputs, _ = extractor.forward_layers(extractor.preprocessing(blank), names)
    # The widths come from the extract stage's own code path, so they are what it writes.
    widths = layer_dims(extractor, (side, side, 3), layers=names, pooling=pooling, device=pick_device("cpu"))
    return [LayerInfo(name, tuple(int(d) for d in outputs[name].shape[1:]), int(widths[name])) for name in names]


def layers_table(argument: str, *, params: str | Path | None = None, pooling: str = "avg",
                 weights: str | Path | None = None) -> str:
    """The ``layers`` command's output: a model's layers as a plain-text table.

    Args:
        argument: the model entry as JSON, or a model name in ``params`` (see :func:`model_entry`).
        params: a params file, for a name.
        pooling: the pooling whose widths are listed.
        weights: a state-dict file to load (a ``trained`` or ``checkpoint`` entry's); none is needed.

    Returns:
        One line per layer (name, activation shape, pooled width), under a header naming the model.
    """
    name, entry = model_entry(argument, params)
    spec = ModelSpec.from_config(name, entry)
    layers = describe_layers(spec, pooling=pooling, weights=weights)
    rows = [("layer", "activation", f"{pooling} width")] + [
        (layer.name, "x".join(map(str, layer.shape)), str(layer.width)) for layer in layers]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{spec.name} ({spec.source} {spec.arch}): {len(layers)} layers"]
    lines += [f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}" for row in rows]
    return "\n".join(lines)
