"""configs/alignment.yaml end to end on the shared assets: RSA per layer, noise ceiling, CIFAR-10H."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml
from workflow_helpers import copy_checkout, run

pytestmark = pytest.mark.workflow
# Every model of the config has a score and joins each agreement pair.
N_MODELS = len(yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "alignment.yaml").read_text())["models"])
TABLES = ["densenet_BC_100_12", "pyramidnet_basic_110_270", "resnet_basic_110", "resnet_preact_bottleneck_164",
          "resnext_29_8x64d", "shake_shake_26_2x64d_SSI_cutout16", "vgg_15_BN_64", "wrn_28_10"]


@pytest.fixture(scope="module")
def alignment_run(assets_dir: Path, tmp_path_factory) -> Path:
    checkout = copy_checkout(tmp_path_factory.mktemp("alignment") / "checkout")
    shutil.copy2(checkout / "configs" / "alignment.yaml", checkout / "params.yaml")
    run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=checkout, timeout=1500)
    return checkout


@pytest.fixture(scope="module")
def assets_dir() -> Path:  # module scope, for the module-scoped run
    location = os.environ.get("ZOOPROBE_ASSETS")
    if not location:
        pytest.skip("ZOOPROBE_ASSETS is not set; point it at the shared assets folder to run this test")
    return Path(location)


def test_report_shows_rsa_with_ci_at_every_layer_of_efficientnet_lite0(alignment_run: Path) -> None:
    scores = pd.read_csv(alignment_run / "results" / "scores.csv")
    report = (alignment_run / "results" / "report" / "index.html").read_text()
    rsa = scores[(scores.benchmark == "peterson_animals") & (scores.model == "efficientnet_lite0")
                 & (scores.metric == "rsa")]
    with h5py.File(alignment_run / "data" / "features" / "efficientnet_lite0" / "peterson_animals.h5") as f:
        layers = list(f["layers"])
    assert sorted(rsa.layer) == sorted(layers) and len(layers) >= 5
    assert (rsa.ci_low <= rsa.value).all() and (rsa.value <= rsa.ci_high).all()
    row = re.search(r"<tr><th>efficientnet_lite0</th>(.*?)</tr>", report.split("peterson_animals: RSA")[1]).group(1)
    for r in rsa.itertuples():
        assert f"{html.escape(r.layer)}<br>{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" in row, r.layer


def test_noise_ceiling_and_fraction_of_ceiling(alignment_run: Path) -> None:
    """The ceiling bounds the subject-mean RSA; the fraction of it is at most 1 within its CI for every model."""
    scores = pd.read_csv(alignment_run / "results" / "scores.csv")
    ceiling = scores[scores.benchmark == "kriegeskorte92"].set_index("metric")
    lower, upper = ceiling.loc["noise_ceiling_lower", "value"], ceiling.loc["noise_ceiling_upper", "value"]
    assert 0 < lower <= upper <= 1
    estimate = ceiling.loc["noise_ceiling_estimate", "value"]
    assert lower <= estimate <= upper  # the divisor; on these 16 subjects it is clipped to the upper bound
    k92 = scores[scores.benchmark == "kriegeskorte92"]
    subject_mean = k92[k92.metric == "rsa_subject_mean"].set_index(["model", "layer"])
    fraction = k92[k92.metric == "rsa_fraction_of_ceiling"]
    assert len(fraction) == len(subject_mean) > 0
    for r in fraction.itertuples():
        assert r.value == pytest.approx(subject_mean.loc[(r.model, r.layer), "value"] / estimate)
    cv_fraction = k92[k92.metric == "rsa_fraction_of_ceiling_cv"]
    assert set(cv_fraction.model) == set(fraction.model) and set(cv_fraction.layer) == {"best_cv"}
    for r in pd.concat([fraction, cv_fraction]).itertuples():
        assert r.ci_low <= 1 and r.ci_low <= r.value <= r.ci_high, (r.model, r.layer, r.value, r.ci_low)


def test_the_layer_that_ranks_models_is_chosen_by_split_half_cross_validation(alignment_run: Path) -> None:
    scores = pd.read_csv(alignment_run / "results" / "scores.csv")
    for benchmark, metric in (("kriegeskorte92", "rsa_subject_mean"), ("peterson_animals", "rsa")):
        part = scores[scores.benchmark == benchmark]
        score = part[part.metric == "score"].set_index("model")
        assert len(score) == N_MODELS and set(score.layer) == {"best_cv"} and set(score.resampled) == {"stimuli"}
        cv = part[part.metric == f"{metric}_cv"].set_index("model")
        assert (score.value == cv.value[score.index]).all()
        for model in score.index:
            payload = json.loads((alignment_run / "results" / "alignment" / model / f"{benchmark}.json").read_text())
            selection = payload["provenance"]["layer_selection"]
            assert payload["score_metric"] == metric and selection["rule"] == "best_cv"
            layers = {row["layer"] for row in payload["rows"]} - {"best_cv"}
            assert len(selection["splits"]) == 5
            assert all({s["chosen_on_first_half"], s["chosen_on_second_half"]} <= layers for s in selection["splits"])


def test_cross_entropy_of_each_published_model_and_the_pipeline_heads(alignment_run: Path) -> None:
    scores = pd.read_csv(alignment_run / "results" / "scores.csv")
    ce = scores[(scores.benchmark == "cifar10h") & (scores.metric == "cross_entropy")].set_index("model")
    assert set(TABLES) <= set(ce.index)
    assert {"resnet20_published", "resnet56_published", "resnet20_scratch"} <= set(ce.index)
    assert not set(ce.index) & {"efficientnet_lite0"}  # no CIFAR-10 head
    assert (ce.value > 0).all() and (ce.ci_low <= ce.value).all()
    report = (alignment_run / "results" / "report" / "index.html").read_text()
    section = report.split("cifar10h: agreement with human label distributions")[1]
    for name in TABLES:
        r = ce.loc[name]
        assert f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" in section, name


def test_alignment_rankings_join_the_agreement_matrix(alignment_run: Path) -> None:
    scores = pd.read_csv(alignment_run / "results" / "scores.csv")
    pairs = set(scores[(scores.model == "(all)") & (scores.metric == "spearman_rho_population")].benchmark)
    for benchmark in ("peterson_animals", "peterson_fruits", "peterson_vegetables", "kriegeskorte92", "cifar10h"):
        assert f"cifar10~{benchmark}" in pairs
    pair = scores[(scores.benchmark == "cifar10~peterson_animals") & (scores.metric == "spearman_rho_population")].iloc[0]
    assert pair.n == N_MODELS and pair.ci_low <= pair.value <= pair.ci_high
    report = (alignment_run / "results" / "report" / "index.html").read_text()
    assert "Accuracy against alignment" in report and "Alignment per layer" in report
