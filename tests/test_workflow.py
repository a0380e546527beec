"""End to end: the real Snakefile on the tiny config, in a temporary working directory."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy import stats as sps

from workflow_helpers import TINY, rules_run, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture
def tiny_run(tiny_checkout_run) -> Path:
    """The tiny config's finished run (shared; tests that change it work on a copy)."""
    return tiny_checkout_run


def test_scores_cover_every_model_benchmark_and_pair(tiny_run):
    scores = pd.read_csv(tiny_run / "results" / "scores.csv")
    assert list(scores.columns) == ["benchmark", "model", "layer", "metric", "value", "ci_low", "ci_high", "n",
                                    "method", "resampled"]
    chosen = scores[(scores.metric == "score") & ~scores.benchmark.str.contains("@")]  # "<task>@<set>": dense
    assert set(chosen.model) == {"resnet10t", "vit_tiny", "resnet10t_random"}
    assert set(chosen.benchmark) == {"shapes", "shapes_noise", "shapes_texture"}
    assert len(chosen) == 9
    assert chosen.value.between(0, 1).all()
    assert (chosen.ci_low <= chosen.value).all() and (chosen.value <= chosen.ci_high).all()
    # Per class, 30 images split at round(30 * [0.5, 0.75]) = [15, 22], so 8 test images x 10 classes;
    # the noise set shifts that test split; the texture set is 10 x 10, all test.
    assert chosen.set_index("benchmark").n.to_dict() == {"shapes": 80, "shapes_noise": 80, "shapes_texture": 100}
    # Ranks as the analysis defines them: 1 is the best score, and tied models share the average of
    # the places they span, i.e. 1 + (models scoring higher) + (other models tied with it) / 2.
    for benchmark, group in chosen.groupby("benchmark"):
        ranks = scores[(scores.metric == "rank") & (scores.benchmark == benchmark)].set_index("model").value
        values = group.set_index("model").value
        expected = {model: 1 + (values > value).sum() + ((values == value).sum() - 1) / 2
                    for model, value in values.items()}
        assert ranks.to_dict() == expected, benchmark
        assert sorted(ranks) == [1, 2, 3] or values.duplicated().any(), ranks  # no ties: exactly 1..n
    probe_pairs = {"shapes~shapes_noise", "shapes~shapes_texture", "shapes_noise~shapes_texture"}
    # Tau-b is undefined (NaN, "tied scores" in the report) exactly where one benchmark scores every
    # model the same, which near-chance one-epoch models on 80 test images can do on some machines.
    every_score = scores[scores.metric == "score"]
    all_tied = {benchmark for benchmark, group in every_score.groupby("benchmark") if group.value.nunique() == 1}
    for interval in ("given_zoo", "population"):
        pairs = scores[scores.metric == f"kendall_tau_{interval}"]
        assert probe_pairs <= set(pairs.benchmark) and len(pairs) == 15  # with the 3 dense benchmarks: 6 choose 2
        undefined = pairs.benchmark.map(lambda pair: bool(set(pair.split("~")) & all_tied))
        assert pairs.value[undefined].isna().all(), pairs[undefined]
        defined = pairs[~undefined]
        assert defined.value.between(-1, 1).all() and (defined.ci_low <= defined.ci_high).all(), defined
    # The noise set is a shifted copy of the shapes test split: one joint draw of their rows.
    joint = scores[(scores.metric == "kendall_tau_given_zoo") & (scores.benchmark == "shapes~shapes_noise")].iloc[0]
    assert "one joint draw" in joint.resampled
    holm = scores[scores.metric == "kendall_tau_pvalue_holm"]
    raw = scores[scores.metric == "kendall_tau_pvalue"].set_index("benchmark").value
    adjusted, unadjusted = holm.value.to_numpy(), raw[holm.benchmark].to_numpy()
    assert len(holm) == 15 and (np.isnan(adjusted) == np.isnan(unadjusted)).all()  # an undefined tau is no test
    tested = ~np.isnan(unadjusted)
    assert tested.any() and (adjusted[tested] >= unadjusted[tested] - 1e-12).all()
    # A layer-wise curve for each model on each benchmark: every layer of resnet10t is scored.
    resnet_layers = scores[(scores.metric == "accuracy") & (scores.model == "resnet10t") & (scores.benchmark == "shapes")]
    assert list(resnet_layers.layer) == ["act1", "layer1", "layer2", "layer3", "layer4", "pre_logits"]


