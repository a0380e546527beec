"""The SLURM profile on a real single-node SLURM cluster on localhost (scripts/slurm-local.sh).

Needs root and Debian's slurmctld, slurmd, slurm-client and munge (`scripts/slurm-local.sh install`);
skips with the reason otherwise. `.ci/run` installs them.

One real run of the tiny config (the suite's budget allows one): with profiles/slurm as users get it,
short jobs grouped. What the ungrouped profile would submit comes from its dry-run on the same checkout
before that run (without groups the SLURM plugin submits every non-local job alone); a full ungrouped
run is opt-in (ZOOPROBE_SLOW_TESTS=1).
"""
from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO, TINY, copy_checkout, run, skip_unless_slow_tests

pytestmark = pytest.mark.workflow

CLUSTER = REPO / "scripts" / "slurm-local.sh"
PARTITION = "debug"
DAEMONS = ("munged", "slurmctld", "slurmd", "slurmstepd")
# The rules profiles/slurm sends to the GPU partition, one submission each (a group has one partition).
GPU_RULES = ("extract", "extract_spatial", "train", "icn_compare")
# The most CPUs a group job may ask for in CI: this node's (slurm-local.sh gives the node nproc CPUs).
CORES = len(os.sched_getaffinity(0))
# The CI overlay on profiles/slurm: this cluster's partition for every rule (also replacing the profile's
# GPU partition, which this cluster lacks), no account (accounting is off here), squeue for status (sacct
# needs accounting), quick first status check, and successful jobs' logs kept so the test can read them.
CI_OVERLAY = [
    "--default-resources", f"slurm_partition='{PARTITION}'",
    "--set-resources", *(f"{rule}:slurm_partition='{PARTITION}'" for rule in GPU_RULES),
    "--slurm-no-account", "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "2",
    "--slurm-keep-successful-logs",
    # The most CPUs a group job may ask for: this node's (slurm-local.sh gives it nproc). A group whose
    # parallel jobs need more runs them in layers, as the profile's comment on grouping says.
    "--cores", str(CORES),
]
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$", flags=re.MULTILINE)
# A group job's header in Snakemake's log (run and dry-run); its members' job blocks follow, indented.
GROUP_HEADER = re.compile(r"^\[[^\]]+\] Group job (\S+) \(jobs in lexicogr\. order\):$")
# Where a job block starts: its time stamp alone on a line (indented among a group job's members).
BLOCK_START = re.compile(r"\n(?=[ \t]*\[[^\]\n]+\]\n)")


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


def job_blocks(output: str) -> dict[str, dict]:
    """Snakemake's job descriptions, by its job id: rule, local or not, threads, resources, files, wildcards.

    Reads the top-level blocks and the indented ones that list a group job's members, in a run's log or
    a dry-run's plan. A dry-run prints local rules as `rule` too: tell them apart with local_rules()."""
    jobs = {}
    for block in BLOCK_START.split(output):
        rule = re.search(r"^\s*(local)?rule (\w+):", block, flags=re.MULTILINE)
        jobid = re.search(r"^\s+jobid: (\d+)$", block, flags=re.MULTILINE)
        if rule and jobid:
            fields = dict(re.findall(r"^\s+(input|output|wildcards|resources|threads): (.*)$", block,
                                     flags=re.MULTILINE))
            jobs[jobid.group(1)] = {
                "rule": rule.group(2), "local": bool(rule.group(1)), "threads": fields.get("threads", "1"),
                "input": set(fields.get("input", "").split(", ")) - {""},
                "output": set(fields.get("output", "").split(", ")) - {""},
                "wildcards": dict(item.split("=", 1) for item in fields.get("wildcards", "").split(", ") if item),
                # Split at ", name=": a string resource (execution, as JSON) holds commas of its own.
                **dict(item.split("=", 1) for item in re.split(r", (?=\w+=)", fields.get("resources", "")) if item)}
    return jobs


