"""How well a model's representation or predictions agree with human judgements.

* RSA: Spearman correlation between the model's and the humans' pairwise similarities over
  the upper triangle, against the group similarity (``rsa``) and, where per-subject RDMs exist,
  averaged over subjects (``rsa_subject_mean``), with bootstrap CIs over stimuli.
* The Kriegeskorte noise ceiling of a set of per-subject RDMs (Nili et al. 2014), which bounds
  ``rsa_subject_mean`` (not ``rsa``); ``rsa_fraction_of_ceiling`` divides it by the ceiling
  estimate of :func:`ceiling_from_subject_agreement`, which lies between the bounds.
* Odd-one-out accuracy on triplets, with a CI over stimuli (each triplet weighted by its members'
  draw counts), and the human consistency ceiling of repeated triplets.
* A layer choice that does not look at the scored data (``last``) or is cross-validated over
  halves of the stimuli (``best_cv``).
* Agreement with human label distributions (CIFAR-10H): cross-entropy, KL, and the
  correlation of per-image entropies.

Every bootstrap takes its resamples from a seed, so every model is resampled the same way
and two models' replicates stay paired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from zooprobe.analysis import stats

SIMILARITIES: tuple[str, ...] = ("cosine", "correlation")
# Clip probabilities away from 0 so that one confident mistake gives a large, finite loss.
PROBABILITY_FLOOR = 1e-7
_CHUNK_ENTRIES = 20_000_000  # float entries of a (resamples, triplets) weight matrix held at once


@dataclass(frozen=True)
class Scored:
    """A point estimate, its bootstrap CI, and the bootstrap replicates behind the CI."""

    estimate: stats.Estimate
    replicates: np.ndarray


def similarity_matrix(features: np.ndarray, kind: str = "cosine") -> np.ndarray:
    """Pairwise similarity of the rows of ``features``.

    Args:
        features: (N, D) array.
        kind: ``cosine``, or ``correlation`` (1 minus the correlation distance: cosine of centred rows).

    Returns:
        (N, N) similarity, higher is more similar.
    """
    if kind not in SIMILARITIES:
        raise ValueError(f"unknown similarity {kind!r}; valid: {list(SIMILARITIES)}")
    x = np.asarray(features, dtype=np.float64)
    if kind == "correlation":
        x = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms == 0, 1.0, norms)
    return x @ x.T


def human_similarity(human: dict[str, np.ndarray]) -> np.ndarray:
    """The humans' (N, N) similarity: the matrix itself, or minus the mean of per-subject RDMs."""
    if "similarity" in human:
        return np.asarray(human["similarity"], dtype=np.float64)
    if "rdms" in human:
        return -np.asarray(human["rdms"], dtype=np.float64).mean(axis=0)
    raise ValueError(f"no human similarity here: found {sorted(human)}, need 'similarity' or 'rdms'")


def _upper(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.triu_indices(len(matrix), k=1)]


def rsa(model_similarity: np.ndarray, human_sim: np.ndarray) -> float:
    """Spearman correlation of two (N, N) similarity matrices over their upper triangles."""
    return stats.spearman_rho(_upper(model_similarity), _upper(human_sim))


def stimulus_resamples(n: int, *, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) stimulus indices drawn with replacement; the same for every model given the seed."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_rsa(model_similarity: np.ndarray, human_sim: np.ndarray, *, resamples: np.ndarray,
                  level: float = stats.CI_LEVEL) -> Scored:
    """RSA with a bootstrap CI over stimuli.

    Each resample draws stimuli with replacement and correlates the two matrices over the
    pairs of distinct draws of distinct stimuli (a stimulus paired with its own copy has
    similarity 1 in both, which would inflate the correlation).

    Args:
        model_similarity: (N, N) model similarity.
        human_sim: (N, N) human similarity.
        resamples: (B, N) from :func:`stimulus_resamples`.
        level: interval coverage.

    Returns:
        :class:`Scored` with the RSA over all stimuli and the (B,) replicates.
    """
    n = len(human_sim)
    rows, cols = np.triu_indices(n, k=1)
    replicates = np.empty(len(resamples))
    for b, draw in enumerate(resamples):
        a, c = draw[rows], draw[cols]
        distinct = a != c
        replicates[b] = stats.spearman_rho(model_similarity[a[distinct], c[distinct]], human_sim[a[distinct], c[distinct]])
    low, high = stats.percentile_interval(replicates, level)
    return Scored(stats.Estimate(rsa(model_similarity, human_sim), low, high, n), replicates)


