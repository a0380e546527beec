"""The embedded default (params.yaml), run as a fresh clone runs it: every model it trains learns its task."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from zooprobe.io import h5io
from zooprobe.params.config import model_entries

pytestmark = pytest.mark.workflow

# Issue 21: a trained model must beat chance on its ID test set by this much, own head and probe alike.
MARGIN_OVER_CHANCE = 0.2
# The score metrics checked: the model's own classifier head, and the linear probe at the layer chosen on val.
HEAD_METRIC, PROBE_METRIC = "head_accuracy", "score"


def trained_models(checkout: Path) -> dict[str, str]:
    """The checkout's params.yaml models with source ``trained``, each with the dataset it trains on.

    Args:
        checkout: a checkout whose params.yaml is the config that ran.

    Returns:
        model name -> its ``train_on`` dataset (entries with ``seeds:`` expanded as the workflow does).
    """
    config = yaml.safe_load((checkout / "params.yaml").read_text())
    return {name: entry["train_on"] for name, entry in model_entries(config).items() if entry["source"] == "trained"}


def chance_accuracy(checkout: Path, dataset: str) -> float:
    """1 / the number of classes of ``dataset``, as the workflow built it (data/datasets/<dataset>.h5)."""
    return 1.0 / len(h5io.read_image_set(checkout / "data" / "datasets" / f"{dataset}.h5").class_names)


# Report size: the page must stay light enough to mail and open anywhere (issue 21).
MAX_REPORT_BYTES = 3 * 1024 * 1024


def test_the_default_report_is_under_3_mb(default_run: Path) -> None:
    size = (default_run / "results" / "report" / "index.html").stat().st_size
    assert 0 < size < MAX_REPORT_BYTES, f"the embedded default's report is {size / 2**20:.2f} MiB"


def test_every_trained_model_beats_chance_by_0_2(default_run: Path) -> None:
    trained = trained_models(default_run)
    assert trained, "params.yaml trains no model: nothing to check"
    # The workflow trained exactly the models params.yaml lists as trained, no more, no fewer.
    assert {path.stem for path in (default_run / "data" / "models").glob("*.pt")} == set(trained)
    scores = pd.read_csv(default_run / "results" / "scores.csv")
    shortfalls = []
    for model, dataset in sorted(trained.items()):
        chance = chance_accuracy(default_run, dataset)
        for metric in (HEAD_METRIC, PROBE_METRIC):
            rows = scores[(scores.model == model) & (scores.benchmark == dataset) & (scores.metric == metric)]
            assert len(rows) == 1, f"{model}: expected one {metric} row on {dataset}, found {len(rows)}"
            value = float(rows.value.iloc[0])
            if value < chance + MARGIN_OVER_CHANCE:
                shortfalls.append(f"{model} {metric} on {dataset}: {value:.3f} < chance {chance:.3f} + "
                                  f"{MARGIN_OVER_CHANCE}")
    assert not shortfalls, "trained models that do not learn their task:\n" + "\n".join(shortfalls)
