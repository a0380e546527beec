"""Linear CKA in feature space and in chunks, against Gram-matrix formulas written out here."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from zooprobe.analysis.representations import (cka_between_layers, cka_between_models, cka_matrix, hsic_chunks,
                                               linear_cka, linear_cka_chunks, row_chunks)


# ----------------------------------------------------------------------------- independent references
def gram_hsic(x: np.ndarray, y: np.ndarray) -> float:
    """tr(K H L H) / (n - 1)^2 with K = X X^T, L = Y Y^T, H = I - 1 1^T / n (Gretton et al. 2005)."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(x @ x.T @ h @ y @ y.T @ h)) / (n - 1) ** 2


def gram_unbiased_hsic(x: np.ndarray, y: np.ndarray) -> float:
    """Song et al. (2012), eq. 5, on Gram matrices with zeroed diagonals."""
    n = len(x)
    k, l = x @ x.T, y @ y.T
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    return float((np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
                  - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3)))


def gram_cka(x: np.ndarray, y: np.ndarray, hsic=gram_hsic) -> float:
    return hsic(x, y) / np.sqrt(hsic(x, x) * hsic(y, y))


def features(rng: np.random.Generator, n: int, p: int, q: int, *, mean: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two related feature matrices: Y is a noisy linear map of X, both with a common offset ``mean``."""
    x = rng.normal(size=(n, p)) @ rng.normal(size=(p, p)) + mean
    y = x @ rng.normal(size=(p, q)) + 2 * rng.normal(size=(n, q)) + mean
    return x, y


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 10_000])
def test_chunked_hsic_and_cka_equal_the_gram_formula(chunk_rows):
    rng = np.random.default_rng(0)
    x, y = features(rng, 150, 12, 5, mean=30.0)  # a large offset: centring must be exact, not approximate
    assert hsic_chunks(row_chunks(x, y, chunk_rows=chunk_rows)) == pytest.approx(gram_hsic(x, y), rel=1e-6)
    found = linear_cka(x, y, chunk_rows=chunk_rows)
    assert found == pytest.approx(gram_cka(x, y), abs=1e-6)
    assert 0.1 < found < 0.99  # related but not identical features: the check is not at a boundary


@pytest.mark.parametrize("chunk_rows", [1, 9, 10_000])
def test_debiased_hsic_and_cka_equal_the_unbiased_gram_formula(chunk_rows):
    rng = np.random.default_rng(1)
    x, y = features(rng, 40, 6, 9, mean=-5.0)
    assert hsic_chunks(row_chunks(x, y, chunk_rows=chunk_rows), debiased=True) == pytest.approx(
        gram_unbiased_hsic(x, y), rel=1e-6)
    assert linear_cka(x, y, debiased=True, chunk_rows=chunk_rows) == pytest.approx(
        gram_cka(x, y, gram_unbiased_hsic), abs=1e-6)
    assert linear_cka(x, y, debiased=True) != pytest.approx(linear_cka(x, y), abs=1e-3)


def test_the_unbiased_hsic_ignores_constant_offsets_which_lets_each_pass_shift_its_own_way():
    rng = np.random.default_rng(2)
    x, y = features(rng, 30, 4, 3)
    moved = gram_unbiased_hsic(x + rng.normal(size=4) * 10, y + rng.normal(size=3) * 10)
    assert moved == pytest.approx(gram_unbiased_hsic(x, y), rel=1e-8)


def test_the_debiased_estimator_is_unbiased_and_the_plain_one_is_not():
    """Gaussian X (3-d) and Y = X A + noise: the population HSIC is ||Cov(Y, X)||_F^2 = ||A^T||_F^2.
    4,000 samples of 12 rows: the debiased mean lies within 4 standard errors of it, the plain one does not."""
    rng = np.random.default_rng(3)
    a = np.array([[1.0, 0.0], [0.5, 1.0], [0.0, -0.5]])
    truth = float(np.sum(a ** 2))
    debiased, plain = [], []
    for _ in range(4000):
        x = rng.normal(size=(12, 3))
        y = x @ a + rng.normal(size=(12, 2))
        debiased.append(hsic_chunks([(x, y)], debiased=True))
        plain.append(hsic_chunks([(x, y)]))
    se = np.std(debiased) / np.sqrt(len(debiased))
    print(f"population HSIC {truth:.3f}; debiased mean {np.mean(debiased):.3f} (se {se:.3f}), plain mean {np.mean(plain):.3f}")
    assert abs(np.mean(debiased) - truth) < 4 * se
    assert abs(np.mean(plain) - truth) > 4 * np.std(plain) / np.sqrt(len(plain))


def test_cka_is_one_under_rotation_and_isotropic_scaling():
    rng = np.random.default_rng(4)
    x, _ = features(rng, 200, 10, 1, mean=3.0)
    rotation = ortho_group.rvs(10, random_state=5)
    for debiased in (False, True):
        assert linear_cka(x, x @ rotation, debiased=debiased, chunk_rows=33) == pytest.approx(1.0, abs=1e-9)
        assert linear_cka(x, 7.5 * x @ rotation, debiased=debiased, chunk_rows=33) == pytest.approx(1.0, abs=1e-9)
    _, y = features(rng, 200, 10, 4)
    base = linear_cka(x, y)
    assert linear_cka(0.01 * x @ rotation, 40 * y) == pytest.approx(base, abs=1e-9)
    assert linear_cka(x, y[:, ::-1] + 100) == pytest.approx(base, abs=1e-9)  # column order and offsets


def test_a_constant_feature_matrix_has_no_cka():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20, 3))
    assert np.isnan(linear_cka(x, np.ones((20, 2))))


def test_matrices_over_models_and_layers_stream_fresh_chunks_and_match_pairwise_cka():
    rng = np.random.default_rng(7)
    x, y = features(rng, 90, 5, 4)
    z = np.hstack([x[:, :2], rng.normal(size=(90, 3))])
    arrays = {"resnet": x, "vit": y, "mixer": z}
    passes = {name: 0 for name in arrays}

    def source(name: str, chunk_rows: int = 16):
        def chunks():
            passes[name] += 1
            for start in range(0, 90, chunk_rows):
                yield arrays[name][start:start + chunk_rows]
        return chunks

    for debiased in (False, True):
        found = cka_between_models({name: source(name) for name in arrays}, debiased=debiased)
        assert found.estimator == ("debiased" if debiased else "biased") and found.n == 90
        for a, b, value in found.pairs():
            assert value == pytest.approx(linear_cka(arrays[a], arrays[b], debiased=debiased), abs=1e-9)
            assert value == pytest.approx(gram_cka(arrays[a], arrays[b], gram_unbiased_hsic if debiased else gram_hsic),
                                          abs=1e-6)
        np.testing.assert_allclose(found.cka, found.cka.T)
        np.testing.assert_allclose(np.diag(found.cka), 1.0)
    assert passes == {"resnet": 6, "vit": 6, "mixer": 6}  # per estimator: one self pass + two pair passes
    layers = cka_between_layers({"layer1": source("resnet"), "layer2": source("vit")})
    assert layers.names == ("layer1", "layer2") and layers.cka[0, 1] == pytest.approx(linear_cka(x, y), abs=1e-9)


def test_bad_inputs_are_refused_with_what_is_expected():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="same N examples"):
        linear_cka(x, x[:9])
    with pytest.raises(ValueError, match="same examples"):
        linear_cka_chunks([(x, x[:9])])
    with pytest.raises(ValueError, match="same features as the first"):
        linear_cka_chunks([(x[:5], x[:5]), (x[5:, :2], x[5:])])
    with pytest.raises(ValueError, match="2-D"):
        linear_cka_chunks([(x[:, 0], x)])
    with pytest.raises(ValueError, match="at least 4 rows"):
        linear_cka(x[:3], x[:3], debiased=True)
    with pytest.raises(ValueError, match="finite"):
        linear_cka(np.full((5, 2), np.nan), x[:5, :2])
    with pytest.raises(ValueError, match="True or False"):
        linear_cka(x, x, debiased="yes")
    with pytest.raises(ValueError, match="at least 2 feature sets"):
        cka_matrix({"a": lambda: [x]})
    with pytest.raises(ValueError, match="b has 5 rows and a 10"):
        cka_matrix({"a": lambda: [x[:5], x[5:]], "b": lambda: [x[:5]]})
    with pytest.raises(ValueError, match="same examples in the same chunks"):
        cka_matrix({"a": lambda: [x[:5], x[5:]], "b": lambda: [x]})


def test_two_hundred_thousand_rows_stream_without_a_gram_matrix_and_hit_the_population_cka():
    """N = 200,000 (a Gram matrix would take 320 GB): X ~ N(0, I_16), Y = its first 4 columns, so the
    population CKA is ||S_yx||^2 / (||S_xx|| ||S_yy||) = 4 / (sqrt(16) sqrt(4)) = 0.5."""
    rng = np.random.default_rng(9)

    def chunks():
        for _ in range(20):
            x = rng.normal(size=(10_000, 16))
            yield x, x[:, :4]

    found = linear_cka_chunks(chunks())
    print(f"CKA at N = 200,000: {found:.4f} (population 0.5)")
    assert found == pytest.approx(0.5, abs=0.01)
