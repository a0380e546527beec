"""zooprobe compare-rankings: joined leaderboards, rank agreement with bootstrap CIs, prediction tables."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import special
from scipy import stats as sps

from zooprobe.analysis.leaderboard import (LeaderboardError, compare_leaderboard_files, compare_rankings,
                                          join_leaderboards, prediction_table, read_leaderboard)

TIMM_SHIFTS = ["imagenetv2-matched-frequency", "imagenet-real", "imagenet-a", "imagenet-r", "sketch"]


def compare_cli(*args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "zooprobe", "compare-rankings", *args, "--format", "json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def board(models: list[str], scores: list[float], **extra) -> pd.DataFrame:
    return pd.DataFrame({"model": models, "score": scores, **extra})


def test_join_keeps_only_shared_keys_and_reports_bad_columns():
    a = board(["m1", "m2", "m3", "m4"], [0.9, 0.8, 0.7, 0.6])
    b = board(["m4", "m3", "m2", "m9"], [0.5, 0.6, 0.7, 0.1])
    joined = join_leaderboards(a, b, on=["model"], score_a="score")
    assert list(joined.model) == ["m2", "m3", "m4"] and list(joined.score_b) == [0.7, 0.6, 0.5]
    with pytest.raises(LeaderboardError, match=r"no column \['top1'\]; its columns are \['model', 'score'\]"):
        join_leaderboards(a, b, on=["model"], score_a="top1")
    duplicated = pd.concat([a, a.head(1)])
    with pytest.raises(LeaderboardError, match="several rows per key"):
        join_leaderboards(duplicated, b, on=["model"], score_a="score")


def test_statistics_match_scipy_and_top_k_looks_at_the_best_of_a():
    rng = np.random.default_rng(3)
    a = rng.normal(size=40)
    b = a + rng.normal(scale=0.7, size=40)
    joined = join_leaderboards(board([f"m{i}" for i in range(40)], list(a)), board([f"m{i}" for i in range(40)], list(b)),
                               on=["model"], score_a="score")
    result = compare_rankings(joined, n_bootstrap=300, top_k=8, seed=1)
    assert result.kendall_tau == pytest.approx(sps.kendalltau(a, b).statistic)
    assert result.spearman_rho == pytest.approx(sps.spearmanr(a, b).statistic)
    assert result.pearson_r == pytest.approx(sps.pearsonr(a, b).statistic)
    top = np.argsort(-a)[:8]
    assert result.top_k_kendall_tau == pytest.approx(sps.kendalltau(a[top], b[top]).statistic)
    for name in ("kendall_tau", "spearman_rho", "pearson_r", "top_k_kendall_tau"):
        low, high = result.population_ci[name]
        assert low <= getattr(result, name) <= high and high - low > 0.01
    assert result.given_zoo_ci == {}  # scores alone: nothing to redraw but the models
    biggest = result.movers(1).iloc[0]
    assert abs(biggest.rank_shift) == result.table.rank_shift.abs().max()


def test_the_same_seed_gives_identical_bootstrap_numbers_and_another_seed_does_not():
    rng = np.random.default_rng(0)
    a = rng.normal(size=25)
    joined = join_leaderboards(board([str(i) for i in range(25)], list(a)),
                               board([str(i) for i in range(25)], list(a + rng.normal(size=25))),
                               on=["model"], score_a="score")
    first, again = (compare_rankings(joined, n_bootstrap=200, seed=7).to_json() for _ in range(2))
    assert first == again
    other = compare_rankings(joined, n_bootstrap=200, seed=8).to_json()
    assert other["kendall_tau"] == first["kendall_tau"]
    assert other["kendall_tau_population_ci"] != first["kendall_tau_population_ci"]


def test_prediction_folder_gives_accuracy_per_model(tmp_path):
    labels = np.array([0, 1, 2, 1, 0, 2])
    np.save(tmp_path / "labels.npy", labels)
    folder = tmp_path / "preds"
    folder.mkdir()
    (folder / "alpha_predictions.json").write_text(json.dumps([0, 1, 2, 1, 0, 0]))
    logits = np.eye(3)[[0, 1, 1, 1, 2, 2]] * 5.0
    np.savez(folder / "beta_predictions.npz", logits=logits)
    table = prediction_table(folder, tmp_path / "labels.npy")
    assert table.set_index("model").accuracy.to_dict() == pytest.approx({"alpha": 5 / 6, "beta": 4 / 6})
    with pytest.raises(LeaderboardError, match="give its true labels file"):
        read_leaderboard(folder)
    np.save(tmp_path / "short.npy", labels[:4])
    with pytest.raises(LeaderboardError, match="has 6 predictions but .* has 4 labels"):
        prediction_table(folder, tmp_path / "short.npy")


def test_cli_names_the_missing_key_column(tmp_path):
    board(["a", "b", "c"], [1, 2, 3]).to_csv(tmp_path / "a.csv", index=False)
    result = subprocess.run([sys.executable, "-m", "zooprobe", "compare-rankings", str(tmp_path / "a.csv"),
                             str(tmp_path / "a.csv"), "--on", "model,img_size", "--score", "score"],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "no column ['img_size']; its columns are ['model', 'score']" in result.stderr


@pytest.mark.parametrize("shift", TIMM_SHIFTS)
def test_timm_results_imagenet_against_each_shift_match_scipy(assets_dir, shift):
    results = assets_dir / "timm-results"
    out = compare_cli(str(results / "results-imagenet.csv"), str(results / f"results-{shift}.csv"),
                      "--on", "model,img_size", "--score", "top1", "--bootstrap", "200")
    a = pd.read_csv(results / "results-imagenet.csv")
    b = pd.read_csv(results / f"results-{shift}.csv")
    rows = a.merge(b, on=["model", "img_size"], suffixes=("_a", "_b"))
    assert out["n"] == len(rows) > 1000
    assert out["kendall_tau"] == pytest.approx(sps.kendalltau(rows.top1_a, rows.top1_b).statistic)
    assert out["spearman_rho"] == pytest.approx(sps.spearmanr(rows.top1_a, rows.top1_b).statistic)
    assert out["pearson_r"] == pytest.approx(sps.pearsonr(rows.top1_a, rows.top1_b).statistic)
    top = rows.nlargest(10, "top1_a", keep="first")
    assert out["top_k_kendall_tau"] == pytest.approx(sps.kendalltau(top.top1_a, top.top1_b).statistic)
    for key in ("kendall_tau", "spearman_rho", "pearson_r", "top_k_kendall_tau"):
        low, high = out[f"{key}_population_ci"]
        assert low <= out[key] <= high
        assert out[f"{key}_given_zoo_ci"] is None  # CSV tables hold no per-example results


def test_cifar10_1_original_against_v6_from_prediction_tables(assets_dir):
    predictions = assets_dir / "cifar10.1" / "model_predictions"
    original_labels = assets_dir / "cifar10-predictions" / "test" / "wrn_28_10_test.npz"
    v6_labels = assets_dir / "cifar10.1" / "datasets" / "cifar10.1_v6_labels.npy"
    out = compare_cli(str(predictions / "original_predictions"), str(predictions / "v6_predictions"),
                      "--labels-a", str(original_labels), "--labels-b", str(v6_labels))
    assert out["n"] == 30
    models = {row["model"]: row for row in out["models"]}
    truth = np.load(v6_labels)
    darc = np.asarray(json.loads((predictions / "v6_predictions" / "darc_predictions.json").read_text()))
    assert models["darc"]["score_b"] == pytest.approx((darc == truth).mean())
    # Recht et al. 2019: every model loses accuracy on v6, and the ranking largely holds.
    assert all(row["score_b"] < row["score_a"] for row in out["models"])
    population, given = out["kendall_tau_population_ci"], out["kendall_tau_given_zoo_ci"]
    assert 0.7 < out["kendall_tau"] < 1 and population[0] < out["kendall_tau"] < population[1]
    # Per-example predictions: the two-level interval (models, then test examples) and the one given
    # these 30 models, which only redraws test examples and so is narrower.
    assert given[0] < out["kendall_tau"] < given[1] and given[1] - given[0] < population[1] - population[0]
    assert out["resampled"]["kendall_tau"].startswith("units (Bayesian bootstrap") and \
        "test examples" in out["resampled"]["kendall_tau"]
    assert out["kendall_tau_pvalue"] < 0.01


def test_compare_leaderboard_files_asks_for_keys_and_score_and_formats_text_or_json(tmp_path):
    board(["a", "b", "c", "d"], [1, 2, 3, 4]).to_csv(tmp_path / "a.csv", index=False)
    board(["a", "b", "c", "d"], [1, 3, 2, 4]).to_csv(tmp_path / "b.csv", index=False)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    with pytest.raises(LeaderboardError, match="give the key columns to join on"):
        compare_leaderboard_files(a, b, score="score")
    with pytest.raises(LeaderboardError, match=r"give the score column.*table A has \[.model., .score.\]"):
        compare_leaderboard_files(a, b, on="model")
    with pytest.raises(LeaderboardError, match=r"unknown output format 'yaml'; valid: \['text', 'json'\]"):
        compare_leaderboard_files(a, b, on="model", score="score", output_format="yaml")
    found = json.loads(compare_leaderboard_files(a, b, on=" model, ", score="score", n_bootstrap=0,
                                                 output_format="json"))
    assert found["n"] == 4 and found["kendall_tau"] == pytest.approx(sps.kendalltau([1, 2, 3, 4], [1, 3, 2, 4])[0])
    text = compare_leaderboard_files(a, b, on="model", score="score", n_bootstrap=0, movers=2)
    assert text.startswith(f"A: {a}\nB: {b}\nn = 4 models joined on model;")
    assert "the 2 biggest rank moves: b (-1.0), c (+1.0)" in text  # rank 1 is the best score


def _check_fit_against_scipy(fit: dict, id_accuracy: np.ndarray, ood_accuracy: np.ndarray, names: list[str]) -> None:
    """The printed fit against scipy's linregress on the probit of the same rows, and the listed models by hand."""
    expected = sps.linregress(sps.norm.ppf(id_accuracy), sps.norm.ppf(ood_accuracy))
    assert fit["slope"] == pytest.approx(expected.slope, rel=1e-9)
    assert fit["intercept"] == pytest.approx(expected.intercept, rel=1e-9)
    assert fit["r2"] == pytest.approx(expected.rvalue ** 2, rel=1e-9)
    for name in ("slope", "intercept", "r2"):
        low, high = fit[f"{name}_ci_over_models"]
        assert low < fit[name] < high
    robustness = ood_accuracy - sps.norm.cdf(expected.intercept + expected.slope * sps.norm.ppf(id_accuracy))
    assert [row["model"] for row in fit["most_robust"]] == [names[i] for i in np.argsort(-robustness)[:5]]
    assert [row["model"] for row in fit["least_robust"]] == [names[i] for i in np.argsort(robustness)[:5]]
    assert [row["effective_robustness"] for row in fit["most_robust"]] == pytest.approx(np.sort(robustness)[::-1][:5])
    assert fit["clipped"] == []


