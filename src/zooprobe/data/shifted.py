"""Shifted copies of a base set: simple distribution shifts and CIFAR-10-C / ImageNet-C corruptions.

Both sources (``shift`` and ``corrupt``) take one split of a base set, change its pixels and keep its
labels; every example of the copy is ``test``, and its provenance names the base by content sha256.
:func:`shifted_copy` is that shared pattern; the two builders differ only in how pixels change.
"""

from __future__ import annotations

import warnings
from importlib.metadata import version
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from zooprobe.data import cifar_corruptions
from zooprobe.data.imageset import ImageSet, first_per_class, resize_images

def _require_severity(severity: int) -> None:
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")


def shifted_copy(base: ImageSet, *, split: str, shift_images: Callable[[np.ndarray], np.ndarray],
                 attrs: Mapping[str, Any], max_per_class: int | None = None, every: int = 1) -> ImageSet:
    """A copy of one split of ``base`` with changed pixels; every example becomes ``test``.

    Args:
        base: the set to copy.
        split: which split of ``base`` to copy.
        shift_images: uint8 (N, H, W, C) images -> the changed uint8 images.
        attrs: the copy's provenance (source, parameters, the base's sha256).
        max_per_class: copy only the first N examples of each class, in stored order.
        every: then copy only every ``every``-th of those examples (the 1st, the ``every + 1``-th, ...), in
            stored order: a subset spread over the whole split (a sorted image folder: over its classes).

    Returns:
        :class:`ImageSet` with ``base``'s labels and class names, all in ``test``.
    """
    part = base.subset(split)
    if max_per_class:
        part = first_per_class(part, max_per_class)
    if every < 1:
        raise ValueError(f"every must be a positive integer (1 keeps every example), got {every}")
    if every > 1:
        part = ImageSet(part.images[::every], part.labels[::every], part.split[::every], part.class_names, part.attrs)
    images = shift_images(part.images)
    return ImageSet(images, part.labels.copy(), np.full(len(images), "test", dtype="U5"), list(base.class_names),
                    dict(attrs))


# ----------------------------------------------------------------------------- shifts
def _gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (8, 16, 28, 40, 56)[severity - 1]
    return np.clip(images + rng.normal(0, sigma, images.shape), 0, 255)


def _gaussian_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (0.5, 0.8, 1.1, 1.5, 2.0)[severity - 1]
    return gaussian_filter(images.astype(np.float64), sigma=(0, sigma, sigma, 0))


def _low_contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    keep = (0.6, 0.45, 0.3, 0.2, 0.12)[severity - 1]
    mean = images.mean(axis=(1, 2, 3), keepdims=True)
    return (images - mean) * keep + mean


def _pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factor = (0.75, 0.6, 0.5, 0.4, 0.3)[severity - 1]
    side = images.shape[1]
    small = resize_images(images.astype(np.uint8), max(2, int(side * factor)))
    return np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.Resampling.NEAREST)) for im in small])


SHIFTS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": _gaussian_noise,
    "gaussian_blur": _gaussian_blur,
    "low_contrast": _low_contrast,
    "pixelate": _pixelate,
}


def build_shift(base: ImageSet, *, shift: str, severity: int, seed: int, split: str = "test", **_: Any) -> ImageSet:
    """Build a distribution-shifted copy of one split of ``base``; every example becomes ``test``.

    Args:
        base: the in-distribution set.
        shift: one of ``SHIFTS``.
        severity: 1 (mild) to 5 (strong).
        seed: seed of the random part of the shift.
        split: which split of ``base`` to shift.

    Returns:
        :class:`ImageSet` whose examples are all in the ``test`` split.
    """
    if shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}; valid: {sorted(SHIFTS)}")
    _require_severity(severity)

    def shift_images(images: np.ndarray) -> np.ndarray:
        shifted = SHIFTS[shift](images.astype(np.float64), severity, np.random.default_rng(seed))
        return np.clip(np.round(shifted), 0, 255).astype(np.uint8)

    attrs = {"source": "shift", "shift": shift, "severity": severity, "of_split": split,
             "of_sha256": base.content_sha256()}
    return shifted_copy(base, split=split, shift_images=shift_images, attrs=attrs)


# ----------------------------------------------------------------------------- corruptions
# imagecorruptions 1.1.2 corruptions that run with numpy 2 and scikit-image 0.26 (glass_blur,
# gaussian_blur and fog fail there): ImageNet-C's parameters, tuned for 224-px photographs.
IMAGENET_C_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "zoom_blur", "snow", "frost",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression", "speckle_noise", "spatter",
    "saturate",
)
# Every corruption some parameter set implements (the CIFAR-10-C ones are in zooprobe.data.cifar_corruptions).
CORRUPTIONS: tuple[str, ...] = IMAGENET_C_CORRUPTIONS + tuple(
    sorted(set(cifar_corruptions.CORRUPTIONS) - set(IMAGENET_C_CORRUPTIONS)))
