"""The report's first section: its answer in sentences, each made from a record of
:mod:`zooprobe.analysis.verdicts` and linked to the section that holds the evidence.

No verdict is decided here; this module only words them. Where the evidence is too weak to say
(an interval spanning 0, too few models for a permutation test to reach the threshold), the
sentence says so rather than reading a point estimate as a result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
from markupsafe import Markup

from zooprobe.analysis import verdicts
from zooprobe.report.blocks import bounds_text


@dataclass(frozen=True)
class Finding:
    """One sentence of the answer.

    Attributes:
        text: the sentence (HTML: values are escaped by :meth:`markupsafe.Markup.format`).
        section: anchor of the section holding its evidence.
        strength: ``result`` (a verdict at the adjusted threshold), ``weak`` (too little evidence to
            say) or ``note`` (a description, not a test).
        details: one item per case the sentence covers (pairs that share a reason), listed below it.
    """

    text: Markup
    section: str
    strength: str
    details: tuple[Markup, ...] = ()


def _interval(low: float, high: float, digits: int = 2) -> str:
    return bounds_text(low, high, digits)  # findings are sentences: two decimals, where tables show three


def ranking_headline(records: list[dict[str, Any]]) -> Finding | None:
    """The answer to the tool's question in one sentence: how many pairs of benchmarks keep the ranking."""
    if not records:
        return None
    counts = {v: sum(r["verdict"] == v for r in records) for v in ("holds", "reverses", "not established")}
    units = sorted({r["n_units"] for r in records})
    units_text = f"{units[0]}" if len(units) == 1 else f"{units[0]}-{units[-1]}"
    text = Markup("<b>Does the ranking hold up?</b> Of {} pairs of benchmarks ({} models ranked on each), the "
                  "ranking holds on {}, reverses on {} and is not established on {} (Kendall tau, Holm-adjusted "
                  "permutation p &lt; {}).").format(len(records), units_text, counts["holds"], counts["reverses"],
                                                     counts["not established"], verdicts.ALPHA)
    strength = "result" if counts["holds"] + counts["reverses"] else "weak"
    return Finding(text, "agreement", strength)


