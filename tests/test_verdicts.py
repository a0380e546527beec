"""Verdicts as data: each record flips when the numbers in a small score table cross its threshold."""

import math

import pandas as pd
import pytest

from zooprobe.analysis import verdicts
from zooprobe.analysis.rows import ALL_MODELS, SCORE_COLUMNS
from zooprobe.analysis.stats import Estimate, no_interval

NAN = float("nan")


def _table(rows):
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _agreement_rows(pair, *, value, p_holm, n_units=8, population=(0.2, 0.9), prefix="", statistic="kendall_tau"):
    name = f"{prefix}{statistic}"
    keys = dict(benchmark=pair, model=ALL_MODELS, layer="selected")
    return [Estimate(value, value - 0.1, min(value + 0.1, 1.0), n_units, "percentile").as_row(
                **keys, metric=f"{name}_given_zoo"),
            Estimate(value, *population, n_units, "BCa").as_row(**keys, metric=f"{name}_population"),
            no_interval(p_holm / 2, n_units).as_row(**keys, metric=f"{name}_pvalue"),
            no_interval(p_holm, n_units).as_row(**keys, metric=f"{name}_pvalue_holm"),
            no_interval(p_holm, n_units).as_row(**keys, metric=f"{name}_pvalue_bh")]


def test_agreement_holds_reverses_or_is_not_established_with_the_reason():
    scores = _table(_agreement_rows("a~b", value=0.6, p_holm=0.01) + _agreement_rows("a~c", value=-0.6, p_holm=0.01)
                    + _agreement_rows("b~c", value=0.6, p_holm=0.2)
                    + _agreement_rows("a~d", value=0.1, p_holm=0.3, population=(-0.2, 0.4))
                    + _agreement_rows("b~d", value=1.0, p_holm=0.3, n_units=3))
    found = {r["pair"]: r for r in verdicts.agreement_findings(scores)}
    assert [found[p]["verdict"] for p in ("a~b", "a~c", "b~c", "a~d", "b~d")] == \
        ["holds", "reverses", "not established", "not established", "not established"]
    assert found["a~b"]["reason"] == "" and found["a~b"]["a"] == "a" and found["a~b"]["b"] == "b"
    assert found["b~c"]["reason"] == "not significant after Holm's correction over the pairs"
    assert found["a~d"]["reason"] == "the population interval spans 0"
    # 3 units: the smallest permutation p is 2/3! = 0.333, so no pair of 3 units can be significant.
    assert found["b~d"]["reason"] == "3 units cannot give a permutation p below 0.333"
    assert found["b~d"]["population_degenerate"] and not found["a~b"]["population_degenerate"]
    assert found["a~b"]["n_units"] == 8 and found["a~b"]["given_zoo"] == pytest.approx((0.5, 0.7))
    assert found["a~b"]["p"] == pytest.approx(0.005) and found["a~b"]["p_holm"] == 0.01
    # The Spearman rows are another statistic: none here.
    assert verdicts.agreement_findings(scores, statistic="spearman_rho") == []


def _family(n_pairs, n_units):
    """n_pairs pairs of benchmarks over n_units units, the first in perfect agreement (the smallest p)."""
    smallest = 2 / math.factorial(n_units)
    rows = _agreement_rows("b0~b1", value=1.0, p_holm=min(1.0, n_pairs * smallest), n_units=n_units)
    for i in range(1, n_pairs):
        rows += _agreement_rows(f"b0~c{i}", value=0.6, p_holm=1.0, n_units=n_units, population=(-0.3, 0.9))
    return _table(rows)


