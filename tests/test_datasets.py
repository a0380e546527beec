import io

import numpy as np
import pytest

from zooprobe.data import files
from zooprobe.data import imageset
from zooprobe.data import shifted
from zooprobe.data import procedural


def test_shapes_are_deterministic_by_seed_and_shaped():
    a, labels_a, names = procedural.generate_shapes(n_per_class=5, size=24, seed=3)
    b, labels_b, _ = procedural.generate_shapes(n_per_class=5, size=24, seed=3)
    c, _, _ = procedural.generate_shapes(n_per_class=5, size=24, seed=4)
    assert a.shape == (50, 24, 24, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(labels_a, labels_b)
    assert not np.array_equal(a, c)
    assert np.bincount(labels_a).tolist() == [5] * len(names)


def test_texture_background_is_a_style_shift_of_the_same_shapes():
    plain, _, _ = procedural.generate_shapes(n_per_class=4, size=32, seed=0, background="plain")
    texture, _, _ = procedural.generate_shapes(n_per_class=4, size=32, seed=0, background="texture")
    # Plain backgrounds are one colour at the corners; textured ones vary.
    corner_std = lambda images: images[:, :4, :4].reshape(len(images), -1, 3).std(axis=1).mean()  # noqa: E731
    assert corner_std(plain) < 1.0 < corner_std(texture)


def _shape_and_background_luma(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per plain-background image: the shape's luma and the background's (the corner pixel is never the shape)."""
    corner = images[:, :1, :1].astype(float)
    is_shape = np.abs(images.astype(float) - corner).max(axis=-1) > 1
    luma = images.astype(float) @ procedural.LUMA
    shape = np.array([luma[i][is_shape[i]].mean() for i in range(len(images))])
    return shape, corner[:, 0, 0] @ procedural.LUMA


def test_lighter_foreground_draws_every_shape_brighter_than_its_background_by_the_margin():
    lighter, labels, _ = procedural.generate_shapes(n_per_class=10, size=32, seed=0, foreground="lighter")
    shape, background = _shape_and_background_luma(lighter)
    # Rounding to uint8 moves a luma by at most 0.5.
    assert (shape >= background + procedural.LIGHTER_MARGIN - 0.5).all()
    # With "any" the polarity is free: the same generator draws darker shapes too.
    free_shape, free_background = _shape_and_background_luma(
        procedural.generate_shapes(n_per_class=10, size=32, seed=0)[0])
    assert (free_shape < free_background).sum() >= 10 and (free_shape > free_background).sum() >= 10
    # Textured backgrounds are scaled under the ceiling as well, so the shift keeps the polarity.
    texture, texture_labels, _ = procedural.generate_shapes(n_per_class=10, size=32, seed=0, background="texture",
                                                            foreground="lighter")
    assert texture[:, :2, :2].max() <= procedural.BACKGROUND_CEILING + 0.5
    assert np.array_equal(labels, texture_labels)


def test_an_unknown_foreground_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown foreground 'dark'; valid: \['any', 'lighter'\]"):
        procedural.build_procedural(generator="shapes", n_per_class=1, size=8, splits={"test": 1.0}, seed=0,
                                    foreground="dark")


def test_stratified_split_keeps_class_proportions():
    labels = np.repeat(np.arange(4), 50)
    split = imageset.stratified_split(labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    for label in range(4):
        counts = {name: int(((split == name) & (labels == label)).sum()) for name in ("train", "val", "test")}
        assert counts == {"train": 30, "val": 10, "test": 10}


def test_split_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        imageset.stratified_split(np.zeros(10, int), {"train": 0.5, "test": 0.4}, seed=0)


def test_packaged_digits_are_rgb_at_requested_size():
    digits = files.build_packaged(name="sklearn:digits", size=16, splits={"train": 0.5, "test": 0.5}, seed=0)
    assert digits.images.shape == (1797, 16, 16, 3)
    assert set(digits.split) == {"train", "test"}
    assert digits.class_names == [str(i) for i in range(10)]


def test_shift_keeps_labels_changes_pixels_and_marks_everything_test():
    base = procedural.build_procedural(generator="shapes", n_per_class=6, size=32,
                                     splits={"train": 0.5, "test": 0.5}, seed=0)
    for shift in shifted.SHIFTS:
        copy = shifted.build_shift(base, shift=shift, severity=3, seed=0)
        test = base.subset("test")
        assert np.array_equal(copy.labels, test.labels)
        assert set(copy.split) == {"test"}
        assert np.abs(copy.images.astype(int) - test.images).mean() > 1, shift
        assert copy.attrs["of_sha256"] == base.content_sha256()


def test_unknown_shift_names_the_valid_ones():
    base = procedural.build_procedural(generator="shapes", n_per_class=2, size=16, splits={"test": 1.0}, seed=0)
    with pytest.raises(ValueError, match="gaussian_noise"):
        shifted.build_shift(base, shift="fog", severity=1, seed=0)


def test_content_hash_changes_with_one_pixel():
    base = procedural.build_procedural(generator="shapes", n_per_class=2, size=16, splits={"test": 1.0}, seed=0)
    before = base.content_sha256()
    base.images[0, 0, 0, 0] ^= 1
    assert base.content_sha256() != before


# ----------------------------------------------------------------------------- corruptions at their scale
# Published per-severity constants, read from ImageNet-C/create_c/make_cifar_c.py of
# github.com/hendrycks/robustness at commit 8190fe329f5f072a06e3a2aea02bb5dda69aed9f
# (the code that generated CIFAR-10-C, Hendrycks & Dietterich 2019).
PUBLISHED_CIFAR_C = {
    "gaussian_noise": [0.04, 0.06, .08, .09, .10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [.01, .02, .03, .05, .07],
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
    "contrast": [.75, .5, .4, .3, 0.15],
    "jpeg_compression": [80, 65, 58, 50, 40],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
}


def _grey(n: int, side: int, value: int = 128) -> imageset.ImageSet:
    images = np.full((n, side, side, 3), value, dtype=np.uint8)
    labels = np.arange(n) % 2
    return imageset.ImageSet(images, labels, np.full(n, "test", dtype="U5"), ["a", "b"], {"source": "test"})


def test_cifar_scale_parameters_are_the_published_ones():
    from zooprobe.data import cifar_corruptions

    for corruption, published in PUBLISHED_CIFAR_C.items():
        for severity, constant in enumerate(published, start=1):
            assert cifar_corruptions.parameter(corruption=corruption, severity=severity) == constant, \
                (corruption, severity)


def test_gaussian_noise_at_cifar_scale_has_the_published_std():
    # Mid-grey never clips at these noise levels, so the pixel noise is the published std (in 0..255 units);
    # truncation to uint8 adds 1/12 to the variance and shifts the mean by -0.5.
    for severity, sigma in ((1, 0.04), (4, 0.09)):
        built = shifted.build_corrupt(_grey(64, 32), corruption="gaussian_noise", severity=severity, seed=3)
        noise = built.images.astype(float) - 128
        assert built.attrs["corruption_parameters"] == "cifar" and built.attrs["corruption_constant"] == sigma
        assert abs(noise.std() - np.sqrt((255 * sigma) ** 2 + 1 / 12)) < 0.1, (severity, noise.std())
        assert abs(noise.mean() + 0.5) < 0.1
    # The ImageNet-C parameter set is twice as strong at severity 1 (0.08).
    photo = shifted.build_corrupt(_grey(64, 32), corruption="gaussian_noise", severity=1, seed=3,
                                   parameters="imagenet")
    assert photo.attrs["corruption_parameters"] == "imagenet"
    assert abs((photo.images.astype(float) - 128).std() - 255 * 0.08) < 0.2


def test_parameters_follow_image_size_unless_set():
    small = shifted.build_corrupt(_grey(4, 32), corruption="contrast", severity=2, seed=0)
    side = shifted.CIFAR_SCALE_MAX_SIDE + 1
    large = shifted.build_corrupt(_grey(4, side), corruption="contrast", severity=2, seed=0)
    forced = shifted.build_corrupt(_grey(4, side), corruption="contrast", severity=2, seed=0, parameters="cifar")
    assert (small.attrs["corruption_parameters"], large.attrs["corruption_parameters"],
            forced.attrs["corruption_parameters"]) == ("cifar", "imagenet", "cifar")
    assert small.attrs["corruption_parameters_requested"] == "auto"
    assert "make_cifar_c.py" in small.attrs["corruption_code"] and "imagecorruptions" in large.attrs["corruption_code"]


def test_cifar_scale_corruptions_follow_the_published_formulas():
    from PIL import Image

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    base = imageset.ImageSet(images, np.zeros(6, dtype=np.int64), np.full(6, "test", dtype="U5"), ["a"], {})
    contrast = shifted.build_corrupt(base, corruption="contrast", severity=2, seed=0)
    x = images / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    expected = (np.clip((x - means) * 0.5 + means, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(contrast.images, expected)
    jpeg = shifted.build_corrupt(base, corruption="jpeg_compression", severity=2, seed=0)
    for image, got in zip(images, jpeg.images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=65)
        np.testing.assert_array_equal(got, np.asarray(Image.open(buffer).convert("RGB")))
    # Every ported corruption runs, changes pixels, and is the same again with the same seed.
    from zooprobe.data import cifar_corruptions

    for corruption in cifar_corruptions.CORRUPTIONS:
        first = shifted.build_corrupt(base, corruption=corruption, severity=3, seed=1)
        again = shifted.build_corrupt(base, corruption=corruption, severity=3, seed=1)
        assert np.array_equal(first.images, again.images), corruption
        assert np.abs(first.images.astype(int) - images).mean() > 0.5, corruption


def test_corruption_parameters_fail_early_naming_the_valid_choices():
    base = _grey(2, 32)
    with pytest.raises(ValueError, match=r"implemented at the CIFAR scale: .*gaussian_noise"):
        shifted.build_corrupt(base, corruption="snow", severity=2, seed=0)
    with pytest.raises(ValueError, match=r"parameters: imagenet the valid ones are .*motion_blur"):
        shifted.build_corrupt(base, corruption="glass_blur", severity=2, seed=0, parameters="imagenet")
    with pytest.raises(ValueError, match=r"valid: \['auto', 'cifar', 'imagenet'\]"):
        shifted.build_corrupt(base, corruption="contrast", severity=2, seed=0, parameters="cifar10")


# ----------------------------------------------------------------------------- the one registry of sources
def test_registry_lists_exactly_the_sources_and_formats_the_schema_allows():
    import yaml

    from zooprobe.data import registry

    schema = yaml.safe_load(open("schemas/params.schema.yaml"))
    dataset = schema["$defs"]["dataset"]
    assert list(registry.SOURCES) == dataset["properties"]["source"]["enum"]
    url = next(rule["then"] for rule in dataset["allOf"] if rule["if"]["properties"]["source"] == {"const": "url"})
    assert list(files.FILE_FORMATS) == url["properties"]["format"]["enum"]


def test_an_unknown_source_or_format_names_the_valid_ones():
    from zooprobe.data import registry

    with pytest.raises(ValueError, match=r"unknown dataset source 'sklearn'; valid: \['packaged', 'procedural'.*"
                                         r"'middlebury'\]"):
        registry.build_image_set({"source": "sklearn"})
    with pytest.raises(ValueError, match=r"unknown file format 'tar'; valid: \['mnist-idx', 'npz', 'things-triplets'"):
        files.build_from_files({}, format="tar")
    with pytest.raises(ValueError, match=r"unknown generator 'blobs'; valid: \['scenes', 'shapes'\]"):
        procedural.build_procedural(generator="blobs", n_per_class=1, size=8, splits={"test": 1.0}, seed=0)


def test_shifted_sources_need_a_base_and_url_sources_a_download_folder():
    from zooprobe.data import registry

    with pytest.raises(ValueError, match="a 'corrupt' dataset needs --base"):
        registry.build_image_set({"source": "corrupt", "corruption": "contrast", "severity": 1, "seed": 0})
    with pytest.raises(ValueError, match="a 'url' dataset needs --download-dir"):
        registry.build_image_set({"source": "url", "format": "npz", "files": {}, "seed": 0})


def test_procedural_scenes_come_from_the_same_source_with_dense_labels():
    scenes = procedural.build_procedural(generator="scenes", n_per_class=3, size=8, splits={"test": 1.0}, seed=0)
    assert scenes.class_names == ["scene"] and set(scenes.dense) == {"depth", "normals", "mask"}
    assert scenes.images.shape == (3, 8, 8, 3)


def test_build_dataset_records_name_params_and_provenance_and_refuses_a_wrong_sha256(tmp_path):
    from zooprobe.data import registry
    from zooprobe.io import h5io
    from zooprobe.io.fetch import ChecksumError

    spec = {"source": "procedural", "generator": "shapes", "n_per_class": 1, "size": 8, "seed": 0,
            "splits": {"test": 1.0}}
    built = registry.build_dataset(name="s", spec=spec, out=tmp_path / "s.h5", provenance={"zooprobe_version": "v"})
    stored = h5io.read_image_set(tmp_path / "s.h5").attrs
    assert stored["name"] == "s" and stored["params"] == spec and stored["zooprobe_version"] == "v"
    assert stored == built and spec["source"] == "procedural"  # spec not consumed
    assert stored["content_sha256"] == registry.build_image_set(spec).content_sha256()
    with pytest.raises(ChecksumError, match="sha256 mismatch for dataset 't'"):
        registry.build_dataset(name="t", spec=dict(spec, sha256="f" * 64), out=tmp_path / "t.h5")
    assert not (tmp_path / "t.h5").exists()


# ----------------------------------------------------------------------------- shared helpers
def test_shifted_copy_keeps_labels_of_the_split_and_the_first_per_class():
    images = np.arange(6 * 2 * 2 * 3, dtype=np.uint8).reshape(6, 2, 2, 3)
    base = imageset.ImageSet(images, np.array([0, 1, 0, 1, 0, 0]), np.array(["test", "test", "train", "test", "test",
                             "test"]), ["a", "b"], {"source": "x"})
    copy = shifted.shifted_copy(base, split="test", shift_images=lambda im: 255 - im, attrs={"source": "y"},
                                max_per_class=2)
    assert copy.labels.tolist() == [0, 1, 1, 0] and set(copy.split) == {"test"} and copy.class_names == ["a", "b"]
    np.testing.assert_array_equal(copy.images, 255 - images[[0, 1, 3, 4]])
    assert copy.attrs == {"source": "y"}


def test_shifted_copy_keeps_every_nth_example_after_the_first_per_class():
    images = np.arange(7 * 2 * 2 * 3, dtype=np.uint8).reshape(7, 2, 2, 3)
    base = imageset.ImageSet(images, np.array([0, 0, 0, 1, 1, 2, 2]), np.full(7, "test"), ["a", "b", "c"], {})
    copy = shifted.shifted_copy(base, split="test", shift_images=lambda im: 255 - im, attrs={}, max_per_class=2, every=2)
    # First two of each class: rows 0, 1, 3, 4, 5, 6; every second of those: rows 0, 3, 5.
    assert copy.labels.tolist() == [0, 1, 2] and copy.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(copy.images, 255 - images[[0, 3, 5]])
    with pytest.raises(ValueError, match="every must be a positive integer"):
        shifted.shifted_copy(base, split="test", shift_images=lambda im: im, attrs={}, every=0)


def test_as_rgb_repeats_grey_and_resizes():
    grey = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    rgb = imageset.as_rgb(grey, None)
    assert rgb.shape == (2, 4, 4, 3) and (rgb == grey[..., None]).all()
    assert imageset.as_rgb(grey, 8).shape == (2, 8, 8, 3)
