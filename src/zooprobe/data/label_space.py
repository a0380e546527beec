"""The one check that two sets share a label space: a probe's or a head's predictions mean nothing elsewhere."""

from __future__ import annotations

from typing import Sequence


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
