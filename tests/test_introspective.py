"""Introspective classification: the sampler, the negatives in training, 0 rounds = baseline, the workflow."""
from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import zooprobe.introspective as icn
import zooprobe.train as train_module
from zooprobe.config import ConfigError, check_config
from zooprobe.datasets import build_packaged
from zooprobe.models import ModelSpec, build_timm, create_model, preprocessing_of
from zooprobe.train import Recipe, train_model
from workflow_helpers import REPO, snakemake

ICN_CONFIG = REPO / "tests" / "configs" / "icn.yaml"
SMALL = dict(rounds=1, samples_per_class=4, grid_per_class=2,
             sampler=icn.SamplerSettings(steps=10, step_size=1.0, noise=0.01))


@pytest.fixture(scope="module")
def digits():
    return build_packaged(name="sklearn:digits", size=16, splits={"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)


@pytest.fixture(scope="module")
def spec():
    return ModelSpec(name="r", source="trained", arch="resnet10t", input_size=16)


@pytest.fixture(scope="module")
def trained(digits, spec):
    """A (K+1)-output classifier after 2 epochs, in eval mode."""
    checkpoint, _ = train_model(spec, digits, Recipe(epochs=2, batch_size=64, augment=False), progress=False,
                                negative_output=True)
    model = build_timm(spec, num_classes=11)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def test_sgld_raises_the_target_class_score_on_average(trained):
    preprocess = preprocessing_of(trained)
    generator = torch.Generator().manual_seed(0)
    targets = torch.arange(10).repeat_interleave(6)
    start = (0.3 + 0.3 * torch.randn((len(targets), 16, 16, 3), generator=generator)).clamp(0, 1)

    def score(x):
        return icn.class_scores(trained(preprocess(x)), targets)

    samples = icn.sgld(score, start, icn.SamplerSettings(steps=20, step_size=1.0, noise=0.01),
                       low=0.0, high=1.0, generator=generator)
    with torch.no_grad():
        before, after = score(start), score(samples)
    assert float(after.mean()) > float(before.mean()) + 1.0
    assert float((after > before).float().mean()) > 0.8  # most samples climb, not just a few outliers
    assert float(samples.min()) >= 0.0 and float(samples.max()) <= 1.0
    # Other classes' scores are not the ones climbed: the target's rises more than the average class's.
    with torch.no_grad():
        logits = trained(preprocess(samples))
    assert float(icn.class_scores(logits, targets).mean()) > float((logits[:, :10] - logits[:, 10:]).mean())


def test_feature_space_sgld_raises_the_score_and_stays_in_the_training_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(loc, 1.0, size=(60, 8)) for loc in (-2.0, 0.0, 2.0)]).astype(np.float32)
    y = np.repeat(np.arange(3), 60)
    probe = icn.fit_feature_probe(x, y, num_classes=3, settings=icn.FeatureProbeSettings(epochs=20, rounds=0),
                                  seed=0)
    z = (torch.from_numpy(x) - probe.mean) / probe.std
    low, high = z.min(0).values, z.max(0).values
    targets = torch.arange(3).repeat_interleave(20)
    start = torch.zeros((60, 8))

    def score(v):
        return icn.class_scores(probe.head(v), targets)

    samples = icn.sgld(score, start, icn.SamplerSettings(steps=20, step_size=0.1, noise=0.01), low=low, high=high,
                       generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float(score(samples).mean()) > float(score(start).mean()) + 0.5
    assert bool((samples >= low).all()) and bool((samples <= high).all())


def test_pseudo_negatives_enter_training_labelled_as_the_negative_class(digits, spec, monkeypatch):
    seen: list[torch.Tensor] = []
    real_loss = torch.nn.functional.cross_entropy

    def spy(logits, labels, **kwargs):
        seen.append(labels.detach().cpu().clone())
        return real_loss(logits, labels, **kwargs)

    monkeypatch.setattr(train_module.F, "cross_entropy", spy)
    recipe = Recipe(epochs=3, batch_size=64, augment=False)
    settings = icn.IntrospectiveSettings(**dict(SMALL, rounds=2))
    checkpoint, history = icn.train_introspective(spec, digits, recipe, settings, progress=False)
    n_train = int((digits.split == "train").sum())
    # Round r sits before epoch r (3 epochs, 2 rounds): 0, then 40, then 80 negatives per epoch.
    assert [h["negatives"] for h in history] == [0, 40, 80]
    per_epoch = [n_train, n_train + 40, n_train + 80]
    labels = torch.cat(seen)
    assert len(labels) == sum(per_epoch)
    bounds = np.cumsum([0, *per_epoch])
    for epoch, expected in enumerate([0, 40, 80]):
        epoch_labels = labels[bounds[epoch]:bounds[epoch + 1]]
        assert int((epoch_labels == 10).sum()) == expected  # K = 10 is "pseudo-negative"
        assert sorted(epoch_labels[epoch_labels < 10].tolist()) == sorted(digits.subset("train").labels.tolist())
    assert checkpoint["num_classes"] == 11 and checkpoint["negative_class"] == 10
    assert len(checkpoint["sample_grids"]) == 2
    assert tuple(checkpoint["sample_grids"][0].shape) == (10 * 17 - 1, 2 * 17 - 1, 3)


def test_feature_probe_negatives_are_labelled_negative(monkeypatch):
    seen: list[torch.Tensor] = []
    real_loss = torch.nn.functional.cross_entropy

    def spy(logits, labels, **kwargs):
        seen.append(labels.clone())
        return real_loss(logits, labels, **kwargs)

    monkeypatch.setattr(icn.F, "cross_entropy", spy)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 4)).astype(np.float32), np.repeat(np.arange(3), 10)
    settings = icn.FeatureProbeSettings(epochs=3, rounds=2, samples_per_class=5, batch_size=1000)
    probe = icn.fit_feature_probe(x, y, num_classes=3, settings=settings, seed=0)
    assert [int((labels == 3).sum()) for labels in seen] == [0, 15, 30]
    assert [len(labels) for labels in seen] == [30, 45, 60]
    assert [r["round"] for r in probe.rounds] == [1, 2]


