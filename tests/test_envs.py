"""The conda env used by --use-conda must install what pyproject.toml declares."""
import tomllib
from pathlib import Path

import yaml

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
    for rule_file in (REPO / "rules").glob("*.smk"):
        for line in rule_file.read_text().splitlines():
            if line.strip().startswith('"../envs/'):
                assert (REPO / "rules" / line.strip().strip('"')).resolve().exists(), line
