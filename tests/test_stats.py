import numpy as np
import pytest
from scipy import stats as scipy_stats

from zooprobe import stats


def test_rank_correlations_match_scipy_on_known_inputs():
    a = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    b = np.array([0.85, 0.9, 0.6, 0.65, 0.4])
    assert stats.kendall_tau(a, b) == pytest.approx(scipy_stats.kendalltau(a, b).statistic)
    assert stats.kendall_tau(a, b) == pytest.approx(0.6)  # 8 concordant, 2 discordant pairs
    assert stats.spearman_rho(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic)
    assert stats.spearman_rho(a, b) == pytest.approx(0.8)  # 1 - 6*4/(5*24)
    assert stats.kendall_tau(a, a[::-1]) == pytest.approx(-1)
    assert np.isnan(stats.kendall_tau(a, np.ones(5)))


def test_vectorised_rank_correlations_match_scipy_row_by_row_with_ties():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, size=(200, 6)).astype(float)  # few values: many ties
    b = rng.integers(0, 4, size=(200, 6)).astype(float)
    a[0] = 1.0  # a constant row has no correlation
    taus, rhos = stats.kendall_tau_rows(a, b), stats.spearman_rho_rows(a, b)
    assert np.isnan(taus[0]) and np.isnan(rhos[0])
    for row in range(1, 200):
        if np.ptp(b[row]) == 0:
            continue
        assert taus[row] == pytest.approx(scipy_stats.kendalltau(a[row], b[row]).statistic)
        assert rhos[row] == pytest.approx(scipy_stats.spearmanr(a[row], b[row]).statistic)


def test_ranks_best_is_one_and_ties_average():
    assert stats.ranks(np.array([0.2, 0.9, 0.5, 0.5])).tolist() == [4.0, 1.0, 2.5, 2.5]


def test_bootstrap_accuracy_interval_brackets_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = stats.bootstrap_accuracy(rng.random(100) < 0.7, n_boot=500, seed=0)
    large = stats.bootstrap_accuracy(rng.random(10_000) < 0.7, n_boot=500, seed=0)
    assert small.ci_low < small.value < small.ci_high
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low) / 5
    assert large.ci_low < 0.7 < large.ci_high


def test_rank_agreement_is_one_when_benchmarks_agree_and_uncertain_when_noisy():
    rng = np.random.default_rng(1)
    skills = np.array([0.95, 0.8, 0.65, 0.5, 0.35])
    clear_a = rng.random((5, 2000)) < skills[:, None]
    clear_b = rng.random((5, 2000)) < skills[:, None] - 0.1
    clear = stats.bootstrap_rank_agreement(clear_a, clear_b, n_boot=200, seed=0)
    assert clear["kendall_tau"].value == pytest.approx(1.0) and clear["kendall_tau"].ci_low == pytest.approx(1.0)
    assert clear["spearman_rho"].n == 5
    close = np.array([0.60, 0.61, 0.62, 0.63, 0.64])
    noisy = stats.bootstrap_rank_agreement(rng.random((5, 50)) < close[:, None], rng.random((5, 50)) < close[:, None],
                                           n_boot=200, seed=0)
    # Five nearly equal models on 50 examples: the interval must be wide.
    assert noisy["kendall_tau"].ci_high - noisy["kendall_tau"].ci_low > 0.8


def test_rank_agreement_is_seeded():
    rng = np.random.default_rng(2)
    a, b = rng.random((4, 100)) < 0.6, rng.random((4, 100)) < 0.6
    first = stats.bootstrap_rank_agreement(a, b, n_boot=100, seed=3)
    again = stats.bootstrap_rank_agreement(a, b, n_boot=100, seed=3)
    assert first == again


def test_ood_retained():
    assert stats.ood_retained_pct(0.3, 0.6) == pytest.approx(50.0)
    assert np.isnan(stats.ood_retained_pct(0.3, 0.0))


def test_permutation_pvalue_enumerates_small_zoos_exactly():
    from zooprobe.stats import permutation_pvalue

    a = np.array([0.9, 0.8, 0.7, 0.6])
    # Of the 24 orderings, only the identity and its reverse reach |tau| = 1.
    assert permutation_pvalue(a, a) == pytest.approx(2 / 24)
    assert permutation_pvalue(a, -a) == pytest.approx(2 / 24)
    assert permutation_pvalue(a, np.array([0.6, 0.9, 0.7, 0.8])) > 0.5
    assert np.isnan(permutation_pvalue(a, np.ones(4)))
    rng = np.random.default_rng(0)
    big = rng.normal(size=30)
    p = permutation_pvalue(big, big + rng.normal(scale=0.1, size=30), n_perm=2000, seed=1)
    assert p == pytest.approx(1 / 2001)  # sampled: the observed pairing counts once, so p > 0


def test_cliffs_delta_wilcoxon_and_linear_fit_match_definitions():
    from scipy import stats as sps

    from zooprobe.stats import cliffs_delta, linear_fit, paired_wilcoxon

    assert cliffs_delta(np.array([3, 4]), np.array([1, 2])) == 1.0
    assert cliffs_delta(np.array([1, 3]), np.array([2, 2])) == 0.0
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([1.5, 2.1, 3.9, 4.2, 5.8, 6.9])
    assert paired_wilcoxon(y, x) == pytest.approx(sps.wilcoxon(y, x).pvalue)
    assert np.isnan(paired_wilcoxon(x, x))
    slope, intercept, r2 = linear_fit(x, 2 * x + 1)
    assert (slope, intercept, r2) == pytest.approx((2.0, 1.0, 1.0))
