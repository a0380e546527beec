"""The field's methods over the analysis stage's runs: the same numbers as the libraries and scipy give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from zooprobe.analysis import stats
from zooprobe.analysis.concordance import RankConcordance, rank_concordance
from zooprobe.analysis.consistency import error_consistency_matrix
from zooprobe.analysis.field_methods import ALL_BENCHMARKS, field_results
from zooprobe.analysis.robustness import RobustnessFit
from zooprobe.analysis.rows import ALL_MODELS
from zooprobe.analysis.scores import Design, ExampleDraws, ProbeRun, score_table

N_BOOT = 1000


def _runs(skills, *, n=240, shift=0.15, shared=False, seed=0):
    """One task: ID set 'id', OOD set 'ood' (a copy of the ID rows when ``shared``), one layer, own heads."""
    rng = np.random.default_rng(seed)
    labels_id = rng.integers(0, 4, n)
    labels = {"id": labels_id, "ood": labels_id.copy() if shared else rng.integers(0, 4, n)}
    runs = []
    for model, skill in skills.items():
        predictions, head = {}, {}
        for name, drop in (("id", 0.0), ("ood", shift)):
            y = labels[name]
            predictions[name] = {"l": np.where(rng.random(n) < skill - drop, y, (y + 1) % 4)}
            head[name] = np.where(rng.random(n) < skill - drop / 2, y, (y + 2) % 4)
        runs.append(ProbeRun(model, "t", predictions, labels, {"layers": ["l"], "val_accuracy": {"l": skill},
                                                               "id_eval": "id", "probe": "linear"}, head))
    return runs


SKILLS = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6, "e": 0.5}


def _field(runs, design=Design()):
    scores = score_table(runs, n_boot=N_BOOT, seed=0, design=design)
    found = field_results(runs, scores, draws=ExampleDraws(N_BOOT, 0, design.shared_rows), units=design.units,
                          n_boot=N_BOOT, seed=0)
    return scores, found, pd.DataFrame(found.rows)


def test_the_probit_fit_over_the_probe_scores_equals_scipy_and_every_model_gets_an_interval():
    runs = _runs(SKILLS)
    scores, found, rows = _field(runs)
    chosen = scores[scores.metric == "score"].pivot(index="model", columns="benchmark", values="value")
    fit = sps.linregress(sps.norm.ppf(chosen["id"]), sps.norm.ppf(chosen["ood"]))
    probe = rows[(rows.benchmark == "id~ood") & (rows.layer == "selected")].set_index(["model", "metric"])
    assert probe.loc[(ALL_MODELS, "er_slope"), "value"] == pytest.approx(fit.slope)
    assert probe.loc[(ALL_MODELS, "er_intercept"), "value"] == pytest.approx(fit.intercept)
    assert probe.loc[(ALL_MODELS, "er_r2"), "value"] == pytest.approx(fit.rvalue ** 2)
    er = probe.xs("effective_robustness", level="metric")
    predicted = sps.norm.cdf(fit.intercept + fit.slope * sps.norm.ppf(chosen["id"]))
    np.testing.assert_allclose(er.value.loc[chosen.index], chosen["ood"] - predicted, atol=1e-12)
    assert (er.ci_low < er.value).all() and (er.value < er.ci_high).all()
    assert set(rows[rows.metric == "er_slope"].layer) == {"selected", "head"}
    record = next(r for r in found.robustness if r["source"] == "selected")
    assert record["id"] == "id" and record["ood"] == "ood"
    assert "independent" not in record["fit"]["resampled"] and "joint" not in record["fit"]["resampled"]


def test_a_shifted_copy_of_the_id_rows_is_one_joint_draw_in_the_fit():
    runs = _runs(SKILLS, shared=True)
    _, found, rows = _field(runs, Design(shared_rows={"ood": "id"}))
    record = next(r for r in found.robustness if r["source"] == "selected")
    assert "one joint draw with the ID examples" in record["fit"]["resampled"]
    assert rows[rows.metric == "er_slope"].resampled.str.contains("one joint draw").all()


def test_seeds_of_one_unit_are_one_point_of_the_fit_and_one_row_of_the_concordance():
    skills = dict(SKILLS, **{"a_s1": 0.88})
    runs = _runs(skills)
    design = Design(units={"a": "a_unit", "a_s1": "a_unit"})
    _, found, rows = _field(runs, design)
    fitted = rows[(rows.metric == "effective_robustness") & (rows.layer == "selected")]
    assert sorted(fitted.model) == ["a_unit", "b", "c", "d", "e"]
    assert set(rows[rows.metric == "mean_rank"].model) == {"a_unit", "b", "c", "d", "e"}


def test_error_consistency_rows_are_the_matrix_of_the_analysis_draw():
    runs = _runs(SKILLS)
    _, _, rows = _field(runs)
    ec = rows[(rows.metric == "error_consistency") & (rows.benchmark == "ood") & (rows.layer == "selected")]
    assert len(ec) == 10  # 5 models, every unordered pair once
    correct = np.stack([run.correct("ood", "l") for run in runs])
    counts = ExampleDraws(N_BOOT, 0, {})("ood", correct.shape[1])
    matrix = error_consistency_matrix(correct, models=[r.model for r in runs], counts=counts)
    a, b = ec.iloc[0].model.split("~")
    entry = matrix.pair(a, b)
    assert ec.iloc[0].value == pytest.approx(entry.kappa.value)
    assert (ec.iloc[0].ci_low, ec.iloc[0].ci_high) == pytest.approx((entry.kappa.ci_low, entry.kappa.ci_high))
    # kappa by hand: (c_obs - c_exp) / (1 - c_exp)
    ca, cb = correct[[r.model for r in runs].index(a)], correct[[r.model for r in runs].index(b)]
    c_obs = np.mean(ca == cb)
    c_exp = ca.mean() * cb.mean() + (1 - ca.mean()) * (1 - cb.mean())
    assert ec.iloc[0].value == pytest.approx((c_obs - c_exp) / (1 - c_exp))
    assert set(rows[rows.metric == "error_consistency"].layer) == {"selected", "head"}


def test_concordance_over_the_benchmarks_matches_the_library_and_scipys_friedman():
    runs = _runs(SKILLS) + [ProbeRun(r.model, "u", {"x": r.predictions["id"]}, {"x": r.labels["id"]},
                                     dict(r.provenance, id_eval="x")) for r in _runs(SKILLS, seed=3)]
    scores, found, rows = _field(runs)
    table = scores[scores.metric == "score"].pivot(index="model", columns="benchmark", values="value")
    expected = rank_concordance(table, n_bootstrap=N_BOOT, seed=0)
    concordance = rows[rows.benchmark == ALL_BENCHMARKS].set_index(["model", "metric"])
    assert concordance.loc[(ALL_MODELS, "kendall_w"), "value"] == pytest.approx(expected.kendall_w_ci_over_models.value)
    assert concordance.loc[(ALL_MODELS, "friedman_pvalue"), "value"] == pytest.approx(
        sps.friedmanchisquare(*table.to_numpy()).pvalue)  # one sample per model, measured on every benchmark
    assert concordance.loc[(ALL_MODELS, "nemenyi_cd"), "value"] == pytest.approx(expected.critical_difference)
    assert sorted(found.concordance["benchmarks"]) == ["id", "ood", "x"] and found.concordance["left_out"] == []


def test_the_summary_records_give_back_the_fit_and_the_concordance():
    runs = _runs(SKILLS)
    _, found, _ = _field(runs)
    record = next(r for r in found.robustness if r["source"] == "selected")["fit"]
    fit = RobustnessFit.from_json(record)
    again = fit.to_json()
    np.testing.assert_equal(again.pop("fit_replicates"), record["fit_replicates"])  # NaN where a draw fits no line
    assert again == {k: v for k, v in record.items() if k != "fit_replicates"}
    assert fit.fit_replicates.shape == (N_BOOT, 2)
    concordance = RankConcordance.from_json(found.concordance)
    assert concordance.to_json() == {k: v for k, v in found.concordance.items() if k != "left_out"}
    assert stats.CI_LEVEL == fit.level


def test_ece_rows_are_each_heads_calibration_error_on_the_analysis_draw_with_the_binning_named():
    from zooprobe.analysis.calibration import calibration_error

    runs = _runs(SKILLS)
    rng = np.random.default_rng(9)
    for run in runs:
        run.head_confidence = {name: rng.uniform(0.3, 1.0, len(y)) for name, y in run.labels.items()}
    _, _, rows = _field(runs)
    ece = rows[rows.metric == "ece"].set_index(["benchmark", "model"])
    assert len(ece) == 2 * len(SKILLS) and set(ece.layer) == {"head"}
    run = runs[1]
    correct = run.head["ood"] == run.labels["ood"]
    expected = calibration_error(run.head_confidence["ood"], correct,
                                 counts=ExampleDraws(N_BOOT, 0, {})("ood", len(correct)))
    row = ece.loc[("ood", run.model)]
    assert (row.value, row.ci_low, row.ci_high) == pytest.approx((expected.ece.value, expected.ece.ci_low,
                                                                  expected.ece.ci_high))
    assert row.method.endswith("; 15 equal-mass bins") and row.resampled == "test examples"


def test_head_confidence_is_the_softmax_probability_of_the_prediction_and_none_for_a_superset_head():
    from scipy.special import softmax

    from zooprobe.io.h5io import Features
    from zooprobe.probes.inputs import head_confidence

    rng = np.random.default_rng(2)
    logits = rng.normal(size=(20, 3)) * 5 + 400  # large logits: the softmax must not overflow
    features = Features({}, np.zeros(20, int), np.array(["test"] * 20), {"class_names": ["a", "b", "c"]},
                        head_pred=logits.argmax(axis=1), head_logits=logits)
    rows = np.arange(20) % 2 == 0
    np.testing.assert_allclose(head_confidence(features, rows), softmax(logits[rows], axis=1).max(axis=1), rtol=1e-12)
    superset = Features({}, np.zeros(20, int), np.array(["test"] * 20), {"class_names": ["a", "b"]},
                        head_pred=logits[:, :2].argmax(axis=1), head_logits=logits)
    assert head_confidence(superset, rows) is None


def test_an_own_head_task_is_scored_by_its_heads_once_not_again_as_a_probe():
    runs = _runs(SKILLS)
    for run in runs:
        run.predictions = {name: {"head": run.head[name]} for name in run.labels}
        run.provenance.update(layers=["head"], val_accuracy={"head": 0.0}, probe="head")
    _, found, rows = _field(runs)
    assert set(rows[rows.metric.isin(["error_consistency", "er_slope"])].layer) == {"head"}
    assert [r["source"] for r in found.robustness] == ["head"]
