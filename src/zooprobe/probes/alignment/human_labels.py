"""Agreement with human label distributions (CIFAR-10H): cross-entropy, KL and per-image entropies.

A model's head logits or a published prediction table become probabilities; both are scored
image by image against the humans' distributions, with bootstrap CIs over images.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax as _softmax

from zooprobe.analysis import stats
from zooprobe.probes.alignment.resampling import Scored
from zooprobe.probes.alignment.result import ModelAlignment
from zooprobe.probes.rows import layer_row

# Clip probabilities away from 0 so that one confident mistake gives a large, finite loss.
PROBABILITY_FLOOR = 1e-7
HEAD = "head"


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, in float64 (float32 logits would give float32 probabilities).

    Args:
        logits: (N, K) logits of any float dtype.

    Returns:
        (N, K) float64 probabilities.
    """
    return _softmax(np.asarray(logits, dtype=np.float64), axis=1)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Per-row entropy -sum p log p (nats), with log p floored at log :data:`PROBABILITY_FLOOR`.

    Not ``scipy.stats.entropy``: it renormalises each row (the model's floored probabilities sum a
    little above 1, which moves the written KL by ~1e-7) and has no floor; numpy's log is kept
    because scipy's (``special.entr``/``xlogy``) differs from it in the last bit on some entries,
    which would change written numbers.

    Args:
        probs: (N, K) probabilities.

    Returns:
        (N,) entropies.
    """
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
    rows = [layer_row(HEAD, name, s.estimate) for name, s in scored.items()]
    ce = scored["cross_entropy"]
    return ModelAlignment(rows, "neg_cross_entropy", HEAD, -ce.estimate.value, -ce.replicates, {},
                          {"rule": "head", "layer": HEAD})


def labelled_rows(human: dict[str, np.ndarray], split: np.ndarray) -> np.ndarray:
    """Indices of the test rows that have a human label distribution."""
    probs = human["label_probs"]
    return np.flatnonzero((split == "test") & np.isfinite(probs).all(axis=1))


def table_probabilities(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Probabilities from a prediction table: its ``probs``, or the softmax of its ``logits``.

    Args:
        arrays: the table's arrays (``probs`` or ``logits``, (N, K)).

    Returns:
        (N, K) float64 probabilities.
    """
    if "probs" in arrays:
        return np.asarray(arrays["probs"], dtype=np.float64)
    if "logits" in arrays:
        return softmax(arrays["logits"])
    raise ValueError(f"a prediction table needs 'logits' or 'probs', found {sorted(arrays)}")
