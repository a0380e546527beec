"""Small architectures registered in timm's model registry, so one factory builds them all.

timm's own entry points fix the patch size and depth of ViT and MLP-Mixer, which are far
too large for 32-px images on a CPU. Registering scaled-down variants keeps
``timm.create_model(name)`` the only way a model is built.
"""

from __future__ import annotations

import inspect
from typing import Any

import timm
from timm.models import register_model
from timm.models.mlp_mixer import MlpMixer

SMALL_INPUT = (3, 32, 32)


def _with_cfg(model: Any, name: str, mean: tuple[float, ...], std: tuple[float, ...],
              overlay: dict[str, Any] | None) -> Any:
    cfg = dict(architecture=name, input_size=SMALL_INPUT, mean=mean, std=std,
               interpolation="bilinear", crop_pct=1.0, num_classes=model.num_classes)
    cfg.update(overlay or {})
    model.pretrained_cfg = cfg
    model.default_cfg = cfg
    return model


@register_model
def zp_vit_tiny(pretrained: bool = False, pretrained_cfg: Any = None,
                pretrained_cfg_overlay: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A 4-block ViT (dim 96, 3 heads, 4-px patches) for 32-px images; about 0.5 M params."""
    if pretrained:
        raise ValueError("zp_vit_tiny has no pretrained weights; use pretrained: false")
    args = dict(img_size=32, patch_size=4, depth=4, embed_dim=96, num_heads=3) | kwargs
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **args)
    return _with_cfg(model, "zp_vit_tiny", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), pretrained_cfg_overlay)


# Options timm.create_model hands every entry point, whatever the architecture takes.
TIMM_LOADER_OPTIONS = {"cache_dir"}


@register_model
def zp_mixer_tiny(pretrained: bool = False, pretrained_cfg: Any = None,
                  pretrained_cfg_overlay: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A 4-block MLP-Mixer (dim 128, 4-px patches) for 32-px images; about 0.6 M params."""
    if pretrained:
        raise ValueError("zp_mixer_tiny has no pretrained weights; use pretrained: false")
    accepted = inspect.signature(MlpMixer).parameters
    # timm's factory passes loader options (e.g. cache_dir) that MlpMixer itself does not take;
    # anything else unknown is a typo (a depth sweep needs num_blocks, not depth), so it fails.
    unknown = sorted(set(kwargs) - set(accepted) - TIMM_LOADER_OPTIONS)
    if unknown:
        raise TypeError(f"zp_mixer_tiny: unknown arguments {unknown}; MlpMixer takes {sorted(accepted)}")
    args = dict(img_size=32, patch_size=4, num_blocks=4, embed_dim=128) | {
        key: value for key, value in kwargs.items() if key in accepted}
    model = MlpMixer(**args)
    return _with_cfg(model, "zp_mixer_tiny", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), pretrained_cfg_overlay)
from zooprobe.zoo import cifar_resnet  # noqa: E402,F401  (registers cifar_resnet20..56)
