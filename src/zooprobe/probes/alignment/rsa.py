"""RSA: Spearman correlation of the model's and the humans' pairwise similarities, and its noise ceiling.

``rsa`` correlates with the group similarity; with per-subject RDMs, ``rsa_subject_mean`` averages
the correlation with each subject's RDM, the quantity the Kriegeskorte noise ceiling (Nili et al.
2014) bounds. Weighted grades and correlations let one formula score the data as observed, a
bootstrap resample and a half of the stimuli (:mod:`.layer_choice`).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from zooprobe.analysis import stats
from zooprobe.probes.alignment.resampling import Scored

SIMILARITIES: tuple[str, ...] = ("cosine", "correlation")


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


def bootstrap_rsa(model_similarity: np.ndarray, human_sim: np.ndarray, *, resamples: np.ndarray,
                  level: float = stats.CI_LEVEL) -> Scored:
    """RSA with a bootstrap CI over stimuli.

    Each resample draws stimuli with replacement and correlates the two matrices over the
    pairs of distinct draws of distinct stimuli (a stimulus paired with its own copy has
    similarity 1 in both, which would inflate the correlation).

    Args:
        model_similarity: (N, N) model similarity.
        human_sim: (N, N) human similarity.
        resamples: (B, N) from :func:`~zooprobe.probes.alignment.resampling.stimulus_resamples`.
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

    Returns:
        The ceiling estimate (NaN when the subjects do not agree on average).
    """
    ranks = np.stack([rankdata(v) for v in _subject_vectors(rdms)])
    return ceiling_from_subject_agreement(np.corrcoef(ranks), bounds=bounds or noise_ceiling(rdms))


def weighted_grades(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
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


def weighted_correlations(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(A, B) weighted Pearson correlations of every row of ``a`` with every row of ``b``; NaN for a constant row."""
    w = weights / weights.sum()
    a = a - (a @ w)[:, None]
    b = b - (b @ w)[:, None]
    var_a, var_b = (a ** 2) @ w, (b ** 2) @ w
    denominator = np.sqrt(np.outer(var_a, var_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 1e-24, ((a * w) @ b.T) / denominator, np.nan)

