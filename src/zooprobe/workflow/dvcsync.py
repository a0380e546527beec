"""Keep ``dvc.yaml`` in step with the Snakemake DAG, record outputs in DVC, and restore after a pull.

Snakemake runs the jobs; DVC versions what they write. ``dvc.yaml`` is generated from the DAG
(``zooprobe dvc-sync``): one DVC stage per Snakemake job, whose deps are the job's inputs plus
the rule file and the zooprobe modules its subcommand imports, whose params are the params.yaml
keys the rule's params declare with ``from_config`` (rules/common.smk), and whose outs are the job's
outputs. ``zooprobe dvc-sync --check`` fails when the committed file and the DAG disagree.

DVC takes a repository lock, so DVC never runs inside Snakemake jobs: ``zooprobe dvc-commit``
records every output once the run is over, and ``zooprobe dvc-restore`` makes a pulled workspace
look up to date to Snakemake (both in ``zooprobe.workflow.dvcrun``; see README, "Sharing results with DVC").
"""

from __future__ import annotations

import ast
import difflib
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from zooprobe.workflow.imports import import_graph, imported_names, module_files, resolve

PACKAGE = "zooprobe"
# Every `python -m zooprobe <stage>` runs these, whatever the stage.
ENTRY_MODULES = ("zooprobe", "zooprobe.__main__", "zooprobe.cli.main")
STAGE_NAME_SEPARATOR = "--"
HEADER = (
    "# Generated from the Snakemake DAG by `zooprobe dvc-sync{args}`; do not edit by hand.\n"
    "# One stage per Snakemake job. Snakemake runs the jobs; `zooprobe dvc-commit` records their outputs.\n"
)


class DvcSyncError(RuntimeError):
    """dvc.yaml and the workflow disagree, or DVC reported a problem."""


@dataclass(frozen=True)
class DagJob:
    """What DVC needs to know of one Snakemake job."""

    rule: str
    wildcards: Mapping[str, str]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    config_keys: tuple[str, ...]
    rule_file: str
    subcommand: str | None
    command: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    # A `use rule X as Y with:` variant runs X's command, written in X's rule file.
    command_file: str | None = None


# ----------------------------------------------------------------------------- the DAG
def read_dag(root: Path, *, snakefile: str = "Snakefile", configfile: str | None = None) -> list[DagJob]:
    """Build the workflow's full DAG (as ``--forceall`` would) and describe each job.

    Args:
        root: the workflow's folder; paths in the result are relative to it.
        snakefile: the Snakefile, relative to ``root``.
        configfile: a params file replacing params.yaml, relative to ``root``; None for the default.

    Returns:
        One ``DagJob`` per job that writes output files, in a stable order (rule, then wildcards).
    """
    with _snakemake_api() as api:
        workflow = _load_workflow(api, root, snakefile, configfile)
        return _describe_jobs(workflow.dag.jobs, root)


def _describe_jobs(dag_jobs: Iterable[Any], root: Path) -> list[DagJob]:
    jobs = []
    for job in dag_jobs:
        if not job.output:
            continue
        wildcards = {name: str(value) for name, value in job.wildcards_dict.items()}
        keys: list[str] = []
        for raw in job.rule.params:
            # Params built with from_config (rules/common.smk) say which config keys they read.
            for key in raw.config_keys_for(job.wildcards) if hasattr(raw, "config_keys_for") else ():
                if key not in keys:
                    keys.append(key)
        jobs.append(DagJob(
            rule=job.rule.name,
            wildcards=wildcards,
            inputs=tuple(_relative(f, root) for f in job.input),
            outputs=tuple(_relative(f, root) for f in job.output),
            config_keys=tuple(keys),
            rule_file=_relative(job.rule.snakefile, root),
            command_file=_command_file(job.rule, root),
            subcommand=_zooprobe_subcommand(job.shellcmd or ""),
            command=job.shellcmd or "",
            params={name: str(value) for name, value in job.params.items()},
        ))
    return sorted(jobs, key=lambda j: (j.rule, sorted(j.wildcards.items())))


