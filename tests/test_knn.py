"""The weighted k-NN probe (probe: knn) against independent computations: a per-query loop and scikit-learn."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.neighbors import KNeighborsClassifier

from zooprobe.analysis.scores import ProbeRun, score_table
from zooprobe.io.h5io import Features
from zooprobe.params.config import ConfigError, check_config
from zooprobe.probes import knn
from zooprobe.probes.knn import TEMPERATURE, fit_knn_probe, neighbour_votes, unit_rows
from zooprobe.probes.linear import fit_probe, probe_features

from workflow_helpers import REPO


def _blobs(rng: np.random.Generator, n: int, *, classes: int = 4, dim: int = 16, separation: float = 1.5):
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim)) * separation
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def _votes_by_loop(train, train_labels, queries, *, k, num_classes, temperature):
    """DINO's rule written out for one query at a time, with nothing shared with probes.knn."""
    out = np.zeros((len(queries), num_classes))
    train = [np.asarray(row, float) / np.linalg.norm(row) for row in train]
    for i, query in enumerate(queries):
        query = np.asarray(query, float) / np.linalg.norm(query)
        similarities = sorted(((float(query @ row), j) for j, row in enumerate(train)), reverse=True)[:k]
        for similarity, j in similarities:
            out[i, train_labels[j]] += np.exp(similarity / temperature)
    return out


def test_votes_equal_a_per_query_loop_and_scikit_learns_weighted_cosine_knn():
    rng = np.random.default_rng(0)
    train_x, train_y = _blobs(rng, 300)
    queries, _ = _blobs(rng, 50)
    for k in (1, 7, 20):
        votes = neighbour_votes(train=unit_rows(train_x), train_labels=train_y, queries=unit_rows(queries), ks=(k,),
                                num_classes=4)[k]
        by_loop = _votes_by_loop(train_x, train_y, queries, k=k, num_classes=4, temperature=TEMPERATURE)
        # The module shifts every similarity by 1 before exp, which scales a row's votes by exp(-1/T).
        np.testing.assert_allclose(votes, by_loop * np.exp(-1 / TEMPERATURE), rtol=1e-5)
        reference = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute",
                                         weights=lambda d: np.exp((1 - d) / TEMPERATURE)).fit(train_x, train_y)
        model = knn.KnnClassifier(unit_rows(train_x), train_y, 4, k)
        np.testing.assert_allclose(model.predict_proba(queries), reference.predict_proba(queries), atol=1e-5)
        np.testing.assert_array_equal(model.predict(queries), reference.predict(queries))


def test_chunked_queries_give_the_unchunked_votes(monkeypatch):
    rng = np.random.default_rng(1)
    train_x, train_y = _blobs(rng, 120)
    queries, _ = _blobs(rng, 45)
    whole = neighbour_votes(train=unit_rows(train_x), train_labels=train_y, queries=unit_rows(queries),
                            ks=(5, 30), num_classes=4)
    monkeypatch.setattr(knn, "QUERY_CHUNK", 7)
    chunked = neighbour_votes(train=unit_rows(train_x), train_labels=train_y, queries=unit_rows(queries),
                              ks=(5, 30), num_classes=4)
    for k in (5, 30):
        np.testing.assert_allclose(chunked[k], whole[k], rtol=1e-6)


def test_k_is_the_best_on_val_ties_go_to_the_smaller_and_a_k_past_the_train_rows_uses_them_all():
    rng = np.random.default_rng(2)
    train_x, train_y = _blobs(rng, 200, separation=0.6)
    val_x, val_y = _blobs(rng, 100, separation=0.6)
    fit = fit_knn_probe(train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, k_grid=(1, 5, 25))
    assert set(fit.val_accuracy_by_k) == {1, 5, 25}
    best = max(fit.val_accuracy_by_k.values())
    assert fit.val_accuracy == best and fit.k == min(k for k, acc in fit.val_accuracy_by_k.items() if acc == best)
    assert fit.model.k == fit.k
    # Every k at or above the 200 training rows is the same vote of all rows: a tie, won by the smallest.
    everything = fit_knn_probe(train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, k_grid=(500, 200, 300))
    assert everything.k == 200 and len(set(everything.val_accuracy_by_k.values())) == 1
    with pytest.raises(ValueError, match="positive neighbour counts"):
        fit_knn_probe(train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, k_grid=(0, 5))
    with pytest.raises(ValueError, match="train split is empty"):
        fit_knn_probe(train_x=train_x[:0], train_y=train_y[:0], val_x=val_x, val_y=val_y)


def test_separable_features_are_classified_and_noise_stays_near_chance():
    rng = np.random.default_rng(3)
    train_x, train_y = _blobs(rng, 400, separation=4.0)
    test_x, test_y = _blobs(np.random.default_rng(3), 400, separation=4.0)  # the same centres
    fit = fit_knn_probe(train_x=train_x, train_y=train_y, val_x=test_x[:200], val_y=test_y[:200])
    assert (fit.model.predict(test_x[200:]) == test_y[200:]).mean() > 0.95
    noise = rng.normal(size=(400, 16)).astype(np.float32)
    labels = rng.integers(0, 4, 400)
    chance = fit_knn_probe(train_x=noise[:200], train_y=labels[:200], val_x=noise[200:300], val_y=labels[200:300])
    assert abs((chance.model.predict(noise[300:]) == labels[300:]).mean() - 0.25) < 0.15


