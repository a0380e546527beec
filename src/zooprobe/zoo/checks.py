"""The params checks that need the model libraries: architecture and layer names.

:func:`zooprobe.params.config.check_config` checks everything else without importing torch;
:func:`check_zoo` runs it, then asks timm and torchvision whether they know each architecture,
and builds each model that names ``layers`` (without weights) to check those names.
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping

import timm
import torchvision.models

import zooprobe.zoo.archs  # noqa: F401  (registers zooprobe's small architectures with timm)
from zooprobe.params.config import ConfigError, check_config
from zooprobe.params.spec import MODEL_SOURCES, PRE_LOGITS, ModelConfigError, ModelSpec
from zooprobe.zoo.factory import architecture_only, create_model


def check_arch(model_name: str, arch: Any) -> None:
    """Raise :class:`ModelConfigError` unless ``arch`` is a model timm can build.

    Args:
        model_name: the zoo name, for the message.
        arch: the architecture as the params write it.
    """
    if isinstance(arch, str) and timm.is_model(arch):
        return
    close = difflib.get_close_matches(str(arch), timm.list_models(), n=5, cutoff=0.6)
    hint = f" Did you mean one of {close}?" if close else ""
    raise ModelConfigError(
        f"model {model_name!r}: unknown architecture {arch!r}. Valid sources: {', '.join(MODEL_SOURCES)}; "
        f"'arch' must be a timm model name (see timm.list_models()) or a zooprobe one "
        f"({', '.join(timm.list_models('zp_*'))}).{hint}")


def check_torchvision_arch(model_name: str, arch: Any) -> None:
    """Raise :class:`ModelConfigError` unless torchvision knows ``arch``.

    Args:
        model_name: the zoo name, for the message.
        arch: the architecture as the params write it.
    """
    valid = torchvision.models.list_models()
    if arch not in valid:
        close = difflib.get_close_matches(str(arch), valid, n=5, cutoff=0.6)
        raise ModelConfigError(f"model {model_name!r}: unknown torchvision architecture {arch!r}. Valid sources: "
                               f"{', '.join(MODEL_SOURCES)}; see torchvision.models.list_models()."
                               + (f" Did you mean one of {close}?" if close else ""))


def check_architecture(spec: ModelSpec) -> None:
    """Raise :class:`ModelConfigError` unless the library of ``spec``'s source knows its architecture.

    Args:
        spec: a zoo entry; the ``pypi`` source's names are checked by :meth:`ModelSpec.from_config`.
    """
    if spec.source == "torchvision":
        check_torchvision_arch(spec.name, spec.arch)
    elif spec.source != "pypi":
        check_arch(spec.name, spec.timm_arch)


def check_layers(spec: ModelSpec) -> None:
    """Raise :class:`ConfigError` unless every name in ``spec.layers`` is a layer of its architecture.

    Args:
        spec: a zoo entry that names ``layers``.
    """
    # The architecture alone names the layers: build it without loading any weights.
    valid = create_model(architecture_only(spec)).layer_names
    unknown = [layer for layer in spec.layers if layer not in valid]
    if unknown:
        raise ConfigError(f"models.{spec.name}.layers: unknown layers {unknown}; valid layers: {valid} "
                          f"({PRE_LOGITS!r} is the penultimate, pooled representation of timm models)")


def check_zoo(config: Mapping[str, Any], *, check_layer_names: bool = True) -> dict[str, ModelSpec]:
    """Check the params in full: :func:`check_config`, then every architecture and layer name.

    Args:
        config: params already validated against the schema.
        check_layer_names: also build each model that names ``layers`` and check those names.

    Returns:
        The parsed model specs, by name.
    """
    specs = check_config(config)
    for name, entry in ((config.get("introspective") or {}).get("compare") or {}).get("architectures", {}).items():
        try:
            check_arch(name, entry["arch"])
        except ModelConfigError as error:
            raise ConfigError(f"introspective.compare.architectures.{name}: {error}") from None
    for spec in specs.values():
        try:
            check_architecture(spec)
        except ModelConfigError as error:
            raise ConfigError(str(error)) from None
    if check_layer_names:
        for spec in specs.values():
            if spec.layers:
                check_layers(spec)
    return specs
