"""Running the real Snakefile from tests, as a user would from a shell."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
# Runs that would push the suite past its 25-minute budget (README) run only when asked for.
SLOW_TESTS_ENV = "ZOOPROBE_SLOW_TESTS"


def skip_unless_slow_tests(what: str, minutes: int) -> None:
    """Skip ``what`` (about ``minutes`` on 2 cores) unless ZOOPROBE_SLOW_TESTS=1 asks for it."""
    import pytest

    if os.environ.get(SLOW_TESTS_ENV) != "1":
        pytest.skip(f"{what} takes about {minutes} min on 2 cores, past the suite's 25-minute budget; "
                    f"set {SLOW_TESTS_ENV}=1 to run it")


def snakemake(workdir: Path, *args: str, configfile: Path = TINY, check: bool = True,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """Run Snakemake on ``configfile`` in ``workdir``; fail with its output unless ``check`` is off."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), "--replace-workflow-config", *args]
    # The rules call `python -m zooprobe`: put this interpreter's folder first, as an activated venv would.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def rules_run(output: str) -> set[str]:
    """Names of the rules that a Snakemake run or dry-run scheduled."""
    return set(re.findall(r"^\s*(?:local)?rule (\w+):", output, flags=re.MULTILINE)) - {"all"}


GIT_IDENTITY = {"GIT_AUTHOR_NAME": "zooprobe test", "GIT_AUTHOR_EMAIL": "test@zooprobe.invalid",
                "GIT_COMMITTER_NAME": "zooprobe test", "GIT_COMMITTER_EMAIL": "test@zooprobe.invalid"}


def run(command: list[str], cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a command as a user would in ``cwd``, with this venv first on PATH and no DVC analytics."""
    env = dict(os.environ, **GIT_IDENTITY, DVC_NO_ANALYTICS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def copy_checkout(dest: Path) -> Path:
    """Copy this checkout's files (tracked, and new ones git does not ignore) to ``dest``, as a clone has them."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest
