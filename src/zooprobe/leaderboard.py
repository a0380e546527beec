"""Compare two leaderboards: do the models keep their order from one benchmark to another?

A leaderboard is a CSV table with key columns (e.g. ``model,img_size``) and a score column, or
a prediction table: a folder of per-model prediction files plus the true labels, which yields
each model's accuracy. Two leaderboards are joined on their keys, and the comparison gives
Kendall tau-b, Spearman rho and Pearson r with bootstrap CIs over models, tau among the top K
of the first board, and the models whose rank moved most.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from zooprobe.stats import CI_LEVEL, pearson_r_rows, ranks, spearman_rho_rows

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
    """Accuracy per model from a folder of prediction files.

    Args:
        folder: one file per model (``NAME<suffix>.json`` with predicted labels, or ``.npz`` / ``.npy``
            with logits or probabilities). A suffix shared by every file name, such as
            ``_predictions``, is dropped from the model names.
        labels: the true labels, in the same order as every prediction file.

    Returns:
        A table with columns ``model``, ``accuracy``, ``n``.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix in PREDICTION_SUFFIXES)
    if not files:
        raise LeaderboardError(f"{folder} holds no prediction files ({', '.join(PREDICTION_SUFFIXES)})")
    truth = read_labels(labels)
    names = _strip_shared_suffix([p.stem for p in files])
    rows = []
    for name, path in zip(names, files):
        predicted = read_predictions(path)
        if predicted.shape != truth.shape:
            raise LeaderboardError(f"{path} has {predicted.size} predictions but {labels} has {truth.size} labels; "
                                   "give the labels file of the same test set")
        rows.append({MODEL_COLUMN: name, SCORE_COLUMN: float((predicted == truth).mean()), "n": int(truth.size)})
    return pd.DataFrame(rows)


def _strip_shared_suffix(stems: Sequence[str]) -> list[str]:
    tails = {stem.rsplit("_", 1)[-1] for stem in stems}
    if len(stems) > 1 and len(tails) == 1 and all("_" in s for s in stems):
        tail = "_" + tails.pop()
        return [stem[: -len(tail)] for stem in stems]
    return list(stems)


def read_leaderboard(source: Path, *, labels: Path | None = None) -> pd.DataFrame:
    """A CSV leaderboard, or with ``labels`` a prediction-table folder (see ``prediction_table``)."""
    source = Path(source)
    if source.is_dir():
        if labels is None:
            raise LeaderboardError(f"{source} is a folder of predictions; give its true labels file "
                                   "(--labels-a / --labels-b)")
        return prediction_table(source, labels)
    if not source.exists():
        raise LeaderboardError(f"no leaderboard at {source}")
    return pd.read_csv(source, thousands=",")


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
@dataclass(frozen=True)
class RankComparison:
    """Rank agreement between two joined leaderboards, with bootstrap CIs over models."""

    n: int
    kendall_tau: float
    kendall_tau_ci: tuple[float, float]
    spearman_rho: float
    spearman_rho_ci: tuple[float, float]
    pearson_r: float
    pearson_r_ci: tuple[float, float]
    top_k: int
    top_k_kendall_tau: float
    top_k_kendall_tau_ci: tuple[float, float]
    n_bootstrap: int
    seed: int
    table: pd.DataFrame  # keys, scores, ranks and rank shift per model

    def to_json(self, movers: int = DEFAULT_MOVERS) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("n", "kendall_tau", "kendall_tau_ci", "spearman_rho", "spearman_rho_ci", "pearson_r",
                    "pearson_r_ci", "top_k", "top_k_kendall_tau", "top_k_kendall_tau_ci", "n_bootstrap", "seed"):
            value = getattr(self, key)
            out[key] = list(value) if isinstance(value, tuple) else value
        out["movers"] = self.movers(movers).to_dict("records")
        out["models"] = self.table.to_dict("records")
        return out

    def movers(self, count: int = DEFAULT_MOVERS) -> pd.DataFrame:
        """The ``count`` models whose rank changed most (rank_b - rank_a; positive means fell)."""
        order = self.table.rank_shift.abs().sort_values(ascending=False, kind="stable").index
        return self.table.loc[order[:count]]


