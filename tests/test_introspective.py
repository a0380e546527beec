"""Introspective classification: the Langevin sampler, the negatives in training, 0 rounds = baseline, the workflow."""
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

import zooprobe.train.icn.comparison as comparison
import zooprobe.train.icn.evaluation as evaluation
import zooprobe.train.icn.probe as feature_probe
import zooprobe.train.icn.sampler as sampler
import zooprobe.train.icn.tables as tables
import zooprobe.train.icn.training as training
import zooprobe.train.recipe as train_module
from zooprobe.params.config import ConfigError
from zooprobe.params.introspective import FeatureProbeSettings, IntrospectiveSettings, SamplerSettings
from zooprobe.params.settings import Recipe
from zooprobe.params.spec import ModelSpec
from zooprobe.data.files import build_packaged
from zooprobe.zoo.checks import check_zoo
from zooprobe.zoo.factory import build_timm, create_model, preprocessing_of
from zooprobe.train.recipe import top1, train_model
from workflow_helpers import REPO, snakemake

ICN_CONFIG = REPO / "tests" / "configs" / "icn.yaml"
SMALL = dict(rounds=1, samples_per_class=4, grid_per_class=2,
             sampler=SamplerSettings(steps=10, step_size=1.0, temperature=5e-5))


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


def test_low_temperature_langevin_raises_the_target_class_score_on_average(trained):
    preprocess = preprocessing_of(trained)
    generator = torch.Generator().manual_seed(0)
    targets = torch.arange(10).repeat_interleave(6)
    start = (0.3 + 0.3 * torch.randn((len(targets), 16, 16, 3), generator=generator)).clamp(0, 1)

    def score(x):
        return sampler.class_scores(trained(preprocess(x)), targets)

    # T = 5e-5 at step 1 is noise sd 0.01: a cold chain climbs towards the class's high-score region.
    samples = sampler.langevin(score, start, SamplerSettings(steps=20, step_size=1.0, temperature=5e-5),
                           low=0.0, high=1.0, generator=generator)
    with torch.no_grad():
        before, after = score(start), score(samples)
    assert float(after.mean()) > float(before.mean()) + 1.0
    assert float((after > before).float().mean()) > 0.8  # most samples climb, not just a few outliers
    assert float(samples.min()) >= 0.0 and float(samples.max()) <= 1.0
    # Other classes' scores are not the ones climbed: the target's rises more than the average class's.
    with torch.no_grad():
        logits = trained(preprocess(samples))
    assert float(sampler.class_scores(logits, targets).mean()) > float((logits[:, :10] - logits[:, 10:]).mean())
    # At T = 1 (the default, and tests/configs/icn.yaml's 10 steps of 0.01) the chains still move up from
    # noise towards the model's distribution, only less far: samples, not modes.
    warm = sampler.langevin(score, start, SamplerSettings(steps=10, step_size=0.01), low=0.0, high=1.0,
                        generator=generator)
    with torch.no_grad():
        warm_score = score(warm)
    assert float(before.mean()) < float(warm_score.mean()) < float(after.mean())


