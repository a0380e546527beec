"""Linear probes on frozen features: fit on a train split, pick C on val, score everywhere.

The ID probe of a task is fitted on the ID set and scored on its test split and every OOD set (how
an ID probe survives the shift); a transfer set gets probes of its own, fitted on its own train
split (the tunnel effect as Harun et al. 2024 measure it).
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from zooprobe.data.label_space import require_same_label_space
from zooprobe.io import h5io
from zooprobe.io.h5io import Features
from zooprobe.probes.fit import ProbeFit
from zooprobe.probes.knn import K_GRID, TEMPERATURE, KnnFit, fit_knn_probe
from zooprobe.probes.inputs import ProbeInputError, head_confidence
from zooprobe.probes.torch_linear import fit_torch_probe

log = logging.getLogger("zooprobe")

# Inverse L2 strengths swept on the validation split (dinov2-style named sweep).
C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0)
MAX_ITER = 300
# Probe kinds of a task (probe.tasks.<task>.probe): linear is the torch probe (probes.torch_linear: the C
# sweep C by C, each C warm-started from the previous one, on the GPU when there is one; the default since issue 20,
# benchmarks/probe_fit.py); sklearn is the same objective fitted by scikit-learn one C at a time, kept for
# comparison (results before issue 20 were fitted by it, under the name linear); knn fits nothing: a weighted
# vote of the k most cosine-similar training rows (probes.knn, DINO's k-NN evaluation), k chosen on val.
PROBE_KINDS: tuple[str, ...] = ("linear", "sklearn", "knn")
# Kind names that no longer exist -> what to write instead (refused with that hint).
RENAMED_KINDS: dict[str, str] = {"torch": "linear (the torch probe is the linear probe now)"}


def fit_linear_probe(*, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                     c_grid: tuple[float, ...] = C_GRID, max_iter: int = MAX_ITER, seed: int = 0) -> ProbeFit:
    """Fit a multinomial logistic-regression probe with scikit-learn (``probe: sklearn``), choosing C on val.

    Args:
        train_x: (N_train, D) features.
        train_y: (N_train,) labels.
        val_x: (N_val, D) features.
        val_y: (N_val,) labels.
        c_grid: inverse regularisation strengths to try.
        max_iter: L-BFGS iterations per fit.
        seed: seed of the solver.

    Returns:
        :class:`ProbeFit` holding the probe with the best validation accuracy (ties: smaller C).
    """
    if not c_grid:
        raise ValueError("c_grid must name at least one C")
    scores: dict[float, float] = {}
    best: tuple[float, float, object] | None = None
    for c in sorted(c_grid):
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
        with warnings.catch_warnings():
            # A capped iteration count is a deliberate speed/accuracy trade-off, not an error.
            warnings.simplefilter("ignore", ConvergenceWarning)
            probe.fit(train_x, train_y)
        scores[c] = float((probe.predict(val_x) == val_y).mean())
        if best is None or scores[c] > best[0]:
            best = (scores[c], c, probe)
    assert best is not None
    return ProbeFit(model=best[2], c=best[1], val_accuracy=best[0], val_accuracy_by_c=scores)


def in_memory(rows: Any) -> np.ndarray:
    """An (N, D) array of features given as an array or as row chunks (concatenated)."""
    if isinstance(rows, np.ndarray):
        return rows
    chunks = list(rows)
    return np.concatenate(chunks) if chunks else np.empty((0, getattr(rows, "dim", 0)), dtype=np.float32)


def predict_rows(model: Any, rows: Any) -> np.ndarray:
    """A fitted probe's predicted labels for features given as an array or as row chunks (chunk by chunk)."""
    if isinstance(rows, np.ndarray):
        return model.predict(rows)
    predicted = [model.predict(chunk) for chunk in rows]
    return np.concatenate(predicted) if predicted else np.empty(0, dtype=np.int64)


def require_probe_kind(kind: str) -> None:
    """Refuse a probe kind other than :data:`PROBE_KINDS`, naming the valid choices (and a renamed kind's new name).

    Raises:
        ValueError: an unknown or renamed kind.
    """
    if kind not in PROBE_KINDS:
        hint = f" (renamed: use {RENAMED_KINDS[kind]})" if kind in RENAMED_KINDS else ""
        raise ValueError(f"probe kind {kind!r}: valid choices are {list(PROBE_KINDS)}{hint}")