def test_effective_robustness_of_timm_imagenet_against_imagenet_v2_matches_scipy(assets_dir):
    results = assets_dir / "timm-results"
    out = compare_cli(str(results / "results-imagenet.csv"), str(results / "results-imagenetv2-matched-frequency.csv"),
                      "--on", "model,img_size", "--score", "top1", "--bootstrap", "200", "--effective-robustness")
    a = pd.read_csv(results / "results-imagenet.csv")
    b = pd.read_csv(results / "results-imagenetv2-matched-frequency.csv")
    rows = a.merge(b, on=["model", "img_size"], suffixes=("_a", "_b")).sort_values(["model", "img_size"])
    fit = out["effective_robustness"]
    assert fit["n_models"] == len(rows) > 1000 and fit["accuracy_scale"] == ["percent", "percent"]
    assert "test examples not redrawn" in fit["resampled"]
    names = [f"{m} / {s}" for m, s in zip(rows.model, rows.img_size)]
    _check_fit_against_scipy(fit, rows.top1_a.to_numpy() / 100, rows.top1_b.to_numpy() / 100, names)
    # Recht et al. 2019: ImageNet-V2 sits below y = x with a slope near 1 on probit axes.
    assert fit["intercept"] < 0 and 0.8 < fit["slope"] < 1.1 and fit["r2"] > 0.95