def test_a_family_too_large_for_its_units_says_no_pair_can_pass_holm():
    # 6 units, 28 pairs (the embedded default): Holm's smallest adjusted p is 28 x 2/720 = 0.078 > 0.05.
    found = verdicts.agreement_findings(_family(28, 6))
    assert {r["verdict"] for r in found} == {"not established"}
    assert [r["holm_floor"] for r in found] == pytest.approx([28 * 2 / 720] * 28)
    assert {r["reason"] for r in found} == {
        "with 6 units no pair of the 28 can reach a Holm-adjusted p below 0.078 (28 x the smallest permutation "
        "p, 0.0028), whatever the scores"}
    # 10 pairs: the floor is 0.028, so the perfect pair holds and the others keep their own reason.
    found = {r["pair"]: r for r in verdicts.agreement_findings(_family(10, 6))}
    assert found["b0~b1"]["verdict"] == "holds" and found["b0~b1"]["holm_floor"] == pytest.approx(10 * 2 / 720)
    assert found["b0~c1"]["reason"] == "the population interval spans 0"


def _difference_rows(benchmark, metric, pairs, layer="selected"):
    """Paired-difference rows (``first - second``): each pair's difference and Holm p."""
    rows = []
    for first, second, difference, p_holm in pairs:
        keys = dict(benchmark=benchmark, model=f"{first} - {second}", layer=layer)
        rows += [Estimate(difference, difference - 0.02, difference + 0.02, 100, "percentile").as_row(
                     **keys, metric=metric),
                 no_interval(p_holm, 100).as_row(**keys, metric=f"{metric}_pvalue"),
                 no_interval(p_holm, 100).as_row(**keys, metric=f"{metric}_pvalue_holm")]
    return rows


@pytest.mark.parametrize("difference, p_holm, verdict", [(0.05, 0.01, "beats"), (-0.05, 0.01, "is beaten by"),
                                                          (0.05, 0.2, "is not clearly different from")])
def test_trained_against_random_init_verdict_follows_sign_and_holm_p(difference, p_holm, verdict):
    scores = _table(_difference_rows("id", "trained_minus_random_init", [("net", "net_random", difference, p_holm)]))
    (record,) = verdicts.random_init_comparisons(scores)
    assert record["verdict"] == verdict
    assert (record["benchmark"], record["trained"], record["random_init"]) == ("id", "net", "net_random")
    assert record["difference"] == difference and record["ci"] == pytest.approx((difference - 0.02, difference + 0.02))
    assert record["significant"] == (p_holm < verdicts.ALPHA)


def _published_table(pairs, head):
    rows = _difference_rows("cifar10", "published_pair_difference", pairs, layer="head")
    rows += [Estimate(value, value - 0.01, value + 0.01, 100, "percentile").as_row(
        benchmark="cifar10", model=model, layer="head", metric="head_accuracy") for model, value in head.items()]
    rows.append(Estimate(0.67, 0.3, 1.0, 3, "percentile").as_row(
        benchmark="cifar10", model=ALL_MODELS, layer="head", metric="published_order_kendall_tau"))
    return _table(rows)


def test_published_order_holds_is_contradicted_or_is_not_resolved():
    head = {"big": 0.93, "mid": 0.92, "small": 0.90}
    holds = _published_table([("big", "mid", 0.01, 0.01), ("mid", "small", 0.02, 0.01)], head)
    (record,) = verdicts.published_order(holds)
    assert record["verdict"] == "holds" and record["published"] == ["big", "mid", "small"]
    assert record["measured"] == ["big", "mid", "small"] and record["point_order_matches"]
    assert record["tau"] == 0.67 and record["tau_ci"] == (0.3, 1.0)
    # mid measured significantly below small: the published order is contradicted.
    contradicted = _published_table([("big", "mid", 0.01, 0.01), ("mid", "small", -0.02, 0.01)],
                                    {"big": 0.93, "mid": 0.88, "small": 0.90})
    (record,) = verdicts.published_order(contradicted)
    assert record["verdict"] == "contradicted"
    assert record["measured"] == ["big", "small", "mid"] and not record["point_order_matches"]
    # The same point estimates, but the test set cannot separate mid from small.
    unresolved = _published_table([("big", "mid", 0.01, 0.01), ("mid", "small", 0.02, 0.3)], head)
    assert verdicts.published_order(unresolved)[0]["verdict"] == "not resolved"


