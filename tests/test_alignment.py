"""Human-alignment metrics: RSA, noise ceiling, odd-one-out, agreement with human labels."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zooprobe import alignment, human, stats


def random_features(n: int = 60, d: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_rsa_of_a_model_with_itself_is_one() -> None:
    sim = alignment.similarity_matrix(random_features())
    assert alignment.rsa(sim, sim) == pytest.approx(1.0)
    scored = alignment.bootstrap_rsa(sim, sim, resamples=alignment.stimulus_resamples(60, n_boot=50, seed=0))
    assert scored.estimate.value == pytest.approx(1.0)
    assert np.allclose(scored.replicates, 1.0)


def test_rsa_against_shuffled_human_similarity_is_near_zero() -> None:
    features = random_features(n=80)
    model = alignment.similarity_matrix(features)
    # A "human" matrix that shares the model's structure, plus noise.
    human_sim = model + np.random.default_rng(1).normal(scale=0.05, size=model.shape)
    human_sim = (human_sim + human_sim.T) / 2
    assert alignment.rsa(model, human_sim) > 0.8
    rng = np.random.default_rng(2)
    shuffled = []
    for _ in range(20):
        order = rng.permutation(len(human_sim))
        shuffled.append(alignment.rsa(model, human_sim[np.ix_(order, order)]))
    assert abs(np.mean(shuffled)) < 0.1


def test_correlation_similarity_ignores_each_row_offset() -> None:
    features = random_features()
    shifted = features + np.random.default_rng(3).normal(size=(len(features), 1)) * 10
    np.testing.assert_allclose(alignment.similarity_matrix(features, "correlation"),
                               alignment.similarity_matrix(shifted, "correlation"), atol=1e-9)
    with pytest.raises(ValueError, match=r"valid: \['cosine', 'correlation'\]"):
        alignment.similarity_matrix(features, "euclid")


def test_noise_ceiling_bounds_on_synthetic_subjects() -> None:
    rng = np.random.default_rng(0)
    truth = alignment.similarity_matrix(random_features(n=30))
    subjects = []
    for _ in range(8):
        noisy = -truth + rng.normal(scale=0.3, size=truth.shape)
        subjects.append((noisy + noisy.T) / 2)
    lower, upper = alignment.noise_ceiling(np.stack(subjects))
    assert 0 < lower <= upper <= 1


def test_odd_one_out_on_sampled_triplets() -> None:
    sim = alignment.similarity_matrix(random_features(n=40))
    triplets = alignment.sample_triplets(sim, n=500, seed=0)
    assert triplets.shape == (500, 3)
    assert all(len(set(t)) == 3 for t in triplets)
    # The matrix the triplets came from gets every one right; an unrelated matrix is near chance.
    assert alignment.bootstrap_odd_one_out(sim, triplets, n_boot=50, seed=0).estimate.value == 1.0
    other = alignment.similarity_matrix(random_features(n=40, seed=9))
    assert abs(alignment.bootstrap_odd_one_out(other, triplets, n_boot=50, seed=0).estimate.value - 1 / 3) < 0.08
    np.testing.assert_array_equal(triplets, alignment.sample_triplets(sim, n=500, seed=0))


def test_human_label_agreement_matches_definitions() -> None:
    human_probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    model = np.array([[0.8, 0.2], [0.5, 0.5]])
    scored = alignment.human_label_agreement(model, human_probs, n_boot=20, seed=0)
    expected_ce = (-np.log(0.8) + -np.log(0.5)) / 2
    assert scored["cross_entropy"].estimate.value == pytest.approx(expected_ce)
    assert scored["kl"].estimate.value == pytest.approx(expected_ce - np.log(2) / 2)


def test_things_triplets_loader_on_a_generated_fixture(tmp_path: Path) -> None:
    """The THINGS file layout: a zip of object images in index order, and 'i j k' lines, odd one out last."""
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(5):
            image = Image.fromarray(np.full((40, 40, 3), i * 50, dtype=np.uint8))
            path = tmp_path / f"{i:05d}_object{i}.png"
            image.save(path)
            zf.write(path, f"object_images/{path.name}")
    (tmp_path / "trainset.txt").write_text("0 1 4\n2 3 0\n1 2 3\n")
    built = human.build_things_triplets({"images": archive, "triplets": tmp_path / "trainset.txt"}, size=16)
    assert built.images.shape == (5, 16, 16, 3)
    assert built.class_names[0] == "00000_object0"
    np.testing.assert_array_equal(built.human["triplets"], [[0, 1, 4], [2, 3, 0], [1, 2, 3]])
    (tmp_path / "bad.txt").write_text("0 1 9\n")
    with pytest.raises(ValueError, match="5 images"):
        human.build_things_triplets({"images": archive, "triplets": tmp_path / "bad.txt"}, size=16)


def test_kriegeskorte_noise_ceiling_from_the_16_subjects(assets_dir: Path) -> None:
    built = human.build_kriegeskorte92(root=assets_dir / "kriegeskorte92", size=64)
    assert built.images.shape == (92, 64, 64, 3) and built.human["rdms"].shape == (16, 92, 92)
    lower, upper = alignment.noise_ceiling(built.human["rdms"])
    assert 0 < lower <= upper <= 1


def test_peterson_rsa_against_shuffled_human_matrix_is_near_zero(assets_dir: Path) -> None:
    built = human.build_peterson(root=assets_dir / "peterson2018", domain="animals", size=32)
    target = built.human["similarity"]
    # Pixels as features: weakly related to human similarity, but the shuffle must remove that.
    model = alignment.similarity_matrix(built.images.reshape(len(built.images), -1).astype(float))
    rng = np.random.default_rng(0)
    shuffled = [alignment.rsa(model, target[np.ix_(o, o)]) for o in (rng.permutation(120) for _ in range(20))]
    assert abs(np.mean(shuffled)) < 0.1
    with pytest.raises(ValueError, match="valid"):
        human.build_peterson(root=assets_dir / "peterson2018", domain="planets")


def test_cifar10h_in_shuffled_order_agrees_clearly_worse(assets_dir: Path) -> None:
    human_probs = np.load(assets_dir / "cifar10h" / "cifar10h-probs.npy")
    with np.load(assets_dir / "cifar10-predictions" / "test" / "resnet_basic_110_test.npz") as table:
        model = alignment.softmax(table["logits"])
    right = alignment.human_label_agreement(model, human_probs, n_boot=20, seed=0)
    shuffled = human_probs[np.random.default_rng(0).permutation(len(human_probs))]
    wrong = alignment.human_label_agreement(model, shuffled, n_boot=20, seed=0)
    assert right["cross_entropy"].estimate.ci_high < wrong["cross_entropy"].estimate.ci_low
    assert wrong["cross_entropy"].estimate.value > 3 * right["cross_entropy"].estimate.value
    assert right["entropy_spearman"].estimate.value > 0.2 > abs(wrong["entropy_spearman"].estimate.value)


def test_alignment_results_join_the_agreement_matrix_on_shared_models() -> None:
    from zooprobe.agreement import Ranking, Resampler
    from zooprobe.analyse import agreement_rows, alignment_rows

    rng = np.random.default_rng(0)
    models = ["a", "b", "c", "d", "e"]
    accuracy = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    rankings = {"probe": Ranking(tuple(models), accuracy, accuracy + rng.normal(scale=0.01, size=(50, 5)))}

    def payload(model: str, score: float) -> dict:
        replicates = score + rng.normal(scale=0.01, size=50)
        return {"benchmark": "human", "model": model, "rows": [{"layer": "l1", "metric": "rsa", "value": score,
                                                                 "ci_low": score - 0.02, "ci_high": score + 0.02,
                                                                 "n": 10}],
                "score_metric": "rsa", "selected_layer": "l1", "score": score, "replicates": list(replicates),
                "extra": {"noise_ceiling_lower": 0.5, "noise_ceiling_upper": 0.7}}

    # Alignment falls with accuracy, and one extra model (a prediction table) has no probe score.
    payloads = [payload(m, s) for m, s in zip(models, [0.1, 0.2, 0.3, 0.4, 0.5])] + [payload("table", 0.9)]
    rows = alignment_rows(payloads, rankings)
    ranks = {r["model"]: r["value"] for r in rows if r["metric"] == "rank"}
    assert ranks["table"] == 1 and ranks["a"] == 6
    assert any(r["model"] == "(human)" and r["metric"] == "noise_ceiling_upper" for r in rows)
    agreement = {r["metric"]: r for r in agreement_rows(rankings, units={}, resampler=Resampler(n_boot=50, seed=0))}
    tau = agreement["kendall_tau_given_zoo"]
    assert tau["value"] == pytest.approx(-1.0) and tau["n"] == 5 and "stimuli" in tau["resampled"]
    assert agreement["spearman_rho_given_zoo"]["ci_high"] < 0


def test_things_triplets_as_a_url_source_with_sha256(tmp_path: Path) -> None:
    """The online path: both files fetched from (file://) URLs, checked against their sha256."""
    import hashlib
    import json
    import subprocess
    import sys

    from zooprobe import h5io

    archive = tmp_path / "things_images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(4):
            path = tmp_path / f"{i:05d}_o{i}.png"
            Image.fromarray(np.full((20, 20, 3), i * 60, dtype=np.uint8)).save(path)
            zf.write(path, path.name)
    triplets = tmp_path / "trainset.txt"
    triplets.write_text("0 1 2\n3 2 1\n")
    files = {role: {"url": path.as_uri(), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
             for role, path in (("images", archive), ("triplets", triplets))}
    spec = {"source": "url", "files": files, "format": "things-triplets", "size": 16, "seed": 0}

    def build(spec: dict, out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "zooprobe", "dataset", "--name", "things", "--spec",
                               json.dumps(spec), "--download-dir", str(tmp_path / "downloads"), "--out", str(out)],
                              capture_output=True, text=True)

    assert build(spec, tmp_path / "things.h5").returncode == 0
    built = h5io.read_image_set(tmp_path / "things.h5")
    np.testing.assert_array_equal(built.human["triplets"], [[0, 1, 2], [3, 2, 1]])
    assert built.images.shape == (4, 16, 16, 3)
    # A changed file fails its checksum before anything is built.
    files["triplets"]["sha256"] = "0" * 64
    failed = build(dict(spec, files=files), tmp_path / "other.h5")
    assert failed.returncode != 0 and "sha256" in failed.stderr, failed.stderr
    assert not (tmp_path / "other.h5").exists()