def test_own_heads_are_scored_only_over_their_label_space(tiny_run):
    scores = pd.read_csv(tiny_run / "results" / "scores.csv")
    head = scores[scores.metric == "head_accuracy"]
    # The trained models' heads predict the shapes classes; the random timm model has 1000 ImageNet outputs.
    assert set(head.model) == {"resnet10t", "vit_tiny"}
    assert set(head.benchmark) == {"shapes", "shapes_noise", "shapes_texture"}
    assert head.value.between(0, 1).all() and (head.n == head.benchmark.map({"shapes": 80, "shapes_noise": 80,
                                                                             "shapes_texture": 100})).all()


def test_scores_agree_with_the_stored_predictions(tiny_run):
    scores = pd.read_csv(tiny_run / "results" / "scores.csv")
    with h5py.File(tiny_run / "results" / "probes" / "vit_tiny" / "shapes.h5") as f:
        labels = f["evals/shapes_noise/labels"][...]
        predicted = f["evals/shapes_noise/pred/pre_logits"][...]
    row = scores[(scores.metric == "accuracy") & (scores.model == "vit_tiny") & (scores.benchmark == "shapes_noise")
                 & (scores.layer == "pre_logits")].iloc[0]
    assert row.value == pytest.approx((labels == predicted).mean())


def test_both_tunnel_modes_are_scored_with_intervals_and_labelled(tiny_run):
    scores = pd.read_csv(tiny_run / "results" / "scores.csv")
    for family in ("tunnel", "shift"):
        for metric in ("retained_pct", "id_ood_alignment"):
            rows = scores[scores.metric == f"{family}_{metric}"]
            assert set(zip(rows.model, rows.benchmark)) == {(m, b) for m in ("resnet10t", "vit_tiny", "resnet10t_random")
                                                            for b in ("shapes_noise", "shapes_texture")}
            assert (rows.ci_low <= rows.value).all() and (rows.value <= rows.ci_high).all()
            assert rows.resampled.str.startswith("ID and OOD test examples").all()
    # The transfer sets have test rows only: carved 0.5/0.2/0.3 per class, and their own probes score
    # the carved test rows (10 per class on texture: 3 test; the noise copy's 8 per class: 2 test).
    transfer = scores[(scores.metric == "transfer_accuracy") & (scores.model == "resnet10t")]
    assert transfer.groupby("benchmark").n.first().to_dict() == {"shapes_noise": 20, "shapes_texture": 30}
    assert list(transfer[transfer.benchmark == "shapes_texture"].layer) == ["act1", "layer1", "layer2", "layer3",
                                                                              "layer4", "pre_logits"]
    joint = transfer[transfer.benchmark == "shapes_noise"].resampled.iloc[0]
    assert "the draw of 'shapes'" in joint  # the copy of the shapes test split is redrawn with it
    with h5py.File(tiny_run / "results" / "probes" / "resnet10t" / "shapes.h5") as f:
        rows = f["transfer/shapes_texture/rows"][...]
        provenance = json.loads(f.attrs["provenance"])
    assert len(rows) == 30 and len(set(rows)) == 30
    assert "carved from all rows per class" in provenance["transfer"]["shapes_texture"]["split"]
    page = (tiny_run / "results" / "report" / "index.html").read_text()
    assert "Tunnel effect (Harun et al. 2024): probes trained on each OOD set" in page
    assert "ID probes under shift (not the tunnel effect as defined)" in page


def test_features_and_checkpoints_carry_provenance(tiny_run):
    checkpoint = torch.load(tiny_run / "data" / "models" / "resnet10t.pt", weights_only=True)
    with h5py.File(tiny_run / "data" / "features" / "resnet10t" / "shapes.h5") as f:
        attrs = dict(f.attrs)
        assert f["layers/layer4"].shape == (300, 512 * 4)  # avg2x2 pooling keeps 2x2 cells
        assert f["labels"].shape == (300,)
    assert attrs["weights_sha256"] == checkpoint["weights_sha256"]
    assert attrs["pooling"] == "avg2x2" and attrs["model"] == "resnet10t" and attrs["seed"] == 0
    assert attrs["zooprobe_version"].startswith("0.1.0")
    assert "input_size" in attrs["provenance"] and "dataset_sha256" in attrs["provenance"]
    with h5py.File(tiny_run / "data" / "datasets" / "shapes.h5") as f:
        assert f["images"].dtype == np.uint8 and f["images"].shape == (300, 32, 32, 3)
        assert len(f.attrs["content_sha256"]) == 64


