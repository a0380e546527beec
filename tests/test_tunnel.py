"""Tunnel-effect metrics: probes trained on the OOD set recover a planted curve; the intervals cover."""

import numpy as np
import pytest
from scipy.stats import norm

from zooprobe.analysis import tunnel
from zooprobe.analysis.scores import ProbeRun, score_table
from zooprobe.probes.linear import TRANSFER_CARVE_OUT, probe_every_layer, transfer_split
from zooprobe.params.spec import PRE_LOGITS

LAYERS = ["stem", "block1", "block2", "block3", PRE_LOGITS]


def _two_class_layers(rng, n, accuracies, dim=8):
    """Features whose Bayes accuracy at each layer is the planted one: two unit Gaussians, means 2 Phi^-1(acc) apart."""
    labels = rng.integers(0, 2, n)
    layers = {}
    for layer, accuracy in zip(LAYERS, accuracies):
        x = rng.normal(size=(n, dim))
        x[:, 0] += np.where(labels == 1, 1.0, -1.0) * norm.ppf(accuracy)
        layers[layer] = x
    return labels, layers


def test_transfer_split_keeps_own_splits_and_carves_the_rest_per_class():
    labels = np.repeat(np.arange(4), 10)
    own = np.array(["train"] * 20 + ["val"] * 8 + ["test"] * 12)
    kept, how = transfer_split(labels, own, seed=0)
    assert (kept == own).all() and how == "own train/val/test splits"
    carved, how = transfer_split(labels, np.array(["test"] * 40), seed=3)
    assert "seed 3" in how and "train 0.5" in how
    for label in range(4):
        counts = {s: int(((carved == s) & (labels == label)).sum()) for s in ("train", "val", "test")}
        assert counts == {s: round(TRANSFER_CARVE_OUT[s] * 10) for s in counts}
    again, _ = transfer_split(labels, np.array(["test"] * 40), seed=3)
    assert (again == carved).all()
    with pytest.raises(ValueError, match="at least 3 per class"):
        transfer_split(np.array([0, 0, 1, 1, 1]), np.array(["test"] * 5), seed=0)


def test_probes_trained_on_the_ood_set_recover_a_planted_layer_curve():
    """The planted OOD curve peaks in the middle and falls (a tunnel); the ID curve keeps rising."""
    rng = np.random.default_rng(0)
    id_planted, ood_planted = [0.6, 0.7, 0.8, 0.9, 0.95], [0.6, 0.75, 0.9, 0.8, 0.65]
    id_labels, id_layers = _two_class_layers(rng, 1600, id_planted)
    id_split = np.array(["train"] * 800 + ["val"] * 300 + ["test"] * 500)
    ood_labels, ood_layers = _two_class_layers(rng, 2000, ood_planted)
    ood_split, _ = transfer_split(ood_labels, np.array(["test"] * 2000), seed=0)
    sweep = dict(c_grid=(0.1, 1.0), max_iter=200, seed=0)
    rows = {s: np.flatnonzero(id_split == s) for s in ("train", "val", "test")}
    on_id = probe_every_layer(layers=LAYERS, train_x={k: v[rows["train"]] for k, v in id_layers.items()},
                              train_y=id_labels[rows["train"]], val_x={k: v[rows["val"]] for k, v in id_layers.items()},
                              val_y=id_labels[rows["val"]], evaluate={"id": {k: v[rows["test"]]
                                                                             for k, v in id_layers.items()}}, **sweep)
    own = {s: np.flatnonzero(ood_split == s) for s in ("train", "val", "test")}
    on_ood = probe_every_layer(layers=LAYERS, train_x={k: v[own["train"]] for k, v in ood_layers.items()},
                               train_y=ood_labels[own["train"]], val_x={k: v[own["val"]] for k, v in ood_layers.items()},
                               val_y=ood_labels[own["val"]], evaluate={"ood": {k: v[own["test"]]
                                                                               for k, v in ood_layers.items()}}, **sweep)
    run = ProbeRun("m", "t", on_id.predictions, {"id": id_labels[rows["test"]]},
                   {"layers": LAYERS, "val_accuracy": on_id.val_accuracy, "id_eval": "id",
                    "transfer": {"ood": {"n_rows": 2000, "num_classes": 2}}},
                   transfer={"ood": {"predictions": on_ood.predictions["ood"], "labels": ood_labels[own["test"]],
                                     "rows": own["test"]}})
    scores = score_table([run], n_boot=400, seed=0)
    curve = scores[scores.metric == "transfer_accuracy"].set_index("layer")
    assert list(curve.index) == LAYERS
    assert np.abs(curve.value.to_numpy() - ood_planted).max() < 0.05
    assert (curve.ci_low <= curve.value).all() and (curve.value <= curve.ci_high).all()
    metrics = scores[scores.benchmark == "ood"].set_index("metric")
    planted_retained = 100 * ood_planted[-1] / max(ood_planted)
    retained = metrics.loc["tunnel_retained_pct"]
    assert retained.ci_low <= planted_retained <= retained.ci_high and retained.value < 80
    planted_pearson = np.corrcoef(id_planted, ood_planted)[0, 1]
    pearson = metrics.loc["tunnel_id_ood_pearson"]
    assert pearson.ci_low <= planted_pearson <= pearson.ci_high and pearson.layer == "all"
    assert metrics.loc["tunnel_id_ood_alignment", "layer"] == PRE_LOGITS
    assert not any(name.startswith("shift_") for name in metrics.index)  # no OOD set of the ID probe here