def group_sections(output: str) -> list[tuple[str, set[str]]]:
    """The group jobs a run or dry-run printed: each one's group name and its members' job ids."""
    sections: list[tuple[str, set[str]]] = []
    members: set[str] | None = None  # the listing being read, until a top-level line ends it
    for line in output.splitlines():
        header = GROUP_HEADER.match(line)
        if header:
            members = set()
            sections.append((header.group(1), members))
        elif members is not None and line and not line[0].isspace():
            members = None
        elif members is not None and (member := re.fullmatch(r"\s+jobid: (\d+)", line)):
            members.add(member.group(1))
    return sections


def local_rules() -> set[str]:
    block = re.search(r"^localrules:\n((?:    \w+,\n)+)", (REPO / "rules" / "common.smk").read_text(), re.MULTILINE)
    return set(re.findall(r"(\w+),", block.group(1)))


def test_the_readme_says_where_every_rule_runs():
    readme = (REPO / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("Local rules (never submitted):"))
    assert set(re.findall(r"`(\w+)`", line)) == local_rules()


def profile_groups() -> tuple[dict[str, str], dict[str, int]]:
    """profiles/slurm's job grouping: each grouped rule's group, and each group's most components."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    return profile["groups"], profile["group-components"]


def ungrouped_profile(checkout: Path) -> str:
    """profiles/slurm without its job grouping, written into ``checkout``: one submission per job."""
    profile = yaml.safe_load((checkout / "profiles/slurm/config.yaml").read_text())
    assert profile.pop("groups") and profile.pop("group-components"), "profiles/slurm groups the short jobs"
    folder = checkout / "profiles" / "slurm-ungrouped"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return "profiles/slurm-ungrouped"


def tiny_checkout(dest: Path) -> Path:
    """A copy of this checkout at ``dest`` with the tiny config as its params.yaml."""
    checkout = copy_checkout(dest)
    shutil.copy2(TINY, checkout / "params.yaml")
    return checkout


def slurm_run(checkout: Path, profile: str) -> tuple[str, float]:
    """Run ``checkout``'s params with ``profile``: Snakemake's output and the seconds it took."""
    started = time.perf_counter()
    result = slurm_snakemake(checkout, profile=profile)
    seconds = time.perf_counter() - started
    print(f"tiny config on SLURM ({profile}): {seconds:.0f} s")  # shown with -s / in the CI log's captured output
    return result.stdout + result.stderr, seconds


def dry_run(checkout: Path, profile: str) -> str:
    """Snakemake's plan for ``checkout`` with ``profile`` (a dry-run: nothing is submitted)."""
    started = time.perf_counter()
    result = slurm_snakemake(checkout, "--dry-run", profile=profile)
    print(f"dry-run ({profile}): {time.perf_counter() - started:.0f} s")
    return result.stdout + result.stderr


def remote_jobs(jobs: dict[str, dict]) -> dict[str, dict]:
    """The jobs that go to SLURM: all but the local rules'."""
    return {jobid: job for jobid, job in jobs.items() if job["rule"] not in local_rules()}


def planned_submissions(plan: str) -> int:
    """The sbatch submissions a dry-run's plan means: snakemake-executor-plugin-slurm submits each group
    job once (run_job) and every other non-local job alone (no job arrays: the profile asks for none)."""
    sections = group_sections(plan)
    grouped = set().union(*(members for _, members in sections))
    return len(sections) + len(set(remote_jobs(job_blocks(plan))) - grouped)


