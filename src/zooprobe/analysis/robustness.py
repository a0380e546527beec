"""Effective robustness: accuracy on the line (Taori et al. 2020; Miller et al. 2021).

Across a zoo, OOD accuracy is close to a linear function of ID accuracy once both are put through
a link (probit by default, as in imagenet-testbed; logit as an option):
``link(OOD) = intercept + slope * link(ID)``. A model's *effective robustness* is its OOD accuracy
minus what the line predicts from its ID accuracy, mapped back to accuracy: positive means more
robust than its ID accuracy alone predicts.

Intervals (percentile bootstrap, ``n_bootstrap`` replicates):

- slope, intercept (``*_ci_over_models``): each replicate draws the models with replacement
  and refits the line; where per-example correctness is given, the same replicate also redraws the
  ID and the OOD test examples (independently: they are different test sets), so each model's two
  accuracies carry their sampling noise.
- R² (``r2_ci_over_models``): the models alone, with their accuracies as observed; redrawing the
  test examples as well adds their noise a second time and biases every replicate's R² down.
- each model's effective robustness: in each replicate, the model's (redrawn, where predictions
  were given) OOD accuracy minus the replicate's line at its (redrawn) ID accuracy. The line of a
  replicate is fitted to the models drawn in it; the model itself need not be among them.

A table of accuracies has no per-example correctness. Given its test-set size n, each replicate
redraws each accuracy as Binomial(n, accuracy) / n, independently per model: an approximation,
since the models' errors on a shared test set are correlated and the table does not say how.
Without n only the models are redrawn, the intervals then hold the fit's uncertainty and not the
test sets' noise, and ``resampled`` says so. In
``tests/test_robustness.py``'s simulation of 300 zoos of 30 models from a known probit line, with
5,000 ID and 2,000 OOD test examples and both levels redrawn, the slope interval covered the true
slope in 95.0% of zoos and the effective-robustness intervals covered each model's true value
(against the population line) in 94.9% of 9,000 cases (12 models a zoo: 96.0% and 94.5%). Given
the accuracies and test-set sizes (binomial redraws): 95.7% and 94.8%. Given the accuracies
alone: 90.3% and 73.6%, since a model's own test noise is then left out of its interval.

Accuracies of exactly 0 or 1 have no probit or logit. They are clipped to ``[0.5/n, 1 - 0.5/n]``
where the test-set size n is known (half an example), else to ``[UNKNOWN_N_EPSILON, 1 - UNKNOWN_N_EPSILON]``;
the result names every clipped model. Effective robustness is reported against the unclipped OOD
accuracy. Bootstrap replicates of accuracies are clipped by the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as sps

from zooprobe.analysis.stats import CI_LEVEL, Estimate, bootstrap_counts, percentile_interval, stream_seed

LINKS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "probit": (sps.norm.ppf, sps.norm.cdf),
    "logit": (special.logit, special.expit),
}
DEFAULT_LINK = "probit"
# Where the test-set size is unknown (a table of accuracies), 0 and 1 become this far from the edge:
# half an example of a 5,000-example test set, probit -3.7 (give n for the half-example rule).
UNKNOWN_N_EPSILON = 1e-4
DEFAULT_BOOTSTRAP = 1000
DEFAULT_SHOWN = 5
# At least this many models with distinct ID accuracies are needed to fit a line and resample it.
MIN_MODELS = 3
MODELS_RESAMPLED = "models (drawn with replacement)"
# What each replicate does to one benchmark's accuracies, by what is known of its test set.
EXAMPLES_RESAMPLED = "{which} test examples redrawn (one draw for every model)"
BINOMIAL_RESAMPLED = ("{which} accuracies redrawn as Binomial({n}, accuracy) / {n}, independently per model "
                      "(a table: the models' shared test examples are not known)")
R2_RESAMPLED = f"{MODELS_RESAMPLED}, the accuracies as observed"
# Said of tables of accuracies without a test-set size: the intervals hold the fit's uncertainty only.
EXAMPLES_FIXED = "{which} test examples not redrawn (accuracies only: no predictions, no test-set size)"


class RobustnessError(ValueError):
    """The accuracies cannot be fitted; the message says how to fix it."""


def link_functions(link: str) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """The link and its inverse.

    Args:
        link: one of :data:`LINKS`.

    Returns:
        (link, inverse link), both elementwise on arrays.

    Raises:
        RobustnessError: an unknown link.
    """
    if link not in LINKS:
        raise RobustnessError(f"unknown link {link!r}; valid: {sorted(LINKS)}")
    return LINKS[link]


def clip_bounds(n: int | None, *, epsilon: float = UNKNOWN_N_EPSILON) -> tuple[float, float]:
    """The interval accuracies are clipped to: half an example from each edge, or ``epsilon`` when n is unknown."""
    margin = 0.5 / n if n else epsilon
    return margin, 1.0 - margin


def clip_accuracies(accuracy: np.ndarray, *, n: int | None = None,
                    epsilon: float = UNKNOWN_N_EPSILON) -> tuple[np.ndarray, np.ndarray]:
    """Accuracies moved off 0 and 1 so that their probit and logit are finite.

    Args:
        accuracy: accuracies in [0, 1].
        n: the test-set size, when known: clips to ``[0.5/n, 1 - 0.5/n]``.
        epsilon: the margin when ``n`` is unknown.

    Returns:
        (clipped accuracies, boolean mask of the entries that were moved).

    Raises:
        RobustnessError: an accuracy outside [0, 1] (a percentage, say).
    """
    accuracy = np.asarray(accuracy, dtype=float)
    if np.any((accuracy < 0) | (accuracy > 1)):
        raise RobustnessError(f"accuracies must lie in [0, 1], found {np.nanmin(accuracy)} to {np.nanmax(accuracy)}; "
                              "divide percentages by 100")
    low, high = clip_bounds(n, epsilon=epsilon)
    clipped = np.clip(accuracy, low, high)
    return clipped, clipped != accuracy


@dataclass(frozen=True)
class RobustnessFit:
    """The line through link(OOD) against link(ID) over models, and each model's effective robustness.

    Attributes:
        link: ``probit`` or ``logit``.
        slope_ci_over_models, intercept_ci_over_models, r2_ci_over_models: the fit on link scale,
            each an :class:`Estimate` whose interval is a percentile bootstrap over models (and test
            examples, where predictions were given; ``resampled`` says).
        table: one row per model: ``model``, ``id_accuracy``, ``ood_accuracy``, ``predicted_ood``
            (the line's prediction mapped back to accuracy), ``effective_robustness`` (OOD minus
            predicted, in accuracy units of 0 to 1), ``er_ci_low``, ``er_ci_high``, ``clipped``.
        clipped: one line per clipped accuracy, e.g. ``"m1: OOD 0 -> 5e-05"``.
        clip_rule: how accuracies were clipped.
        resampled: what each replicate redrew, outermost first.
        fit_replicates: (B, 2) slope and intercept of each replicate, for a confidence band.
    """

    link: str
    n_models: int
    slope_ci_over_models: Estimate
    intercept_ci_over_models: Estimate
    r2_ci_over_models: Estimate
    table: pd.DataFrame
    clipped: tuple[str, ...]
    clip_rule: str
    resampled: str
    n_bootstrap: int
    seed: int
    level: float
    fit_replicates: np.ndarray

    def predict(self, id_accuracy: np.ndarray) -> np.ndarray:
        """The line's OOD accuracy at these ID accuracies (in (0, 1); clip 0 and 1 first)."""
        forward, inverse = link_functions(self.link)
        return inverse(self.intercept_ci_over_models.value + self.slope_ci_over_models.value * forward(id_accuracy))

    def most_robust(self, count: int = DEFAULT_SHOWN) -> pd.DataFrame:
        """The ``count`` models with the largest effective robustness, largest first."""
        return self.table.sort_values("effective_robustness", ascending=False, kind="stable").head(count)

    def least_robust(self, count: int = DEFAULT_SHOWN) -> pd.DataFrame:
        """The ``count`` models with the smallest effective robustness, smallest first."""
        return self.table.sort_values("effective_robustness", ascending=True, kind="stable").head(count)

    def to_json(self, shown: int = DEFAULT_SHOWN) -> dict[str, Any]:
        """The fit, its intervals and the most and least effectively robust models, as plain JSON types."""
        out: dict[str, Any] = {"link": self.link, "n_models": self.n_models, "n_bootstrap": self.n_bootstrap,
                               "seed": self.seed, "level": self.level, "resampled": self.resampled,
                               "clip_rule": self.clip_rule, "clipped": list(self.clipped),
                               "effective_robustness_unit": "accuracy (0 to 1): OOD minus the line's prediction"}
        for name in ("slope", "intercept", "r2"):
            estimate = getattr(self, f"{name}_ci_over_models")
            out[name] = estimate.value
            out[f"{name}_ci_over_models"] = [estimate.ci_low, estimate.ci_high]
            out[f"{name}_resampled"] = estimate.resampled
        out["most_robust"] = self.most_robust(shown).to_dict("records")
        out["least_robust"] = self.least_robust(shown).to_dict("records")
        out["models"] = self.table.to_dict("records")
        out["fit_replicates"] = self.fit_replicates.tolist()
        return out

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> "RobustnessFit":
        """The fit :meth:`to_json` wrote (the report draws it from the analysis summary)."""
        method = "percentile" if record["n_bootstrap"] else ""

        def estimate(name: str) -> Estimate:
            low, high = record[f"{name}_ci_over_models"]
            return Estimate(record[name], low, high, record["n_models"], method, record[f"{name}_resampled"])

        return cls(link=record["link"], n_models=record["n_models"], slope_ci_over_models=estimate("slope"),
                   intercept_ci_over_models=estimate("intercept"), r2_ci_over_models=estimate("r2"),
                   table=pd.DataFrame(record["models"]), clipped=tuple(record["clipped"]),
                   clip_rule=record["clip_rule"], resampled=record["resampled"], n_bootstrap=record["n_bootstrap"],
                   seed=record["seed"], level=record["level"],
                   fit_replicates=np.asarray(record["fit_replicates"], dtype=float).reshape(-1, 2))


