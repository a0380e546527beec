"""The layers hold: no import cycle, no torch under params/analysis/report, and no torch when a job parses the Snakefile."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zooprobe.workflow.imports import cycle_groups, find_cycles, import_graph, import_problems, torch_paths

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "src" / "zooprobe"
# What a job needs of a checkout to parse the workflow.
WORKFLOW_FILES = ("Snakefile", "params.yaml", "rules", "schemas", "profiles", "envs", "src")


def write_package(root: Path, files: dict[str, str]) -> Path:
    """A package folder ``root/zooprobe`` holding ``files`` (relative path to text)."""
    for name, text in files.items():
        path = root / "zooprobe" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "zooprobe"


def plant(package_dir: Path, module: str, line: str) -> None:
    """Append an import line to one module of a copied package."""
    path = package_dir / module
    path.write_text(path.read_text() + f"\n{line}\n")


# ----------------------------------------------------------------------------- the real tree
def test_the_package_has_no_import_cycle_and_no_torch_in_torch_free_layers():
    problems = import_problems(PACKAGE_DIR)
    assert problems == [], "\n".join(problems)


# ----------------------------------------------------------------------------- the checker itself
def test_the_checker_finds_a_cycle_through_a_function_level_import_and_a_lazy_torch_import(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": '"""Top."""\n',
        "params/__init__.py": '"""Params."""\n',
        # A lazy import counts: it runs when the function does.
        "params/spec.py": "def f():\n    from zooprobe.zoo import models\n",
        "zoo/__init__.py": '"""Zoo."""\n',
        "zoo/models.py": "from zooprobe.params.spec import f\nimport torch.nn\n",
        "analysis/__init__.py": '"""Analysis."""\n',
        "analysis/stats.py": "import numpy\nfrom . import helpers\n",
        "analysis/helpers.py": "def g():\n    import timm\n",
        "report/__init__.py": '"""Report."""\n',
        "report/html.py": "from zooprobe.analysis import stats\n",
    })
    graph = import_graph(package)
    # `from zooprobe.zoo import models` is an edge to the module zooprobe.zoo.models, and its package.
    assert {"zooprobe.zoo", "zooprobe.zoo.models"} <= graph["zooprobe.params.spec"]
    assert graph["zooprobe.analysis.stats"] >= {"numpy", "zooprobe.analysis.helpers"}  # relative import resolved
    assert find_cycles(graph) == [["zooprobe.params.spec", "zooprobe.zoo.models"]]
    paths = {path[0]: path for path in torch_paths(graph)}
    assert paths["zooprobe.params.spec"] == ["zooprobe.params.spec", "zooprobe.zoo.models", "torch.nn"]
    assert paths["zooprobe.report.html"] == ["zooprobe.report.html", "zooprobe.analysis.stats",
                                             "zooprobe.analysis.helpers", "timm"]
    assert "zooprobe.zoo.models" not in paths  # zoo/ may import torch
    problems = import_problems(package)
    assert "cycle: zooprobe.params.spec -> zooprobe.zoo.models -> zooprobe.params.spec" in problems


def test_a_clean_package_has_no_problems(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "", "params/__init__.py": "", "params/spec.py": "import json\n",
        "zoo/__init__.py": "", "zoo/models.py": "import torch\nfrom zooprobe.params import spec\n",
    })
    assert import_problems(package) == []


@pytest.fixture
def copied_package(tmp_path) -> Path:
    shutil.copytree(PACKAGE_DIR, tmp_path / "zooprobe", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "zooprobe"


def test_a_cycle_planted_in_the_real_tree_is_reported(copied_package):
    before = set(import_problems(copied_package))
    # The settings import the report, and a report module imports the settings back.
    report = sorted(f.stem for f in (copied_package / "report").glob("*.py") if f.stem != "__init__")[0]
    plant(copied_package, "params/spec.py", f"from zooprobe.report import {report}  # noqa")
    plant(copied_package, f"report/{report}.py", "from zooprobe.params import spec  # noqa")
    groups = cycle_groups(import_graph(copied_package))
    assert any({"zooprobe.params.spec", f"zooprobe.report.{report}"} <= group for group in groups), groups
    new = [line for line in import_problems(copied_package) if line not in before]
    assert any(line.startswith("cycle:") and "zooprobe.params.spec" in line for line in new), new


def test_torch_planted_in_the_analysis_layer_is_reported(copied_package):
    plant(copied_package, "analysis/stats.py", "import torch  # noqa")
    problems = import_problems(copied_package)
    assert "torch reachable: zooprobe.analysis.stats -> torch" in problems, problems
    # Every torch-free module that imports the statistics now reaches torch too.
    graph = import_graph(copied_package)
    importers = {m for m, edges in graph.items() if "zooprobe.analysis.stats" in edges
                 and m.startswith(("zooprobe.params", "zooprobe.analysis", "zooprobe.report"))}
    reported = {line.split()[2] for line in problems if line.startswith("torch reachable:")}
    assert importers and importers <= reported, (importers, reported)


# ----------------------------------------------------------------------------- a job parses the Snakefile
def fake_torch(folder: Path) -> Path:
    """Packages torch, torchvision and timm that fail on import, to put first on PYTHONPATH."""
    for name in ("torch", "torchvision", "timm"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text('raise ImportError("torch imported at parse time")\n')
    return folder


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def job_parse(checkout: Path, fake: Path, *args: str) -> subprocess.CompletedProcess:
    """What a job runs first (`snakemake --mode subprocess`), as a dry run, with torch made unimportable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(checkout / "src")]))
    return subprocess.run([sys.executable, "-m", "snakemake", "--mode", "subprocess", "-n", "--cores", "1", *args],
                          cwd=checkout, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def workflow_copy(tmp_path) -> tuple[Path, Path]:
    return copy_workflow(tmp_path / "checkout"), fake_torch(tmp_path / "fake")


@pytest.mark.parametrize("configfile", [None, "tests/configs/icn.yaml"], ids=["params.yaml", "icn"])
def test_a_job_style_parse_of_the_snakefile_imports_no_torch(workflow_copy, configfile):
    checkout, fake = workflow_copy
    args = ()
    if configfile:
        shutil.copy2(REPO / configfile, checkout / "job-params.yaml")
        args = ("--configfile", "job-params.yaml", "--replace-workflow-config")
    result = job_parse(checkout, fake, *args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


def test_the_job_parse_test_fails_when_the_rules_import_torch(workflow_copy):
    checkout, fake = workflow_copy
    # What gpu_wanted did before: ask torch whether there is a GPU, at parse time.
    with open(checkout / "rules" / "resources.smk", "a") as rules:
        rules.write("\nimport torch\nHAS_GPU = torch.cuda.is_available()\n")
    result = job_parse(checkout, fake)
    assert result.returncode != 0 and "torch imported at parse time" in result.stdout + result.stderr


def test_a_normal_parse_still_checks_architectures_with_torch(workflow_copy):
    # The process that plans the run imports timm to check every architecture; only jobs skip it.
    checkout, fake = workflow_copy
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(checkout / "src")]))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "torch imported at parse time" in result.stdout + result.stderr