def test_zero_rounds_gives_exactly_the_baseline(digits, spec):
    recipe = Recipe(epochs=2, batch_size=64, augment=False)
    ood = {"noise": digits.subset("test")}
    result, grids = icn.compare_from_scratch(spec, digits, ood, recipe,
                                             icn.IntrospectiveSettings(**dict(SMALL, rounds=0)), epsilons_255=(2,))
    assert result["baseline"]["weights_sha256"] == result["icn"]["weights_sha256"]
    assert result["baseline"]["scores"] == result["icn"]["scores"]
    assert grids == [] and result["icn"]["rounds"] == []
    # ...and with a round the ICN is a different network, scored on the same keys.
    more, _ = icn.compare_from_scratch(spec, digits, ood, recipe, icn.IntrospectiveSettings(**SMALL),
                                       epsilons_255=(2,))
    assert more["baseline"]["scores"] == result["baseline"]["scores"]  # the baseline is reproducible
    assert more["icn"]["weights_sha256"] != more["baseline"]["weights_sha256"]
    assert set(more["icn"]["scores"]) == {"test_error", "ood_error:noise", "fgsm_error:2/255"}


def test_zero_round_probe_is_exactly_the_plain_probe():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, 6)).astype(np.float32), np.repeat(np.arange(3), 20)
    settings = icn.FeatureProbeSettings(epochs=5, rounds=0)
    rows = icn.compare_probes((x, y), (x, y), {"id": (x, y)}, num_classes=3, settings=settings, seeds=[0, 1])
    by = {(r["seed"], r["method"]): r for r in rows}
    for seed in (0, 1):
        assert by[(seed, "plain")]["accuracy"] == by[(seed, "icn")]["accuracy"]
        assert by[(seed, "plain")]["val_accuracy"] == by[(seed, "icn")]["val_accuracy"]


