"""The linear probe in torch: scikit-learn's objective for every C of the sweep, fitted by full-batch L-BFGS.

It minimises, for every C of the sweep, scikit-learn's multinomial logistic-regression objective on
standardised features: the mean per-sample log-loss plus ``||W||^2 / (2 C N)`` (sklearn's sum of
log-losses plus ``||W||^2 / (2 C)``, divided by N; the intercept is not penalised), in float32
(bfloat16 matmuls optional). By default C goes from the strongest regularisation to the weakest, each
fit warm-started from the previous solution; ``warm_start=False`` fits the whole sweep as one batched
(D, K * classes) weight in one L-BFGS run (the K problems are independent, so the sum of their
objectives has the same minimisers), which measured slower: its line search is shared by problems
of different conditioning (benchmarks/RESULTS.md). A fit stops at sklearn's gradient tolerance, at
``max_iter``, or when no C's val accuracy moved over :data:`PATIENCE` checks.

Features come either as one array (held once, standardised, as float32 or bfloat16 on the device)
or as a re-iterable of row chunks (:class:`zooprobe.io.h5io.FeatureRowChunks`): then every
evaluation streams the chunks and accumulates loss and gradient over them, which is exactly the
full-batch gradient, and host memory holds one chunk, not the matrix.
"""

from __future__ import annotations

import logging
from typing import Iterable, Iterator

import numpy as np
import torch

from zooprobe.probes.fit import ProbeFit

log = logging.getLogger("zooprobe")

MATMUL_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
# Iterations between convergence checks (each check costs one extra evaluation and one val pass).
CHECK_EVERY = 10
# Stop once no C's val accuracy moved by more than VAL_PLATEAU over PATIENCE consecutive checks.
VAL_PLATEAU = 0.0
PATIENCE = 4
# scikit-learn's default tolerance on the largest gradient entry of the mean objective.
GRAD_TOL = 1e-4
# Rows of an in-memory matrix per matmul (bounds the (rows, K, classes) logits).
ROWS_PER_PASS = 8192

Rows = np.ndarray | Iterable[np.ndarray]


