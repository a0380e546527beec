"""The CPUs a job may use: SLURM's allocation first, then the rule's threads, then the affinity mask."""

from __future__ import annotations

import os

import pytest

from zooprobe.workflow.allocation import allocated_cpus


def test_slurm_cpus_per_task_comes_first() -> None:
    env = {"SLURM_CPUS_PER_TASK": "3", "SLURM_CPUS_ON_NODE": "7", "SLURM_JOB_CPUS_PER_NODE": "9"}
    assert allocated_cpus(5, environ=env) == 3


def test_cpus_on_node_then_per_node_list() -> None:
    assert allocated_cpus(5, environ={"SLURM_CPUS_ON_NODE": "6"}) == 6
    # --cpus-per-gpu sets no SLURM_CPUS_PER_TASK; this node's share leads the per-node list.
    assert allocated_cpus(5, environ={"SLURM_JOB_CPUS_PER_NODE": "8(x2),4"}) == 8
    # Empty or zero values are not an allocation.
    assert allocated_cpus(5, environ={"SLURM_CPUS_PER_TASK": "", "SLURM_CPUS_ON_NODE": "0"}) == 5


def test_outside_slurm_the_threads_then_the_affinity_mask() -> None:
    assert allocated_cpus(2, environ={}) == 2
    assert allocated_cpus(environ={}) == len(os.sched_getaffinity(0))


def test_loader_workers_follow_the_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from zooprobe.extract.features import loader_workers
    from zooprobe.params.settings import ExtractSettings

    # The machine may have many more CPUs; a 3-CPU allocation leaves 2 loader workers.
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert loader_workers(ExtractSettings(), torch.device("cuda")) == 2
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert loader_workers(ExtractSettings(), torch.device("cuda")) == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "64")
    assert loader_workers(ExtractSettings(), torch.device("cuda")) == 4
    assert loader_workers(ExtractSettings(), torch.device("cpu")) == 0


def test_rule_threads_come_from_execution_threads(tmp_path):
    import yaml

    from workflow_helpers import TINY, snakemake

    params = yaml.safe_load(TINY.read_text())
    params.setdefault("execution", {})["threads"] = {"extract": 2, "dataset": 3}
    configfile = tmp_path / "params.yaml"
    configfile.write_text(yaml.safe_dump(params))
    result = snakemake(tmp_path / "work", "-n", "--cores", "4", configfile=configfile)
    threads: dict[str, set[int]] = {}
    rule = None
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
            threads.setdefault(rule, set())
        elif rule and line.strip().startswith("threads:"):
            threads[rule].add(int(line.split(":")[1]))
    # The dry run prints threads only where they are not 1.
    assert threads["extract"] == {2} and threads["dataset"] == {3}, threads
    assert threads["probe"] == set() and threads["extract_spatial"] == set(), threads  # not named: the default, 1
