"""The cka stage: CKA between models at their selected layers and between layers, from the stage's files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zooprobe.analysis.representations import linear_cka
from zooprobe.analysis.similarity import SimilarityInputError, similarity_rows, task_similarity, write_task_similarity
from zooprobe.io import h5io

N_ID, N_OOD = 60, 25


def _features(path, layers, split, labels):
    with h5io.FeatureWriter(path, n=len(labels), layer_dims={k: v.shape[1] for k, v in layers.items()}, labels=labels,
                            split=split, provenance={"layers": list(layers)}) as writer:
        writer.write(layers)


def _zoo(tmp_path, rng):
    """Three models' features on an ID set (train/val/test) and an OOD set, and their probe results."""
    split = np.array(["train"] * 20 + ["val"] * 15 + ["test"] * 25)
    labels = rng.integers(0, 3, N_ID)
    base_id, base_ood = rng.normal(size=(N_ID, 4)), rng.normal(size=(N_OOD, 4))
    arrays, probes, features = {}, {}, {}
    for model, selected, mix in (("a", "late", 0.1), ("b", "early", 0.5), ("c", "late", 2.0)):
        layers_id = {"early": base_id @ rng.normal(size=(4, 5)) + mix * rng.normal(size=(N_ID, 5)),
                     "late": np.tanh(base_id) @ rng.normal(size=(4, 3)) + mix * rng.normal(size=(N_ID, 3))}
        layers_ood = {"early": base_ood @ rng.normal(size=(4, 5)), "late": np.tanh(base_ood) @ rng.normal(size=(4, 3))}
        arrays[model] = (layers_id, layers_ood, selected)
        features[model] = {"id": tmp_path / f"{model}-id.h5", "ood": tmp_path / f"{model}-ood.h5"}
        _features(features[model]["id"], layers_id, split, labels)
        _features(features[model]["ood"], layers_ood, np.array(["test"] * N_OOD), rng.integers(0, 3, N_OOD))
        test = split == "test"
        val = {"early": 0.9 if selected == "early" else 0.5, "late": 0.9 if selected == "late" else 0.5}
        probes[model] = tmp_path / f"{model}-probe.h5"
        h5io.write_probe_result(probes[model], predictions={"id": {k: labels[test] for k in val},
                                                            "ood": {k: np.zeros(N_OOD, int) for k in val}},
                                labels={"id": labels[test], "ood": np.zeros(N_OOD, int)},
                                provenance={"model": model, "task": "t", "id_eval": "id", "layers": ["early", "late"],
                                            "val_accuracy": val, "probe": "linear"})
    return arrays, probes, features, split == "test"


@pytest.mark.parametrize("estimator", ["biased", "debiased"])
def test_cka_matrices_equal_cka_on_the_scored_rows_at_each_models_selected_layer(tmp_path, estimator):
    arrays, probes, features, test = _zoo(tmp_path, np.random.default_rng(0))
    record = task_similarity(task="t", probes=probes, features=features, estimator=estimator, chunk_rows=7)
    debiased = estimator == "debiased"
    by_set = {entry["set"]: entry for entry in record["between_models"]}
    assert by_set["id"]["layers"] == {"a": "late", "b": "early", "c": "late"}
    for name, index, rows in (("id", 0, test), ("ood", 1, slice(None))):
        entry = by_set[name]
        assert entry["names"] == ["a", "b", "c"] and entry["n"] == len(arrays["a"][index]["early"][rows])
        for i, a in enumerate("abc"):
            for j, b in enumerate("abc"):
                x = arrays[a][index][arrays[a][2]][rows].astype(np.float32)
                y = arrays[b][index][arrays[b][2]][rows].astype(np.float32)
                assert entry["cka"][i][j] == pytest.approx(linear_cka(x, y, debiased=debiased), abs=1e-6)
    layers = {(entry["model"], entry["set"]): entry for entry in record["between_layers"]}
    assert len(layers) == 3 * 2  # every model on every set
    for name, index, rows in (("id", 0, test), ("ood", 1, slice(None))):
        x, y = (arrays["b"][index][layer][rows].astype(np.float32) for layer in ("early", "late"))
        assert layers[("b", name)]["names"] == ["early", "late"]
        assert layers[("b", name)]["cka"][0][1] == pytest.approx(linear_cka(x, y, debiased=debiased), abs=1e-6)


def test_rows_name_the_pairs_and_the_estimator_and_bad_inputs_fail_early(tmp_path):
    arrays, probes, features, _ = _zoo(tmp_path, np.random.default_rng(1))
    out = tmp_path / "cka.json"
    write_task_similarity(out, task="t", probes=probes, features=features)
    rows = similarity_rows([json.loads(out.read_text())])
    models = [r for r in rows if r["metric"] == "cka"]
    assert sorted({r["model"] for r in models}) == ["a~b", "a~c", "b~c"] and {r["benchmark"] for r in models} == {"id", "ood"}
    assert all(r["method"].startswith("linear CKA (Kornblith et al. 2019), biased") for r in rows)
    assert {r["layer"] for r in rows if r["metric"] == "cka_layers"} == {"early~late"}
    with pytest.raises(ValueError, match=r"valid choices are \['biased', 'debiased'\]"):
        task_similarity(task="t", probes=probes, features=features, estimator="unbiased")
    with pytest.raises(SimilarityInputError, match="not 'a' on 'other'"):
        task_similarity(task="other", probes=probes, features=features)
    missing = {model: {"id": paths["id"]} for model, paths in features.items()}
    with pytest.raises(SimilarityInputError, match="no features of 'a' on 'ood'"):
        task_similarity(task="t", probes=probes, features=missing)


def test_an_own_head_task_compares_its_models_at_the_deepest_extracted_layer(tmp_path):
    arrays, probes, features, _ = _zoo(tmp_path, np.random.default_rng(2))
    for model, path in probes.items():
        predictions, labels, provenance, _ = h5io.read_probe_result(path)
        h5io.write_probe_result(path, predictions={k: {"head": v["late"]} for k, v in predictions.items()},
                                labels=labels, provenance=dict(provenance, layers=["head"], val_accuracy={"head": 0.5},
                                                               probe="head"))
    record = task_similarity(task="t", probes=probes, features=features)
    assert record["between_models"][0]["layers"] == {"a": "late", "b": "late", "c": "late"}