def test_report_is_self_contained_and_shows_the_results(tiny_run):
    page = (tiny_run / "results" / "report" / "index.html").read_text()
    # Scores, agreement heatmap, bump chart, layer curves, the mid-level against classification scatter; the
    # critical-difference diagram, two effective-robustness scatters (probes; the heads' fits have 2 units) and
    # error-consistency heatmaps of probes and of heads, and CKA between models and between layers.
    assert page.count("src='data:image/png;base64,") == 12
    for needle in ("Rankings across all benchmarks", "Kendall's W", "Effective robustness", "2 units; a line needs 3",
                   "Error consistency", "Critical-difference diagram", "Representational similarity (CKA)",
                   "Linear CKA between every pair of a model"):
        assert needle in page, needle
    assert page.index("id=\"findings\"") < page.index("id=\"scores\"") < page.index("id=\"provenance\"")
    assert "http://" not in page and "https://" not in page
    for needle in ("resnet10t_random", "vit_tiny", "shapes_texture", "Kendall tau-b", "tau CI given zoo",
                   "tau CI population", "p (Holm)", "<em>Given the zoo</em>", "<em>Over a population of models</em>",
                   "exact, over all m! orders", "weights_sha256", "avg2x2"):
        assert needle in page
    assert "two-level" not in page


def test_the_fields_methods_are_scored_from_the_pipelines_own_scores(tiny_run):
    scores = pd.read_csv(tiny_run / "results" / "scores.csv")
    summary = json.loads((tiny_run / "results" / "analysis" / "summary.json").read_text())
    chosen = scores[scores.metric == "score"].pivot(index="model", columns="benchmark", values="value")
    models = ["resnet10t", "resnet10t_random", "vit_tiny"]
    for ood in ("shapes_noise", "shapes_texture"):
        # The probit fit over the probes' scores, as scipy computes it on the same rows.
        fit = sps.linregress(sps.norm.ppf(chosen.loc[models, "shapes"]), sps.norm.ppf(chosen.loc[models, ood]))
        rows = scores[(scores.benchmark == f"shapes~{ood}") & (scores.layer == "selected")].set_index(["model", "metric"])
        assert rows.loc[("(all)", "er_slope"), "value"] == pytest.approx(fit.slope)
        assert rows.loc[("(all)", "er_r2"), "value"] == pytest.approx(fit.rvalue ** 2)
        er = rows.xs("effective_robustness", level="metric")
        assert sorted(er.index) == models and (er.ci_low <= er.value).all() and (er.value <= er.ci_high).all()
        # Error consistency: every pair of the three models once, on every benchmark the probes score.
        for benchmark in ("shapes", ood):
            ec = scores[(scores.metric == "error_consistency") & (scores.benchmark == benchmark)
                        & (scores.layer == "selected")]
            assert sorted(ec.model) == ["resnet10t_random~vit_tiny", "resnet10t~resnet10t_random", "resnet10t~vit_tiny"]
            finite = ec[ec.value.notna()]
            assert finite.value.between(-1, 1).all() and (finite.ci_low <= finite.ci_high).all()
            assert set(ec.resampled) == {"test examples"}
    w = scores[(scores.benchmark == "(all)") & (scores.metric == "kendall_w")].iloc[0]
    concordance = summary["concordance"]
    assert w.value == pytest.approx(concordance["kendall_w"]) and 0 <= w.ci_low <= w.value <= w.ci_high <= 1
    ranks = chosen[concordance["benchmarks"]].rank(ascending=False)
    assert sps.friedmanchisquare(*ranks.to_numpy()).pvalue == pytest.approx(concordance["friedman_p"])
    mean_ranks = scores[scores.metric == "mean_rank"].set_index("model").value
    pd.testing.assert_series_equal(mean_ranks.sort_index(), ranks.mean(axis=1).sort_index(), check_names=False)
    # CKA between models at their selected layers, on every set the task scores, from the cka stage's record.
    record = json.loads((tiny_run / "results" / "analysis" / "cka" / "shapes.json").read_text())
    cka = scores[scores.metric == "cka"]
    assert sorted(set(cka.benchmark)) == ["shapes", "shapes_noise", "shapes_texture"]
    assert len(cka) == 3 * 3 and cka.value.between(0, 1 + 1e-9).all()
    selected = scores[scores.metric == "score"].set_index(["benchmark", "model"]).layer
    assert record["between_models"][0]["layers"] == {m: selected[("shapes", m)] for m in models}
    layers = scores[(scores.metric == "cka_layers") & (scores.model == "resnet10t")]
    depth = len(summary["layer_order"]["resnet10t"])
    assert len(layers) == 3 * depth * (depth - 1) // 2  # every pair of layers on each of the three sets


