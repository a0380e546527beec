"""Which layer stands for a model: the last one, or one chosen by split-half cross-validation.

:class:`LayerScorer` scores every metric of every layer under any weighting of the stimuli, so the
point estimate, its bootstrap replicates and the cross-validated choice (choose on one half of the
stimuli, score on the other) all come from one procedure.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from zooprobe.probes.alignment.odd_one_out import triplet_hits, weighted_accuracy
from zooprobe.probes.alignment.rsa import ceiling_from_subject_agreement, weighted_correlations, weighted_grades

LAYER_CHOICES: tuple[str, ...] = ("last", "best_cv")
CV_LAYER = "best_cv"  # the layer name of cross-validated scores, whose layer differs by split
CV_SPLITS = 5  # random halvings of the stimuli; each is scored in both directions
CV_STREAM = 1  # seeds the halvings apart from the stimulus resamples of the same seed


@dataclass(frozen=True)
class LayerScorer:
    """Every alignment metric of every layer, on any weighting of the stimuli.

    Scoring a row of draw counts (ones: the data as observed; a bootstrap resample; a resample
    restricted to one half of the stimuli) is what lets the point estimate, its replicates and the
    cross-validated layer choice all come from one procedure.

    Attributes:
        layers: layer names, in extraction order.
        model_sims: (L, N, N) model similarity per layer.
        human_sim: (N, N) human (group) similarity, or None for triplet data.
        subject_sims: (S, N, N) each subject's similarity (minus the RDM), or None.
        triplets: (T, 3) triplets, the humans' odd one out last.
    """

    layers: tuple[str, ...]
    model_sims: np.ndarray
    human_sim: np.ndarray | None
    subject_sims: np.ndarray | None
    triplets: np.ndarray

    @property
    def metrics(self) -> tuple[str, ...]:
        if self.human_sim is None:
            return ("odd_one_out_accuracy",)
        if self.subject_sims is None:
            return ("rsa", "odd_one_out_accuracy")
        return ("rsa", "rsa_subject_mean", "rsa_fraction_of_ceiling", "odd_one_out_accuracy")

    @property
    def score_metric(self) -> str:
        """The metric that ranks models: the subject-mean RSA where the noise ceiling bounds it."""
        if self.human_sim is None:
            return "odd_one_out_accuracy"
        return "rsa" if self.subject_sims is None else "rsa_subject_mean"

    @cached_property
    def _hits(self) -> np.ndarray:
        return np.stack([triplet_hits(sim, self.triplets) for sim in self.model_sims])

    @cached_property
    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        return np.triu_indices(self.model_sims.shape[1], k=1)

    @cached_property
    def _pair_values(self) -> tuple[np.ndarray, np.ndarray]:
        """(L, P) model and (1 + S, P) human similarities of the stimulus pairs: the group's first."""
        rows, cols = self._pairs
        humans = self.human_sim[rows, cols][None]
        if self.subject_sims is not None:
            humans = np.concatenate([humans, self.subject_sims[:, rows, cols]])
        return self.model_sims[:, rows, cols], humans

    def score(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric of every layer under each row of stimulus draw counts.

        RSA weights each stimulus pair by the product of its members' counts (pairs of a stimulus with
        its own copy are left out: their similarity is 1 in both); odd-one-out weights each triplet so
        (:func:`triplet_weights`).

        Args:
            counts: (R, N) draw counts.

        Returns:
            metric -> (R, L) values (NaN where a row leaves too few pairs or triplets).
        """
        counts = np.atleast_2d(counts)
        out = {"odd_one_out_accuracy": weighted_accuracy(counts, self.triplets, self._hits)}
        if self.human_sim is None:
            return out
        rows, cols = self._pairs
        models, humans = self._pair_values
        values = {name: np.full((len(counts), len(self.layers)), np.nan)
                  for name in self.metrics if name != "odd_one_out_accuracy"}
        for r, draw in enumerate(counts):
            weights = draw[rows] * draw[cols]
            kept = weights > 0
            if kept.sum() < 3:
                continue
            w = weights[kept]
            model_grades, human_grades = weighted_grades(models[:, kept], w), weighted_grades(humans[:, kept], w)
            with np.errstate(invalid="ignore", divide="ignore"):
                correlations = weighted_correlations(model_grades, human_grades, w)
                values["rsa"][r] = correlations[:, 0]
                if self.subject_sims is not None:
                    values["rsa_subject_mean"][r] = correlations[:, 1:].mean(axis=1)
                    subjects = humans[1:, kept]
                    others = (subjects.sum(axis=0) - subjects) / (len(subjects) - 1)
                    lower = np.mean(np.diag(weighted_correlations(human_grades[1:], weighted_grades(others, w), w)))
                    # The group similarity (row 0) is the mean of the subjects' similarities.
                    upper = weighted_correlations(human_grades[1:], human_grades[:1], w).mean()
                    ceiling = ceiling_from_subject_agreement(
                        weighted_correlations(human_grades[1:], human_grades[1:], w), bounds=(lower, upper))
                    values["rsa_fraction_of_ceiling"][r] = values["rsa_subject_mean"][r] / ceiling
        return out | values


def stimulus_halves(n: int, *, n_splits: int, seed: int) -> np.ndarray:
    """(n_splits, n) bool: seeded random halvings of the stimuli (True: the first half)."""
    rng = np.random.default_rng([seed, CV_STREAM])
    halves = np.zeros((n_splits, n), dtype=bool)
    for split in halves:
        split[rng.permutation(n)[: n // 2]] = True
    return halves


def _argmax_rows(values: np.ndarray) -> np.ndarray:
    """Column of each row's largest value, NaN counting as the smallest (the first column on ties)."""
    return np.where(np.isnan(values), -np.inf, values).argmax(axis=1)


def cross_validated_scores(scorer: LayerScorer, counts: np.ndarray, halves: np.ndarray
                           ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Split-half cross-validated layer choice: choose on one half of the stimuli, score on the other.

    For each halving and both directions, the layer with the best ranking metric on one half is
    scored (every metric) on the pairs or triplets within the other half; the score is the mean
    over halvings and directions. Run on bootstrap draw counts, each replicate repeats the whole
    procedure on its resampled stimuli, so the interval includes the choice.

    Args:
        scorer: the model's :class:`LayerScorer`.
        counts: (R, N) draw counts (ones for the data as observed).
        halves: (K, N) from :func:`stimulus_halves`.

    Returns:
        (metric -> (R,) cross-validated values, (K, 2, R) indices of the layers chosen on the first
        and on the second half of each halving).
    """
    counts = np.atleast_2d(counts)
    total = {name: np.zeros(len(counts)) for name in scorer.metrics}
    chosen = np.empty((len(halves), 2, len(counts)), dtype=np.int64)
    rows = np.arange(len(counts))
    for k, first in enumerate(halves):
        on_first, on_second = scorer.score(counts * first), scorer.score(counts * ~first)
        chosen[k, 0] = _argmax_rows(on_first[scorer.score_metric])
        chosen[k, 1] = _argmax_rows(on_second[scorer.score_metric])
        for name in scorer.metrics:
            total[name] += on_second[name][rows, chosen[k, 0]] + on_first[name][rows, chosen[k, 1]]
    return {name: value / (2 * len(halves)) for name, value in total.items()}, chosen

