"""Weights files: safe loading, checksums, strict fitting, and the ICN's extra output.

Every checkpoint is loaded with ``weights_only=True``; a pinned sha256 is checked before
loading, and the sha256 of the tensors that zooprobe records when it trains is checked after.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

import torch

from zooprobe.io.fetch import ChecksumError, sha256_of
from zooprobe.params.spec import ModelConfigError, ModelSpec


def state_dict_sha256(model: torch.nn.Module) -> str:
    """Hash every tensor of a state dict in key order, so equal weights give equal hashes."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a checkpoint safely (``weights_only=True``), unwrapping ``state_dict`` and ``module.``.

    Args:
        path: a ``.pt``/``.pth`` file holding a state dict, or a dict with a ``state_dict`` entry.

    Returns:
        The state dict with any DataParallel ``module.`` prefix removed, and the checkpoint's
        other entries (for example ``num_classes`` or ``best_prec1``).
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError with a long text; say what to do.
        raise ModelConfigError(
            f"{path}: refused to load. zooprobe loads checkpoints with weights_only=True, which allows only "
            f"tensors and plain containers; re-save the file as a plain state dict. ({type(error).__name__})"
        ) from error
    if not isinstance(blob, dict):
        raise ModelConfigError(f"{path}: expected a state dict or {{'state_dict': ...}}, got {type(blob).__name__}")
    state = blob.get("state_dict", blob)
    extras = {key: value for key, value in blob.items() if key != "state_dict"} if "state_dict" in blob else {}
    return {key.removeprefix("module."): value for key, value in state.items()}, extras


def load_verified(spec: ModelSpec, path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Check the checkpoint's sha256 when the spec pins one, then load it safely."""
    if spec.checkpoint_sha256:
        actual = sha256_of(path)
        if actual != spec.checkpoint_sha256.lower():
            raise ChecksumError(
                f"checkpoint {path} of model {spec.name!r} has sha256 {actual}, not the {spec.checkpoint_sha256.lower()} "
                f"the workflow expects (pinned as checkpoint_sha256, or hashed when the run was planned): the file "
                f"changed. Put the intended file back, or rerun so that every job reading it reruns "
                f"(`snakemake --forcerun extract`)")
    return load_checkpoint(path)


def load_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor], spec: ModelSpec, path: str | Path) -> None:
    """``load_state_dict(strict=True)``, failing with the checkpoint's name when it is another architecture's."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        expected, found = set(model.state_dict()), set(state)
        missing, unexpected = sorted(expected - found), sorted(found - expected)
        detail = (f"{len(missing)} of the architecture's tensors are missing (e.g. {missing[:3]}), "
                  f"{len(unexpected)} of the file's are unknown to it (e.g. {unexpected[:3]})" if missing or unexpected
                  else f"tensor shapes differ ({str(error).splitlines()[-1].strip()})")
        raise ModelConfigError(f"checkpoint {path} does not fit model {spec.name!r} (arch {spec.arch!r}): {detail}. "
                               f"Check models.{spec.name}.arch (and arch_kwargs) against the file, or point "
                               f"models.{spec.name}.checkpoint at the intended file") from None


def check_recorded_weights(model: torch.nn.Module, extras: Mapping[str, Any], path: str | Path) -> None:
    """A checkpoint zooprobe wrote records its state dict's sha256: the loaded tensors must still have it."""
    recorded = extras.get("weights_sha256")
    if isinstance(recorded, str) and state_dict_sha256(model) != recorded:
        raise ChecksumError(f"checkpoint {path}: its tensors no longer have the sha256 recorded when it was trained "
                            f"({recorded[:16]}...); the file was changed. Restore it with `dvc checkout --force {path}`, "
                            f"or delete it and rerun its train job (`snakemake {path}`)")


def numeric_entries(extras: Mapping[str, Any]) -> dict[str, float]:
    """The numbers stored beside the weights (e.g. ``best_prec1``), as floats for the provenance."""
    return {key: float(value) for key, value in extras.items()
            if isinstance(value, (int, float)) or (torch.is_tensor(value) and value.numel() == 1)}


def drop_negative_output(model: torch.nn.Module, negative_class: int) -> None:
    """Cut an introspective classifier's head back to its K real classes.

    The (K+1)-th output scores "pseudo-negative"; a zoo model's head must predict the dataset's
    K classes, and the argmax over the first K logits is the ICN's class decision.

    Args:
        model: a timm model whose classifier has ``negative_class + 1`` outputs.
        negative_class: index of the pseudo-negative output, which must be the last one.
    """
    head = model.get_classifier()
    if not isinstance(head, torch.nn.Linear) or head.out_features != negative_class + 1:
        raise ModelConfigError(f"expected a linear classifier with {negative_class + 1} outputs, got {head}")
    weight, bias = head.weight.detach()[:negative_class].clone(), head.bias
    bias = None if bias is None else bias.detach()[:negative_class].clone()
    model.reset_classifier(negative_class)  # a fresh Linear of the right size; the trained rows go into it
    with torch.no_grad():
        model.get_classifier().weight.copy_(weight)
        if bias is not None:
            model.get_classifier().bias.copy_(bias)
