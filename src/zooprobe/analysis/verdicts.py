"""Verdicts as data: every comparison the report puts into words, read from the score table.

Each function returns plain records (dicts), so the words the report prints can be tested
without HTML. A verdict calls something significant only on a multiplicity-adjusted p-value
(Holm, family-wise) below :data:`ALPHA`; the family is named in each adjusted row's ``method``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from zooprobe.analysis import stats

ALPHA = 0.05


def _value(frame: pd.DataFrame, metric: str, column: str = "value") -> float:
    part = frame[frame.metric == metric]
    return float(part[column].iloc[0]) if len(part) else float("nan")


def _smallest_p(n_units: int, n_perm: int = stats.PERMUTATIONS) -> float:
    """The smallest two-sided permutation p-value m units can give (2 / m! when enumerated exactly)."""
    return 2 / math.factorial(n_units) if math.factorial(n_units) <= n_perm else 1 / (n_perm + 1)


def agreement_findings(scores: pd.DataFrame, *, prefix: str = "", statistic: str = "kendall_tau"
                       ) -> list[dict[str, Any]]:
    """Does the ranking hold from benchmark A to benchmark B? One record per pair of benchmarks.

    Returns:
        Records with the pair, ``value``, both intervals (``given_zoo`` and ``population`` as
        (low, high)), raw and Holm-adjusted permutation p, the number of units, and ``verdict``:
        ``holds`` (positive agreement, Holm p < alpha), ``reverses`` (negative, Holm p < alpha) or
        ``not established``, with a ``reason`` when the evidence is too weak to say (among them, that
        the family's ``holm_floor``, the smallest Holm-adjusted p its units allow, is above alpha);
        ``population_degenerate`` when every pair of units is ordered alike on both benchmarks, so
        that the population interval is the exact bound over disjoint pairs rather than a bootstrap one.
    """
    name = f"{prefix}{statistic}"
    records = []
    for pair, part in scores[scores.metric.str.startswith(name)].groupby("benchmark", sort=False):
        if f"{name}_given_zoo" not in set(part.metric):
            continue
        a, b = pair.split("~")
        value = _value(part, f"{name}_given_zoo")
        n_units = int(part[part.metric == f"{name}_given_zoo"].n.iloc[0])
        p, p_holm = _value(part, f"{name}_pvalue"), _value(part, f"{name}_pvalue_holm")
        population = (_value(part, f"{name}_population", "ci_low"), _value(part, f"{name}_population", "ci_high"))
        # Every pair of units ordered alike (tau = +-1): the population interval is an exact bound over
        # disjoint pairs, not a bootstrap one (agreement.all_pairs_alike_interval).
        degenerate = bool(abs(value) == 1)
        if np.isfinite(p_holm) and p_holm < ALPHA:
            verdict, reason = ("holds" if value > 0 else "reverses"), ""
        else:
            verdict = "not established"
            if _smallest_p(n_units) >= ALPHA:
                reason = f"{n_units} units cannot give a permutation p below {_smallest_p(n_units):.3f}"
            elif population[0] <= 0 <= population[1]:
                reason = "the population interval spans 0"
            else:
                reason = "not significant after Holm's correction over the pairs"
        records.append({"pair": pair, "a": a, "b": b, "statistic": statistic, "value": value,
                        "given_zoo": (_value(part, f"{name}_given_zoo", "ci_low"),
                                      _value(part, f"{name}_given_zoo", "ci_high")),
                        "population": population, "p": p, "p_holm": p_holm, "p_bh": _value(part, f"{name}_pvalue_bh"),
                        "n_units": n_units, "verdict": verdict, "reason": reason,
                        "population_degenerate": degenerate})
    return _with_holm_floor(records)


def _with_holm_floor(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Say so where Holm's correction alone rules out significance for the whole family.

    Holm's adjusted p-values are a running maximum that starts at m times the smallest raw p, so no
    pair of m can fall below m times the smallest p its units allow. With 6 models and 28 pairs that
    floor is 28 x 2/720 = 0.078: no ranking can be established at 0.05 whatever the scores, and more
    models, not more test examples, would decide. That is the reason such a pair reports.
    """
    tested = [r for r in records if np.isfinite(r["p_holm"])]
    if not tested:
        return records
    smallest = min(_smallest_p(r["n_units"]) for r in tested)
    floor = min(1.0, len(tested) * smallest)
    for record in records:
        record["holm_floor"] = floor
        if record["verdict"] == "not established" and smallest < ALPHA <= floor:
            record["reason"] = (f"with {record['n_units']} units no pair of the {len(tested)} can reach a "
                                f"Holm-adjusted p below {floor:.3f} ({len(tested)} x the smallest permutation "
                                f"p, {smallest:.4f}), whatever the scores")
    return records


def _difference_records(scores: pd.DataFrame, metric: str, benchmark: str) -> list[dict[str, Any]]:
    part = scores[(scores.benchmark == benchmark) & scores.metric.str.startswith(metric)]
    records = []
    for label, rows in part.groupby("model", sort=False):
        first, second = label.split(" - ", 1)
        diff = rows[rows.metric == metric].iloc[0]
        p_holm = _value(rows, f"{metric}_pvalue_holm")
        significant = bool(np.isfinite(p_holm) and p_holm < ALPHA)
        records.append({"first": first, "second": second, "difference": float(diff.value),
                        "ci": (float(diff.ci_low), float(diff.ci_high)), "p": _value(rows, f"{metric}_pvalue"),
                        "p_holm": p_holm, "significant": significant,
                        "direction": ("first" if diff.value > 0 else "second") if significant else "unclear"})
    return records


def published_order(scores: pd.DataFrame) -> list[dict[str, Any]]:
    """Does the published order of the checkpoints hold on our test set? One record per benchmark.

    ``verdict``: ``holds`` when every neighbouring pair of the published order is measured in the
    published direction with Holm p < alpha; ``contradicted`` when some pair is significantly
    reversed; otherwise ``not resolved`` (the test set cannot separate some neighbours).
    ``point_order_matches`` says whether the measured point estimates sort the same way.
    """
    records = []
    for benchmark in dict.fromkeys(scores[scores.metric == "published_pair_difference"].benchmark):
        pairs = _difference_records(scores, "published_pair_difference", benchmark)
        published = [pairs[0]["first"]] + [p["second"] for p in pairs]
        head = scores[(scores.benchmark == benchmark) & (scores.metric == "head_accuracy")].set_index("model").value
        measured = sorted(published, key=lambda m: -head[m])
        tau = scores[(scores.benchmark == benchmark) & (scores.metric == "published_order_kendall_tau")].iloc[0]
        if all(p["direction"] == "first" for p in pairs):
            verdict = "holds"
        elif any(p["direction"] == "second" for p in pairs):
            verdict = "contradicted"
        else:
            verdict = "not resolved"
        records.append({"benchmark": benchmark, "published": published, "measured": measured,
                        "point_order_matches": measured == published, "tau": float(tau.value),
                        "tau_ci": (float(tau.ci_low), float(tau.ci_high)), "pairs": pairs, "verdict": verdict})
    return records


def random_init_comparisons(scores: pd.DataFrame) -> list[dict[str, Any]]:
    """Trained against random-init copies of one architecture: one record per (pair, benchmark).

    ``verdict``: ``beats``, ``is beaten by`` or ``is not clearly different from``, on the paired
    difference's Holm-adjusted p-value.
    """
    records = []
    metric = "trained_minus_random_init"
    for benchmark in dict.fromkeys(scores[scores.metric == metric].benchmark):
        for record in _difference_records(scores, metric, benchmark):
            verdict = {"first": "beats", "second": "is beaten by"}.get(record["direction"],
                                                                       "is not clearly different from")
            records.append(dict(record, benchmark=benchmark, trained=record["first"], random_init=record["second"],
                                verdict=verdict))
    return records


def seed_check(scores: pd.DataFrame, *, prefix: str = "") -> list[dict[str, Any]]:
    """Are neighbouring units in each ranking further apart than their seeds and test data allow?

    Returns:
        One record per benchmark: the neighbouring pairs (paired difference of seed means, its
        interval over seeds and test examples, Holm p) and how many are ``resolved`` (Holm p < alpha).
    """
    metric = f"{prefix}seed_check_difference"
    records = []
    for benchmark in dict.fromkeys(scores[scores.metric == metric].benchmark):
        pairs = _difference_records(scores, metric, benchmark)
        records.append({"benchmark": benchmark, "pairs": pairs,
                        "resolved": sum(p["significant"] for p in pairs), "total": len(pairs)})
    return records


def _interval_of(frame: pd.DataFrame, metric: str) -> dict[str, float]:
    row = frame[frame.metric == metric].iloc[0]
    return {"value": float(row.value), "ci_low": float(row.ci_low), "ci_high": float(row.ci_high)}


def improvement_findings(scores: pd.DataFrame) -> list[dict[str, Any]]:
    """ImageNot: does the configurations' ranking hold between two datasets, and how do improvements scale?

    Args:
        scores: the tidy score table with the ``imagenot_*`` rows of :func:`zooprobe.analysis.imagenot.imagenot_table`.

    Returns:
        One record per pair of datasets: the Kendall tau record of :func:`agreement_findings`
        (``verdict``, ``value``, ``p_holm``, ``reason``, ...) plus ``slope`` and ``r2`` of the fit of
        the improvements on B against those on A, each ``{"value", "ci_low", "ci_high"}``.
    """
    records = []
    for record in agreement_findings(scores, prefix="imagenot_"):
        pair = scores[scores.benchmark == record["pair"]]
        records.append(dict(record, slope=_interval_of(pair, "improvement_slope"),
                            r2=_interval_of(pair, "improvement_r2")))
    return records


def icn_headlines(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Did the ICN help, per dataset and architecture trained from scratch? Read from its test-error verdict.

    Args:
        records: the ``verdicts`` of the icn-table summary (``zooprobe.train.icn``), one per
            (experiment, dataset, arch, metric), each with a ``verdict`` of ``helped``, ``hurt`` or
            ``no clear difference``.

    Returns:
        One record per (dataset, arch) of the ``from_scratch`` experiment, sorted by both:
        ``test`` (the test-error record, or None when there is none), ``headline`` (``helped``,
        ``hurt`` or ``made no clear difference``, from the test error alone) and ``others``, the
        (metric, verdict) pairs of every other metric.
    """
    scratch = [v for v in records if v["experiment"] == "from_scratch"]
    headlines = []
    for dataset in sorted({v["dataset"] for v in scratch}):
        for arch in sorted({v["arch"] for v in scratch if v["dataset"] == dataset}):
            mine = [v for v in scratch if v["dataset"] == dataset and v["arch"] == arch]
            test = next((v for v in mine if v["metric"] == "test_error"), None)
            headline = test["verdict"] if test and test["verdict"] in ("helped", "hurt") else "made no clear difference"
            headlines.append({"dataset": dataset, "arch": arch, "test": test, "headline": headline,
                              "others": [(v["metric"], v["verdict"]) for v in mine if v["metric"] != "test_error"]})
    return headlines


def rank_movers(scores: pd.DataFrame, *, top: int = 3) -> list[dict[str, Any]]:
    """Which models change rank most across benchmarks? Point estimates of rank, not a test.

    Args:
        scores: the tidy score table (its ``rank`` rows, 1 = best).
        top: how many models to return.

    Returns:
        Up to ``top`` records, largest spread first, of the models ranked on every benchmark that ranks
        two or more of them: ``model``, ``ranks`` (benchmark -> rank), ``best`` and ``worst`` (benchmark,
        rank) and ``spread`` (worst minus best rank); only models whose rank changes at all. Whether a
        change is more than noise is for the agreement intervals to say, not this record.
    """
    ranks = scores[scores.metric == "rank"].pivot(index="model", columns="benchmark", values="value")
    order = [b for b in dict.fromkeys(scores[scores.metric == "rank"].benchmark) if ranks[b].notna().sum() >= 2]
    ranks = ranks[order].dropna() if order else ranks.iloc[0:0]
    records = []
    for model, row in ranks.iterrows():
        best, worst = row.idxmin(), row.idxmax()
        if row[worst] > row[best]:
            records.append({"model": model, "ranks": {b: int(r) for b, r in row.items()},
                            "best": (best, int(row[best])), "worst": (worst, int(row[worst])),
                            "spread": int(row[worst] - row[best]), "n_models": len(ranks)})
    records.sort(key=lambda r: (-r["spread"], r["model"]))
    return records[:top]


def retained_range(scores: pd.DataFrame, *, family: str) -> dict[str, Any] | None:
    """The tunnel effect in one record: the least and most of the OOD accuracy kept at the penultimate layer.

    Args:
        scores: the tidy score table.
        family: ``tunnel`` (probes trained on each OOD set) or ``shift`` (ID probes under shift).

    Returns:
        ``None`` without such rows; else ``lowest`` and ``highest``, each ``{"model", "benchmark",
        "value", "ci_low", "ci_high"}`` of ``<family>_retained_pct``, and ``n`` (model, OOD set) pairs.
    """
    part = scores[scores.metric == f"{family}_retained_pct"].dropna(subset=["value"])
    if part.empty:
        return None
    keep = ["model", "benchmark", "value", "ci_low", "ci_high"]
    ordered = part.sort_values("value")
    return {"lowest": ordered.iloc[0][keep].to_dict(), "highest": ordered.iloc[-1][keep].to_dict(), "n": len(part)}