def test_fgsm_with_zero_budget_is_the_clean_error_and_grows_with_the_budget(trained, digits):
    test = digits.subset("test")
    preprocess = preprocessing_of(trained)
    clean = icn.error_rate(trained, preprocess, test.images, test.labels, num_classes=10)
    errors = [icn.fgsm_error(trained, preprocess, test.images, test.labels, epsilon=eps / 255, num_classes=10)
              for eps in (0, 4, 16)]
    assert errors[0] == pytest.approx(clean)
    assert errors[0] < errors[1] < errors[2]


def test_an_icn_checkpoint_is_a_zoo_model_with_k_outputs(digits, tmp_path):
    spec = ModelSpec.from_config("icn", {"source": "trained", "arch": "introspective:resnet10t", "input_size": 16,
                                         "train_on": "digits"})
    assert spec.introspective and spec.timm_arch == "resnet10t"
    checkpoint, _ = icn.train_introspective(spec, digits, Recipe(epochs=2, batch_size=64, augment=False),
                                            icn.IntrospectiveSettings(**SMALL), progress=False)
    torch.save(checkpoint, tmp_path / "icn.pt")
    full = build_timm(spec, num_classes=11)
    full.load_state_dict(checkpoint["state_dict"])
    zoo = create_model(spec, weights=tmp_path / "icn.pt")
    x = preprocessing_of(full)(torch.from_numpy(digits.images[:8]))
    with torch.no_grad():
        assert torch.equal(zoo.model.eval()(x), full.eval()(x)[:, :10])


def test_paired_summary_and_holm_verdicts_within_an_experiment():
    from scipy import stats as sps

    helped = icn.summarise_paired([0.10, 0.20, 0.30], [0.08, 0.179, 0.281])
    assert helped["diff_high"] < 0 and helped["diff_mean"] == pytest.approx(-0.02)
    assert helped["p"] == pytest.approx(sps.ttest_rel([0.08, 0.179, 0.281], [0.10, 0.20, 0.30]).pvalue)
    mixed = icn.summarise_paired([0.10, 0.20, 0.30], [0.12, 0.17, 0.30])
    assert mixed["diff_low"] < 0 < mixed["diff_high"]
    hurt = icn.summarise_paired([0.1, 0.1, 0.1], [0.3, 0.31, 0.32])
    with pytest.raises(ValueError, match="same seeds"):
        icn.summarise_paired([0.1, 0.2], [0.1])
    family = [dict(v, experiment="from_scratch") for v in (helped, mixed, hurt)]
    judged = icn.add_verdicts(family)
    assert [v["verdict"] for v in judged] == ["helped", "no clear difference", "hurt"]
    # Holm over the three: the smallest p is multiplied by 3.
    smallest = min(range(3), key=lambda i: family[i]["p"])
    assert judged[smallest]["p_holm"] == pytest.approx(min(1.0, 3 * family[smallest]["p"]))
    # The same 'helped' comparison among enough null ones that p x family size passes 0.05 no longer clears
    # Holm's bar.
    crowd = family[:1] + [dict(mixed, experiment="from_scratch") for _ in range(int(0.05 / helped["p"]) + 1)]
    assert icn.add_verdicts(crowd)[0]["verdict"] == "no clear difference"


def _icn_config():
    return yaml.safe_load(ICN_CONFIG.read_text())


@pytest.mark.parametrize("change, message", [
    (lambda c: c["introspective"]["model"].update(rounds=2), "between 0 and train.epochs - 1 (1)"),
    (lambda c: c["introspective"]["model"]["sampler"].update(init="uniform"), "['noise', 'previous']"),
    (lambda c: c["introspective"]["compare"]["architectures"]["resnet10t"].update(arch="resnet10"),
     "Did you mean"),
    (lambda c: c["introspective"]["compare"]["datasets"].update(digitz={}), "valid datasets: digits, digits_blur"),
    (lambda c: c["introspective"]["probe"].update(tasks=["mnist"]), "valid probe tasks: digits"),
    (lambda c: c["introspective"]["probe"].update(head="svm"), "['linear', 'mlp']"),
    (lambda c: c["models"]["icn_resnet10t"].update(source="timm"), "use source 'trained'"),
    (lambda c: c["introspective"].pop("model"), "introspective.model: needed by ['icn_resnet10t']"),
])
def test_bad_introspective_params_fail_early_with_the_valid_choices(change, message):
    config = copy.deepcopy(_icn_config())
    change(config)
    with pytest.raises((ConfigError, ValueError)) as error:
        check_config(config, check_layers=False)
    assert message in str(error.value)