def _command_file(rule: Any, root: Path) -> str | None:
    """The rule file a `use rule ... with:` variant takes its command from, when it is not its own.

    Snakemake keeps no link from a variant to its original, so the original is the first rule
    declared with the same command; a variant cannot change the command, only what fills it in.
    """
    if not rule.shellcmd:
        return None
    for other in rule.workflow.rules:
        if other.shellcmd == rule.shellcmd:
            origin = _relative(other.snakefile, root)
            return origin if origin != _relative(rule.snakefile, root) else None
    return None


def _snakemake_api() -> Any:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, Quietness

    return SnakemakeApi(OutputSettings(quiet={Quietness.ALL}))


def _load_workflow(api: Any, root: Path, snakefile: str, configfile: str | None) -> Any:
    """Parse the workflow and build its DAG through Snakemake's Python API."""
    from snakemake.settings.types import ConfigSettings, DAGSettings, ResourceSettings, StorageSettings

    root = Path(root).resolve()
    config_settings = ConfigSettings(
        configfiles=[root / configfile] if configfile else [],
        replace_workflow_config=bool(configfile),
    )
    workflow_api = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=config_settings,
        storage_settings=StorageSettings(),
        snakefile=root / snakefile,
        workdir=root,
    )
    workflow_api.dag(dag_settings=DAGSettings(forceall=True))
    # The DAG itself is not public API; these two calls are what `snakemake --summary` runs.
    workflow = workflow_api._workflow
    try:
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        workflow._build_dag()
    except AttributeError as error:  # pragma: no cover - guards against a Snakemake API change
        raise DvcSyncError(f"this Snakemake version builds its DAG differently ({error}); "
                           "pin the snakemake version from pyproject.toml") from error
    return workflow


def _relative(path: Any, root: Path) -> str:
    path = Path(str(path))
    if path.is_absolute():
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()  # outside the repository: DVC tracks it as an external dependency
    return path.as_posix()


def _zooprobe_subcommand(shellcmd: str) -> str | None:
    """The stage a rule's command runs, from ``python -m zooprobe <stage> ...``."""
    words = shlex.split(shellcmd.split(";")[-1]) if shellcmd else []
    for i in range(len(words) - 2):
        if words[i + 1] == "-m" and words[i + 2] == PACKAGE and i + 3 < len(words):
            return words[i + 3]
    return None


# ----------------------------------------------------------------------------- code deps
def code_dependencies(subcommand: str | None, package_dir: Path) -> list[str]:
    """Source files of the zooprobe modules a subcommand can import, found by reading the code.

    A stage depends on its command function's own imports, the module-level imports of its cli
    module, the helpers of that module the function calls, and everything those import in turn;
    not on the other commands of the same cli module, so that editing the alignment code does not
    mark the probe stages as changed.

    Args:
        subcommand: the CLI stage, e.g. ``"extract"``; its ``cmd_<stage>`` function's imports count.
        package_dir: the folder of the ``zooprobe`` package.

    Returns:
        Sorted file paths (as under ``package_dir``), the entry modules always included.
    """
    package_dir = Path(package_dir)
    modules = module_files(package_dir)
    graph = import_graph(package_dir)
    start = set(ENTRY_MODULES)
    if subcommand:
        cli_module, function = _command_function(subcommand, modules)
        start |= {cli_module, *_command_imports(modules[cli_module], cli_module, function, modules)}
        # Its own module's edges would pull in every other command; only the ones found above count.
        graph = {**graph, cli_module: set()}
    # The command table imports every command module lazily, by name; a stage needs only its own.
    graph = {**graph, f"{PACKAGE}.cli.main": set()}
    seen: set[str] = set()
    todo = sorted(resolve(start, modules))  # with the packages above each: importing a module runs them
    while todo:
        module = todo.pop()
        if module in seen or module not in modules:
            continue
        seen.add(module)
        todo.extend(sorted(graph[module]))
    files = {modules[m] for m in seen}
    for module in seen:  # a package's data (the report's template) changes what its code does
        if modules[module].name == "__init__.py":
            files |= package_data_files(modules[module].parent)
    return sorted(f.as_posix() for f in files)


