"""Extraction feeds a model what its own evaluation transform would: stored squares + on-device crop vs timm's PIL path.

The stored image is the aspect-preserving square of data.imageset.shorter_side_center_crop; the
extractor's Preprocessing then resizes it to input_size / crop_pct and center-crops input_size on the
device. timm's reference resizes the original photograph's shorter side and crops it through PIL.
The two differ only by resampling twice, so the model's own top-1 must agree on nearly every image.
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
from zooprobe.zoo.factory import create_model, preprocessing_of

# Enough images that ">= 99% agree" allows at most 2 disagreements, few enough to take seconds.
N_IMAGES = 200
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


def _compare(model: torch.nn.Module, preprocessing: Preprocessing, images: list) -> tuple[float, float, np.ndarray]:
    ours, reference = _ours(images, preprocessing), _reference(images, preprocessing)
    assert ours.shape == reference.shape == (len(images), 3, preprocessing.input_size, preprocessing.input_size)
    predicted, expected = _top1(model, ours), _top1(model, reference)
    # Normalised units: 1.0 is about one standard deviation of a channel.
    return float((ours - reference).abs().mean()), float((predicted == expected).mean()), expected


def test_efficientnet_lite0_sees_its_own_eval_transform():
    images = _photographs()
    extractor = create_model(ModelSpec(name="lite0", source="pypi", arch="efficientnet_lite0"))
    preprocessing = extractor.preprocessing
    assert (preprocessing.input_size, preprocessing.crop_pct, preprocessing.interpolation) == (224, 0.875, "bicubic")
    mean_abs, agreement, expected = _compare(extractor.model.eval(), preprocessing, images)
    print(f"EfficientNet-Lite0: mean |ours - timm| = {mean_abs:.4f}, top-1 agreement {agreement:.3f}")
    assert agreement >= 0.99
    assert mean_abs < 0.05  # a few grey levels of resampling difference, in normalised units
    # The weights are real: the reference predictions mostly name the image's class (sorted wnid order).
    # The full-frame squash of the old path is measurably further from the reference than our crop.
    squash = Preprocessing(input_size=224, mean=preprocessing.mean, std=preprocessing.std,
                           interpolation="bicubic", crop_pct=1.0)
    squash_abs = float((_ours(images, squash) - _reference(images, preprocessing)).abs().mean())
    assert squash_abs > 5 * mean_abs, (squash_abs, mean_abs)
    assert len(set(expected.tolist())) > N_IMAGES // 2


def test_a_timm_model_sees_its_data_config_eval_transform():
    # No model hub is reachable, so this timm model has random weights (seeded); its data config is the
    # published one (resnet18: 224 px, crop_pct 0.95, bicubic, ImageNet mean/std), which is what is tested.
    import timm

    images = _photographs()
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False).eval()
    preprocessing = preprocessing_of(model, eval_crop=True)
    assert (preprocessing.input_size, preprocessing.crop_pct, preprocessing.interpolation) == (224, 0.95, "bicubic")
    mean_abs, agreement, expected = _compare(model, preprocessing, images)
    print(f"timm resnet18 (random init): mean |ours - timm| = {mean_abs:.4f}, top-1 agreement {agreement:.3f}")
    assert agreement >= 0.99
    assert mean_abs < 0.05  # a few grey levels of resampling difference, in normalised units
    # Random weights could predict one class for everything, which would agree trivially.
    assert len(set(expected.tolist())) >= 10
