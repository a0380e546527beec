import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from zooprobe.params.config import ConfigError, check_config
from zooprobe.zoo.checks import check_zoo

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "schemas" / "params.schema.yaml")


@pytest.fixture
def params():
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_default_and_tiny_params_are_valid(params):
    validate(copy.deepcopy(params), SCHEMA)
    assert set(check_zoo(params)) == set(params["models"])
    for path in [REPO / "tests" / "configs" / "tiny.yaml", *sorted((REPO / "configs").glob("*.yaml"))]:
        other = yaml.safe_load(path.read_text())
        validate(other, SCHEMA)
        check_zoo(other)


@pytest.mark.parametrize("mutate,expected", [
    (lambda p: p["models"]["resnet18"].update(source="hub"), "timm', 'trained', 'checkpoint"),
    (lambda p: p["datasets"]["shapes_noise"].update(shift="fog"), "gaussian_noise"),
    (lambda p: p["extract"].update(pooling="max"), "avg2x2"),
    (lambda p: p.setdefault("execution", {}).update(threads={"extract": 0}), "minimum"),
    (lambda p: p.setdefault("execution", {}).update(threads={"report": 2}), "report"),
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
        check_zoo(params)
    assert expected in str(error.value)


def _with_sweep(params, **changes):
    params["sweep"] = dict({"architectures": {"r10": {"arch": "resnet10t", "input_size": 32},
                                              "r18": {"arch": "resnet18", "input_size": 32}},
                            "datasets": ["shapes", "digits"], "seeds": [0, 1], "baseline": "r10"}, **changes)
    return params


def test_sweep_adds_architecture_x_dataset_x_seed_models(params):
    from zooprobe.params.config import model_config_keys, model_entries, sweep_baseline

    _with_sweep(params)
    validate(copy.deepcopy(params), SCHEMA)
    specs = check_zoo(params)
    swept = [name for name in specs if name not in params["models"]]
    assert swept == ["r10-shapes-s0", "r10-shapes-s1", "r10-digits-s0", "r10-digits-s1",
                     "r18-shapes-s0", "r18-shapes-s1", "r18-digits-s0", "r18-digits-s1"]
    spec = specs["r18-digits-s1"]
    assert (spec.source, spec.arch, spec.train_on, spec.seed, spec.input_size) == ("trained", "resnet18", "digits", 1, 32)
    assert model_config_keys(params, "r18-digits-s1") == ["sweep.architectures.r18"]
    assert model_config_keys(params, "resnet18") == ["models.resnet18"]
    assert sweep_baseline(params) == "r10"
    params["sweep"]["variants"] = {"augment": [False, True], "input_size": [32, 48]}
    entries = model_entries(params)
    assert entries["r18-augment_on-input_size48-digits-s1"] == dict(
        arch="resnet18", input_size=48, augment=True, source="trained", train_on="digits", seed=1)
    assert len([n for n in entries if n not in params["models"]]) == 2 * 4 * 2 * 2
    assert sweep_baseline(params) == "r10-augment_off-input_size32"


def test_sweep_names_do_not_depend_on_the_order_of_the_variants(params):
    """Jobs get the sweep as JSON with sorted keys: the names they derive must be the planner's."""
    import json

    from zooprobe.params.config import sweep_baseline, sweep_members

    _with_sweep(params, variants={"input_size": [32, 48], "augment": [False, True]})
    planned = sweep_members(params)
    in_job = {"sweep": json.loads(json.dumps(params["sweep"], sort_keys=True))}
    assert list(sweep_members(in_job)) == list(planned)
    assert "r18-augment_on-input_size48-digits-s1" in planned
    assert sweep_baseline(in_job) == sweep_baseline(params) == "r10-augment_off-input_size32"


@pytest.mark.parametrize("changes,expected", [
    ({"baseline": "r50"}, "sweep.baseline: unknown architecture 'r50'; valid architectures: r10, r18"),
    ({"datasets": ["shapes", "shapez"]}, "sweep.datasets: unknown dataset 'shapez'"),
    ({"datasets": ["shapes", "digits_blur"]}, "'digits_blur' has no probe task with id 'digits_blur'"),
])
def test_sweep_cross_references_fail_with_valid_choices(params, changes, expected):
    _with_sweep(params, **changes)
    with pytest.raises(ConfigError) as error:
        check_zoo(params)
    assert expected in str(error.value)


def test_a_trained_model_with_seeds_becomes_one_model_per_seed(params):
    from zooprobe.params.config import model_config_keys

    params["models"]["resnet18"]["seeds"] = [0, 3]
    validate(copy.deepcopy(params), SCHEMA)
    specs = check_zoo(params)
    assert "resnet18" not in specs and {"resnet18-s0", "resnet18-s3"} <= set(specs)
    assert specs["resnet18-s3"].seed == 3 and specs["resnet18-s3"].arch == "resnet18"
    assert model_config_keys(params, "resnet18-s3") == ["models.resnet18"]
    params["models"]["resnet18_random"]["seeds"] = [0, 1]
    with pytest.raises(ConfigError, match="models.resnet18_random.seeds: only the 'trained' source"):
        check_zoo(params)


ALIGN = {"similarity": "cosine", "layer": "last", "n_triplets": 100, "n_boot": 20, "seed": 0}


@pytest.mark.parametrize("benchmarks,expected", [
    ({"h": {"dataset": "shapez"}}, "unknown dataset 'shapez'"),
    ({"h": {"dataset": "shapes"}}, "'shapes' holds no human data; use a 'peterson' or 'kriegeskorte92' source"),
])
def test_alignment_benchmarks_need_a_dataset_with_human_data(params, benchmarks, expected):
    params["align"] = dict(ALIGN, benchmarks=benchmarks)
    validate(params, SCHEMA)
    with pytest.raises(ConfigError, match=expected):
        check_zoo(params)


def test_alignment_tables_need_human_label_distributions(params):
    params["datasets"]["peterson_animals"] = {"source": "peterson", "root": "/nowhere", "domain": "animals"}
    params["align"] = dict(ALIGN, benchmarks={"p": {"dataset": "peterson_animals", "tables": "/tables"}})
    validate(params, SCHEMA)
    with pytest.raises(ConfigError, match="label distributions only"):
        check_zoo(params)
    params["align"]["benchmarks"]["p"].pop("tables")
    check_zoo(params)
    params["datasets"]["peterson_animals"]["domain"] = "planets"
    with pytest.raises(WorkflowError):
        validate(params, SCHEMA)


def test_a_job_parses_the_params_without_importing_torch():
    # Every Snakemake job parses the workflow again; the checks that need torch ran in the process that
    # submitted it. Run in a fresh interpreter, since this one may have imported torch already.
    import subprocess
    import sys

    code = ("import sys, yaml; from zooprobe.params.config import check_config; "
            f"specs = check_config(yaml.safe_load(open({str(REPO / 'configs' / 'introspective.yaml')!r}))); "
            "print(len(specs), 'torch' in sys.modules, 'timm' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    count, torch_imported, timm_imported = result.stdout.split()
    assert int(count) >= 2 and torch_imported == "False" and timm_imported == "False"


def test_the_full_check_still_catches_a_misspelt_architecture(params):
    params["models"]["resnet18"]["arch"] = "resnet181"
    with pytest.raises(ConfigError, match="Did you mean"):
        check_zoo(params)
    # A job skips that lookup (it needs timm): its submitting process already refused this config.
    assert check_config(params)["resnet18"].arch == "resnet181"
