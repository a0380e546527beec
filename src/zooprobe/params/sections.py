"""Params sections as frozen dataclasses: one place that rejects unknown keys."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

Section = TypeVar("Section")


def section_from_config(cls: type[Section], section: Mapping[str, Any], *, name: str) -> Section:
    """Build the dataclass ``cls`` from a params section.

    Args:
        cls: a dataclass whose fields are the section's keys (missing keys take its defaults).
        section: the mapping from params.yaml.
        name: the section's name, for the error message.

    Returns:
        The dataclass instance. Unknown keys fail with the valid ones.
    """
    valid = sorted(field.name for field in dataclasses.fields(cls))
    unknown = sorted(set(section) - set(valid))
    if unknown:
        raise ValueError(f"unknown {name} params {unknown}; valid: {valid}")
    return cls(**section)
