"""Compare two leaderboards: do the models keep their order from one benchmark to another?

A leaderboard is a CSV table with key columns (e.g. ``model,img_size``) and a score column, or
a prediction table: a folder of per-model prediction files plus the true labels, which yields
each model's accuracy and its per-example correctness. Two leaderboards are joined on their keys,
and the comparison gives Kendall tau-b, Spearman rho and Pearson r with a bootstrap CI over models
(two-level, over models and test examples, where predictions were given) and, with predictions,
a CI given these models; tau among the top K of the first board; the models whose rank moved most.
With ``effective_robustness``, it also fits B's accuracy against A's on probit axes (accuracy on the
line, :mod:`zooprobe.analysis.robustness`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from zooprobe.analysis import agreement
from zooprobe.analysis import concordance as rank_concordance_module
from zooprobe.analysis import robustness
from zooprobe.analysis import stats
from zooprobe.analysis.stats import CI_LEVEL, bootstrap_counts, stream_seed

PREDICTION_SUFFIXES = (".json", ".npz", ".npy")
LABEL_ARRAYS = ("labels", "label", "targets", "y")
PREDICTION_ARRAYS = ("logits", "probs", "predictions", "preds")
SCORE_COLUMN = "accuracy"
MODEL_COLUMN = "model"
DEFAULT_BOOTSTRAP = 1000
DEFAULT_TOP_K = 10
DEFAULT_MOVERS = 5


class LeaderboardError(ValueError):
    """A leaderboard could not be read or joined; the message says how to fix it."""


# ----------------------------------------------------------------------------- reading
def read_labels(path: Path) -> np.ndarray:
    """True labels from ``.npy``, ``.json`` (a list) or ``.npz`` (an array named labels/targets/y)."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path).astype(int).ravel()
    if path.suffix == ".json":
        return np.asarray(json.loads(path.read_text()), dtype=int).ravel()
    if path.suffix == ".npz":
        with np.load(path) as archive:
            for name in LABEL_ARRAYS:
                if name in archive:
                    return archive[name].astype(int).ravel()
            raise LeaderboardError(f"{path} has no labels array; expected one of {LABEL_ARRAYS}, found {archive.files}")
    raise LeaderboardError(f"labels file {path} must be .npy, .json or .npz")


def read_predictions(path: Path) -> np.ndarray:
    """Predicted labels from a JSON list, or from logits/probabilities (argmax) in npz or npy."""
    path = Path(path)
    if path.suffix == ".json":
        values = np.asarray(json.loads(path.read_text()))
    elif path.suffix == ".npy":
        values = np.load(path)
    else:
        with np.load(path) as archive:
            name = next((n for n in PREDICTION_ARRAYS if n in archive), None)
            if name is None:
                raise LeaderboardError(f"{path} holds none of {PREDICTION_ARRAYS} (it has {archive.files})")
            values = archive[name]
    return values.argmax(axis=1) if values.ndim == 2 else values.astype(int).ravel()


def prediction_table(folder: Path, labels: Path) -> pd.DataFrame:
    """Accuracy per model from a folder of prediction files (see :func:`prediction_board`)."""
    return prediction_board(folder, labels)[0]


def prediction_board(folder: Path, labels: Path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Accuracy and per-example correctness per model from a folder of prediction files.

    Args:
        folder: one file per model (``NAME<suffix>.json`` with predicted labels, or ``.npz`` / ``.npy``
            with logits or probabilities). A suffix shared by every file name, such as
            ``_predictions``, is dropped from the model names.
        labels: the true labels, in the same order as every prediction file.

    Returns:
        A table with columns ``model``, ``accuracy``, ``n``, and each model's boolean per-example
        correctness, for intervals that redraw test examples.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix in PREDICTION_SUFFIXES)
    if not files:
        raise LeaderboardError(f"{folder} holds no prediction files ({', '.join(PREDICTION_SUFFIXES)})")
    truth = read_labels(labels)
    names = _strip_shared_suffix([p.stem for p in files])
    rows, correct = [], {}
    for name, path in zip(names, files):
        predicted = read_predictions(path)
        if predicted.shape != truth.shape:
            raise LeaderboardError(f"{path} has {predicted.size} predictions but {labels} has {truth.size} labels; "
                                   "give the labels file of the same test set")
        correct[name] = predicted == truth
        rows.append({MODEL_COLUMN: name, SCORE_COLUMN: float(correct[name].mean()), "n": int(truth.size)})
    return pd.DataFrame(rows), correct


