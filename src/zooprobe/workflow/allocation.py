"""The CPUs this job may use: its SLURM allocation, its rule's threads, or this process's CPU affinity.

Torch-free, so that any stage can size its worker pools from it. ``os.cpu_count()`` is never the
answer: on a SLURM node (or in a container, or under ``taskset``) it counts the whole machine, not
what this job was given.
"""

from __future__ import annotations

import os
import re
from typing import Mapping


def _positive_int(text: str | None) -> int | None:
    """The leading count of a SLURM CPU variable (``"8"``, or ``"8(x2),4"`` for per-node lists), if positive."""
    if not text:
        return None
    match = re.match(r"\s*(\d+)", text)
    count = int(match.group(1)) if match else 0
    return count if count > 0 else None


def allocated_cpus(threads: int | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """The number of CPUs this job may use.

    In order: ``SLURM_CPUS_PER_TASK`` (set when the job asked for ``--cpus-per-task``, as the slurm
    executor does from a rule's threads); ``SLURM_CPUS_ON_NODE`` (the CPUs the job holds on this node,
    e.g. from ``--cpus-per-gpu``); the leading count of ``SLURM_JOB_CPUS_PER_NODE`` (``"8(x2),4"``:
    this node's share is the first); else the rule's ``threads``; else the CPUs this process's
    affinity mask allows.

    Args:
        threads: the job's thread count from its rule, when known.
        environ: the environment (default: this process's).

    Returns:
        At least 1.
    """
    environ = os.environ if environ is None else environ
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE", "SLURM_JOB_CPUS_PER_NODE"):
        count = _positive_int(environ.get(name))
        if count is not None:
            return count
    if threads is not None and threads > 0:
        return threads
    # sched_getaffinity is Linux-only; elsewhere one CPU is the safe answer, not the machine's count.
    affinity = getattr(os, "sched_getaffinity", None)
    return max(1, len(affinity(0))) if affinity is not None else 1
