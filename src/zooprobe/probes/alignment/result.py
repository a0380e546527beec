"""What one model's alignment on one benchmark is, and the JSON payload the align stages write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np


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



def alignment_payload(benchmark: str, model: str, result: ModelAlignment, provenance: Mapping[str, Any]
                      ) -> dict[str, Any]:
    """The JSON record of one model's (or prediction table's) alignment on one benchmark.

    Args:
        benchmark: the benchmark's name.
        model: the model's (or table's) name.
        result: its :class:`ModelAlignment`.
        provenance: where the scores came from; the layer selection is added to it.

    Returns:
        The record the analyse stage reads (:func:`zooprobe.analysis.scores.alignment_rows`).
    """
    return {"benchmark": benchmark, "model": model, "rows": result.rows, "score_metric": result.score_metric,
            "selected_layer": result.selected_layer, "score": result.score,
            "replicates": [float(v) for v in result.replicates], "extra": result.extra,
            "layer_selection": result.selection, "provenance": dict(provenance) | {"layer_selection": result.selection}}