def fit_probe(*, kind: str, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
              c_grid: tuple[float, ...], max_iter: int, seed: int, device: str = "auto",
              threads: int | None = None) -> ProbeFit | KnnFit:
    """Fit the probe of the given kind, choosing C (k for ``knn``) by validation accuracy (ties: the smaller).

    Args:
        kind: ``linear`` (the torch probe, :func:`~zooprobe.probes.torch_linear.fit_torch_probe`), ``sklearn``
            (scikit-learn, :func:`fit_linear_probe`) or ``knn`` (:func:`~zooprobe.probes.knn.fit_knn_probe`,
            k from :data:`~zooprobe.probes.knn.K_GRID`; it ignores the C grid, iterations and seed).
        train_x: (N_train, D) features, or row chunks (:class:`~zooprobe.io.h5io.FeatureRowChunks`: the torch
            probe streams them; scikit-learn needs them in memory and concatenates them).
        train_y: (N_train,) labels.
        val_x: (N_val, D) features, or row chunks.
        val_y: (N_val,) labels.
        c_grid: inverse regularisation strengths to try.
        max_iter: most L-BFGS iterations.
        seed: seed of the solver.
        device: where the torch probe runs (``auto``, ``cpu``, ``cuda``); the sklearn probe runs on the CPU.
        threads: CPU threads of the torch probe (the job's); None keeps torch's setting.

    Returns:
        :class:`ProbeFit`, or :class:`~zooprobe.probes.knn.KnnFit` for ``knn``.

    Raises:
        ValueError: an unknown kind.
    """
    require_probe_kind(kind)
    if kind == "knn":
        return fit_knn_probe(train_x=in_memory(train_x), train_y=train_y, val_x=in_memory(val_x), val_y=val_y)
    if kind == "sklearn":
        return fit_linear_probe(train_x=in_memory(train_x), train_y=train_y, val_x=in_memory(val_x), val_y=val_y,
                                c_grid=c_grid, max_iter=max_iter, seed=seed)
    return fit_torch_probe(train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, c_grid=c_grid,
                           max_iter=max_iter, seed=seed, device=device, threads=threads)


# A transfer set with only test rows (a shifted copy of a test split, say) is carved, class by class,
# into these fractions for its own probes; the carve-out is seeded and recorded in provenance.
TRANSFER_CARVE_OUT: dict[str, float] = {"train": 0.5, "val": 0.2, "test": 0.3}
PROBE_SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class LayerProbes:
    """One probe per layer, fitted on one set's train split with C (k for k-NN) chosen on its val split.

    Attributes:
        predictions: evaluation name -> layer -> predicted labels.
        chosen_c: layer -> the C chosen on val (empty for k-NN probes).
        val_accuracy: layer -> validation accuracy at the chosen C or k.
        float32_matmul: layer -> how the torch probe ran its float32 matmuls (``ieee`` or ``onednn-bf16``:
            :func:`~zooprobe.probes.torch_linear.float32_matmuls`); empty for scikit-learn.
    """

    predictions: dict[str, dict[str, np.ndarray]]
    chosen_c: dict[str, float]
    val_accuracy: dict[str, float]
    float32_matmul: dict[str, str] = field(default_factory=dict)
    chosen_k: dict[str, int] = field(default_factory=dict)

    def chosen(self, layer: str) -> str:
        """The layer's chosen hyperparameter, for logs: ``C=0.1`` or ``k=20``."""
        return f"k={self.chosen_k[layer]}" if layer in self.chosen_k else f"C={self.chosen_c[layer]:g}"