def _weighted_fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares slope, intercept and R² of each row of (x, y) with model weights (bootstrap counts):
    the fit of the resample with each model repeated as often as it was drawn; NaN for a constant x."""
    w = weights / weights.sum(axis=1, keepdims=True)
    mean_x, mean_y = (w * x).sum(axis=1), (w * y).sum(axis=1)
    dx, dy = x - mean_x[:, None], y - mean_y[:, None]
    sxx, syy, sxy = (w * dx ** 2).sum(axis=1), (w * dy ** 2).sum(axis=1), (w * dx * dy).sum(axis=1)
    # A spread at rounding level (every draw one model) fits no line.
    degenerate = sxx <= 1e-24 * (1 + (w * x ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(degenerate, np.nan, sxy / sxx)
        r2 = np.where(degenerate | (syy <= 0), np.nan, sxy ** 2 / (sxx * syy))
    return slope, mean_y - slope * mean_x, r2


def _replicate_accuracies(point: np.ndarray, correct: np.ndarray | None, n: int | None, *, n_bootstrap: int,
                          seed: int, stream: str, counts: np.ndarray | None = None) -> np.ndarray:
    """(B, M) accuracies: redrawn test examples (the same draw for every model; ``counts`` when the
    caller's draw is to be shared), binomial redraws of each accuracy when only the test-set size is
    known, or the point accuracies fixed."""
    if correct is not None:
        if counts is None:
            counts = bootstrap_counts(correct.shape[1], n_boot=n_bootstrap, seed=stream_seed(seed, stream))
        return counts @ correct.T.astype(float) / correct.shape[1]
    if n:
        rng = np.random.default_rng(stream_seed(seed, stream, "binomial"))
        return rng.binomial(n, point, size=(n_bootstrap, len(point))) / n
    return np.broadcast_to(point, (n_bootstrap, len(point)))


def _accuracy_resampling(which: str, correct: np.ndarray | None, n: int | None) -> str:
    if correct is not None:
        return EXAMPLES_RESAMPLED.format(which=which)
    return BINOMIAL_RESAMPLED.format(which=which, n=n) if n else EXAMPLES_FIXED.format(which=which)


def _check_correct(accuracy: np.ndarray, correct: np.ndarray | None, n: int | None, which: str) -> int | None:
    if correct is None:
        return n
    if correct.ndim != 2 or correct.shape[0] != len(accuracy):
        raise RobustnessError(f"{which} correctness must be (models, examples) with {len(accuracy)} rows, "
                              f"got shape {correct.shape}")
    if not np.allclose(correct.mean(axis=1), accuracy, atol=1e-9):
        raise RobustnessError(f"{which} accuracies differ from the mean of the {which} correctness given; "
                              "pass the correctness of the same models in the same order")
    return correct.shape[1]


def effective_robustness(models: Sequence[str], id_accuracy: np.ndarray, ood_accuracy: np.ndarray, *,
                         link: str = DEFAULT_LINK, n_id: int | None = None, n_ood: int | None = None,
                         correct_id: np.ndarray | None = None, correct_ood: np.ndarray | None = None,
                         n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0, level: float = CI_LEVEL,
                         epsilon: float = UNKNOWN_N_EPSILON, id_counts: np.ndarray | None = None,
                         ood_counts: np.ndarray | None = None) -> RobustnessFit:
    """Fit link(OOD accuracy) on link(ID accuracy) over models, with each model's effective robustness.

    Args:
        models: model names, one per accuracy.
        id_accuracy: (M,) in-distribution accuracies in [0, 1].
        ood_accuracy: (M,) out-of-distribution accuracies of the same models.
        link: ``"probit"`` (default) or ``"logit"``.
        n_id: ID test-set size (taken from ``correct_id`` when given): for clipping and, without
            ``correct_id``, for binomial redraws of the ID accuracies in each replicate.
        n_ood: OOD test-set size, likewise.
        correct_id: optional boolean (M, N_id) per-example correctness on ID; then every replicate
            also redraws the ID test examples.
        correct_ood: likewise on OOD.
        n_bootstrap: replicates; 0 gives no intervals (NaN).
        seed: seed of the resampling.
        level: coverage of the intervals.
        epsilon: clipping margin where a test-set size is unknown.
        id_counts: optional (n_bootstrap, N_id) bootstrap counts of the ID test examples, to share the
            caller's draw (the analysis stage's, one per test set); needs ``correct_id``.
        ood_counts: likewise for OOD; the same array as ``id_counts`` for an OOD set that copies the
            ID rows (a shifted copy of the test split), which makes the two one joint draw.

    Returns:
        A :class:`RobustnessFit` (module docstring: what the intervals resample).

    Raises:
        RobustnessError: an unknown link, accuracies outside [0, 1] or of different lengths, or too few
            models with distinct ID accuracies.
    """
    forward, inverse = link_functions(link)
    names = [str(m) for m in models]
    id_acc, ood_acc = np.asarray(id_accuracy, dtype=float), np.asarray(ood_accuracy, dtype=float)
    if not (len(names) == len(id_acc) == len(ood_acc)):
        raise RobustnessError(f"got {len(names)} models, {len(id_acc)} ID and {len(ood_acc)} OOD accuracies; "
                              "give one of each per model")
    if len(names) < MIN_MODELS or len(np.unique(id_acc)) < 2:
        raise RobustnessError(f"a line needs at least {MIN_MODELS} models with distinct ID accuracies; "
                              f"got {len(names)} models, {len(np.unique(id_acc))} distinct ID accuracies")
    n_id = _check_correct(id_acc, correct_id, n_id, "ID")
    n_ood = _check_correct(ood_acc, correct_ood, n_ood, "OOD")
    for which, counts, correct in (("ID", id_counts, correct_id), ("OOD", ood_counts, correct_ood)):
        if counts is not None and (correct is None or counts.shape != (n_bootstrap, correct.shape[1])):
            raise RobustnessError(f"{which} counts must be ({n_bootstrap}, examples) bootstrap counts of the "
                                  f"{which} correctness given, got {np.shape(counts)}")
    id_clipped, id_moved = clip_accuracies(id_acc, n=n_id, epsilon=epsilon)
    ood_clipped, ood_moved = clip_accuracies(ood_acc, n=n_ood, epsilon=epsilon)
    clipped = tuple(f"{name}: {which} {raw:g} -> {new:.6g}" for which, raws, news, moved in
                    (("ID", id_acc, id_clipped, id_moved), ("OOD", ood_acc, ood_clipped, ood_moved))
                    for name, raw, new, was in zip(names, raws, news, moved) if was)
    x, y = forward(id_clipped), forward(ood_clipped)
    fit = sps.linregress(x, y)
    slope, intercept, r2 = float(fit.slope), float(fit.intercept), float(fit.rvalue ** 2)
    predicted = inverse(intercept + slope * x)
    robustness = ood_acc - predicted

    m = len(names)
    joint = id_counts is not None and ood_counts is id_counts
    resampled = (f"{MODELS_RESAMPLED}; then in each replicate, {_accuracy_resampling('ID', correct_id, n_id)}; "
                 f"{_accuracy_resampling('OOD', correct_ood, n_ood)}"
                 f"{' (one joint draw with the ID examples, whose rows the OOD set copies)' if joint else ''}")
    if n_bootstrap:
        model_counts = bootstrap_counts(m, n_boot=n_bootstrap, seed=stream_seed(seed, "models"))
        id_rep = clip_accuracies(_replicate_accuracies(id_acc, correct_id, n_id, n_bootstrap=n_bootstrap, seed=seed,
                                                       stream="ID examples", counts=id_counts), n=n_id,
                                 epsilon=epsilon)[0]
        ood_rep_raw = _replicate_accuracies(ood_acc, correct_ood, n_ood, n_bootstrap=n_bootstrap, seed=seed,
                                            stream="OOD examples", counts=ood_counts)
        ood_rep = clip_accuracies(ood_rep_raw, n=n_ood, epsilon=epsilon)[0]
        x_rep = forward(id_rep)
        slopes, intercepts, _ = _weighted_fit(x_rep, forward(ood_rep), model_counts)
        # R² from the models alone: the observed points already carry their test noise, and adding it a
        # second time pulls every replicate's R² below the observed one (on timm's ImageNet-V2 table the
        # two-level interval lay wholly below the point).
        r2s = _weighted_fit(np.broadcast_to(x, x_rep.shape), np.broadcast_to(y, x_rep.shape), model_counts)[2]
        er_rep = ood_rep_raw - inverse(intercepts[:, None] + slopes[:, None] * x_rep)
        intervals = {"slope": percentile_interval(slopes, level), "intercept": percentile_interval(intercepts, level),
                     "r2": percentile_interval(r2s, level)}
        er_intervals = np.array([percentile_interval(er_rep[:, i], level) for i in range(m)])
        replicates = np.stack([slopes, intercepts], axis=1)
    else:
        intervals = {name: (float("nan"), float("nan")) for name in ("slope", "intercept", "r2")}
        er_intervals = np.full((m, 2), np.nan)
        replicates = np.empty((0, 2))

    def estimate(name: str, value: float) -> Estimate:
        low, high = intervals[name]
        what = R2_RESAMPLED if name == "r2" else resampled
        return Estimate(value, low, high, m, "percentile" if n_bootstrap else "", what if n_bootstrap else "")

    table = pd.DataFrame({"model": names, "id_accuracy": id_acc, "ood_accuracy": ood_acc, "predicted_ood": predicted,
                          "effective_robustness": robustness, "er_ci_low": er_intervals[:, 0],
                          "er_ci_high": er_intervals[:, 1], "clipped": id_moved | ood_moved})
    rule = "; ".join(f"{which}: [{low:.3g}, {high:.6g}] ({'half an example of ' + str(n) if n else 'no test-set size'})"
                     for which, n in (("ID", n_id), ("OOD", n_ood))
                     for low, high in [clip_bounds(n, epsilon=epsilon)])
    return RobustnessFit(link=link, n_models=m, slope_ci_over_models=estimate("slope", slope),
                         intercept_ci_over_models=estimate("intercept", intercept),
                         r2_ci_over_models=estimate("r2", r2), table=table, clipped=clipped,
                         clip_rule="accuracies of 0 or 1 clipped to " + rule, resampled=resampled,
                         n_bootstrap=n_bootstrap, seed=seed, level=level, fit_replicates=replicates)


def format_text(fit: RobustnessFit, *, names: tuple[str, str], shown: int = DEFAULT_SHOWN) -> str:
    """The fit with its intervals, then the ``shown`` most and least effectively robust models.

    Args:
        fit: from :func:`effective_robustness`.
        names: (ID, OOD) names for the header.
        shown: how many models to list at each end.

    Returns:
        Lines of text; effective robustness in percentage points of accuracy.
    """
    percent = int(round(100 * fit.level))

    def ci(estimate: Estimate) -> str:
        return f"[{estimate.ci_low:.3f}, {estimate.ci_high:.3f}]"

    lines = [f"effective robustness: {fit.link}(OOD accuracy) = intercept + slope * {fit.link}(ID accuracy), "
             f"over {fit.n_models} models",
             f"ID: {names[0]}", f"OOD: {names[1]}",
             f"{percent}% CIs: percentile bootstrap, {fit.n_bootstrap} replicates (seed {fit.seed}); "
             f"each replicate redraws {fit.resampled}",
             f"slope      {fit.slope_ci_over_models.value:7.3f}  {ci(fit.slope_ci_over_models)}",
             f"intercept  {fit.intercept_ci_over_models.value:7.3f}  {ci(fit.intercept_ci_over_models)}",
             f"R^2        {fit.r2_ci_over_models.value:7.3f}  {ci(fit.r2_ci_over_models)}  "
             f"(redraws {fit.r2_ci_over_models.resampled or 'nothing'})",
             fit.clip_rule + (f"; clipped: {', '.join(fit.clipped)}" if fit.clipped else "; none was clipped")]
    width = max(len("model"), *(len(m) for m in fit.table.model))
    header = (f"{'model':<{width}}  {'ID acc':>7}  {'OOD acc':>7}  {'on line':>7}  {'ER (pp)':>8}  "
              f"{f'{percent}% CI (pp)':>17}")
    for title, rows in ((f"the {shown} most effectively robust:", fit.most_robust(shown)),
                        (f"the {shown} least effectively robust:", fit.least_robust(shown))):
        lines += ["", title, header]
        for row in rows.itertuples(index=False):
            lines.append(f"{row.model:<{width}}  {row.id_accuracy:7.4f}  {row.ood_accuracy:7.4f}  "
                         f"{row.predicted_ood:7.4f}  {100 * row.effective_robustness:+8.2f}  "
                         f"[{100 * row.er_ci_low:+6.2f}, {100 * row.er_ci_high:+6.2f}]")
    return "\n".join(lines)
