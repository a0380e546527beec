"""The tidy score row every probe writes per layer and metric."""

from __future__ import annotations

from zooprobe.analysis import stats

# Columns of stats.Estimate.as_row that the probe payloads do not carry: their JSON never had them,
# and the analyse stage states each benchmark's interval method itself.
_NOT_IN_PROBE_ROWS = ("method", "resampled")


def layer_row(layer: str, metric: str, estimate: stats.Estimate) -> dict[str, object]:
    """One score row of a probe result, built by :meth:`stats.Estimate.as_row`.

    Args:
        layer: the layer scored (or ``head``, ``best_cv``).
        metric: the metric's name.
        estimate: its value, interval and sample size.

    Returns:
        ``{layer, metric, value, ci_low, ci_high, n}``.
    """
    row = estimate.as_row(layer=layer, metric=metric)
    for key in _NOT_IN_PROBE_ROWS:
        del row[key]
    return row
