"""Rows that compare rankings: rank agreement between benchmarks, and paired differences of units
(the seed check, the published order of checkpoints, trained against random-init copies).
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping

import numpy as np

from zooprobe.analysis import agreement
from zooprobe.analysis import stats
from zooprobe.analysis.rows import ALL_MODELS, adjusted_rows, score_row

AGREEMENT_STATISTICS = ("kendall_tau", "spearman_rho")


def agreement_rows(rankings: dict[str, agreement.Ranking], *, units: Mapping[str, str],
                   resampler: agreement.Resampler, prefix: str = "", layer: str = "selected") -> list[dict[str, Any]]:
    """Both intervals and the permutation p-value of tau and rho for every pair of benchmarks.

    A pair is compared on the units both benchmarks scored (at least ``agreement.MIN_SHARED_UNITS``);
    p-values get Holm and Benjamini-Hochberg adjustments over all pairs of the matrix, per statistic.
    """
    rows: list[dict[str, Any]] = []
    for a, b in itertools.combinations(rankings, 2):
        result = agreement.rank_agreement(rankings[a], rankings[b], unit_of=units, resampler=resampler)
        for statistic, found in (result or {}).items():
            name = f"{prefix}{statistic}"
            rows.append(score_row(f"{a}~{b}", ALL_MODELS, layer, f"{name}_{agreement.GIVEN_ZOO}", found.given_zoo))
            rows.append(score_row(f"{a}~{b}", ALL_MODELS, layer, f"{name}_{agreement.POPULATION}", found.population))
            rows.append(score_row(f"{a}~{b}", ALL_MODELS, layer, f"{name}_pvalue", found.p_value))
    for statistic in AGREEMENT_STATISTICS:
        rows.extend(adjusted_rows(rows, f"{prefix}{statistic}_pvalue", "pairs of benchmarks"))
    return rows


def difference_rows(benchmark: str, scores: agreement.UnitScores, pairs: list[tuple[str, str]], metric: str,
                    layer: str) -> list[dict[str, Any]]:
    """The paired difference (first - second) with its CI and bootstrap p-value for each pair of units."""
    rows = []
    for first, second in pairs:
        estimate, p = agreement.paired_difference(scores, first, second)
        label = f"{first} - {second}"
        rows.append(score_row(benchmark, label, layer, metric, estimate))
        rows.append(score_row(benchmark, label, layer, f"{metric}_pvalue",
                         stats.no_interval(p, estimate.n, "paired bootstrap, two-sided")))
    return rows


def seed_rows(rankings: dict[str, agreement.Ranking], *, units: Mapping[str, str], resampler: agreement.Resampler,
              prefix: str = "", layer: str = "selected") -> list[dict[str, Any]]:
    """Units trained with several seeds: seed mean and sd per benchmark, and the seed check.

    The seed check compares each pair of neighbours in a benchmark's ranking of those units by the
    paired difference of their seed means, its interval redrawing both units' seeds and the test
    data, and Holm-adjusts its p-values over every pair of every benchmark.
    """
    rows: list[dict[str, Any]] = []
    for benchmark, ranking in rankings.items():
        scores = agreement.unit_scores(ranking, units, resampler)
        seeded = [u for u, members in zip(scores.units, scores.members) if len(members) > 1]
        for unit in seeded:
            mean, sd = agreement.seed_summary(scores, ranking, unit)
            rows.append(score_row(benchmark, unit, layer, f"{prefix}seed_mean", mean))
            rows.append(score_row(benchmark, unit, layer, f"{prefix}seed_sd", sd))
        order = sorted(seeded, key=lambda u: -scores.point[scores.index(u)])
        rows.extend(difference_rows(benchmark, scores, list(zip(order, order[1:])), f"{prefix}seed_check_difference",
                                    layer))
    return rows + adjusted_rows(rows, f"{prefix}seed_check_difference_pvalue", "neighbouring pairs")


def published_order_rows(published: Mapping[str, float], heads: dict[str, agreement.Ranking], *,
                         resampler: agreement.Resampler) -> list[dict[str, Any]]:
    """Does the published order of accuracies hold on our test set? Own heads against published top-1.

    Per ID benchmark with at least two published models: ``published_order_kendall_tau`` between
    published and measured accuracy (interval redrawing the test examples; the published numbers
    are fixed), and the paired difference of measured accuracy for each neighbouring pair in the
    published order (``published_pair_difference``, upper minus lower), Holm-adjusted over all pairs.

    Args:
        published: model -> its published accuracy (``zooprobe.analysis.scores.published_accuracies``).
        heads: ID benchmark -> the ranking of the models' own heads.
        resampler: the analysis' resampler.

    Returns:
        The rows, in :data:`zooprobe.analysis.rows.SCORE_COLUMNS`.
    """
    rows: list[dict[str, Any]] = []
    for benchmark, ranking in heads.items():
        models = [m for m in ranking.models if m in published]
        if len(models) < 2:
            continue
        scores = agreement.unit_scores(ranking, {}, resampler, units=models)
        claimed = np.array([published[m] for m in models], dtype=float)
        value = stats.kendall_tau(claimed, scores.point)
        taus = stats.kendall_tau_rows(np.broadcast_to(claimed, scores.replicates.shape), scores.replicates)
        rows.append(score_row(benchmark, ALL_MODELS, "head", "published_order_kendall_tau", stats.Estimate(
            value, *stats.percentile_interval(taus), len(models), "percentile", scores.resampled)))
        order = sorted(models, key=lambda m: -published[m])
        rows.extend(difference_rows(benchmark, scores, list(zip(order, order[1:])), "published_pair_difference",
                                    "head"))
    return rows + adjusted_rows(rows, "published_pair_difference_pvalue", "neighbouring published pairs")


def random_init_rows(rankings: dict[str, agreement.Ranking], pairs: tuple[tuple[str, str], ...], *,
                     resampler: agreement.Resampler) -> list[dict[str, Any]]:
    """Trained minus random-init score of the same architecture on every benchmark both have, paired.

    The two models' replicates redraw the same test data, so the interval is that of the paired
    difference; p-values are Holm-adjusted over every (pair, benchmark).
    """
    rows: list[dict[str, Any]] = []
    for benchmark, ranking in rankings.items():
        present = [(t, r) for t, r in pairs if t in ranking.models and r in ranking.models]
        if present:
            scores = agreement.unit_scores(ranking, {}, resampler)
            rows.extend(difference_rows(benchmark, scores, present, "trained_minus_random_init", "selected"))
    return rows + adjusted_rows(rows, "trained_minus_random_init_pvalue", "trained/random-init comparisons")
