import numpy as np
import pytest

from zooprobe.analyse import ALL_MODELS, ProbeRun, agreement_matrix, score_table


def _run(model, skill_by_layer, rng, n=400):
    layers = list(skill_by_layer)
    labels = {"id": rng.integers(0, 2, n), "ood": rng.integers(0, 2, n)}
    predictions = {}
    for name, shift in (("id", 0.0), ("ood", 0.15)):
        predictions[name] = {layer: np.where(rng.random(n) < skill - shift, labels[name], 1 - labels[name])
                             for layer, skill in skill_by_layer.items()}
    val = {layer: skill for layer, skill in skill_by_layer.items()}
    return ProbeRun(model, "t", predictions, labels, {"layers": layers, "val_accuracy": val, "id_eval": "id"})


def test_score_table_ranks_selects_layers_and_compares_benchmarks():
    rng = np.random.default_rng(0)
    runs = [_run("strong", {"block0": 0.7, "pre_logits": 0.95}, rng),
            _run("middle", {"block0": 0.8, "pre_logits": 0.75}, rng),
            _run("weak", {"block0": 0.6, "pre_logits": 0.55}, rng)]
    scores = score_table(runs, n_boot=100, seed=0)
    assert list(scores.columns) == ["benchmark", "model", "layer", "metric", "value", "ci_low", "ci_high", "n"]
    selected = scores[scores.metric == "score"].set_index(["benchmark", "model"])
    assert selected.loc[("id", "strong"), "layer"] == "pre_logits"
    assert selected.loc[("id", "middle"), "layer"] == "block0"  # chosen on validation, not test
    ranks = scores[(scores.metric == "rank") & (scores.benchmark == "id")].set_index("model").value
    assert ranks.to_dict() == {"strong": 1.0, "middle": 2.0, "weak": 3.0}
    tau = scores[(scores.metric == "kendall_tau") & (scores.model == ALL_MODELS)].iloc[0]
    assert tau.benchmark == "id~ood" and tau.value == pytest.approx(1.0) and tau.ci_low <= tau.value
    retained = scores[(scores.metric == "ood_retained_pct") & (scores.model == "middle")].value.iloc[0]
    accuracy = scores[(scores.metric == "accuracy") & (scores.benchmark == "ood") & (scores.model == "middle")]
    by_layer = accuracy.set_index("layer").value
    assert retained == pytest.approx(100 * by_layer["pre_logits"] / by_layer.max())
    names, value, low, high = agreement_matrix(scores)
    assert names == ["id", "ood"] and value[0, 1] == value[1, 0] == pytest.approx(1.0)


def test_own_head_and_published_accuracy_are_scored_and_reported():
    from zooprobe.report import head_section

    rng = np.random.default_rng(1)
    runs = []
    for model, head_skill, published in (("a", 0.9, 93.0), ("b", 0.7, 91.0)):
        run = _run(model, {"block0": 0.6, "pre_logits": 0.8}, rng)
        run.head = {name: np.where(rng.random(len(y)) < head_skill, y, 1 - y) for name, y in run.labels.items()}
        run.provenance["checkpoint_info"] = {"best_prec1": published}
        runs.append(run)
    scores = score_table(runs, n_boot=50, seed=0)
    head = scores[scores.metric == "head_accuracy"].set_index(["benchmark", "model"]).value
    expected = (runs[0].head["ood"] == runs[0].labels["ood"]).mean()
    assert head[("ood", "a")] == pytest.approx(expected)
    published = scores[scores.metric == "published_accuracy"]
    assert published.benchmark.tolist() == ["id", "id"] and published.value.tolist() == pytest.approx([0.93, 0.91])
    section = head_section(scores)
    assert "Published order holds on id" in section
    runs[1].provenance["checkpoint_info"] = {"best_prec1": 95.0}
    assert "Published order does not hold on id" in head_section(score_table(runs, n_boot=50, seed=0))


SWEEP = {"architectures": {"small": {"arch": "resnet10t"}, "mid": {"arch": "resnet14t"}, "big": {"arch": "resnet18"}},
         "datasets": ["a", "b"], "seeds": [0, 1], "baseline": "small"}
SKILL = {"small": 0.6, "mid": 0.7, "big": 0.85, "huge": 0.9}


def _sweep_runs(rng, n=600, skill_b_shift=0.0, sweep=None):
    from zooprobe.config import sweep_members

    runs = []
    for member in sweep_members({"sweep": sweep or SWEEP}).values():
        skill = SKILL[member.arch] + (skill_b_shift if member.dataset == "b" else 0.0)
        labels = {member.dataset: rng.integers(0, 4, n)}
        y = labels[member.dataset]
        guess = np.where(rng.random(n) < skill, y, (y + 1) % 4)
        predictions = {member.dataset: {"pre_logits": guess}}
        provenance = {"layers": ["pre_logits"], "val_accuracy": {"pre_logits": skill}, "id_eval": member.dataset}
        runs.append(ProbeRun(member.name, member.dataset, predictions, labels, provenance,
                             head={member.dataset: guess}))
    return runs