CORRUPTION_PARAMETERS: tuple[str, ...] = ("auto", "cifar", "imagenet")
# ``parameters: auto`` uses the CIFAR-10-C constants for images whose longer side is at most this many
# pixels and ImageNet-C's above. 64 px (Tiny ImageNet's side) is far nearer the 32 px the CIFAR constants
# were set for than the 224 px of ImageNet-C's, on a log scale (their geometric midpoint is about 85 px).
CIFAR_SCALE_MAX_SIDE = 64


def corruption_parameters(*, requested: str, image_shape: tuple[int, ...]) -> str:
    """Which parameter set a ``corrupt`` dataset uses: ``cifar`` or ``imagenet``.

    Args:
        requested: ``auto`` (by image size, see :data:`CIFAR_SCALE_MAX_SIDE`), ``cifar`` or ``imagenet``.
        image_shape: (H, W, C) of the images to corrupt.

    Returns:
        ``cifar`` or ``imagenet``.
    """
    if requested not in CORRUPTION_PARAMETERS:
        raise ValueError(f"unknown corruption parameters {requested!r}; valid: {list(CORRUPTION_PARAMETERS)}")
    if requested != "auto":
        return requested
    return "cifar" if max(image_shape[:2]) <= CIFAR_SCALE_MAX_SIDE else "imagenet"


def _imagenet_c(images: np.ndarray, *, corruption: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt uint8 (N, H, W, 3) images with imagecorruptions' ImageNet-C parameters, rounded to uint8."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # imagecorruptions imports pkg_resources, which warns on import.
        from imagecorruptions import corrupt

    np.random.seed(seed)  # imagecorruptions draws from numpy's global generator
    return np.stack([np.clip(np.round(np.asarray(corrupt(image, severity=severity, corruption_name=corruption),
                                                 dtype=np.float64)), 0, 255).astype(np.uint8)
                     for image in images])


def _cifar_c(images: np.ndarray, *, corruption: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt uint8 (N, H, W, 3) images with the CIFAR-10-C parameters, one seeded generator for the set."""
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the helpers borrowed from imagecorruptions import pkg_resources
        return np.stack([cifar_corruptions.corrupt(image, corruption=corruption, severity=severity, rng=rng)
                         for image in images])


def build_corrupt(base: ImageSet, *, corruption: str, severity: int, seed: int, split: str = "test",
                  max_per_class: int | None = None, every: int = 1, parameters: str = "auto",
                  **_: Any) -> ImageSet:
    """Build a corrupted copy of one split of ``base``, with CIFAR-10-C or ImageNet-C parameters.

    Args:
        base: the clean set.
        corruption: one of :data:`CORRUPTIONS`; at the CIFAR scale one of
            ``zooprobe.data.cifar_corruptions.CORRUPTIONS``, at the ImageNet scale one of :data:`IMAGENET_C_CORRUPTIONS`.
        severity: 1..5.
        seed: seed of the corruption's randomness.
        split: which split of ``base`` to corrupt.
        max_per_class: corrupt only the first N examples of each class, in stored order.
        every: then corrupt only every ``every``-th of those examples, in stored order (1: all of them).
        parameters: ``cifar`` (the 32-px constants of Hendrycks & Dietterich's make_cifar_c.py),
            ``imagenet`` (ImageNet-C's, from the ``imagecorruptions`` package) or ``auto`` (``cifar`` for
            images up to :data:`CIFAR_SCALE_MAX_SIDE` px, else ``imagenet``).

    Returns:
        :class:`ImageSet` whose examples are all in the ``test`` split; its attrs record the parameter set
        used, the constant at this severity and the code it comes from.
    """
    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown or unsupported corruption {corruption!r}; valid: {list(CORRUPTIONS)}")
    _require_severity(severity)
    # Every split of a set has the same image shape, so the base's decides the scale.
    chosen = corruption_parameters(requested=parameters, image_shape=base.images.shape[1:])
    if chosen == "cifar":
        constant: Any = cifar_corruptions.parameter(corruption=corruption, severity=severity)
        code = cifar_corruptions.SOURCE
    elif corruption not in IMAGENET_C_CORRUPTIONS:
        raise ValueError(f"corruption {corruption!r} runs only with the CIFAR-10-C parameters here (imagecorruptions' "
                         f"version fails with numpy 2 / scikit-image 0.26); with parameters: imagenet the valid "
                         f"ones are {list(IMAGENET_C_CORRUPTIONS)}")
    else:
        constant, code = None, f"imagecorruptions {version('imagecorruptions')} (ImageNet-C parameters)"
    corrupt_images = _cifar_c if chosen == "cifar" else _imagenet_c
    attrs = {"source": "corrupt", "corruption": corruption, "severity": severity, "of_split": split,
             "max_per_class": max_per_class or 0, "every": every, "of_sha256": base.content_sha256(),
             "corruption_parameters": chosen, "corruption_parameters_requested": parameters,
             "cifar_scale_max_side": CIFAR_SCALE_MAX_SIDE, "corruption_code": code}
    if constant is not None:
        attrs["corruption_constant"] = list(constant) if isinstance(constant, tuple) else constant
    return shifted_copy(base, split=split, max_per_class=max_per_class, every=every, attrs=attrs,
                        shift_images=lambda images: corrupt_images(images, corruption=corruption, severity=severity,
                                                                   seed=seed))