def test_feature_space_langevin_raises_the_score_and_stays_in_the_training_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(loc, 1.0, size=(60, 8)) for loc in (-2.0, 0.0, 2.0)]).astype(np.float32)
    y = np.repeat(np.arange(3), 60)
    probe = feature_probe.fit_feature_probe(x, y, num_classes=3, settings=FeatureProbeSettings(epochs=20, rounds=0),
                                  seed=0)
    z = (torch.from_numpy(x) - probe.mean) / probe.std
    low, high = z.min(0).values, z.max(0).values
    targets = torch.arange(3).repeat_interleave(20)
    start = torch.zeros((60, 8))

    def score(v):
        return sampler.class_scores(probe.head(v), targets)

    samples = sampler.langevin(score, start, SamplerSettings(steps=20, step_size=0.1, temperature=5e-4), low=low,
                           high=high, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float(score(samples).mean()) > float(score(start).mean()) + 0.5
    assert bool((samples >= low).all()) and bool((samples <= high).all())


def test_pseudo_negatives_enter_training_labelled_as_the_negative_class(digits, spec, monkeypatch):
    seen: list[tuple[torch.Tensor, dict]] = []
    real_loss = train_module.classification_loss

    def spy(logits, labels, **kwargs):
        seen.append((labels.detach().cpu().clone(), kwargs))
        return real_loss(logits, labels, **kwargs)

    monkeypatch.setattr(train_module, "classification_loss", spy)
    recipe = Recipe(epochs=3, batch_size=64, augment=False, label_smoothing=0.1)
    settings = IntrospectiveSettings(**dict(SMALL, rounds=2))
    checkpoint, history = training.train_introspective(spec, digits, recipe, settings, progress=False)
    n_train = int((digits.split == "train").sum())
    # Round r sits before epoch r (3 epochs, 2 rounds): 0, then 40, then 80 negatives per epoch.
    assert [h["negatives"] for h in history] == [0, 40, 80]
    per_epoch = [n_train, n_train + 40, n_train + 80]
    labels = torch.cat([batch for batch, _ in seen])
    assert len(labels) == sum(per_epoch)
    bounds = np.cumsum([0, *per_epoch])
    for epoch, expected in enumerate([0, 40, 80]):
        epoch_labels = labels[bounds[epoch]:bounds[epoch + 1]]
        assert int((epoch_labels == 10).sum()) == expected  # K = 10 is "pseudo-negative"
        assert sorted(epoch_labels[epoch_labels < 10].tolist()) == sorted(digits.subset("train").labels.tolist())
    # Every batch goes through the loss that smooths real labels only (tested below).
    assert all(kwargs == {"num_classes": 10, "label_smoothing": 0.1, "negative_output": True} for _, kwargs in seen)
    assert checkpoint["num_classes"] == 11 and checkpoint["negative_class"] == 10
    assert len(checkpoint["sample_grids"]) == 2
    assert tuple(checkpoint["sample_grids"][0].shape) == (10 * 17 - 1, 2 * 17 - 1, 3)
    # Provenance: the sampler as used, defaults filled in.
    assert checkpoint["introspective_settings"]["sampler"] == {"steps": 10, "step_size": 1.0, "temperature": 5e-5,
                                                               "init": "previous"}


def test_label_smoothing_touches_real_examples_only():
    from torch.nn import functional as F

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn((6, 4), generator=generator)  # K = 3 classes + pseudo-negative
    labels = torch.tensor([0, 1, 2, 3, 3, 1])
    s = 0.2
    loss = train_module.classification_loss(logits, labels, num_classes=3, label_smoothing=s, negative_output=True)
    log_p = logits.log_softmax(1)
    expected = []
    for row, label in enumerate(labels.tolist()):
        if label == 3:  # a pseudo-negative: hard target
            expected.append(-log_p[row, 3])
        else:  # a real example: smoothed over the 3 classes, nothing on pseudo-negative
            target = torch.full((4,), s / 3)
            target[3] = 0.0
            target[label] += 1 - s
            expected.append(-(target * log_p[row]).sum())
    assert float(loss) == pytest.approx(float(torch.stack(expected).mean()), rel=1e-6)
    # A batch of negatives alone is plain cross-entropy, whatever the smoothing.
    negatives = labels == 3
    assert float(train_module.classification_loss(logits[negatives], labels[negatives], num_classes=3,
                                                  label_smoothing=s, negative_output=True)) == pytest.approx(
        float(F.cross_entropy(logits[negatives], labels[negatives])), rel=1e-6)
    # Without a pseudo-negative output nothing changes: PyTorch's smoothing over the K outputs.
    plain = logits[:, :3][labels < 3]
    assert torch.equal(train_module.classification_loss(plain, labels[labels < 3], num_classes=3, label_smoothing=s,
                                                        negative_output=False),
                       F.cross_entropy(plain, labels[labels < 3], label_smoothing=s))


def _gaussian_log_density(mean: torch.Tensor, variance: torch.Tensor):
    def log_p(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * (((x - mean) ** 2) / variance).sum(dim=1)
    return log_p


@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_langevin_draws_from_a_2d_gaussian_at_its_temperature(temperature):
    """Many chains on log p = -0.5 (x - mu)' Sigma^-1 (x - mu): their end points have mean mu, variance T Sigma."""
    mean, variance = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    start = torch.randn((4000, 2), generator=generator, dtype=torch.float64)
    # Step 0.01: the discretisation inflates the variance by 1 / (1 - step / (2 T sigma^2)), at most 4%;
    # 1500 steps: the slowest coordinate relaxes as (1 - step / sigma^2)^steps = e^-7.5.
    settings = SamplerSettings(steps=1500, step_size=0.01, temperature=temperature)
    bounds = torch.tensor([-50.0, -50.0], dtype=torch.float64), torch.tensor([50.0, 50.0], dtype=torch.float64)
    samples = sampler.langevin(_gaussian_log_density(mean, variance), start, settings, low=bounds[0], high=bounds[1],
                           generator=generator).numpy()
    assert samples.mean(0) == pytest.approx(mean.numpy(), rel=0.10)
    assert samples.var(0, ddof=1) == pytest.approx(temperature * variance.numpy(), rel=0.10)
    # The old sampler's defaults (step 0.01 here, independent noise sd 0.01, i.e. T = 0.005) give near-modes:
    cold = sampler.langevin(_gaussian_log_density(mean, variance), start, replace(settings, temperature=0.005),
                        low=None, high=None, generator=generator).numpy()
    assert (cold.var(0, ddof=1) < 0.05 * variance.numpy()).all()


def test_temperature_reproduces_an_independent_noise_sd():
    """noise sd sigma at step s is T = sigma^2 / (2 s): the update is x + s grad + sigma eps, step for step."""
    def score(x):
        return -(x ** 4).sum(dim=1)

    start = torch.randn((50, 3), generator=torch.Generator().manual_seed(1))
    settings = SamplerSettings(steps=5, step_size=0.1, temperature=0.01 ** 2 / (2 * 0.1))
    samples = sampler.langevin(score, start, settings, low=-1.0, high=1.0, generator=torch.Generator().manual_seed(2))
    generator, x = torch.Generator().manual_seed(2), start.clone()
    for _ in range(5):
        x = torch.clamp(x - 0.1 * 4 * x ** 3 + 0.01 * torch.randn(x.shape, generator=generator), -1.0, 1.0)
    assert torch.allclose(samples, x, atol=1e-6)


def test_a_config_naming_noise_fails_with_what_replaced_it():
    with pytest.raises(ValueError, match=r"'noise' was replaced by 'temperature'.*temperature 5e-05"):
        IntrospectiveSettings.from_config({"rounds": 1, "samples_per_class": 2,
                                               "sampler": {"steps": 10, "step_size": 1.0, "noise": 0.01}})
    with pytest.raises(ValueError, match="introspective.probe.sampler: 'noise' was replaced"):
        FeatureProbeSettings.from_config({"sampler": {"steps": 10, "step_size": 0.1, "noise": 0.01}})
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        SamplerSettings(temperature=-1.0)


def test_chains_persist_across_rounds_by_default(monkeypatch):
    assert SamplerSettings().init == "previous" and FeatureProbeSettings().sampler.init == "previous"
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    real_langevin = sampler.langevin

    def spy(score, start, settings, **kwargs):
        out = real_langevin(score, start, settings, **kwargs)
        calls.append((start.clone(), out.clone()))
        return out

    monkeypatch.setattr(feature_probe, "langevin", spy)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 4)).astype(np.float32), np.repeat(np.arange(3), 10)
    for init in ("previous", "noise"):
        calls.clear()
        settings = FeatureProbeSettings(epochs=4, rounds=3, samples_per_class=5,
                                            sampler=SamplerSettings(steps=3, step_size=0.1, init=init))
        feature_probe.fit_feature_probe(x, y, num_classes=3, settings=settings, seed=0)
        assert len(calls) == 3
        continued = [torch.equal(calls[r + 1][0], calls[r][1]) for r in range(2)]
        assert continued == ([True, True] if init == "previous" else [False, False])