def _number(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if value == value else "undefined"


def pair_evidence(record: dict[str, Any]) -> Markup:
    """Kendall tau of one pair of benchmarks, with both intervals and the Holm-adjusted p."""
    if record["value"] != record["value"]:  # NaN: no order to correlate
        return Markup("tau undefined: every model ties on one of the two benchmarks")
    return Markup("Kendall tau {}, 95% CI given the zoo {}, over a population of models {}; Holm-adjusted p = "
                  "{:.3g}; {} models").format(_number(record["value"]), _interval(*record["given_zoo"]),
                                              _interval(*record["population"]), record["p_holm"], record["n_units"])


def ranking_sentence(record: dict[str, Any]) -> Finding:
    """One pair of benchmarks whose ranking holds or reverses, with tau, both intervals and the adjusted p."""
    text = Markup("The ranking on <b>{}</b> {} on <b>{}</b> ({}).").format(
        record["a"], record["verdict"], record["b"], pair_evidence(record))
    return Finding(text, "agreement", "result")


def ranking_findings(records: list[dict[str, Any]]) -> list[Finding]:
    """The headline, then a sentence per pair that holds or reverses, then the pairs that cannot be said,
    one sentence per reason with the pairs listed under it.

    Args:
        records: :func:`zooprobe.analysis.verdicts.agreement_findings` of Kendall tau.

    Returns:
        The findings on ranking agreement, decided pairs first.
    """
    found = [f for f in (ranking_headline(records),) if f is not None]
    found += [ranking_sentence(r) for r in records if r["verdict"] in ("holds", "reverses")]
    reasons: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record["verdict"] not in ("holds", "reverses"):
            reason = record["reason"] if record["value"] == record["value"] else "tied scores"
            reasons.setdefault(reason, []).append(record)
    for reason, group in reasons.items():
        details = tuple(Markup("<b>{}</b> to <b>{}</b>: {}").format(r["a"], r["b"], pair_evidence(r)) for r in group)
        text = Markup("Whether the ranking holds cannot be said for {} {}: {}.").format(
            len(group), "pair" if len(group) == 1 else "pairs", reason)
        found.append(Finding(text, "agreement", "weak", details))
    return found


def mover_sentence(records: list[dict[str, Any]]) -> Finding | None:
    """The models whose rank changes most between benchmarks (point estimates of rank)."""
    if not records:
        return None
    moves = Markup("; ").join(
        Markup("<b>{}</b> from #{} on {} to #{} on {}").format(r["model"], r["best"][1], r["best"][0],
                                                               r["worst"][1], r["worst"][0]) for r in records)
    text = Markup("Models that move most (point estimates of rank among {}; the intervals above say whether "
                  "the rankings differ beyond noise): {}.").format(records[0]["n_models"], moves)
    return Finding(text, "scores", "note")


def section_findings(scores: pd.DataFrame, *, introspective: dict[str, Any] | None = None,
                     present: set[str] = frozenset(), concordance: dict[str, Any] | None = None,
                     robustness: list[dict[str, Any]] | None = None, id_benchmarks: Sequence[str] = ()
                     ) -> list[Finding]:
    """A one-line result for each further section that ran.

    Args:
        scores: the tidy score table.
        introspective: the ICN summary, if the run has one.
        present: anchors of the sections the page shows (a finding is made only for those).
        concordance: the analysis summary's concordance record.
        robustness: the analysis summary's effective-robustness records.
        id_benchmarks: the in-distribution benchmarks (the rest are shifted sets).

    Returns:
        The findings, in the order of the page's sections.
    """
    found = []
    if "concordance" in present and concordance:
        found.append(concordance_sentence(concordance))
    if "robustness" in present:
        probed = {(r["id"], r["ood"]) for r in robustness or [] if r["source"] == "selected"}
        found += [robustness_sentence(r) for r in robustness or [] if "fit" in r
                  and (r["source"] == "selected" or (r["id"], r["ood"]) not in probed)]
    if "consistency" in present:
        found += consistency_sentences(scores, id_benchmarks)
    if "similarity" in present:
        found += similarity_sentences(scores, id_benchmarks)
    if "calibration" in present:
        found += [f for f in (calibration_sentence(scores, id_benchmarks),) if f is not None]
    if "heads" in present:
        for record in verdicts.published_order(scores):
            found.append(Finding(Markup("Own heads, published order on <b>{}</b>: {} (Kendall tau between "
                                        "published and measured {:.2f} {}).").format(
                record["benchmark"], record["verdict"], record["tau"], _interval(*record["tau_ci"])),
                "heads", "weak" if record["verdict"] == "not resolved" else "result"))
    if "seeds" in present:
        for record in verdicts.seed_check(scores):
            found.append(Finding(Markup("Seeds, <b>{}</b>: {} of {} neighbouring differences in the ranking are "
                                        "larger than seed-to-seed and test-set variation allow.").format(
                record["benchmark"], record["resolved"], record["total"]),
                "seeds", "result" if record["resolved"] else "weak"))
    if "imagenot" in present:
        for record in verdicts.improvement_findings(scores):
            found.append(Finding(Markup("ImageNot, {} to {}: the configurations' ranking {} (tau {:.2f}, Holm p = "
                                        "{:.3g}); improvements scale with slope {:.2f} {}.").format(
                record["a"], record["b"], "is not established" if record["verdict"] == "not established"
                else record["verdict"], record["value"], record["p_holm"], record["slope"]["value"],
                _interval(record["slope"]["ci_low"], record["slope"]["ci_high"])),
                "imagenot", "result" if record["verdict"] != "not established" else "weak"))
    if "tunnel" in present:
        for family, label in (("tunnel", "Tunnel effect (probes trained on each OOD set)"),
                              ("shift", "ID probes under shift")):
            extent = verdicts.retained_range(scores, family=family)
            if extent:
                low, high = extent["lowest"], extent["highest"]
                found.append(Finding(Markup("{}: at the penultimate layer, models keep from {:.0f}% {} ({}, {}) to "
                                            "{:.0f}% {} ({}, {}) of their best layer's OOD accuracy, over {} (model, "
                                            "OOD set) pairs.").format(
                    label, low["value"], _interval(low["ci_low"], low["ci_high"], 0), low["model"], low["benchmark"],
                    high["value"], _interval(high["ci_low"], high["ci_high"], 0), high["model"], high["benchmark"],
                    extent["n"]), "tunnel", "note"))
    for anchor, label in (("alignment", "Human alignment"), ("dense", "Dense probes")):
        if anchor in present:
            found += _best_per_benchmark(scores, anchor, label)
    if "dense" in present:
        comparisons = verdicts.random_init_comparisons(scores)
        if comparisons:
            beats = sum(r["verdict"] == "beats" for r in comparisons)
            found.append(Finding(Markup("Dense probes: trained models beat their random-init copies in {} of {} "
                                        "comparisons (paired, Holm-adjusted p &lt; {}).").format(
                beats, len(comparisons), verdicts.ALPHA), "dense", "result" if beats else "weak"))
    if introspective and "introspective" in present:
        for record in verdicts.icn_headlines(introspective["verdicts"]):
            found.append(Finding(Markup("ICN, {} {}: {} on test error.").format(
                record["dataset"], record["arch"], record["headline"]), "introspective",
                "weak" if record["headline"] == "made no clear difference" else "result"))
    return found


def _best_per_benchmark(scores: pd.DataFrame, anchor: str, label: str) -> list[Finding]:
    """Per benchmark of a section, the top two models with their intervals: a description, not a test."""
    benchmarks = set(scores[scores.metric == "score"].benchmark)
    key = {"alignment": ("rsa", "odd_one_out_accuracy", "cross_entropy"), "dense": ("delta1", "mean_angle", "iou")}
    names = [b for b in benchmarks if set(scores[scores.benchmark == b].metric) & set(key[anchor])]
    found = []
    for benchmark in sorted(names):
        part = scores[(scores.benchmark == benchmark) & (scores.metric == "score")].sort_values("value",
                                                                                               ascending=False)
        if len(part) < 2:
            continue
        first, second = part.iloc[0], part.iloc[1]
        # Two models' intervals are not a test of their difference; the agreement table tests the ranking.
        found.append(Finding(Markup("{}, <b>{}</b>: {} scores highest, {:.3f} {}, then {}, {:.3f} {} (95% CIs; "
                                    "point order, not a test).").format(
            label, benchmark, first.model, first.value, _interval(first.ci_low, first.ci_high, 3),
            second.model, second.value, _interval(second.ci_low, second.ci_high, 3)), anchor, "note"))
    return found


def concordance_sentence(record: dict[str, Any]) -> Finding:
    """Kendall's W over every benchmark, the Friedman test, and who the Nemenyi test cannot separate from the best."""
    ranks = record["mean_ranks"]
    best = min(ranks, key=ranks.get)
    tied = [g for g in record["groups"] if best in g]
    alongside = sorted({m for g in tied for m in g} - {best})
    significant = record["friedman_p"] < verdicts.ALPHA
    return Finding(Markup("Across all {} benchmarks, Kendall's W = {:.2f} {} (over models); the Friedman test {} "
                          "(p = {:.3g}). Best mean rank: {} ({:.2f}); {}.").format(
        len(record["benchmarks"]), record["kendall_w"], _interval(*record["kendall_w_ci_over_models"]),
        "rejects equal ranks" if significant else "does not reject equal ranks", record["friedman_p"], best,
        ranks[best], Markup("the Nemenyi test does not separate it from {}").format(", ".join(alongside))
        if alongside else "the Nemenyi test separates it from every other model"),
        "concordance", "result" if significant else "weak")


def robustness_sentence(record: dict[str, Any]) -> Finding:
    """One fit: its slope and R², and the most and least effectively robust model with their intervals."""
    fit = record["fit"]
    most, least = fit["most_robust"][0], fit["least_robust"][0]

    def points(row: dict[str, Any]) -> Markup:
        spans = row["er_ci_low"] <= 0 <= row["er_ci_high"]
        return Markup("{} ({:+.1f} points {}{})").format(
            row["model"], 100 * row["effective_robustness"],
            _interval(100 * row["er_ci_low"], 100 * row["er_ci_high"], 1), ", interval spans 0" if spans else "")

    return Finding(Markup("Effective robustness, <b>{}</b> to <b>{}</b>: probit slope {:.2f} {}, R² {:.2f}; most "
                          "robust {}, least {}.").format(
        record["id"], record["ood"], fit["slope"], _interval(*fit["slope_ci_over_models"]), fit["r2"],
        points(most), points(least)), "robustness", "note")


def _pair_ranges(rows: pd.DataFrame) -> list[tuple[str, pd.Series, pd.Series, int]]:
    """Per benchmark of model-pair rows (model ``a~b``), its lowest and highest pair and how many pairs."""
    found = []
    for benchmark, part in rows[rows.value.notna()].groupby("benchmark", sort=False):
        if len(part) >= 2:
            found.append((benchmark, part.loc[part.value.idxmin()], part.loc[part.value.idxmax()], len(part)))
    return found


def _pair(row: pd.Series) -> str:
    return row.model.replace("~", " and ")


def consistency_sentences(scores: pd.DataFrame, id_benchmarks: Sequence[str]) -> list[Finding]:
    """Per ID benchmark of the probes, the pair of models whose errors overlap least and most beyond chance."""
    rows = scores[(scores.metric == "error_consistency") & (scores.layer == "selected")
                  & scores.benchmark.isin(id_benchmarks)]
    return [Finding(Markup("Error consistency, <b>{}</b>: kappa ranges from {:.2f} {} ({}) to {:.2f} {} ({}) over {} "
                           "pairs of models (95% CIs; a description, not a test).").format(
        benchmark, low.value, _interval(low.ci_low, low.ci_high), _pair(low), high.value,
        _interval(high.ci_low, high.ci_high), _pair(high), n), "consistency", "note")
        for benchmark, low, high, n in _pair_ranges(rows)]


def calibration_sentence(scores: pd.DataFrame, id_benchmarks: Sequence[str]) -> Finding | None:
    """The own heads' ECE on their ID sets against the shifted sets: the range of each, a description."""
    rows = scores[(scores.metric == "ece") & scores.value.notna()]
    on_id, on_ood = rows[rows.benchmark.isin(id_benchmarks)], rows[~rows.benchmark.isin(id_benchmarks)]
    if on_id.empty or on_ood.empty:
        return None
    worst = on_ood.loc[on_ood.value.idxmax()]
    return Finding(Markup("Calibration of own heads: ECE {:.3f} to {:.3f} in distribution, {:.3f} to {:.3f} under "
                          "shift; the worst is {} on <b>{}</b>, {:.3f} {} (95% CI over test examples; ECE is biased upward on "
                          "finite samples, so its percentile interval can lie above the point).").format(
        on_id.value.min(), on_id.value.max(), on_ood.value.min(), on_ood.value.max(), worst.model, worst.benchmark,
        worst.value, _interval(worst.ci_low, worst.ci_high, 3)), "calibration", "note")


def similarity_sentences(scores: pd.DataFrame, id_benchmarks: Sequence[str]) -> list[Finding]:
    """Per ID benchmark, the least and most similar pair of models by CKA at their selected layers."""
    rows = scores[(scores.metric == "cka") & scores.benchmark.isin(id_benchmarks)]
    return [Finding(Markup("Representations, <b>{}</b>: linear CKA between models at their selected layers ranges "
                           "from {:.2f} ({}) to {:.2f} ({}) over {} pairs (point estimates).").format(
        benchmark, low.value, _pair(low), high.value, _pair(high), n), "similarity", "note")
        for benchmark, low, high, n in _pair_ranges(rows)]
