"""configs/imagenet-sample.yaml end to end on the shared assets: EfficientNet-Lite0/1/2 own heads on 1,000
real ImageNet photographs and two ImageNet-C copies of every fourth one, beside timm's published top-1."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import h5py
import pandas as pd
import pytest

from workflow_helpers import REPO, snakemake

pytestmark = pytest.mark.workflow
MODELS = {"efficientnet_lite0": ("tf_efficientnet_lite0.in1k", "224"),
          "efficientnet_lite1": ("tf_efficientnet_lite1.in1k", "240"),
          "efficientnet_lite2": ("tf_efficientnet_lite2.in1k", "260")}
SETS = ("imagenet_sample", "imagenet_sample_noise3", "imagenet_sample_contrast3")
# Images a set holds: all 1,000 clean photographs; the corrupted copies take every fourth (every: 4).
N_IMAGES = {"imagenet_sample": 1000, "imagenet_sample_noise3": 250, "imagenet_sample_contrast3": 250}


@pytest.fixture(scope="module")
def imagenet_run(tmp_path_factory) -> Path:
    if not os.environ.get("ZOOPROBE_ASSETS"):
        pytest.skip("ZOOPROBE_ASSETS is not set; point it at the shared assets folder to run "
                    "configs/imagenet-sample.yaml")
    workdir = tmp_path_factory.mktemp("imagenet-sample")
    snakemake(workdir, "--cores", "2", configfile=REPO / "configs" / "imagenet-sample.yaml", timeout=1200)
    return workdir


def test_own_head_top1_per_model_and_set_with_intervals_beside_published(imagenet_run, assets_dir):
    scores = pd.read_csv(imagenet_run / "results" / "scores.csv")
    head = scores[scores.metric == "head_accuracy"]
    assert sorted(zip(head.model, head.benchmark)) == sorted((m, s) for m in MODELS for s in SETS)
    assert (head.n == head.benchmark.map(N_IMAGES)).all(), head[["model", "benchmark", "n"]]
    assert ((head.ci_low <= head.value) & (head.value <= head.ci_high) & (head.ci_low < head.ci_high)).all()
    clean = head[head.benchmark == "imagenet_sample"].set_index("model").value
    assert (clean > 0.6).all(), clean  # real ImageNet weights on real photographs over 1,000 classes
    with open(assets_dir / "timm-results" / "results-imagenet.csv") as f:
        table = {(row["model"], row["img_size"]): float(row["top1"]) for row in csv.DictReader(f)}
    published = scores[scores.metric == "published_accuracy"].set_index("model")
    for model, key in MODELS.items():
        assert published.loc[model, "value"] == pytest.approx(table[key] / 100)
        assert key[0] in published.loc[model, "method"]
    for shifted in SETS[1:]:
        rows = scores[(scores.benchmark == f"imagenet_sample~{shifted}")]
        assert {"kendall_tau_given_zoo", "spearman_rho_given_zoo"} <= set(rows.metric)
        noisy = head[head.benchmark == shifted].set_index("model").value
        assert (noisy < clean).all()  # ImageNet-C at severity 3 costs every model accuracy
    with h5py.File(imagenet_run / "data" / "datasets" / "imagenet_sample_noise3.h5") as f:
        assert json.loads(f.attrs["provenance"])["corruption_parameters"] == "imagenet"
    # The corrupted copies hold every fourth clean photograph (one of each of 250 classes), keep all 1,000
    # class names, and so are scored over the whole 1000-way head like the clean set.
    from zooprobe.io import h5io

    clean_labels, _, clean_info = h5io.read_image_labels(imagenet_run / "data" / "datasets" / "imagenet_sample.h5")
    for shifted in SETS[1:]:
        labels, _, info = h5io.read_image_labels(imagenet_run / "data" / "datasets" / f"{shifted}.h5")
        assert labels.tolist() == clean_labels[::4].tolist() and len(set(labels.tolist())) == 250
        assert info["class_names"] == clean_info["class_names"] and len(info["class_names"]) == 1000
        assert info["head_classes"] == clean_info["head_classes"]


def test_each_model_reads_the_photographs_through_its_own_eval_transform(imagenet_run):
    """Clean set: the kept JPEGs, decoded and transformed per model; corrupted copies: the stored squares."""
    from zooprobe.io import h5io

    for model, (_, size) in MODELS.items():
        for dataset in SETS:
            preprocessing = h5io.read_features(imagenet_run / "data" / "features" / model / f"{dataset}.h5",
                                               layers=[]).provenance["preprocessing"]
            assert preprocessing["eval_transform"] and preprocessing["input_size"] == int(size)
            assert preprocessing["crop_pct"] < 1 and preprocessing["interpolation"] == "bicubic"
            if dataset == "imagenet_sample":
                assert preprocessing["pixels"].startswith("encoded files")
            else:
                assert preprocessing["stored_size"] == 292 and not preprocessing["upsampled"]


def test_report_shows_published_top1_beside_own_head(imagenet_run):
    page = (imagenet_run / "results" / "report" / "index.html").read_text()
    assert "published in" in page and "tf_efficientnet_lite2.in1k at 260 px" in page


def test_the_effective_robustness_fit_of_the_lites_over_each_corruption(imagenet_run):
    from scipy import stats as sps

    scores = pd.read_csv(imagenet_run / "results" / "scores.csv")
    summary = json.loads((imagenet_run / "results" / "analysis" / "summary.json").read_text())
    head = scores[scores.metric == "head_accuracy"].pivot(index="model", columns="benchmark", values="value")
    fits = {(r["id"], r["ood"]): r for r in summary["robustness"]}
    for ood in SETS[1:]:
        record = fits[("imagenet_sample", ood)]
        assert record["source"] == "head" and record["fit"]["n_models"] == 3
        expected = sps.linregress(sps.norm.ppf(head.loc[list(MODELS), "imagenet_sample"]),
                                  sps.norm.ppf(head.loc[list(MODELS), ood]))
        rows = scores[(scores.benchmark == f"imagenet_sample~{ood}") & (scores.layer == "head")].set_index(
            ["model", "metric"])
        assert rows.loc[("(all)", "er_slope"), "value"] == pytest.approx(expected.slope)
        assert rows.loc[("(all)", "er_intercept"), "value"] == pytest.approx(expected.intercept)
        er = rows.xs("effective_robustness", level="metric")
        assert sorted(er.index) == sorted(MODELS) and (er.ci_low <= er.value).all() and (er.value <= er.ci_high).all()
    page = (imagenet_run / "results" / "report" / "index.html").read_text()
    assert "Effective robustness" in page and "OOD against ID accuracy on probit axes" in page