def aligned_correctness(joined: pd.DataFrame, correct: dict[str, np.ndarray] | None) -> np.ndarray | None:
    """Per-example correctness of a prediction board, one row per row of ``joined`` (None for a CSV board)."""
    if not correct:
        return None
    return np.stack([correct[name] for name in joined[MODEL_COLUMN]])


def _strip_shared_suffix(stems: Sequence[str]) -> list[str]:
    tails = {stem.rsplit("_", 1)[-1] for stem in stems}
    if len(stems) > 1 and len(tails) == 1 and all("_" in s for s in stems):
        tail = "_" + tails.pop()
        return [stem[: -len(tail)] for stem in stems]
    return list(stems)


def read_leaderboard(source: Path, *, labels: Path | None = None) -> pd.DataFrame:
    """A CSV leaderboard, or with ``labels`` a prediction-table folder (see ``prediction_table``)."""
    return read_board(source, labels=labels)[0]


def read_board(source: Path, *, labels: Path | None = None) -> tuple[pd.DataFrame, dict[str, np.ndarray] | None]:
    """A leaderboard and, for a prediction folder, each model's per-example correctness (None for a CSV)."""
    source = Path(source)
    if source.is_dir():
        if labels is None:
            raise LeaderboardError(f"{source} is a folder of predictions; give its true labels file "
                                   "(--labels-a / --labels-b)")
        return prediction_board(source, labels)
    if not source.exists():
        raise LeaderboardError(f"no leaderboard at {source}")
    return pd.read_csv(source, thousands=","), None


def join_leaderboards(a: pd.DataFrame, b: pd.DataFrame, *, on: Sequence[str], score_a: str,
                      score_b: str | None = None) -> pd.DataFrame:
    """Inner-join two leaderboards on their key columns.

    Returns:
        Columns ``on`` + ``score_a``, ``score_b``, one row per key present in both, sorted by key.
    """
    score_b = score_b or score_a
    for name, table, score in (("A", a, score_a), ("B", b, score_b)):
        missing = [c for c in [*on, score] if c not in table.columns]
        if missing:
            raise LeaderboardError(f"table {name} has no column {missing}; its columns are {list(table.columns)}")
        duplicated = table[table.duplicated(list(on), keep=False)]
        if not duplicated.empty:
            example = duplicated[list(on)].head(3).to_dict("records")
            raise LeaderboardError(f"table {name} has several rows per key {list(on)}, e.g. {example}; "
                                   "add key columns with --on so each row is one model")
    left = a[[*on, score_a]].rename(columns={score_a: "score_a"})
    right = b[[*on, score_b]].rename(columns={score_b: "score_b"})
    joined = left.merge(right, on=list(on), how="inner").dropna(subset=["score_a", "score_b"])
    if len(joined) < 3:
        raise LeaderboardError(f"only {len(joined)} rows match on {list(on)}; at least 3 are needed to compare ranks")
    return joined.sort_values(list(on)).reset_index(drop=True)


# ----------------------------------------------------------------------------- comparing
STATISTICS = ("kendall_tau", "spearman_rho", "pearson_r")
# Permutation p-values enumerate or draw orders of every model: affordable up to this many models.
MAX_PERMUTATION_MODELS = 200