def test_seed_check_counts_the_resolved_neighbours():
    scores = _table(_difference_rows("id", "seed_check_difference", [("wide", "mid", 0.1, 0.001),
                                                                      ("mid", "thin", 0.01, 0.4)])
                    + _difference_rows("imagenot", "imagenot_seed_check_difference", [("a", "b", 0.1, 0.01)]))
    (record,) = verdicts.seed_check(scores)
    assert (record["benchmark"], record["resolved"], record["total"]) == ("id", 1, 2)
    assert [p["direction"] for p in record["pairs"]] == ["first", "unclear"]
    (record,) = verdicts.seed_check(scores, prefix="imagenot_")
    assert (record["resolved"], record["total"]) == (1, 1)


def _fit_rows(pair, slope, r2):
    keys = dict(benchmark=pair, model=ALL_MODELS, layer="head")
    return [Estimate(slope, slope - 0.5, slope + 0.5, 3, "percentile").as_row(**keys, metric="improvement_slope"),
            Estimate(0.0, -1.0, 1.0, 3, "percentile").as_row(**keys, metric="improvement_intercept"),
            Estimate(r2, r2 - 0.1, 1.0, 3, "percentile").as_row(**keys, metric="improvement_r2")]


def test_imagenot_findings_carry_the_ranking_verdict_and_the_improvement_fit():
    scores = _table(_agreement_rows("a~b", value=0.8, p_holm=0.01, prefix="imagenot_") + _fit_rows("a~b", 1.5, 0.9)
                    + _agreement_rows("a~c", value=0.8, p_holm=0.4, prefix="imagenot_") + _fit_rows("a~c", 0.2, 0.1)
                    # A plain agreement pair is not an ImageNot finding.
                    + _agreement_rows("x~y", value=0.8, p_holm=0.01))
    found = {r["pair"]: r for r in verdicts.improvement_findings(scores)}
    assert set(found) == {"a~b", "a~c"}
    assert found["a~b"]["verdict"] == "holds" and found["a~c"]["verdict"] == "not established"
    assert found["a~b"]["slope"] == {"value": 1.5, "ci_low": 1.0, "ci_high": 2.0}
    assert found["a~c"]["r2"]["value"] == 0.1 and found["a~c"]["r2"]["ci_high"] == 1.0


def _icn(dataset, arch, metric, verdict, experiment="from_scratch"):
    return {"experiment": experiment, "dataset": dataset, "arch": arch, "metric": metric, "verdict": verdict}


def test_icn_headline_comes_from_the_test_error_verdict_alone():
    records = [_icn("mnist", "small", "test_error", "helped"), _icn("mnist", "small", "fgsm_error", "hurt"),
               _icn("digits", "small", "test_error", "hurt"),
               _icn("digits", "big", "test_error", "no clear difference"),
               _icn("digits", "tiny", "fgsm_error", "helped"),  # no test error: no headline to take
               _icn("mnist", "small", "test_error", "hurt", experiment="probe")]
    headlines = verdicts.icn_headlines(records)
    assert [(h["dataset"], h["arch"], h["headline"]) for h in headlines] == [
        ("digits", "big", "made no clear difference"), ("digits", "small", "hurt"),
        ("digits", "tiny", "made no clear difference"), ("mnist", "small", "helped")]
    mnist = headlines[-1]
    assert mnist["test"]["verdict"] == "helped" and mnist["others"] == [("fgsm_error", "hurt")]
    assert headlines[2]["test"] is None and headlines[2]["others"] == [("fgsm_error", "helped")]
    assert verdicts.icn_headlines([_icn("mnist", "small", "test_error", "helped", experiment="probe")]) == []


def test_smallest_permutation_p_is_two_over_m_factorial_until_the_budget():
    assert verdicts._smallest_p(4) == pytest.approx(2 / 24)
    assert verdicts._smallest_p(7) == pytest.approx(2 / math.factorial(7))  # 5,040 orders: enumerated
    assert verdicts._smallest_p(8) == pytest.approx(1 / 10_001)  # 40,320 orders: Monte Carlo over 10,000
