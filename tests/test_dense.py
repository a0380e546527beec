"""Dense probes and the procedural scenes: metrics by hand, ground truth as features, random features."""

from __future__ import annotations

import numpy as np
import pytest

from zooprobe.probes.dense import heads, metrics, probe
from zooprobe.data.scenes import render_scene, render_scenes

SIZE = 24


@pytest.fixture(scope="module")
def scenes():
    return render_scenes(48, SIZE, seed=0)


def test_depth_metrics_by_hand() -> None:
    gt = np.array([1.0, 2.0, 4.0, 8.0])
    pred = np.array([1.1, 2.0, 6.0, 4.0])  # ratios 1.1, 1, 1.5, 2
    m = metrics.depth_metrics(pred, gt)
    # 1.25^2 = 1.5625 admits 1.5; 1.25^3 = 1.953 still excludes 2.
    assert m["delta1"] == 0.5 and m["delta2"] == 0.75 and m["delta3"] == 0.75
    assert m["abs_rel"] == pytest.approx((0.1 + 0 + 0.5 + 0.5) / 4)
    assert m["rmse"] == pytest.approx(np.sqrt((0.01 + 0 + 4 + 16) / 4))
    # Invalid pixels (and gt = 0) are left out.
    assert metrics.depth_metrics(pred, gt, valid=np.array([1, 1, 0, 0]))["delta1"] == 1.0