@dataclass(frozen=True)
class RankComparison:
    """Rank agreement between two joined leaderboards, with intervals over models and, where per-example
    predictions were given, over test examples (see :mod:`zooprobe.analysis.agreement`)."""

    n: int
    values: dict[str, float]
    population_ci: dict[str, tuple[float, float]]
    given_zoo_ci: dict[str, tuple[float, float]]
    pvalues: dict[str, float]
    resampled: dict[str, str]
    top_k: int
    n_bootstrap: int
    seed: int
    table: pd.DataFrame  # keys, scores, ranks and rank shift per model

    def __getattr__(self, name: str) -> Any:
        # result.kendall_tau, result.top_k_kendall_tau: the point values.
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def to_json(self, movers: int = DEFAULT_MOVERS) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "top_k": self.top_k, "n_bootstrap": self.n_bootstrap, "seed": self.seed}
        for name, value in self.values.items():
            out[name] = value
            out[f"{name}_population_ci"] = list(self.population_ci[name])
            out[f"{name}_given_zoo_ci"] = list(self.given_zoo_ci[name]) if name in self.given_zoo_ci else None
            if name in self.pvalues:
                out[f"{name}_pvalue"] = self.pvalues[name]
        out["resampled"] = self.resampled
        out["movers"] = self.movers(movers).to_dict("records")
        out["models"] = self.table.to_dict("records")
        return out

    def movers(self, count: int = DEFAULT_MOVERS) -> pd.DataFrame:
        """The ``count`` models whose rank changed most (rank_b - rank_a; positive means fell)."""
        order = self.table.rank_shift.abs().sort_values(ascending=False, kind="stable").index
        return self.table.loc[order[:count]]


def _ranking(scores: np.ndarray, correct: np.ndarray | None, models: tuple[str, ...], *, n_bootstrap: int,
             seed: int, stream: str) -> agreement.Ranking:
    """A board as a ranking: replicates over test examples from per-example correctness, else the scores fixed."""
    if correct is None:
        return agreement.Ranking(models, scores, np.broadcast_to(scores, (n_bootstrap, len(scores))), "", stream)
    counts = bootstrap_counts(correct.shape[1], n_boot=n_bootstrap, seed=stream_seed(seed, stream))
    return agreement.Ranking(models, scores, counts @ correct.T.astype(float) / correct.shape[1], "test examples",
                             stream, correct.shape[1])


def compare_rankings(joined: pd.DataFrame, *, n_bootstrap: int = DEFAULT_BOOTSTRAP, top_k: int = DEFAULT_TOP_K,
                     seed: int = 0, level: float = CI_LEVEL, correct_a: np.ndarray | None = None,
                     correct_b: np.ndarray | None = None) -> RankComparison:
    """Kendall tau-b, Spearman rho and Pearson r of two score columns, with intervals.

    The *population* interval (BCa) redraws models, the unit that varies when one asks whether the
    ranking of a population of models holds (tau by the Bayesian bootstrap up to ``stats.LARGE_ZOO``
    models). With per-example correctness for a board (prediction folders), each replicate also
    redraws that board's test examples (a two-level bootstrap), and a second interval, *given the
    zoo*, redraws the test examples alone. Tau among the top K of A is resampled within the top K.

    Args:
        joined: from ``join_leaderboards`` (columns ``score_a`` and ``score_b``).
        n_bootstrap: resamples; 0 gives no intervals (NaN).
        top_k: how many of A's best models the top-K tau looks at.
        seed: seed of the resampling.
        level: coverage of the intervals.
        correct_a: optional boolean (models, examples) correctness on A, rows in ``joined``'s order.
        correct_b: likewise on B.

    Returns:
        A ``RankComparison``.
    """
    a, b = joined.score_a.to_numpy(float), joined.score_b.to_numpy(float)
    n = len(a)
    models = tuple(str(i) for i in range(n))
    k = min(top_k, n)
    top = np.argsort(-a, kind="stable")[:k]
    examples = correct_a is not None or correct_b is not None
    values, population, given, pvalues = {}, {}, {}, {}
    resampled = {}
    if n_bootstrap:
        stats.warn_if_few_resamples(n_bootstrap, "--bootstrap")
        board_a = _ranking(a, correct_a, models, n_bootstrap=n_bootstrap, seed=seed, stream="A")
        board_b = _ranking(b, correct_b, models, n_bootstrap=n_bootstrap, seed=seed, stream="B")
        resampler = agreement.Resampler(n_boot=n_bootstrap, seed=seed)
        found = agreement.rank_agreement(board_a, board_b, unit_of={}, resampler=resampler, level=level,
                                         statistics=STATISTICS, with_pvalue=n <= MAX_PERMUTATION_MODELS)
        keep = [models[i] for i in top]
        top_found = agreement.rank_agreement(_subset(board_a, keep), _subset(board_b, keep), unit_of={},
                                             resampler=resampler, level=level, statistics=("kendall_tau",),
                                             with_pvalue=False) if k >= agreement.MIN_SHARED_UNITS else None
        for name, result in [*found.items(), *((("top_k_kendall_tau", top_found["kendall_tau"]),) if top_found else ())]:
            values[name] = result.population.value
            population[name] = (result.population.ci_low, result.population.ci_high)
            resampled[name] = result.population.resampled
            if examples and name != "pearson_r":  # a correlation of noisy scores is biased given the zoo
                given[name] = (result.given_zoo.ci_low, result.given_zoo.ci_high)
            if np.isfinite(result.p_value.value):
                pvalues[name] = result.p_value.value
    else:
        for name, function in stats.CORRELATIONS.items():
            values[name] = float(function(a[None], b[None])[0])
            population[name] = (float("nan"), float("nan"))
    if "top_k_kendall_tau" not in values:
        values["top_k_kendall_tau"] = stats.kendall_tau(a[top], b[top])
        population["top_k_kendall_tau"] = (float("nan"), float("nan"))
    table = joined.copy()
    table["rank_a"] = stats.ranks(a)
    table["rank_b"] = stats.ranks(b)
    table["rank_shift"] = table.rank_b - table.rank_a
    return RankComparison(n=n, values=values, population_ci=population, given_zoo_ci=given, pvalues=pvalues,
                          resampled=resampled, top_k=k, n_bootstrap=n_bootstrap, seed=seed, table=table)


