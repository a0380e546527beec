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
