"""Dense probes and the procedural scenes: metrics by hand, ground truth as features, random features."""

from __future__ import annotations

import numpy as np
import pytest

from zooprobe import dense
from zooprobe.scenes import render_scene, render_scenes

SIZE = 24


@pytest.fixture(scope="module")
def scenes():
    return render_scenes(48, SIZE, seed=0)


def test_depth_metrics_by_hand() -> None:
    gt = np.array([1.0, 2.0, 4.0, 8.0])
    pred = np.array([1.1, 2.0, 6.0, 4.0])  # ratios 1.1, 1, 1.5, 2
    m = dense.depth_metrics(pred, gt)
    # 1.25^2 = 1.5625 admits 1.5; 1.25^3 = 1.953 still excludes 2.
    assert m["delta1"] == 0.5 and m["delta2"] == 0.75 and m["delta3"] == 0.75
    assert m["abs_rel"] == pytest.approx((0.1 + 0 + 0.5 + 0.5) / 4)
    assert m["rmse"] == pytest.approx(np.sqrt((0.01 + 0 + 4 + 16) / 4))
    # Invalid pixels (and gt = 0) are left out.
    assert dense.depth_metrics(pred, gt, valid=np.array([1, 1, 0, 0]))["delta1"] == 1.0


def test_normal_and_figure_ground_metrics_by_hand() -> None:
    gt = np.array([[0, 0, 1.0]] * 4)
    angles = np.radians([0.0, 10.0, 20.0, 45.0])
    pred = np.stack([np.sin(angles), np.zeros(4), np.cos(angles)], axis=1) * 3  # not unit length
    m = dense.normal_metrics(pred, gt)
    assert m["mean_angle"] == pytest.approx(18.75) and m["median_angle"] == pytest.approx(15.0)
    assert m["within_11.25"] == 50.0 and m["within_22.5"] == 75.0 and m["within_30"] == 75.0
    f = dense.figure_ground_metrics(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    assert f == {"iou": pytest.approx(1 / 3), "pixel_accuracy": 0.5}
    with pytest.raises(ValueError, match="valid: \\['depth', 'normals', 'figure_ground'\\]"):
        dense.task_metrics("edges", gt, gt)


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


@pytest.mark.parametrize("task", dense.DENSE_TASKS)
def test_probe_fed_the_ground_truth_is_near_perfect(scenes, task) -> None:
    labels = {"depth": scenes.depth, "normals": scenes.normals, "figure_ground": scenes.mask}[task]
    # The truth itself, as a feature map at the label resolution.
    features = {"depth": np.log(scenes.depth)[:, None], "normals": np.moveaxis(scenes.normals, -1, 1),
                "figure_ground": scenes.mask[:, None].astype(np.float32) * 2 - 1}[task]
    settings = dense.DenseProbeSettings(head="linear", epochs=60, lr=0.05)
    head = dense.fit_dense_probe(features[:32], labels[:32], task=task, settings=settings)
    pred = dense.predict_dense(head, features[32:], task=task, size=(SIZE, SIZE))
    if task == "depth":
        pred = dense.align_depth_scale(pred, labels[32:])
    m = dense.task_metrics(task, pred, labels[32:])
    if task == "depth":
        assert m["delta1"] > 0.98 and m["abs_rel"] < 0.05
    elif task == "normals":
        assert m["mean_angle"] < 5 and m["within_11.25"] > 95
    else:
        assert m["iou"] > 0.97 and m["pixel_accuracy"] > 0.99


@pytest.mark.parametrize("task", dense.DENSE_TASKS)
def test_probe_on_random_features_stays_at_chance(scenes, task) -> None:
    labels = {"depth": scenes.depth, "normals": scenes.normals, "figure_ground": scenes.mask}[task]
    features = np.random.default_rng(0).normal(size=(48, 16, SIZE // 4, SIZE // 4)).astype(np.float32)
    settings = dense.DenseProbeSettings(head="linear", epochs=30, lr=0.01)
    head = dense.fit_dense_probe(features[:32], labels[:32], task=task, settings=settings)
    pred = dense.predict_dense(head, features[32:], task=task, size=(SIZE, SIZE))
    test = labels[32:]
    # Chance: the best prediction that ignores the image, fitted on the training labels.
    if task == "depth":
        constant = np.broadcast_to(np.median(labels[:32], axis=0), test.shape)
        chance = dense.depth_metrics(dense.align_depth_scale(constant, test), test)["delta1"]
        got = dense.depth_metrics(dense.align_depth_scale(pred, test), test)["delta1"]
        assert got < chance + 0.05, (got, chance)
    elif task == "normals":
        mean_normal = labels[:32].mean(axis=0)
        chance = dense.normal_metrics(np.broadcast_to(mean_normal, test.shape), test)["mean_angle"]
        got = dense.normal_metrics(pred, test)["mean_angle"]
        assert got > chance - 3, (got, chance)
    else:
        prior = labels[:32].mean(axis=0) > 0.5
        chance = dense.figure_ground_metrics(np.broadcast_to(prior, test.shape), test)["iou"]
        got = dense.figure_ground_metrics(pred, test)["iou"]
        assert got < chance + 0.1, (got, chance)


def test_scene_set_round_trips_with_its_dense_labels(tmp_path) -> None:
    from zooprobe import h5io
    from zooprobe.dense_data import build_scenes

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
    from zooprobe.dense_data import build_middlebury_motorcycle, motorcycle_depth_m

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


def test_nyuv2_loader_on_a_fixture_with_the_mat_layout(tmp_path) -> None:
    """MATLAB v7.3 keeps column-major arrays: h5py sees images as (N, 3, W, H) and depths as (N, W, H)."""
    import h5py

    from zooprobe.dense_data import build_nyuv2

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 12, 16, 3), dtype=np.uint8)  # (N, H, W, 3) as a user sees them
    depths = rng.uniform(0.5, 9, (3, 12, 16)).astype(np.float32)
    with h5py.File(tmp_path / "nyu_depth_v2_labeled.mat", "w") as f:
        f["images"] = images.transpose(0, 3, 2, 1)
        f["depths"] = depths.transpose(0, 2, 1)
    built = build_nyuv2(tmp_path / "nyu_depth_v2_labeled.mat")
    np.testing.assert_array_equal(built.images, images)
    np.testing.assert_array_equal(built.dense["depth"], depths)
    with h5py.File(tmp_path / "other.mat", "w") as f:
        f["rgb"] = images
    with pytest.raises(ValueError, match="nyu_depth_v2_labeled.mat"):
        build_nyuv2(tmp_path / "other.mat")


def test_spatial_maps_from_cnn_and_vit_layers() -> None:
    import timm
    import torch

    from zooprobe.models import concat_at_stride, spatial_map

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
