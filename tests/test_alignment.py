"""Human-alignment metrics: RSA, noise ceiling, odd-one-out, agreement with human labels."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zooprobe.probes.alignment import human_labels, layer_choice, odd_one_out, representation, resampling, rsa
from zooprobe.data import human
from zooprobe.analysis import stats


def random_features(n: int = 60, d: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_rsa_of_a_model_with_itself_is_one() -> None:
    sim = rsa.similarity_matrix(random_features())
    assert rsa.rsa(sim, sim) == pytest.approx(1.0)
    scored = rsa.bootstrap_rsa(sim, sim, resamples=resampling.stimulus_resamples(60, n_boot=50, seed=0))
    assert scored.estimate.value == pytest.approx(1.0)
    assert np.allclose(scored.replicates, 1.0)


def test_rsa_against_shuffled_human_similarity_is_near_zero() -> None:
    features = random_features(n=80)
    model = rsa.similarity_matrix(features)
    # A "human" matrix that shares the model's structure, plus noise.
    human_sim = model + np.random.default_rng(1).normal(scale=0.05, size=model.shape)
    human_sim = (human_sim + human_sim.T) / 2
    assert rsa.rsa(model, human_sim) > 0.8
    rng = np.random.default_rng(2)
    shuffled = []
    for _ in range(20):
        order = rng.permutation(len(human_sim))
        shuffled.append(rsa.rsa(model, human_sim[np.ix_(order, order)]))
    assert abs(np.mean(shuffled)) < 0.1


def test_correlation_similarity_ignores_each_row_offset() -> None:
    features = random_features()
    shifted = features + np.random.default_rng(3).normal(size=(len(features), 1)) * 10
    np.testing.assert_allclose(rsa.similarity_matrix(features, "correlation"),
                               rsa.similarity_matrix(shifted, "correlation"), atol=1e-9)
    with pytest.raises(ValueError, match=r"valid: \['cosine', 'correlation'\]"):
        rsa.similarity_matrix(features, "euclid")


def test_noise_ceiling_bounds_on_synthetic_subjects() -> None:
    rng = np.random.default_rng(0)
    truth = rsa.similarity_matrix(random_features(n=30))
    subjects = []
    for _ in range(8):
        noisy = -truth + rng.normal(scale=0.3, size=truth.shape)
        subjects.append((noisy + noisy.T) / 2)
    lower, upper = rsa.noise_ceiling(np.stack(subjects))
    assert 0 < lower <= upper <= 1


def test_odd_one_out_on_sampled_triplets() -> None:
    sim = rsa.similarity_matrix(random_features(n=40))
    triplets = odd_one_out.sample_triplets(sim, n=500, seed=0)
    assert triplets.shape == (500, 3)
    assert all(len(set(t)) == 3 for t in triplets)
    # The matrix the triplets came from gets every one right; an unrelated matrix is near chance.
    assert odd_one_out.bootstrap_odd_one_out(sim, triplets, n_boot=50, seed=0).estimate.value == 1.0
    other = rsa.similarity_matrix(random_features(n=40, seed=9))
    assert abs(odd_one_out.bootstrap_odd_one_out(other, triplets, n_boot=50, seed=0).estimate.value - 1 / 3) < 0.08
    np.testing.assert_array_equal(triplets, odd_one_out.sample_triplets(sim, n=500, seed=0))


def test_human_label_agreement_matches_definitions() -> None:
    human_probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    model = np.array([[0.8, 0.2], [0.5, 0.5]])
    scored = human_labels.human_label_agreement(model, human_probs, n_boot=20, seed=0)
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
    lower, upper = rsa.noise_ceiling(built.human["rdms"])
    assert 0 < lower <= upper <= 1


def test_peterson_rsa_against_shuffled_human_matrix_is_near_zero(assets_dir: Path) -> None:
    built = human.build_peterson(root=assets_dir / "peterson2018", domain="animals", size=32)
    target = built.human["similarity"]
    # Pixels as features: weakly related to human similarity, but the shuffle must remove that.
    model = rsa.similarity_matrix(built.images.reshape(len(built.images), -1).astype(float))
    rng = np.random.default_rng(0)
    shuffled = [rsa.rsa(model, target[np.ix_(o, o)]) for o in (rng.permutation(120) for _ in range(20))]
    assert abs(np.mean(shuffled)) < 0.1
    with pytest.raises(ValueError, match="valid"):
        human.build_peterson(root=assets_dir / "peterson2018", domain="planets")


def test_cifar10h_in_shuffled_order_agrees_clearly_worse(assets_dir: Path) -> None:
    human_probs = np.load(assets_dir / "cifar10h" / "cifar10h-probs.npy")
    with np.load(assets_dir / "cifar10-predictions" / "test" / "resnet_basic_110_test.npz") as table:
        model = human_labels.softmax(table["logits"])
    right = human_labels.human_label_agreement(model, human_probs, n_boot=20, seed=0)
    shuffled = human_probs[np.random.default_rng(0).permutation(len(human_probs))]
    wrong = human_labels.human_label_agreement(model, shuffled, n_boot=20, seed=0)
    assert right["cross_entropy"].estimate.ci_high < wrong["cross_entropy"].estimate.ci_low
    assert wrong["cross_entropy"].estimate.value > 3 * right["cross_entropy"].estimate.value
    assert right["entropy_spearman"].estimate.value > 0.2 > abs(wrong["entropy_spearman"].estimate.value)


def test_alignment_results_join_the_agreement_matrix_on_shared_models() -> None:
    from zooprobe.analysis.agreement import Ranking, Resampler
    from zooprobe.analysis.comparisons import agreement_rows
    from zooprobe.analysis.scores import alignment_rows

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

    from zooprobe.io import h5io

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


# ----------------------------------------------------------------------------- issue 18: like with like
def simulated_subjects(*, n: int = 60, subjects: int = 16, noise: float = 0.5, seed: int = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """A true RDM (cosine distance of random features) and per-subject RDMs = truth + independent noise."""
    rng = np.random.default_rng(seed)
    truth = 1 - rsa.similarity_matrix(rng.normal(size=(n, 10)))
    noise_matrices = rng.normal(scale=noise, size=(subjects, n, n))
    return truth, truth + (noise_matrices + noise_matrices.transpose(0, 2, 1)) / 2


def test_subject_mean_rsa_matches_its_definition_and_the_weighted_replicates_match_explicit_draws() -> None:
    truth, rdms = simulated_subjects(n=30, subjects=5)
    model = rsa.similarity_matrix(np.random.default_rng(4).normal(size=(30, 6))) - truth
    scorer = layer_choice.LayerScorer(("m",), model[None], -rdms.mean(axis=0), -rdms,
                                   odd_one_out.sample_triplets(-rdms.mean(axis=0), n=200, seed=0))
    observed = scorer.score(np.ones((1, 30)))
    upper = np.triu_indices(30, k=1)
    expected = np.mean([stats.spearman_rho(model[upper], -rdm[upper]) for rdm in rdms])
    assert observed["rsa_subject_mean"][0, 0] == pytest.approx(expected)
    assert observed["rsa"][0, 0] == pytest.approx(rsa.rsa(model, -rdms.mean(axis=0)))
    assert observed["rsa_fraction_of_ceiling"][0, 0] == pytest.approx(expected / rsa.noise_ceiling_estimate(rdms))
    # A resample's pair weights (products of draw counts) give the RSA of the explicitly repeated pairs.
    resamples = resampling.stimulus_resamples(30, n_boot=15, seed=2)
    explicit = rsa.bootstrap_rsa(model, -rdms.mean(axis=0), resamples=resamples).replicates
    weighted = scorer.score(resampling.stimulus_counts(30, n_boot=15, seed=2))["rsa"][:, 0]
    np.testing.assert_allclose(weighted, explicit, atol=1e-12)


@pytest.mark.parametrize("noise", [0.5, 0.9])
def test_a_model_equal_to_the_true_rdm_reaches_the_ceiling_on_the_subject_mean(noise: float) -> None:
    """16 subjects = true RDM + noise, 60 stimuli: the truth's subject-mean RSA lies within the Nili bounds
    and its fraction of ceiling is about 1, for quiet subjects and for subjects as noisy as issue 18's
    (bounds about [0.38, 0.48]), where dividing by the upper bound would give under 0.9.

    The group-mean RSA of the same model exceeds the upper bound (it is not what the ceiling bounds);
    dividing it by the ceiling gave the 1.4-1.8 'fractions' of issue 18.
    """
    truth, rdms = simulated_subjects(noise=noise)
    lower, upper = rsa.noise_ceiling(rdms)
    if noise > 1:
        assert 0.33 < lower < upper < 0.53  # the noise level of the simulation
    result = representation.align_similarities({"truth": -truth}, {"rdms": rdms}, layer_choice="last", n_triplets=500,
                                          n_boot=100, seed=0)
    rows = {r["metric"]: r for r in result.rows}
    assert result.score_metric == "rsa_subject_mean" and result.score == rows["rsa_subject_mean"]["value"]
    assert lower <= rows["rsa_subject_mean"]["value"] <= upper
    fraction = rows["rsa_fraction_of_ceiling"]
    assert 0.9 <= fraction["value"] <= 1.1 and fraction["ci_low"] <= 1.0 <= fraction["ci_high"]
    estimate = rsa.noise_ceiling_estimate(rdms)
    assert lower <= estimate <= upper
    assert fraction["value"] == pytest.approx(rows["rsa_subject_mean"]["value"] / estimate)
    if noise > 1:
        assert rows["rsa_subject_mean"]["value"] / upper < 0.9  # why the upper bound is not the divisor
    assert rows["rsa"]["value"] / upper > 1.2
    assert result.extra == {"noise_ceiling_lower": lower, "noise_ceiling_upper": upper,
                            "noise_ceiling_estimate": estimate}


def _triplet_world(seed: int = 0, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 8))
    human_sim = rsa.similarity_matrix(features)
    model_sim = rsa.similarity_matrix(features + rng.normal(scale=1.0, size=features.shape))
    return human_sim, model_sim


def test_odd_one_out_ci_width_is_set_by_the_stimuli_not_the_triplet_count() -> None:
    human_sim, model_sim = _triplet_world()
    widths = {}
    for count in (10_000, 100_000):
        triplets = odd_one_out.sample_triplets(human_sim, n=count, seed=1)
        est = odd_one_out.bootstrap_odd_one_out(model_sim, triplets, n_boot=200, seed=0).estimate
        assert est.ci_low <= est.value <= est.ci_high and est.n == 60
        widths[count] = est.ci_high - est.ci_low
    assert abs(widths[100_000] / widths[10_000] - 1) < 0.2, widths
    assert widths[100_000] > 0.02  # resampling triplets gave 0.006 here


def test_odd_one_out_stimulus_interval_covers_the_population_accuracy() -> None:
    """Coverage over 60 simulated sets of 50 stimuli drawn from one population of 3,000.

    The estimand is the accuracy over the population's triplets. With 20,000 triplets per set the
    interval covers at about the nominal rate; it is not much wider than the spread of the estimates
    (with few triplets per stimulus it is conservative: the weights also multiply triplet-level noise).
    """
    rng = np.random.default_rng(0)
    population = rng.normal(size=(3000, 8))
    model_population = population + rng.normal(scale=1.0, size=population.shape)

    def agreement(index: np.ndarray, triplets: np.ndarray) -> np.ndarray:
        human_sim = rsa.similarity_matrix(population[index])
        model_sim = rsa.similarity_matrix(model_population[index])
        return odd_one_out.odd_one_out(human_sim, triplets)[0] == odd_one_out.odd_one_out(model_sim, triplets)[0]

    big = rng.permutation(3000)[:1500]
    draws = rng.integers(0, 1500, size=(120_000, 3))
    distinct = (draws[:, 0] != draws[:, 1]) & (draws[:, 0] != draws[:, 2]) & (draws[:, 1] != draws[:, 2])
    truth = agreement(big, draws[distinct]).mean()
    covered, widths, values = [], [], []
    for dataset in range(60):
        index = rng.choice(3000, size=50, replace=False)
        human_sim = rsa.similarity_matrix(population[index])
        model_sim = rsa.similarity_matrix(model_population[index])
        triplets = odd_one_out.sample_triplets(human_sim, n=20_000, seed=dataset)
        est = odd_one_out.bootstrap_odd_one_out(model_sim, triplets, n_boot=200, seed=dataset).estimate
        covered.append(est.ci_low <= truth <= est.ci_high)
        widths.append(est.ci_high - est.ci_low)
        values.append(est.value)
    assert np.mean(covered) >= 0.85, np.mean(covered)
    # A 95% interval spans about 3.92 standard deviations of the estimate over datasets.
    assert np.mean(widths) < 1.5 * 3.92 * np.std(values), (np.mean(widths), 3.92 * np.std(values))


def test_human_consistency_of_repeated_triplets() -> None:
    triplets = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1],   # {0,1,2}: odd 2, 2, 1 -> 2/3 agree with the mode
                         [3, 4, 5], [4, 3, 5],              # {3,4,5}: odd 5, 5 -> 1
                         [0, 3, 6]])                        # answered once: no repeat
    ceiling, repeated = odd_one_out.human_consistency(triplets)
    assert repeated == 2 and ceiling == pytest.approx((2 / 3 + 1) / 2)
    assert odd_one_out.human_consistency(triplets[[0, 3, 5]]) == (pytest.approx(np.nan, nan_ok=True), 0)
    features = np.random.default_rng(0).normal(size=(7, 4))
    result = representation.align_representation({"l": features}, {"triplets": triplets}, similarity="cosine",
                                            layer_choice="last", n_triplets=10, n_boot=20, seed=0)
    assert result.extra["human_consistency"] == pytest.approx(ceiling) and result.extra["n_repeated_triplets"] == 2
    assert result.score_metric == "odd_one_out_accuracy"


def test_layer_choice_best_means_nothing_now_and_names_the_valid_choices() -> None:
    with pytest.raises(ValueError, match=r"valid: \['last', 'best_cv'\]"):
        representation.align_representation({"l": random_features()}, {"similarity": np.eye(60)}, similarity="cosine",
                                       layer_choice="best", n_triplets=10, n_boot=10, seed=0)


def test_cross_validated_layer_choice_is_not_optimistic_over_layers_of_pure_noise() -> None:
    """Twelve layers unrelated to the humans: the max over layers is biased up, the CV score is not."""
    cv_scores, max_scores = [], []
    halves = layer_choice.stimulus_halves(40, n_splits=layer_choice.CV_SPLITS, seed=0)
    for sim in range(40):
        rng = np.random.default_rng(sim)
        human_sim = rsa.similarity_matrix(rng.normal(size=(40, 8)))
        layers = np.stack([rsa.similarity_matrix(rng.normal(size=(40, 8))) for _ in range(12)])
        scorer = layer_choice.LayerScorer(tuple(map(str, range(12))), layers, human_sim, None,
                                       odd_one_out.sample_triplets(human_sim, n=200, seed=sim))
        cv, _ = layer_choice.cross_validated_scores(scorer, np.ones((1, 40)), halves)
        cv_scores.append(cv["rsa"][0])
        max_scores.append(scorer.score(np.ones((1, 40)))["rsa"][0].max())
    cv_scores, max_scores = np.array(cv_scores), np.array(max_scores)
    standard_error = cv_scores.std(ddof=1) / np.sqrt(len(cv_scores))
    assert abs(cv_scores.mean()) < 3 * standard_error, (cv_scores.mean(), standard_error)
    assert max_scores.mean() > cv_scores.mean() + 6 * standard_error, (max_scores.mean(), standard_error)


def test_cross_validated_layer_choice_finds_a_planted_layer_and_records_each_split() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 8))
    human_sim = rsa.similarity_matrix(features + rng.normal(scale=0.5, size=features.shape))
    layers = {f"noise{i}": rng.normal(size=(50, 8)) for i in range(3)}
    layers["planted"] = features
    layers |= {f"later{i}": rng.normal(size=(50, 8)) for i in range(3)}
    result = representation.align_representation(layers, {"similarity": human_sim}, similarity="cosine",
                                            layer_choice="best_cv", n_triplets=500, n_boot=50, seed=0)
    assert result.selected_layer == "best_cv" and result.score_metric == "rsa"
    splits = result.selection["splits"]
    assert len(splits) == layer_choice.CV_SPLITS
    assert all(s["chosen_on_first_half"] == s["chosen_on_second_half"] == "planted" for s in splits)
    assert result.selection["bootstrap_choice_frequency"]["planted"] > 0.95
    rows = {(r["layer"], r["metric"]): r for r in result.rows}
    cv = rows[("best_cv", "rsa_cv")]
    assert result.score == cv["value"] and len(result.replicates) == 50
    assert cv["ci_low"] <= cv["value"] <= cv["ci_high"]
    # Held-out halves of the planted layer score about what the layer scores on all stimuli.
    assert abs(cv["value"] - rows[("planted", "rsa")]["value"]) < 0.1
    assert ("best_cv", "odd_one_out_accuracy_cv") in rows
    last = representation.align_representation(layers, {"similarity": human_sim}, similarity="cosine",
                                          layer_choice="last", n_triplets=500, n_boot=50, seed=0)
    assert last.selected_layer == "later2" and last.selection == {"rule": "last", "layer": "later2"}


def test_subject_mean_and_cross_validated_payloads_reach_the_scores_and_the_report() -> None:
    """align -> analyse -> report: the ranking score is the CV subject-mean RSA, resampled over stimuli,
    and the report draws the ceiling band over the subject-mean curve."""
    import json

    import pandas as pd

    from zooprobe.analysis.rows import SCORE_COLUMNS
    from zooprobe.analysis.scores import alignment_rows
    from zooprobe.probes.alignment.result import alignment_payload
    from zooprobe.report.alignment import alignment_section
    from zooprobe.report.figures import curve_rsa

    truth, rdms = simulated_subjects(n=40, subjects=6)
    rng = np.random.default_rng(1)
    payloads = []
    for model in ("a", "b", "c"):
        sims = {f"layer{i}": -truth + rng.normal(scale=0.3 + 0.3 * i, size=truth.shape) for i in range(3)}
        sims = {name: (s + s.T) / 2 for name, s in sims.items()}
        result = representation.align_similarities(sims, {"rdms": rdms}, layer_choice="best_cv", n_triplets=300,
                                              n_boot=30, seed=0)
        payloads.append(json.loads(json.dumps(alignment_payload("k92", model, result, {"settings": {}}),
                                              default=float)))
    assert payloads[0]["layer_selection"]["splits"][0]["chosen_on_first_half"] == "layer0"
    assert payloads[0]["provenance"]["layer_selection"] == payloads[0]["layer_selection"]
    rankings: dict = {}
    scores = pd.DataFrame(alignment_rows(payloads, rankings), columns=SCORE_COLUMNS)
    score = scores[scores.metric == "score"]
    assert set(score.layer) == {"best_cv"} and set(score.resampled) == {"stimuli"}
    cv = scores[scores.metric == "rsa_subject_mean_cv"].set_index("model").value
    assert np.allclose(score.set_index("model").value[cv.index], cv)
    assert rankings["k92"].n == 40
    fraction = scores[scores.metric.str.startswith("rsa_fraction_of_ceiling")]
    assert len(fraction) == 3 * 4 and (fraction.ci_low <= 1).all()
    curves = curve_rsa(scores, ["k92"])
    assert set(curves.metric) == {"rsa_subject_mean"} and set(curves.layer) == {"layer0", "layer1", "layer2"}
    html_text = alignment_section(scores, ["k92"], []).html
    assert "a, mean over subjects" in html_text
    odd = scores[(scores.model == "a") & (scores.metric == "odd_one_out_accuracy_cv")].iloc[0]
    section = html_text.split("Odd-one-out accuracy at the selected layer")[1]
    assert f"{odd.value:.3f} [{odd.ci_low:.3f}, {odd.ci_high:.3f}]" in section and odd.resampled == "stimuli"


def test_kriegeskorte_fraction_of_ceiling_on_the_real_rdms(assets_dir: Path) -> None:
    """The 16 real RDMs: the group mean itself reaches the upper bound exactly (fraction 1); pixel
    features score well below it, and the cross-validated choice names a layer per split."""
    built = human.build_kriegeskorte92(root=assets_dir / "kriegeskorte92", size=24)
    rdms = built.human["rdms"]
    lower, upper = rsa.noise_ceiling(rdms)
    pixels = built.images.reshape(92, -1).astype(float)
    layers = {"group_mean": -rdms.mean(axis=0), "pixels": rsa.similarity_matrix(pixels),
              "pixels_centred": rsa.similarity_matrix(pixels, "correlation")}
    result = representation.align_similarities(layers, {"rdms": rdms}, layer_choice="best_cv", n_triplets=2000,
                                          n_boot=50, seed=0)
    rows = {(r["layer"], r["metric"]): r for r in result.rows}
    assert rows[("group_mean", "rsa_subject_mean")]["value"] == pytest.approx(upper)
    # The group mean holds every subject: it reaches the upper bound, above the ceiling estimate.
    estimate = rsa.noise_ceiling_estimate(rdms)
    assert lower <= estimate <= upper
    assert rows[("group_mean", "rsa_fraction_of_ceiling")]["value"] == pytest.approx(upper / estimate)
    assert rows[("pixels", "rsa_fraction_of_ceiling")]["ci_high"] < lower / estimate
    assert all(s["chosen_on_first_half"] == "group_mean" for s in result.selection["splits"])
    assert all(r["ci_low"] <= 1 for (layer, metric), r in rows.items()
               if metric.startswith("rsa_fraction") and layer != "group_mean")


# ----------------------------------------------------------------------------- the align stages (issue 19)
def test_softmax_equals_the_max_shifted_exponential_bit_for_bit_in_float64() -> None:
    """scipy's softmax replaced a hand-written one; written probabilities must not move by a bit."""
    rng = np.random.default_rng(0)
    for logits in (rng.normal(size=(200, 10)).astype(np.float32) * 30, rng.normal(size=(50, 4)) * 1e3):
        z = np.asarray(logits, dtype=np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        probs = human_labels.softmax(logits)
        assert probs.dtype == np.float64
        np.testing.assert_array_equal(probs, z / z.sum(axis=1, keepdims=True))


def _labelled_set(path: Path, n: int = 12, k: int = 3) -> None:
    from zooprobe.data.imageset import ImageSet
    from zooprobe.io import h5io

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(k), size=n)
    probs[0] = np.nan  # an image without human labels is left out
    split = np.array(["test"] * n, dtype="U5")
    h5io.write_image_set(path, ImageSet(rng.integers(0, 255, size=(n, 4, 4, 3), dtype=np.uint8), np.arange(n) % k,
                                        split, [f"c{i}" for i in range(k)], {"name": "labelled"},
                                        human={"label_probs": probs, "order_rank": np.arange(n)[::-1].copy()}))


