"""Introspective probes on frozen features: a (K+1)-output head whose pseudo-negatives are
synthesised in standardised feature space, against the same head with zero rounds."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from zooprobe.io import h5io
from zooprobe.io.atomic import write_json
from zooprobe.params.introspective import FeatureProbeSettings, round_epochs
from zooprobe.train.icn.sampler import class_scores, langevin

log = logging.getLogger(__name__)


@dataclass
class FeatureProbe:
    """A fitted feature-space probe: standardisation, head, and its training log."""

    mean: torch.Tensor
    std: torch.Tensor
    head: torch.nn.Module
    num_classes: int
    rounds: list[dict[str, float]]

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class predictions (argmax over the K class logits)."""
        z = (torch.from_numpy(np.asarray(features, dtype=np.float32)) - self.mean) / self.std
        return self.head(z)[:, :self.num_classes].argmax(1).numpy()

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        """Top-1 accuracy on ``features``."""
        return float((self.predict(features) == labels).mean()) if len(labels) else float("nan")


def _probe_head(kind: str, dim: int, outputs: int, hidden: int) -> torch.nn.Module:
    if kind == "linear":
        return torch.nn.Linear(dim, outputs)
    return torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, outputs))


def fit_feature_probe(features: np.ndarray, labels: np.ndarray, *, num_classes: int,
                      settings: FeatureProbeSettings, seed: int) -> FeatureProbe:
    """Fit a (K+1)-output probe; with ``rounds > 0`` it is introspective.

    Features are standardised with the training mean and sd. Each round draws
    ``samples_per_class`` pseudo-negatives per class by Langevin dynamics (from N(0, 1), or from
    the previous round's samples with ``init: previous``), clamped to the
    per-dimension range of the standardised training features, and adds them labelled K.

    Args:
        features: (n, D) training features.
        labels: (n,) labels in ``[0, K)``.
        num_classes: K.
        settings: head, optimiser, rounds and sampler.
        seed: seeds initialisation, batch order and sampling.

    Returns:
        The fitted :class:`FeatureProbe`.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.asarray(features, dtype=np.float32))
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z, y = (x - mean) / std, torch.from_numpy(np.asarray(labels, dtype=np.int64))
    low, high = z.min(0).values, z.max(0).values
    head = _probe_head(settings.head, z.shape[1], num_classes + 1, settings.hidden)
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    boundaries = round_epochs(settings.rounds, settings.epochs)
    negatives, previous = torch.empty((0, z.shape[1])), None
    rounds_log: list[dict[str, float]] = []
    targets = torch.arange(num_classes).repeat_interleave(settings.samples_per_class)
    for epoch in range(settings.epochs):
        if epoch in boundaries:
            head.eval()
            if settings.sampler.init == "previous" and previous is not None:
                start = previous
            else:
                start = torch.maximum(torch.minimum(torch.randn((len(targets), z.shape[1]), generator=generator),
                                                    high), low)

            def score(v: torch.Tensor) -> torch.Tensor:
                return class_scores(head(v), targets)

            previous = langevin(score, start, settings.sampler, low=low, high=high, generator=generator)
            with torch.no_grad():
                rounds_log.append({"round": len(rounds_log) + 1, "epoch": epoch, "score_before": float(score(start).mean()),
                            "score_after": float(score(previous).mean())})
            negatives = torch.cat([negatives, previous])
        head.train()
        inputs = torch.cat([z, negatives])
        outputs = torch.cat([y, torch.full((len(negatives),), num_classes, dtype=torch.int64)])
        order = torch.randperm(len(inputs), generator=generator)
        for start_row in range(0, len(order), settings.batch_size):
            index = order[start_row:start_row + settings.batch_size]
            loss = F.cross_entropy(head(inputs[index]), outputs[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    head.eval()
    return FeatureProbe(mean=mean, std=std, head=head, num_classes=num_classes, rounds=rounds_log)


def compare_probes(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                   evals: Mapping[str, tuple[np.ndarray, np.ndarray]], *, num_classes: int,
                   settings: FeatureProbeSettings, seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Fit the plain probe (0 rounds) and the introspective probe on one layer, per seed.

    Args:
        train: (features, labels) of the ID train split.
        val: the ID val split, scored to choose the layer.
        evals: named (features, labels) sets to score: the ID test split and each OOD set.
        num_classes: K.
        settings: the introspective probe's settings; the plain probe is the same with ``rounds=0``.
        seeds: one fit of each per seed.

    Returns:
        One row per seed and method: ``{"seed", "method", "val_accuracy", "accuracy": {set: acc}, "rounds"}``.
    """
    rows = []
    for seed in seeds:
        for method, these in (("plain", replace(settings, rounds=0)), ("icn", settings)):
            probe = fit_feature_probe(*train, num_classes=num_classes, settings=these, seed=seed)
            rows.append({"seed": seed, "method": method, "val_accuracy": probe.accuracy(*val),
                         "accuracy": {name: probe.accuracy(*pair) for name, pair in evals.items()},
                         "rounds": probe.rounds})
    return rows


