"""Kendall's W, the Friedman test and the Nemenyi critical difference against scipy and Demšar (2006)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from zooprobe.analysis.concordance import (ConcordanceError, benchmark_ranks, format_text, friedman_test, kendall_w,
                                           nemenyi_critical_difference, nemenyi_groups, rank_concordance,
                                           weighted_kendall_w)


@pytest.mark.parametrize("ties", [False, True])
def test_kendall_w_and_friedman_match_scipy_friedmanchisquare_on_the_same_ranks(ties):
    rng = np.random.default_rng(5)
    m, k = 6, 9
    scores = rng.integers(0, 4, size=(m, k)).astype(float) if ties else rng.normal(size=(m, k))
    ranks = benchmark_ranks(scores)
    assert (len(np.unique(ranks)) < m * k) if ties else np.all(np.sort(ranks, axis=1) == np.arange(1, k + 1))
    expected = sps.friedmanchisquare(*ranks.T)  # models are the groups, benchmarks the blocks
    chi2, p = friedman_test(scores)
    assert chi2 == pytest.approx(expected.statistic, rel=1e-12) and p == pytest.approx(expected.pvalue, rel=1e-10)
    assert kendall_w(scores) == pytest.approx(expected.statistic / (m * (k - 1)), rel=1e-12)


def test_kendall_w_by_hand_and_its_weighted_form():
    agree = np.array([[3.0, 2.0, 1.0], [0.9, 0.5, 0.1]])
    assert kendall_w(agree) == pytest.approx(1.0)
    assert kendall_w(np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])) == pytest.approx(0.0)
    # Ranks (1, 2, 3) and (1, 3, 2): rank sums 2, 5, 5 around 4: S = 6, W = 12 * 6 / (4 * 24) = 0.75.
    assert kendall_w(np.array([[3.0, 2.0, 1.0], [3.0, 1.0, 2.0]])) == pytest.approx(0.75)
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=(4, 10)).astype(float)
    counts = rng.multinomial(10, np.full(10, 0.1), size=3).astype(float)
    weighted = weighted_kendall_w(scores, np.vstack([np.ones(10), counts]))
    assert weighted[0] == pytest.approx(kendall_w(scores))
    for row, draw in zip(weighted[1:], counts):  # a bootstrap draw: W of the models repeated, repeats tied
        assert row == pytest.approx(kendall_w(np.repeat(scores, draw.astype(int), axis=1)))


def test_nemenyi_critical_difference_matches_demsar():
    # Demšar 2006, table 5a: q_0.05 = 2.569 for 4 classifiers and 3.164 for 10; his worked example,
    # 4 classifiers on 14 data sets, has CD = 2.569 sqrt(4 * 5 / (6 * 14)) = 1.25.
    cd, q = nemenyi_critical_difference(4, 14, alpha=0.05)
    assert q == pytest.approx(2.569, abs=5e-4) and cd == pytest.approx(1.25, abs=5e-3)
    assert nemenyi_critical_difference(10, 5, alpha=0.05)[1] == pytest.approx(3.164, abs=5e-4)
    assert nemenyi_critical_difference(4, 14, alpha=0.10)[1] == pytest.approx(2.291, abs=5e-4)
    with pytest.raises(ConcordanceError, match="at least 2 models"):
        nemenyi_critical_difference(1, 3)


def test_nemenyi_groups_are_the_maximal_runs_within_the_critical_difference():
    ranks = np.array([3.0, 1.0, 1.5, 3.2, 5.0])  # sorted: m1 1.0, m2 1.5, m0 3.0, m3 3.2, m4 5.0
    assert nemenyi_groups(ranks, 1.0) == [(1, 2), (0, 3)]
    assert nemenyi_groups(ranks, 2.1) == [(1, 2, 0), (2, 0, 3), (0, 3, 4)]  # 1.0..3.0, 1.5..3.2, 3.0..5.0
    assert nemenyi_groups(ranks, 0.1) == []  # every pair differs: no bars


def test_rank_concordance_on_a_table_with_its_interval_over_models():
    rng = np.random.default_rng(3)
    skill = rng.normal(size=25)
    table = pd.DataFrame({f"b{j}": skill + rng.normal(scale=0.7, size=25) for j in range(5)},
                         index=[f"m{i}" for i in range(25)])
    result = rank_concordance(table, n_bootstrap=1000, seed=2)
    w = result.kendall_w_ci_over_models
    assert w.value == pytest.approx(kendall_w(table.to_numpy().T))
    assert w.ci_low < w.value < w.ci_high and w.method == "BCa" and w.resampled.startswith("models")
    chi2, p = friedman_test(table.to_numpy().T)
    assert result.friedman_chi2 == chi2 and p < 1e-6
    by_hand = pd.Series(sps.rankdata(-table.to_numpy(), axis=0).mean(axis=1), index=table.index)
    assert result.mean_ranks.to_dict() == pytest.approx(by_hand.to_dict())
    assert result.mean_ranks.is_monotonic_increasing
    cd = result.critical_difference
    for group in result.groups:
        ranks = result.mean_ranks[list(group)]
        assert ranks.max() - ranks.min() < cd
    text = format_text(result)
    assert "Kendall's W (tie-corrected)" in text and f"Nemenyi CD = {cd:.3f}" in text
    with pytest.raises(ConcordanceError, match="lack a score on some benchmark"):
        rank_concordance(table.mask(table > 2))
    with pytest.raises(ConcordanceError, match="at least 2 benchmarks and 3 models"):
        rank_concordance(table[["b0"]])


def test_critical_difference_diagram_has_a_bar_per_group_and_refuses_a_crowd():
    from zooprobe.report.figures import critical_difference_diagram

    rng = np.random.default_rng(8)
    table = pd.DataFrame({f"b{j}": np.arange(8) + rng.normal(scale=2.0, size=8) for j in range(6)},
                         index=[f"m{i}" for i in range(8)])
    result = rank_concordance(table, n_bootstrap=200)
    fig = critical_difference_diagram(result)
    bars = [line for line in fig.axes[0].get_lines() if line.get_linewidth() == 3]
    assert len(bars) == len(result.groups) > 0
    for bar, group in zip(bars, result.groups):
        assert sorted(bar.get_xdata()) == pytest.approx([result.mean_ranks[list(group)].min(),
                                                         result.mean_ranks[list(group)].max()])
    with pytest.raises(ValueError, match="too many for a readable diagram"):
        critical_difference_diagram(result, max_models=5)


def w_coverage(sims: int, *, k: int, m: int = 5, sigma: float = 0.8, seed: int = 0) -> float:
    """Share of ``sims`` simulated zoos whose W interval covers the population W: k models of normal skill,
    each benchmark scoring skill + N(0, sigma^2). Pairwise latent r = 1 / (1 + sigma^2), population Spearman
    (6/pi) arcsin(r/2), and without ties W = ((m - 1) mean rho + 1) / m."""
    rng = np.random.default_rng(seed)
    rho = 6 / np.pi * np.arcsin(1 / (1 + sigma ** 2) / 2)
    population_w = ((m - 1) * rho + 1) / m
    hits = 0
    for sim in range(sims):
        skill = rng.normal(size=k)
        table = pd.DataFrame({f"b{j}": skill + sigma * rng.normal(size=k) for j in range(m)})
        w = rank_concordance(table, n_bootstrap=1000, seed=sim).kendall_w_ci_over_models
        hits += w.ci_low <= population_w <= w.ci_high
    return hits / sims


def test_kendall_w_interval_over_models_covers_the_population_w():
    # 100 zoos of 15 models (the concordance module records 300 zoos at 10, 25 and 60 models).
    assert 0.88 < w_coverage(100, k=15) < 0.99
