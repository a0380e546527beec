"""CIFAR-10-C corruptions: the 32-px parameters of Hendrycks & Dietterich's generation code.

ImageNet-C's parameters (the ``imagecorruptions`` package's) are tuned for 224-px photographs;
on 32-px images they drive published CIFAR ResNets to chance. CIFAR-10-C (Hendrycks &
Dietterich 2019, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations") was generated with milder, per-corruption constants for 32-px images. This
module ports them from ``ImageNet-C/create_c/make_cifar_c.py`` of github.com/hendrycks/robustness
(commit 8190fe329f5f072a06e3a2aea02bb5dda69aed9f), with two changes: randomness comes from a
seeded :class:`numpy.random.Generator` rather than numpy's global state, and motion blur uses
``imagecorruptions``' numpy re-implementation of ImageMagick's motion blur kernel (the published
code calls ImageMagick through Wand) with the CIFAR radius and sigma. Image-size constants that
the published code fixes at 32 (glass-blur loop bounds, elastic and pixelate sizes) follow the
image's own side here, so they equal the published ones on 32-px images.

Not ported (they need ImageMagick, frost photographs or a fractal at CIFAR scale): fog, frost,
snow, spatter; asking for them at the CIFAR scale fails with the list of implemented ones.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any, Callable

import numpy as np

SOURCE = ("github.com/hendrycks/robustness@8190fe329f5f072a06e3a2aea02bb5dda69aed9f "
          "ImageNet-C/create_c/make_cifar_c.py")

# Per-severity constants (severity 1..5), copied from make_cifar_c.py; tuples where the published
# code has tuples. zoom_blur's entries are the (start, stop, step) of its np.arange of zoom factors.
PARAMETERS: dict[str, tuple[Any, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    # Fractions of the image side (IMSIZE in the published code): alpha, sigma, affine jitter.
    "elastic_transform": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                          (0.1, 0.03, 0.03)),
}


def _unit(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255.0


def _gaussian_noise(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    x = _unit(image)
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def _shot_noise(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    x = _unit(image)
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


def _impulse_noise(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    from skimage.util import random_noise

    return np.clip(random_noise(_unit(image), mode="s&p", amount=c, rng=rng), 0, 1) * 255


def _speckle_noise(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    x = _unit(image)
    return np.clip(x + x * rng.normal(size=x.shape, scale=c), 0, 1) * 255


def _gaussian_blur(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    from skimage.filters import gaussian

    # channel_axis=-1 is the current spelling of the published multichannel=True.
    return np.clip(gaussian(_unit(image), sigma=c, channel_axis=-1), 0, 1) * 255


def _glass_blur(image: np.ndarray, c: tuple[float, int, int], rng: np.random.Generator) -> np.ndarray:
    from skimage.filters import gaussian

    sigma, max_delta, iterations = c
    x = np.uint8(gaussian(_unit(image), sigma=sigma, channel_axis=-1) * 255)
    side = x.shape[0]
    # Locally shuffle pixels, in the published order (bottom-right to top-left).
    for _ in range(iterations):
        for h in range(side - max_delta, max_delta, -1):
            for w in range(side - max_delta, max_delta, -1):
                dx, dy = rng.integers(-max_delta, max_delta, size=2)
                h_prime, w_prime = h + dy, w + dx
                # The published tuple swap of numpy views copies (h', w') onto (h, w) and leaves (h', w') as it
                # was; CIFAR-10-C was generated that way, so it is kept.
                x[h, w] = x[h_prime, w_prime]
    return np.clip(gaussian(x / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255


def _defocus_blur(image: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    import cv2
    from imagecorruptions.corruptions import disk  # the same helper as make_cifar_c.py's

    x = _unit(image)
    kernel = disk(radius=c[0], alias_blur=c[1])
    channels = np.stack([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(x.shape[2])], axis=-1)
    return np.clip(channels, 0, 1) * 255


def _motion_blur(image: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    from imagecorruptions.corruptions import _motion_blur as motion_blur_kernel

    blurred = motion_blur_kernel(np.asarray(image), radius=c[0], sigma=c[1], angle=rng.uniform(-45, 45))
    return np.clip(blurred, 0, 255)


def _clipped_zoom(image: np.ndarray, zoom_factor: float) -> np.ndarray:
    """Zoom the centre of a square image by ``zoom_factor`` and crop back to its size (make_cifar_c.py's)."""
    from scipy.ndimage import zoom

    side = image.shape[0]
    crop = int(np.ceil(side / zoom_factor))
    top = (side - crop) // 2
    zoomed = zoom(image[top:top + crop, top:top + crop], (zoom_factor, zoom_factor, 1), order=1)
    trim_top = (zoomed.shape[0] - side) // 2
    return zoomed[trim_top:trim_top + side, trim_top:trim_top + side]


def _zoom_blur(image: np.ndarray, c: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    x = _unit(image).astype(np.float32)
    factors = np.arange(*c)
    out = np.zeros_like(x)
    for zoom_factor in factors:
        out += _clipped_zoom(x, zoom_factor)
    return np.clip((x + out) / (len(factors) + 1), 0, 1) * 255


def _contrast(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    x = _unit(image)
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def _brightness(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    from skimage.color import hsv2rgb, rgb2hsv

    x = rgb2hsv(_unit(image))
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


def _saturate(image: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    from skimage.color import hsv2rgb, rgb2hsv

    x = rgb2hsv(_unit(image))
    x[:, :, 1] = np.clip(x[:, :, 1] * c[0] + c[1], 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


def _jpeg_compression(image: np.ndarray, c: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    output = BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(output, "JPEG", quality=c)
    with Image.open(output) as compressed:
        return np.asarray(compressed.convert("RGB"), dtype=np.float64)


def _pixelate(image: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    height, width = image.shape[:2]
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    # BOX both ways, as make_cifar_c.py (imagecorruptions' ImageNet version upsamples with NEAREST).
    small = pil.resize((int(width * c), int(height * c)), Image.Resampling.BOX)
    return np.asarray(small.resize((width, height), Image.Resampling.BOX), dtype=np.float64)


def _elastic_transform(image: np.ndarray, c: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    import cv2
    from scipy.ndimage import map_coordinates
    from skimage.filters import gaussian

    x = np.asarray(image, dtype=np.float32) / 255.0
    shape = x.shape
    shape_size = shape[:2]
    alpha, sigma, jitter = (fraction * shape_size[0] for fraction in c)
    # Random affine.
    center_square = np.float32(shape_size) // 2
    square_size = min(shape_size) // 3
    pts1 = np.float32([center_square + square_size,
                       [center_square[0] + square_size, center_square[1] - square_size],
                       center_square - square_size])
    pts2 = pts1 + rng.uniform(-jitter, jitter, size=pts1.shape).astype(np.float32)
    affine = cv2.getAffineTransform(pts1, pts2)
    x = cv2.warpAffine(x, affine, shape_size[::-1], borderMode=cv2.BORDER_REFLECT_101)
    # Smooth random displacement field; the published code passes sigma = 0 at severity 1 (alpha 0 too).
    dx = (gaussian(rng.uniform(-1, 1, size=shape_size), sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    dy = (gaussian(rng.uniform(-1, 1, size=shape_size), sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    dx, dy = dx[..., None], dy[..., None]
    cols, rows, depth = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = np.reshape(rows + dy, (-1, 1)), np.reshape(cols + dx, (-1, 1)), np.reshape(depth, (-1, 1))
    return np.clip(map_coordinates(x, indices, order=1, mode="reflect").reshape(shape), 0, 1) * 255


CORRUPTIONS: dict[str, Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "speckle_noise": _speckle_noise,
    "gaussian_blur": _gaussian_blur,
    "glass_blur": _glass_blur,
    "defocus_blur": _defocus_blur,
    "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur,
    "contrast": _contrast,
    "brightness": _brightness,
    "saturate": _saturate,
    "jpeg_compression": _jpeg_compression,
    "pixelate": _pixelate,
    "elastic_transform": _elastic_transform,
}


def parameter(*, corruption: str, severity: int) -> Any:
    """The published CIFAR-10-C constant of one corruption at one severity.

    Args:
        corruption: one of :data:`CORRUPTIONS`.
        severity: 1..5.

    Returns:
        The constant (a number or a tuple), as in ``make_cifar_c.py``.
    """
    if corruption not in PARAMETERS:
        raise ValueError(f"corruption {corruption!r} has no CIFAR-10-C parameters here; implemented at the CIFAR "
                         f"scale: {sorted(PARAMETERS)} (or set parameters: imagenet)")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    return PARAMETERS[corruption][severity - 1]


def corrupt(image: np.ndarray, *, corruption: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Corrupt one RGB image with the CIFAR-10-C constants.

    Args:
        image: uint8 (H, W, 3).
        corruption: one of :data:`CORRUPTIONS`.
        severity: 1..5.
        rng: source of the corruption's randomness.

    Returns:
        uint8 (H, W, 3), clipped to 0..255 and truncated to integers as ``np.uint8`` does in make_cifar_c.py.
    """
    constant = parameter(corruption=corruption, severity=severity)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    corrupted = CORRUPTIONS[corruption](image, constant, rng)
    # Truncation (not rounding), as the published np.uint8(...) conversion.
    return np.clip(np.asarray(corrupted, dtype=np.float64), 0, 255).astype(np.uint8)
