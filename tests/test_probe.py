import numpy as np
import pytest

from zooprobe.analysis import stats
from zooprobe.data.label_space import LabelSpaceError
from zooprobe.io.h5io import Features
from zooprobe.probes.inputs import ProbeInputError
from zooprobe.probes.linear import fit_linear_probe, probe_every_layer, probe_features
from zooprobe.probes.rows import layer_row


def _blobs(rng, n, separation):
    labels = rng.integers(0, 3, n)
    centres = np.eye(3, 8) * separation
    return centres[labels] + rng.normal(size=(n, 8)), labels


def test_probe_separates_separable_classes_and_records_the_sweep():
    rng = np.random.default_rng(0)
    (x, y), (vx, vy), (tx, ty) = (_blobs(rng, n, 6.0) for n in (300, 100, 200))
    fit = fit_linear_probe(train_x=x, train_y=y, val_x=vx, val_y=vy, c_grid=(0.01, 1.0), seed=0)
    assert set(fit.val_accuracy_by_c) == {0.01, 1.0}
    assert fit.val_accuracy == max(fit.val_accuracy_by_c.values())
    assert (fit.model.predict(tx) == ty).mean() > 0.95


def test_probe_on_random_features_stays_near_chance():
    rng = np.random.default_rng(1)
    x, vx, tx = (rng.normal(size=(n, 20)) for n in (300, 100, 600))
    y, vy, ty = (rng.integers(0, 3, n) for n in (300, 100, 600))
    fit = fit_linear_probe(train_x=x, train_y=y, val_x=vx, val_y=vy, seed=0)
    assert abs((fit.model.predict(tx) == ty).mean() - 1 / 3) < 0.08


def test_probe_is_deterministic():
    rng = np.random.default_rng(2)
    x, y = _blobs(rng, 200, 2.0)
    first = fit_linear_probe(train_x=x, train_y=y, val_x=x, val_y=y, seed=0).model.predict(x)
    again = fit_linear_probe(train_x=x, train_y=y, val_x=x, val_y=y, seed=0).model.predict(x)
    assert np.array_equal(first, again)


# ----------------------------------------------------------------------------- the probe stage
SWEEP = {"c_grid": [0.1, 1.0], "max_iter": 100, "seed": 0}


def _feature_set(rng, split, classes, *, separation=3.0, head=True, version="v1"):
    n = len(split)
    labels = np.arange(n) % len(classes)
    layers = {name: np.eye(len(classes), 6)[labels] * separation * scale + rng.normal(size=(n, 6))
              for name, scale in (("early", 0.3), ("late", 1.0))}
    provenance = {"class_names": list(classes), "layers": list(layers), "weights_sha256": "w", "pooling": "avg",
                  "preprocessing": {}, "arch": "a", "zooprobe_version": version, "num_classes": len(classes)}
    return Features(layers, labels, np.array(split), provenance, head_pred=labels[::-1].copy() if head else None)


def test_probe_features_scores_id_test_rows_every_ood_row_and_fits_transfer_probes_of_their_own():
    rng = np.random.default_rng(0)
    split = ["train"] * 60 + ["val"] * 30 + ["test"] * 30
    id_set = _feature_set(rng, split, "abc")
    ood = _feature_set(rng, ["test"] * 21, "abc", separation=1.0, version="v2")
    other = _feature_set(rng, ["test"] * 30, "pq", head=False)
    result = probe_features(model="m", task="t", id_name="id", id_features=id_set, ood={"ood": ood},
                            transfer={"other": other}, settings=SWEEP, score_head=True, run={"zooprobe_version": "x"})
    test = id_set.split == "test"
    direct = probe_every_layer(layers=["early", "late"],
                               train_x={k: v[id_set.split == "train"] for k, v in id_set.layers.items()},
                               train_y=id_set.labels[id_set.split == "train"],
                               val_x={k: v[id_set.split == "val"] for k, v in id_set.layers.items()},
                               val_y=id_set.labels[id_set.split == "val"],
                               evaluate={"id": {k: v[test] for k, v in id_set.layers.items()}, "ood": ood.layers},
                               c_grid=(0.1, 1.0), max_iter=100, seed=0)
    for name in ("id", "ood"):
        for layer in ("early", "late"):
            np.testing.assert_array_equal(result.predictions[name][layer], direct.predictions[name][layer])
    np.testing.assert_array_equal(result.labels["id"], id_set.labels[test])
    np.testing.assert_array_equal(result.labels["ood"], ood.labels)
    np.testing.assert_array_equal(result.head["id"], id_set.head_pred[test])
    predictions, labels, rows = result.transfer["other"]
    assert set(predictions) == {"early", "late"} and len(labels) == len(rows) and set(labels) <= {0, 1}
    # A test-only transfer set is carved into splits of its own, and provenance says how.
    assert "carved" in result.provenance["transfer"]["other"]["split"]
    assert result.provenance["feature_versions"] == {"id": "v1", "ood": "v2", "other": "v1"}
    assert result.provenance["chosen_c"] == direct.chosen_c and result.provenance["zooprobe_version"] == "x"
    assert result.provenance["head_scored"] is True


def test_probe_features_refuses_an_ood_set_with_other_classes_and_a_missing_head():
    rng = np.random.default_rng(1)
    split = ["train"] * 12 + ["val"] * 6 + ["test"] * 6
    id_set, other = _feature_set(rng, split, "ab"), _feature_set(rng, ["test"] * 6, "xy")
    common = dict(model="m", task="shapes", id_name="id", id_features=id_set, transfer={}, settings=SWEEP, run={})
    with pytest.raises(LabelSpaceError, match=r"'o' has classes \['x', 'y'\].*probe.tasks.shapes.transfer"):
        probe_features(ood={"o": other}, score_head=False, **common)
    headless = _feature_set(rng, ["test"] * 6, "ab", head=False)
    with pytest.raises(ProbeInputError, match=r"--score-head: no head predictions in the features of \['o'\]"):
        probe_features(ood={"o": headless}, score_head=True, **common)
    assert probe_features(ood={"o": headless}, score_head=False, **common).head is None


def test_layer_row_has_the_probe_columns_only():
    row = layer_row("l", "rsa", stats.Estimate(0.5, 0.25, 0.75, 9, "percentile", "stimuli"))
    assert row == {"layer": "l", "metric": "rsa", "value": 0.5, "ci_low": 0.25, "ci_high": 0.75, "n": 9}


def test_probe_commands_keep_their_options_with_the_shared_ones_from_parent_parsers():
    """The rules call these options; moving shared ones into parent parsers must not change any."""
    import argparse

    from zooprobe.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    expected = {
        "probe": ({"--model", "--task", "--settings", "--id-name", "--id", "--out"},
                  {"--ood", "--transfer", "--score-head", "--kind", "--device", "--published", "--threads"}),
        "align": ({"--model", "--benchmark", "--settings", "--data", "--features", "--out"}, set()),
        "dense-probe": ({"--model", "--dataset", "--settings", "--data", "--features", "--out"}, set()),
        "align-tables": ({"--benchmark", "--settings", "--data", "--tables", "--out"}, set()),
    }
    for name, (required, optional) in expected.items():
        actions = [a for a in commands[name]._actions if a.option_strings and a.dest != "help"]
        assert {a.option_strings[0] for a in actions if a.required} == required, name
        assert {a.option_strings[0] for a in actions if not a.required} == optional, name
    args = commands["align"].parse_args(["--model", "m", "--benchmark", "b", "--settings", '{"seed": 1}', "--data", "d",
                                          "--features", "f", "--out", "o"])
    assert args.settings == {"seed": 1}