def test_feature_probe_negatives_are_labelled_negative(monkeypatch):
    seen: list[torch.Tensor] = []
    real_loss = torch.nn.functional.cross_entropy

    def spy(logits, labels, **kwargs):
        seen.append(labels.clone())
        return real_loss(logits, labels, **kwargs)

    monkeypatch.setattr(feature_probe.F, "cross_entropy", spy)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 4)).astype(np.float32), np.repeat(np.arange(3), 10)
    settings = FeatureProbeSettings(epochs=3, rounds=2, samples_per_class=5, batch_size=1000)
    probe = feature_probe.fit_feature_probe(x, y, num_classes=3, settings=settings, seed=0)
    assert [int((labels == 3).sum()) for labels in seen] == [0, 15, 30]
    assert [len(labels) for labels in seen] == [30, 45, 60]
    assert [r["round"] for r in probe.rounds] == [1, 2]


def test_zero_rounds_gives_exactly_the_baseline(digits, spec):
    recipe = Recipe(epochs=2, batch_size=64, augment=False)
    ood = {"noise": digits.subset("test")}
    result, grids = comparison.compare_from_scratch(spec, digits, ood, recipe,
                                             IntrospectiveSettings(**dict(SMALL, rounds=0)), epsilons_255=(2,))
    assert result["baseline"]["weights_sha256"] == result["icn"]["weights_sha256"]
    assert result["baseline"]["scores"] == result["icn"]["scores"]
    assert grids == [] and result["icn"]["rounds"] == []
    # ...and with a round the ICN is a different network, scored on the same keys.
    more, _ = comparison.compare_from_scratch(spec, digits, ood, recipe, IntrospectiveSettings(**SMALL),
                                       epsilons_255=(2,))
    assert more["baseline"]["scores"] == result["baseline"]["scores"]  # the baseline is reproducible
    assert more["icn"]["weights_sha256"] != more["baseline"]["weights_sha256"]
    assert set(more["icn"]["scores"]) == {"test_error", "ood_error:noise", "fgsm_error:2/255"}


