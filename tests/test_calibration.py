"""Calibration by simulation: every interval covers what it claims, every p-value holds its level.

Each test simulates many datasets with a known truth, runs the library's own functions on each,
and counts how often the interval covers the truth (or the test rejects a true null). Seeds are
fixed, so the counts are the same on every run; README "Statistics" records them.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from zooprobe.analysis import stats
from zooprobe.analysis.agreement import Ranking, Resampler, rank_agreement
from zooprobe.analysis.scores import ProbeRun
from zooprobe.analysis.imagenot import imagenot_table

TAU = 0.33
# Greiner's relation: a bivariate normal with correlation r has Kendall tau (2/pi) arcsin(r) and
# Spearman rho (6/pi) arcsin(r/2), and both survive any increasing map to accuracies.
LATENT_R = np.sin(np.pi * TAU / 2)
RHO = 6 / np.pi * np.arcsin(LATENT_R / 2)
# What matters for the interval given the zoo is how far apart the models are in units of test
# noise. 10,000 test examples and an accuracy sd of 0.03 across models put them 7 standard errors
# apart per sd; 1,000 examples with an sd of 0.03 * sqrt(10) do the same, ten times faster.
N_EXAMPLES, ACCURACY_SD = 1000, 0.03 * np.sqrt(10)


def _zoo(rng: np.random.Generator, m: int, seed: int, n_boot: int):
    latent = rng.multivariate_normal([0, 0], [[1, LATENT_R], [LATENT_R, 1]], size=m)
    truth = np.clip(0.65 + ACCURACY_SD * latent, 0.02, 0.98)  # (m, 2): true accuracy on A and B
    models = tuple(f"m{i}" for i in range(m))
    rankings = []
    for column in range(2):
        correct = (rng.random((m, N_EXAMPLES)) < truth[:, [column]]).astype(float)
        counts = stats.bootstrap_counts(N_EXAMPLES, n_boot=n_boot, seed=[seed, column])
        rankings.append(Ranking(models, correct.mean(1), counts @ correct.T / N_EXAMPLES))
    return truth, rank_agreement(*rankings, unit_of={}, resampler=Resampler(n_boot=n_boot, seed=seed),
                                 with_pvalue=False)


def _covers(estimate: stats.Estimate, truth: float) -> bool:
    return estimate.ci_low - 1e-9 <= truth <= estimate.ci_high + 1e-9


def test_both_agreement_intervals_cover_their_own_truth():
    """500 zoos of 6-12 models: the population interval covers the population's tau (and rho), the
    interval given the zoo covers the tau of the zoo's own true accuracies; each 92-98% of the time."""
    rng = np.random.default_rng(20261201)
    hits = {"tau population": [], "rho population": [], "tau given zoo": [], "rho given zoo": []}
    for zoo in range(500):
        truth, found = _zoo(rng, int(rng.integers(6, 13)), zoo, n_boot=1000)
        tau, rho = found["kendall_tau"], found["spearman_rho"]
        hits["tau population"].append(_covers(tau.population, TAU))
        hits["rho population"].append(_covers(rho.population, RHO))
        hits["tau given zoo"].append(_covers(tau.given_zoo, stats.kendall_tau(truth[:, 0], truth[:, 1])))
        hits["rho given zoo"].append(_covers(rho.given_zoo, stats.spearman_rho(truth[:, 0], truth[:, 1])))
    coverage = {name: float(np.mean(h)) for name, h in hits.items()}
    print(coverage)
    for name, value in coverage.items():
        assert 0.92 <= value <= 0.98, f"{name}: {value:.3f} of nominal 95% intervals cover"