def probe_every_layer(*, layers: list[str], train_x: dict[str, np.ndarray], train_y: np.ndarray,
                      val_x: dict[str, np.ndarray], val_y: np.ndarray, evaluate: dict[str, dict[str, np.ndarray]],
                      c_grid: tuple[float, ...], max_iter: int, seed: int, kind: str = "linear",
                      device: str = "auto", threads: int | None = None) -> LayerProbes:
    """Fit :func:`fit_probe` at every layer and predict every evaluation set with it.

    Args:
        layers: layer names, in order.
        train_x: layer -> (N_train, D) training features (an array or row chunks, as :func:`fit_probe` takes).
        train_y: (N_train,) training labels.
        val_x: layer -> (N_val, D) validation features.
        val_y: (N_val,) validation labels.
        evaluate: evaluation name -> layer -> (N_eval, D) features to predict (an array or row chunks).
        c_grid: inverse regularisation strengths swept on val.
        max_iter: L-BFGS iterations per fit.
        seed: seed of the solver.
        kind: the probe kind (:data:`PROBE_KINDS`).
        device: where the torch probe runs.
        threads: CPU threads of the torch probe.

    Returns:
        :class:`LayerProbes`.
    """
    require_probe_kind(kind)
    out = LayerProbes({name: {} for name in evaluate}, {}, {})
    for layer in layers:
        fit = fit_probe(kind=kind, train_x=train_x[layer], train_y=train_y, val_x=val_x[layer], val_y=val_y,
                        c_grid=c_grid, max_iter=max_iter, seed=seed, device=device, threads=threads)
        out.val_accuracy[layer] = fit.val_accuracy
        if isinstance(fit, KnnFit):
            out.chosen_k[layer] = fit.k
        else:
            out.chosen_c[layer] = fit.c
            if fit.float32_matmul is not None:
                out.float32_matmul[layer] = fit.float32_matmul
        for name, features in evaluate.items():
            out.predictions[name][layer] = predict_rows(fit.model, features[layer])
    return out


def transfer_split(labels: np.ndarray, split: np.ndarray, *, seed: int) -> tuple[np.ndarray, str]:
    """The train/val/test split a transfer set's own probes use.

    A set with train, val and test rows keeps them. A set without (typically test rows only) is
    carved class by class into :data:`TRANSFER_CARVE_OUT` with a seeded permutation, each class
    keeping at least one row in every split.

    Args:
        labels: (N,) labels of the set.
        split: (N,) stored split names.
        seed: seed of the carve-out.

    Returns:
        ((N,) split names to use, a description for provenance).

    Raises:
        ValueError: a class has fewer than three rows, so cannot be carved into three splits.
    """
    split = np.asarray(split).astype(str)
    if set(PROBE_SPLITS) <= set(np.unique(split)):
        return split, "own train/val/test splits"
    rng = np.random.default_rng(seed)
    carved = np.empty(len(labels), dtype="U5")
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        if len(rows) < len(PROBE_SPLITS):
            raise ValueError(f"class {label} has {len(rows)} rows; carving a transfer set into train/val/test needs "
                             f"at least 3 per class (give the dataset its own splits, or more images)")
        n_train = min(max(1, round(TRANSFER_CARVE_OUT["train"] * len(rows))), len(rows) - 2)
        n_val = min(max(1, round(TRANSFER_CARVE_OUT["val"] * len(rows))), len(rows) - n_train - 1)
        carved[rows[:n_train]], carved[rows[n_train:n_train + n_val]], carved[rows[n_train + n_val:]] = PROBE_SPLITS
    fractions = "/".join(f"{name} {share:g}" for name, share in TRANSFER_CARVE_OUT.items())
    return carved, f"carved from all rows per class ({fractions}), seed {seed}"


@dataclass
class ProbeResult:
    """What :func:`zooprobe.io.h5io.write_probe_result` writes for one model and task (its keyword arguments).

    Attributes:
        predictions: evaluation set -> layer -> predicted labels of the ID probes (ID: its test rows).
        labels: evaluation set -> true labels of the same rows.
        provenance: how the probes were fitted and on what.
        head: evaluation set -> the model's own head predictions, or None when not scored.
        transfer: transfer set -> (layer -> predictions of its own probes, its test labels, its test rows).
        head_confidence: evaluation set -> the head's confidence in its prediction per row, where the
            head's outputs are the set's classes (:func:`zooprobe.probes.inputs.head_confidence`).
    """

    predictions: dict[str, dict[str, np.ndarray]]
    labels: dict[str, np.ndarray]
    provenance: dict[str, Any]
    head: dict[str, np.ndarray] | None
    transfer: dict[str, tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]
    head_confidence: dict[str, np.ndarray | None] | None = None


def _knn_provenance(kind: str, probes: LayerProbes) -> dict[str, Any]:
    """What a k-NN probe records beside the linear probes' keys: its k per layer, the grid and the vote rule."""
    if kind != "knn":
        return {}
    return {"chosen_k": probes.chosen_k, "k_grid": list(K_GRID), "knn_temperature": TEMPERATURE,
            "knn_rule": "cosine similarity on L2-normalised features; votes weighted exp(similarity / T)"}


def _layer_rows(features: Features, layers: list[str], rows: np.ndarray | slice) -> dict[str, np.ndarray]:
    """layer -> the given rows of each layer's features."""
    return {layer: features.layers[layer][rows] for layer in layers}