def _feature_set(rng, split, classes):
    n = len(split)
    labels = np.arange(n) % len(classes)
    layers = {name: np.eye(len(classes), 6)[labels] * 3.0 * scale + rng.normal(size=(n, 6))
              for name, scale in (("early", 0.3), ("late", 1.0))}
    provenance = {"class_names": list(classes), "layers": list(layers), "weights_sha256": "w", "pooling": "avg",
                  "preprocessing": {}, "arch": "a", "zooprobe_version": "v", "num_classes": len(classes)}
    return Features(layers, labels, np.array(split), provenance, head_pred=None)


def test_the_probe_stage_runs_knn_per_layer_and_records_k_not_c():
    rng = np.random.default_rng(4)
    id_set = _feature_set(rng, ["train"] * 60 + ["val"] * 30 + ["test"] * 30, "abc")
    ood = _feature_set(rng, ["test"] * 21, "abc")
    result = probe_features(model="m", task="t", id_name="id", id_features=id_set, ood={"ood": ood},
                            transfer={}, settings={"c_grid": [0.1], "max_iter": 10, "seed": 0}, score_head=False,
                            run={"zooprobe_version": "x"}, kind="knn")
    provenance = result.provenance
    assert provenance["probe"] == "knn" and provenance["chosen_c"] == {}
    assert set(provenance["chosen_k"]) == {"early", "late"} and set(provenance["chosen_k"].values()) <= set(knn.K_GRID)
    assert provenance["k_grid"] == list(knn.K_GRID) and provenance["knn_temperature"] == TEMPERATURE
    train, val = id_set.split == "train", id_set.split == "val"
    direct = fit_probe(kind="knn", train_x=id_set.layers["late"][train], train_y=id_set.labels[train],
                       val_x=id_set.layers["late"][val], val_y=id_set.labels[val], c_grid=(0.1,), max_iter=10, seed=0)
    np.testing.assert_array_equal(result.predictions["ood"]["late"], direct.model.predict(ood.layers["late"]))
    assert (result.predictions["id"]["late"] == result.labels["id"]).mean() > 0.9


def test_two_tasks_scoring_one_benchmark_fail_naming_both_and_a_knn_task_beside_a_linear_one_passes():
    config = yaml.safe_load((REPO / "params.yaml").read_text())
    beside = copy.deepcopy(config)
    beside["probe"]["tasks"] = {name: entry for name, entry in beside["probe"]["tasks"].items()
                                if entry.get("probe") != "knn"}
    beside["probe"]["tasks"]["extra_knn"] = {"probe": "knn", "id": "digits", "ood": ["digits_blur"]}
    check_config(beside)  # digits and digits[knn]: two benchmarks
    clash = copy.deepcopy(beside)
    clash["probe"]["tasks"]["shapes_again"] = {"probe": "sklearn", "id": "shapes"}
    with pytest.raises(ConfigError, match="'shapes' is already scored by task 'shapes' as benchmark 'shapes'"):
        check_config(clash)
    knn_clash = copy.deepcopy(beside)
    knn_clash["probe"]["tasks"]["digits_knn_again"] = {"probe": "knn", "id": "digits"}
    with pytest.raises(ConfigError, match=r"'digits' is already scored by task 'extra_knn' as benchmark 'digits\[knn\]'"):
        check_config(knn_clash)
    ood_clash = copy.deepcopy(beside)
    ood_clash["probe"]["tasks"]["digits"]["ood"] = ["digits_blur", "shapes_noise"]
    with pytest.raises(ConfigError, match="probe.tasks.digits: 'shapes_noise' is already scored by task 'shapes'"):
        check_config(ood_clash)


def _paired_runs(kind, rng_seed=0, n=300):
    """Three models' runs of one task; the same seed gives the same predictions for either kind."""
    rng = np.random.default_rng(rng_seed)
    labels = {"id": rng.integers(0, 3, n), "ood": rng.integers(0, 3, n)}
    runs = []
    for model, skill in (("a", 0.9), ("b", 0.7), ("c", 0.5)):
        predictions = {name: {"l": np.where(rng.random(n) < skill, y, (y + 1) % 3)} for name, y in labels.items()}
        runs.append(ProbeRun(model, f"t_{kind}", predictions, labels,
                             {"layers": ["l"], "val_accuracy": {"l": skill}, "id_eval": "id", "probe": kind}))
    return runs


def test_a_knn_probe_is_its_own_benchmark_resampled_with_the_sets_draw():
    # Identical predictions under both kinds: with one draw per set, every interval is identical too;
    # independent draws would give other bounds.
    scores = score_table(_paired_runs("linear") + _paired_runs("knn"), n_boot=1000, seed=0)
    chosen = scores[scores.metric == "score"]
    assert sorted(chosen.benchmark.unique()) == ["id", "id[knn]", "ood", "ood[knn]"]
    for name in ("id", "ood"):
        linear = chosen[chosen.benchmark == name].set_index("model")[["value", "ci_low", "ci_high"]]
        knn_rows = chosen[chosen.benchmark == f"{name}[knn]"].set_index("model")[["value", "ci_low", "ci_high"]]
        pd.testing.assert_frame_equal(linear, knn_rows)
    pair = scores[scores.benchmark.isin(["id~id[knn]", "id[knn]~id"]) & (scores.metric == "kendall_tau_given_zoo")]
    assert len(pair) == 1 and pair.value.iloc[0] == pytest.approx(1.0)
