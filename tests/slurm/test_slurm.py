"""The SLURM profile on a real single-node SLURM cluster on localhost (scripts/slurm-local.sh).

Needs root and Debian's slurmctld, slurmd, slurm-client and munge (`scripts/slurm-local.sh install`);
skips with the reason otherwise. `.ci/run` installs them.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO, TINY, copy_checkout, run, skip_unless_slow_tests

pytestmark = pytest.mark.workflow

CLUSTER = REPO / "scripts" / "slurm-local.sh"
PARTITION = "debug"
DAEMONS = ("munged", "slurmctld", "slurmd", "slurmstepd")
# The CI overlay on profiles/slurm: this cluster's partition for every rule (also replacing the profile's
# GPU partition, which this cluster lacks), no account (accounting is off here), squeue for status (sacct
# needs accounting), quick first status check, and successful jobs' logs kept so the test can read them.
CI_OVERLAY = [
    "--default-resources", f"slurm_partition='{PARTITION}'",
    "--set-resources", *(f"{rule}:slurm_partition='{PARTITION}'" for rule in ("extract", "extract_spatial", "train",
                                                                              "icn_compare")),
    "--slurm-no-account", "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "2",
    "--slurm-keep-successful-logs",
    # The most CPUs a group job may ask for: this node's (slurm-local.sh gives it nproc). A group whose
    # parallel jobs need more runs them in layers, as the profile's comment on grouping says.
    "--cores", str(len(os.sched_getaffinity(0))),
]
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def why_no_cluster() -> str | None:
    """Why the SLURM tests cannot run here, or None."""
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root to start slurmctld, slurmd and munged (scripts/slurm-local.sh)"
    missing = [tool for tool in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")
               if not (shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists())]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing); install it with: scripts/slurm-local.sh install"
    return None


def daemon_pids() -> set[int]:
    """Pids of every SLURM or munge process on the host."""
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() in DAEMONS:
                    found.add(int(proc.name))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node cluster; stopped afterwards, with no process of it left behind."""
    reason = why_no_cluster()
    if reason:
        pytest.skip(reason)
    before = daemon_pids()
    started = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, f"slurm-local.sh start failed:\n{started.stdout}\n{started.stderr}"
    yield started.stdout
    stopped = subprocess.run([str(CLUSTER), "stop"], capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    time.sleep(0.5)
    assert daemon_pids() - before == set(), "SLURM or munge processes started by the tests are still running"
    assert not Path("/etc/slurm/slurm.conf").exists()


def slurm_snakemake(checkout: Path, *args: str, profile: str = "profiles/slurm", check: bool = True, timeout: int = 900):
    return run([sys.executable, "-m", "snakemake", "--workflow-profile", profile, *CI_OVERLAY, *args],
               cwd=checkout, check=check, timeout=timeout)


def scontrol_job(slurm_id: str) -> dict[str, str]:
    text = subprocess.run(["scontrol", "show", "job", slurm_id], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"(\S+?)=(\S*)", text))


def megabytes(text: str) -> int:
    number, unit = re.fullmatch(r"([\d.]+)([KMGT]?)", text).groups()
    return round(float(number) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2, "": 1}[unit])


def minutes(text: str) -> int:
    days, _, clock = text.rpartition("-")
    h, m, s = (int(part) for part in clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (s > 0)


def job_blocks(output: str) -> dict[str, dict[str, str]]:
    """Snakemake's job descriptions, by its job id: rule, threads and resources, local or not."""
    jobs = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\n)", output):
        rule = re.search(r"^(local)?rule (\w+):", block, flags=re.MULTILINE)
        jobid = re.search(r"^\s+jobid: (\d+)", block, flags=re.MULTILINE)
        if rule and jobid:
            resources = re.search(r"^\s+resources: (.*)$", block, flags=re.MULTILINE)
            threads = re.search(r"^\s+threads: (\d+)", block, flags=re.MULTILINE)
            jobs[jobid.group(1)] = {
                "rule": rule.group(2), "local": bool(rule.group(1)), "threads": threads.group(1) if threads else "1",
                **dict(item.split("=", 1) for item in re.split(r", (?=\w+=)", resources.group(1)) if resources)}
    return jobs


def local_rules() -> set[str]:
    block = re.search(r"^localrules:\n((?:    \w+,\n)+)", (REPO / "rules" / "common.smk").read_text(), re.MULTILINE)
    return set(re.findall(r"(\w+),", block.group(1)))


def test_the_readme_says_where_every_rule_runs():
    readme = (REPO / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("Local rules (never submitted):"))
    assert set(re.findall(r"`(\w+)`", line)) == local_rules()


def ungrouped_profile(checkout: Path) -> str:
    """profiles/slurm without its job grouping, written into ``checkout``: one submission per job."""
    profile = yaml.safe_load((checkout / "profiles/slurm/config.yaml").read_text())
    assert profile.pop("groups") and profile.pop("group-components"), "profiles/slurm groups the short jobs"
    folder = checkout / "profiles" / "slurm-ungrouped"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return "profiles/slurm-ungrouped"


def slurm_run(checkout: Path, profile: str) -> tuple[str, float]:
    """Run the tiny config in ``checkout`` with ``profile``: Snakemake's output and the seconds it took."""
    shutil.copy2(TINY, checkout / "params.yaml")
    started = time.perf_counter()
    result = slurm_snakemake(checkout, profile=profile)
    seconds = time.perf_counter() - started
    print(f"tiny config on SLURM ({profile}): {seconds:.0f} s")  # shown with -s / in the CI log's captured output
    return result.stdout + result.stderr, seconds


