"""Run DVC around a finished Snakemake run: record its outputs, and make a pulled workspace up to date.

DVC takes a repository lock, so it never runs inside Snakemake jobs: ``zooprobe dvc-commit`` records
every output once the run is over, and ``zooprobe dvc-restore`` checks a pulled workspace against
dvc.lock and marks it up to date for Snakemake (README, "Sharing results with DVC").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from zooprobe.workflow.dvcsync import DvcSyncError, sync


def run_dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``dvc ARGS`` in ``root``; raise DvcSyncError with DVC's message when it fails."""
    command = [sys.executable, "-m", "dvc", *args]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise DvcSyncError(f"`dvc {' '.join(args)}` failed:\n{result.stdout}{result.stderr}")
    return result


def changed_stages(root: Path) -> dict[str, Any]:
    """``dvc status --json``: stages whose deps, params or outs differ from dvc.lock (empty: all match)."""
    output = run_dvc(root, "status", "--json").stdout.strip()
    return json.loads(output) if output else {}


def describe_status(status: Mapping[str, Any], limit: int = 20) -> str:
    """``dvc status`` as indented lines, one a stage, at most ``limit`` of them.

    Args:
        status: from ``changed_stages``.
        limit: how many stages to list before a "... and N more" line.

    Returns:
        The text.
    """
    lines = [f"  {name}: {json.dumps(changes)}" for name, changes in list(status.items())[:limit]]
    if len(status) > limit:
        lines.append(f"  ... and {len(status) - limit} more")
    return "\n".join(lines)


def restore_command(configfile: str | None, cores: int = 1) -> list[str]:
    """Snakemake's --touch with --forceall: touch every output in DAG order and record its metadata.

    DVC checkout gives files arbitrary modification times, and a fresh clone has no Snakemake
    metadata, so without this Snakemake would rerun jobs whose outputs are older than their inputs,
    and could not see later param changes.
    """
    command = [sys.executable, "-m", "snakemake", "--touch", "--forceall", "--cores", str(cores), "--quiet"]
    if configfile:
        command += ["--configfile", configfile, "--replace-workflow-config"]
    return command


def commit_outputs(root: Path, *, dvc_yaml: str = "dvc.yaml", configfile: str | None = None) -> None:
    """Record every output of a finished run in dvc.lock and the DVC cache, once dvc.yaml matches the DAG.

    Args:
        root: the workflow's folder.
        dvc_yaml: the dvc.yaml path, relative to ``root``.
        configfile: the params file the run used, relative to ``root``; None for params.yaml.

    Raises:
        DvcSyncError: dvc.yaml disagrees with the DAG (listing how), or DVC failed.
    """
    problems = sync(root, dvc_yaml=dvc_yaml, configfile=configfile, check=True)
    if problems:
        raise DvcSyncError(f"not committing: {dvc_yaml} disagrees with the Snakemake DAG; run "
                           f"`zooprobe dvc-sync{config_arg(configfile)}` first:\n  " + "\n  ".join(problems))
    # One DVC command after the run, never inside parallel jobs: DVC holds a repository lock.
    run_dvc(root, "commit", "--force", "--quiet")


def restore_workspace(root: Path, *, configfile: str | None = None, cores: int = 1) -> None:
    """After ``dvc pull``: check the workspace matches dvc.lock, then mark every output up to date for Snakemake.

    Args:
        root: the workflow's folder.
        configfile: the params file the run used, relative to ``root``; None for params.yaml.
        cores: cores for Snakemake's --touch run.

    Raises:
        DvcSyncError: the workspace differs from dvc.lock (with what ``dvc status`` reports), or the touch failed.
    """
    status = changed_stages(root)
    if status:
        raise DvcSyncError("the workspace does not match dvc.lock, so its files cannot be marked up to date; "
                           "run `dvc pull` (or `dvc checkout`) first. `dvc status` reports:\n" + describe_status(status))
    result = subprocess.run(restore_command(configfile, cores), cwd=root)
    if result.returncode != 0:
        raise DvcSyncError(f"snakemake --touch failed (exit {result.returncode})")


def config_arg(configfile: str | None) -> str:
    """The ``--configfile FILE`` words to repeat in a hint, or nothing for params.yaml."""
    return f" --configfile {configfile}" if configfile else ""