def test_dense_probes_score_every_layer_and_compare_with_random_init(tiny_run):
    scores = pd.read_csv(tiny_run / "results" / "scores.csv")
    page = (tiny_run / "results" / "report" / "index.html").read_text()
    for model in ("resnet10t", "vit_tiny", "resnet10t_random"):
        with h5py.File(tiny_run / "data" / "spatial" / model / "scenes.h5") as f:
            layers = list(f["layers"])
            shapes = {name: f["layers"][name].shape for name in f["layers"]}
            assert all(ds.dtype == np.float16 for ds in f["layers"].values())
        # Spatial (N, C, h, w) maps, pooled to at most the 8 x 8 grid; pre-logits kept as 1 x 1.
        assert all(len(shape) == 4 and shape[0] == 64 and shape[2] <= 8 and shape[3] <= 8 for shape in shapes.values())
        for task, metric in (("depth", "delta1"), ("normals", "mean_angle"), ("figure_ground", "iou")):
            part = scores[(scores.benchmark == f"{task}@scenes") & (scores.metric == metric) & (scores.model == model)]
            assert sorted(part.layer) == sorted([*layers, "concat"]), (model, task)
            assert (part.n == 16).all()  # 64 scenes, a quarter for testing
            for row in part.itertuples():
                assert f"{row.layer}<br>{row.value:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]" in page
    # ViT patch tokens are back on their grid, without the CLS token: 32 px / patch 4 = 8 x 8.
    with h5py.File(tiny_run / "data" / "spatial" / "vit_tiny" / "scenes.h5") as f:
        assert f["layers/blocks.3"].shape[1:] == (96, 8, 8)
    assert "depth@scenes: depth delta1" in page and "normals@scenes: mean angular error" in page
    verdicts = re.findall(r"trained <b>resnet10t</b> (beats|is beaten by|is not clearly different from) "
                          r"its random-init copy <b>resnet10t_random</b>: score difference [-+]\d", page)
    assert len(verdicts) == 3
    assert len(scores[scores.metric == "trained_minus_random_init_pvalue_holm"]) == 6  # 3 probe + 3 dense benchmarks


def test_snakemake_report_holds_the_marked_outputs_with_captions(tiny_run, tmp_path):
    import sys
    import zipfile

    from workflow_helpers import run

    archive = tmp_path / "report.zip"
    run([sys.executable, "-m", "snakemake", "--report", str(archive)], cwd=tiny_run)
    with zipfile.ZipFile(archive) as bundle:
        names = bundle.namelist()
        page = next(bundle.read(n).decode() for n in names if n.endswith("/report.html"))
        ours = next(bundle.read(n) for n in names if n.endswith("/index.html"))
    assert any(n.endswith("/scores.csv") for n in names)
    assert ours == (tiny_run / "results" / "report" / "index.html").read_bytes()
    caption = (Path(__file__).parents[1] / "docs" / "report" / "scores.rst").read_text().split("\n")[0]
    assert "The tidy score table" in caption and "The tidy score table" in page


def test_nothing_to_do_after_a_complete_run(tiny_run):
    result = snakemake(tiny_run, "-n")
    assert rules_run(result.stdout + result.stderr) == set()
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_a_probe_param_reruns_only_probe_cka_analyse_report(tiny_checkout_run, tmp_path):
    tiny_run = tmp_path / "run"
    shutil.copytree(tiny_checkout_run, tiny_run)  # keeps modification times and Snakemake's metadata
    changed = yaml.safe_load(TINY.read_text())
    changed["probe"]["c_grid"] = [0.5, 1.0]
    configfile = tmp_path / "changed.yaml"
    configfile.write_text(yaml.safe_dump(changed))
    before = (tiny_run / "data" / "features" / "vit_tiny" / "shapes.h5").stat().st_mtime_ns
    result = snakemake(tiny_run, "--cores", "2", configfile=configfile)
    # cka reads the layer each probe selected, which C can change.
    assert rules_run(result.stdout + result.stderr) == {"probe", "cka", "analyse", "report"}
    assert (tiny_run / "data" / "features" / "vit_tiny" / "shapes.h5").stat().st_mtime_ns == before
    with h5py.File(tiny_run / "results" / "probes" / "vit_tiny" / "shapes.h5") as f:
        assert "[0.5, 1.0]" in f.attrs["provenance"]


def test_unknown_model_fails_before_any_job_and_lists_sources(tmp_path):
    broken = yaml.safe_load(TINY.read_text())
    broken["models"]["vit_tiny"]["arch"] = "vit_tinyy"
    configfile = tmp_path / "broken.yaml"
    configfile.write_text(yaml.safe_dump(broken))
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = snakemake(workdir, "--cores", "1", configfile=configfile, check=False)
    message = result.stdout + result.stderr
    assert result.returncode != 0
    assert "unknown architecture 'vit_tinyy'" in message and "Valid sources: timm, trained, checkpoint" in message
    assert not (workdir / "data").exists()


def test_lint_passes(tmp_path):
    result = snakemake(tmp_path, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
