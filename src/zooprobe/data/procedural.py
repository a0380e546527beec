"""Procedurally generated image sets: deterministic by seed, any resolution, no download.

The ``procedural`` source: :func:`build_procedural` builds one generator's set (``shapes`` here,
``scenes`` from :mod:`zooprobe.data.dense_sets`, which carries dense labels).

``shapes`` draws one of ten filled shapes at a random position, scale, rotation and colour.
The ``background`` argument is the shift knob: ``plain`` for in-distribution, ``texture``
(random stripes and blobs) for a style/background shift that keeps the label.

The ``foreground`` argument sets the figure-ground polarity. With ``any`` a shape may be lighter
or darker than its background, so the same shape comes in opposite contrasts. Models without
batch statistics (LayerNorm ConvNeXts, ViTs) then spend a short training budget learning that
invariance: at 228 steps a ViT stays at chance. ``lighter`` keeps colour free but makes the
shape at least ``LIGHTER_MARGIN`` brighter (in luma) than its background.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from zooprobe.data.dense_sets import build_scenes
from zooprobe.data.imageset import ImageSet, stratified_split

SHAPE_CLASSES: tuple[str, ...] = (
    "circle", "square", "triangle", "ring", "cross", "diamond", "ellipse", "star", "ell", "crescent",
)
BACKGROUNDS: tuple[str, ...] = ("plain", "texture")
FOREGROUNDS: tuple[str, ...] = ("any", "lighter")

# ITU-R BT.601 luma weights: the brightness a "lighter" shape must exceed its background in.
LUMA = np.array([0.299, 0.587, 0.114])
# How much brighter a "lighter" shape is than its background's mean luma, at least (of 255).
LIGHTER_MARGIN = 96.0
# A "lighter" set's backgrounds are scaled into 0..BACKGROUND_CEILING, so a shape colour with the
# margin always exists (255 - 96 - 127 = 32 levels of room) and rejection sampling ends quickly.
BACKGROUND_CEILING = 127.0

# Rotation stays within +-30 degrees so that, e.g., a cross never becomes an "x" and a
# diamond never becomes a square: the label must stay a function of the image.
MAX_ROTATION_RAD = np.pi / 6


def _shape_mask(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Return the inside of shape ``name`` in normalised coordinates (unit radius)."""
    r = np.hypot(u, v)
    if name == "circle":
        return r <= 1.0
    if name == "square":
        return np.maximum(abs(u), abs(v)) <= 0.8
    if name == "triangle":
        return (v >= -0.8) & (v <= 0.7) & (abs(u) <= (0.7 - v) * 0.6)
    if name == "ring":
        return (r <= 1.0) & (r >= 0.55)
    if name == "cross":
        return ((abs(u) <= 0.3) & (abs(v) <= 0.95)) | ((abs(v) <= 0.3) & (abs(u) <= 0.95))
    if name == "diamond":
        return abs(u) + abs(v) <= 1.0
    if name == "ellipse":
        return (u / 1.0) ** 2 + (v / 0.5) ** 2 <= 1.0
    if name == "star":
        return r <= 0.5 + 0.45 * np.cos(5 * np.arctan2(v, u))
    if name == "ell":
        return (((u >= -0.8) & (u <= -0.3)) & (abs(v) <= 0.9)) | ((abs(u) <= 0.8) & (v >= 0.4) & (v <= 0.9))
    if name == "crescent":
        return (r <= 1.0) & (np.hypot(u - 0.45, v) > 0.8)
    raise ValueError(f"unknown shape {name!r}; valid: {list(SHAPE_CLASSES)}")