def _transfer_probes(features: Features, layers: list[str], *, name: str, sweep: Mapping[str, Any]) -> dict[str, Any]:
    """Probes of a transfer set's own, fitted on its own train split (:func:`transfer_split`).

    Args:
        features: the model's features on the transfer set.
        layers: layer names, in order.
        name: the set's name.
        sweep: ``c_grid``, ``max_iter``, ``seed``, ``kind`` and ``device`` of the probes (the seed also carves
            the split).

    Returns:
        Its test predictions per layer, test labels and rows, and what provenance records (row count,
        how the split was made, chosen C and val accuracy per layer, number of classes).
    """
    split, how = transfer_split(features.labels, features.split, seed=sweep["seed"])
    rows = {s: np.flatnonzero(split == s) for s in PROBE_SPLITS}
    own = probe_every_layer(layers=layers, train_x=_layer_rows(features, layers, rows["train"]),
                            train_y=features.labels[rows["train"]], val_x=_layer_rows(features, layers, rows["val"]),
                            val_y=features.labels[rows["val"]],
                            evaluate={name: _layer_rows(features, layers, rows["test"])}, **sweep)
    return {"predictions": own.predictions[name], "labels": features.labels[rows["test"]], "rows": rows["test"],
            "n_rows": len(features.labels), "split": how, "chosen_c": own.chosen_c,
            **({"chosen_k": own.chosen_k} if own.chosen_k else {}), "val_accuracy": own.val_accuracy,
            "num_classes": len(features.provenance["class_names"])}


def probe_features(*, model: str, task: str, id_name: str, id_features: Features, ood: Mapping[str, Features],
                   transfer: Mapping[str, Features], settings: Mapping[str, Any], score_head: bool,
                   run: Mapping[str, Any], kind: str = "linear", device: str = "auto",
                   threads: int | None = None) -> ProbeResult:
    """The ``probe`` stage: ID probes per layer scored on the ID test split and every OOD set, transfer probes.

    The ID probe of each layer is fitted on the ID train split with C chosen on its val split, and
    predicts the ID test rows and every row of each OOD set; each transfer set gets probes of its
    own (the tunnel effect as Harun et al. define it).

    Args:
        model: the model's name.
        task: the task's name (``probe.tasks.<task>``).
        id_name: the ID set's name.
        id_features: the model's features on the ID set.
        ood: OOD set name -> features; each must share the ID label space.
        transfer: transfer set name -> features (any classes).
        settings: the probe params (c_grid, max_iter, seed).
        score_head: also keep the model's own head predictions on every evaluation set.
        run: what every output of this run records (the code version).
        kind: the task's probe kind (``probe.tasks.<task>.probe``, :data:`PROBE_KINDS`); recorded in provenance.
        device: where the torch probe runs (how it runs, not what it computes: not recorded).
        threads: CPU threads of the torch probe (how it runs: not recorded).

    Returns:
        :class:`ProbeResult`.

    Raises:
        ValueError: an unknown probe kind.
        LabelSpaceError: an OOD set has other classes than the ID set.
        ProbeInputError: ``score_head`` and a set without head predictions.
    """
    require_probe_kind(kind)
    for name, features in ood.items():
        # A probe's predictions only mean something on a set with the same label space.
        require_same_label_space(ood_name=name, ood_classes=features.provenance["class_names"], id_name=id_name,
                                 id_classes=id_features.provenance["class_names"],
                                 hint=f" (a set with other classes can be a transfer set: probe.tasks.{task}.transfer)")
    evals = {id_name: id_features, **ood}
    sweep = dict(c_grid=tuple(settings["c_grid"]), max_iter=settings["max_iter"], seed=settings["seed"], kind=kind,
                 device=device, threads=threads)
    train, val, test = (id_features.split == s for s in PROBE_SPLITS)
    layers = list(id_features.provenance["layers"])
    # The ID set is scored on its test rows; an OOD set on all of its rows.
    scored_rows = {name: (test if name == id_name else slice(None)) for name in evals}
    on_id = probe_every_layer(
        layers=layers, train_x=_layer_rows(id_features, layers, train), train_y=id_features.labels[train],
        val_x=_layer_rows(id_features, layers, val), val_y=id_features.labels[val],
        evaluate={name: _layer_rows(f, layers, scored_rows[name]) for name, f in evals.items()}, **sweep)
    for layer in layers:
        log.info("%s/%s %s: %s val=%.3f", model, task, layer, on_id.chosen(layer), on_id.val_accuracy[layer])
    labels = {name: f.labels[scored_rows[name]] for name, f in evals.items()}
    versions = {name: f.provenance["zooprobe_version"] for name, f in evals.items()}
    own: dict[str, dict[str, Any]] = {}
    for name, features in transfer.items():
        versions[name] = features.provenance["zooprobe_version"]
        own[name] = _transfer_probes(features, layers, name=name, sweep=sweep)
        log.info("%s/%s transfer probes on %s (%s): val %s", model, task, name, own[name]["split"],
                 {layer: round(acc, 3) for layer, acc in own[name]["val_accuracy"].items()})
    head = None
    if score_head:
        missing = [name for name, f in evals.items() if f.head_pred is None]
        if missing:
            raise ProbeInputError(f"--score-head: no head predictions in the features of {missing}; the model's head "
                                  f"has {id_features.provenance.get('num_classes', '?')} outputs, not one per class")
        head = {name: f.head_pred[scored_rows[name]] for name, f in evals.items()}
    confidence = {name: head_confidence(f, scored_rows[name]) for name, f in evals.items()} if head else None
    source = id_features.provenance
    provenance = dict(run, model=model, task=task, probe=kind, id_eval=id_name, layers=layers,
                      chosen_c=on_id.chosen_c, val_accuracy=on_id.val_accuracy, float32_matmul=on_id.float32_matmul,
                      seed=settings["seed"],
                      c_grid=settings["c_grid"], **_knn_provenance(kind, on_id),
                      weights_sha256=source["weights_sha256"], pooling=source["pooling"],
                      preprocessing=source["preprocessing"], arch=source["arch"],
                      checkpoint_info=source.get("checkpoint_info", {}), head_scored=head is not None,
                      transfer={name: {k: v for k, v in t.items() if k not in ("predictions", "labels", "rows")}
                                for name, t in own.items()},
                      feature_versions=versions)
    return ProbeResult(predictions=on_id.predictions, labels=labels, provenance=provenance, head=head,
                       transfer={name: (t["predictions"], t["labels"], t["rows"]) for name, t in own.items()},
                       head_confidence=confidence)


