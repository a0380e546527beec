import numpy as np

from zooprobe.probes.linear import fit_linear_probe


def _blobs(rng, n, separation):
    labels = rng.integers(0, 3, n)
    centres = np.eye(3, 8) * separation
    return centres[labels] + rng.normal(size=(n, 8)), labels


def test_probe_separates_separable_classes_and_records_the_sweep():
    rng = np.random.default_rng(0)
    (x, y), (vx, vy), (tx, ty) = (_blobs(rng, n, 6.0) for n in (300, 100, 200))
    fit = fit_linear_probe(train_x=x, train_y=y, val_x=vx, val_y=vy, c_grid=(0.01, 1.0), seed=0)
    assert set(fit.val_accuracy_by_c) == {0.01, 1.0}
    assert fit.val_accuracy == max(fit.val_accuracy_by_c.values())
    assert (fit.model.predict(tx) == ty).mean() > 0.95


def test_probe_on_random_features_stays_near_chance():
    rng = np.random.default_rng(1)
    x, vx, tx = (rng.normal(size=(n, 20)) for n in (300, 100, 600))
    y, vy, ty = (rng.integers(0, 3, n) for n in (300, 100, 600))
    fit = fit_linear_probe(train_x=x, train_y=y, val_x=vx, val_y=vy, seed=0)
    assert abs((fit.model.predict(tx) == ty).mean() - 1 / 3) < 0.08


def test_probe_is_deterministic():
    rng = np.random.default_rng(2)
    x, y = _blobs(rng, 200, 2.0)
    first = fit_linear_probe(train_x=x, train_y=y, val_x=x, val_y=y, seed=0).model.predict(x)
    again = fit_linear_probe(train_x=x, train_y=y, val_x=x, val_y=y, seed=0).model.predict(x)
    assert np.array_equal(first, again)