def _bootstrap_counts(rng, n, n_boot):
    draws = rng.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]
    return np.bincount(draws.ravel(), minlength=n * n_boot).reshape(n_boot, n)


def test_tunnel_intervals_cover_the_true_metrics():
    """Over simulated test sets with known layer accuracies, the 95% intervals cover each true metric."""
    rng = np.random.default_rng(1)
    id_true, ood_true = np.array([0.55, 0.65, 0.75, 0.85, 0.9]), np.array([0.5, 0.6, 0.7, 0.62, 0.55])
    truth = {name: values[0] for name, values in tunnel.tunnel_metrics(
        id_true[None], ood_true[None], penultimate=4, id_chance=0.5, ood_chance=0.5).items()}
    n, n_sims, n_boot = 600, 400, 200
    covered = {name: 0 for name in truth}
    for _ in range(n_sims):
        # One latent difficulty per example makes the layers' errors correlated, as in real probes.
        difficulty_id, difficulty_ood = rng.random(n), rng.random(n)
        id_correct = (difficulty_id[None] < id_true[:, None])
        ood_correct = (difficulty_ood[None] < ood_true[:, None])
        counts_id, counts_ood = (_bootstrap_counts(rng, n, n_boot) for _ in range(2))
        estimates = tunnel.tunnel_estimates(
            tunnel.curve_replicates(id_correct, counts_id), tunnel.curve_replicates(ood_correct, counts_ood),
            family="tunnel", penultimate=4, id_chance=0.5, ood_chance=0.5, n=n, resampled="test")
        for name, true in truth.items():
            est = estimates[f"tunnel_{name}"]
            covered[name] += est.ci_low <= true <= est.ci_high
    coverage = {name: hits / n_sims for name, hits in covered.items()}
    for name, value in coverage.items():
        assert 0.91 <= value <= 0.99, coverage


def test_unknown_family_and_flat_curves():
    curves = np.full((3, 5), 0.5)
    with pytest.raises(ValueError, match="valid: \\['tunnel', 'shift'\\]"):
        tunnel.tunnel_estimates(curves, curves, family="tunel", penultimate=4, id_chance=0.5, ood_chance=0.5, n=1,
                                resampled="")
    found = tunnel.tunnel_estimates(curves, curves, family="shift", penultimate=4, id_chance=0.5, ood_chance=0.5,
                                    n=1, resampled="")
    assert "shift_id_ood_pearson" not in found  # a flat curve has no correlation
    assert found["shift_retained_pct"].value == 100.0
    assert set(tunnel.tunnel_estimates(curves, curves, family="shift", penultimate=None, id_chance=0.5,
                                       ood_chance=0.5, n=1, resampled="")) == set()
