"""What every command module shares: JSON arguments, NAME=PATH lists and the run's provenance."""

from __future__ import annotations

import json
from typing import Any, Sequence


def json_arg(text: str) -> Any:
    """An argument given as JSON (a params section, a model entry)."""
    return json.loads(text)


def named_paths(items: Sequence[str] | None) -> dict[str, str]:
    """``NAME=PATH`` arguments (e.g. ``--ood``) as a mapping, in the order given."""
    return {name: path for name, _, path in (item.partition("=") for item in items or [])}


def run_provenance() -> dict[str, Any]:
    """What every output of this run records about the code.

    No wall-clock time or host name: the same inputs, params and code give byte-identical outputs.
    """
    from zooprobe import code_version

    return {"zooprobe_version": code_version()}
