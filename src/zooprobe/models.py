"""The model zoo: one factory, one abstract extractor, one subclass per kind of model.

``create_model(spec)`` builds any zoo entry. Preprocessing comes from the model itself
(timm's ``resolve_model_data_config``), and layers come from ``forward_intermediates``
for timm models or from forward hooks for any other ``torch.nn.Module``.
"""

from __future__ import annotations

import abc
import difflib
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

import zooprobe.archs  # noqa: F401  (registers the small architectures with timm)

MODEL_SOURCES: tuple[str, ...] = ("timm", "trained", "checkpoint")
POOLINGS: tuple[str, ...] = ("avg", "avg2x2")
PRE_LOGITS = "pre_logits"


class ModelConfigError(ValueError):
    """A zoo entry that cannot be built; the message says how to fix it."""


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry, as written in the ``models`` section of the params.

    Attributes:
        name: the zoo name, used in paths and tables.
        source: one of ``MODEL_SOURCES``.
        arch: a timm model name (including zooprobe's registered ``zp_*`` ones).
        arch_kwargs: extra keyword arguments for ``timm.create_model``.
        pretrained: load the hub weights (``timm`` source only).
        input_size: side length fed to the model; ``None`` keeps the model's own.
        seed: seed of random initialisation.
        train_on: dataset the ``trained`` source trains on.
        checkpoint: state-dict path for the ``checkpoint`` source.
        checkpoint_url: or a URL to download it from (with ``checkpoint_sha256``).
        checkpoint_sha256: expected sha256 of the checkpoint file; checked before loading.
        layers: layer names to extract; empty means all.
    """

    name: str
    source: str
    arch: str
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    pretrained: bool = False
    input_size: int | None = None
    seed: int = 0
    train_on: str | None = None
    checkpoint: str | None = None
    checkpoint_url: str | None = None
    checkpoint_sha256: str | None = None
    layers: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, name: str, entry: Mapping[str, Any]) -> "ModelSpec":
        """Build a spec from a params entry, checking the source and architecture.

        Args:
            name: the zoo name.
            entry: the mapping under ``models.<name>``.

        Returns:
            A validated :class:`ModelSpec`.
        """
        source = entry.get("source")
        if source not in MODEL_SOURCES:
            raise ModelConfigError(
                f"model {name!r}: unknown source {source!r}; valid sources: {', '.join(MODEL_SOURCES)}")
        arch = entry.get("arch")
        check_arch(name, arch)
        if source == "trained" and not entry.get("train_on"):
            raise ModelConfigError(f"model {name!r}: source 'trained' needs 'train_on: <dataset name>'")
        if source == "checkpoint" and not (entry.get("checkpoint") or entry.get("checkpoint_url")):
            raise ModelConfigError(f"model {name!r}: source 'checkpoint' needs 'checkpoint: <path>' or "
                                   f"'checkpoint_url' with 'checkpoint_sha256'")
        if entry.get("checkpoint_url") and not entry.get("checkpoint_sha256"):
            raise ModelConfigError(f"model {name!r}: 'checkpoint_url' needs 'checkpoint_sha256', so that a "
                                   f"changed or corrupted download cannot pass unnoticed")
        known = {f for f in cls.__dataclass_fields__} - {"name"}
        unknown = set(entry) - known
        if unknown:
            raise ModelConfigError(f"model {name!r}: unknown keys {sorted(unknown)}; valid: {sorted(known)}")
        values = dict(entry)
        values["layers"] = tuple(values.get("layers", ()))
        values["arch_kwargs"] = dict(values.get("arch_kwargs", {}))
        return cls(name=name, **values)


def check_arch(model_name: str, arch: Any) -> None:
    """Raise :class:`ModelConfigError` unless ``arch`` is a model timm can build."""
    import timm

    if isinstance(arch, str) and timm.is_model(arch):
        return
    close = difflib.get_close_matches(str(arch), timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean one of {close}?" if close else ""
    raise ModelConfigError(
        f"model {model_name!r}: unknown architecture {arch!r}. Valid sources: {', '.join(MODEL_SOURCES)}; "
        f"'arch' must be a timm model name (see timm.list_models()) or a zooprobe one "
        f"({', '.join(timm.list_models('zp_*'))}).{hint}")


@dataclass(frozen=True)
class Preprocessing:
    """How uint8 images become model input: resize, scale to [0, 1], normalise."""

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Turn uint8 (N, H, W, C) images into normalised float (N, C, size, size)."""
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            mode = "bicubic" if self.interpolation == "bicubic" else "bilinear"
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode=mode, align_corners=False)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready record of this preprocessing."""
        return asdict(self)


def pool(feature: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool one intermediate into a (N, D) matrix.

    Args:
        feature: (N, C, H, W) map or (N, D) vector.
        pooling: ``avg`` (global average) or ``avg2x2`` (2x2 adaptive average, Harun et al. 2024).

    Returns:
        (N, D) float tensor; vectors pass through unchanged.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; valid: {list(POOLINGS)}")
    if feature.ndim == 2:
        return feature
    if feature.ndim != 4:
        raise ValueError(f"expected a (N, C, H, W) map or (N, D) vector, got shape {tuple(feature.shape)}")
    if pooling == "avg":
        return feature.mean(dim=(2, 3))
    return F.adaptive_avg_pool2d(feature, 2).flatten(1)


def state_dict_sha256(model: torch.nn.Module) -> str:
    """Hash every tensor of a state dict in key order, so equal weights give equal hashes."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class Extractor(abc.ABC):
    """A frozen model that returns named layer activations for a batch of images."""

    def __init__(self, model: torch.nn.Module, preprocessing: Preprocessing) -> None:
        self.model = model.eval()
        self.preprocessing = preprocessing

    @property
    @abc.abstractmethod
    def layer_names(self) -> list[str]:
        """Every layer this extractor can return, input to output."""

    @abc.abstractmethod
    def forward_layers(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        """Run one forward pass on preprocessed ``x`` and return the requested layers."""

    def weights_sha256(self) -> str:
        """Return the sha256 of the model's state dict."""
        return state_dict_sha256(self.model)

    def select_layers(self, wanted: tuple[str, ...] | list[str]) -> list[str]:
        """Return ``wanted`` in model order, or all layers when empty; unknown names fail."""
        if not wanted:
            return list(self.layer_names)
        unknown = [name for name in wanted if name not in self.layer_names]
        if unknown:
            raise ModelConfigError(f"unknown layers {unknown}; valid layers: {self.layer_names}")
        return [name for name in self.layer_names if name in wanted]


class TimmExtractor(Extractor):
    """Layers of a timm model: ``forward_intermediates`` blocks plus the pre-logits vector."""

    def __init__(self, model: torch.nn.Module, preprocessing: Preprocessing) -> None:
        super().__init__(model, preprocessing)
        info = getattr(model, "feature_info", None)
        with torch.inference_mode():
            probe = torch.zeros(1, 3, preprocessing.input_size, preprocessing.input_size)
            count = len(model.forward_intermediates(probe, intermediates_only=True))
        modules = [entry["module"] for entry in info] if info and len(info) == count else []
        self._blocks = modules if modules else [f"block{i}" for i in range(count)]

    @property
    def layer_names(self) -> list[str]:
        return [*self._blocks, PRE_LOGITS]

    def forward_layers(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        # One forward pass yields every block; the head is applied only when asked for.
        final, blocks = self.model.forward_intermediates(x, indices=None)
        named = dict(zip(self._blocks, blocks))
        if PRE_LOGITS in layers:
            named[PRE_LOGITS] = self.model.forward_head(final, pre_logits=True)
        return {name: named[name] for name in layers}


class HookExtractor(Extractor):
    """Layers of any ``torch.nn.Module``, read with forward hooks on named submodules."""

    def __init__(self, model: torch.nn.Module, preprocessing: Preprocessing, modules: list[str]) -> None:
        super().__init__(model, preprocessing)
        available = dict(model.named_modules())
        missing = [name for name in modules if name not in available]
        if missing:
            raise ModelConfigError(f"modules {missing} not in the model; valid: {[n for n in available if n]}")
        self._modules = list(modules)

    @property
    def layer_names(self) -> list[str]:
        return list(self._modules)

    def forward_layers(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        captured: dict[str, torch.Tensor] = {}
        modules = dict(self.model.named_modules())
        handles = [modules[name].register_forward_hook(
            lambda _m, _i, output, name=name: captured.__setitem__(name, output)) for name in layers]
        try:
            self.model(x)
        finally:
            for handle in handles:
                handle.remove()
        return {name: captured[name] for name in layers}


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


def build_timm(spec: ModelSpec, num_classes: int | None = None) -> torch.nn.Module:
    """Build the architecture of ``spec`` with timm, seeded for a reproducible random init.

    Args:
        spec: the zoo entry.
        num_classes: classifier size; ``None`` keeps the architecture's default.

    Returns:
        The ``torch.nn.Module``.
    """
    import timm

    kwargs: dict[str, Any] = dict(spec.arch_kwargs)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if spec.input_size:
        kwargs["pretrained_cfg_overlay"] = dict(input_size=(3, spec.input_size, spec.input_size))
    torch.manual_seed(spec.seed)
    return timm.create_model(spec.arch, pretrained=spec.pretrained, **kwargs)


def preprocessing_of(model: torch.nn.Module) -> Preprocessing:
    """Read the model's own preprocessing from its timm data config."""
    from timm.data import resolve_model_data_config

    config = resolve_model_data_config(model)
    return Preprocessing(input_size=int(config["input_size"][-1]), mean=tuple(config["mean"]),
                         std=tuple(config["std"]), interpolation=str(config.get("interpolation", "bilinear")))


def create_model(spec: ModelSpec, *, weights: str | Path | None = None) -> Extractor:
    """The one factory: build any zoo entry as an :class:`Extractor`.

    Args:
        spec: the zoo entry.
        weights: state-dict file for the ``trained`` and ``checkpoint`` sources.

    Returns:
        An extractor in eval mode with the model's own preprocessing.
    """
    if spec.source == "timm":
        model = build_timm(spec)
    elif spec.source in ("trained", "checkpoint"):
        path = weights or spec.checkpoint
        if path is None:
            raise ModelConfigError(f"model {spec.name!r}: source {spec.source!r} needs a weights file")
        if spec.checkpoint_sha256:
            from zooprobe.fetch import verify_sha256

            verify_sha256(path, spec.checkpoint_sha256)
        state, extras = load_checkpoint(path)
        num_classes = extras.get("num_classes", spec.arch_kwargs.get("num_classes"))
        model = build_timm(spec, num_classes=num_classes)
        model.load_state_dict(state, strict=True)
    else:
        raise ModelConfigError(f"model {spec.name!r}: unknown source {spec.source!r}; valid: {list(MODEL_SOURCES)}")
    return TimmExtractor(model, preprocessing_of(model))
