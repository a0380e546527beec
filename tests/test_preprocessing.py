"""Preprocessing: full-frame path unchanged; crop_pct < 1 follows timm's eval transform."""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from zooprobe.zoo.extractors import Preprocessing

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _old(images: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    # The code before crop_pct existed, kept here as the reference for bit-identity.
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode=mode, align_corners=False)
    return (x - torch.tensor(MEAN).view(1, -1, 1, 1)) / torch.tensor(STD).view(1, -1, 1, 1)


def test_full_frame_is_bit_identical_to_the_old_code() -> None:
    images = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for size, mode in [(32, "bilinear"), (32, "bicubic"), (64, "bilinear"), (48, "bicubic")]:
        ours = Preprocessing(input_size=size, mean=MEAN, std=STD, interpolation=mode)(images)
        assert torch.equal(ours, _old(images, size, mode))
    record = Preprocessing(input_size=32, mean=MEAN, std=STD).as_dict(stored_size=32)
    assert record["crop_pct"] == 1.0 and record["upsampled"] is False


def test_crop_pct_matches_timm_eval_transform() -> None:
    from timm.data import create_transform

    rng = np.random.default_rng(0)
    # A smooth image, so PIL's and torch's antialiased resizes agree closely.
    base = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    square = np.asarray(Image.fromarray(base).resize((300, 300), Image.BILINEAR))
    prep = Preprocessing(input_size=224, mean=MEAN, std=STD, interpolation="bicubic", crop_pct=0.875)
    assert prep.scale_size == 256
    ours = prep(torch.from_numpy(square.copy())[None])[0]
    reference = create_transform(input_size=224, crop_pct=0.875, interpolation="bicubic", mean=MEAN, std=STD)(
        Image.fromarray(square))
    assert ours.shape == reference.shape == (3, 224, 224)
    assert (ours - reference).abs().mean() < 0.02
    record = prep.as_dict(stored_size=200)
    assert record["scale_size"] == 256 and record["upsampled"] is True