def submissions(checkout: Path, output: str) -> dict[str, tuple[str, Path]]:
    """Every sbatch submission of a run, by Snakemake's job (or group) id: SLURM job id and log.

    Counted twice, from Snakemake's log and from the SLURM logs the run kept (one per submission,
    --slurm-keep-successful-logs), so a changed log message cannot make the count quietly zero."""
    submitted = {jobid: (slurm_id, Path(log)) for jobid, slurm_id, log in SUBMITTED.findall(output)}
    kept = sorted((checkout / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert sorted(log for _, log in submitted.values()) == kept
    assert len({slurm_id for slurm_id, _ in submitted.values()}) == len(submitted)
    return submitted


@pytest.fixture(scope="module")
def ungrouped_slurm_run(slurm_cluster, tmp_path_factory) -> tuple[Path, str]:
    """The tiny config on SLURM, one submission per job: the checkout and Snakemake's output."""
    checkout = copy_checkout(tmp_path_factory.mktemp("slurm-ungrouped") / "checkout")
    output, _ = slurm_run(checkout, ungrouped_profile(checkout))
    return checkout, output


def test_tiny_config_runs_as_slurm_jobs_and_matches_the_local_run(ungrouped_slurm_run, tiny_checkout_run):
    checkout, output = ungrouped_slurm_run
    jobs = job_blocks(output)
    submitted = submissions(checkout, output)
    remote = {jobid for jobid, job in jobs.items() if not job["local"]}
    assert remote and set(submitted) == remote, "every non-local job, and only those, went to SLURM"
    assert {jobs[j]["rule"] for j in jobs if jobs[j]["local"]} <= local_rules()
    assert "report" in {jobs[j]["rule"] for j in jobs if jobs[j]["local"]}
    for jobid, (slurm_id, log) in submitted.items():
        job, info = jobs[jobid], scontrol_job(slurm_id)
        # Its SLURM log exists and names the job id, and SLURM ran it to completion on this partition.
        assert log.exists() and log.name == f"{slurm_id}.log" and f"rule_{job['rule']}" in log.parts
        assert info["JobState"] == "COMPLETED" and info["Partition"] == PARTITION
        assert Path(info["StdOut"]) == log
        # What each rule asked for reached SLURM.
        assert megabytes(info["MinMemoryNode"]) == int(job["mem_mb"]), (job, info["MinMemoryNode"])
        assert minutes(info["TimeLimit"]) == int(job["runtime"]), (job, info["TimeLimit"])
        assert int(info["CPUs/Task"]) == int(job["threads"])
    assert (checkout / "results/scores.csv").read_bytes() == (tiny_checkout_run / "results/scores.csv").read_bytes()
    assert (checkout / "results/report/index.html").exists()


def test_grouped_short_jobs_take_fewer_submissions_and_give_the_same_scores(ungrouped_slurm_run, tmp_path):
    skip_unless_slow_tests("a second (grouped) SLURM run of the tiny config", 4)
    ungrouped_checkout, ungrouped_output = ungrouped_slurm_run
    checkout = copy_checkout(tmp_path / "checkout")
    output, _ = slurm_run(checkout, "profiles/slurm")
    grouped, ungrouped = submissions(checkout, output), submissions(ungrouped_checkout, ungrouped_output)
    groups = {jobid: log for jobid, (_, log) in grouped.items() if any(p.startswith("group_") for p in log.parts)}
    assert groups, "the profile's groups went to SLURM as group jobs"
    print(f"sbatch submissions: {len(ungrouped)} ungrouped, {len(grouped)} grouped")
    assert len(grouped) < len(ungrouped), (len(grouped), len(ungrouped))
    for slurm_id, _ in grouped.values():
        assert scontrol_job(slurm_id)["JobState"] == "COMPLETED"
    assert (checkout / "results/scores.csv").read_bytes() == (ungrouped_checkout / "results/scores.csv").read_bytes()


def test_a_failing_job_is_reported_failed_and_leaves_no_output(slurm_cluster, tmp_path):
    checkout = copy_checkout(tmp_path / "checkout")
    config = yaml.safe_load(TINY.read_text())
    # Built in full, then refused: the pinned content hash is wrong.
    config["datasets"]["broken"] = dict(config["datasets"]["shapes_texture"], sha256="0" * 64)
    (checkout / "params.yaml").write_text(yaml.safe_dump(config))
    # No retry: the profile's retry only repeats the same failure (test_profiles checks what a retry asks for).
    # Ungrouped: the failure is the dataset job's own (a group job would fail as its group).
    result = slurm_snakemake(checkout, "--retries", "0", "data/datasets/broken.h5", profile=ungrouped_profile(checkout),
                             check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule dataset" in output
    (submission,) = SUBMITTED.findall(output)
    _, slurm_id, log = submission
    assert scontrol_job(slurm_id)["JobState"] == "FAILED"
    assert f"SLURM-job '{slurm_id}' failed" in output
    assert Path(log).exists() and "rule_dataset" in Path(log).parts
    assert "sha256 mismatch for dataset 'broken'" in (checkout / "logs/datasets/broken.log").read_text()
    leftovers = [p.name for p in (checkout / "data" / "datasets").glob("*")] if (checkout / "data/datasets").exists() else []
    assert leftovers == []
