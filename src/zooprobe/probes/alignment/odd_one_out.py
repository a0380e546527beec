"""Odd-one-out accuracy on triplets, with a CI over stimuli, and the human consistency ceiling.

A triplet lists three stimuli with the humans' odd one out last. The interval resamples stimuli
(:mod:`.resampling`), each triplet weighted by the product of its members' draw counts, so its
width reflects the stimulus set rather than the number of triplets.
"""

from __future__ import annotations

import numpy as np

from zooprobe.analysis import stats
from zooprobe.probes.alignment.resampling import Scored, stimulus_counts

_CHUNK_ENTRIES = 20_000_000  # float entries of a (resamples, triplets) weight matrix held at once


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
    same draws as :func:`.resampling.stimulus_resamples`), each triplet weighted by the product of its members'
    draw counts (:func:`triplet_weights`), so its width reflects the stimulus set rather than the
    number of triplets.
    """
    hits = triplet_hits(model_similarity, triplets)
    counts = stimulus_counts(len(model_similarity), n_boot=n_boot, seed=seed)
    replicates = weighted_accuracy(counts, triplets, hits[None])[:, 0]
    low, high = stats.percentile_interval(replicates, level)
    return Scored(stats.Estimate(float(hits.mean()), low, high, len(model_similarity)), replicates)


def triplet_hits(similarity: np.ndarray, triplets: np.ndarray) -> np.ndarray:
    """(T,) hit per triplet under ``similarity``: 1 if its odd one out is the humans' (last), 1/3 on a tie."""
    odd, unique = odd_one_out(similarity, triplets)
    return np.where(unique, (odd == 2).astype(float), 1.0 / 3.0)


def weighted_accuracy(counts: np.ndarray, triplets: np.ndarray, hits: np.ndarray) -> np.ndarray:
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

