"""Dataset sources that read files: image folders, corruptions, downloads through a file:// mirror."""
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zooprobe.data import files
from zooprobe.data import procedural
from zooprobe.data import shifted
from zooprobe.io import h5io
from zooprobe.cli.main import main
from zooprobe.params.config import ConfigError, expand_path
from zooprobe.io.fetch import ChecksumError, fetch, resolve_url
from zooprobe.params.spec import ModelSpec
from zooprobe.zoo.factory import create_model


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def image_folder(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "folder"
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    # Fix the test order: interleaved, reversed within each class.
    rows = [f"test/{name}/{i}.png" for i in (3, 2, 1, 0) for name in ("dog", "cat")]
    (root / "order.csv").write_text("path\n" + "\n".join(rows) + "\n")
    return root


def test_imagefolder_keeps_the_csv_order_and_carves_val(image_folder):
    built = files.build_imagefolder(root=image_folder, split_dirs={"train": "train", "test": "test"},
                                       order_csv="order.csv", val_fraction=0.5, seed=0)
    assert built.class_names == ["cat", "dog"]
    assert {s: int((built.split == s).sum()) for s in ("train", "val", "test")} == {"train": 4, "val": 4, "test": 8}
    test = built.subset("test")
    assert test.labels.tolist() == [1, 0] * 4
    expected = np.asarray(Image.open(image_folder / "test" / "dog" / "3.png"))
    assert np.array_equal(test.images[0], expected)
    limited = files.build_imagefolder(root=image_folder, split_dirs={"test": "test"}, max_per_class=1, seed=0)
    assert len(limited.labels) == 2


def test_imagefolder_on_the_shared_cifar10_jpegs_matches_the_original_order(assets_dir):
    root = assets_dir / "cifar10-jpeg"
    built = files.build_imagefolder(root=root, split_dirs={"test": "test"}, order_csv="test_order.csv",
                                       max_per_class=20, seed=0)
    import csv

    labels = [int(row["label"]) for row in csv.DictReader(open(root / "test_order.csv"))]
    assert built.images.shape == (200, 32, 32, 3)
    # The first 20 of each class, in the original order: a prefix of that order restricted to them.
    order = [label for label, count in _running(labels) if count < 20]
    assert built.labels.tolist() == order


def _running(labels):
    seen: dict[int, int] = {}
    for label in labels:
        yield label, seen.get(label, 0)
        seen[label] = seen.get(label, 0) + 1


def test_corrupt_uses_imagecorruptions_and_is_seeded():
    base = procedural.build_procedural(generator="shapes", n_per_class=3, size=32, splits={"test": 1.0}, seed=0)
    first = shifted.build_corrupt(base, corruption="gaussian_noise", severity=2, seed=1, parameters="imagenet")
    again = shifted.build_corrupt(base, corruption="gaussian_noise", severity=2, seed=1, parameters="imagenet")
    assert first.attrs["corruption_parameters"] == "imagenet" and "imagecorruptions" in first.attrs["corruption_code"]
    assert np.array_equal(first.images, again.images)
    assert np.array_equal(first.labels, base.labels)
    assert np.abs(first.images.astype(int) - base.images).mean() > 5
    with pytest.raises(ValueError, match="motion_blur"):
        shifted.build_corrupt(base, corruption="fog", severity=2, seed=1)


def _mirror(tmp_path) -> tuple[str, dict]:
    """An MNIST-style pair of idx.gz files under a file:// mirror laid out like the original host."""
    images = np.arange(6 * 4 * 4, dtype=np.uint8).reshape(6, 4, 4)
    labels = np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8)
    folder = tmp_path / "mirror" / "data"
    folder.mkdir(parents=True)
    header_images = b"\x00\x00\x08\x03" + b"".join(int(n).to_bytes(4, "big") for n in images.shape)
    header_labels = b"\x00\x00\x08\x01" + int(6).to_bytes(4, "big")
    (folder / "imgs.gz").write_bytes(gzip.compress(header_images + images.tobytes()))
    (folder / "lbls.gz").write_bytes(gzip.compress(header_labels + labels.tobytes()))
    files = {"images": {"url": "https://example.org/data/imgs.gz", "sha256": _sha(folder / "imgs.gz")},
             "labels": {"url": "https://example.org/data/lbls.gz", "sha256": _sha(folder / "lbls.gz")}}
    return (tmp_path / "mirror").as_uri(), files