def test_effective_robustness_of_cifar10_against_cifar10_1_from_prediction_files(assets_dir):
    predictions = assets_dir / "cifar10.1" / "model_predictions"
    original_labels = assets_dir / "cifar10-predictions" / "test" / "wrn_28_10_test.npz"
    v6_labels = assets_dir / "cifar10.1" / "datasets" / "cifar10.1_v6_labels.npy"
    out = compare_cli(str(predictions / "original_predictions"), str(predictions / "v6_predictions"),
                      "--labels-a", str(original_labels), "--labels-b", str(v6_labels), "--bootstrap", "300",
                      "--effective-robustness")
    fit = out["effective_robustness"]
    with np.load(original_labels) as archive:
        truth_a = archive["labels"]
    truth_b = np.load(v6_labels)
    names = sorted(p.name.removesuffix("_predictions.json") for p in (predictions / "v6_predictions").glob("*.json"))
    accuracy = {which: np.array([(np.asarray(json.loads((predictions / f"{which}_predictions" /
                                                          f"{name}_predictions.json").read_text())) == truth).mean()
                                 for name in names]) for which, truth in (("original", truth_a), ("v6", truth_b))}
    assert fit["n_models"] == 30 and "ID test examples redrawn" in fit["resampled"]
    assert "; OOD test examples redrawn" in fit["resampled"]
    assert "half an example of 10000" in fit["clip_rule"] and "half an example of 2000" in fit["clip_rule"]
    _check_fit_against_scipy(fit, accuracy["original"], accuracy["v6"], names)


