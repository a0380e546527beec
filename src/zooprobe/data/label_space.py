"""The one check that two sets share a label space: a probe's or a head's predictions mean nothing elsewhere."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from zooprobe.params.spec import HEAD_LABEL_SPACES


class LabelSpaceError(ValueError):
    """An evaluation set whose classes are not the training set's."""


def require_same_label_space(*, ood_name: str, ood_classes: Sequence[str], id_name: str,
                             id_classes: Sequence[str], hint: str = "") -> None:
    """Fail unless the OOD set has the ID set's classes, in the same order.

    Args:
        ood_name: the evaluation set's name, for the message.
        ood_classes: its class names.
        id_name: the in-distribution set's name.
        id_classes: its class names.
        hint: what the user can do instead, appended to the message.

    Raises:
        LabelSpaceError: naming both class lists.
    """
    if list(ood_classes) != list(id_classes):
        raise LabelSpaceError(f"OOD set {ood_name!r} has classes {list(ood_classes)}, but the ID set {id_name!r} "
                              f"has {list(id_classes)}; an OOD set must share the ID label space{hint}")




def head_label_names(space: str) -> tuple[list[str], str]:
    """The class ids of a head label space, in the head's output order, and where they come from.

    Args:
        space: one of :data:`HEAD_LABEL_SPACES`.

    Returns:
        (class ids, a description of their source for provenance).

    Raises:
        LabelSpaceError: an unknown label space.
    """
    if space not in HEAD_LABEL_SPACES:
        raise LabelSpaceError(f"unknown head label space {space!r}; valid: {sorted(HEAD_LABEL_SPACES)}")
    # timm's list is the sorted ILSVRC-2012 wnids, the torchvision/timm output order; imported here so
    # that the params checks, which import this module, stay free of torch.
    import timm
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_names()), f"timm {timm.__version__} timm.data.ImageNetInfo().label_names()"


def head_class_indices(*, dataset: str, space: str, class_names: Sequence[str]) -> list[int]:
    """The position in a head label space of each of a dataset's classes.

    Args:
        dataset: the dataset's name, for the message.
        space: the label space the dataset declares (``head_classes``).
        class_names: the dataset's class names, which must be ids of that space (wnids for ImageNet).

    Returns:
        The head output index of each class, in the dataset's label order.

    Raises:
        LabelSpaceError: a class name that is not in the label space (naming a few).
    """
    names, _ = head_label_names(space)
    position = {name: index for index, name in enumerate(names)}
    unknown = [name for name in class_names if name not in position]
    if unknown:
        raise LabelSpaceError(f"dataset {dataset!r} declares head_classes: {space}, but {len(unknown)} of its "
                              f"{len(class_names)} class names are not {space} class ids, e.g. {unknown[:5]}; "
                              f"valid ids look like {names[:3]}")
    return [position[name] for name in class_names]


def subset_head_predictions(logits: np.ndarray, *, class_indices: Sequence[int]) -> np.ndarray:
    """A head's predictions restricted to a subset of its classes, as the subset's label indices.

    The argmax runs over the subset's logits only, so a class outside the subset can never be
    predicted (how imagenet-testbed and timm's ``--class-map`` score ImageNet-A/R's 200 classes).

    Args:
        logits: float (N, K) logits of the full head.
        class_indices: the head output index of each of the subset's classes, in its label order.

    Returns:
        int64 (N,) predicted label, an index into ``class_indices``.
    """
    indices = np.asarray(class_indices, dtype=np.int64)
    if indices.ndim != 1 or len(indices) == 0 or indices.min() < 0 or indices.max() >= logits.shape[1]:
        raise LabelSpaceError(f"class indices must be a non-empty list within the head's {logits.shape[1]} outputs")
    return np.asarray(logits)[:, indices].argmax(axis=1).astype(np.int64)
