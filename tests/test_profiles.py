"""The SLURM and local profiles: planned resources, and what a (fake) sbatch receives."""

from __future__ import annotations


import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_helpers import TINY, copy_checkout, rules_run, run, snakemake

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow

# Stand-ins for the SLURM client tools. sbatch appends its arguments (tab-separated, one call a
# line), then refuses the job, so Snakemake stops without needing a scheduler to poll.
FAKE_TOOLS = {
    "sbatch": 'printf "%s\\t" "$@" >> "$FAKE_SLURM_DIR/sbatch.calls"; echo >> "$FAKE_SLURM_DIR/sbatch.calls"\n'
              'cat >> "$FAKE_SLURM_DIR/sbatch.stdin"\n'
              'echo "sbatch: error: fake sbatch recorded this submission" >&2; exit 1',
    "sacctmgr": "echo my-account",
    "sshare": "echo my-account",
    "sinfo": 'printf "PARTITION\\ncpu*\\ngpu\\n"',
    "squeue": "exit 0",
    "sacct": "exit 0",
    "scancel": "exit 0",
}


def fake_slurm(folder: Path) -> Path:
    folder.mkdir()
    for name, body in FAKE_TOOLS.items():
        tool = folder / name
        tool.write_text(f"#!/bin/sh\n{body}\n")
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def planned_resources(output: str, rule: str) -> list[dict[str, str]]:
    """The `resources:` line of every planned job of ``rule``, as dicts."""
    found, current = [], None
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith(("rule ", "localrule ")):
            current = stripped.split()[1].rstrip(":")
        elif stripped.startswith("resources:") and current == rule:
            # Split at ", name=": a string resource (execution, as JSON) holds commas of its own.
            found.append(dict(item.strip().split("=", 1)
                              for item in re.split(r",\s*(?=\w+=)", stripped[len("resources:"):])))
    return found


def test_slurm_profile_plans_extraction_on_the_gpu_partition(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path / "checkout")
    result = run([sys.executable, "-m", "snakemake", "-n", "--workflow-profile", "profiles/slurm"], cwd=checkout)
    output = result.stdout + result.stderr
    extract = planned_resources(output, "extract")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert len(extract) == len(params["datasets"]) * 6  # 6 models in the embedded default
    for job in extract:
        assert job["gpu"] == "1" and job["slurm_partition"] == "gpu" and job["cpus_per_gpu"] == "8", job
        assert int(job["mem_mb"]) > 0 and int(job["runtime"]) > 0
    # CPU rules stay on the default (CPU) partition, with their own sizes and no GPU.
    for job in planned_resources(output, "probe"):
        assert job["slurm_partition"] == "cpu" and "gpu" not in job
    assert "train" in rules_run(output)


# The rules that run a model, and so request the `gpu` resource.
MODEL_RULES = {"extract", "extract_spatial", "train", "icn_compare"}


def planned_gpu_rules(tmp_path: Path, configfile: Path, device: str) -> dict[str, set[str]]:
    """Dry-run ``configfile`` with every device set to ``device``: each rule's planned ``gpu`` values."""
    params = yaml.safe_load(configfile.read_text())
    params["train"]["device"] = device
    params.setdefault("execution", {}).setdefault("extract", {})["device"] = device
    changed = tmp_path / f"{configfile.stem}-{device}.yaml"
    changed.write_text(yaml.safe_dump(params))
    workdir = tmp_path / f"work-{configfile.stem}-{device}"
    workdir.mkdir()
    output = snakemake(workdir, "-n", configfile=changed)
    planned = output.stdout + output.stderr
    return {rule: {job.get("gpu", "none") for job in planned_resources(planned, rule)} for rule in rules_run(planned)}


def test_default_profile_limits_the_gpu_resource_the_model_rules_request(tmp_path: Path) -> None:
    """The default profile caps `gpu` at 1, and `gpu` is what every model-running job requests on a GPU:
    so at most one of them runs at a time, while CPU jobs (no `gpu`) are not held back."""
    profile = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert profile["resources"] == {"gpu": 1}
    planned = {}
    for configfile in (TINY, REPO / "tests" / "configs" / "icn.yaml"):
        planned.update(planned_gpu_rules(tmp_path, configfile, "cuda"))
    requesting = {rule for rule, values in planned.items() if values != {"none"} and values != {"0"}}
    assert requesting == MODEL_RULES, planned
    assert all(values == {"1"} for rule, values in planned.items() if rule in MODEL_RULES), planned
    # On the CPU no job asks for a GPU, so the limit holds nothing back.
    on_cpu = planned_gpu_rules(tmp_path, TINY, "cpu")
    assert all(values <= {"0", "none"} for values in on_cpu.values()), on_cpu
    # The SLURM profile sends exactly these rules to its GPU partition.
    slurm = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())["set-resources"]
    assert {rule for rule, res in slurm.items() if res.get("slurm_partition") == "'gpu'"} == MODEL_RULES


def test_fake_sbatch_receives_gpu_partition_time_and_memory(tiny_checkout_run: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(tiny_checkout_run, checkout)
    # One missing feature file, asked for as the target: its extraction is the job to submit.
    feature = next((checkout / "data" / "features").glob("*/*.h5"))
    feature.unlink()
    target = str(feature.relative_to(checkout))
    tools = fake_slurm(tmp_path / "bin")
    env_path = f"{tools}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/slurm", "--slurm-status-command", "squeue",
         target],
        cwd=checkout, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PATH=env_path, FAKE_SLURM_DIR=str(tools)))
    assert result.returncode != 0, "the fake sbatch refuses every job, so the run must fail"
    assert "fake sbatch recorded this submission" in result.stdout + result.stderr
    calls = [line.rstrip("\t").split("\t") for line in (tools / "sbatch.calls").read_text().splitlines()]
    # The profile retries once, and a retry asks for twice the time and memory.
    assert len(calls) == 2, calls
    for attempt, args in enumerate(calls, start=1):
        submitted = " ".join(args)
        assert "--gpus=1" in args, submitted
        assert "-p" in args and args[args.index("-p") + 1] == "gpu", submitted
        assert "-t" in args and args[args.index("-t") + 1] == str(120 * attempt), submitted
        assert "--mem" in args and args[args.index("--mem") + 1] == str(32000 * attempt), submitted
        assert "--cpus-per-gpu=8" in args, submitted
        assert "-A" in args and args[args.index("-A") + 1] == "my-account", submitted
        wrapped = next(arg for arg in args if arg.startswith("--wrap="))
        assert "--target-jobs 'extract:" in wrapped and f"--attempt {attempt}" in wrapped, wrapped
    model, dataset = feature.parent.name, feature.stem
    assert f"extract:model={model},dataset={dataset}" in " ".join(calls[0]), "the job submitted must be the missing extraction"