def test_effective_robustness_options_and_their_errors(tmp_path):
    rng = np.random.default_rng(0)
    id_acc = rng.uniform(0.5, 0.9, size=12)
    board([f"m{i}" for i in range(12)], list(id_acc)).to_csv(tmp_path / "a.csv", index=False)
    board([f"m{i}" for i in range(12)], list(id_acc - 0.1)).to_csv(tmp_path / "b.csv", index=False)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    logit = json.loads(compare_leaderboard_files(a, b, on="model", score="score", n_bootstrap=0, output_format="json",
                                                 effective_robustness=True, link="logit"))["effective_robustness"]
    expected = sps.linregress(special.logit(id_acc), special.logit(id_acc - 0.1))
    assert logit["link"] == "logit" and logit["slope"] == pytest.approx(expected.slope)
    assert logit["accuracy_scale"] == ["fraction", "fraction"]
    text = compare_leaderboard_files(a, b, on="model", score="score", n_bootstrap=0, effective_robustness=True,
                                     movers=3)
    assert "the 3 most effectively robust:" in text and "the 3 least effectively robust:" in text
    sized = json.loads(compare_leaderboard_files(a, b, on="model", score="score", n_bootstrap=200, output_format="json",
                                                 effective_robustness=True, n_a=5000, n_b=1000))["effective_robustness"]
    assert "ID accuracies redrawn as Binomial(5000" in sized["resampled"] and "half an example of 1000" in sized["clip_rule"]
    board([f"m{i}" for i in range(12)], list(100 * id_acc + 5)).to_csv(tmp_path / "big.csv", index=False)
    with pytest.raises(LeaderboardError, match=r"table A's scores run from .* not accuracies in \[0, 1\]"):
        compare_leaderboard_files(tmp_path / "big.csv", b, on="model", score="score", effective_robustness=True,
                                  accuracy_scale="fraction", n_bootstrap=0)
    with pytest.raises(LeaderboardError, match=r"unknown accuracy scale 'permille'; valid: \['auto', 'fraction', "):
        compare_leaderboard_files(a, b, on="model", score="score", effective_robustness=True,
                                  accuracy_scale="permille", n_bootstrap=0)


def test_concordance_of_the_six_timm_tables_matches_scipy_friedman(assets_dir):
    results = assets_dir / "timm-results"
    names = ["imagenet", *TIMM_SHIFTS]
    files = [str(results / f"results-{name}.csv") for name in names]
    also = [arg for path in files[2:] for arg in ("--also", path)]
    out = compare_cli(*files[:2], *also, "--on", "model,img_size", "--score", "top1", "--bootstrap", "200",
                      "--concordance")["concordance"]
    tables = [pd.read_csv(path).set_index(["model", "img_size"]).top1.rename(name) for path, name in zip(files, names)]
    joined = pd.concat(tables, axis=1, join="inner").dropna()
    m, k = joined.shape[1], joined.shape[0]
    expected = sps.friedmanchisquare(*sps.rankdata(-joined.to_numpy().T, axis=1).T)
    assert out["n_models"] == k > 1000 and out["benchmarks"] == [f"results-{name}" for name in names]
    assert out["friedman_chi2"] == pytest.approx(expected.statistic, rel=1e-9)
    assert out["kendall_w"] == pytest.approx(expected.statistic / (m * (k - 1)), rel=1e-9)
    low, high = out["kendall_w_ci_over_models"]
    assert low < out["kendall_w"] < high and out["resampled"].startswith("models")
    cd = 2 ** -0.5 * sps.studentized_range.ppf(0.95, k, np.inf) * np.sqrt(k * (k + 1) / (6 * m))
    assert out["critical_difference"] == pytest.approx(cd)


def test_also_tables_need_the_concordance_flag(tmp_path):
    board(["a", "b", "c", "d"], [1, 2, 3, 4]).to_csv(tmp_path / "a.csv", index=False)
    board(["a", "b", "c", "d"], [1, 3, 2, 4]).to_csv(tmp_path / "b.csv", index=False)
    board(["a", "b", "c", "e"], [2, 1, 3, 4]).to_csv(tmp_path / "c.csv", index=False)
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    with pytest.raises(LeaderboardError, match="add --concordance"):
        compare_leaderboard_files(a, b, on="model", score="score", also=[str(c)], n_bootstrap=0)
    out = json.loads(compare_leaderboard_files(a, b, on="model", score="score", also=[str(c)], concordance=True,
                                               n_bootstrap=0, output_format="json"))["concordance"]
    assert out["n_models"] == 3 and out["benchmarks"] == ["a", "b", "c"]  # d is not in c
    ranks = np.array([[3, 2, 1], [3, 1, 2], [2, 3, 1]], dtype=float)  # a, b, c: each board's ranks of models a, b, c
    assert out["kendall_w"] == pytest.approx(sps.friedmanchisquare(*ranks.T).statistic / (3 * 2))
