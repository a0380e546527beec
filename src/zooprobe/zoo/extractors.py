"""One abstract extractor and one subclass per way of reading layers.

:class:`TimmExtractor` reads timm models (and zooprobe's registered ones) with
``forward_intermediates``; :class:`HookExtractor` reads any other ``torch.nn.Module`` with
forward hooks on named submodules (torchvision models, PyPI-shipped ones). Every extractor
carries the model's own :class:`Preprocessing`.
"""

from __future__ import annotations

import abc
import functools
import inspect
import io
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zooprobe.params.spec import PRE_LOGITS, ModelConfigError
from zooprobe.zoo.checkpoints import state_dict_sha256
from zooprobe.zoo.pooling import TOKEN_POOLING


@dataclass(frozen=True)
class Preprocessing:
    """How uint8 images become model input: resize (and center-crop), scale to [0, 1], normalise.

    With ``crop_pct`` 1.0 (the default: trained, random-init and checkpoint models) the whole stored
    square is resized to ``input_size`` exactly as before (no resize at all when the sizes match).
    With ``crop_pct`` < 1 it follows timm's ``transforms_imagenet_eval``: resize to
    ``scale_size = floor(input_size / crop_pct)`` with ``antialias=True``, then center-crop ``input_size``.

    ``eval_transform`` marks the preprocessing of published weights (a timm data config, torchvision
    weights' transforms, timm's config of a PyPI model). For those, a set that keeps its encoded
    files is read through :meth:`decode`: the original photograph, resized and cropped once through
    PIL exactly as the reference transform does, then only normalised on the device.
    """

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    eval_transform: bool = False

    @property
    def scale_size(self) -> int:
        """Side the stored square is resized to before the center crop (timm's rule)."""
        return int(math.floor(self.input_size / self.crop_pct))

    def decode(self, encoded: bytes) -> np.ndarray:
        """Decode one encoded photograph and apply this eval transform's resize and crop, through PIL.

        The steps of timm's ``transforms_imagenet_eval`` (and torchvision's ``ImageClassification``)
        on a PIL image: convert to RGB, resize the shorter side to :attr:`scale_size` with this
        interpolation, center-crop ``input_size``. Normalising is left to :meth:`__call__` with
        ``transformed=True``, on the device.

        Args:
            encoded: the image file's bytes (JPEG, PNG, ...).

        Returns:
            uint8 (input_size, input_size, 3).
        """
        from PIL import Image
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        with Image.open(io.BytesIO(encoded)) as image:
            rgb = image.convert("RGB")
        # crop_pct 1.0 gives scale_size == input_size: the shorter side to input_size, then the crop.
        rgb = TF.resize(rgb, self.scale_size, interpolation=InterpolationMode(self.interpolation))
        return np.asarray(TF.center_crop(rgb, [self.input_size, self.input_size]))

    def __call__(self, images: torch.Tensor, *, transformed: bool = False) -> torch.Tensor:
        """Turn uint8 (N, H, W, C) images, or floats in [0, 1], into normalised float (N, C, size, size).

        Args:
            images: the batch.
            transformed: the images already went through :meth:`decode` (resized and cropped to
                ``input_size``): only scale and normalise them.
        """
        # uint8 pixels are scaled to [0, 1]; float images (e.g. synthesised ones) already are.
        x = images.permute(0, 3, 1, 2)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        mode = "bicubic" if self.interpolation == "bicubic" else "bilinear"
        if transformed:
            if x.shape[-2:] != (self.input_size, self.input_size):
                raise ValueError(f"transformed images must be {self.input_size} px, got {tuple(x.shape[-2:])}")
        elif self.crop_pct >= 1.0:
            # Unchanged path: results of existing (full-frame) configs stay bit-identical.
            if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
                x = F.interpolate(x, size=(self.input_size, self.input_size), mode=mode, align_corners=False)
        else:
            scale = self.scale_size
            if x.shape[-1] != scale or x.shape[-2] != scale:
                x = F.interpolate(x, size=(scale, scale), mode=mode, align_corners=False, antialias=True)
                if mode == "bicubic":
                    # PIL's bicubic output is clipped to the pixel range; the tensor one overshoots.
                    x = x.clamp_(0.0, 1.0)
            # torchvision's center_crop rounds the offset: int(round((H - size) / 2)).
            top = int(round((x.shape[-2] - self.input_size) / 2.0))
            left = int(round((x.shape[-1] - self.input_size) / 2.0))
            x = x[..., top:top + self.input_size, left:left + self.input_size]
        mean, std = _normalisation(self.mean, self.std, str(x.device))
        return (x - mean) / std

    def as_dict(self, stored_size: int | None = None, *, from_encoded: bool = False) -> dict[str, Any]:
        """Return a JSON-ready record of this preprocessing.

        Args:
            stored_size: side of the stored squares, when known; records whether they were upsampled.
            from_encoded: the model read the encoded photographs through :meth:`decode`, not the squares.

        Returns:
            The fields and ``scale_size``; with ``from_encoded``, ``pixels`` (the encoded files); else,
            with ``stored_size``, ``stored_size`` and ``upsampled``.
        """
        record = asdict(self)
        record["scale_size"] = self.scale_size if self.crop_pct < 1.0 else self.input_size
        if from_encoded:
            record["pixels"] = "encoded files, decoded and transformed per model through PIL"
        elif stored_size is not None:
            record["stored_size"] = int(stored_size)
            record["upsampled"] = int(stored_size) < record["scale_size"]
        return record


@functools.lru_cache(maxsize=16)
def _normalisation(mean: tuple[float, ...], std: tuple[float, ...], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    # Cached per device: building them per batch would copy host to device, a sync point on CUDA.
    # Made outside inference mode, so training can still divide by them with autograd on.
    with torch.inference_mode(False):
        return (torch.tensor(mean, device=device).view(1, -1, 1, 1),
                torch.tensor(std, device=device).view(1, -1, 1, 1))


# The layer holding a transformer's class token, where the model has one (after the blocks, before pre-logits).
CLS_LAYER = "cls"


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
