"""Running the real Snakefile from tests, as a user would from a shell."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"


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
