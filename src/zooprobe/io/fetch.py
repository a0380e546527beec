"""Downloads with sha256 verification and an optional mirror, for datasets and weights.

Offline sites and CI point ``ZOOPROBE_MIRROR`` (or a ``mirror`` param) at a ``file://``
folder laid out like the original hosts: the mirror replaces ``scheme://host`` of each URL.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

from zooprobe.io.atomic import atomic_output

MIRROR_ENV = "ZOOPROBE_MIRROR"
CHUNK_BYTES = 1 << 20


class ChecksumError(ValueError):
    """A file whose sha256 is not the one the params promise."""


def sha256_of(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def cached_sha256(path: str | Path, *, cache: Path) -> str:
    """The sha256 of a file, from a JSON cache when its size, mtime, ctime and inode are those recorded.

    The ctime changes whenever a file's content or metadata changes and cannot be set back (``cp -p``
    and ``rsync -t`` restore the mtime, not the ctime), so a replaced file is always hashed again.
    """
    import json
    import os

    stat = os.stat(path)
    key = f"{Path(path).resolve()}"
    signature = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
    try:
        entries = json.loads(cache.read_text())
    except (OSError, ValueError):
        entries = {}
    entry = entries.get(key)
    if entry and entry.get("stat") == signature:
        return entry["sha256"]
    digest = sha256_of(path)
    entries[key] = {"stat": signature, "sha256": digest}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(entries, sort_keys=True))
        os.replace(tmp, cache)
    except OSError:  # a read-only checkout still plans; it hashes again next time
        pass
    return digest


def verify_sha256(path: str | Path, expected: str, *, name: str | None = None) -> None:
    """Raise :class:`ChecksumError` naming the file and both hashes unless they match.

    Args:
        path: the file to check.
        expected: the sha256 from the params.
        name: how to name the file in the message (default: the path).
    """
    actual = sha256_of(path)
    if actual != expected.lower():
        raise ChecksumError(f"sha256 mismatch for {name or path}: expected {expected.lower()}, got {actual}. "
                            f"Fix the sha256 in the params, or replace the file with the intended one.")


def resolve_url(url: str, mirror: str | None = None) -> str:
    """Replace ``scheme://host`` of ``url`` with ``mirror`` (or ``$ZOOPROBE_MIRROR``) when one is set."""
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return mirror.rstrip("/") + "/" + parts.path.lstrip("/")


def fetch(url: str, *, sha256: str, dest: str | Path, mirror: str | None = None) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is there already.

    Args:
        url: http(s) or file URL.
        sha256: expected hex digest; a mismatch fails and leaves no file at ``dest``.
        dest: final path of the file.
        mirror: replaces ``scheme://host``; default ``$ZOOPROBE_MIRROR``.

    Returns:
        ``dest``.
    """
    dest = Path(dest)
    if dest.exists():
        verify_sha256(dest, sha256, name=dest.name)
        return dest
    source = resolve_url(url, mirror)
    with atomic_output(dest) as tmp:
        with urllib.request.urlopen(source, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, CHUNK_BYTES)
        verify_sha256(tmp, sha256, name=f"{dest.name} (from {source})")
    return dest
