"""Effective robustness (accuracy on the line): the fit against scipy, clipping, and interval coverage."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

from zooprobe.analysis.robustness import (RobustnessError, clip_accuracies, effective_robustness,
                                          format_text)


def _zoo(rng: np.random.Generator, m: int = 20) -> tuple[list[str], np.ndarray, np.ndarray]:
    id_acc = rng.uniform(0.55, 0.95, size=m)
    ood_acc = sps.norm.cdf(-0.4 + 0.9 * sps.norm.ppf(id_acc) + rng.normal(0, 0.08, size=m))
    return [f"m{i}" for i in range(m)], id_acc, ood_acc


@pytest.mark.parametrize("link, forward", [("probit", sps.norm.ppf), ("logit", special.logit)])
def test_fit_equals_scipy_linregress_on_the_linked_accuracies(link, forward):
    names, id_acc, ood_acc = _zoo(np.random.default_rng(0))
    fit = effective_robustness(names, id_acc, ood_acc, link=link, n_bootstrap=200, seed=1)
    expected = sps.linregress(forward(id_acc), forward(ood_acc))
    assert fit.slope_ci_over_models.value == pytest.approx(expected.slope, rel=1e-12)
    assert fit.intercept_ci_over_models.value == pytest.approx(expected.intercept, rel=1e-12)
    assert fit.r2_ci_over_models.value == pytest.approx(expected.rvalue ** 2, rel=1e-12)
    inverse = sps.norm.cdf if link == "probit" else special.expit
    by_hand = ood_acc - inverse(expected.intercept + expected.slope * forward(id_acc))
    assert fit.table.effective_robustness.to_numpy() == pytest.approx(by_hand, abs=1e-12)
    for estimate in (fit.slope_ci_over_models, fit.intercept_ci_over_models, fit.r2_ci_over_models):
        assert estimate.ci_low < estimate.value < estimate.ci_high and estimate.method == "percentile"
        assert estimate.resampled.startswith("models (drawn with replacement)")
    assert (fit.table.er_ci_low < fit.table.effective_robustness).all()
    assert (fit.table.effective_robustness < fit.table.er_ci_high).all()
    best = fit.most_robust(5)
    assert list(best.model) == [names[i] for i in np.argsort(-by_hand)[:5]]
    assert list(fit.least_robust(5).model) == [names[i] for i in np.argsort(by_hand)[:5]]


def test_zero_and_one_are_clipped_and_said_so():
    clipped, moved = clip_accuracies(np.array([0.0, 0.5, 1.0]), n=200)
    assert clipped.tolist() == [0.0025, 0.5, 0.9975] and moved.tolist() == [True, False, True]
    clipped, moved = clip_accuracies(np.array([1.0]), epsilon=1e-3)
    assert clipped.tolist() == [0.999] and moved.tolist() == [True]
    with pytest.raises(RobustnessError, match="divide percentages by 100"):
        clip_accuracies(np.array([80.0]))

    names, id_acc, ood_acc = _zoo(np.random.default_rng(2), m=8)
    id_acc[3], ood_acc[5] = 1.0, 0.0
    fit = effective_robustness(names, id_acc, ood_acc, n_id=1000, n_bootstrap=0)
    assert fit.clipped == ("m3: ID 1 -> 0.9995", "m5: OOD 0 -> 0.0001")  # OOD size unknown: the epsilon
    assert fit.table.clipped.tolist() == [i in (3, 5) for i in range(8)]
    assert "ID: [0.0005, 0.9995] (half an example of 1000)" in fit.clip_rule
    assert "OOD: [0.0001, 0.9999] (no test-set size)" in fit.clip_rule
    expected = sps.linregress(sps.norm.ppf(np.clip(id_acc, 0.0005, 0.9995)), sps.norm.ppf(np.clip(ood_acc, 1e-4, 1)))
    assert fit.slope_ci_over_models.value == pytest.approx(expected.slope)
    # Effective robustness is against the unclipped OOD accuracy.
    assert fit.table.effective_robustness[5] == pytest.approx(0.0 - fit.table.predicted_ood[5])
    assert "clipped: m3: ID 1 -> 0.9995, m5: OOD 0 -> 0.0001" in format_text(fit, names=("a", "b"))
    unclipped = effective_robustness(*_zoo(np.random.default_rng(2), m=8), n_bootstrap=0)
    assert unclipped.clipped == () and "none was clipped" in format_text(unclipped, names=("a", "b"))


def test_per_example_correctness_is_redrawn_and_must_match_the_accuracies():
    rng = np.random.default_rng(4)
    names, id_true, ood_true = _zoo(rng, m=12)
    correct_id = rng.random((12, 3000)) < id_true[:, None]
    correct_ood = rng.random((12, 1000)) < ood_true[:, None]
    id_acc, ood_acc = correct_id.mean(1), correct_ood.mean(1)
    with_examples = effective_robustness(names, id_acc, ood_acc, correct_id=correct_id, correct_ood=correct_ood,
                                         n_bootstrap=500, seed=3)
    models_only = effective_robustness(names, id_acc, ood_acc, n_bootstrap=500, seed=3)
    assert "ID test examples redrawn" in with_examples.resampled and "OOD test examples redrawn" in with_examples.resampled
    assert "OOD test examples not redrawn" in models_only.resampled
    binomial = effective_robustness(names, id_acc, ood_acc, n_id=3000, n_ood=1000, n_bootstrap=500, seed=3)
    assert "OOD accuracies redrawn as Binomial(1000, accuracy) / 1000" in binomial.resampled
    assert with_examples.slope_ci_over_models.value == models_only.slope_ci_over_models.value
    # The test noise widens each model's interval.
    widths = [(f.table.er_ci_high - f.table.er_ci_low).mean() for f in (with_examples, binomial, models_only)]
    assert widths[0] > 1.5 * widths[2] and widths[1] > 1.5 * widths[2]
    assert widths[1] == pytest.approx(widths[0], rel=0.25)  # independent errors: binomial redraws match
    with pytest.raises(RobustnessError, match="differ from the mean of the OOD correctness"):
        effective_robustness(names, id_acc, ood_acc + 0.01, correct_ood=correct_ood, n_bootstrap=0)
    with pytest.raises(RobustnessError, match=r"unknown link 'identity'; valid: \['logit', 'probit'\]"):
        effective_robustness(names, id_acc, ood_acc, link="identity")
    with pytest.raises(RobustnessError, match="at least 3 models with distinct ID accuracies"):
        effective_robustness(names[:2], id_acc[:2], ood_acc[:2])


# Coverage: zoos from a known probit-linear population. The estimands are the population line's
# slope and each model's effective robustness against it, ER_i = q_i - Phi(a + b Phi^-1(p_i)) with
# the model's true accuracies p_i, q_i; the observed accuracies come from simulated test sets.
TRUE_INTERCEPT, TRUE_SLOPE, SPREAD = -0.35, 0.9, 0.1


def coverage(zoos: int, *, models: int = 30, n_id: int = 5000, n_ood: int = 2000, n_bootstrap: int = 400,
             seed: int = 0, given: str = "predictions") -> tuple[float, float]:
    """Share of ``zoos`` simulated zoos whose slope interval covers the true slope, and share of
    (zoo, model) pairs whose effective-robustness interval covers the model's true value. ``given``:
    ``predictions`` (per-example correctness), ``sizes`` (accuracies and test-set sizes, as a table
    with --n-a/--n-b) or ``accuracies`` (a table alone)."""
    rng = np.random.default_rng(seed)
    slope_hits, er_hits = 0, []
    for zoo in range(zoos):
        x = rng.normal(0.6, 0.45, size=models)  # true probit ID accuracies: 55% to 90% for most models
        line = TRUE_INTERCEPT + TRUE_SLOPE * x
        p, q = sps.norm.cdf(x), sps.norm.cdf(line + rng.normal(0, SPREAD, size=models))
        truth = q - sps.norm.cdf(line)
        correct_id = rng.random((models, n_id)) < p[:, None]
        correct_ood = rng.random((models, n_ood)) < q[:, None]
        examples = {"predictions": {"correct_id": correct_id, "correct_ood": correct_ood},
                    "sizes": {"n_id": n_id, "n_ood": n_ood}, "accuracies": {}}[given]
        fit = effective_robustness([str(i) for i in range(models)], correct_id.mean(1), correct_ood.mean(1),
                                   n_bootstrap=n_bootstrap, seed=zoo, **examples)
        slope = fit.slope_ci_over_models
        slope_hits += slope.ci_low <= TRUE_SLOPE <= slope.ci_high
        er_hits.append((fit.table.er_ci_low <= truth) & (truth <= fit.table.er_ci_high))
    return slope_hits / zoos, float(np.mean(np.concatenate(er_hits)))


def test_slope_and_effective_robustness_intervals_cover_the_population_values():
    # 40 zoos of 30 models (the README records 300 zoos): a 95% interval that covered 85% or less,
    # or 100% of the effective-robustness values, fails.
    slope, er = coverage(40, n_id=2000, n_ood=1000, n_bootstrap=300)
    assert 0.85 < slope <= 1.0
    assert 0.88 < er < 0.99


def test_scatter_draws_the_fit_on_linked_axes_with_accuracy_ticks():
    from zooprobe.report.figures import effective_robustness_scatter

    names, id_acc, ood_acc = _zoo(np.random.default_rng(6))
    fit = effective_robustness(names, id_acc, ood_acc, n_bootstrap=200)
    fig = effective_robustness_scatter(fit, id_name="ID", ood_name="OOD")
    ax = fig.axes[0]
    line = next(line for line in ax.get_lines() if line.get_label().startswith("fit: slope"))
    span = line.get_xdata()
    assert line.get_ydata() == pytest.approx(fit.intercept_ci_over_models.value + fit.slope_ci_over_models.value * span)
    ticks = {float(label.get_text()): position for label, position in zip(ax.get_xticklabels(), ax.get_xticks())}
    assert ticks and all(position == pytest.approx(sps.norm.ppf(accuracy / 100)) for accuracy, position in ticks.items())
    assert len(ax.collections[0].get_offsets()) == len(names)