def resolve_device(device: str) -> torch.device:
    """``auto``: the GPU when torch sees one, else the CPU; ``cpu`` or ``cuda`` as named.

    Raises:
        ValueError: an unknown device name, or ``cuda`` without a GPU.
    """
    if device not in DEVICES:
        raise ValueError(f"probe device {device!r}: valid choices are {list(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("probe device 'cuda': torch sees no GPU (use auto or cpu)")
    return torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")


def _chunks(rows: Rows) -> Iterator[np.ndarray]:
    """Row blocks of an array (blocks of ROWS_PER_PASS) or of a chunk iterable (as it yields them)."""
    if isinstance(rows, np.ndarray):
        for start in range(0, len(rows), ROWS_PER_PASS):
            yield rows[start:start + ROWS_PER_PASS]
    else:
        yield from rows


def standardisation(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale as sklearn's ``StandardScaler`` computes them, accumulated chunk by chunk.

    Args:
        rows: an (N, D) array or a re-iterable of (n, D) chunks.

    Returns:
        (mean, scale) as float64 (D,) arrays; scale is the population standard deviation, 1 where it is 0.
    """
    count, shift, total, squares = 0, None, None, None
    for chunk in _chunks(rows):
        chunk = np.asarray(chunk, dtype=np.float64)
        if shift is None:
            # Sums about the first chunk's mean keep the variance free of cancellation.
            shift = chunk.mean(axis=0)
            total, squares = np.zeros_like(shift), np.zeros_like(shift)
        centred = chunk - shift
        count, total, squares = count + len(chunk), total + centred.sum(axis=0), squares + (centred ** 2).sum(axis=0)
    if not count:
        raise ValueError("no training rows")
    mean = total / count
    variance = np.maximum(squares / count - mean ** 2, 0.0)
    scale = np.sqrt(variance)
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(shift + mean))] = 1.0
    return shift + mean, scale


class TorchLinearModel:
    """The chosen probe as a predictor: standardise, then one linear map (what ``ProbeFit.model`` offers).

    Attributes:
        classes_: the class labels, in the order of the columns of :meth:`predict_proba`.
    """

    def __init__(self, *, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 classes: np.ndarray) -> None:
        # Standardisation folded into the weights: ((x - mean) / scale) W + b = x (W / scale) + (b - mean W / scale).
        self._weight = (coef / scale[:, None]).astype(np.float32)
        self._bias = (intercept - (mean / scale) @ coef).astype(np.float32)
        self.classes_ = classes

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """(N, classes) logits of (N, D) features."""
        return np.asarray(x, dtype=np.float32) @ self._weight + self._bias

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(N, classes) class probabilities."""
        logits = self.decision_function(x)
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        return logits / logits.sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N,) predicted labels."""
        return self.classes_[self.decision_function(x).argmax(axis=1)]


class _DeviceRows:
    """Standardised features on the device: held once (an array) or streamed chunk by chunk (an iterable)."""

    def __init__(self, rows: Rows, *, mean: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype,
                 device: torch.device) -> None:
        self._mean, self._scale, self._dtype, self._device = mean, scale, dtype, device
        self._held: list[torch.Tensor] | None = None
        self._stream = rows
        if isinstance(rows, np.ndarray):
            self._held = [self._prepare(block) for block in _chunks(rows)]

    def _prepare(self, block: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(block, dtype=np.float32), device=self._device)
        return ((x - self._mean) / self._scale).to(self._dtype)

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self._held is not None:
            yield from self._held
        else:
            for block in _chunks(self._stream):
                yield self._prepare(block)


def _label_index(labels: np.ndarray, classes: np.ndarray, device: torch.device) -> torch.Tensor:
    """Column index of each label in ``classes``; -1 for a label the training split lacks (never predicted)."""
    labels = np.asarray(labels)
    where = np.clip(np.searchsorted(classes, labels), 0, len(classes) - 1)
    index = np.where(classes[where] == labels, where, -1)
    return torch.as_tensor(index, dtype=torch.long, device=device)


def fit_torch_probe(*, train_x: Rows, train_y: np.ndarray, val_x: Rows, val_y: np.ndarray,
                    c_grid: tuple[float, ...], max_iter: int, seed: int, device: str = "auto",
                    matmul_dtype: str = "float32", warm_start: bool = True) -> ProbeFit:
    """Fit the probe for every C of the sweep; choose C by val accuracy.

    Args:
        train_x: (N, D) training features, or a re-iterable of row chunks (streamed every evaluation).
        train_y: (N,) labels, in the order the rows come (for :class:`~zooprobe.io.h5io.FeatureRowChunks`:
            ascending row index).
        val_x: (N_val, D) validation features, or row chunks.
        val_y: (N_val,) validation labels, in the same order.
        c_grid: inverse regularisation strengths.
        max_iter: most L-BFGS iterations (as sklearn's ``max_iter``).
        seed: seeds torch (the fit starts from zero weights, so a CPU fit is the same on every run).
        device: ``auto``, ``cpu`` or ``cuda``.
        matmul_dtype: ``float32``, or ``bfloat16`` for the feature matmuls (weights and sums stay float32).
        warm_start: fit C by C from the strongest regularisation, each from the previous solution (faster:
            measured in benchmarks/probe_fit.py); False fits the whole sweep as one batched weight in one
            L-BFGS run (one pass over the features an evaluation for all C, but a line search shared by
            differently conditioned problems, which stalls and needs more evaluations).

    Returns:
        :class:`~zooprobe.probes.rows.ProbeFit` with a :class:`TorchLinearModel` at the C of the best val
        accuracy (ties: smaller C).

    Raises:
        ValueError: an empty sweep, an unknown device or matmul dtype, no training rows.
    """
    if not c_grid:
        raise ValueError("c_grid must name at least one C")
    if matmul_dtype not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype {matmul_dtype!r}: valid choices are {list(MATMUL_DTYPES)}")
    torch.manual_seed(seed)
    where = resolve_device(device)
    cs = sorted(float(c) for c in c_grid)
    mean, scale = standardisation(train_x)
    to_device = dict(device=where, dtype=torch.float32)
    train = _DeviceRows(train_x, mean=torch.as_tensor(mean, **to_device), scale=torch.as_tensor(scale, **to_device),
                        dtype=MATMUL_DTYPES[matmul_dtype], device=where)
    val = _DeviceRows(val_x, mean=torch.as_tensor(mean, **to_device), scale=torch.as_tensor(scale, **to_device),
                      dtype=MATMUL_DTYPES[matmul_dtype], device=where)
    classes = np.unique(np.asarray(train_y))
    train_index = _label_index(train_y, classes, where)
    val_index = _label_index(val_y, classes, where)
    n, c, d = len(train_index), len(classes), len(mean)

    def solve(cs: list[float], start: tuple[torch.Tensor, torch.Tensor] | None
              ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Weights (D, K * classes), biases and val accuracies of the C values ``cs`` fitted as one batched weight."""
        k = len(cs)
        weight = (torch.zeros(d, k * c, **to_device) if start is None else start[0].repeat(1, k)).requires_grad_(True)
        bias = (torch.zeros(k * c, **to_device) if start is None else start[1].repeat(k)).requires_grad_(True)
        # Per-C penalty 1 / (2 C N) on ||W_C||^2: sklearn's objective divided by N.
        penalty = torch.tensor([1.0 / (2.0 * value * n) for value in cs], **to_device)

        def logits_of(x: torch.Tensor) -> torch.Tensor:
            return (x @ weight.to(x.dtype)).float().view(len(x), k, c) + bias.view(k, c)

        def closure() -> float:
            optimizer.zero_grad()
            total, start = 0.0, 0
            for x in train:
                target = train_index[start:start + len(x)]
                start += len(x)
                logits = logits_of(x)
                picked = logits.gather(2, target.view(-1, 1, 1).expand(-1, k, 1)).squeeze(2)
                loss = (torch.logsumexp(logits, dim=2) - picked).sum() / n
                loss.backward()
                total += float(loss.detach())
            reg = (penalty * weight.view(d, k, c).square().sum(dim=(0, 2))).sum()
            reg.backward()
            return total + float(reg.detach())

        def val_accuracy() -> np.ndarray:
            with torch.no_grad():
                correct, start = torch.zeros(k, device=where), 0
                for x in val:
                    target = val_index[start:start + len(x)]
                    start += len(x)
                    correct += (logits_of(x).argmax(dim=2) == target[:, None]).sum(dim=0)
            return (correct / max(1, len(val_index))).cpu().numpy()

        optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=CHECK_EVERY, history_size=10,
                                      tolerance_grad=GRAD_TOL, tolerance_change=1e-9,
                                      line_search_fn="strong_wolfe")
        history: list[np.ndarray] = []
        done, stalled = 0, 0
        while done < max_iter:
            optimizer.param_groups[0]["max_iter"] = budget = min(CHECK_EVERY, max_iter - done)
            before = optimizer.state[weight].get("n_iter", 0)
            optimizer.step(closure)
            ran = optimizer.state[weight].get("n_iter", 0) - before
            done += max(ran, 1)
            history.append(val_accuracy())
            if ran < budget:
                # L-BFGS stopped on its own. Converged when the largest gradient entry is below tolerance; otherwise
                # its line search stalled on the K problems' shared step (their curvatures differ): restart it.
                closure()
                if max(float(p.grad.abs().max()) for p in (weight, bias)) <= GRAD_TOL:
                    break
                stalled = stalled + 1 if ran == 0 else 0
                if stalled > 1:
                    break
                optimizer.state.clear()
                continue
            recent = history[-(PATIENCE + 1):]
            if len(recent) == PATIENCE + 1 and np.ptp(np.stack(recent), axis=0).max() <= VAL_PLATEAU:
                break
        return weight.detach(), bias.detach(), history[-1]

    if warm_start:
        # C by C from the strongest regularisation, each fit starting from the previous one's solution:
        # the weaker-regularised problems converge slowest, and start close to their optimum this way.
        parts: list[tuple[torch.Tensor, torch.Tensor, np.ndarray]] = []
        for value in cs:
            parts.append(solve([value], parts[-1][:2] if parts else None))
        weight = torch.cat([w for w, _, _ in parts], dim=1)
        bias = torch.cat([b for _, b, _ in parts])
        accuracy = np.concatenate([a for _, _, a in parts])
    else:
        weight, bias, accuracy = solve(cs, None)
    k = len(cs)
    scores = {value: float(acc) for value, acc in zip(cs, accuracy)}
    best = max(range(k), key=lambda i: (accuracy[i], -i))  # ties: the smaller C, as the sklearn probe
    log.debug("torch probe: val %s", scores)
    coef = weight.detach().view(d, k, c)[:, best].cpu().numpy().astype(np.float64)
    intercept = bias.detach().view(k, c)[best].cpu().numpy().astype(np.float64)
    model = TorchLinearModel(mean=mean, scale=scale, coef=coef, intercept=intercept, classes=classes)
    return ProbeFit(model=model, c=cs[best], val_accuracy=scores[cs[best]], val_accuracy_by_c=scores)
