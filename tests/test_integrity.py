"""Nothing runs that the user did not write, nothing changes unseen, and bad input fails early and clearly."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from workflow_helpers import REPO, rules_run, run, snakemake
from zooprobe.io import h5io
from zooprobe.data.files import build_imagefolder
from zooprobe.data.imageset import ImageSet
from zooprobe.io.atomic import PartialInUseError
from zooprobe.io.fetch import ChecksumError
from zooprobe.io.records import StaleFileError
from zooprobe.params.spec import ModelConfigError, ModelSpec
from zooprobe.zoo.checkpoints import state_dict_sha256
from zooprobe.zoo.factory import create_model

# Every character a shell would act on, in a title, a folder name, a class name and a checkpoint path.
HOSTILE = """it's "x" $(touch PWNED_a) `touch PWNED_b`; touch PWNED_c & y"""
HOSTILE_TITLE = f"Bob's zoo x'; touch PWNED_e; echo ' {HOSTILE}"


def _image_set(path: Path, n: int = 40) -> None:
    rng = np.random.default_rng(0)
    split = np.array(["train", "val", "test", "test"] * (n // 4))
    h5io.write_image_set(path, ImageSet(rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), rng.integers(0, 4, n),
                                        split, ["a", "b", "c", "d"], {"name": "r", "source": "test"}))


# ----------------------------------------------------------------------------- verify what you read
def test_pixels_changed_in_place_fail_every_reader_naming_the_file_and_the_fix(tmp_path):
    path = tmp_path / "set.h5"
    _image_set(path)
    with h5py.File(path, "r+") as f:  # same size, same layout: only the bytes differ
        f["images"][3, 0, 0, 0] = 255 - f["images"][3, 0, 0, 0]
    for reader in (h5io.read_image_set, h5io.read_image_labels, h5io.verify_image_set):
        with pytest.raises(StaleFileError, match=rf"{path} was changed after it was written.*dvc checkout --force {path}"):
            reader(path)
    result = subprocess.run([sys.executable, "-m", "zooprobe", "extract", "--model", "m", "--spec",
                             json.dumps({"source": "timm", "arch": "resnet10t", "input_size": 16}),
                             "--settings", '{"pooling": "avg"}', "--data", str(path), "--out", str(tmp_path / "f.h5")],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "was changed after it was written" in result.stderr
    assert not (tmp_path / "f.h5").exists()


def test_a_truncated_hdf5_file_names_itself_and_the_fix(tmp_path):
    path = tmp_path / "set.h5"
    _image_set(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match=rf"{path} cannot be read as HDF5 .*truncated.*dvc checkout --force {path}"):
        h5io.read_image_set(path)


def _trained_checkpoint(path: Path, arch: str = "resnet10t") -> dict:
    model = create_model(ModelSpec(name="src", source="timm", arch=arch, input_size=16)).model
    checkpoint = {"state_dict": model.state_dict(), "num_classes": 1000, "weights_sha256": state_dict_sha256(model)}
    torch.save(checkpoint, path)
    return checkpoint


def test_a_trained_checkpoint_whose_tensors_changed_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    checkpoint = _trained_checkpoint(path)
    spec = ModelSpec(name="m", source="trained", arch="resnet10t", input_size=16, train_on="x")
    create_model(spec, weights=path)  # intact: loads
    first = next(iter(checkpoint["state_dict"]))
    checkpoint["state_dict"][first] = checkpoint["state_dict"][first] + 1
    torch.save(checkpoint, path)
    with pytest.raises(ChecksumError, match=rf"checkpoint {path}: its tensors no longer have the sha256 recorded"):
        create_model(spec, weights=path)


def test_a_state_dict_of_another_architecture_names_the_checkpoint_and_the_fix(tmp_path):
    path = tmp_path / "resnet10t.pt"
    torch.save(create_model(ModelSpec(name="s", source="timm", arch="resnet10t")).model.state_dict(), path)
    spec = ModelSpec(name="mine", source="checkpoint", arch="resnet18", checkpoint=str(path))
    with pytest.raises(ModelConfigError, match=rf"checkpoint {path} does not fit model 'mine' \(arch 'resnet18'\).*"
                                               r"Check models.mine.arch"):
        create_model(spec)


# ----------------------------------------------------------------------------- image folders
def _folder(root: Path, classes: dict[str, int]) -> Path:
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / name / f"{i}.jpg")
    return root


def test_a_truncated_jpeg_names_the_file(tmp_path):
    root = _folder(tmp_path / "imgs", {"cat": 3, "dog": 3})
    broken = root / "dog" / "1.jpg"
    broken.write_bytes(broken.read_bytes()[:40])
    with pytest.raises(ValueError, match=rf"{broken}: cannot decode this image .*Replace it"):
        build_imagefolder(root=root, seed=0)


def test_empty_class_folders_are_errors_unless_allowed(tmp_path):
    with pytest.raises(ValueError, match=r"class folders \['cat', 'dog'\] hold no images"):
        build_imagefolder(root=_folder(tmp_path / "none", {"cat": 0, "dog": 0}), seed=0)
    root = _folder(tmp_path / "one", {"cat": 3, "dog": 0})
    with pytest.raises(ValueError, match=r"class folders \['dog'\] hold no images.*allow_empty_classes: true"):
        build_imagefolder(root=root, seed=0)
    kept = build_imagefolder(root=root, allow_empty_classes=True, seed=0)
    assert kept.class_names == ["cat", "dog"] and (kept.labels == 0).all()


# ----------------------------------------------------------------------------- a live writer's partial file
HOLD_WRITER = """
import sys, time
import numpy as np
from zooprobe.io import h5io
writer = h5io.FeatureWriter(sys.argv[1], n=20, layer_dims={"a": 2}, labels=np.zeros(20, int),
                            split=np.array(["test"] * 20), provenance={"model": "m"}, resume=True)
with writer:
    writer.write({"a": np.ones((5, 2), np.float32)})
    print("writing", flush=True)
    time.sleep(60)
"""


def test_a_live_writers_partial_file_is_refused_naming_the_process_not_deleted(tmp_path):
    out = tmp_path / "features.h5"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITER, str(out)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    try:
        assert holder.stdout.readline().strip() == "writing"
        partial = tmp_path / ".features.h5.partial"
        before = partial.read_bytes()
        again = h5io.FeatureWriter(out, n=20, layer_dims={"a": 2}, labels=np.zeros(20, int),
                                   split=np.array(["test"] * 20), provenance={"model": "m"}, resume=True)
        with pytest.raises(PartialInUseError, match=rf"being written right now by process {holder.pid} on .*"
                                                         rf"kill {holder.pid}"):
            with again:
                pass
        assert partial.read_bytes() == before  # left alone, not deleted
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The lock died with its process: the next run resumes the 5 rows it left.
    with h5io.FeatureWriter(out, n=20, layer_dims={"a": 2}, labels=np.zeros(20, int), split=np.array(["test"] * 20),
                            provenance={"model": "m"}, resume=True) as writer:
        assert writer.rows_done == 5
        writer.write({"a": np.ones((15, 2), np.float32)})
    assert out.exists()


# ----------------------------------------------------------------------------- code version
def test_code_version_marks_uncommitted_changes_the_same_way_for_the_same_edit(tmp_path):
    package = tmp_path / "src" / "zooprobe"
    package.mkdir(parents=True)
    shutil.copy2(REPO / "src" / "zooprobe" / "__init__.py", package / "__init__.py")
    (package / "stage.py").write_text("X = 1\n")
    run(["git", "init", "-q"], cwd=tmp_path)
    run(["git", "add", "-A"], cwd=tmp_path)
    run(["git", "commit", "-q", "-m", "code"], cwd=tmp_path)

    def version() -> str:
        return subprocess.run([sys.executable, "-c", "import zooprobe; print(zooprobe.code_version())"],
                              capture_output=True, text=True, check=True, cwd=tmp_path,
                              env=dict(os.environ, PYTHONPATH=str(tmp_path / "src"))).stdout.strip()

    clean = version()
    assert clean.startswith("0.1.0+g") and "dirty" not in clean
    (package / "stage.py").write_text("X = 2\n")
    edited = version()
    assert edited.startswith(clean + ".dirty-") and version() == edited
    (package / "stage.py").write_text("X = 3\n")
    assert version() not in (edited, clean)
    (package / "stage.py").write_text("X = 1\n")
    (package / "new.py").write_text("Y = 1\n")  # an untracked module is a change too
    assert "dirty" in version()
    (package / "new.py").unlink()
    assert version() == clean


# ----------------------------------------------------------------------------- the workflow
def _hostile_config(tmp_path: Path) -> tuple[Path, Path]:
    """A small workflow whose title, image folder, class names and checkpoint path hold shell syntax."""
    root = tmp_path / f"images {HOSTILE}"
    classes = {f"cat {HOSTILE}": 12, "dog's \"best\"": 12, "$(touch PWNED_d);x": 12}
    for index, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(np.full((16, 16, 3), (index * 80, i * 20, 0), np.uint8)).save(root / name / f"{i}.png")
    checkpoint = tmp_path / f"weights {HOSTILE}.pt"
    torch.save(create_model(ModelSpec(name="s", source="timm", arch="resnet10t", input_size=16)).model.state_dict(),
               checkpoint)
    config = {
        "datasets": {"folder": {"source": "imagefolder", "root": str(root), "size": 16, "seed": 0,
                                "splits": {"train": 0.5, "val": 0.25, "test": 0.25}}},
        "models": {"random": {"source": "timm", "arch": "resnet10t", "input_size": 16},
                   "loaded": {"source": "checkpoint", "arch": "resnet10t", "input_size": 16,
                              "checkpoint": str(checkpoint)}},
        "train": {"epochs": 1, "batch_size": 8, "lr": 0.001, "weight_decay": 0.0, "seed": 0},
        "extract": {"pooling": "avg"},
        "probe": {"tasks": {"folder": {"probe": "linear", "id": "folder"}}, "c_grid": [1.0], "max_iter": 50, "seed": 0},
        "analyse": {"n_bootstrap": 20, "seed": 0},
        "report": {"title": HOSTILE_TITLE},
    }
    configfile = tmp_path / "hostile.yaml"
    configfile.write_text(yaml.safe_dump(config))
    return configfile, checkpoint


def _pwned(tmp_path: Path) -> list[Path]:
    return [p for base in (tmp_path, REPO, Path.cwd()) for p in base.rglob("PWNED_*")]


@pytest.mark.workflow
def test_user_values_never_reach_the_shell_and_a_replaced_checkpoint_reruns(tmp_path):
    configfile, checkpoint = _hostile_config(tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    snakemake(workdir, "--cores", "2", configfile=configfile)
    assert _pwned(tmp_path) == []
    page = (workdir / "results" / "report" / "index.html").read_text()
    # The title arrives whole and escaped: the page's <title> reads back as the user's value, and no
    # quote or ampersand of it stands bare in the HTML.
    shown = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert html.unescape(shown) == HOSTILE_TITLE
    assert not set("'\"&<>") & set(re.sub(r"&(#\d+|#x[0-9a-f]+|amp|lt|gt|quot);", "", shown))
    with h5py.File(workdir / "data" / "datasets" / "folder.h5") as f:
        assert "cat " + HOSTILE in json.loads(f.attrs["provenance"])["class_names"]
    assert "Nothing to be done" in snakemake(workdir, "-n", configfile=configfile).stdout
    # Replace the checkpoint by other weights with an older modification time (as cp -p or rsync leave it).
    other = create_model(ModelSpec(name="s", source="timm", arch="resnet10t", input_size=16, seed=1)).model
    torch.save(other.state_dict(), checkpoint)
    os.utime(checkpoint, (time.time() - 10 * 86400,) * 2)
    plan = snakemake(workdir, "-n", configfile=configfile)
    assert {"extract", "probe", "analyse", "report"} <= rules_run(plan.stdout), plan.stdout[-2000:]
    assert "Params have changed" in plan.stdout or "params" in plan.stdout.lower()
