"""DVC code dependencies per stage: touching one module marks only the stages whose command imports it."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

from workflow_helpers import run
from zooprobe.workflow import dvcrun, dvcsync
from zooprobe.workflow.dvcsync import code_dependencies

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "src" / "zooprobe"


def relative_deps(subcommand: str) -> set[str]:
    return {Path(f).relative_to(PACKAGE_DIR).as_posix() for f in code_dependencies(subcommand, PACKAGE_DIR)}


def test_a_stage_lists_its_command_imports_not_its_neighbours_in_the_cli_module():
    probe, align, analyse = relative_deps("probe"), relative_deps("align"), relative_deps("analyse")
    # cmd_probe and cmd_align share cli/probes.py; each lists only its own library.
    assert {"cli/probes.py", "cli/main.py", "__main__.py"} <= probe
    assert any(name.startswith("probes/") and "alignment" not in name for name in probe)
    assert not any(name.startswith("probes/alignment") for name in probe)
    assert any(name.startswith("probes/alignment") for name in align)
    # The report command lives beside analyse in cli/analysis.py; analysing imports no report code.
    assert not any(name.startswith("report/") for name in analyse)
    assert any(name.startswith("report/") for name in relative_deps("report"))
    # The report's template is code too: editing it must mark the report stage as changed.
    assert "report/templates/report.html.j2" in relative_deps("report")
    assert not any(name.endswith(".j2") for name in analyse | probe)


def test_package_data_skips_caches_and_subpackages(tmp_path):
    from zooprobe.workflow.dvcsync import package_data_files

    for name in ("__init__.py", "mod.py", "templates/page.j2", "templates/deep/part.css", "__pycache__/mod.pyc",
                 "__pycache__/stale.txt", "sub/__init__.py", "sub/own.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    found = {path.relative_to(tmp_path).as_posix() for path in package_data_files(tmp_path)}
    assert found == {"templates/page.j2", "templates/deep/part.css"}


def test_a_helper_the_command_calls_brings_its_imports(tmp_path):
    package = tmp_path / "zooprobe"
    for name, text in {
        "__init__.py": "", "__main__.py": "", "cli/__init__.py": "", "cli/main.py": "", "lib/__init__.py": "",
        "lib/a.py": "", "lib/b.py": "", "lib/c.py": "from zooprobe.lib import a\n",
        "cli/stage.py": ("from zooprobe.lib import c\n"
                         "def _setup():\n    from zooprobe.lib import b\n"
                         "def cmd_one(args):\n    _setup()\n"
                         "def cmd_two(args):\n    import zooprobe.lib.x\n"),
    }.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    found = {Path(f).relative_to(package).as_posix() for f in code_dependencies("one", package)}
    assert found == {"__init__.py", "__main__.py", "cli/__init__.py", "cli/main.py", "cli/stage.py",
                     "lib/__init__.py", "lib/a.py", "lib/b.py", "lib/c.py"}
    with pytest.raises(dvcsync.DvcSyncError, match="no stage 'three'"):
        code_dependencies("three", package)


@pytest.fixture(scope="module")
def committed_copy(tmp_path_factory) -> tuple[Path, dict]:
    """A copy of the checkout with a placeholder for every file a stage reads or writes, committed in DVC."""
    checkout = tmp_path_factory.mktemp("dvc-deps") / "checkout"
    # What DVC reads of the checkout: dvc.yaml, the params and every stage's deps (placeholders below).
    for name in ("dvc.yaml", "params.yaml", "rules", "src"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            checkout.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, checkout / name)
    stages = yaml.safe_load((checkout / "dvc.yaml").read_text())["stages"]
    for stage in stages.values():
        for name in [*stage["deps"], *stage["outs"]]:
            path = checkout / name
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"placeholder for {name}\n")
    run([sys.executable, "-m", "dvc", "init", "--no-scm", "--force", "-q"], cwd=checkout)
    run([sys.executable, "-m", "dvc", "commit", "--force", "-q"], cwd=checkout)
    assert dvcrun.changed_stages(checkout) == {}
    return checkout, stages


@pytest.mark.parametrize("package", ["report", "extract"])
def test_touching_a_module_marks_only_the_stages_that_import_it(committed_copy, package):
    checkout, stages = committed_copy
    listed = {dep for stage in stages.values() for dep in stage["deps"]}
    module = sorted(name for name in listed if name.startswith(f"src/zooprobe/{package}/")
                    and not name.endswith("__init__.py"))[0]
    path = checkout / module
    original = path.read_text()
    path.write_text(original + "# a comment changes the file's hash, and nothing else\n")
    try:
        changed = set(dvcrun.changed_stages(checkout))
    finally:
        path.write_text(original)
    listing = {name for name, stage in stages.items() if module in stage["deps"]}
    assert changed == listing
    # Only the stages of the rule that runs this code: no dataset, extract or analyse stage for the report.
    assert changed and {name.split("--")[0] for name in changed} == {package}, (module, changed)


def test_a_rule_variant_depends_on_the_rule_file_its_command_comes_from():
    # extract_spatial is `use rule extract as extract_spatial with:` in dense.smk; its command is extract's.
    jobs = dvcsync.read_dag(REPO, configfile="tests/configs/tiny.yaml")
    stages = dvcsync.build_stages(jobs, root=REPO, package_dir=PACKAGE_DIR, configfile="tests/configs/tiny.yaml")
    spatial = [stage for name, stage in stages.items() if name.startswith("extract_spatial--")]
    assert spatial and all({"rules/dense.smk", "rules/extract.smk"} <= set(stage["deps"]) for stage in spatial)
    plain = [stage for name, stage in stages.items() if name.startswith("extract--")]
    assert plain and all("rules/dense.smk" not in stage["deps"] for stage in plain)