def _seeded_null(rng: np.random.Generator, architectures: int, seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores of architectures x seeds on two unrelated benchmarks: architecture effects (sd 3 points)
    and seed effects (sd 1 point) drawn independently for each benchmark."""
    scores = []
    for _ in range(2):
        arch = rng.normal(0, 0.03, architectures)[:, None]
        scores.append((0.7 + arch + rng.normal(0, 0.01, (architectures, seeds))).ravel())
    return scores[0], scores[1]


@pytest.mark.parametrize("architectures", [4, 8])
def test_permuting_units_holds_the_level_and_permuting_seeds_does_not(architectures):
    """No association between benchmarks, 3 seeds per architecture, 1,000 simulations."""
    rng = np.random.default_rng(architectures)
    by_unit, by_model = [], []
    for sim in range(1000):
        a, b = _seeded_null(rng, architectures, 3)
        unit_a, unit_b = a.reshape(architectures, 3).mean(1), b.reshape(architectures, 3).mean(1)
        by_unit.append(stats.permutation_pvalue(unit_a, unit_b, n_perm=1000, seed=sim) < 0.05)
        by_model.append(stats.permutation_pvalue(a, b, n_perm=1000, seed=sim) < 0.05)
    assert np.mean(by_unit) <= 0.06
    # The defect this replaces: seeds as separate models make the test reject far too often.
    assert np.mean(by_model) > 0.15
    if architectures == 8:  # Monte Carlo p with enough units to reach 0.05: close to the level
        assert np.mean(by_unit) >= 0.03


def test_rank_agreement_permutes_units_not_models():
    """Through the library path: seeds named as units make the p-value the units' one."""
    rng = np.random.default_rng(3)
    a, b = _seeded_null(rng, 4, 3)
    models = tuple(f"arch{i // 3}-s{i % 3}" for i in range(12))
    unit_of = {m: m.split("-")[0] for m in models}
    rankings = [Ranking(models, x, np.tile(x, (10, 1))) for x in (a, b)]
    found = rank_agreement(*rankings, unit_of=unit_of, resampler=Resampler(n_boot=10, seed=0))
    unit_a, unit_b = a.reshape(4, 3).mean(1), b.reshape(4, 3).mean(1)
    assert found["kendall_tau"].p_value.value == pytest.approx(stats.permutation_pvalue(unit_a, unit_b))
    assert found["kendall_tau"].p_value.n == 4 and found["kendall_tau"].n_models == 12


SWEEP = {"architectures": {f"arch{i}": {"arch": "resnet18"} for i in range(5)}, "datasets": ["data"],
         "seeds": [0, 1], "baseline": "arch0"}


def test_imagenot_relative_improvement_interval_covers_with_seeds_as_a_level():
    """5 architectures x 2 seeds (seed sd 1 point) on 2,000 test examples, 400 simulations: the
    interval on each architecture's % improvement over the baseline covers the truth 92-98%."""
    rng = np.random.default_rng(11)
    true_accuracy = np.linspace(0.70, 0.78, 5)
    truth = 100 * (true_accuracy[1:] - true_accuracy[0]) / true_accuracy[0]
    hits, examples_only = [], []
    n = 2000
    labels = np.zeros(n, dtype=int)
    for sim in range(400):
        runs, correct = [], {}
        for i in range(5):
            for seed in (0, 1):
                right = rng.random(n) < true_accuracy[i] + rng.normal(0, 0.01)
                correct[(i, seed)] = right
                name = f"arch{i}-data-s{seed}"
                runs.append(ProbeRun(name, "data", {}, {"data": labels},
                                     {"id_eval": "data", "layers": [], "val_accuracy": {}},
                                     head={"data": np.where(right, 0, 1)}))
        table = imagenot_table(runs, SWEEP, n_boot=500, seed=sim)
        gain = table[table.metric == "relative_improvement"].set_index("model")
        for i in range(1, 5):
            row = gain.loc[f"arch{i}"]
            hits.append(row.ci_low <= truth[i - 1] <= row.ci_high)
        # The interval this replaces held the seeds fixed and redrew only the test examples.
        counts = stats.bootstrap_counts(n, n_boot=500, seed=sim)
        mean = np.stack([(counts @ correct[(i, 0)] + counts @ correct[(i, 1)]) / (2 * n) for i in range(5)], 1)
        low, high = np.percentile(100 * (mean[:, 1:] - mean[:, [0]]) / mean[:, [0]], [2.5, 97.5], axis=0)
        examples_only.extend((low <= truth) & (truth <= high))
    print("hierarchical", np.mean(hits), "examples only", np.mean(examples_only))
    assert 0.92 <= np.mean(hits) <= 0.98
    assert np.mean(examples_only) < 0.9


def test_holm_and_benjamini_hochberg_on_fixed_inputs():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan, 0.2])
    # Holm by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.2 times 5, 4, 3, 2, 1, then running maximum.
    expected = {3: 0.025, 0: 0.04, 2: 0.09, 1: 0.09, 5: 0.2}
    holm = stats.holm(p)
    for index, value in expected.items():
        assert holm[index] == pytest.approx(value)
    assert np.isnan(holm[4])
    bh = stats.benjamini_hochberg(p)
    finite = ~np.isnan(p)
    assert bh[finite] == pytest.approx(sps.false_discovery_control(p[finite], method="bh"))
    # By hand: 0.005*5/1, 0.01*5/2, 0.03*5/3, 0.04*5/4, 0.2*5/5, then running minimum from the top.
    assert bh[finite] == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.2])
    assert np.isnan(bh[4]) and np.isnan(stats.holm([np.nan])).all()


def test_accuracy_and_paired_difference_intervals_cover():
    """500 test sets of 300 examples: the percentile interval on one model's accuracy, and on the
    paired difference of two models that share most of their errors, cover the truth 92-98%."""
    from zooprobe.analysis.agreement import UnitScores, paired_difference

    rng = np.random.default_rng(5)
    n, hits_accuracy, hits_difference = 300, [], []
    for sim in range(500):
        shared = rng.random(n) < 0.6  # both right on these; B also right on 10% of the others
        better = shared | (rng.random(n) < 0.10)
        counts = stats.bootstrap_counts(n, n_boot=1000, seed=sim)
        accuracy = stats.bootstrap_accuracy(better, counts=counts)
        hits_accuracy.append(_covers(accuracy, 0.6 + 0.4 * 0.10))
        correct = np.stack([better, shared]).astype(float)
        scores = UnitScores(("b", "a"), (("b",), ("a",)), correct.mean(1), counts @ correct.T / n, "test examples", n)
        difference, _ = paired_difference(scores, "b", "a")
        hits_difference.append(_covers(difference, 0.4 * 0.10))
    print("accuracy", np.mean(hits_accuracy), "paired difference", np.mean(hits_difference))
    assert 0.92 <= np.mean(hits_accuracy) <= 0.98 and 0.92 <= np.mean(hits_difference) <= 0.98