def compare_probes_per_layer(id_features: Any, ood: Mapping[str, Any], *, id_name: str,
                             settings: FeatureProbeSettings, seeds: Sequence[int]) -> list[dict[str, Any]]:
    """:func:`compare_probes` on every stored layer: fit on the ID train split, score its test split and each OOD set.

    Args:
        id_features: the model's :class:`zooprobe.io.h5io.Features` on the ID set (``train``, ``val``, ``test``).
        ood: its features on each OOD set, by name (every row is scored).
        id_name: the name the ID test split is scored under.
        settings: the introspective probe's settings.
        seeds: one fit of each probe per seed.

    Returns:
        :func:`compare_probes`'s rows with their ``layer``, layer by layer in stored order.
    """
    train, val, test = (id_features.split == s for s in ("train", "val", "test"))
    num_classes = len(id_features.provenance["class_names"])
    rows = []
    for layer in id_features.provenance["layers"]:
        x, y = id_features.layers[layer], id_features.labels
        evals = {id_name: (x[test], y[test])} | {name: (f.layers[layer], f.labels) for name, f in ood.items()}
        for row in compare_probes((x[train], y[train]), (x[val], y[val]), evals, num_classes=num_classes,
                                  settings=settings, seeds=seeds):
            rows.append(dict(row, layer=layer))
            log.info("%s seed %d %s: %s", layer, row["seed"], row["method"],
                     {k: round(v, 4) for k, v in row["accuracy"].items()})
    return rows


def run_feature_probes(*, model: str, task: str, settings_section: Mapping[str, Any], id_name: str,
                       id_path: str | Path, ood_paths: Mapping[str, str | Path], out: str | Path,
                       provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The ``icn-probe`` stage: plain and introspective probes on one model's features, per layer, to JSON.

    Args:
        model: the zoo name.
        task: the probe task.
        settings_section: ``introspective.probe`` as in the params (with its ``seeds``).
        id_name: the ID set's name.
        id_path: the model's features on the ID set.
        ood_paths: its features on each OOD set, by name.
        out: the JSON result.
        provenance: what every output records first (the code version).

    Returns:
        The payload written to ``out``.
    """
    settings = FeatureProbeSettings.from_config(settings_section)
    id_features = h5io.read_features(id_path)
    ood = {name: h5io.read_features(path) for name, path in ood_paths.items()}
    rows = compare_probes_per_layer(id_features, ood, id_name=id_name, settings=settings,
                                    seeds=settings_section["seeds"])
    payload = {"model": model, "task": task, "id_eval": id_name, "rows": rows,
               "provenance": dict(provenance, model=model, task=task, settings=settings_section,
                                  settings_used=asdict(settings),
                                  weights_sha256=id_features.provenance["weights_sha256"],
                                  pooling=id_features.provenance["pooling"],
                                  layers=id_features.provenance["layers"])}
    write_json(out, payload)
    return payload