def test_zero_round_probe_is_exactly_the_plain_probe():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, 6)).astype(np.float32), np.repeat(np.arange(3), 20)
    settings = FeatureProbeSettings(epochs=5, rounds=0)
    rows = feature_probe.compare_probes((x, y), (x, y), {"id": (x, y)}, num_classes=3, settings=settings, seeds=[0, 1])
    by = {(r["seed"], r["method"]): r for r in rows}
    for seed in (0, 1):
        assert by[(seed, "plain")]["accuracy"] == by[(seed, "icn")]["accuracy"]
        assert by[(seed, "plain")]["val_accuracy"] == by[(seed, "icn")]["val_accuracy"]


def test_fgsm_with_zero_budget_is_the_clean_error_and_grows_with_the_budget(trained, digits):
    test = digits.subset("test")
    preprocess = preprocessing_of(trained)
    clean = top1(trained, preprocess, test.images, test.labels, num_classes=10).error
    errors = [evaluation.fgsm_error(trained, preprocess, test.images, test.labels, epsilon=eps / 255, num_classes=10)
              for eps in (0, 4, 16)]
    assert errors[0] == pytest.approx(clean)
    assert errors[0] < errors[1] < errors[2]


def test_an_icn_checkpoint_is_a_zoo_model_with_k_outputs(digits, tmp_path):
    spec = ModelSpec.from_config("icn", {"source": "trained", "arch": "introspective:resnet10t", "input_size": 16,
                                         "train_on": "digits"})
    assert spec.introspective and spec.timm_arch == "resnet10t"
    checkpoint, _ = training.train_introspective(spec, digits, Recipe(epochs=2, batch_size=64, augment=False),
                                            IntrospectiveSettings(**SMALL), progress=False)
    torch.save(checkpoint, tmp_path / "icn.pt")
    full = build_timm(spec, num_classes=11)
    full.load_state_dict(checkpoint["state_dict"])
    zoo = create_model(spec, weights=tmp_path / "icn.pt")
    x = preprocessing_of(full)(torch.from_numpy(digits.images[:8]))
    with torch.no_grad():
        assert torch.equal(zoo.model.eval()(x), full.eval()(x)[:, :10])


def test_paired_summary_and_holm_verdicts_within_an_experiment():
    from scipy import stats as sps

    helped = tables.summarise_paired([0.10, 0.20, 0.30], [0.08, 0.179, 0.281])
    assert helped["diff_high"] < 0 and helped["diff_mean"] == pytest.approx(-0.02)
    assert helped["p"] == pytest.approx(sps.ttest_rel([0.08, 0.179, 0.281], [0.10, 0.20, 0.30]).pvalue)
    mixed = tables.summarise_paired([0.10, 0.20, 0.30], [0.12, 0.17, 0.30])
    assert mixed["diff_low"] < 0 < mixed["diff_high"]
    hurt = tables.summarise_paired([0.1, 0.1, 0.1], [0.3, 0.31, 0.32])
    with pytest.raises(ValueError, match="same seeds"):
        tables.summarise_paired([0.1, 0.2], [0.1])
    family = [dict(v, experiment="from_scratch") for v in (helped, mixed, hurt)]
    judged = tables.add_verdicts(family)
    assert [v["verdict"] for v in judged] == ["helped", "no clear difference", "hurt"]
    # Holm over the three: the smallest p is multiplied by 3.
    smallest = min(range(3), key=lambda i: family[i]["p"])
    assert judged[smallest]["p_holm"] == pytest.approx(min(1.0, 3 * family[smallest]["p"]))
    # The same 'helped' comparison among enough null ones that p x family size passes 0.05 no longer clears
    # Holm's bar.
    crowd = family[:1] + [dict(mixed, experiment="from_scratch") for _ in range(int(0.05 / helped["p"]) + 1)]
    assert tables.add_verdicts(crowd)[0]["verdict"] == "no clear difference"


def _icn_config():
    return yaml.safe_load(ICN_CONFIG.read_text())


