import numpy as np
import pytest

from zooprobe import datasets, procedural


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


def test_stratified_split_keeps_class_proportions():
    labels = np.repeat(np.arange(4), 50)
    split = datasets.stratified_split(labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    for label in range(4):
        counts = {name: int(((split == name) & (labels == label)).sum()) for name in ("train", "val", "test")}
        assert counts == {"train": 30, "val": 10, "test": 10}


def test_split_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        datasets.stratified_split(np.zeros(10, int), {"train": 0.5, "test": 0.4}, seed=0)


def test_packaged_digits_are_rgb_at_requested_size():
    digits = datasets.build_packaged(name="sklearn:digits", size=16, splits={"train": 0.5, "test": 0.5}, seed=0)
    assert digits.images.shape == (1797, 16, 16, 3)
    assert set(digits.split) == {"train", "test"}
    assert digits.class_names == [str(i) for i in range(10)]


def test_shift_keeps_labels_changes_pixels_and_marks_everything_test():
    base = datasets.build_procedural(generator="shapes", n_per_class=6, size=32,
                                     splits={"train": 0.5, "test": 0.5}, seed=0)
    for shift in datasets.SHIFTS:
        shifted = datasets.build_shift(base, shift=shift, severity=3, seed=0)
        test = base.subset("test")
        assert np.array_equal(shifted.labels, test.labels)
        assert set(shifted.split) == {"test"}
        assert np.abs(shifted.images.astype(int) - test.images).mean() > 1, shift
        assert shifted.attrs["of_sha256"] == base.content_sha256()


def test_unknown_shift_names_the_valid_ones():
    base = datasets.build_procedural(generator="shapes", n_per_class=2, size=16, splits={"test": 1.0}, seed=0)
    with pytest.raises(ValueError, match="gaussian_noise"):
        datasets.build_shift(base, shift="fog", severity=1, seed=0)


def test_content_hash_changes_with_one_pixel():
    base = datasets.build_procedural(generator="shapes", n_per_class=2, size=16, splits={"test": 1.0}, seed=0)
    before = base.content_sha256()
    base.images[0, 0, 0, 0] ^= 1
    assert base.content_sha256() != before