def package_data_files(package: Path) -> set[Path]:
    """Files of one package that are not Python: those in its folder and its non-package subfolders.

    Args:
        package: a package's folder (it holds ``__init__.py``).

    Returns:
        The data files, e.g. ``report/templates/report.html.j2``; bytecode caches and subpackages
        (folders with an ``__init__.py``, which count as modules of their own) are left out.
    """
    found = set()
    for path in package.rglob("*"):
        inside = path.relative_to(package).parent
        folders = [package / Path(*inside.parts[:i + 1]) for i in range(len(inside.parts))]
        if (path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
                and not any((folder / "__init__.py").is_file() for folder in folders)):
            found.add(path)
    return found


def _command_function(subcommand: str, modules: Mapping[str, Path]) -> tuple[str, ast.FunctionDef]:
    """The cli module that defines ``cmd_<subcommand>``, and that function."""
    name = f"cmd_{subcommand.replace('-', '_')}"
    for module in sorted(m for m in modules if m.startswith(f"{PACKAGE}.cli.")):
        for node in ast.parse(modules[module].read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return module, node
    raise DvcSyncError(f"zooprobe has no stage {subcommand!r} (no {name} in src/zooprobe/cli/)")


def _command_imports(file: Path, module: str, function: ast.FunctionDef, modules: Mapping[str, Path]) -> set[str]:
    """What running one command of a cli module imports: the module's top-level imports, the
    function's own, and those of the module's functions it calls (transitively)."""
    tree = ast.parse(file.read_text())
    top = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    names = imported_names(top, module)
    done: set[str] = set()
    todo = [function]
    while todo:
        current = todo.pop()
        if current.name in done:
            continue
        done.add(current.name)
        names |= imported_names(current, module)
        called = {n.id for n in ast.walk(current) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        todo.extend(helpers[name] for name in sorted(called & set(helpers)))
    return resolve(names, modules)


# ----------------------------------------------------------------------------- dvc.yaml
def stage_name(job: DagJob) -> str:
    """DVC stage name of a job: the rule, then its wildcard values in path order, joined by ``--``."""
    return STAGE_NAME_SEPARATOR.join([job.rule, *job.wildcards.values()])


def build_stages(jobs: Sequence[DagJob], *, root: Path, package_dir: Path, configfile: str | None = None,
                 cores: int = 1) -> dict[str, dict[str, Any]]:
    """The ``stages`` mapping of dvc.yaml, one stage per job.

    Args:
        jobs: from ``read_dag``.
        root: the workflow's folder.
        package_dir: the ``zooprobe`` package folder, for the code deps.
        configfile: the params file the jobs read (None: params.yaml, DVC's default).
        cores: cores for the stage command, which reruns the job through Snakemake.

    Returns:
        Stage name to ``{cmd, deps, params, outs}``.
    """
    package_rel = Path(_relative(Path(package_dir).resolve(), Path(root)))
    code_cache: dict[str | None, list[str]] = {}
    stages: dict[str, dict[str, Any]] = {}
    config_args = f" --configfile {configfile} --replace-workflow-config" if configfile else ""
    for job in jobs:
        name = stage_name(job)
        if name in stages:
            raise DvcSyncError(f"two jobs map to the DVC stage {name!r}; rename a dataset, model or task "
                               f"so that no name contains {STAGE_NAME_SEPARATOR!r}")
        if job.subcommand not in code_cache:
            files = code_dependencies(job.subcommand, package_dir)
            code_cache[job.subcommand] = [(package_rel / Path(f).relative_to(package_dir)).as_posix()
                                          for f in files]
        rule_files = [job.rule_file, *([job.command_file] if job.command_file else [])]
        deps = list(dict.fromkeys([*job.inputs, *rule_files, *code_cache[job.subcommand]]))
        stage: dict[str, Any] = {
            # `dvc repro` also works: it reruns this one job through Snakemake.
            "cmd": f"snakemake --cores {cores} --force{config_args} {' '.join(job.outputs)}",
            "deps": deps,
        }
        if job.config_keys:
            keys = list(job.config_keys)
            stage["params"] = [{configfile: keys}] if configfile else keys
        stage["outs"] = list(job.outputs)
        stages[name] = stage
    return stages


def render_dvc_yaml(stages: Mapping[str, Any], *, sync_args: str = "") -> str:
    """dvc.yaml text: a header saying how it was made, then the stages."""
    body = yaml.safe_dump({"stages": dict(stages)}, sort_keys=False, default_flow_style=False, width=120)
    return HEADER.format(args=sync_args) + body


def compare_dvc_yaml(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """Differences between the stages the DAG implies (expected) and a dvc.yaml (actual).

    Returns:
        One line per problem: stages missing or extra, and per stage the outs, params and deps that differ.
    """
    problems = []
    want, have = expected.get("stages", {}), (actual or {}).get("stages", {}) or {}
    for name in sorted(set(want) - set(have)):
        problems.append(f"missing stage {name!r} (outs {want[name].get('outs')})")
    for name in sorted(set(have) - set(want)):
        problems.append(f"stage {name!r} is in dvc.yaml but no Snakemake job makes {have[name].get('outs')}")
    for name in sorted(set(want) & set(have)):
        for section in ("outs", "params", "deps", "cmd"):
            if want[name].get(section) != have[name].get(section):
                problems.append(f"stage {name!r}: {section} differ: DAG has {want[name].get(section)!r}, "
                                f"dvc.yaml has {have[name].get(section)!r}")
    return problems


def sync(root: Path, *, dvc_yaml: str = "dvc.yaml", configfile: str | None = None, check: bool = False,
         snakefile: str = "Snakefile") -> list[str]:
    """Write dvc.yaml from the DAG, or with ``check`` compare it and return the problems.

    Args:
        root: the workflow's folder.
        dvc_yaml: the dvc.yaml path, relative to ``root``.
        configfile: the params file in use, relative to ``root``; None for params.yaml.
        check: only compare; write nothing.
        snakefile: the Snakefile, relative to ``root``.

    Returns:
        The problems found (empty when in sync, and always empty when writing).
    """
    root = Path(root).resolve()
    jobs = read_dag(root, snakefile=snakefile, configfile=configfile)
    package_dir = workflow_package_dir(root)
    stages = build_stages(jobs, root=root, package_dir=package_dir, configfile=configfile)
    sync_args = f" --configfile {configfile}" if configfile else ""
    text = render_dvc_yaml(stages, sync_args=sync_args)
    target = root / dvc_yaml
    if check:
        if not target.exists():
            return [f"{dvc_yaml} does not exist; run `zooprobe dvc-sync{sync_args}`"]
        problems = compare_dvc_yaml(yaml.safe_load(text), yaml.safe_load(target.read_text()))
        if not problems and target.read_text() != text:
            diff = difflib.unified_diff(target.read_text().splitlines(), text.splitlines(), dvc_yaml, "DAG", lineterm="")
            problems = ["dvc.yaml is formatted differently from what dvc-sync writes:", *list(diff)[:40]]
        return problems
    from zooprobe.io.atomic import atomic_output

    with atomic_output(target) as tmp:
        Path(tmp).write_text(text)
    return []


def workflow_package_dir(root: Path) -> Path:
    """The zooprobe source the workflow's jobs run: ``src/zooprobe`` beside the Snakefile (see
    rules/common.smk), else the installed package."""
    local = Path(root) / "src" / PACKAGE
    if (local / "__init__.py").is_file():
        return local.resolve()
    import zooprobe

    return Path(zooprobe.__file__).resolve().parent
