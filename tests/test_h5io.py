import numpy as np
import pytest

from zooprobe.data import procedural
from zooprobe.io import h5io


@pytest.fixture
def image_set():
    return procedural.build_procedural(generator="shapes", n_per_class=4, size=16,
                                     splits={"train": 0.5, "val": 0.25, "test": 0.25}, seed=0)


def test_image_set_round_trip(tmp_path, image_set):
    path = tmp_path / "set.h5"
    h5io.write_image_set(path, image_set)
    back = h5io.read_image_set(path)
    assert np.array_equal(back.images, image_set.images)
    assert np.array_equal(back.labels, image_set.labels)
    assert back.split.tolist() == image_set.split.tolist()
    assert back.class_names == image_set.class_names
    assert back.attrs["content_sha256"] == image_set.content_sha256()
    labels, split, info = h5io.read_image_labels(path)
    assert np.array_equal(labels, image_set.labels) and info["n"] == 40
    batches = list(h5io.ImageBatches(path, 16))
    assert [len(b) for b in batches] == [16, 16, 8]


def _writer(path, n=10):
    return h5io.FeatureWriter(path, n=n, layer_dims={"a": 3, "b": 5}, labels=np.arange(n),
                              split=np.array(["test"] * n), provenance={"model": "m", "seed": 1})


def test_feature_writer_round_trip_in_batches(tmp_path):
    path = tmp_path / "f.h5"
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(10, 3)), rng.normal(size=(10, 5))
    with _writer(path) as writer:
        writer.write({"a": a[:6], "b": b[:6]})
        writer.write({"a": a[6:], "b": b[6:]})
    features = h5io.read_features(path)
    assert list(features.layers) == ["a", "b"]
    np.testing.assert_allclose(features.layers["a"], a, rtol=1e-6)
    np.testing.assert_allclose(features.layers["b"], b, rtol=1e-6)
    assert features.provenance["model"] == "m" and features.provenance["layers"] == ["a", "b"]
    assert h5io.read_features(path, layers=["b"]).layers.keys() == {"b"}


def test_failed_write_leaves_no_output(tmp_path):
    path = tmp_path / "f.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with _writer(path) as writer:
            writer.write({"a": np.zeros((4, 3)), "b": np.zeros((4, 5))})
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_incomplete_write_leaves_no_output(tmp_path):
    path = tmp_path / "f.h5"
    with pytest.raises(RuntimeError, match="wrote 4 of 10 rows"):
        with _writer(path) as writer:
            writer.write({"a": np.zeros((4, 3)), "b": np.zeros((4, 5))})
    assert list(tmp_path.iterdir()) == []


def test_probe_result_round_trip(tmp_path):
    path = tmp_path / "p.h5"
    predictions = {"id": {"l1": np.array([0, 1, 1]), "l2": np.array([1, 1, 0])}, "ood": {"l1": np.array([2]),
                                                                                       "l2": np.array([0])}}
    labels = {"id": np.array([0, 1, 0]), "ood": np.array([2])}
    head = {"id": np.array([0, 1, 0]), "ood": np.array([1])}
    h5io.write_probe_result(path, predictions=predictions, labels=labels, provenance={"layers": ["l1", "l2"]},
                            head=head)
    back, back_labels, provenance, back_head = h5io.read_probe_result(path)
    assert back_head["ood"].tolist() == [1] and back_head["id"].tolist() == [0, 1, 0]
    assert list(back["id"]) == ["l1", "l2"]
    assert np.array_equal(back["id"]["l2"], predictions["id"]["l2"])
    assert np.array_equal(back_labels["ood"], labels["ood"])


def test_content_sha256_is_the_same_in_any_chunking_and_changes_with_a_label(image_set):
    from zooprobe.data.imageset import content_sha256

    whole = image_set.content_sha256()
    parts = dict(labels=image_set.labels, split=image_set.split, class_names=image_set.class_names, human={}, dense={})
    assert {content_sha256(image_set.images, chunk_rows=rows, **parts) for rows in (1, 7, None, 10_000)} == {whole}
    other = dict(parts, labels=image_set.labels[::-1].copy())
    assert content_sha256(image_set.images, **other) != whole


def test_resume_key_ignores_how_the_job_ran_but_not_what_it_computed():
    from zooprobe.io.records import feature_resume_key

    layout = dict(n=4, dims={"a": 3}, dtype="float32", with_head=False, head_classes=0, labels=np.arange(4))
    key = feature_resume_key({"model": "m", "execution": {"batch_size": 8}}, **layout)
    assert feature_resume_key({"model": "m", "execution": {"batch_size": 64}}, **layout) == key
    assert feature_resume_key({"model": "n", "execution": {"batch_size": 8}}, **layout) != key
    assert feature_resume_key({"model": "m"}, **dict(layout, labels=np.arange(4)[::-1])) != key


def test_writer_lock_refuses_a_second_holder_and_frees_on_release(tmp_path):
    import os

    from zooprobe.io.atomic import PartialInUseError, WriterLock

    first, second = WriterLock(tmp_path / ".f.partial"), WriterLock(tmp_path / ".f.partial")
    first.acquire()
    with pytest.raises(PartialInUseError, match=rf"being written right now by process {os.getpid()} on "):
        second.acquire()
    first.release()
    assert not first.path.exists()
    second.acquire()
    second.release()
