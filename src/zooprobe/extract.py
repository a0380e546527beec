"""Layer-wise feature extraction: batches in, pooled (B, D) arrays out."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch

from zooprobe.models import Extractor, pool


def pick_device(requested: str = "auto") -> torch.device:
    """Return CUDA when available and allowed, else the CPU.

    Args:
        requested: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        The torch device.
    """
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {requested!r}; valid: ['auto', 'cpu', 'cuda']")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no GPU; use 'auto' or 'cpu'")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def extract_batches(extractor: Extractor, batches: Iterable[np.ndarray], *, layers: list[str], pooling: str,
                    device: torch.device, with_head: bool = False
                    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
    """Yield pooled features of each uint8 image batch.

    Args:
        extractor: the frozen model.
        batches: uint8 (B, H, W, C) arrays.
        layers: layer names, all from ``extractor.layer_names``.
        pooling: a pooling in :data:`zooprobe.models.POOLINGS`.
        device: where the forward pass runs.
        with_head: also return the model's own head's predicted class per image.

    Returns:
        An iterator with one item per input batch: layer name -> float32 (B, D) array, and the
        head's int64 (B,) predictions (``None`` unless ``with_head``).
    """
    model = extractor.model.to(device)
    with torch.inference_mode():
        for batch in batches:
            x = extractor.preprocessing(torch.from_numpy(np.ascontiguousarray(batch)).to(device))
            outputs, logits = extractor.forward_layers(x, layers, with_head=with_head)
            pooled = {name: pool(outputs[name], pooling).float().cpu().numpy() for name in layers}
            yield pooled, (logits.argmax(1).cpu().numpy().astype(np.int64) if logits is not None else None)
    model.cpu()