def _subset(ranking: agreement.Ranking, models: list[str]) -> agreement.Ranking:
    columns = [ranking.models.index(m) for m in models]
    return agreement.Ranking(tuple(models), ranking.scores[columns], ranking.replicates[:, columns],
                             ranking.resampled, ranking.draw, ranking.n)


def format_text(result: RankComparison, *, on: Sequence[str], names: tuple[str, str], movers: int = DEFAULT_MOVERS,
                show_all_up_to: int = 50) -> str:
    """Human-readable summary: the statistics, then every model (small tables) or the biggest movers."""
    def ci(pair: tuple[float, float] | None) -> str:
        return "" if pair is None else f"[{pair[0]:.3f}, {pair[1]:.3f}]"

    labels = {"kendall_tau": "Kendall tau-b", "spearman_rho": "Spearman rho", "pearson_r": "Pearson r",
              "top_k_kendall_tau": f"tau, top {result.top_k} of A"}
    given = bool(result.given_zoo_ci)
    lines = [
        f"A: {names[0]}",
        f"B: {names[1]}",
        f"n = {result.n} models joined on {', '.join(on)}; 95% CIs from {result.n_bootstrap} bootstrap resamples "
        f"(seed {result.seed})",
        "population CI: BCa over a population of models; each replicate redraws the models"
        + (" and the test examples of the prediction tables" if given else ""),
    ]
    if given:
        lines.append("given-zoo CI: percentile; each replicate redraws only the test examples (these models fixed)")
    lines.append(f"{'':18s}  {'value':>7s}  {'population CI':>16s}" + (f"  {'given-zoo CI':>16s}" if given else "")
                 + ("  permutation p" if result.pvalues else ""))
    for name, label in labels.items():
        row = f"{label:<18s}  {result.values[name]:7.3f}  {ci(result.population_ci[name]):>16s}"
        if given:
            row += f"  {ci(result.given_zoo_ci.get(name)):>16s}"
        if name in result.pvalues:
            row += f"  {result.pvalues[name]:.3g}"
        lines.append(row)
    shown = result.table.sort_values("rank_a", kind="stable") if result.n <= show_all_up_to else result.movers(movers)
    lines.append("")
    lines.append("every model, by rank in A:" if result.n <= show_all_up_to else f"the {movers} biggest rank moves:")
    key_width = max(len(" / ".join(map(str, row))) for row in shown[list(on)].itertuples(index=False))
    lines.append(f"{'model':<{key_width}}  {'score A':>9}  {'score B':>9}  {'rank A':>6}  {'rank B':>6}  {'shift':>6}")
    for row in shown.itertuples(index=False):
        key = " / ".join(str(getattr(row, c)) for c in on)
        lines.append(f"{key:<{key_width}}  {row.score_a:9.4f}  {row.score_b:9.4f}  {row.rank_a:6.1f}  "
                     f"{row.rank_b:6.1f}  {row.rank_shift:+6.1f}")
    if result.n <= show_all_up_to:
        lines.append("")
        lines.append(f"the {movers} biggest rank moves: " + ", ".join(
            f"{' / '.join(str(getattr(row, c)) for c in on)} ({row.rank_shift:+.1f})"
            for row in result.movers(movers).itertuples(index=False)))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the compare-rankings tool