def submissions(checkout: Path, output: str) -> dict[str, tuple[str, Path]]:
    """Every sbatch submission of a run, by Snakemake's job (or group) id: SLURM job id and log.

    Counted twice, from Snakemake's log and from the SLURM logs the run kept (one per submission,
    --slurm-keep-successful-logs), so a changed log message cannot make the count quietly zero."""
    submitted = {jobid: (slurm_id, Path(log)) for jobid, slurm_id, log in SUBMITTED.findall(output)}
    kept = sorted((checkout / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert sorted(log for _, log in submitted.values()) == kept
    assert len({slurm_id for slurm_id, _ in submitted.values()}) == len(submitted)
    return submitted


def is_group_log(log: Path) -> bool:
    """Whether a SLURM log is a group job's (the plugin files those under group_<group>...)."""
    return any(part.startswith("group_") for part in log.parts)


def check_submitted_alone(job: dict, slurm_id: str, log: Path) -> None:
    """A job submitted alone: its log, its state and partition, and its rule's resources as SLURM got them."""
    info = scontrol_job(slurm_id)
    # Its SLURM log exists and names the job id, and SLURM ran it to completion on this partition.
    assert log.exists() and log.name == f"{slurm_id}.log" and f"rule_{job['rule']}" in log.parts
    assert info["JobState"] == "COMPLETED" and info["Partition"] == PARTITION, (job["rule"], info["JobState"])
    assert Path(info["StdOut"]) == log
    # What each rule asked for reached SLURM.
    assert megabytes(info["MinMemoryNode"]) == int(job["mem_mb"]), (job, info["MinMemoryNode"])
    assert minutes(info["TimeLimit"]) == int(job["runtime"]), (job, info["TimeLimit"])
    assert int(info["CPUs/Task"]) == int(job["threads"])


def group_members(log: Path, groupid: str, jobs: dict[str, dict]) -> set[str]:
    """The run's job ids a group job ran, from its SLURM log: the --target-jobs of the Snakemake it started,
    which the log shows was this group's (--local-groupid)."""
    command = re.search(r"^\s+Command: (.*)$", log.read_text(), flags=re.MULTILINE).group(1)
    assert f"--local-groupid {groupid} " in command, command
    targets = re.search(r"--target-jobs (.+?) --", command).group(1).split()
    by_target = {(job["rule"], tuple(sorted(job["wildcards"].items()))): jobid for jobid, job in jobs.items()}
    members = set()
    for target in targets:
        rule, _, wildcards = target.partition(":")
        members.add(by_target[rule, tuple(sorted(tuple(item.split("=", 1)) for item in wildcards.split(",") if item))])
    assert len(members) == len(targets)
    return members


def resource(job: dict, name: str) -> int:
    """A job's integer resource; 0 where the log shows it undecided (<TBD>), which Snakemake leaves out
    of a group's sums too (an input made inside the group does not exist when the group is sized)."""
    value = job.get(name, "")
    return int(value) if value.isdigit() else 0


def depths(members: list[dict]) -> list[list[dict]]:
    """A group's jobs by depth: each depends only on jobs of lower depths in the group (Snakemake's toposort)."""
    made_by = {path: i for i, job in enumerate(members) for path in job["output"]}
    depth: dict[int, int] = {}

    def of(i: int) -> int:
        if i not in depth:
            depth[i] = 1 + max((of(made_by[path]) for path in members[i]["input"] if path in made_by), default=-1)
        return depth[i]

    levels: defaultdict[int, list[dict]] = defaultdict(list)
    for i, job in enumerate(members):
        levels[of(i)].append(job)
    return [levels[d] for d in sorted(levels)]


def components(members: list[dict]) -> int:
    """How many unconnected parts a group's jobs form (what group-components limits)."""
    made_by = {path: i for i, job in enumerate(members) for path in job["output"]}
    parent = list(range(len(members)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, job in enumerate(members):
        for path in job["input"] & made_by.keys():
            parent[root(i)] = root(made_by[path])
    return len({root(i) for i in range(len(members))})


def group_request(members: list[dict], cores: int) -> tuple[int, int, tuple[int, int]]:
    """What a group job of ``members`` asks SLURM for, with ``cores`` its only limit (as in CI).

    The profile's rule (Snakemake's GroupResources.basic_layered): jobs of one depth run side by side, at
    most cores // threads at once, so a depth runs in layers of that many, longest jobs first; a layer asks
    for its jobs' summed CPUs and memory and its longest runtime; layers and depths run in series, so the
    group asks for the widest layer's CPUs and memory and the summed runtime. Which of equally long jobs
    share a layer is Snakemake's order, so memory comes as bounds: at least the most one job or an even
    split over the layers needs, at most the depth's largest side-by-side jobs together.

    Args:
        members: the group's job descriptions (job_blocks), with threads, mem_mb, runtime and files.
        cores: the most CPUs a group job may ask for (--cores).

    Returns:
        CPUs, runtime in minutes, and the (lowest, highest) memory in MB.
    """
    cpus, runtime, low, high = 0, 0, 0, 0
    for level in depths(members):
        threads = {int(job["threads"]) for job in level}
        assert len(threads) == 1, f"the model covers jobs of equal threads at each depth, not {sorted(threads)}"
        side_by_side = max(1, cores // threads.pop())
        cpus = max(cpus, int(level[0]["threads"]) * min(len(level), side_by_side))
        runtimes = sorted((resource(job, "runtime") for job in level), reverse=True)
        layers = math.ceil(len(level) / side_by_side)
        runtime += sum(runtimes[::side_by_side])  # each layer's longest job
        memory = sorted((resource(job, "mem_mb") for job in level), reverse=True)
        low = max(low, memory[0], math.ceil(sum(memory) / layers))
        high = max(high, sum(memory[:side_by_side]))
    return cpus, runtime, (low, high)


@dataclass(frozen=True)
class GroupedRun:
    """The tiny config's one SLURM run, with profiles/slurm as users get it, and the plans made before it."""

    checkout: Path
    output: str          # Snakemake's log of the run
    seconds: float       # how long the run took
    ungrouped_plan: str  # the dry-run, on the same checkout, of the profile without its groups
    grouped_plan: str    # the dry-run of the profile itself


@pytest.fixture(scope="module")
def grouped_slurm_run(slurm_cluster, tmp_path_factory) -> GroupedRun:
    """The tiny config on SLURM with the profile's job grouping, planned first with and without it."""
    checkout = tiny_checkout(tmp_path_factory.mktemp("slurm-grouped") / "checkout")
    # Planned before the run, which leaves nothing to plan; the same checkout and params, so both plans
    # hold the jobs the run runs, and the tests can check that.
    ungrouped_plan = dry_run(checkout, ungrouped_profile(checkout))
    grouped_plan = dry_run(checkout, "profiles/slurm")
    output, seconds = slurm_run(checkout, "profiles/slurm")
    return GroupedRun(checkout, output, seconds, ungrouped_plan, grouped_plan)


def test_grouped_run_takes_fewer_sbatch_submissions_than_the_ungrouped_profile_plans(grouped_slurm_run):
    run = grouped_slurm_run
    jobs, submitted = job_blocks(run.output), submissions(run.checkout, run.output)
    # The run finished every job it described, group members included, and ran the local rules locally.
    assert jobs and set(jobs) == {jobid for jobid, _ in FINISHED.findall(run.output)}
    assert all(job["local"] == (job["rule"] in local_rules()) for job in jobs.values())
    assert "report" in {job["rule"] for job in jobs.values() if job["local"]}
    # The ungrouped plan holds exactly the jobs the run ran, and groups none: each of its non-local jobs
    # would be an sbatch submission of its own.
    assert group_sections(run.ungrouped_plan) == []
    planned = Counter(job["rule"] for job in remote_jobs(job_blocks(run.ungrouped_plan)).values())
    assert planned == Counter(job["rule"] for job in remote_jobs(jobs).values())
    ungrouped = planned_submissions(run.ungrouped_plan)
    assert ungrouped == sum(planned.values()) == len(remote_jobs(jobs))
    # Counting a plan's submissions predicts a real run's: the grouped plan's count is what the run submitted.
    assert planned_submissions(run.grouped_plan) == len(submitted)
    print(f"sbatch submissions: {ungrouped} planned ungrouped, {len(submitted)} grouped "
          f"({sum(map(is_group_log, (log for _, log in submitted.values())))} of them group jobs), "
          f"grouped run {run.seconds:.0f} s")
    assert len(submitted) < ungrouped, (len(submitted), ungrouped)


def test_jobs_outside_the_groups_went_alone_with_their_rules_resources(grouped_slurm_run):
    run = grouped_slurm_run
    jobs, submitted = job_blocks(run.output), submissions(run.checkout, run.output)
    groups, _ = profile_groups()
    assert not set(GPU_RULES) & set(groups), "the GPU rules stay ungrouped: a group has one partition"
    alone = {jobid: sub for jobid, sub in submitted.items() if not is_group_log(sub[1])}
    assert set(alone) == {jobid for jobid, job in remote_jobs(jobs).items() if job["rule"] not in groups}
    assert {"extract", "extract_spatial", "train", "analyse"} <= {jobs[jobid]["rule"] for jobid in alone}
    for jobid, (slurm_id, log) in alone.items():
        check_submitted_alone(jobs[jobid], slurm_id, log)


def test_each_group_job_ran_its_members_in_one_submission_with_their_summed_request(grouped_slurm_run):
    run = grouped_slurm_run
    jobs, submitted = job_blocks(run.output), submissions(run.checkout, run.output)
    groups, most_components = profile_groups()
    in_groups: list[str] = []
    for groupid, (slurm_id, log) in submitted.items():
        if not is_group_log(log):
            continue
        info, members = scontrol_job(slurm_id), group_members(log, groupid, jobs)
        (name,) = {groups.get(jobs[jobid]["rule"]) for jobid in members}  # the rules of one profile group
        assert name is not None and any(part.startswith(f"group_{name}") for part in log.parts), (name, log)
        assert log.name == f"{slurm_id}.log" and Path(info["StdOut"]) == log
        assert info["JobState"] == "COMPLETED" and info["Partition"] == PARTITION, (name, info["JobState"])
        # The Snakemake inside the group job ran all its members.
        assert f"{len(members)} of {len(members)} steps (100%) done" in log.read_text(), (name, members)
        listed = [job for jobid, job in jobs.items() if jobid in members]
        assert components(listed) <= most_components[name]
        cpus, runtime, (low, high) = group_request(listed, CORES)
        print(f"group {name}: {len(members)} jobs, {info['CPUs/Task']} CPUs, {info['MinMemoryNode']}, "
              f"{info['TimeLimit']} (model: {cpus} CPUs, {low}-{high} MB, {runtime} min)")
        assert int(info["CPUs/Task"]) == cpus and minutes(info["TimeLimit"]) == runtime, (name, info)
        assert low <= megabytes(info["MinMemoryNode"]) <= high, (name, info["MinMemoryNode"], low, high)
        in_groups += members
    # Every job of a grouped rule ran in exactly one group job, and some group held more than one job.
    assert sorted(in_groups) == sorted(jobid for jobid, job in jobs.items() if job["rule"] in groups)
    assert len(in_groups) > len({jobid for jobid, (_, log) in submitted.items() if is_group_log(log)}) > 0
    # The log listed the same members under each group job's header.
    assert sorted(jobid for _, members in group_sections(run.output) for jobid in members) == sorted(in_groups)


def test_grouped_run_writes_the_local_runs_scores_csv_byte_for_byte(grouped_slurm_run, tiny_checkout_run):
    checkout = grouped_slurm_run.checkout
    assert (checkout / "results/scores.csv").read_bytes() == (tiny_checkout_run / "results/scores.csv").read_bytes()
    assert (checkout / "results/report/index.html").exists()


def test_the_ungrouped_profile_submits_each_planned_job_alone(grouped_slurm_run, tmp_path):
    """Opt-in: the ungrouped run itself, for what CI only plans (one submission per non-local job)."""
    skip_unless_slow_tests("a second, ungrouped SLURM run of the tiny config", 5)
    checkout = tiny_checkout(tmp_path / "checkout")
    output, _ = slurm_run(checkout, ungrouped_profile(checkout))
    jobs, submitted = job_blocks(output), submissions(checkout, output)
    assert set(submitted) == set(remote_jobs(jobs)), "every non-local job, and only those, went to SLURM"
    print(f"sbatch submissions: {len(submitted)} ungrouped, planned {planned_submissions(grouped_slurm_run.ungrouped_plan)}")
    assert len(submitted) == planned_submissions(grouped_slurm_run.ungrouped_plan)
    for jobid, (slurm_id, log) in submitted.items():
        check_submitted_alone(jobs[jobid], slurm_id, log)
    assert (checkout / "results/scores.csv").read_bytes() == \
        (grouped_slurm_run.checkout / "results/scores.csv").read_bytes()


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
