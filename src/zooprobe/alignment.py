"""How well a model's representation or predictions agree with human judgements.

* RSA: Spearman correlation between the model's and the humans' pairwise similarities over
  the upper triangle, with a bootstrap CI over stimuli.
* The Kriegeskorte noise ceiling of a set of per-subject RDMs (Nili et al. 2014).
* Odd-one-out accuracy on triplets.
* Agreement with human label distributions (CIFAR-10H): cross-entropy, KL, and the
  correlation of per-image entropies.

Every bootstrap takes its resamples from a seed, so every model is resampled the same way
and two models' replicates stay paired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from zooprobe import stats

SIMILARITIES: tuple[str, ...] = ("cosine", "correlation")
# Clip probabilities away from 0 so that one confident mistake gives a large, finite loss.
PROBABILITY_FLOOR = 1e-7


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

    Args:
        rdms: (S, N, N) dissimilarity matrices, one per subject.

    Returns:
        (lower, upper): the mean over subjects of each subject's Spearman correlation with the
        mean RDM of the other subjects (lower bound) and of all subjects (upper bound).
    """
    rdms = np.asarray(rdms, dtype=np.float64)
    if rdms.ndim != 3 or len(rdms) < 2:
        raise ValueError(f"need (subjects >= 2, N, N) RDMs, got shape {rdms.shape}")
    vectors = np.stack([_upper(rdm) for rdm in rdms])
    total = vectors.sum(axis=0)
    mean_all = total / len(vectors)
    upper = np.mean([stats.spearman_rho(v, mean_all) for v in vectors])
    lower = np.mean([stats.spearman_rho(v, (total - v) / (len(vectors) - 1)) for v in vectors])
    return float(lower), float(upper)


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
    rng = np.random.default_rng(seed)
    found: list[np.ndarray] = []
    while sum(len(f) for f in found) < n:
        draw = np.stack([rng.choice(len(human_sim), size=3, replace=False) for _ in range(n)])
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


def bootstrap_odd_one_out(model_similarity: np.ndarray, triplets: np.ndarray, *, n_boot: int, seed: int,
                          level: float = stats.CI_LEVEL) -> Scored:
    """Odd-one-out accuracy (chance 1/3) of the model on human triplets (odd one out last).

    Ties in the model's similarities count as a third of a hit. The CI resamples triplets.
    """
    odd, unique = odd_one_out(model_similarity, triplets)
    hits = np.where(unique, (odd == 2).astype(float), 1.0 / 3.0)
    counts = stats.bootstrap_counts(len(hits), n_boot=n_boot, seed=seed)
    replicates = counts @ hits / len(hits)
    low, high = stats.percentile_interval(replicates, level)
    return Scored(stats.Estimate(float(hits.mean()), low, high, len(hits)), replicates)


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
LAYER_CHOICES: tuple[str, ...] = ("last", "best")
HEAD = "head"


@dataclass
class ModelAlignment:
    """Every alignment score of one model (or prediction table) on one benchmark.

    Attributes:
        rows: tidy rows (layer, metric, value, ci_low, ci_high, n).
        score_metric: the metric that ranks models on this benchmark (higher is better).
        selected_layer: the layer whose score stands for the model.
        score: that score.
        replicates: its bootstrap replicates, paired across models by the shared seed.
        extra: benchmark-level numbers, e.g. the noise ceiling.
    """

    rows: list[dict[str, object]]
    score_metric: str
    selected_layer: str
    score: float
    replicates: np.ndarray
    extra: dict[str, float]


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
        layer_choice: ``last`` (the last layer stands for the model) or ``best`` (optimistic).
        n_triplets: triplets to sample from a human similarity matrix (seeded by ``seed``).
        n_boot: bootstrap resamples (stimuli for RSA, triplets for odd-one-out).
        seed: seed of the resamples and of the triplet sample.

    Returns:
        :class:`ModelAlignment`; ranked by ``rsa``, or by ``odd_one_out_accuracy`` for triplet data.
    """
    if layer_choice not in LAYER_CHOICES:
        raise ValueError(f"unknown layer choice {layer_choice!r}; valid: {list(LAYER_CHOICES)}")
    rows: list[dict[str, object]] = []
    per_layer: dict[str, Scored] = {}
    extra: dict[str, float] = {}
    if "triplets" in human:
        triplets, metric = np.asarray(human["triplets"]), "odd_one_out_accuracy"
        for name, features in layers.items():
            per_layer[name] = bootstrap_odd_one_out(similarity_matrix(features, similarity), triplets,
                                                    n_boot=n_boot, seed=seed)
            rows.append(_row(name, metric, per_layer[name].estimate))
    else:
        target, metric = human_similarity(human), "rsa"
        resamples = stimulus_resamples(len(target), n_boot=n_boot, seed=seed)
        triplets = sample_triplets(target, n=n_triplets, seed=seed)
        if "rdms" in human:
            extra["noise_ceiling_lower"], extra["noise_ceiling_upper"] = noise_ceiling(human["rdms"])
        for name, features in layers.items():
            model_sim = similarity_matrix(features, similarity)
            per_layer[name] = bootstrap_rsa(model_sim, target, resamples=resamples)
            est = per_layer[name].estimate
            rows.append(_row(name, metric, est))
            if "noise_ceiling_upper" in extra:
                upper = extra["noise_ceiling_upper"]
                rows.append(_row(name, "rsa_fraction_of_ceiling",
                                 stats.Estimate(est.value / upper, est.ci_low / upper, est.ci_high / upper, est.n)))
            rows.append(_row(name, "odd_one_out_accuracy", bootstrap_odd_one_out(
                model_sim, triplets, n_boot=n_boot, seed=seed).estimate))
    names = list(layers)
    chosen = names[-1] if layer_choice == "last" else max(names, key=lambda n: per_layer[n].estimate.value)
    return ModelAlignment(rows, metric, chosen, per_layer[chosen].estimate.value, per_layer[chosen].replicates, extra)


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
    return ModelAlignment(rows, "neg_cross_entropy", HEAD, -ce.estimate.value, -ce.replicates, {})


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
