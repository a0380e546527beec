"""What every command module shares: JSON arguments, NAME=PATH lists, provenance, JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

def _json(text: str) -> Any:
    return json.loads(text)

def _named_paths(items: Sequence[str] | None) -> dict[str, str]:
    """``NAME=PATH`` arguments (e.g. ``--ood``) as a mapping, in the order given."""
    return {name: path for name, _, path in (item.partition("=") for item in items or [])}

def _provenance_base() -> dict[str, Any]:
    from zooprobe import code_version

    # No wall-clock time or host name: the same inputs, params and code give byte-identical outputs.
    return {"zooprobe_version": code_version()}

def _write_json(path: str, payload: Any) -> None:
    from zooprobe.io.atomic import atomic_output

    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=1, sort_keys=True, default=float))