def noise_ceiling(rdms: np.ndarray) -> tuple[float, float]:
    """Kriegeskorte noise ceiling of per-subject RDMs, for Spearman RSA (Nili et al. 2014).

    The bounds bound the mean over subjects of a model's correlation with each subject's RDM
    (``rsa_subject_mean``), not its correlation with the group-mean RDM.

    Args:
        rdms: (S, N, N) dissimilarity matrices, one per subject.

    Returns:
        (lower, upper): the mean over subjects of each subject's Spearman correlation with the
        mean RDM of the other subjects (lower bound) and of all subjects (upper bound).
    """
    vectors = _subject_vectors(rdms)
    total = vectors.sum(axis=0)
    mean_all = total / len(vectors)
    upper = np.mean([stats.spearman_rho(v, mean_all) for v in vectors])
    lower = np.mean([stats.spearman_rho(v, (total - v) / (len(vectors) - 1)) for v in vectors])
    return float(lower), float(upper)


def _subject_vectors(rdms: np.ndarray) -> np.ndarray:
    rdms = np.asarray(rdms, dtype=np.float64)
    if rdms.ndim != 3 or len(rdms) < 2:
        raise ValueError(f"need (subjects >= 2, N, N) RDMs, got shape {rdms.shape}")
    return np.stack([_upper(rdm) for rdm in rdms])


def ceiling_from_subject_agreement(subject_correlations: np.ndarray, *, bounds: tuple[float, float]) -> float:
    """The ceiling that ``rsa_fraction_of_ceiling`` divides by.

    The true RDM's expected subject-mean Spearman correlation, estimated from the mean
    inter-subject Spearman correlation and kept within the Nili bounds. If each subject's RDM is
    the true RDM plus independent Gaussian noise of one size, a subject's Pearson correlation with
    the truth is sqrt(its Pearson correlation with another subject); Spearman correlations are
    converted to Pearson and back through the Gaussian relation r = 2 sin(pi rho / 6). This
    estimates the true RDM's ``rsa_subject_mean``, which the bounds bracket (the lower bound correlates with a noisy mean of
    the others, the upper one with a mean that holds the subject). Where the subjects break that
    model (unequal noise, shared idiosyncrasies) the square root can leave the band, and the
    nearer bound is used. Dividing by the upper bound always would understate a perfect model,
    more so the noisier the subjects (0.89 for 16 subjects with bounds [0.38, 0.48]).

    Args:
        subject_correlations: (S, S) correlations between the subjects' RDMs (diagonal ignored).
        bounds: (lower, upper) Nili bounds of the same subjects (:func:`noise_ceiling`).

    Returns:
        The ceiling; NaN when the subjects do not agree on average (mean correlation <= 0).
    """
    c = np.asarray(subject_correlations, dtype=np.float64)
    mean = c[~np.eye(len(c), dtype=bool)].mean()
    if not mean > 0:
        return float("nan")
    # sqrt(r) holds for Pearson r of jointly Gaussian values; Spearman's goes through the Gaussian
    # relation r = 2 sin(pi rho / 6) and back (a plain sqrt of Spearman's overstates by 1-1.5%).
    pearson = 2 * np.sin(np.pi * mean / 6)
    spearman_with_truth = 6 / np.pi * np.arcsin(np.sqrt(pearson) / 2)
    lower, upper = bounds
    return float(np.clip(spearman_with_truth, lower, upper))


def noise_ceiling_estimate(rdms: np.ndarray, *, bounds: tuple[float, float] | None = None) -> float:
    """:func:`ceiling_from_subject_agreement` of the subjects' Spearman correlations.

    Args:
        rdms: (S, N, N) dissimilarity matrices, one per subject.
        bounds: their :func:`noise_ceiling`, when already computed.
    """
    from scipy.stats import rankdata

    ranks = np.stack([rankdata(v) for v in _subject_vectors(rdms)])
    return ceiling_from_subject_agreement(np.corrcoef(ranks), bounds=bounds or noise_ceiling(rdms))