OUTPUT_FORMATS = ("text", "json")
# How a score column holds accuracies: "auto" reads [0, 1] as fractions and [0, 100] with a value
# above 1 as percentages (timm's top1), and says which it chose.
ACCURACY_SCALES = ("auto", "fraction", "percent")


def accuracy_fraction(scores: np.ndarray, *, scale: str, which: str) -> tuple[np.ndarray, str]:
    """Accuracies as fractions of 1 from a score column in fractions or percentages.

    Args:
        scores: the column.
        scale: one of :data:`ACCURACY_SCALES`.
        which: the table's name in messages (``A`` or ``B``).

    Returns:
        (accuracies in [0, 1], the scale that was read).

    Raises:
        LeaderboardError: an unknown scale, or values that are not accuracies on it.
    """
    if scale not in ACCURACY_SCALES:
        raise LeaderboardError(f"unknown accuracy scale {scale!r}; valid: {list(ACCURACY_SCALES)}")
    scores = np.asarray(scores, dtype=float)
    low, high = float(np.min(scores)), float(np.max(scores))
    if scale == "auto":
        scale = "fraction" if high <= 1 else "percent"
    top = 1.0 if scale == "fraction" else 100.0
    if low < 0 or high > top:
        raise LeaderboardError(f"table {which}'s scores run from {low} to {high}, not accuracies in [0, {top:g}]; "
                               "effective robustness needs accuracies (--accuracy-scale fraction or percent)")
    return scores / top, scale


def effective_robustness_of(joined: pd.DataFrame, *, on: Sequence[str], link: str = robustness.DEFAULT_LINK,
                            accuracy_scale: str = "auto", correct_a: np.ndarray | None = None,
                            correct_b: np.ndarray | None = None, n_a: int | None = None, n_b: int | None = None,
                            n_bootstrap: int = DEFAULT_BOOTSTRAP,
                            seed: int = 0) -> tuple[robustness.RobustnessFit, tuple[str, str]]:
    """Accuracy on the line of a joined pair of boards: B (OOD) against A (ID), one point per row.

    Args:
        joined: from ``join_leaderboards``.
        on: its key columns; a model's name joins them with `` / ``.
        link: ``probit`` or ``logit``.
        accuracy_scale: one of :data:`ACCURACY_SCALES`, for both score columns.
        correct_a: optional per-example correctness on A, rows in ``joined``'s order (also redrawn).
        correct_b: likewise on B.
        n_a: A's test-set size, for a CSV board: clipping at half an example, and binomial redraws of
            its accuracies in each replicate (ignored where ``correct_a`` gives it).
        n_b: likewise for B.
        n_bootstrap: replicates.
        seed: seed of the resampling.

    Returns:
        The fit and the scales read for A and B.
    """
    id_accuracy, scale_a = accuracy_fraction(joined.score_a.to_numpy(float), scale=accuracy_scale, which="A")
    ood_accuracy, scale_b = accuracy_fraction(joined.score_b.to_numpy(float), scale=accuracy_scale, which="B")
    names = [" / ".join(str(v) for v in row) for row in joined[list(on)].itertuples(index=False)]
    try:
        fit = robustness.effective_robustness(names, id_accuracy, ood_accuracy, link=link, correct_id=correct_a,
                                              correct_ood=correct_b, n_id=n_a, n_ood=n_b, n_bootstrap=n_bootstrap,
                                              seed=seed)
    except robustness.RobustnessError as error:
        raise LeaderboardError(str(error)) from None
    return fit, (scale_a, scale_b)