def compare_rankings(joined: pd.DataFrame, *, n_bootstrap: int = DEFAULT_BOOTSTRAP, top_k: int = DEFAULT_TOP_K,
                     seed: int = 0, level: float = CI_LEVEL) -> RankComparison:
    """Kendall tau-b, Spearman rho and Pearson r of two score columns, with percentile bootstrap CIs.

    The bootstrap resamples models (rows) with replacement, the unit that varies when one asks
    whether the ranking of a population of models holds. Tau among the top K is resampled within
    the top K of A.

    Args:
        joined: from ``join_leaderboards`` (columns ``score_a`` and ``score_b``).
        n_bootstrap: resamples; 0 gives no intervals (NaN).
        top_k: how many of A's best models the top-K tau looks at.
        seed: seed of the resampling.
        level: coverage of the intervals.

    Returns:
        A ``RankComparison``.
    """
    a = joined.score_a.to_numpy(float)
    b = joined.score_b.to_numpy(float)
    n = len(a)
    rng = np.random.default_rng(seed)
    k = min(top_k, n)
    top = np.argsort(-a, kind="stable")[:k]

    def tau(x: np.ndarray, y: np.ndarray) -> float:
        return float(sps.kendalltau(x, y, variant="b").statistic) if np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan")

    def rho(x: np.ndarray, y: np.ndarray) -> float:
        return float(sps.spearmanr(x, y).statistic) if np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan")

    def r(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.corrcoef(x, y)[0, 1]) if np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan")

    # Rho and r are vectorised over resamples; tau-b goes through scipy's O(n log n) routine, as the
    # vectorised pairwise form needs n^2 memory per resample for boards of a thousand models or more.
    rows = rng.integers(0, n, (n_bootstrap, n))
    top_rows = top[rng.integers(0, k, (n_bootstrap, k))]
    samples = np.full((4, n_bootstrap), np.nan)
    if n_bootstrap:
        samples[1] = spearman_rho_rows(a[rows], b[rows])
        samples[2] = pearson_r_rows(a[rows], b[rows])
    for i in range(n_bootstrap):
        samples[0, i] = tau(a[rows[i]], b[rows[i]])
        samples[3, i] = tau(a[top_rows[i]], b[top_rows[i]])

    def interval(row: np.ndarray) -> tuple[float, float]:
        finite = row[np.isfinite(row)]
        if finite.size == 0:
            return (float("nan"), float("nan"))
        tail = (1 - level) / 2 * 100
        return (float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail)))

    table = joined.copy()
    table["rank_a"] = ranks(a)
    table["rank_b"] = ranks(b)
    table["rank_shift"] = table.rank_b - table.rank_a
    return RankComparison(
        n=n, kendall_tau=tau(a, b), kendall_tau_ci=interval(samples[0]),
        spearman_rho=rho(a, b), spearman_rho_ci=interval(samples[1]),
        pearson_r=r(a, b), pearson_r_ci=interval(samples[2]),
        top_k=k, top_k_kendall_tau=tau(a[top], b[top]), top_k_kendall_tau_ci=interval(samples[3]),
        n_bootstrap=n_bootstrap, seed=seed, table=table,
    )


def format_text(result: RankComparison, *, on: Sequence[str], names: tuple[str, str], movers: int = DEFAULT_MOVERS,
                show_all_up_to: int = 50) -> str:
    """Human-readable summary: the statistics, then every model (small tables) or the biggest movers."""
    def ci(pair: tuple[float, float]) -> str:
        return f"[{pair[0]:.3f}, {pair[1]:.3f}]"

    lines = [
        f"A: {names[0]}",
        f"B: {names[1]}",
        f"n = {result.n} models joined on {', '.join(on)}; 95% CIs from {result.n_bootstrap} bootstrap resamples "
        f"of models (seed {result.seed})",
        f"Kendall tau-b      {result.kendall_tau:7.3f}  {ci(result.kendall_tau_ci)}",
        f"Spearman rho       {result.spearman_rho:7.3f}  {ci(result.spearman_rho_ci)}",
        f"Pearson r          {result.pearson_r:7.3f}  {ci(result.pearson_r_ci)}",
        f"tau, top {result.top_k:<3d} of A {result.top_k_kendall_tau:7.3f}  {ci(result.top_k_kendall_tau_ci)}",
    ]
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
