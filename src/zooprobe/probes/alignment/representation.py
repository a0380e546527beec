"""Every alignment metric of every layer of one model: RSA and/or odd-one-out, with the layer choice."""

from __future__ import annotations

import numpy as np

from zooprobe.analysis import stats
from zooprobe.probes.alignment.layer_choice import (
    CV_LAYER, CV_SPLITS, CV_STREAM, LAYER_CHOICES, LayerScorer, cross_validated_scores, stimulus_halves)
from zooprobe.probes.alignment.odd_one_out import human_consistency, sample_triplets
from zooprobe.probes.alignment.resampling import stimulus_counts
from zooprobe.probes.alignment.result import ModelAlignment
from zooprobe.probes.alignment.rsa import human_similarity, noise_ceiling, noise_ceiling_estimate, similarity_matrix
from zooprobe.probes.rows import layer_row


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
    rows = [layer_row(name, metric, stats.Estimate(float(observed[metric][0, i]),
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
        rows.append(layer_row(CV_LAYER, f"{name}_cv", stats.Estimate(
            float(cv_observed[name][0]), *stats.percentile_interval(cv_replicates[name]), n)))
    picks = np.bincount(chosen_boot.ravel(), minlength=len(names)) / chosen_boot.size
    selection = {"rule": "best_cv", "chosen_by": metric, "n_splits": CV_SPLITS, "split_seed": [seed, CV_STREAM],
                 "splits": [{"chosen_on_first_half": names[first], "chosen_on_second_half": names[second]}
                            for first, second in chosen[:, :, 0]],
                 "bootstrap_choice_frequency": {name: float(p) for name, p in zip(names, picks)}}
    return ModelAlignment(rows, metric, CV_LAYER, float(cv_observed[metric][0]), cv_replicates[metric], extra,
                          selection)

