"""DVC versions every intermediate: dvc.yaml follows the DAG, and a pulled clone needs no recompute."""
from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from workflow_helpers import REPO, copy_checkout, rules_run, run
from zooprobe.workflow import dvcsync

pytestmark = pytest.mark.workflow

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- dvc.yaml follows the DAG
def test_committed_dvc_yaml_matches_the_dag():
    problems = dvcsync.sync(REPO, check=True)
    assert problems == [], "run `zooprobe dvc-sync` and commit dvc.yaml:\n" + "\n".join(problems)


def test_dvc_yaml_has_one_stage_per_job_with_its_outputs():
    jobs = dvcsync.read_dag(REPO)
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert {out for job in jobs for out in job.outputs} == {out for s in stages.values() for out in s["outs"]}
    rules = {job.rule for job in jobs}
    assert {"dataset", "train", "extract", "probe", "cka", "analyse", "report"} <= rules
    probe = stages["probe--resnet18--shapes"]
    assert probe["params"] == ["probe.c_grid", "probe.max_iter", "probe.seed", "probe.tasks.shapes", "models.resnet18"]
    assert "src/zooprobe/probes/linear.py" in probe["deps"] and "rules/probe.smk" in probe["deps"]
    # A stage's code is what its subcommand imports: probing never imports the trainer.
    assert "src/zooprobe/train/recipe.py" not in probe["deps"]
    assert stages["train--resnet18"]["params"] == ["models.resnet18", "train"]


def test_no_job_runs_dvc():
    """DVC holds a repository lock, so parallel jobs must never call it; it runs once, after the run."""
    for job in dvcsync.read_dag(REPO):
        assert job.subcommand in {"dataset", "fetch-checkpoint", "train", "extract", "probe", "cka", "analyse", "report"}
        assert re.search(r"\bdvc\b", job.command) is None, job.command


def _leaves(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _leaves(value, (*prefix, str(key)))
    else:
        yield prefix


def _perturbed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "_changed"
    if isinstance(value, list):
        return [*value, *(value[-1:] or ["changed"])]
    if isinstance(value, dict):  # an empty section: add an entry
        return {"perturbed_entry": {}}
    return "changed"


def _evaluate_params(job: Any) -> tuple[Any, ...]:
    values = []
    for raw in job.rule.params:
        try:
            values.append(raw(job.wildcards) if callable(raw) else raw)
        except Exception as error:  # a param that breaks on the changed value reads it
            values.append(f"raised {type(error).__name__}")
    return tuple(values)


@pytest.mark.parametrize("configfile", [None, "tests/configs/tiny.yaml", "configs/imagenot-mini.yaml",
                                        "tests/configs/icn.yaml"],
                         ids=["params.yaml", "tiny", "imagenot-mini", "icn"])
def test_stage_params_are_exactly_the_keys_its_job_reads(configfile):
    """Change each config value in turn: a job's params change iff the value is under a key its stage lists."""
    with dvcsync._snakemake_api() as api:
        workflow = dvcsync._load_workflow(api, REPO, "Snakefile", configfile)
        config = workflow.globals["config"]
        dag_jobs = [job for job in workflow.dag.jobs if job.output]
        described = {d.outputs: d for d in dvcsync._describe_jobs(dag_jobs, REPO)}
        baseline = {id(job): _evaluate_params(job) for job in dag_jobs}
        seen_change: dict[int, set[str]] = {id(job): set() for job in dag_jobs}
        for path in _leaves(copy.deepcopy(config)):
            parent = config
            for part in path[:-1]:
                parent = parent[part]
            original = parent[path[-1]]
            parent[path[-1]] = _perturbed(original)
            try:
                for job in dag_jobs:
                    if _evaluate_params(job) == baseline[id(job)]:
                        continue
                    keys = described[tuple(map(str, job.output))].config_keys
                    dotted = ".".join(path)
                    listing = [k for k in keys if dotted == k or dotted.startswith(k + ".")]
                    assert listing, f"{job} reads {dotted}, which its DVC stage does not list ({keys})"
                    seen_change[id(job)].update(listing)
            finally:
                parent[path[-1]] = original
        for job in dag_jobs:
            keys = set(described[tuple(map(str, job.output))].config_keys)
            assert keys == seen_change[id(job)], f"{job} lists keys it never reads: {keys - seen_change[id(job)]}"


def test_a_new_rule_without_a_dvc_stage_fails_the_sync_check(tmp_path):
    checkout = copy_checkout(tmp_path / "checkout")
    snakefile = checkout / "Snakefile"
    text = snakefile.read_text()
    assert "        all_targets(),\n" in text
    text = text.replace("        all_targets(),\n", '        all_targets(),\n        "results/score_count.txt",\n')
    text += ('\n\nrule count_scores:\n    input:\n        "results/scores.csv",\n    output:\n'
             '        "results/score_count.txt",\n    shell:\n        "wc -l {input} > {output}"\n')
    snakefile.write_text(text)
    problems = dvcsync.sync(checkout, check=True)
    assert len(problems) == 1 and "missing stage 'count_scores'" in problems[0], problems
    failed = run([sys.executable, "-m", "zooprobe", "dvc-sync", "--check"], cwd=checkout, check=False)
    assert failed.returncode != 0 and "count_scores" in failed.stderr
    run([sys.executable, "-m", "zooprobe", "dvc-sync"], cwd=checkout)
    assert dvcsync.sync(checkout, check=True) == []


# ----------------------------------------------------------------------------- push, pull, restore
@pytest.fixture(scope="module")
def pulled_clone(tmp_path_factory, tiny_checkout_run) -> dict[str, Any]:
    """Record the tiny run in DVC and push it to a local remote, then clone, pull and restore."""
    base = tmp_path_factory.mktemp("dvc")
    origin = base / "origin"
    shutil.copytree(tiny_checkout_run, origin)  # copy2 keeps modification times, as the run left them
    run([sys.executable, "-m", "zooprobe", "dvc-sync"], cwd=origin)
    run(["git", "init", "-q"], cwd=origin)
    run([sys.executable, "-m", "dvc", "remote", "add", "-d", "shared", str(base / "remote")], cwd=origin)
    run([sys.executable, "-m", "zooprobe", "dvc-commit"], cwd=origin)
    run(["git", "add", "-A"], cwd=origin)
    run(["git", "commit", "-q", "-m", "tiny run"], cwd=origin)
    run([sys.executable, "-m", "dvc", "push", "-q"], cwd=origin)

    clone = base / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], cwd=base)
    run([sys.executable, "-m", "dvc", "pull", "-q"], cwd=clone)
    unrestored = run([sys.executable, "-m", "snakemake", "-n"], cwd=clone).stdout
    run([sys.executable, "-m", "zooprobe", "dvc-restore"], cwd=clone)
    return {"origin": origin, "clone": clone, "unrestored_plan": unrestored}