def test_normal_and_figure_ground_metrics_by_hand() -> None:
    gt = np.array([[0, 0, 1.0]] * 4)
    angles = np.radians([0.0, 10.0, 20.0, 45.0])
    pred = np.stack([np.sin(angles), np.zeros(4), np.cos(angles)], axis=1) * 3  # not unit length
    m = metrics.normal_metrics(pred, gt)
    assert m["mean_angle"] == pytest.approx(18.75) and m["median_angle"] == pytest.approx(15.0)
    assert m["within_11.25"] == 50.0 and m["within_22.5"] == 75.0 and m["within_30"] == 75.0
    f = metrics.figure_ground_metrics(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    assert f == {"iou": pytest.approx(1 / 3), "pixel_accuracy": 0.5}
    with pytest.raises(ValueError, match="valid: \\['depth', 'normals', 'figure_ground'\\]"):
        metrics.task_metrics("edges", gt, gt)


def test_scenes_are_deterministic_and_consistent_across_resolutions() -> None:
    a, b = render_scene(4, 32), render_scene(4, 32)
    for field in ("image", "depth", "normals", "mask"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(render_scene(5, 32).image, a.image)
    big = render_scene(4, 64)
    # The same scene: the object covers about the same share of the frame at both sizes.
    assert abs(big.mask.mean() - a.mask.mean()) < 0.03
    assert np.allclose(np.linalg.norm(a.normals, axis=-1), 1, atol=1e-5)
    assert a.depth.min() > 0 and 0 < a.mask.mean() < 1


@pytest.mark.parametrize("task", metrics.DENSE_TASKS)
def test_probe_fed_the_ground_truth_is_near_perfect(scenes, task) -> None:
    labels = {"depth": scenes.depth, "normals": scenes.normals, "figure_ground": scenes.mask}[task]
    # The truth itself, as a feature map at the label resolution.
    features = {"depth": np.log(scenes.depth)[:, None], "normals": np.moveaxis(scenes.normals, -1, 1),
                "figure_ground": scenes.mask[:, None].astype(np.float32) * 2 - 1}[task]
    settings = heads.DenseProbeSettings(head="linear", epochs=60, lr=0.05)
    head = heads.fit_dense_probe(features[:32], labels[:32], task=task, settings=settings)
    pred = heads.predict_dense(head, features[32:], task=task, size=(SIZE, SIZE))
    if task == "depth":
        # probe3d's least-squares scale and shift, and the median ratio.
        shifted = metrics.depth_metrics(metrics.align_depth(pred, labels[32:], method="scale_shift"), labels[32:])
        assert shifted["delta1"] > 0.99 and shifted["abs_rel"] < 0.05, shifted
        pred = metrics.align_depth(pred, labels[32:], method="median")
    m = metrics.task_metrics(task, pred, labels[32:])
    if task == "depth":
        assert m["delta1"] > 0.98 and m["abs_rel"] < 0.05
    elif task == "normals":
        assert m["mean_angle"] < 5 and m["within_11.25"] > 95
    else:
        assert m["iou"] > 0.97 and m["pixel_accuracy"] > 0.99


@pytest.mark.parametrize("task", metrics.DENSE_TASKS)
def test_probe_on_random_features_stays_at_chance(scenes, task) -> None:
    labels = {"depth": scenes.depth, "normals": scenes.normals, "figure_ground": scenes.mask}[task]
    features = np.random.default_rng(0).normal(size=(48, 16, SIZE // 4, SIZE // 4)).astype(np.float32)
    settings = heads.DenseProbeSettings(head="linear", epochs=30, lr=0.01)
    head = heads.fit_dense_probe(features[:32], labels[:32], task=task, settings=settings)
    pred = heads.predict_dense(head, features[32:], task=task, size=(SIZE, SIZE))
    test = labels[32:]
    # Chance: the best prediction that ignores the image, fitted on the training labels.
    if task == "depth":
        constant = np.broadcast_to(np.median(labels[:32], axis=0), test.shape)
        chance = metrics.depth_metrics(metrics.align_depth_scale(constant, test), test)["delta1"]
        got = metrics.depth_metrics(metrics.align_depth_scale(pred, test), test)["delta1"]
        assert got < chance + 0.05, (got, chance)
    elif task == "normals":
        mean_normal = labels[:32].mean(axis=0)
        chance = metrics.normal_metrics(np.broadcast_to(mean_normal, test.shape), test)["mean_angle"]
        got = metrics.normal_metrics(pred, test)["mean_angle"]
        assert got > chance - 3, (got, chance)
    else:
        prior = labels[:32].mean(axis=0) > 0.5
        chance = metrics.figure_ground_metrics(np.broadcast_to(prior, test.shape), test)["iou"]
        got = metrics.figure_ground_metrics(pred, test)["iou"]
        assert got < chance + 0.1, (got, chance)


def test_scene_set_round_trips_with_its_dense_labels(tmp_path) -> None:
    from zooprobe.io import h5io
    from zooprobe.data.dense_sets import build_scenes

    built = build_scenes(n=12, size=16, splits={"train": 0.5, "test": 0.5}, seed=3)
    assert built.dense["depth"].shape == (12, 16, 16) and built.dense["normals"].shape == (12, 16, 16, 3)
    h5io.write_image_set(tmp_path / "scenes.h5", built)
    again = h5io.read_image_set(tmp_path / "scenes.h5")
    for kind in ("depth", "normals", "mask"):
        np.testing.assert_array_equal(again.dense[kind], built.dense[kind])
    assert again.content_sha256() == built.content_sha256()
    changed = build_scenes(n=12, size=16, splits={"train": 0.5, "test": 0.5}, seed=3)
    changed.dense["depth"][0, 0, 0] += 1
    assert changed.content_sha256() != built.content_sha256()


def test_motorcycle_disparity_becomes_metric_depth_with_unknown_pixels_masked() -> None:
    from zooprobe.data.dense_sets import build_middlebury_motorcycle, motorcycle_depth_m

    # Z = baseline * f / (d + doffs): 193.001 mm * 994.978 px / (100 + 31.086) px = 1.465 m.
    np.testing.assert_allclose(motorcycle_depth_m(np.array([100.0, np.nan])), [1.46494, 0.0], rtol=1e-4)
    built = build_middlebury_motorcycle()
    depth = built.dense["depth"][0]
    assert built.images.shape == (1, 500, 741, 3) and depth.shape == (500, 741)
    known = depth > 0
    assert 0.5 < known.mean() < 1  # some pixels have no ground truth
    assert 1.0 < np.median(depth[known]) < 4.0  # a motorcycle a few metres from the camera
    small = build_middlebury_motorcycle(size=64)
    assert small.images.shape == (1, 64, 64, 3) and small.dense["depth"].shape == (1, 64, 64)


def _nyuv2_fixture(folder, *, n: int = 6):
    """A labeled ``.mat`` in NYU's layout and an official-style ``splits.mat`` (1-based, column vectors)."""
    import h5py
    import scipy.io

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 12, 16, 3), dtype=np.uint8)  # (N, H, W, 3) as a user sees them
    depths = rng.uniform(0.5, 9, (n, 12, 16)).astype(np.float32)
    with h5py.File(folder / "nyu_depth_v2_labeled.mat", "w") as f:
        # MATLAB v7.3 keeps column-major arrays: h5py sees images as (N, 3, W, H) and depths as (N, W, H).
        f["images"] = images.transpose(0, 3, 2, 1)
        f["depths"] = depths.transpose(0, 2, 1)
    train, test = np.array([1, 2, 5, 6]), np.array([3, 4])  # MATLAB's 1-based frame numbers
    scipy.io.savemat(folder / "splits.mat", {"trainNdxs": train[:, None], "testNdxs": test[:, None]})
    return images, depths, train, test


def test_nyuv2_loader_uses_the_official_split_file(tmp_path) -> None:
    import h5py

    from zooprobe.data.dense_sets import build_nyuv2, read_nyuv2_splits

    images, depths, train, test = _nyuv2_fixture(tmp_path)
    built = build_nyuv2(tmp_path / "nyu_depth_v2_labeled.mat", split_file=tmp_path / "splits.mat")
    np.testing.assert_array_equal(built.images, images)
    np.testing.assert_array_equal(built.dense["depth"], depths)
    # Exactly the file's frames, 1-based there, 0-based here: no random split.
    np.testing.assert_array_equal(np.flatnonzero(built.split == "train"), train - 1)
    np.testing.assert_array_equal(np.flatnonzero(built.split == "test"), test - 1)
    # A val carve-out takes only official train frames, and the same ones for the same seed.
    carved = build_nyuv2(tmp_path / "nyu_depth_v2_labeled.mat", split_file=tmp_path / "splits.mat",
                         val_fraction=0.5, seed=1)
    assert set(np.flatnonzero(carved.split == "val")) <= set(train - 1) and (carved.split == "val").sum() == 2
    np.testing.assert_array_equal(np.flatnonzero(carved.split == "test"), test - 1)
    again = build_nyuv2(tmp_path / "nyu_depth_v2_labeled.mat", split_file=tmp_path / "splits.mat",
                        val_fraction=0.5, seed=1)
    np.testing.assert_array_equal(again.split, carved.split)
    # MATLAB v7.3 split files are HDF5; they read the same.
    with h5py.File(tmp_path / "splits73.mat", "w") as f:
        f["trainNdxs"], f["testNdxs"] = train[None].astype(float), test[None].astype(float)
    np.testing.assert_array_equal(read_nyuv2_splits(tmp_path / "splits73.mat", n_frames=6), built.split)
    # A split file that does not partition the frames, or is not a split file, fails by name.
    import scipy.io

    scipy.io.savemat(tmp_path / "overlap.mat", {"trainNdxs": np.array([[1], [2], [3]]), "testNdxs": np.array([[3]])})
    with pytest.raises(ValueError, match="must partition the 6 labeled frames"):
        read_nyuv2_splits(tmp_path / "overlap.mat", n_frames=6)
    scipy.io.savemat(tmp_path / "zero.mat", {"trainNdxs": np.array([[0], [1]]), "testNdxs": np.array([[2]])})
    with pytest.raises(ValueError, match="1-based frame indices in 1..6"):
        read_nyuv2_splits(tmp_path / "zero.mat", n_frames=6)
    scipy.io.savemat(tmp_path / "other_split.mat", {"train": np.array([[1]])})
    with pytest.raises(ValueError, match="trainNdxs"):
        read_nyuv2_splits(tmp_path / "other_split.mat", n_frames=6)
    with h5py.File(tmp_path / "other.mat", "w") as f:
        f["rgb"] = images
    with pytest.raises(ValueError, match="nyu_depth_v2_labeled.mat"):
        build_nyuv2(tmp_path / "other.mat", split_file=tmp_path / "splits.mat")


def test_nyuv2_dataset_stage_fetches_the_split_file_with_its_sha256(tmp_path) -> None:
    """The ``dataset`` stage downloads both files, checks their sha256, and splits by the split file."""
    import json

    from zooprobe.cli import main as cli
    from zooprobe.io import h5io
    from zooprobe.io.fetch import ChecksumError, sha256_of

    host = tmp_path / "host"
    host.mkdir()
    _images, _depths, train, test = _nyuv2_fixture(host)
    files = {role: {"url": (host / name).as_uri(), "sha256": sha256_of(host / name)}
             for role, name in (("mat", "nyu_depth_v2_labeled.mat"), ("splits", "splits.mat"))}
    spec = {"source": "url", "format": "nyuv2-mat", "files": files, "seed": 0}
    cli.main(["dataset", "--name", "nyuv2", "--spec", json.dumps(spec), "--download-dir", str(tmp_path / "dl"),
              "--out", str(tmp_path / "nyuv2.h5")])
    _labels, split, _info = h5io.read_image_labels(tmp_path / "nyuv2.h5")
    np.testing.assert_array_equal(np.flatnonzero(split == "train"), train - 1)
    np.testing.assert_array_equal(np.flatnonzero(split == "test"), test - 1)
    wrong = json.loads(json.dumps(spec))
    wrong["files"]["splits"]["sha256"] = "0" * 64
    with pytest.raises(ChecksumError, match="sha256 mismatch for splits.mat.*expected 0000"):
        cli.main(["dataset", "--name", "nyuv2", "--spec", json.dumps(wrong), "--download-dir",
                  str(tmp_path / "dl2"), "--out", str(tmp_path / "wrong.h5")])
    assert not (tmp_path / "dl2" / "splits.mat").exists() and not (tmp_path / "wrong.h5").exists()
    no_split = dict(spec, files={"mat": files["mat"]})
    with pytest.raises(ValueError, match=r"needs file roles \['mat', 'splits'\]"):
        cli.main(["dataset", "--name", "nyuv2", "--spec", json.dumps(no_split), "--download-dir",
                  str(tmp_path / "dl3"), "--out", str(tmp_path / "no_split.h5")])


def test_spatial_maps_from_cnn_and_vit_layers() -> None:
    import timm
    import torch

    from zooprobe.zoo.pooling import concat_at_stride, spatial_map

    tokens = torch.arange(2 * 17 * 4, dtype=torch.float32).reshape(2, 17, 4)  # CLS + a 4x4 grid
    grid = spatial_map(tokens)
    assert grid.shape == (2, 4, 4, 4)
    torch.testing.assert_close(grid[:, :, 0, 1], tokens[:, 2])  # CLS dropped, row-major patches
    assert spatial_map(torch.zeros(2, 8, 32, 32), grid=8).shape == (2, 8, 8, 8)
    with pytest.raises(ValueError, match="square grid"):
        spatial_map(torch.zeros(1, 120, 4))  # 10 x 10 patches would leave 20 prefix tokens
    stacked = concat_at_stride([torch.zeros(1, 3, 8, 8), torch.ones(1, 5, 2, 2)], (4, 4))
    assert stacked.shape == (1, 8, 4, 4) and stacked[:, 3:].eq(1).all()
    # timm's ViT gives its blocks as NCHW patch maps without the CLS token.
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64).eval()
    with torch.inference_mode():
        blocks = vit.forward_intermediates(torch.zeros(1, 3, 64, 64), intermediates_only=True)
    assert spatial_map(blocks[-1]).shape == (1, 192, 4, 4)


# ----------------------------------------------------------------------------- protocol (issue 18)
def test_scale_shift_alignment_scores_an_affine_copy_of_the_truth_as_perfect() -> None:
    gt = np.random.default_rng(1).uniform(1, 10, (5, 8, 8))
    affine = 0.5 * gt + 3.0  # right shape, wrong scale and offset
    aligned = metrics.align_depth(affine, gt, method="scale_shift")
    np.testing.assert_allclose(aligned, gt, rtol=1e-9)
    assert metrics.depth_metrics(aligned, gt)["delta1"] > 0.99
    # The median ratio fixes the scale only: the offset squeezes the range, and delta1 drops.
    median = metrics.depth_metrics(metrics.align_depth(affine, gt, method="median"), gt)
    assert median["delta1"] < 0.9 and median["abs_rel"] > 0.1
    # Without an offset both alignments recover the truth.
    for method in metrics.DEPTH_ALIGNMENTS:
        np.testing.assert_allclose(metrics.align_depth(2.5 * gt, gt, method=method), gt, rtol=1e-9)
    # The fit is ordinary least squares over valid pixels (here: by hand with polyfit on one image).
    pred = np.random.default_rng(2).uniform(1, 5, (1, 8, 8))
    gt_holes = gt[:1].copy()
    gt_holes[0, :2] = 0  # unknown depth takes no part in the fit
    scale, shift = np.polyfit(pred[0][gt_holes[0] > 0], gt_holes[0][gt_holes[0] > 0], 1)
    np.testing.assert_allclose(metrics.align_depth_scale_shift(pred, gt_holes), scale * pred + shift)
    # A constant prediction gets the mean true depth, not a division by zero.
    flat = metrics.align_depth_scale_shift(np.full((1, 8, 8), 2.0), gt[:1])
    np.testing.assert_allclose(flat, gt[:1].mean())
    with pytest.raises(ValueError, match="valid: \\['median', 'scale_shift'\\]"):
        metrics.align_depth(affine, gt, method="affine")


def test_unlabelled_pixels_are_left_out_of_scores_and_training() -> None:
    gt = np.array([[0, 0, 1.0], [0, 0, 1.0], [0, 0, 0.0], [np.nan, 0, 1.0]])
    pred = np.array([[0, 0, 1.0], [0, 0, 1.0], [1.0, 0, 0], [1.0, 0, 0]])
    m = metrics.normal_metrics(pred, gt)
    # The zero vector and the NaN normal have no direction: not 90 degrees, not NaN, just absent.
    assert m["mean_angle"] == pytest.approx(0.0) and m["within_11.25"] == 100.0
    np.testing.assert_array_equal(metrics.valid_normals(gt), [True, True, False, False])
    assert np.isnan(metrics.normal_metrics(pred[2:], gt[2:])["mean_angle"])  # nothing to score
    depth_gt = np.array([2.0, 4.0, 0.0, -1.0, np.nan, np.inf])
    depth_pred = np.array([2.0, 4.0, 9.0, 9.0, 9.0, 9.0])
    assert metrics.depth_metrics(depth_pred, depth_gt) == pytest.approx(
        {"delta1": 1.0, "delta2": 1.0, "delta3": 1.0, "abs_rel": 0.0, "rmse": 0.0})
    # A head still trains (finite weights) on labels with holes, NaN ones included.
    rng = np.random.default_rng(0)
    normals = np.broadcast_to(np.array([0, 0, 1.0]), (4, 6, 6, 3)).copy()
    normals[:, 0] = 0.0
    normals[:, 1] = np.nan
    depth = rng.uniform(1, 3, (4, 6, 6))
    depth[:, 0] = np.nan
    features = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    for task, labels in (("normals", normals), ("depth", depth)):
        head = heads.fit_dense_probe(features, labels, task=task, settings=heads.DenseProbeSettings(epochs=2))
        assert all(torch_param.isfinite().all() for torch_param in head.parameters()), task


def _split_by_thirds(n: int) -> np.ndarray:
    return np.array(["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))


def test_the_layer_is_chosen_on_val_not_on_test(scenes) -> None:
    """Layer ``val_good`` carries the mask on train and val images, ``test_good`` on train and test
    images; the other images get noise. Test data would choose ``test_good``; val chooses ``val_good``."""
    masks = scenes.mask
    split = _split_by_thirds(len(masks))
    truth = masks[:, None].astype(np.float32) * 2 - 1
    noise = np.random.default_rng(0).normal(size=truth.shape).astype(np.float32)
    val_good = np.where((split != "test")[:, None, None, None], truth, noise)
    test_good = np.where((split != "val")[:, None, None, None], truth, noise)
    settings = heads.DenseProbeSettings(head="linear", epochs=12, lr=0.05)
    [result] = probe.probe_layers({"val_good": val_good, "test_good": test_good}, {"mask": masks}, split,
                                  tasks=["figure_ground"], dataset="scenes", settings=settings, layer_choice="best",
                                  n_boot=20, depth_alignment="scale_shift")
    test_iou = {row["layer"]: row["value"] for row in result["rows"] if row["metric"] == "iou"}
    assert test_iou["test_good"] > test_iou["val_good"] + 0.2  # the test images prefer the other layer
    assert result["val_scores"]["val_good"] > result["val_scores"]["test_good"] + 0.2
    assert result["selected_layer"] == "val_good" and result["layer_chosen_on"] == "val"
    assert result["score"] == pytest.approx(test_iou["val_good"])  # reported on test, chosen on val
    assert result["n_val"] == (split == "val").sum()
    last = probe.probe_layers({"val_good": val_good, "test_good": test_good}, {"mask": masks}, split,
                              tasks=["figure_ground"], dataset="scenes", settings=settings, layer_choice="last",
                              n_boot=20, depth_alignment="median")[0]
    assert last["selected_layer"] == "test_good" and last["layer_chosen_on"] == "none"
    no_val = np.where(split == "val", "train", split)
    with pytest.raises(ValueError, match="'scenes' has none.*set dense.layer: last"):
        probe.probe_layers({"a": val_good}, {"mask": masks}, no_val, tasks=["figure_ground"], dataset="scenes",
                           settings=settings, layer_choice="best", n_boot=20, depth_alignment="median")


def test_configs_give_dense_datasets_a_val_split_when_the_layer_is_chosen() -> None:
    import copy
    from pathlib import Path

    import yaml

    from zooprobe.params.config import ConfigError, check_config

    tiny = yaml.safe_load((Path(__file__).parent / "configs" / "tiny.yaml").read_text())
    assert "val" in tiny["datasets"]["scenes"]["splits"] and tiny["dense"]["layer"] == "best"
    check_config(tiny)
    no_val = copy.deepcopy(tiny)
    no_val["datasets"]["scenes"]["splits"] = {"train": 0.75, "test": 0.25}
    with pytest.raises(ConfigError, match="'scenes' has no val split.*set dense.layer: last"):
        check_config(no_val)
    no_val["dense"]["layer"] = "last"
    check_config(no_val)
    nyu = copy.deepcopy(tiny)
    nyu["datasets"]["nyuv2"] = {"source": "url", "format": "nyuv2-mat", "seed": 0, "val_fraction": 0.1,
                                "files": {"mat": {"url": "https://host/nyu_depth_v2_labeled.mat", "sha256": "0" * 64}}}
    nyu["dense"]["datasets"] = ["nyuv2"]
    with pytest.raises(ConfigError, match=r"needs roles \['mat', 'splits'\].*missing \['splits'\]"):
        check_config(nyu)
    nyu["datasets"]["nyuv2"]["files"]["splits"] = {"url": "https://host/splits.mat", "sha256": "0" * 64}
    check_config(nyu)
    del nyu["datasets"]["nyuv2"]["val_fraction"]
    with pytest.raises(ConfigError, match="'nyuv2' has no val split"):
        check_config(nyu)


# ----------------------------------------------------------------------------- the dense-probe stage (issue 19)
def test_concat_layer_resamples_every_layer_to_the_finest_grid_and_stacks_channels() -> None:
    coarse = np.ones((2, 3, 2, 2), dtype=np.float32)
    fine = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    stacked = probe.concat_layer({"coarse": coarse, "fine": fine})
    assert stacked.shape == (2, 4, 4, 4) and stacked.dtype == np.float32
    np.testing.assert_array_equal(stacked[:, :3], 1.0)  # a constant map stays constant when upsampled
    np.testing.assert_array_equal(stacked[:, 3:], fine)  # the finest layer is not resampled


def test_dense_probe_stage_adds_the_concat_layer_and_refuses_a_set_without_dense_labels(tmp_path) -> None:
    from zooprobe.data.imageset import ImageSet
    from zooprobe.data.dense_sets import build_scenes
    from zooprobe.io import h5io
    from zooprobe.probes.inputs import ProbeInputError

    scenes = build_scenes(n=8, size=8, splits={"train": 0.5, "test": 0.5}, seed=0)
    plain = ImageSet(scenes.images, scenes.labels, scenes.split, scenes.class_names, {"name": "plain"})
    for name, images in (("scenes.h5", scenes), ("plain.h5", plain)):
        h5io.write_image_set(tmp_path / name, images)
        rng = np.random.default_rng(0)
        with h5io.FeatureWriter(tmp_path / f"f_{name}", n=8, layer_dims={"a": (2, 2, 2), "b": (1, 4, 4)},
                                labels=images.labels, split=images.split,
                                provenance={"dataset_sha256": images.content_sha256(), "weights_sha256": "w"}) as w:
            w.write({"a": rng.normal(size=(8, 2, 2, 2)), "b": rng.normal(size=(8, 1, 4, 4))})
    settings = {"tasks": ["depth", "figure_ground"], "head": "linear", "epochs": 1, "lr": 0.01, "batch_size": 4,
                "seed": 0, "concat": True, "layer": "last", "n_boot": 5, "depth_alignment": "median"}
    results = probe.dense_probe(data=tmp_path / "scenes.h5", features=tmp_path / "f_scenes.h5", dataset="s",
                                model="m", settings=settings, run={"v": 1})
    assert [r["benchmark"] for r in results] == ["depth@s", "figure_ground@s"]
    assert all(r["selected_layer"] == "concat" and r["model"] == "m" for r in results)
    assert {row["layer"] for row in results[0]["rows"]} == {"a", "b", "concat"}
    assert results[0]["provenance"]["split_counts"] == {"train": 4, "val": 0, "test": 4}
    with pytest.raises(ProbeInputError, match=r"plain.h5 has none of the labels of the tasks .*no dense labels"):
        probe.dense_probe(data=tmp_path / "plain.h5", features=tmp_path / "f_plain.h5", dataset="p", model="m",
                          settings=settings, run={})
