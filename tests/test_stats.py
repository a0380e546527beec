import numpy as np
import pytest
from scipy import stats as scipy_stats

from zooprobe.analysis import stats


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


def _ranking(correct, seed):
    from zooprobe.analysis.agreement import Ranking

    counts = stats.bootstrap_counts(correct.shape[1], n_boot=200, seed=seed)
    return Ranking(tuple(f"m{i}" for i in range(len(correct))), correct.mean(1), counts @ correct.T / correct.shape[1])


def test_rank_agreement_is_one_when_benchmarks_agree_and_uncertain_when_noisy():
    from zooprobe.analysis.agreement import Resampler, rank_agreement

    rng = np.random.default_rng(1)
    skills = np.array([0.95, 0.8, 0.65, 0.5, 0.35])
    clear_a = (rng.random((5, 2000)) < skills[:, None]).astype(float)
    clear_b = (rng.random((5, 2000)) < skills[:, None] - 0.1).astype(float)
    clear = rank_agreement(_ranking(clear_a, 1), _ranking(clear_b, 2), unit_of={},
                           resampler=Resampler(n_boot=200, seed=0))
    tau = clear["kendall_tau"]
    assert tau.given_zoo.value == pytest.approx(1.0) and tau.given_zoo.ci_low == pytest.approx(1.0)
    # Every pair of units ordered alike: no redraw of the units can disorder them, so the population
    # interval is the exact bound from floor(5/2) = 2 disjoint pairs, 2 * 0.025 ** (1/2) - 1, not the point.
    assert tau.population.ci_low == pytest.approx(2 * 0.025 ** 0.5 - 1) and tau.population.ci_high == 1.0
    assert tau.population.method.startswith("exact binomial bound") and clear["spearman_rho"].given_zoo.n == 5
    close = np.array([0.60, 0.61, 0.62, 0.63, 0.64])
    noisy = rank_agreement(_ranking((rng.random((5, 50)) < close[:, None]).astype(float), 3),
                           _ranking((rng.random((5, 50)) < close[:, None]).astype(float), 4), unit_of={},
                           resampler=Resampler(n_boot=200, seed=0))
    # Five nearly equal models on 50 examples: even the interval given the zoo must be wide.
    assert noisy["kendall_tau"].given_zoo.ci_high - noisy["kendall_tau"].given_zoo.ci_low > 0.8


def test_rank_agreement_is_seeded_and_needs_three_units():
    from zooprobe.analysis.agreement import Resampler, rank_agreement

    rng = np.random.default_rng(2)
    a, b = (rng.random((4, 100)) < 0.6).astype(float), (rng.random((4, 100)) < 0.6).astype(float)
    first = rank_agreement(_ranking(a, 1), _ranking(b, 2), unit_of={}, resampler=Resampler(n_boot=100, seed=3))
    again = rank_agreement(_ranking(a, 1), _ranking(b, 2), unit_of={}, resampler=Resampler(n_boot=100, seed=3))
    assert repr(first) == repr(again)  # NaN != NaN, so compare the printed values
    two_units = {"m0": "x", "m1": "x", "m2": "y", "m3": "y"}
    assert rank_agreement(_ranking(a, 1), _ranking(b, 2), unit_of=two_units, resampler=Resampler(n_boot=10, seed=0)) is None


def test_weighted_correlations_equal_the_repeated_sample():
    """Integer weights are a resample with repeats: the weighted tau-b and rho equal scipy's on it."""
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(30, 9)), rng.normal(size=(30, 9))
    counts = rng.multinomial(9, np.full(9, 1 / 9), size=30).astype(float)
    taus, rhos = stats.kendall_tau_rows(a, b, counts), stats.spearman_rho_rows(a, b, counts)
    for row in range(30):
        x, y = np.repeat(a[row], counts[row].astype(int)), np.repeat(b[row], counts[row].astype(int))
        assert taus[row] == pytest.approx(scipy_stats.kendalltau(x, y).statistic)
        assert rhos[row] == pytest.approx(scipy_stats.spearmanr(x, y).statistic)
    big = rng.normal(size=(3, 150))  # above stats.LARGE_ZOO: scipy per row, the same numbers
    assert stats.kendall_tau_rows(big, big[::-1]) == pytest.approx(
        [scipy_stats.kendalltau(big[r], big[2 - r]).statistic for r in range(3)])


def test_leave_one_out_matches_recomputing():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=8), rng.normal(size=8)
    for name, function in (("kendall_tau", stats.kendall_tau), ("spearman_rho", stats.spearman_rho)):
        direct = [function(np.delete(a, k), np.delete(b, k)) for k in range(8)]
        assert stats.leave_one_out(name, a, b) == pytest.approx(direct)


def test_bca_reduces_to_percentile_without_bias_or_skew_and_shifts_with_bias():
    rng = np.random.default_rng(7)
    samples = rng.normal(size=20_000)
    symmetric = np.linspace(-1, 1, 9)
    assert stats.bca_interval(samples, 0.0, symmetric) == pytest.approx(stats.percentile_interval(samples), abs=0.05)
    low, high = stats.bca_interval(samples, 0.5, symmetric)  # most replicates below the estimate: shift up
    assert low > stats.percentile_interval(samples)[0] + 0.5
    assert stats.bca_interval(np.full(50, 0.3), 0.3, symmetric) == (0.3, 0.3)


def test_bootstrap_pvalue_and_few_resamples_warning():
    assert stats.bootstrap_pvalue(np.full(99, 1.0)) == pytest.approx(2 / 100)
    assert stats.bootstrap_pvalue(np.r_[np.full(50, -1.0), np.full(50, 1.0)]) == 1.0
    with pytest.warns(UserWarning, match="n_bootstrap=200 is below 1000"):
        stats.warn_if_few_resamples(200)


def test_permutation_pvalue_enumerates_small_zoos_exactly():
    from zooprobe.analysis.stats import permutation_pvalue

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

    from zooprobe.analysis.stats import cliffs_delta, linear_fit, paired_wilcoxon

    assert cliffs_delta(np.array([3, 4]), np.array([1, 2])) == 1.0
    assert cliffs_delta(np.array([1, 3]), np.array([2, 2])) == 0.0
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([1.5, 2.1, 3.9, 4.2, 5.8, 6.9])
    assert paired_wilcoxon(y, x) == pytest.approx(sps.wilcoxon(y, x).pvalue)
    assert np.isnan(paired_wilcoxon(x, x))
    slope, intercept, r2 = linear_fit(x, 2 * x + 1)
    assert (slope, intercept, r2) == pytest.approx((2.0, 1.0, 1.0))