def test_imagenot_ranks_architectures_across_datasets_with_improvement_fit():
    from zooprobe.analyse import imagenot_table

    runs = _sweep_runs(np.random.default_rng(0))
    table = imagenot_table(runs, SWEEP, n_boot=200, seed=0)
    accuracy = table[table.metric == "imagenot_accuracy"].set_index(["benchmark", "model"])
    own = [r for r in runs if r.model in ("big-a-s0", "big-a-s1")]
    expected = np.mean([(r.head["a"] == r.labels["a"]).mean() for r in own])
    assert accuracy.loc[("a", "big"), "value"] == pytest.approx(expected)
    assert accuracy.loc[("a", "big"), "n"] == 2
    improvement = table[table.metric == "relative_improvement"].set_index(["benchmark", "model"]).value
    assert improvement[("a", "small")] == 0.0
    assert improvement[("b", "big")] == pytest.approx(
        100 * (accuracy.loc[("b", "big"), "value"] / accuracy.loc[("b", "small"), "value"] - 1))
    pair = table[table.benchmark == "a~b"].set_index("metric")
    assert pair.loc["imagenot_kendall_tau", "value"] == pytest.approx(1.0)
    assert pair.loc["imagenot_kendall_tau", "ci_low"] <= 1.0
    assert pair.loc["imagenot_kendall_tau_pvalue", "value"] == pytest.approx(2 / 6)  # 3 architectures: 3! orders
    assert pair.loc["improvement_slope", "n"] == 2  # the baseline is not a point of the fit
    assert np.isnan(pair.loc["improvement_r2", "value"])  # two points: no R^2
    sd = table[table.metric == "seed_sd"].set_index(["benchmark", "model"]).value
    accs = [(r.head["a"] == r.labels["a"]).mean() for r in own]
    assert sd[("a", "big")] == pytest.approx(np.std(accs, ddof=1))


def test_the_same_seed_gives_identical_bootstraps_in_the_pipeline():
    from zooprobe.analyse import imagenot_table

    runs = _sweep_runs(np.random.default_rng(2))
    first = imagenot_table(runs, SWEEP, n_boot=100, seed=5)
    again = imagenot_table(runs, SWEEP, n_boot=100, seed=5)
    assert first.equals(again)
    other = imagenot_table(runs, SWEEP, n_boot=100, seed=6)
    assert not first.equals(other) and (first.value.fillna(-9) == other.value.fillna(-9)).all()
    plain = [_run(m, {"b0": s, "pre_logits": s}, np.random.default_rng(3)) for m, s in (("x", 0.6), ("y", 0.8))]
    assert score_table(plain, n_boot=100, seed=1).equals(score_table(plain, n_boot=100, seed=1))


def test_imagenot_needs_an_own_head_score_for_every_sweep_model():
    from zooprobe.analyse import imagenot_table

    runs = _sweep_runs(np.random.default_rng(0))[1:]
    with pytest.raises(ValueError, match="no own-head scores for sweep models"):
        imagenot_table(runs, SWEEP, n_boot=10, seed=0)


def test_variable_table_pairs_models_that_differ_in_one_variable():
    import pandas as pd

    from zooprobe.analyse import SCORE_COLUMNS, variable_table
    from zooprobe.config import sweep_members

    sweep = dict(SWEEP, datasets=["a"], seeds=[0, 1, 2], variants={"augment": [False, True]})
    rows = []
    for member in sweep_members({"sweep": sweep}).values():
        augmented = dict(member.settings)["augment"]
        base = {"small": 60.0, "mid": 70.0, "big": 80.0}[member.arch] + member.seed
        rows.append(dict(benchmark="a_ood", model=member.name, layer="pre_logits", metric="ood_retained_pct",
                         value=base + (5.0 if augmented else 0.0), ci_low=np.nan, ci_high=np.nan, n=10))
    table = variable_table(pd.DataFrame(rows, columns=SCORE_COLUMNS), sweep)
    result = table[table.layer == "ood_retained_pct"].set_index("metric")
    assert result.loc["cliffs_delta", "model"] == "augment=true vs augment=false"
    assert result.loc["median_difference", "value"] == 5.0 and result.loc["median_difference", "n"] == 9
    assert result.loc["cliffs_delta", "value"] > 0
    assert result.loc["wilcoxon_p", "value"] < 0.01


def test_report_shows_imagenot_tau_with_ci_improvement_fit_and_seed_check():
    from zooprobe.analyse import imagenot_table
    from zooprobe.report import imagenot_section

    sweep = dict(SWEEP, architectures=dict(SWEEP["architectures"], huge={"arch": "resnet26"}))
    runs = _sweep_runs(np.random.default_rng(4), sweep=sweep)
    page = imagenot_section(imagenot_table(runs, sweep, n_boot=50, seed=0), sweep)
    assert "ImageNot protocol" in page and "<b>a vs b:</b> Kendall tau 1.000 [" in page
    assert "slope" in page and "R²" in page and page.count("alt='improvement scatter'") == 1
    assert "adjacent rank differences exceed the larger seed sd" in page


def test_seed_replicas_get_mean_and_sd_and_the_report_checks_rank_gaps():
    from zooprobe.report import seed_section

    rng = np.random.default_rng(5)
    runs = [_run(f"{name}-s{seed}", {"b0": skill, "pre_logits": skill + 0.01 * seed}, rng)
            for name, skill in (("wide", 0.8), ("thin", 0.6)) for seed in (0, 1, 2)]
    runs.append(_run("single", {"b0": 0.7, "pre_logits": 0.7}, rng))
    scores = score_table(runs, n_boot=20, seed=0)
    seeds = scores[scores.metric.isin(["seed_mean", "seed_sd"])]
    assert set(seeds.model) == {"wide", "thin"}  # one seed is no spread
    chosen = scores[(scores.metric == "score") & (scores.benchmark == "id")].set_index("model").value
    wide = chosen[["wide-s0", "wide-s1", "wide-s2"]]
    row = seeds[(seeds.benchmark == "id") & (seeds.model == "wide")].set_index("metric")
    assert row.loc["seed_mean", "value"] == pytest.approx(wide.mean())
    assert row.loc["seed_sd", "value"] == pytest.approx(wide.std(ddof=1)) and row.loc["seed_sd", "n"] == 3
    section = seed_section(scores)
    assert "wide &gt; thin" in section and "1 of 1 adjacent rank differences exceed" in section
