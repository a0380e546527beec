"""Stimulus resamples shared by every alignment protocol: the same draws for every model given the seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zooprobe.analysis import stats


@dataclass(frozen=True)
class Scored:
    """A point estimate, its bootstrap CI, and the bootstrap replicates behind the CI."""

    estimate: stats.Estimate
    replicates: np.ndarray


def stimulus_resamples(n: int, *, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) stimulus indices drawn with replacement; the same for every model given the seed."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def stimulus_counts(n: int, *, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) float: how often each stimulus is drawn in each of :func:`stimulus_resamples`' rows."""
    draws = stimulus_resamples(n, n_boot=n_boot, seed=seed) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)
