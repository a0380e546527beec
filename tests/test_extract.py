"""Extraction: settings, loader workers, precision, and resuming after a SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from zooprobe.io import h5io
from zooprobe.data.imageset import ImageSet
from zooprobe.params.settings import ExtractSettings

SPEC = {"source": "timm", "arch": "resnet10t", "input_size": 32}


def write_random_set(path: Path, n: int, *, side: int = 32, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    split = np.array(["train"] * (n // 2) + ["test"] * (n - n // 2))
    h5io.write_image_set(path, ImageSet(images, rng.integers(0, 10, n), split, [str(i) for i in range(10)],
                                        {"name": "random", "source": "test"}))


def extract_command(data: Path, out: Path, **settings: object) -> list[str]:
    from zooprobe.params.settings import EXECUTION_KEYS

    values = dict({"pooling": "avg", "batch_size": 64, "device": "cpu"}, **settings)
    science = {k: v for k, v in values.items() if k not in EXECUTION_KEYS}
    execution = {k: v for k, v in values.items() if k in EXECUTION_KEYS}
    return [sys.executable, "-m", "zooprobe", "extract", "--model", "r10", "--spec", json.dumps(SPEC),
            "--settings", json.dumps(science), "--execution", json.dumps(execution), "--data", str(data),
            "--threads", "1", "--out", str(out)]


def assert_same_features(a: Path, b: Path) -> None:
    """Every array and every provenance entry equal, how the job ran (batch size, workers) aside."""
    fa, fb = h5io.read_features(a), h5io.read_features(b)
    assert list(fa.layers) == list(fb.layers)
    for name in fa.layers:
        np.testing.assert_array_equal(fa.layers[name], fb.layers[name], err_msg=name)
    np.testing.assert_array_equal(fa.labels, fb.labels)
    np.testing.assert_array_equal(fa.split, fb.split)
    drop = {"execution"}
    assert {k: v for k, v in fa.provenance.items() if k not in drop} == \
        {k: v for k, v in fb.provenance.items() if k not in drop}
    with h5py.File(a) as f:
        assert "rows_done" not in f.attrs and "resume_key" not in f.attrs


def test_settings_name_the_valid_choices() -> None:
    with pytest.raises(ValueError, match=r"precision.*'fp32', 'bf16', 'fp16'"):
        ExtractSettings(precision="int8")
    with pytest.raises(ValueError, match=r"unknown extract params \['batchsize'\]"):
        ExtractSettings.from_config({"batchsize": 3})
    with pytest.raises(ValueError, match="num_workers"):
        ExtractSettings(num_workers=-1)
    with pytest.raises(ValueError, match=r"extract.batch_size is an execution setting: move it to execution.extract"):
        ExtractSettings.from_config({"pooling": "avg", "batch_size": 3})
    with pytest.raises(ValueError, match=r"execution.extract.pooling changes the features"):
        ExtractSettings.from_config({}, {"pooling": "avg"})


def test_resume_after_sigkill_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    data = tmp_path / "random.h5"
    write_random_set(data, 3072)
    reference = tmp_path / "reference.h5"
    subprocess.run(extract_command(data, reference), check=True, capture_output=True)

    out = tmp_path / "features.h5"
    partial = tmp_path / ".features.h5.partial"
    log = (tmp_path / "killed.log").open("w")
    process = subprocess.Popen(extract_command(data, out), stdout=log, stderr=subprocess.STDOUT)
    # Wait until some rows are on disk (the partial file grows past its first size), then kill.
    deadline, first_size = time.monotonic() + 120, None
    while time.monotonic() < deadline and process.poll() is None:
        if partial.exists():
            size = partial.stat().st_size
            first_size = first_size or size
            if size > first_size:
                time.sleep(0.5)
                break
        time.sleep(0.05)
    assert process.poll() is None, "extraction finished before it could be killed; make the test set larger"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    assert not out.exists(), "a killed extraction must not leave a file under the final name"
    with h5py.File(partial) as f:
        rows_done = int(f.attrs["rows_done"])
    assert 0 < rows_done < 3072, rows_done

    rerun = subprocess.run(extract_command(data, out), check=True, capture_output=True, text=True)
    assert f"resuming {out} at row {rows_done} of 3072" in rerun.stderr
    # Only the remaining rows were computed.
    assert re.search(rf"wrote \S+: {3072 - rows_done} rows \(resumed at {rows_done}\)", rerun.stderr), rerun.stderr
    assert not partial.exists()
    assert_same_features(out, reference)


def test_partial_file_of_other_settings_is_not_reused(tmp_path: Path) -> None:
    data = tmp_path / "random.h5"
    write_random_set(data, 200)
    out = tmp_path / "features.h5"
    writer = h5io.FeatureWriter(out, n=200, layer_dims={"a": 2}, labels=np.zeros(200, int),
                                split=np.array(["test"] * 200), provenance={"pooling": "avg"}, resume=True)
    with pytest.raises(KeyError):
        with writer:
            writer.write({"a": np.ones((64, 2), np.float32)})
            raise KeyError("stop")
    assert not out.exists() and (tmp_path / ".features.h5.partial").exists()
    # Same layout and provenance: resumes after the 64 rows written.
    with h5io.FeatureWriter(out, n=200, layer_dims={"a": 2}, labels=np.zeros(200, int),
                            split=np.array(["test"] * 200), provenance={"pooling": "avg"}, resume=True) as again:
        assert again.rows_done == 64
        again.write({"a": np.full((136, 2), 2, np.float32)})
    values = h5io.read_features(out).layers["a"]
    assert (values[:64] == 1).all() and (values[64:] == 2).all()
    # A different pooling: the partial rows do not count.
    with pytest.raises(KeyError):
        with h5io.FeatureWriter(out, n=200, layer_dims={"a": 2}, labels=np.zeros(200, int),
                                split=np.array(["test"] * 200), provenance={"pooling": "avg"}, resume=True) as w:
            w.write({"a": np.ones((64, 2), np.float32)})
            raise KeyError("stop")
    with h5io.FeatureWriter(out, n=200, layer_dims={"a": 2}, labels=np.zeros(200, int),
                            split=np.array(["test"] * 200), provenance={"pooling": "avg2x2"}, resume=True) as other:
        assert other.rows_done == 0
        other.write({"a": np.zeros((200, 2), np.float32)})


def test_too_few_rows_fail_and_leave_no_final_file(tmp_path: Path) -> None:
    out = tmp_path / "features.h5"
    with pytest.raises(RuntimeError, match="wrote 10 of 20 rows"):
        with h5io.FeatureWriter(out, n=20, layer_dims={"a": 2}, labels=np.zeros(20, int),
                                split=np.array(["test"] * 20), provenance={}) as writer:
            writer.write({"a": np.ones((10, 2), np.float32)})
    assert not out.exists() and not (tmp_path / ".features.h5.partial").exists()


def test_loader_workers_and_layout_keep_the_numbers(tmp_path: Path) -> None:
    """Worker processes keep the row order; channels-last and bf16 change the numbers little."""
    data = tmp_path / "random.h5"
    write_random_set(data, 300)
    runs = {"plain": {}, "workers": {"num_workers": 2}, "channels_last": {"channels_last": True},
            "bf16": {"precision": "bf16"}}
    for name, settings in runs.items():
        subprocess.run(extract_command(data, tmp_path / f"{name}.h5", **settings), check=True, capture_output=True)
    plain = h5io.read_features(tmp_path / "plain.h5")
    assert_same_features(tmp_path / "workers.h5", tmp_path / "plain.h5")
    for name in ("channels_last", "bf16"):
        other = h5io.read_features(tmp_path / f"{name}.h5")
        recorded = other.provenance["execution"]["channels_last"] if name == "channels_last" else \
            other.provenance["precision"]
        assert recorded in (True, "bf16")
        for layer, values in plain.layers.items():
            r = np.corrcoef(values.ravel(), other.layers[layer].ravel())[0, 1]
            assert r > (0.9999 if name == "channels_last" else 0.99), (name, layer, r)


def test_vit_features_record_which_tokens_were_pooled(tmp_path: Path) -> None:
    """A ViT's features say that only patch tokens were pooled, and carry its class token as the layer ``cls``."""
    data = tmp_path / "random.h5"
    write_random_set(data, 6)
    command = extract_command(data, tmp_path / "vit.h5")
    command[command.index("--spec") + 1] = json.dumps({"source": "timm", "arch": "zp_vit_tiny"})
    subprocess.run(command, check=True, capture_output=True)
    features = h5io.read_features(tmp_path / "vit.h5")
    assert features.provenance["token_pooling"] == "patch_tokens"
    assert features.provenance["model_prefix_tokens"] == 1 and features.provenance["cls_layer"] == "cls"
    assert list(features.layers)[-2:] == ["cls", "pre_logits"] and features.layers["cls"].shape == (6, 96)


def test_loader_workers_and_precisions():
    import torch

    from zooprobe.extract.features import AUTOCAST_DTYPES, loader_workers
    from zooprobe.params.settings import PRECISIONS

    assert tuple(AUTOCAST_DTYPES) == PRECISIONS  # every precision the params accept has its autocast dtype
    assert loader_workers(ExtractSettings(num_workers=3), torch.device("cpu")) == 3
    assert loader_workers(ExtractSettings(), torch.device("cpu")) == 0
    assert 1 <= loader_workers(ExtractSettings(), torch.device("cuda")) <= 4
