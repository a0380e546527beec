"""zooprobe.workflow.ruleparams: the params the rules build from params.yaml, and the keys each reads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from zooprobe.workflow.ruleparams import (as_json, config_value, from_config, gpu_wanted, host_sees_gpu, section_keys,
                                          section_settings)

CONFIG = {
    "probe": {"tasks": {"shapes": {"id": "shapes"}}, "c_grid": [0.1, 1.0], "seed": 0},
    "introspective": {"probe": {"tasks": ["shapes"], "rounds": 2, "epochs": 3}},
    "models": {"resnet18": {"arch": "resnet18", "source": "timm"}},
    "extract": {"pooling": "avg"},
}


def test_one_key_gives_its_value_as_sorted_json_and_fills_wildcards():
    param = from_config(CONFIG, "models.{model}")
    wildcards = {"model": "resnet18"}
    assert param(wildcards) == '{"arch": "resnet18", "source": "timm"}'
    assert param.config_keys_for(wildcards) == ["models.resnet18"]


def test_derive_and_key_functions_list_every_key_in_order():
    param = from_config(CONFIG, lambda wc: [f"models.{wc['model']}"], "probe.tasks.{task}",
                        derive=lambda wc: ["--flag"])
    wildcards = {"model": "resnet18", "task": "shapes"}
    assert param(wildcards) == ["--flag"]
    assert param.config_keys_for(wildcards) == ["models.resnet18", "probe.tasks.shapes"]


@pytest.mark.parametrize("keys", [(), ("probe", "extract"), (lambda wc: ["probe"],)])
def test_without_derive_exactly_one_plain_key_is_needed(keys):
    with pytest.raises(ValueError, match="one key, or a derive function"):
        from_config(CONFIG, *keys)


def test_a_missing_key_names_the_keys_that_exist():
    with pytest.raises(KeyError, match=r"'probe.c_grids'.*\['c_grid', 'seed', 'tasks'\]"):
        config_value(CONFIG, "probe.c_grids")


def test_section_settings_skip_the_named_keys_and_read_the_config_when_called():
    config = json.loads(json.dumps(CONFIG))
    settings = section_settings(config, "probe", skip=("tasks",))
    assert settings.config_keys_for({}) == ["probe.c_grid", "probe.seed"]
    assert settings({}) == as_json({"c_grid": [0.1, 1.0], "seed": 0}) == '{"c_grid": [0.1, 1.0], "seed": 0}'
    config["probe"]["seed"] = 7  # a changed value reaches the param, as a changed params.yaml would
    assert json.loads(settings({}))["seed"] == 7


def test_nested_and_absent_sections():
    nested = section_settings(CONFIG, "introspective.probe", skip=("tasks",))
    assert nested.config_keys_for({}) == ["introspective.probe.rounds", "introspective.probe.epochs"]
    assert json.loads(nested({})) == {"rounds": 2, "epochs": 3}
    assert section_keys(CONFIG, "align", skip=("benchmarks",)) == []
    assert section_settings(CONFIG, "dense")({}) == "{}"


def test_gpu_wanted_follows_the_device_and_asks_the_host_only_for_auto():
    asked = []

    def host(answer):
        return lambda: asked.append(answer) or answer

    assert gpu_wanted("cuda", host_has_gpu=host(False)) == 1
    assert gpu_wanted("cpu", host_has_gpu=host(True)) == 0
    assert asked == []
    assert gpu_wanted("auto", host_has_gpu=host(True)) == 1
    assert gpu_wanted("auto", host_has_gpu=host(False)) == 0
    assert asked == [True, False]


def test_host_sees_gpu_reads_the_driver_and_cuda_visible_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no nvidia-smi to fall back on
    gpus = tmp_path / "gpus"
    assert host_sees_gpu({}, nvidia_gpus=gpus) is False
    (gpus / "0000:01:00.0").mkdir(parents=True)
    assert host_sees_gpu({}, nvidia_gpus=gpus) is True
    assert host_sees_gpu({"CUDA_VISIBLE_DEVICES": ""}, nvidia_gpus=gpus) is False
    assert host_sees_gpu({"CUDA_VISIBLE_DEVICES": "-1"}, nvidia_gpus=gpus) is False
    assert host_sees_gpu({"CUDA_VISIBLE_DEVICES": "0"}, nvidia_gpus=gpus) is True


def test_host_sees_gpu_falls_back_on_nvidia_smi(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-x)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert host_sees_gpu({}, nvidia_gpus=tmp_path / "none") is True
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert host_sees_gpu({}, nvidia_gpus=Path(tmp_path / "none")) is False