def test_align_tables_scores_every_table_in_name_order_and_refuses_a_short_one(tmp_path: Path) -> None:
    from zooprobe.probes.alignment.stage import align_tables
    from zooprobe.probes.inputs import ProbeInputError

    _labelled_set(tmp_path / "set.h5")
    tables = tmp_path / "tables"
    tables.mkdir()
    rng = np.random.default_rng(1)
    np.savez(tables / "b_test.npz", logits=rng.normal(size=(12, 3)))
    np.savez(tables / "a.npz", probs=rng.dirichlet(np.ones(3), size=12))
    settings = {"n_boot": 10, "seed": 0}
    payload = align_tables(data=tmp_path / "set.h5", tables=tables, benchmark="h", settings=settings, run={"v": 1})
    assert [p["model"] for p in payload] == ["a", "b"]
    assert [p["provenance"]["table"] for p in payload] == ["a.npz", "b_test.npz"]
    assert all(p["provenance"]["v"] == 1 and p["rows"][0]["n"] == 11 for p in payload)
    np.savez(tables / "c.npz", probs=rng.dirichlet(np.ones(3), size=5))
    with pytest.raises(ProbeInputError, match="c.npz has 5 rows; the human labels reach row 10"):
        align_tables(data=tmp_path / "set.h5", tables=tables, benchmark="h", settings=settings, run={})


