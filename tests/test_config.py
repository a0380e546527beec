import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from zooprobe.config import ConfigError, check_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "schemas" / "params.schema.yaml")


@pytest.fixture
def params():
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_default_and_tiny_params_are_valid(params):
    validate(copy.deepcopy(params), SCHEMA)
    assert set(check_config(params)) == set(params["models"])
    for path in [REPO / "tests" / "configs" / "tiny.yaml", *sorted((REPO / "configs").glob("*.yaml"))]:
        other = yaml.safe_load(path.read_text())
        validate(other, SCHEMA)
        check_config(other)


@pytest.mark.parametrize("mutate,expected", [
    (lambda p: p["models"]["resnet18"].update(source="hub"), "timm', 'trained', 'checkpoint"),
    (lambda p: p["datasets"]["shapes_noise"].update(shift="fog"), "gaussian_noise"),
    (lambda p: p["extract"].update(pooling="max"), "avg2x2"),
    (lambda p: p["probe"]["tasks"]["shapes"].update(probe="svm"), "linear"),
    (lambda p: p["train"].update(epochs="six"), "not of type 'integer'"),
    (lambda p: p["analyse"].update(n_bootstrap=1.5), "not of type 'integer'"),
])
def test_schema_rejects_bad_values_and_lists_choices(params, mutate, expected):
    mutate(params)
    with pytest.raises(WorkflowError, match=expected):
        validate(params, SCHEMA)


@pytest.mark.parametrize("mutate,expected", [
    (lambda p: p["probe"]["tasks"]["shapes"].update(id="shapez"), "unknown dataset 'shapez'; valid datasets: digits"),
    (lambda p: p["probe"]["tasks"]["shapes"]["ood"].append("nope"), "unknown dataset 'nope'"),
    (lambda p: p["models"]["resnet18"].update(train_on="cifar"), "models.resnet18.train_on"),
    (lambda p: p["models"]["resnet18"].update(arch="resnet181"), "Valid sources: timm, trained, checkpoint"),
    (lambda p: p["models"]["resnet18"].update(layers=["layer9"]), "valid layers: ['act1', 'layer1'"),
    (lambda p: p["datasets"]["shapes_noise"].update(of="digits_blur"), "is itself a shift"),
    (lambda p: p["probe"]["tasks"]["shapes"].update(id="shapes_texture"), "needs train, val and test"),
    (lambda p: p["models"]["resnet18"].update(train_on="shapes_noise"), "needs train and val splits"),
])
def test_cross_references_fail_with_valid_choices(params, mutate, expected):
    mutate(params)
    with pytest.raises(ConfigError) as error:
        check_config(params)
    assert expected in str(error.value)