def _board_name(source: Path) -> str:
    return source.stem if source.suffix else source.name


def concordance_of(boards: Sequence[tuple[str, pd.DataFrame, str]], *, on: Sequence[str],
                   alpha: float = rank_concordance_module.DEFAULT_ALPHA, n_bootstrap: int = DEFAULT_BOOTSTRAP,
                   seed: int = 0) -> rank_concordance_module.RankConcordance:
    """Kendall's W, Friedman and Nemenyi over several leaderboards, on the models every one of them scores.

    Args:
        boards: (name, table, score column) per benchmark.
        on: key columns; a model's name joins them with `` / ``.
        alpha: level of the Nemenyi critical difference.
        n_bootstrap: replicates of W's interval (over models).
        seed: seed of the resampling.

    Returns:
        A ``concordance.RankConcordance``.

    Raises:
        LeaderboardError: a missing column, duplicated keys, or fewer than 3 shared models.
    """
    columns = []
    for name, table, score in boards:
        missing = [c for c in [*on, score] if c not in table.columns]
        if missing:
            raise LeaderboardError(f"table {name} has no column {missing}; its columns are {list(table.columns)}")
        if table.duplicated(list(on)).any():
            raise LeaderboardError(f"table {name} has several rows per key {list(on)}; add key columns with --on")
        index = [" / ".join(str(v) for v in row) for row in table[list(on)].itertuples(index=False)]
        columns.append(pd.Series(table[score].to_numpy(float), index=index, name=name))
    names = [name for name, _, _ in boards]
    if len(set(names)) < len(names):
        raise LeaderboardError(f"two benchmarks share a name in {names}; give files with different names")
    table = pd.concat(columns, axis=1, join="inner").dropna().sort_index()
    try:
        return rank_concordance_module.rank_concordance(table, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)
    except rank_concordance_module.ConcordanceError as error:
        raise LeaderboardError(f"{error} (after joining {names} on {list(on)}: {len(table)} models)") from None


