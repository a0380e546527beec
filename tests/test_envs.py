"""The conda env used by --use-conda must install what pyproject.toml declares."""
import tomllib
from pathlib import Path

import yaml

from zooprobe.workflow import dvcsync

REPO = Path(__file__).resolve().parents[1]


def test_every_env_matches_pyproject():
    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip = next(item["pip"] for item in spec["dependencies"] if isinstance(item, dict) and "pip" in item)
        assert set(pip) == declared, f"{env.name} differs from pyproject.toml: {set(pip) ^ declared}"
        assert "python=3.11" in spec["dependencies"]


def test_every_rule_uses_an_env_that_exists():
    """Every rule that runs a command declares a conda env (as --use-conda needs), and the file exists."""
    with dvcsync._snakemake_api() as api:
        workflow = dvcsync._load_workflow(api, REPO, "Snakefile", None)
        rules = {rule.name: rule for rule in workflow.rules}
    commands = {name: rule for name, rule in rules.items() if rule.shellcmd}
    assert {"dataset", "extract", "extract_spatial", "probe", "report"} <= set(commands)
    missing = sorted(name for name, rule in commands.items() if not rule.conda_env)
    assert missing == [], f"rules without conda: {missing}"
    for name, rule in commands.items():
        env = Path(str(rule.conda_env))
        env = env if env.is_absolute() else Path(rule.snakefile).parent / env
        assert env.resolve().is_file(), f"rule {name}: conda env {rule.conda_env} does not exist"
        assert env.resolve().parent == REPO / "envs", f"rule {name}: env outside envs/: {env}"