def sample_triplets(human_sim: np.ndarray, *, n: int, seed: int) -> np.ndarray:
    """Triplets of distinct stimuli with the humans' odd one out last.

    The odd one out is the stimulus outside the most similar pair; triplets whose two most
    similar pairs tie are drawn again.

    Args:
        human_sim: (N, N) human similarity.
        n: number of triplets.
        seed: seed of the draw (recorded with the scores).

    Returns:
        (n, 3) int array.
    """
    if len(human_sim) < 3:
        raise ValueError(f"triplets need at least 3 stimuli, got {len(human_sim)}")
    rng = np.random.default_rng(seed)
    found: list[np.ndarray] = []
    while sum(len(f) for f in found) < n:
        draw = rng.integers(0, len(human_sim), size=(2 * n, 3))
        draw = draw[(draw[:, 0] != draw[:, 1]) & (draw[:, 0] != draw[:, 2]) & (draw[:, 1] != draw[:, 2])]
        odd, clear = odd_one_out(human_sim, draw)
        # Rotate each triplet so that its odd one out comes last.
        order = (odd[:, None] + np.array([1, 2, 3])) % 3
        found.append(np.take_along_axis(draw, order, axis=1)[clear])
    return np.concatenate(found)[:n]


def odd_one_out(similarity: np.ndarray, triplets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which member of each triplet is the odd one out under ``similarity``.

    Returns:
        (position 0..2 of the odd one out, whether the most similar pair is unique).
    """
    i, j, k = triplets[:, 0], triplets[:, 1], triplets[:, 2]
    # Pair similarities; the odd one out is the member outside the most similar pair.
    pairs = np.stack([similarity[j, k], similarity[i, k], similarity[i, j]], axis=1)
    ordered = np.sort(pairs, axis=1)
    return pairs.argmax(axis=1), ordered[:, 2] > ordered[:, 1]


def stimulus_counts(n: int, *, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) float: how often each stimulus is drawn in each of :func:`stimulus_resamples`' rows."""
    draws = stimulus_resamples(n, n_boot=n_boot, seed=seed) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def triplet_weights(counts: np.ndarray, triplets: np.ndarray) -> np.ndarray:
    """Weight of each triplet in each stimulus resample: the product of its three members' draw counts.

    A triplet that touches an undrawn stimulus drops out; one whose member was drawn twice counts
    twice, as it would among the triplets of the resampled stimulus multiset.

    Args:
        counts: (R, N) draw counts per resample (rows of ones for the data as observed).
        triplets: (T, 3) stimulus indices.

    Returns:
        (R, T) weights.
    """
    return counts[:, triplets[:, 0]] * counts[:, triplets[:, 1]] * counts[:, triplets[:, 2]]


def bootstrap_odd_one_out(model_similarity: np.ndarray, triplets: np.ndarray, *, n_boot: int, seed: int,
                          level: float = stats.CI_LEVEL) -> Scored:
    """Odd-one-out accuracy (chance 1/3) of the model on human triplets (odd one out last).

    Ties in the model's similarities count as a third of a hit. The CI resamples stimuli (the
    same draws as :func:`stimulus_resamples`), each triplet weighted by the product of its members'
    draw counts (:func:`triplet_weights`), so its width reflects the stimulus set rather than the
    number of triplets.
    """
    hits = _triplet_hits(model_similarity, triplets)
    counts = stimulus_counts(len(model_similarity), n_boot=n_boot, seed=seed)
    replicates = _weighted_accuracy(counts, triplets, hits[None])[:, 0]
    low, high = stats.percentile_interval(replicates, level)
    return Scored(stats.Estimate(float(hits.mean()), low, high, len(model_similarity)), replicates)


def _triplet_hits(similarity: np.ndarray, triplets: np.ndarray) -> np.ndarray:
    odd, unique = odd_one_out(similarity, triplets)
    return np.where(unique, (odd == 2).astype(float), 1.0 / 3.0)


def _weighted_accuracy(counts: np.ndarray, triplets: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """(R, L) accuracy of L layers' (L, T) hits under each resample's triplet weights; NaN if none survive."""
    out = np.empty((len(counts), len(hits)))
    step = max(1, _CHUNK_ENTRIES // max(len(triplets), 1))  # bounds the (rows, T) weight matrix in memory
    for start in range(0, len(counts), step):
        weights = triplet_weights(counts[start:start + step], triplets)
        total = weights.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + step] = np.where(total > 0, weights @ hits.T / total, np.nan)
    return out


def human_consistency(triplets: np.ndarray) -> tuple[float, int]:
    """The human consistency ceiling of odd-one-out choices answered more than once.

    For every triplet (as a set of three stimuli) with at least two answers: the fraction of its
    answers that name its modal odd one out; averaged over those triplets. This is the noise
    ceiling of THINGS odd-one-out accuracy (Hebart et al. 2020): no model can agree with every
    answer to a triplet that people answer differently. It counts each answer in its own modal
    choice, so with few repeats per triplet it is optimistic (at least 1/2 with two answers).

    Args:
        triplets: (T, 3) stimulus indices, the chosen odd one out last.

    Returns:
        (ceiling, number of triplets with repeats); (NaN, 0) when no triplet is repeated.
    """
    triplets = np.asarray(triplets, dtype=np.int64)
    _, which, answers = np.unique(np.sort(triplets, axis=1), axis=0, return_inverse=True, return_counts=True)
    which = which.ravel()
    repeated = answers >= 2
    if not repeated.any():
        return float("nan"), 0
    choice, per_choice = np.unique(np.stack([which, triplets[:, 2]], axis=1), axis=0, return_counts=True)
    modal = np.zeros(len(answers))
    np.maximum.at(modal, choice[:, 0], per_choice)
    return float(np.mean(modal[repeated] / answers[repeated])), int(repeated.sum())


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def entropy(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    return -(np.where(p > 0, p * np.log(np.clip(p, PROBABILITY_FLOOR, None)), 0.0)).sum(axis=1)


def human_label_agreement(model_probs: np.ndarray, human_probs: np.ndarray, *, n_boot: int, seed: int,
                          level: float = stats.CI_LEVEL) -> dict[str, Scored]:
    """Agreement of predicted with human label distributions, image by image.

    Args:
        model_probs: (N, K) predicted probabilities.
        human_probs: (N, K) human label distributions over the same images in the same order.
        n_boot: bootstrap resamples over images.
        seed: seed of the resamples (the same for every model).
        level: interval coverage.

    Returns:
        ``cross_entropy`` (mean of -sum h log p), ``kl`` (mean of sum h log(h / p)) and
        ``entropy_spearman`` (Spearman correlation of the per-image entropies).
    """
    p = np.clip(np.asarray(model_probs, dtype=np.float64), PROBABILITY_FLOOR, 1.0)
    h = np.asarray(human_probs, dtype=np.float64)
    if p.shape != h.shape:
        raise ValueError(f"model probabilities {p.shape} and human distributions {h.shape} differ in shape")
    cross = -(h * np.log(p)).sum(axis=1)
    kl = cross - entropy(h)
    counts = stats.bootstrap_counts(len(h), n_boot=n_boot, seed=seed)
    model_entropy, human_entropy = entropy(p), entropy(h)
    out: dict[str, Scored] = {}
    for name, per_image in (("cross_entropy", cross), ("kl", kl)):
        replicates = counts @ per_image / len(per_image)
        out[name] = Scored(stats.Estimate(float(per_image.mean()), *stats.percentile_interval(replicates, level),
                                          len(h)), replicates)
    draws = np.random.default_rng(seed + 1).integers(0, len(h), size=(n_boot, len(h)))
    replicates = np.array([stats.spearman_rho(model_entropy[d], human_entropy[d]) for d in draws])
    out["entropy_spearman"] = Scored(stats.Estimate(stats.spearman_rho(model_entropy, human_entropy),
                                                    *stats.percentile_interval(replicates, level), len(h)), replicates)
    return out


# ----------------------------------------------------------------------------- per model
LAYER_CHOICES: tuple[str, ...] = ("last", "best_cv")
HEAD = "head"
CV_LAYER = "best_cv"  # the layer name of cross-validated scores, whose layer differs by split
CV_SPLITS = 5  # random halvings of the stimuli; each is scored in both directions
_CV_STREAM = 1  # seeds the halvings apart from the stimulus resamples of the same seed


def _grades(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mid-distribution grades W(x < x_i) + W(x = x_i) / 2 of each row of ``x`` under shared ``weights``.

    The weighted Pearson correlation of two rows' grades is the Spearman correlation of the
    weighted sample (with integer weights, of the sample with each entry repeated).

    Args:
        x: (R, P) values.
        weights: (P,) positive weights.

    Returns:
        (R, P) grades in (0, 1).
    """
    order = np.argsort(x, axis=1, kind="stable")
    ordered = np.take_along_axis(x, order, axis=1)
    width = x.shape[1]
    position = np.broadcast_to(np.arange(width), x.shape)
    starts = np.ones(x.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(x.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)  # first index of each tie block
    last = np.minimum.accumulate(np.where(ends, position, width - 1)[:, ::-1], axis=1)[:, ::-1]
    cumulative = np.concatenate([np.zeros((len(x), 1)), np.cumsum(weights[order], axis=1)], axis=1)
    below = np.take_along_axis(cumulative, first, axis=1)
    tied = np.take_along_axis(cumulative, last + 1, axis=1) - below
    grades = np.empty_like(ordered)
    np.put_along_axis(grades, order, (below + tied / 2) / cumulative[:, -1:], axis=1)
    return grades


def _weighted_correlations(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(A, B) weighted Pearson correlations of every row of ``a`` with every row of ``b``; NaN for a constant row."""
    w = weights / weights.sum()
    a = a - (a @ w)[:, None]
    b = b - (b @ w)[:, None]
    var_a, var_b = (a ** 2) @ w, (b ** 2) @ w
    denominator = np.sqrt(np.outer(var_a, var_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 1e-24, ((a * w) @ b.T) / denominator, np.nan)


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
        return np.stack([_triplet_hits(sim, self.triplets) for sim in self.model_sims])

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
        out = {"odd_one_out_accuracy": _weighted_accuracy(counts, self.triplets, self._hits)}
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
            model_grades, human_grades = _grades(models[:, kept], w), _grades(humans[:, kept], w)
            with np.errstate(invalid="ignore", divide="ignore"):
                correlations = _weighted_correlations(model_grades, human_grades, w)
                values["rsa"][r] = correlations[:, 0]
                if self.subject_sims is not None:
                    values["rsa_subject_mean"][r] = correlations[:, 1:].mean(axis=1)
                    subjects = humans[1:, kept]
                    others = (subjects.sum(axis=0) - subjects) / (len(subjects) - 1)
                    lower = np.mean(np.diag(_weighted_correlations(human_grades[1:], _grades(others, w), w)))
                    # The group similarity (row 0) is the mean of the subjects' similarities.
                    upper = _weighted_correlations(human_grades[1:], human_grades[:1], w).mean()
                    ceiling = ceiling_from_subject_agreement(
                        _weighted_correlations(human_grades[1:], human_grades[1:], w), bounds=(lower, upper))
                    values["rsa_fraction_of_ceiling"][r] = values["rsa_subject_mean"][r] / ceiling
        return out | values


def stimulus_halves(n: int, *, n_splits: int, seed: int) -> np.ndarray:
    """(n_splits, n) bool: seeded random halvings of the stimuli (True: the first half)."""
    rng = np.random.default_rng([seed, _CV_STREAM])
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


@dataclass
class ModelAlignment:
    """Every alignment score of one model (or prediction table) on one benchmark.

    Attributes:
        rows: tidy rows (layer, metric, value, ci_low, ci_high, n).
        score_metric: the metric that ranks models on this benchmark (higher is better).
        selected_layer: the layer whose score stands for the model (``best_cv``: chosen per split).
        score: that score.
        replicates: its bootstrap replicates, paired across models by the shared seed.
        extra: benchmark-level numbers, e.g. the noise ceiling.
        selection: how the layer was chosen (for ``best_cv`` the layer chosen on each half).
    """

    rows: list[dict[str, object]]
    score_metric: str
    selected_layer: str
    score: float
    replicates: np.ndarray
    extra: dict[str, float]
    selection: dict[str, object] = field(default_factory=dict)


def _row(layer: str, metric: str, est: stats.Estimate) -> dict[str, object]:
    return {"layer": layer, "metric": metric, "value": est.value, "ci_low": est.ci_low, "ci_high": est.ci_high,
            "n": est.n}


def align_representation(layers: dict[str, np.ndarray], human: dict[str, np.ndarray], *, similarity: str,
                         layer_choice: str, n_triplets: int, n_boot: int, seed: int) -> ModelAlignment:
    """RSA (similarity data) or odd-one-out accuracy (triplets) of every layer.

    Args:
        layers: layer name -> (N, D) features of the stimuli, in the human data's order.
        human: the benchmark's human data (``similarity``, ``rdms`` or ``triplets``).
        similarity: ``cosine`` or ``correlation``.
        layer_choice: see :func:`align_similarities`.
        n_triplets: triplets to sample from a human similarity matrix (seeded by ``seed``).
        n_boot: bootstrap resamples of the stimuli.
        seed: seed of the resamples, the triplet sample and the cross-validation halvings.

    Returns:
        :class:`ModelAlignment` (see :func:`align_similarities`).
    """
    if layer_choice not in LAYER_CHOICES:
        raise ValueError(f"unknown layer choice {layer_choice!r}; valid: {list(LAYER_CHOICES)}")
    return align_similarities({name: similarity_matrix(f, similarity) for name, f in layers.items()}, human,
                              layer_choice=layer_choice, n_triplets=n_triplets, n_boot=n_boot, seed=seed)


def align_similarities(model_sims: dict[str, np.ndarray], human: dict[str, np.ndarray], *, layer_choice: str,
                       n_triplets: int, n_boot: int, seed: int) -> ModelAlignment:
    """Every alignment metric of every layer's similarity matrix, with bootstrap CIs over stimuli.

    Metrics: ``rsa`` (against the group similarity); with per-subject RDMs also ``rsa_subject_mean``
    (the mean over subjects of the RSA with each subject's RDM, the quantity the Nili et al. 2014
    noise ceiling bounds, and the one that ranks models) and ``rsa_fraction_of_ceiling``
    (``rsa_subject_mean`` / the ceiling estimate of :func:`ceiling_from_subject_agreement`, both
    computed on each resample); ``odd_one_out_accuracy``
    on the given triplets or on ``n_triplets`` sampled from the group similarity. Every interval
    resamples stimuli, with the same draws for every model.

    Args:
        model_sims: layer name -> (N, N) model similarity, in extraction order.
        human: the benchmark's human data (``similarity``, ``rdms`` or ``triplets``).
        layer_choice: ``last`` (the last layer stands for the model) or ``best_cv`` (split-half
            cross-validated choice, :func:`cross_validated_scores`; its rows have layer ``best_cv``
            and metrics suffixed ``_cv``).
        n_triplets: triplets to sample from a human similarity matrix.
        n_boot: bootstrap resamples of the stimuli.
        seed: seed of the resamples, the triplet sample and the halvings.

    Returns:
        :class:`ModelAlignment`, ranked by ``rsa_subject_mean`` (RDMs), ``rsa`` (a similarity matrix)
        or ``odd_one_out_accuracy`` (triplets).
    """
    if layer_choice not in LAYER_CHOICES:
        raise ValueError(f"unknown layer choice {layer_choice!r}; valid: {list(LAYER_CHOICES)} "
                         f"('best_cv' chooses the layer on one half of the stimuli and scores it on the other)")
    names = list(model_sims)
    sims = np.stack([np.asarray(model_sims[name], dtype=np.float64) for name in names])
    n = sims.shape[1]
    extra: dict[str, float] = {}
    if "triplets" in human:
        triplets, target, subjects = np.asarray(human["triplets"], dtype=np.int64), None, None
        if triplets.size and (triplets.min() < 0 or triplets.max() >= n):
            raise ValueError(f"triplets index stimuli 0..{triplets.max()}, but there are {n} stimuli")
        consistency, repeated = human_consistency(triplets)
        extra["n_triplets"] = float(len(triplets))
        if repeated:
            extra["human_consistency"], extra["n_repeated_triplets"] = consistency, float(repeated)
    else:
        target = human_similarity(human)
        triplets = sample_triplets(target, n=n_triplets, seed=seed)
        subjects = -np.asarray(human["rdms"], dtype=np.float64) if "rdms" in human else None
        if subjects is not None:
            bounds = noise_ceiling(human["rdms"])
            extra["noise_ceiling_lower"], extra["noise_ceiling_upper"] = bounds
            extra["noise_ceiling_estimate"] = noise_ceiling_estimate(human["rdms"], bounds=bounds)
    scorer = LayerScorer(tuple(names), sims, target, subjects, triplets)
    counts = stimulus_counts(n, n_boot=n_boot, seed=seed)
    observed, replicates = scorer.score(np.ones((1, n))), scorer.score(counts)
    rows = [_row(name, metric, stats.Estimate(float(observed[metric][0, i]),
                                              *stats.percentile_interval(replicates[metric][:, i]), n))
            for i, name in enumerate(names) for metric in scorer.metrics]
    metric = scorer.score_metric
    if layer_choice == "last":
        return ModelAlignment(rows, metric, names[-1], float(observed[metric][0, -1]), replicates[metric][:, -1],
                              extra, {"rule": "last", "layer": names[-1]})
    halves = stimulus_halves(n, n_splits=CV_SPLITS, seed=seed)
    cv_observed, chosen = cross_validated_scores(scorer, np.ones((1, n)), halves)
    cv_replicates, chosen_boot = cross_validated_scores(scorer, counts, halves)
    for name in scorer.metrics:
        rows.append(_row(CV_LAYER, f"{name}_cv", stats.Estimate(
            float(cv_observed[name][0]), *stats.percentile_interval(cv_replicates[name]), n)))
    picks = np.bincount(chosen_boot.ravel(), minlength=len(names)) / chosen_boot.size
    selection = {"rule": "best_cv", "chosen_by": metric, "n_splits": CV_SPLITS, "split_seed": [seed, _CV_STREAM],
                 "splits": [{"chosen_on_first_half": names[first], "chosen_on_second_half": names[second]}
                            for first, second in chosen[:, :, 0]],
                 "bootstrap_choice_frequency": {name: float(p) for name, p in zip(names, picks)}}
    return ModelAlignment(rows, metric, CV_LAYER, float(cv_observed[metric][0]), cv_replicates[metric], extra,
                          selection)


def align_predictions(model_probs: np.ndarray, human_probs: np.ndarray, *, n_boot: int, seed: int) -> ModelAlignment:
    """Agreement with human label distributions; ranked by minus the cross-entropy (higher is better).

    Args:
        model_probs: (N, K) predicted probabilities on the images that have human labels.
        human_probs: (N, K) the human distributions, same rows.
        n_boot: bootstrap resamples over images.
        seed: seed of the resamples (shared by every model, so replicates are paired).

    Returns:
        :class:`ModelAlignment` at layer ``head``.
    """
    scored = human_label_agreement(model_probs, human_probs, n_boot=n_boot, seed=seed)
    rows = [_row(HEAD, name, s.estimate) for name, s in scored.items()]
    ce = scored["cross_entropy"]
    return ModelAlignment(rows, "neg_cross_entropy", HEAD, -ce.estimate.value, -ce.replicates, {},
                          {"rule": "head", "layer": HEAD})


def labelled_rows(human: dict[str, np.ndarray], split: np.ndarray) -> np.ndarray:
    """Indices of the test rows that have a human label distribution."""
    probs = human["label_probs"]
    return np.flatnonzero((split == "test") & np.isfinite(probs).all(axis=1))


def table_probabilities(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Probabilities from a prediction table: its ``probs``, or the softmax of its ``logits``."""
    if "probs" in arrays:
        return np.asarray(arrays["probs"], dtype=np.float64)
    if "logits" in arrays:
        return softmax(arrays["logits"])
    raise ValueError(f"a prediction table needs 'logits' or 'probs', found {sorted(arrays)}")