def _background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Return a float (size, size, 3) background in 0..255."""
    base = rng.uniform(0, 255, size=3)
    if kind == "plain":
        return np.broadcast_to(base, (size, size, 3)).copy()
    if kind == "texture":
        yy, xx = np.mgrid[0:size, 0:size] / size
        angle, freq = rng.uniform(0, np.pi), rng.uniform(3, 8)
        stripes = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)))
        other = rng.uniform(0, 255, size=3)
        mix = (stripes[..., None] + 1) / 2
        return base * mix + other * (1 - mix)
    raise ValueError(f"unknown background {kind!r}; valid: {list(BACKGROUNDS)}")


def _shape_colour(canvas: np.ndarray, foreground: str, rng: np.random.Generator) -> np.ndarray:
    """Draw a shape colour that stands out from ``canvas`` (float (H, W, 3) in 0..255)."""
    mean = canvas.mean(axis=(0, 1))
    colour = rng.uniform(0, 255, size=3)
    if foreground == "lighter":
        while float(colour @ LUMA) < float(mean @ LUMA) + LIGHTER_MARGIN:
            colour = rng.uniform(0, 255, size=3)
        return colour
    # Keep the shape visible: push its colour away from the mean background colour.
    while np.abs(colour - mean).max() < 80:
        colour = rng.uniform(0, 255, size=3)
    return colour


def generate_shapes(*, n_per_class: int, size: int, seed: int, background: str = "plain",
                    foreground: str = "any") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Generate the ``shapes`` set.

    Args:
        n_per_class: images per class.
        size: side length in pixels.
        seed: seed of every random choice.
        background: one of ``BACKGROUNDS``.
        foreground: one of ``FOREGROUNDS``: ``lighter`` draws every shape brighter than its background.

    Returns:
        uint8 images (N, size, size, 3), int64 labels (N,), class names.
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; valid: {list(BACKGROUNDS)}")
    if foreground not in FOREGROUNDS:
        raise ValueError(f"unknown foreground {foreground!r}; valid: {list(FOREGROUNDS)}")
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(SHAPE_CLASSES)), n_per_class)
    rng.shuffle(labels)
    # Pixel centres in [-1, 1].
    grid = (np.arange(size) + 0.5) / size * 2 - 1
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    images = np.empty((len(labels), size, size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        scale = rng.uniform(0.55, 0.8)
        cx, cy = rng.uniform(-0.2, 0.2, size=2)
        theta = rng.uniform(-MAX_ROTATION_RAD, MAX_ROTATION_RAD)
        dx, dy = xx - cx, yy - cy
        u = (dx * np.cos(theta) + dy * np.sin(theta)) / scale
        v = (-dx * np.sin(theta) + dy * np.cos(theta)) / scale
        mask = _shape_mask(SHAPE_CLASSES[label], u, v)
        canvas = _background(background, size, rng)
        if foreground == "lighter":
            canvas = canvas * (BACKGROUND_CEILING / 255.0)
        canvas[mask] = _shape_colour(canvas, foreground, rng)
        images[i] = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64), list(SHAPE_CLASSES)


GENERATORS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray, list[str]]]] = {
    "shapes": generate_shapes,
}

# The generator of the dense-label scenes: rendered by zooprobe.data.scenes, one class.
SCENES_GENERATOR = "scenes"


def build_procedural(*, generator: str, n_per_class: int, size: int, splits: dict[str, float],
                     seed: int, background: str = "plain", foreground: str = "any", **_: Any) -> ImageSet:
    """Build a procedurally generated set, deterministic given ``seed``.

    Args:
        generator: one of ``GENERATORS``, or ``scenes`` (:func:`zooprobe.data.dense_sets.build_scenes`,
            ``n_per_class`` scenes of one class, no background choice).
        n_per_class: examples per class.
        size: side length in pixels.
        splits: split fractions.
        seed: seed of images and split.
        background: one of ``BACKGROUNDS``; a non-plain one is a style shift.
        foreground: one of ``FOREGROUNDS`` (``shapes`` only): the shapes' polarity against the background.

    Returns:
        :class:`ImageSet`.
    """
    if generator == SCENES_GENERATOR:
        return build_scenes(n=n_per_class, size=size, splits=splits, seed=seed)
    if generator not in GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; valid: {sorted([*GENERATORS, SCENES_GENERATOR])}")
    images, labels, class_names = GENERATORS[generator](
        n_per_class=n_per_class, size=size, seed=seed, background=background, foreground=foreground)
    return ImageSet(images, labels, stratified_split(labels, splits, seed + 1), class_names,
                    {"source": "procedural", "generator": generator, "background": background,
                     "foreground": foreground})