def test_url_source_reads_through_a_file_mirror(tmp_path, monkeypatch):
    mirror, files = _mirror(tmp_path)
    assert resolve_url("https://example.org/data/imgs.gz", mirror) == f"{mirror}/data/imgs.gz"
    monkeypatch.setenv("ZOOPROBE_MIRROR", mirror)
    spec = {"source": "url", "files": files, "format": "mnist-idx", "seed": 0}
    main(["dataset", "--name", "m", "--spec", json.dumps(spec), "--download-dir", str(tmp_path / "dl"),
          "--out", str(tmp_path / "m.h5")])
    built = h5io.read_image_set(tmp_path / "m.h5")
    assert built.images.shape == (6, 4, 4, 3) and built.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert built.images[1, 0, 0, 0] == 16


def test_url_source_with_a_wrong_sha256_names_file_and_hashes_and_writes_nothing(tmp_path):
    mirror, files = _mirror(tmp_path)
    good = files["labels"]["sha256"]
    files["labels"]["sha256"] = "0" * 64
    spec = {"source": "url", "files": files, "format": "mnist-idx", "seed": 0, "mirror": mirror}
    with pytest.raises(ChecksumError) as error:
        main(["dataset", "--name", "m", "--spec", json.dumps(spec), "--download-dir", str(tmp_path / "dl"),
              "--out", str(tmp_path / "m.h5")])
    assert "lbls.gz" in str(error.value) and "0" * 64 in str(error.value) and good in str(error.value)
    assert not (tmp_path / "m.h5").exists()
    assert not (tmp_path / "dl" / "lbls.gz").exists() and not list((tmp_path / "dl").glob(".*tmp*"))


def test_checkpoint_with_a_wrong_sha256_is_refused(tmp_path):
    source = create_model(ModelSpec(name="s", source="timm", arch="cifar_resnet20"))
    torch.save(source.model.state_dict(), tmp_path / "w.pt")
    spec = ModelSpec(name="m", source="checkpoint", arch="cifar_resnet20", checkpoint=str(tmp_path / "w.pt"),
                     checkpoint_sha256="f" * 64)
    with pytest.raises(ChecksumError, match=f"w.pt of model 'm' has sha256 {_sha(tmp_path / 'w.pt')}, not the {'f' * 64}"):
        create_model(spec)
    mirror_dest = tmp_path / "fetched.pt"
    with pytest.raises(ChecksumError, match="w.pt"):
        fetch("https://host/w.pt", sha256="f" * 64, dest=mirror_dest, mirror=tmp_path.as_uri())
    assert not mirror_dest.exists()
    assert fetch("https://host/w.pt", sha256=_sha(tmp_path / "w.pt"), dest=mirror_dest, mirror=tmp_path.as_uri())
    assert _sha(mirror_dest) == _sha(tmp_path / "w.pt")


def test_published_cifar_resnets_load_strictly_and_classify_the_jpegs(assets_dir):
    root = assets_dir / "cifar10-jpeg"
    test = files.build_imagefolder(root=root, split_dirs={"test": "test"}, order_csv="test_order.csv",
                                      max_per_class=30, seed=0)
    for path in sorted((assets_dir / "weights" / "akamaster-cifar10-resnets").glob("*.th")):
        arch = "cifar_" + path.name.split("-")[0]
        extractor = create_model(ModelSpec(name=arch, source="checkpoint", arch=arch, checkpoint=str(path)))
        with torch.inference_mode():
            logits = extractor.model(extractor.preprocessing(torch.from_numpy(test.images)))
        accuracy = (logits.argmax(1).numpy() == test.labels).mean()
        assert accuracy >= 0.75, (arch, accuracy)


def test_asset_paths_come_from_the_environment():
    assert expand_path("$ZOOPROBE_ASSETS/x", {"ZOOPROBE_ASSETS": "/a"}) == "/a/x"
    assert expand_path("${ZOOPROBE_ASSETS}/x", {"ZOOPROBE_ASSETS": "/a"}) == "/a/x"
    with pytest.raises(ConfigError, match="export ZOOPROBE_ASSETS="):
        expand_path("$ZOOPROBE_ASSETS/x", {})
