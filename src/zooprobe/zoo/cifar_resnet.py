"""CIFAR ResNet-20/32/44/56 (He et al. 2016, section 4.2) with option-A shortcuts.

The layout and parameter names follow akamaster/pytorch_resnet_cifar10, so its published
checkpoints load with ``strict=True``. The models are registered with timm's registry
(``cifar_resnet20`` ...) and implement timm's ``forward_intermediates`` interface, so the
one factory and the one timm extractor serve them like any other timm model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

# Blocks per stage of each depth (6n+2 layers), and its size in millions of parameters.
DEPTHS: dict[str, int] = {"cifar_resnet20": 3, "cifar_resnet32": 5, "cifar_resnet44": 7, "cifar_resnet56": 9}
PARAMS_M: dict[str, float] = {"cifar_resnet20": 0.27, "cifar_resnet32": 0.46, "cifar_resnet44": 0.66,
                              "cifar_resnet56": 0.85}
# The normalisation the published checkpoints were trained with.
CIFAR_RESNET_MEAN = (0.485, 0.456, 0.406)
CIFAR_RESNET_STD = (0.229, 0.224, 0.225)


class _OptionAShortcut(nn.Module):
    """Identity shortcut that subsamples by 2 and zero-pads the new channels (no parameters)."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = _OptionAShortcut(planes) if stride != 1 or in_planes != planes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32-px images: a 16-channel stem and three stages of n blocks."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_chans: int = 3, **_: Any) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 64
        self.conv1 = nn.Conv2d(in_chans, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes_in = 16
        stages = []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(blocks_per_stage):
                blocks.append(BasicBlock(planes_in, planes, stride if i == 0 else 1))
                planes_in = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, num_classes)
        self.feature_info = [dict(num_chs=16, reduction=1, module="act1")] + [
            dict(num_chs=c, reduction=r, module=f"layer{i + 1}") for i, (c, r) in enumerate(((16, 1), (32, 2), (64, 4)))]
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward_intermediates(self, x: torch.Tensor, indices: list[int] | int | None = None,
                              intermediates_only: bool = False, stop_early: bool = False,
                              **_: Any) -> Any:
        """timm's interface: the stem output and each stage output, as (N, C, H, W) maps."""
        wanted = range(4) if indices is None else (range(4 - indices, 4) if isinstance(indices, int) else indices)
        wanted = sorted(i % 4 for i in wanted)
        outputs = []
        x = F.relu(self.bn1(self.conv1(x)))
        for i, stage in enumerate((None, self.layer1, self.layer2, self.layer3)):
            if stage is not None:
                x = stage(x)
            if i in wanted:
                outputs.append(x)
            if stop_early and intermediates_only and i >= wanted[-1]:
                break
        return outputs if intermediates_only else (x, outputs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.linear(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _build(name: str, pretrained: bool, pretrained_cfg_overlay: dict[str, Any] | None, **kwargs: Any) -> CifarResNet:
    if pretrained:
        raise ValueError(f"{name}: load published weights with source 'checkpoint' (a file or a URL with sha256)")
    model = CifarResNet(DEPTHS[name], **{k: v for k, v in kwargs.items() if k in ("num_classes", "in_chans")})
    cfg = dict(architecture=name, input_size=(3, 32, 32), mean=CIFAR_RESNET_MEAN, std=CIFAR_RESNET_STD,
               interpolation="bilinear", crop_pct=1.0, num_classes=model.num_classes)
    cfg.update(pretrained_cfg_overlay or {})
    model.pretrained_cfg = model.default_cfg = cfg
    return model


def _entry_point(name: str, millions_of_params: float) -> Any:
    """timm's entry point of one depth, registered under ``name``."""

    def entry_point(pretrained: bool = False, pretrained_cfg: Any = None,
                    pretrained_cfg_overlay: dict[str, Any] | None = None, **kwargs: Any) -> CifarResNet:
        return _build(name, pretrained, pretrained_cfg_overlay, **kwargs)

    # timm's registry names an entry point after its __name__.
    entry_point.__name__ = entry_point.__qualname__ = name
    entry_point.__doc__ = f"CIFAR ResNet-{name.removeprefix('cifar_resnet')} ({millions_of_params} M params)."
    return entry_point


for _name, _millions in PARAMS_M.items():
    register_model(_entry_point(_name, _millions))
