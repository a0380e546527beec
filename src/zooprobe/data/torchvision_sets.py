"""The ``torchvision`` source: any ``torchvision.datasets`` class, read into an image set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zooprobe.data.imageset import SPLIT_NAMES, ImageSet, carve_val, resize_images


def build_torchvision(*, name: str, root: str | Path, split_kwargs: dict[str, dict[str, Any]],
                      download: bool = False, size: int | None = None, val_fraction: float = 0.0,
                      max_per_class: int | None = None, seed: int = 0, **_: Any) -> ImageSet:
    """Build a set from any ``torchvision.datasets`` class.

    Args:
        name: the class name, e.g. ``CIFAR10``, ``MNIST``, ``SVHN``, ``STL10``.
        root: its ``root`` folder (pre-populated when offline).
        split_kwargs: split name -> keyword arguments selecting that split, e.g.
            ``{train: {train: true}, test: {train: false}}`` or ``{test: {split: test}}``.
        download: let torchvision download into ``root`` (needs the network).
        size: resize to ``size`` x ``size``.
        val_fraction: move this stratified fraction of ``train`` into ``val``.
        max_per_class: keep the first N examples of each class in each split.
        seed: seed of the validation split.

    Returns:
        RGB :class:`ImageSet`; class names from the dataset's ``classes`` when it has them.
    """
    # torchvision (and torch) only for this source: the other sources build without them.
    import torchvision.datasets

    cls = getattr(torchvision.datasets, name, None)
    if not isinstance(cls, type):
        valid = sorted(n for n in dir(torchvision.datasets) if n[0].isupper())
        raise ValueError(f"unknown torchvision dataset {name!r}; valid: {valid}")
    unknown = set(split_kwargs) - set(SPLIT_NAMES)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; valid: {list(SPLIT_NAMES)}")
    images, labels, split, class_names = [], [], [], None
    for split_name, kwargs in split_kwargs.items():
        dataset = cls(root=str(root), download=download, **kwargs)
        class_names = class_names or [str(c) for c in getattr(dataset, "classes", [])]
        seen: dict[int, int] = {}
        for image, label in dataset:
            label = int(label)
            if max_per_class and seen.get(label, 0) >= max_per_class:
                continue
            seen[label] = seen.get(label, 0) + 1
            array = np.asarray(image.convert("RGB"))
            images.append(array)
            labels.append(label)
            split.append(split_name)
    labels_array = np.array(labels, dtype=np.int64)
    stacked = np.stack(images)
    stacked = resize_images(stacked, size) if size else stacked
    split_array = np.array(split, dtype="U5")
    carve_val(labels_array, split_array, val_fraction, seed)
    class_names = class_names or [str(i) for i in range(int(labels_array.max()) + 1)]
    return ImageSet(stacked, labels_array, split_array, class_names, {"source": "torchvision", "name": name})
