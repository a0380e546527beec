"""How an ICN and its baseline are scored: test error, error on each OOD set, FGSM error."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from zooprobe.data.imageset import ImageSet
from zooprobe.train.recipe import top1

FGSM_EPSILONS_255: tuple[int, ...] = (1, 2, 4)  # FGSM budgets in 1/255 pixel units


def _batches(n: int, size: int = 256) -> range:
    return range(0, n, size)


def fgsm_error(model: torch.nn.Module, preprocess: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray,
               labels: np.ndarray, *, epsilon: float, num_classes: int) -> float:
    """Top-1 error under FGSM (Goodfellow et al. 2015) with budget ``epsilon`` in [0, 1] pixel units.

    The attack steps along the sign of the cross-entropy gradient over the K class logits, then
    clamps to the valid pixel range.
    """
    model.eval()
    device = next(model.parameters()).device
    wrong = 0
    for start in _batches(len(labels)):
        x = torch.from_numpy(images[start:start + 256]).to(device).float().div(255.0).requires_grad_(True)
        y = torch.from_numpy(labels[start:start + 256]).to(device)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(preprocess(x))[:, :num_classes], y), x)
        with torch.no_grad():
            attacked = (x + epsilon * grad.sign()).clamp(0, 1)
            wrong += int((model(preprocess(attacked))[:, :num_classes].argmax(1) != y).sum())
    return wrong / max(1, len(labels))


def evaluate(model: torch.nn.Module, preprocess: Callable[[torch.Tensor], torch.Tensor], test: ImageSet,
             ood: Mapping[str, ImageSet], *, epsilons_255: Sequence[int] = FGSM_EPSILONS_255) -> dict[str, float]:
    """Test error, error on each OOD set and FGSM error at each budget.

    Args:
        model: classifier whose first K logits are the classes.
        preprocess: its preprocessing.
        test: the ID test examples.
        ood: OOD sets by name (all their examples are scored).
        epsilons_255: FGSM budgets in 1/255 units.

    Returns:
        ``{"test_error": .., "ood_error:<name>": .., "fgsm_error:<eps>/255": ..}``.
    """
    k = len(test.class_names)
    scores = {"test_error": top1(model, preprocess, test.images, test.labels, num_classes=k).error}
    for name, shifted in ood.items():
        scores[f"ood_error:{name}"] = top1(model, preprocess, shifted.images, shifted.labels, num_classes=k).error
    for eps in epsilons_255:
        scores[f"fgsm_error:{eps}/255"] = fgsm_error(model, preprocess, test.images, test.labels,
                                                     epsilon=eps / 255.0, num_classes=k)
    return scores