def compare_leaderboard_files(table_a: str | Path, table_b: str | Path, *, on: str | None = None,
                              score: str | None = None, score_b: str | None = None, labels_a: str | Path | None = None,
                              labels_b: str | Path | None = None, n_bootstrap: int = DEFAULT_BOOTSTRAP,
                              top_k: int = DEFAULT_TOP_K, seed: int = 0, movers: int = DEFAULT_MOVERS,
                              output_format: str = "text", effective_robustness: bool = False,
                              link: str = robustness.DEFAULT_LINK, accuracy_scale: str = "auto",
                              n_a: int | None = None, n_b: int | None = None,
                              also: Sequence[str] = (), concordance: bool = False,
                              alpha: float = rank_concordance_module.DEFAULT_ALPHA) -> str:
    """Read two leaderboards (CSV tables or prediction folders), compare their rankings, and format the result.

    Args:
        table_a: CSV leaderboard, or a folder of per-model prediction files.
        table_b: likewise.
        on: key columns to join on, comma-separated (prediction folders default to ``model``).
        score: score column of A (and of B unless ``score_b``); prediction folders default to ``accuracy``.
        score_b: score column of B, when it differs.
        labels_a: true labels of a prediction folder A.
        labels_b: true labels of a prediction folder B.
        n_bootstrap: bootstrap resamples.
        top_k: K of the top-K tau.
        seed: seed of the resampling.
        movers: how many of the biggest rank moves to list.
        output_format: one of :data:`OUTPUT_FORMATS`.
        effective_robustness: also fit B's accuracy against A's (:func:`effective_robustness_of`) and
            show the fit and the ``movers`` most and least effectively robust models.
        link: the link of that fit, ``probit`` or ``logit``.
        accuracy_scale: how the score columns hold accuracies, one of :data:`ACCURACY_SCALES`.
        n_a: test-set size of a CSV board A, for the effective-robustness intervals (binomial redraws).
        n_b: likewise for B.
        also: further leaderboards for the concordance: a CSV path (score column ``score``) or
            ``FOLDER=LABELS`` for a prediction folder.
        concordance: also compute Kendall's W, the Friedman test and the Nemenyi critical difference
            over A, B and ``also`` (:func:`concordance_of`).
        alpha: level of the Nemenyi critical difference.

    Returns:
        The comparison as text (:func:`format_text`, then ``robustness.format_text``) or as indented
        JSON (``RankComparison.to_json``, with the fit under ``effective_robustness``).

    Raises:
        LeaderboardError: an unknown format, missing key or score columns, or tables that do not join.
    """
    if output_format not in OUTPUT_FORMATS:
        raise LeaderboardError(f"unknown output format {output_format!r}; valid: {list(OUTPUT_FORMATS)}")
    keys = [c.strip() for c in on.split(",") if c.strip()] if on else None
    board_a, correct_a = read_board(Path(table_a), labels=labels_a and Path(labels_a))
    board_b, correct_b = read_board(Path(table_b), labels=labels_b and Path(labels_b))
    from_predictions = Path(table_a).is_dir() or Path(table_b).is_dir()
    keys = keys or ([MODEL_COLUMN] if from_predictions else None)
    if keys is None:
        raise LeaderboardError("give the key columns to join on, e.g. --on model,img_size")
    score = score or (SCORE_COLUMN if from_predictions else None)
    if score is None:
        raise LeaderboardError(f"give the score column, e.g. --score top1; table A has {list(board_a.columns)}")
    joined = join_leaderboards(board_a, board_b, on=keys, score_a=score, score_b=score_b)
    correct_a, correct_b = aligned_correctness(joined, correct_a), aligned_correctness(joined, correct_b)
    fit = scales = None
    if effective_robustness:  # before the rank comparison, so that a bad link or scale fails fast
        fit, scales = effective_robustness_of(joined, on=keys, link=link, accuracy_scale=accuracy_scale,
                                              correct_a=correct_a, correct_b=correct_b, n_a=n_a, n_b=n_b,
                                              n_bootstrap=n_bootstrap, seed=seed)
    if also and not concordance:
        raise LeaderboardError("--also tables only enter the concordance; add --concordance")
    agreement_of_all = None
    if concordance:
        boards = [(_board_name(Path(table_a)), board_a, score), (_board_name(Path(table_b)), board_b, score_b or score)]
        for item in also:
            path, _, labels = item.partition("=")
            boards.append((_board_name(Path(path)), read_board(Path(path), labels=labels and Path(labels))[0],
                           SCORE_COLUMN if Path(path).is_dir() else score))
        agreement_of_all = concordance_of(boards, on=keys, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)
    result = compare_rankings(joined, n_bootstrap=n_bootstrap, top_k=top_k, seed=seed, correct_a=correct_a,
                              correct_b=correct_b)
    if output_format == "json":
        out = result.to_json(movers=movers)
        if fit is not None:
            out["effective_robustness"] = {**fit.to_json(shown=movers), "accuracy_scale": list(scales)}
        if agreement_of_all is not None:
            out["concordance"] = agreement_of_all.to_json()
        return json.dumps(out, indent=2, default=float)
    text = format_text(result, on=keys, names=(str(table_a), str(table_b)), movers=movers)
    if fit is not None:
        text += (f"\n\n{robustness.format_text(fit, names=(str(table_a), str(table_b)), shown=movers)}"
                 f"\nscores read as accuracies in {scales[0]} (A) and {scales[1]} (B)")
    if agreement_of_all is not None:
        text += "\n\n" + rank_concordance_module.format_text(agreement_of_all)
    return text