@pytest.mark.parametrize("change, message", [
    (lambda c: c["introspective"]["model"].update(rounds=2), "between 0 and train.epochs - 1 (1)"),
    (lambda c: c["introspective"]["model"]["sampler"].update(init="uniform"), "['previous', 'noise']"),
    (lambda c: c["introspective"]["model"]["sampler"].update(noise=0.01), "'noise' was replaced by 'temperature'"),
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
        check_zoo(config, check_layer_names=False)
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

    assert rules_run(plan) == {"icn_compare", "train", "extract", "probe", "icn_probe", "icn_table", "cka",
                               "analyse", "report"}
    assert "data/models/icn_resnet10t.pt" in plan and "data/models/resnet10t.pt" not in plan


def _tile_grid_by_hand(samples: np.ndarray) -> np.ndarray:
    """The grid as it was laid out before torchvision's make_grid: tiles one white pixel apart, no border."""
    k, g, h, w, c = samples.shape
    grid = np.full((k * (h + 1) - 1, g * (w + 1) - 1, c), 255, dtype=np.uint8)
    for row in range(k):
        for col in range(g):
            grid[row * (h + 1):row * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = samples[row, col]
    return grid


@pytest.mark.parametrize("shape", [(10, 4, 16, 16, 3), (3, 2, 5, 7, 1), (1, 1, 4, 4, 3), (1, 3, 6, 6, 3),
                                   (4, 1, 8, 8, 1), (2, 2, 3, 3, 4)])
def test_tile_grid_lays_tiles_one_white_pixel_apart(shape):
    samples = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)  # 255 excluded: gaps are visible
    grid = sampler.tile_grid(samples)
    assert grid.dtype == np.uint8
    np.testing.assert_array_equal(grid, _tile_grid_by_hand(samples))


def test_top1_counts_errors_exactly_over_the_real_classes_only():
    model = torch.nn.Linear(2, 3)
    with torch.no_grad():  # output 2 (a pseudo-negative) has the largest logit for every image
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [10.0, 10.0]]))
        model.bias.zero_()
    images = np.array([[[[5, 0]]], [[[0, 5]]], [[[0, 5]]]], dtype=np.uint8)  # (3, 1, 1, 2): classes 0, 1, 1

    def preprocess(x: torch.Tensor) -> torch.Tensor:
        return x.float().reshape(len(x), -1)

    counted = top1(model, preprocess, images, np.array([0, 0, 0]), num_classes=2)
    assert (counted.correct, counted.n) == (1, 3)
    assert counted.accuracy == 1 / 3 and counted.error == 2 / 3  # 2/3, not 1 - 1/3 (which differs in the last bit)
    assert top1(model, preprocess, images, np.array([2, 2, 2]), num_classes=3).accuracy == 1.0


def test_summarise_paired_gives_the_textbook_paired_t_interval():
    from scipy import stats

    rng = np.random.default_rng(4)
    for n in (2, 3, 5, 10):
        a, b = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
        summary = tables.summarise_paired(a, b)
        d = b - a
        half = stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n)
        np.testing.assert_allclose([summary["diff_low"], summary["diff_high"]], [d.mean() - half, d.mean() + half],
                                   rtol=0, atol=1e-12)
        assert summary["p"] == pytest.approx(stats.ttest_rel(b, a).pvalue)


def test_icn_table_refuses_comparisons_without_every_seed():
    compare = [{"dataset": "digits", "arch": "r", "seed": 0}, {"dataset": "digits", "arch": "r", "seed": 2}]
    tables.require_seeds(compare, [2, 0])
    with pytest.raises(tables.MissingSeedsError, match=r"r on digits: results for seeds \[0, 2\], expected \[0, 1, 2\]"):
        tables.require_seeds(compare, [0, 1, 2])


def test_icn_compare_refuses_an_ood_set_with_other_classes(digits, tmp_path):
    from zooprobe.data.imageset import ImageSet
    from zooprobe.data.label_space import LabelSpaceError
    from zooprobe.io import h5io

    h5io.write_image_set(tmp_path / "digits.h5", digits)
    other = ImageSet(digits.images, digits.labels, digits.split, [f"c{i}" for i in range(10)],
                     dict(digits.attrs, name="other"))
    h5io.write_image_set(tmp_path / "other.h5", other)
    with pytest.raises(LabelSpaceError, match="OOD set 'other' has classes"):
        comparison.run_comparison(dataset="digits", arch_name="r", arch_entry={"arch": "resnet10t", "input_size": 16},
                                  seed=0, recipe_section={"epochs": 2}, settings_section={}, epsilons_255=[1],
                                  data_path=tmp_path / "digits.h5", ood_paths={"other": tmp_path / "other.h5"},
                                  threads=1, out=tmp_path / "out.json", grids_out=tmp_path / "grids.npz",
                                  provenance={})
    assert not (tmp_path / "out.json").exists()