def probe_feature_files(*, model: str, task: str, id_name: str, id_path: str, ood_paths: Mapping[str, str],
                        transfer_paths: Mapping[str, str], settings: Mapping[str, Any], score_head: bool,
                        run: Mapping[str, Any], out: str, kind: str = "linear", device: str = "auto",
                        threads: int | None = None) -> None:
    """The ``probe`` stage on files: read the feature files, run :func:`probe_features`, write the result.

    Args:
        model: the model's name.
        task: the task's name.
        id_name: the ID set's name.
        id_path: the model's feature file on the ID set.
        ood_paths: OOD set name -> feature file.
        transfer_paths: transfer set name -> feature file; a set that is also the ID or an OOD set is read once.
        settings: the probe params (``chunk_rows``, if set, streams the features of a ``linear`` probe).
        score_head: also keep the model's own head predictions.
        run: what every output of this run records (the code version).
        out: the probe result file (HDF5, written atomically).
        kind: the task's probe kind.
        device: where the torch probe runs.
        threads: CPU threads of the torch probe.
    """
    require_probe_kind(kind)
    # probe.chunk_rows: the torch probe streams each layer's rows from disk in chunks of this many (a matrix
    # larger than memory); unset, every layer is read into memory (faster for what fits).
    chunk_rows = settings.get("chunk_rows") if kind == "linear" else None
    read = functools.partial(h5io.read_features, chunk_rows=chunk_rows)
    id_features = read(id_path)
    ood = {name: read(path) for name, path in ood_paths.items()}
    known = {id_name: id_features, **ood}
    transfer = {name: known[name] if name in known else read(path) for name, path in transfer_paths.items()}
    result = probe_features(model=model, task=task, id_name=id_name, id_features=id_features, ood=ood,
                            transfer=transfer, settings=settings, score_head=score_head, run=run, kind=kind,
                            device=device, threads=threads)
    # How the rows were read (None: in memory); the fit is the same either way (tests/test_torch_probe.py).
    result.provenance["chunk_rows"] = chunk_rows
    h5io.write_probe_result(out, predictions=result.predictions, labels=result.labels,
                            provenance=result.provenance, head=result.head, transfer=result.transfer,
                            head_confidence=result.head_confidence)
