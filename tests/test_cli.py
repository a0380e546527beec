import json

import numpy as np
import pytest

from zooprobe.io import h5io
from zooprobe.cli.main import main


def test_dataset_command_builds_a_set_and_a_shift_of_it(tmp_path):
    spec = {"source": "procedural", "generator": "shapes", "n_per_class": 3, "size": 16, "seed": 0,
            "splits": {"train": 0.5, "test": 0.5}}
    main(["dataset", "--name", "s", "--spec", json.dumps(spec), "--out", str(tmp_path / "s.h5")])
    shift = {"source": "shift", "of": "s", "shift": "pixelate", "severity": 2, "seed": 0}
    main(["dataset", "--name", "p", "--spec", json.dumps(shift), "--base", str(tmp_path / "s.h5"),
          "--out", str(tmp_path / "p.h5")])
    base, shifted = h5io.read_image_set(tmp_path / "s.h5"), h5io.read_image_set(tmp_path / "p.h5")
    assert base.attrs["name"] == "s" and base.attrs["params"] == spec
    assert len(shifted.labels) == (base.split == "test").sum()
    assert shifted.attrs["of_sha256"] == base.attrs["content_sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.h5", "s.h5"]


def _features(path, class_names, split):
    n = len(split)
    provenance = {"class_names": class_names, "weights_sha256": "0" * 64, "pooling": "avg", "preprocessing": {},
                  "arch": "a", "zooprobe_version": "test"}
    with h5io.FeatureWriter(path, n=n, layer_dims={"l": 2}, labels=np.arange(n) % 2, split=np.array(split),
                            provenance=provenance) as writer:
        writer.write({"l": np.random.default_rng(0).normal(size=(n, 2))})


def test_probe_refuses_an_ood_set_with_other_classes(tmp_path):
    _features(tmp_path / "id.h5", ["a", "b"], ["train"] * 4 + ["val"] * 2 + ["test"] * 2)
    _features(tmp_path / "ood.h5", ["x", "y"], ["test"] * 2)
    settings = json.dumps({"c_grid": [1.0], "max_iter": 10, "seed": 0})
    with pytest.raises(SystemExit, match="must share the ID label space"):
        main(["probe", "--model", "m", "--task", "t", "--settings", settings, "--id-name", "id",
              "--id", str(tmp_path / "id.h5"), "--ood", f"ood={tmp_path / 'ood.h5'}", "--out", str(tmp_path / "p.h5")])
    assert not (tmp_path / "p.h5").exists()


def test_any_source_checks_an_expected_content_sha256_and_writes_nothing_on_mismatch(tmp_path):
    from zooprobe.io.fetch import ChecksumError

    spec = {"source": "packaged", "name": "sklearn:digits", "size": 8, "seed": 0, "splits": {"test": 1.0}}
    main(["dataset", "--name", "d", "--spec", json.dumps(spec), "--out", str(tmp_path / "d.h5")])
    good = h5io.read_image_set(tmp_path / "d.h5").attrs["content_sha256"]
    main(["dataset", "--name", "d", "--spec", json.dumps(dict(spec, sha256=good)), "--out", str(tmp_path / "ok.h5")])
    assert (tmp_path / "ok.h5").exists()
    with pytest.raises(ChecksumError) as error:
        main(["dataset", "--name", "d", "--spec", json.dumps(dict(spec, sha256="a" * 64)),
              "--out", str(tmp_path / "bad.h5")])
    assert "'d'" in str(error.value) and "a" * 64 in str(error.value) and good in str(error.value)
    assert not (tmp_path / "bad.h5").exists() and not list(tmp_path.glob(".bad.h5*"))
