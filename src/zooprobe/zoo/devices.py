"""Where jobs run: the CPU, or a CUDA GPU when there is one."""

from __future__ import annotations

import torch

from zooprobe.params.settings import DEVICES


def pick_device(requested: str = "auto") -> torch.device:
    """Return CUDA when available and allowed, else the CPU.

    Args:
        requested: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        The torch device.
    """
    if requested not in DEVICES:
        raise ValueError(f"unknown device {requested!r}; valid: {list(DEVICES)}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no GPU; use 'auto' or 'cpu'")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)
