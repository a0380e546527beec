"""ICN results as data: a tidy table of every score and a paired verdict per group."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from zooprobe.analysis.stats import holm
from zooprobe.io.atomic import atomic_output, write_json

log = logging.getLogger(__name__)


def summarise_paired(baseline: Sequence[float], introspective: Sequence[float]) -> dict[str, float | str]:
    """Mean and sd of each arm, and the paired difference (ICN - baseline) with a 95% t interval.

    Args:
        baseline: one value per seed, lower is better (an error).
        introspective: the ICN's values for the same seeds, in the same order.

    Returns:
        Means, sds, the mean difference, its interval and the paired t-test's two-sided ``p``
        (scipy's ``ttest_rel``). The verdict comes later, from the Holm-adjusted p over the family
        (:func:`add_verdicts`).
    """
    a, b = np.asarray(baseline, dtype=float), np.asarray(introspective, dtype=float)
    if a.shape != b.shape or len(a) == 0:
        raise ValueError(f"paired values need the same seeds: {len(a)} baseline against {len(b)} ICN")
    n = len(a)
    nan = float("nan")
    if n > 1 and np.ptp(b - a) > 0:
        test = stats.ttest_rel(b, a)
        low, high = (float(x) for x in test.confidence_interval(0.95))
        p = float(test.pvalue)
    else:  # one seed, or the same difference on every seed: no spread to test against
        low, high, p = nan, nan, nan
    return {"baseline_mean": float(a.mean()), "baseline_sd": float(a.std(ddof=1)) if n > 1 else nan,
            "icn_mean": float(b.mean()), "icn_sd": float(b.std(ddof=1)) if n > 1 else nan,
            "diff_mean": float((b - a).mean()), "diff_low": low, "diff_high": high, "p": p, "n_seeds": n}


def add_verdicts(verdicts: list[dict[str, Any]], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Holm-adjust the paired p-values within each experiment's family and name each verdict.

    ``helped`` (the ICN's error is lower) or ``hurt`` when the Holm-adjusted p is below ``alpha``,
    else ``no clear difference``.
    """
    out = [dict(v) for v in verdicts]
    for experiment in {v["experiment"] for v in out}:
        family = [v for v in out if v["experiment"] == experiment]
        for v, adjusted in zip(family, holm([v["p"] for v in family])):
            v["p_holm"] = float(adjusted)
            v["family_size"] = len(family)
            significant = np.isfinite(adjusted) and adjusted < alpha
            v["verdict"] = ("helped" if v["diff_mean"] < 0 else "hurt") if significant else "no clear difference"
    return out


def icn_tables(compare: Sequence[Mapping[str, Any]], probes: Sequence[Mapping[str, Any]]) -> tuple[Any, dict[str, Any]]:
    """Tidy every ICN score and give a verdict per dataset, architecture (or model) and metric.

    Args:
        compare: ``icn-compare`` results, one per dataset, architecture and seed.
        probes: ``icn-probe`` results, one per model and task.

    Returns:
        A tidy DataFrame (``experiment, dataset, model, layer, seed, method, metric, value``) and
        ``{"verdicts": [...]}``: for each group, :func:`summarise_paired` over seeds of the error
        (lower is better), its verdict on the Holm-adjusted p within the experiment (:func:`add_verdicts`). A probe's layer is the one where the plain probe's mean val accuracy is
        highest, the same layer for both methods.
    """
    rows = []
    for result in compare:
        for method in ("baseline", "icn"):
            arm = result[method]
            for metric, value in arm["scores"].items():
                rows.append({"experiment": "from_scratch", "dataset": result["dataset"], "model": result["arch"],
                             "layer": "", "seed": result["seed"], "method": method, "metric": metric,
                             "value": value})
    for probe in probes:
        for row in probe["rows"]:
            method = "baseline" if row["method"] == "plain" else "icn"
            pairs = [("val_error", 1 - row["val_accuracy"])] + [
                ("test_error" if name == probe["id_eval"] else f"ood_error:{name}", 1 - acc)
                for name, acc in row["accuracy"].items()]
            for metric, value in pairs:
                rows.append({"experiment": "probe", "dataset": probe["task"], "model": probe["model"],
                             "layer": row["layer"], "seed": row["seed"], "method": method, "metric": metric,
                             "value": value})
    table = pd.DataFrame(rows, columns=["experiment", "dataset", "model", "layer", "seed", "method", "metric",
                                        "value"])
    verdicts = []
    for (experiment, dataset, model), group in table.groupby(["experiment", "dataset", "model"], sort=True):
        if experiment == "probe":
            val = group[(group.metric == "val_error") & (group.method == "baseline")]
            layer = val.groupby("layer").value.mean().idxmin()
            group = group[group.layer == layer]
        else:
            layer = ""
        for metric in [m for m in group.metric.unique() if m != "val_error"]:
            arms = group[group.metric == metric].pivot(index="seed", columns="method", values="value").dropna()
            verdicts.append(dict(summarise_paired(arms["baseline"], arms["icn"]), experiment=experiment,
                                 dataset=dataset, arch=model, layer=layer, metric=metric))
    return table, {"verdicts": add_verdicts(verdicts)}


class MissingSeedsError(ValueError):
    """ICN comparisons without a result for every seed the params ask for."""


def require_seeds(compare: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> None:
    """Fail unless every (dataset, architecture) of the comparisons has a result for exactly ``seeds``.

    Args:
        compare: ``icn-compare`` results.
        seeds: the seeds the params ask for.

    Raises:
        MissingSeedsError: naming the group, the seeds found and the seeds expected.
    """
    found: dict[tuple[str, str], set[int]] = {}
    for result in compare:
        found.setdefault((result["dataset"], result["arch"]), set()).add(result["seed"])
    for (dataset, arch), these in found.items():
        if these != set(seeds):
            raise MissingSeedsError(f"{arch} on {dataset}: results for seeds {sorted(these)}, expected {list(seeds)}")


def write_icn_tables(*, compare_paths: Sequence[str | Path], probe_paths: Sequence[str | Path],
                     seeds: Sequence[int] | None, scores_out: str | Path, summary_out: str | Path
                     ) -> dict[str, Any]:
    """The ``icn-table`` stage: read every ICN result, write the tidy scores (CSV) and the verdicts (JSON).

    Args:
        compare_paths: ``icn-compare`` results (JSON).
        probe_paths: ``icn-probe`` results (JSON).
        seeds: seeds every comparison must have (:func:`require_seeds`); ``None`` checks nothing.
        scores_out: the tidy CSV.
        summary_out: the verdicts (JSON).

    Returns:
        The summary, ``{"verdicts": [...]}``.
    """
    compare = [json.loads(Path(path).read_text()) for path in compare_paths]
    if seeds is not None:
        require_seeds(compare, seeds)
    probes = [json.loads(Path(path).read_text()) for path in probe_paths]
    scores, summary = icn_tables(compare, probes)
    with atomic_output(scores_out) as tmp:
        scores.to_csv(tmp, index=False)
    write_json(summary_out, summary)
    for row in summary["verdicts"]:
        log.info("%s: %s %s %s: %s", row["experiment"], row["dataset"], row["arch"], row["metric"], row["verdict"])
    return summary
