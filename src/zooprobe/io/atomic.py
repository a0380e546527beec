"""Atomic file output: a reader never sees a half-written file that looks complete.

Also the lock a writer of a resumable partial file holds, so no second process replaces that file
while the first still writes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
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


class PartialInUseError(RuntimeError):
    """Another live process is writing the partial file a job would resume or replace."""


class WriterLock:
    """An exclusive lock beside a partial file, held while one process writes that file.

    A writer that is still alive (an orphaned job whose parent shell was killed, say) holds the
    lock, so a rerun refuses, naming it, instead of deleting the file under its feet. The lock
    dies with its process (``flock``), so a killed writer never blocks the next run.

    Args:
        partial: the partial file the lock guards.
    """

    def __init__(self, partial: Path) -> None:
        self.partial = partial
        self.path = partial.with_name(f"{partial.name}.lock")
        self._handle: Any = None

    def acquire(self) -> None:
        """Take the lock, recording this process id and host in the lock file.

        Raises:
            PartialInUseError: another live process holds it; the message names that process.
        """
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().split()
            handle.close()
            who = f"process {holder[0]} on {holder[1]}" if len(holder) >= 2 else "another process"
            end = f" or end it (`kill {holder[0]}`)" if holder else ""
            raise PartialInUseError(f"{self.partial} is being written right now by {who}, which holds "
                                    f"{self.path}; wait for it to finish{end}, then run again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Give the lock up and remove its file; nothing when it is not held."""
        if self._handle is not None:
            self.path.unlink(missing_ok=True)
            self._handle.close()  # closing releases the flock
            self._handle = None


def write_json(path: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as indented JSON with sorted keys, atomically.

    Args:
        path: the output file.
        payload: JSON-ready data; other numbers (numpy scalars) are written as floats.
    """
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=1, sort_keys=True, default=float))