@pytest.fixture(scope="module")
def icn_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("icn")
    snakemake(workdir, "--cores", "2", configfile=ICN_CONFIG)
    return workdir


def test_workflow_compares_icn_with_its_baseline_and_reports_it(icn_run):
    config = _icn_config()
    scores = pd.read_csv(icn_run / "results/introspective/scores.csv")
    scratch = scores[scores.experiment == "from_scratch"]
    # No timings among the results: they go to logs, so a rerun writes the same bytes.
    metrics = {"test_error", "ood_error:digits_blur", "fgsm_error:1/255", "fgsm_error:2/255", "fgsm_error:4/255"}
    assert set(scratch.metric) == metrics
    assert sorted(scratch.seed.unique()) == config["introspective"]["compare"]["seeds"]
    assert len(scratch) == 2 * 2 * len(metrics)  # seeds x methods x metrics
    assert scratch.value.between(0, 1).all()
    summary = json.loads((icn_run / "results/introspective/summary.json").read_text())
    verdicts = {(v["experiment"], v["arch"], v["metric"]): v for v in summary["verdicts"]}
    assert {m for e, _, m in verdicts if e == "from_scratch"} == metrics
    assert {v["verdict"] for v in summary["verdicts"]} <= {"helped", "hurt", "no clear difference"}
    # Each verdict's means are those of the tidy table.
    test = verdicts[("from_scratch", "resnet10t", "test_error")]
    rows = scratch[scratch.metric == "test_error"]
    assert test["icn_mean"] == pytest.approx(rows[rows.method == "icn"].value.mean())
    # The probe ran on both zoo models, plain against introspective, at every layer and seed.
    probes = scores[scores.experiment == "probe"]
    assert set(probes.model) == {"resnet10t", "icn_resnet10t"} and set(probes.method) == {"baseline", "icn"}
    # The sampler climbed its score in every round of every seed.
    for seed in config["introspective"]["compare"]["seeds"]:
        result = json.loads((icn_run / f"results/introspective/compare/digits/resnet10t-s{seed}.json").read_text())
        assert result["icn"]["rounds"] and all(r["score_after"] > r["score_before"] for r in result["icn"]["rounds"])
        assert result["provenance"]["seed"] == seed and result["provenance"]["dataset_sha256"]
    grids = np.load(icn_run / "results/introspective/compare/digits/resnet10t-s0.npz")
    assert grids["round_1"].shape == (10 * 17 - 1, 3 * 17 - 1, 3) and grids["round_1"].dtype == np.uint8
    page = (icn_run / "results/report/index.html").read_text()
    assert "Introspective classification" in page
    assert "digits, resnet10t: ICN" in page and "pseudo-negatives per round" in page
    assert page.count("Introspective probe on frozen features") == 1
    # The ICN zoo model went through the ranking pipeline like any other model.
    ranked = pd.read_csv(icn_run / "results/scores.csv")
    assert "icn_resnet10t" in set(ranked.model)
    assert "round 1 before epoch 2" in (icn_run / "logs/train/icn_resnet10t.log").read_text()


def test_changing_the_sampler_reruns_icn_jobs_only(icn_run, tmp_path):
    config = _icn_config()
    config["introspective"]["model"]["sampler"]["steps"] = 11
    changed = tmp_path / "icn.yaml"
    changed.write_text(yaml.safe_dump(config))
    plan = snakemake(icn_run, "-n", "--rerun-triggers", "params", configfile=changed).stdout
    from workflow_helpers import rules_run

    assert rules_run(plan) == {"icn_compare", "train", "extract", "probe", "icn_probe", "icn_table", "analyse",
                               "report"}
    assert "data/models/icn_resnet10t.pt" in plan and "data/models/resnet10t.pt" not in plan
