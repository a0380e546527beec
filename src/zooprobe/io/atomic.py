"""Atomic file output: a reader never sees a half-written file that looks complete."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only on success.

    Args:
        path: the final output path. Its parent folder is created if missing.

    Returns:
        A context manager yielding the temporary path to write to. On an exception the
        temporary file is removed and ``path`` is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Same folder, so os.replace is an atomic rename on one filesystem.
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as indented JSON with sorted keys, atomically.

    Args:
        path: the output file.
        payload: JSON-ready data; other numbers (numpy scalars) are written as floats.
    """
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=1, sort_keys=True, default=float))
