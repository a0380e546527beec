"""The tidy score table: its columns, and the one way a row of it is built.

Every score is a row of :data:`SCORE_COLUMNS` (benchmark, model, layer, metric, then the estimate);
p-values come with Holm and Benjamini-Hochberg adjustments over their family (:func:`adjusted_rows`).
"""

from __future__ import annotations

from typing import Any

from zooprobe.analysis import agreement
from zooprobe.analysis import stats

SCORE_COLUMNS = ["benchmark", "model", "layer", "metric", "value", "ci_low", "ci_high", "n", "method", "resampled"]
ALL_MODELS = "(all)"
HUMAN = "(human)"


def score_row(benchmark: str, model: str, layer: str, metric: str, est: stats.Estimate) -> dict[str, Any]:
    """One row of :data:`SCORE_COLUMNS`, built by ``Estimate.as_row``.

    Args:
        benchmark: evaluation set, or pair of benchmarks ``a~b``.
        model: model, unit, or ``(all)``.
        layer: layer, or ``selected``, ``head``, ...
        metric: what ``est`` estimates.
        est: the estimate with its interval.

    Returns:
        The row, keys in column order.
    """
    return est.as_row(benchmark=benchmark, model=model, layer=layer, metric=metric)


def adjusted_rows(rows: list[dict[str, Any]], metric: str, family: str) -> list[dict[str, Any]]:
    """Holm and BH rows beside every ``metric`` row of one family.

    Args:
        rows: score rows, among them the family's p-value rows (metric ``metric``).
        metric: the p-value metric to adjust.
        family: what the family is, named in the adjusted rows' ``method``.

    Returns:
        ``<metric>_holm`` and ``<metric>_bh`` rows, one pair per p-value row; empty without any.
    """
    tests = [row for row in rows if row["metric"] == metric]
    if not tests:
        return []
    holm, bh, holm_method, bh_method = agreement.adjust([row["value"] for row in tests], family=family)
    out = []
    for row, h, b in zip(tests, holm, bh):
        out.append(dict(row, metric=f"{metric}_holm", value=float(h), method=holm_method))
        out.append(dict(row, metric=f"{metric}_bh", value=float(b), method=bh_method))
    return out