def test_pull_then_restore_plans_no_jobs(pulled_clone):
    # Checkout times alone make Snakemake plan reruns, which is what dvc-restore is for.
    assert rules_run(pulled_clone["unrestored_plan"]), "expected stale-looking outputs before the restore"
    plan = run([sys.executable, "-m", "snakemake", "-n"], cwd=pulled_clone["clone"]).stdout
    assert "Nothing to be done" in plan and rules_run(plan) == set(), plan[-2000:]
    origin_scores = (pulled_clone["origin"] / "results" / "scores.csv").read_bytes()
    assert (pulled_clone["clone"] / "results" / "scores.csv").read_bytes() == origin_scores


def test_a_probe_param_change_reruns_only_probe_cka_analyse_report(pulled_clone):
    clone = pulled_clone["clone"]
    params = clone / "params.yaml"
    original = params.read_text()
    config = yaml.safe_load(original)
    config["probe"]["c_grid"] = [*config["probe"]["c_grid"], 10.0]
    params.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        plan = run([sys.executable, "-m", "snakemake", "-n"], cwd=clone).stdout
        # cka reads the layer each probe selected, which C can change.
        assert rules_run(plan) == {"probe", "cka", "analyse", "report"}, plan[-2000:]
        status = json.loads(run([sys.executable, "-m", "dvc", "status", "--json"], cwd=clone).stdout)
        assert {name.split("--")[0] for name in status} == {"probe", "report"}, status
    finally:
        params.write_text(original)


def test_a_deleted_feature_file_is_reported_and_checked_out_identical(pulled_clone):
    clone = pulled_clone["clone"]
    feature = clone / "data" / "features" / "vit_tiny" / "shapes.h5"
    before = sha256(feature)
    feature.unlink()
    status = json.loads(run([sys.executable, "-m", "dvc", "status", "--json"], cwd=clone).stdout)
    assert status["extract--vit_tiny--shapes"] == [{"changed outs": {"data/features/vit_tiny/shapes.h5": "deleted"}}]
    refused = run([sys.executable, "-m", "zooprobe", "dvc-restore"], cwd=clone, check=False)
    assert refused.returncode != 0 and "extract--vit_tiny--shapes" in refused.stderr
    run([sys.executable, "-m", "dvc", "checkout", "-q", "data/features/vit_tiny/shapes.h5"], cwd=clone)
    assert sha256(feature) == before
    assert "up to date" in run([sys.executable, "-m", "dvc", "status"], cwd=clone).stdout


# ----------------------------------------------------------------------------- reproducible bytes
def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256(p) for folder in ("data", "results") for p in sorted((root / folder).rglob("*"))
            if p.is_file()}


def test_two_runs_from_scratch_write_the_same_bytes_and_execution_settings_rerun_nothing(tmp_path, tiny_checkout_run):
    """The session's tiny run is the first run from scratch; a copy of it, its outputs recorded in DVC
    and then deleted, runs again from scratch: every file under data/ and results/ must come back
    byte for byte, so that `dvc status` sees nothing changed."""
    origin = tmp_path / "origin"
    shutil.copytree(tiny_checkout_run, origin)
    first = _hashes(origin)
    assert len(first) >= 25  # datasets, checkpoints, features, maps, probes, dense results, scores, report
    # The copy has no git history; DVC runs without one, so the code version stays what the first run saw.
    run([sys.executable, "-m", "dvc", "config", "core.no_scm", "true"], cwd=origin)
    run([sys.executable, "-m", "zooprobe", "dvc-sync"], cwd=origin)
    run([sys.executable, "-m", "zooprobe", "dvc-commit"], cwd=origin)
    for folder in ("data", "results", "logs", ".snakemake"):
        shutil.rmtree(origin / folder, ignore_errors=True)
    run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=origin)
    second = _hashes(origin)
    assert set(second) == set(first)
    assert [name for name in first if first[name] != second[name]] == []
    status = run([sys.executable, "-m", "dvc", "status"], cwd=origin).stdout
    assert "up to date" in status, status
    # How jobs run is not what they compute: no change under execution plans a job.
    params = yaml.safe_load((origin / "params.yaml").read_text())
    params["execution"]["extract"].update(batch_size=7, num_workers=1, channels_last=True, device="cpu")
    (origin / "params.yaml").write_text(yaml.safe_dump(params))
    plan = run([sys.executable, "-m", "snakemake", "-n"], cwd=origin).stdout
    assert "Nothing to be done" in plan and rules_run(plan) == set(), plan[-2000:]