def test_annotated_features_from_another_version_of_the_dataset_are_refused(tmp_path: Path) -> None:
    from zooprobe.io import h5io
    from zooprobe.probes.inputs import ProbeInputError, read_annotated_features

    _labelled_set(tmp_path / "set.h5")
    info = h5io.read_annotations(tmp_path / "set.h5", "human")[2]
    for name, sha in (("same.h5", info["content_sha256"]), ("other.h5", "0" * 64)):
        with h5io.FeatureWriter(tmp_path / name, n=12, layer_dims={"l": 2}, labels=np.zeros(12, dtype=int),
                                split=np.array(["test"] * 12), provenance={"dataset_sha256": sha,
                                                                           "weights_sha256": "w"}) as writer:
            writer.write({"l": np.zeros((12, 2))})
    inputs = read_annotated_features(tmp_path / "set.h5", tmp_path / "same.h5", "human")
    assert set(inputs.annotations) == {"label_probs", "order_rank"}
    assert inputs.provenance({"v": 1}, model="m", settings={}, benchmark="b") == {
        "v": 1, "model": "m", "dataset_sha256": info["content_sha256"], "weights_sha256": "w", "settings": {},
        "benchmark": "b"}
    with pytest.raises(ProbeInputError, match="other.h5 was extracted from another version of .*set.h5; rerun extract"):
        read_annotated_features(tmp_path / "set.h5", tmp_path / "other.h5", "human")
