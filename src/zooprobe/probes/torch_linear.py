"""The linear probe (``probe: linear``) in torch: scikit-learn's objective for every C of the sweep, in one run.

It minimises, for every C of the sweep, scikit-learn's multinomial logistic-regression objective on
standardised features: the mean per-sample log-loss plus ``||W||^2 / (2 C N)`` (sklearn's sum of
log-losses plus ``||W||^2 / (2 C)``, divided by N; the intercept is not penalised), in float32
(bfloat16 matmuls optional, finished in float32; on the CPU, float32 matmuls run in oneDNN's bfloat16
math mode where a check at the start of the fit shows it keeps float32 accuracy: see
:func:`float32_matmuls`), every C its own L-BFGS problem (own history, own
Armijo line search; compact inverse-Hessian form), with loss and gradient written by hand (softmax minus
one-hot, no autograd). By default (``warm_start=True``) the sweep goes C by C from the strongest
regularisation, each C started from the previous solution; ``warm_start=False`` runs the whole sweep as
one run from zero weights, one pass over the features evaluating every C still running at its own trial
point. On the 2-core CPU the C-by-C sweep measured faster (1.62 s against 1.95 s at D = 512, 3.72 s
against 4.43 s at D = 2,048: benchmarks/RESULTS.md), so it is the default. A C stops at sklearn's gradient tolerance, at
``max_iter``, when its line search finds no decrease, or when its val accuracy has not moved over
:data:`PATIENCE` checks.

Features come either as one array (held once, standardised, as float32 on the device) or as a
re-iterable of row chunks (:class:`zooprobe.io.h5io.FeatureRowChunks`): then every evaluation streams
the chunks and accumulates loss and gradient over them, which is exactly the full-batch gradient, and
host memory holds about one chunk, not the matrix.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
from typing import Iterable, Iterator

import numpy as np
import torch

from zooprobe.probes.fit import ProbeFit

log = logging.getLogger("zooprobe")

MATMUL_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
# float32 matmuls on the CPU: "auto" runs them in oneDNN's bfloat16 math mode when it passes the accuracy check
# of float32_matmuls, "ieee" always in plain float32.
FLOAT32_MATMULS: tuple[str, ...] = ("auto", "ieee")
# The check: the largest error of a float32 matmul against float64, as a fraction of the mean |entry|. Measured
# on this project's CPU (AVX-512 BF16) on the check's blocks (256 rows; D from 10 to 2,048, 4 to 1,000
# columns): plain float32 1.1e-6 to 2.3e-6, oneDNN's bfloat16 mode 1.2e-6 to 5.8e-6 (it splits each float32
# into bfloat16 parts; on the fit's shapes it ran 1.6 to 2.3 times faster); rounding the inputs to bfloat16
# gives 6e-4 on the mean error alone. A mode that rounds is refused.
FLOAT32_MATMUL_TOLERANCE = 2e-5
# Rows of the check's matmuls (small: the check costs milliseconds).
FLOAT32_MATMUL_CHECK_ROWS = 256
# Iterations between convergence checks (each check costs one extra evaluation and one val pass).
CHECK_EVERY = 10
# Stop once no C's val accuracy moved by more than VAL_PLATEAU over PATIENCE consecutive checks.
VAL_PLATEAU = 0.0
PATIENCE = 4
# scikit-learn's default tolerance on the largest gradient entry of the mean objective.
GRAD_TOL = 1e-4
# Rows of an in-memory matrix per matmul (bounds the (rows, K, classes) logits).
ROWS_PER_PASS = 8192
# L-BFGS: (s, y) pairs kept per problem; Armijo's sufficient-decrease constant; a rejected step shrinks to
# the quadratic model's minimiser, kept within [BACKTRACK_MIN, BACKTRACK_MAX] of it; at most MAX_BACKTRACKS
# shrinks a step (then no decrease is left to find at float32 precision).
HISTORY = 10
ARMIJO = 1e-4
BACKTRACK_MIN, BACKTRACK_MAX = 0.1, 0.5
MAX_BACKTRACKS = 20
# bfloat16 matmuls (matmul_dtype="bfloat16") carry the fit until some problem's largest gradient entry is
# this small (or a line search finds no decrease); float32 finishes it: bfloat16's rounding noise in the
# gradient is of the order of GRAD_TOL at N = 20,000 (benchmarks/probe_fit.py: bfloat16 throughout ran to max_iter;
# handing over at 3 * GRAD_TOL left 12 of 20 passes at D = 2,048 to float32, at 1.5 * GRAD_TOL 5 of 16).
LOW_PRECISION_UNTIL = 1.5 * GRAD_TOL
# In bfloat16 a line search that finds no decrease after this many shrinks hands over to float32.
LOW_PRECISION_BACKTRACKS = 3

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


def require_float32_matmul(mode: str) -> None:
    """Refuse a float32 matmul mode other than :data:`FLOAT32_MATMULS`, naming the valid choices."""
    if mode not in FLOAT32_MATMULS:
        raise ValueError(f"float32_matmul {mode!r}: valid choices are {list(FLOAT32_MATMULS)}")


@functools.lru_cache(maxsize=None)
def _float32_matmul_error(dim: int, cols: int, precision: str) -> float:
    """Largest error of the fit's float32 matmuls against float64, as a fraction of the mean |entry|.

    Both of the fit's products are checked (features times weights; transposed features times residuals) on
    seeded random blocks of its shapes. ``precision`` names the oneDNN setting in force (the caller sets it;
    it is part of the cache key). Cached per shape and setting: the error is a property of the CPU, the
    library and the setting, not of the data.
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(FLOAT32_MATMUL_CHECK_ROWS, dim, generator=generator)
    weight = torch.randn(dim, cols, generator=generator)
    residual = torch.randn(FLOAT32_MATMUL_CHECK_ROWS, cols, generator=generator)
    worst = 0.0
    for fast, exact in ((x @ weight, x.double() @ weight.double()), (x.T @ residual, x.double().T @ residual.double())):
        worst = max(worst, float((fast.double() - exact).abs().max() / exact.abs().mean()))
    return worst


@contextlib.contextmanager
def float32_matmuls(mode: str, device: torch.device, *, dim: int, cols: int) -> Iterator[str]:
    """Run the fit's float32 matmuls in oneDNN's bfloat16 math mode where that keeps float32 accuracy.

    On a CPU with bfloat16 units oneDNN computes a float32 matmul from bfloat16 parts of each value, so with
    float32 inputs, accumulation and output it is float32-accurate and faster (FLOAT32_MATMUL_TOLERANCE
    says by how much, as measured). Whether a CPU and library do that is checked, not assumed: the mode is
    used only if its error on the fit's shapes (:func:`_float32_matmul_error`) is within
    :data:`FLOAT32_MATMUL_TOLERANCE`. The setting is torch's process-wide
    ``torch.backends.mkldnn.matmul.fp32_precision``, restored on exit.

    Args:
        mode: ``auto`` (check, then use the mode if it passes) or ``ieee`` (plain float32).
        device: the fit's device; a GPU always runs plain float32 (TF32 would round).
        dim: feature dimension D.
        cols: columns of the weight (C values run together times classes).

    Yields:
        what the matmuls run as: ``ieee`` or ``onednn-bf16``.

    Raises:
        ValueError: an unknown mode.
    """
    require_float32_matmul(mode)
    settings = getattr(torch.backends.mkldnn, "matmul", None)
    if mode == "ieee" or device.type != "cpu" or settings is None or not torch.backends.mkldnn.is_available():
        yield "ieee"
        return
    before = settings.fp32_precision
    try:
        settings.fp32_precision = "bf16"
        error = _float32_matmul_error(dim, cols, settings.fp32_precision)
        if error > FLOAT32_MATMUL_TOLERANCE:
            log.info("torch probe: oneDNN's bfloat16 math mode rounds float32 matmuls on this CPU (error %.1e of the "
                     "mean entry, tolerance %.0e): plain float32", error, FLOAT32_MATMUL_TOLERANCE)
            settings.fp32_precision = before
            yield "ieee"
            return
        log.debug("torch probe: float32 matmuls in oneDNN's bfloat16 mode (error %.1e of the mean entry)", error)
        yield "onednn-bf16"
    finally:
        settings.fp32_precision = before


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
        if shift is None:
            # Sums about the first chunk's mean keep the variance free of cancellation.
            shift = np.asarray(chunk).mean(axis=0, dtype=np.float64)
            total, squares = np.zeros_like(shift), np.zeros_like(shift)
        # One float32 temporary a chunk (not float64 copies: they were most of the chunked fit's peak memory),
        # its sums accumulated in float64.
        centred = np.subtract(chunk, shift.astype(np.float32), dtype=np.float32)
        total += centred.sum(axis=0, dtype=np.float64)
        squares += np.square(centred, out=centred).sum(axis=0, dtype=np.float64)
        count += len(chunk)
        del centred, chunk
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

    def __init__(self, rows: Rows, *, mean: torch.Tensor, scale: torch.Tensor, device: torch.device) -> None:
        self._mean, self._scale, self._device = mean, scale, device
        self._held: list[torch.Tensor] | None = None
        self._stream = rows
        if isinstance(rows, np.ndarray):
            self._held = [self._prepare(block) for block in _chunks(rows)]

    def _prepare(self, block: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(block, dtype=np.float32), device=self._device)
        # One new tensor (x may share the caller's memory, so it is not changed in place).
        return torch.sub(x, self._mean).div_(self._scale)

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self._held is not None:
            yield from self._held
        else:
            for block in _chunks(self._stream):
                yield self._prepare(block)
                del block
            _release_freed_memory()


def _release_freed_memory() -> None:
    """Hand the freed chunk buffers of a streamed pass back to the OS (glibc's ``malloc_trim``; elsewhere nothing).

    glibc raises its mmap threshold to the size of a freed mmapped block, so after the first pass every
    chunk-sized buffer comes from the heap, and freed heap memory stays resident: without the trim the
    chunked fit's resident set grew by several chunks over the passes.
    """
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: ctypes.CDLL | bool | None = None


def _label_index(labels: np.ndarray, classes: np.ndarray, device: torch.device) -> torch.Tensor:
    """Column index of each label in ``classes``; -1 for a label the training split lacks (never predicted)."""
    labels = np.asarray(labels)
    where = np.clip(np.searchsorted(classes, labels), 0, len(classes) - 1)
    index = np.where(classes[where] == labels, where, -1)
    return torch.as_tensor(index, dtype=torch.long, device=device)


class _SweepObjective:
    """Loss and gradient of K problems (one per C) on the same rows, all from one pass over the features.

    A problem's parameters are one flat vector: its (D, classes) weight, row-major, then its (classes,) bias.
    Loss and gradient are computed by hand (softmax minus one-hot), not by autograd: one exp per logit,
    nothing kept between chunks but the running sums.
    """

    def __init__(self, rows: _DeviceRows, index: torch.Tensor, *, dim: int, classes: int, penalties: torch.Tensor,
                 dtype: torch.dtype) -> None:
        self.rows, self.index, self.dim, self.classes = rows, index, dim, classes
        self.penalties, self.dtype = penalties, dtype
        self.passes = 0

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(D, K * classes) weight and (K * classes,) bias of (K, P) flat parameters."""
        k, d, c = len(params), self.dim, self.classes
        weight = params[:, :d * c].reshape(k, d, c).permute(1, 0, 2).reshape(d, k * c)
        return weight, params[:, d * c:].reshape(k * c)

    def logits(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """(rows, K * classes) float32 logits of one block, already in :attr:`dtype`."""
        if x.dtype == torch.float32:
            return torch.addmm(bias, x, weight)
        return (x @ weight.to(x.dtype)).float().add_(bias)

    def __call__(self, params: torch.Tensor, which: list[int]) -> tuple[np.ndarray, torch.Tensor]:
        """Mean objective and its gradient for the problems ``which`` at their rows of ``params``.

        Args:
            params: (len(which), P) flat parameters.
            which: the problems (indices into the penalties).

        Returns:
            ((len(which),) float64 objectives, (len(which), P) float32 gradients).
        """
        self.passes += 1
        k, d, c = len(which), self.dim, self.classes
        weight, bias = self._split(params)
        grad_weight = torch.zeros(d, k * c, dtype=torch.float32, device=params.device)
        grad_bias = torch.zeros(k * c, dtype=torch.float32, device=params.device)
        loss = torch.zeros(k, dtype=torch.float64, device=params.device)
        start = 0
        for x in self.rows:
            # One cast a block serves both matmuls (casting x.T again was a strided copy).
            x = x.to(self.dtype)
            m = len(x)
            target = self.index[start:start + m].view(m, 1, 1).expand(m, k, 1)
            start += m
            logits = self.logits(x, weight, bias).view(m, k, c)
            picked = logits.gather(2, target).squeeze(2)
            top = logits.amax(dim=2, keepdim=True)
            # One exp serves the log-sum-exp and the softmax: e = exp(z - max), lse = max + log sum e.
            probs = logits.sub_(top).exp_()
            total = probs.sum(dim=2, keepdim=True)
            loss += (torch.log(total).squeeze(2) + top.squeeze(2) - picked).sum(dim=0, dtype=torch.float64)
            # d(log-loss)/d(logits) = softmax - one-hot.
            probs.div_(total).scatter_add_(2, target, torch.full((m, k, 1), -1.0, device=x.device))
            residual = probs.view(m, k * c)
            if x.dtype == torch.float32:
                grad_weight.addmm_(x.T, residual)
            else:
                grad_weight += (x.T @ residual.to(x.dtype)).float()
            grad_bias += residual.sum(dim=0)
            # Let go of this chunk before the next is read (the loop variable would hold it until then).
            del x, logits, probs, residual
        n = max(1, len(self.index))
        penalty = self.penalties[which]
        w = params[:, :d * c]
        objective = loss / n + penalty.double() * w.double().square().sum(dim=1)
        grad = torch.empty_like(params)
        grad[:, :d * c] = grad_weight.view(d, k, c).permute(1, 0, 2).reshape(k, d * c) / n
        grad[:, :d * c] += (2 * penalty)[:, None] * w
        grad[:, d * c:] = grad_bias.view(k, c) / n
        return objective.cpu().numpy(), grad

    def val_accuracy(self, params: torch.Tensor, rows: _DeviceRows, index: torch.Tensor) -> np.ndarray:
        """(K,) accuracy of each problem's parameters on other rows (the val split)."""
        k = len(params)
        weight, bias = self._split(params)
        correct, start = torch.zeros(k, device=params.device), 0
        for x in rows:
            x = x.to(self.dtype)
            target = index[start:start + len(x)]
            start += len(x)
            correct += (self.logits(x, weight, bias).view(len(x), k, self.classes).argmax(dim=2)
                        == target[:, None]).sum(dim=0)
        return (correct / max(1, len(index))).cpu().numpy()


def _direction(grad: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor, float]]) -> torch.Tensor:
    """The L-BFGS direction ``-H grad`` of one problem from its (s, y, 1 / s.y) pairs, oldest first.

    ``H`` is the limited-memory BFGS inverse Hessian with ``H0 = (s.y / y.y) I`` of the newest pair, in
    the compact form of Byrd, Nocedal and Schnabel (1994, eq. 3.1): six matrix products with the stacked
    pairs instead of the two-loop recursion's 4 m dot products (each a synchronisation of the CPU's
    threads or of the GPU). Without pairs the direction is ``-grad`` scaled to unit length (a first step
    of known size; the line search takes it from there).
    """
    if not pairs:
        return grad / -max(float(grad.norm()), 1e-12)
    s_rows = torch.stack([s for s, _, _ in pairs])  # (m, P)
    y_rows = torch.stack([y for _, y, _ in pairs])
    # The small (m, m) algebra in float64 on the host: cheap, and better conditioned than float32.
    sy = (s_rows @ y_rows.T).double().cpu().numpy()
    yy = (y_rows @ y_rows.T).double().cpu().numpy()
    a = (s_rows @ grad).double().cpu().numpy()
    b = (y_rows @ grad).double().cpu().numpy()
    gamma = sy[-1, -1] / yy[-1, -1]
    r = np.triu(sy)
    r_inv_a = np.linalg.solve(r, a)
    top = np.linalg.solve(r.T, (np.diag(np.diag(sy)) + gamma * yy) @ r_inv_a - gamma * b)
    bottom = -r_inv_a
    step = grad * gamma
    step += torch.as_tensor(top, dtype=grad.dtype, device=grad.device) @ s_rows
    step += torch.as_tensor(gamma * bottom, dtype=grad.dtype, device=grad.device) @ y_rows
    return step.neg_()


Evaluated = tuple[np.ndarray, torch.Tensor, np.ndarray]


def _lbfgs_sweep(objective: _SweepObjective, start: torch.Tensor, *, max_iter: int,
                 val: tuple[_DeviceRows, torch.Tensor], evaluated: Evaluated | None = None
                 ) -> tuple[torch.Tensor, np.ndarray, list[int], Evaluated]:
    """Minimise K independent problems by L-BFGS, every evaluation of all of them from one pass over the rows.

    Each problem keeps its own history, step and Armijo backtracking line search (a shared line search
    stalls on problems of different conditioning: benchmarks/RESULTS.md); a pass evaluates every problem
    still running at its own trial point. A problem stops at sklearn's gradient tolerance (largest
    gradient entry of the mean objective <= :data:`GRAD_TOL`), at ``max_iter`` accepted steps, when its
    line search fails (no decrease left at float32 precision), or when its val accuracy has not moved for
    :data:`PATIENCE` checks (every :data:`CHECK_EVERY` steps).

    Args:
        objective: the K problems.
        start: (K, P) starting parameters.
        max_iter: most accepted steps per problem (as sklearn's ``max_iter``).
        val: val rows and their label indices (for the plateau stop).
        evaluated: objectives, gradients and val accuracies at ``start`` if they are known (the warm-started
            sweep derives them from the previous C's last evaluation: :func:`_at_penalty`); None: evaluated here.

    Returns:
        ((K, P) parameters, (K,) val accuracies at them, (K,) accepted steps per problem, and the objectives,
        gradients and val accuracies at the returned parameters).
    """
    k = len(start)
    x = start.clone()
    everyone = list(range(k))
    f, g = objective(x, everyone) if evaluated is None else (evaluated[0].copy(), evaluated[1].clone())
    pairs: list[list[tuple[torch.Tensor, torch.Tensor, float]]] = [[] for _ in everyone]
    iters, plateau, checked, backtracks = [0] * k, [0] * k, [0] * k, [0] * k
    stopped = [float(g[i].abs().max()) <= GRAD_TOL or max_iter < 1 for i in everyone]
    last_val = objective.val_accuracy(x, *val) if evaluated is None else evaluated[2].copy()
    direction = [_direction(g[i], []) for i in everyone]
    # A first step of unit length along -g. (The Newton step of the Hessian at zero weights, about classes * |g|,
    # saved one pass in 15 at D = 2,048 and moved the fit of the least converged C far from scikit-learn's.)
    steps = np.ones(k)
    slope = [float(torch.dot(g[i], direction[i])) for i in everyone]
    running = [i for i in everyone if not stopped[i]]
    lost_precision = False
    parked: set[int] = set()
    while running:
        if objective.dtype != torch.float32:
            parked |= {i for i in running if float(g[i].abs().max()) <= LOW_PRECISION_UNTIL}
            if lost_precision or parked >= set(running):
                # Near the tolerance bfloat16's rounding noise outweighs the gradient and the decrease: finish in
                # float32, from the objective and gradient re-evaluated there (the line search compares like
                # with like).
                objective.dtype = torch.float32
                f[running], g[running] = objective(x[running], running)
                backtracks, parked = [0] * k, set()
        lost_precision = False
        active = [i for i in running if i not in parked]
        trial = torch.stack([x[i] + steps[i] * direction[i] for i in active])
        f_trial, g_trial = objective(trial, active)
        for row, i in enumerate(active):
            if f_trial[row] > f[i] + ARMIJO * steps[i] * slope[i]:
                if backtracks[i] >= (MAX_BACKTRACKS if objective.dtype == torch.float32 else LOW_PRECISION_BACKTRACKS):
                    # no decrease left at this precision
                    if objective.dtype == torch.float32:
                        stopped[i] = True  # keep x
                    else:
                        lost_precision = True
                    continue
                # Too long a step: the minimiser of the quadratic through f, the slope and f_trial, kept within
                # [BACKTRACK_MIN, BACKTRACK_MAX] of the rejected step.
                curvature = 2 * (f_trial[row] - f[i] - steps[i] * slope[i])
                guess = -slope[i] * steps[i] ** 2 / curvature if curvature > 0 else BACKTRACK_MAX * steps[i]
                steps[i] = float(np.clip(guess, BACKTRACK_MIN * steps[i], BACKTRACK_MAX * steps[i]))
                backtracks[i] += 1
                continue
            s, y = trial[row] - x[i], g_trial[row] - g[i]
            sy = float(torch.dot(s, y))
            x[i], f[i], g[i] = trial[row], f_trial[row], g_trial[row]
            iters[i] += 1
            backtracks[i] = 0
            if sy > 1e-10 * float(torch.dot(y, y)):  # keep the inverse-Hessian estimate positive definite
                pairs[i].append((s, y, 1.0 / sy))
                del pairs[i][:-HISTORY]
            direction[i] = _direction(g[i], pairs[i])
            slope[i] = float(torch.dot(g[i], direction[i]))
            if slope[i] >= 0:  # not a descent direction (float32 round-off): restart from the gradient
                pairs[i].clear()
                direction[i] = _direction(g[i], [])
                slope[i] = float(torch.dot(g[i], direction[i]))
            steps[i] = 1.0 if pairs[i] else steps[i]
            # The tolerance is judged in float32 only (a bfloat16 problem near it is parked, then finished).
            converged = objective.dtype == torch.float32 and float(g[i].abs().max()) <= GRAD_TOL
            stopped[i] = converged or iters[i] >= max_iter
        due = [i for i in active if not stopped[i] and iters[i] >= checked[i] + CHECK_EVERY]
        if due:
            accuracy = objective.val_accuracy(x, *val)
            for i in due:
                checked[i] = iters[i]
                plateau[i] = plateau[i] + 1 if abs(accuracy[i] - last_val[i]) <= VAL_PLATEAU else 0
                last_val[i] = accuracy[i]
                stopped[i] = plateau[i] >= PATIENCE
        running = [i for i in running if not stopped[i]]
    accuracy = objective.val_accuracy(x, *val)
    return x, accuracy, iters, (f, g, accuracy)


def _at_penalty(evaluated: Evaluated, params: torch.Tensor, *, weights: int, old: torch.Tensor,
                new: torch.Tensor) -> Evaluated:
    """Objective, gradient and val accuracy at the same parameters under another penalty, without a pass.

    The objectives differ only in ``penalty * ||W||^2`` (the bias is not penalised), so the data term's loss
    and gradient carry over and only the penalty's part changes, by ``(new - old) ||W||^2`` and
    ``2 (new - old) W``; the val accuracy depends on the parameters alone.

    Args:
        evaluated: (K,) objectives, (K, P) gradients and (K,) val accuracies at ``params`` under ``old``.
        params: (K, P) parameters.
        weights: number of weight entries (the first ``weights`` entries of a parameter vector).
        old: (K,) penalties of ``evaluated``.
        new: (K,) penalties wanted.
    """
    objectives, grad, accuracy = evaluated
    w = params[:, :weights]
    change = new - old
    objectives = objectives + (change.double() * w.double().square().sum(dim=1)).cpu().numpy()
    grad = grad.clone()
    grad[:, :weights] += (2 * change)[:, None] * w
    return objectives, grad, accuracy.copy()


def fit_torch_probe(*, train_x: Rows, train_y: np.ndarray, val_x: Rows, val_y: np.ndarray,
                    c_grid: tuple[float, ...], max_iter: int, seed: int, device: str = "auto",
                    matmul_dtype: str = "float32", warm_start: bool = True, threads: int | None = None,
                    float32_matmul: str = "auto") -> ProbeFit:
    """Fit the probe for every C of the sweep; choose C by val accuracy.

    Args:
        train_x: (N, D) training features, or a re-iterable of row chunks (streamed every evaluation).
        train_y: (N,) labels, in the order the rows come (for :class:`~zooprobe.io.h5io.FeatureRowChunks`:
            ascending row index).
        val_x: (N_val, D) validation features, or row chunks.
        val_y: (N_val,) validation labels, in the same order.
        c_grid: inverse regularisation strengths.
        max_iter: most L-BFGS iterations per C (as sklearn's ``max_iter``).
        seed: seeds torch (the fit starts from zero weights, so a CPU fit is the same on every run).
        device: ``auto``, ``cpu`` or ``cuda``.
        matmul_dtype: ``float32``, or ``bfloat16`` for the feature matmuls (weights and sums stay float32).
        warm_start: True (the default): C by C from the strongest regularisation, each started from the
            previous solution (a pass over the features per evaluation of each C). False: the whole sweep in
            one run, every C its own L-BFGS from zero weights, all evaluated in one pass over the features.
        threads: CPU threads of the fit (the job's threads); None keeps torch's setting.
        float32_matmul: ``auto`` (on the CPU, oneDNN's bfloat16 math mode where it is checked to keep float32
            accuracy: :func:`float32_matmuls`) or ``ieee`` (plain float32).

    Returns:
        :class:`~zooprobe.probes.rows.ProbeFit` with a :class:`TorchLinearModel` at the C of the best val
        accuracy (ties: smaller C).

    Raises:
        ValueError: an empty sweep, an unknown device, matmul dtype or float32 matmul mode, no training rows,
            threads below 1.
    """
    if not c_grid:
        raise ValueError("c_grid must name at least one C")
    if matmul_dtype not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype {matmul_dtype!r}: valid choices are {list(MATMUL_DTYPES)}")
    require_float32_matmul(float32_matmul)  # before the features are read, not when the sweep starts
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            return _fit(train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, c_grid=c_grid,
                        max_iter=max_iter, seed=seed, device=device, matmul_dtype=matmul_dtype,
                        warm_start=warm_start, float32_matmul=float32_matmul)
    finally:
        torch.set_num_threads(before)


def _fit(*, train_x: Rows, train_y: np.ndarray, val_x: Rows, val_y: np.ndarray, c_grid: tuple[float, ...],
         max_iter: int, seed: int, device: str, matmul_dtype: str, warm_start: bool, float32_matmul: str) -> ProbeFit:
    """:func:`fit_torch_probe` once its arguments are checked (without autograd, at its thread count)."""
    torch.manual_seed(seed)
    where = resolve_device(device)
    cs = sorted(float(c) for c in c_grid)
    mean, scale = standardisation(train_x)
    to_device = dict(device=where, dtype=torch.float32)
    shift = dict(mean=torch.as_tensor(mean, **to_device), scale=torch.as_tensor(scale, **to_device), device=where)
    train, val = _DeviceRows(train_x, **shift), _DeviceRows(val_x, **shift)
    classes = np.unique(np.asarray(train_y))
    train_index = _label_index(train_y, classes, where)
    val_index = _label_index(val_y, classes, where)
    n, c, d = len(train_index), len(classes), len(mean)
    # Per-C penalty 1 / (2 C N) on ||W_C||^2: sklearn's objective divided by N.
    penalties = torch.tensor([1.0 / (2.0 * value * n) for value in cs], **to_device)
    objective = _SweepObjective(train, train_index, dim=d, classes=c, penalties=penalties,
                                dtype=MATMUL_DTYPES[matmul_dtype])
    size = d * c + c
    with float32_matmuls(float32_matmul, where, dim=d, cols=c if warm_start else c * len(cs)) as matmuls:
        weights, accuracy, steps_taken = _sweep(objective, val=val, val_index=val_index, size=size,
                                                warm_start=warm_start, max_iter=max_iter, to_device=to_device)
    scores = {value: float(acc) for value, acc in zip(cs, accuracy)}
    best = max(range(len(cs)), key=lambda i: (accuracy[i], -i))  # ties: the smaller C, as the sklearn probe
    log.debug("torch probe: val %s after %d passes over the features (steps per C: %s; float32 matmuls: %s)",
              scores, objective.passes, steps_taken, matmuls)
    chosen = weights[best].cpu().numpy().astype(np.float64)
    model = TorchLinearModel(mean=mean, scale=scale, coef=chosen[:d * c].reshape(d, c), intercept=chosen[d * c:],
                             classes=classes)
    return ProbeFit(model=model, c=cs[best], val_accuracy=scores[cs[best]], val_accuracy_by_c=scores,
                    float32_matmul=matmuls)


def _sweep(objective: _SweepObjective, *, val: _DeviceRows, val_index: torch.Tensor, size: int, warm_start: bool,
           max_iter: int, to_device: dict) -> tuple[torch.Tensor, np.ndarray, list[int]]:
    """Every C's parameters, val accuracy and accepted steps: C by C warm-started, or all C in one run."""
    train, train_index, penalties = objective.rows, objective.index, objective.penalties
    d, c = objective.dim, objective.classes
    if warm_start:
        # C by C from the strongest regularisation, each from the previous solution; the objective of the
        # sub-sweep [i] is the full one restricted to penalty i.
        # The previous C's last evaluation, re-expressed for the next penalty, saves each later C its first pass.
        params, accuracy, previous, steps_taken = [], [], torch.zeros(1, size, **to_device), []
        evaluated, evaluated_dtype = None, None
        for i in range(len(penalties)):
            single = _SweepObjective(train, train_index, dim=d, classes=c, penalties=penalties[i:i + 1],
                                     dtype=objective.dtype)
            # Only when the precision matches: the line search must compare like with like.
            start = (_at_penalty(evaluated, previous, weights=d * c, old=penalties[i - 1:i], new=penalties[i:i + 1])
                     if evaluated is not None and evaluated_dtype == single.dtype else None)
            previous, acc, taken, evaluated = _lbfgs_sweep(single, previous, max_iter=max_iter,
                                                           val=(val, val_index), evaluated=start)
            evaluated_dtype = single.dtype
            params.append(previous)
            accuracy.append(acc)
            objective.passes += single.passes
            steps_taken += taken
        return torch.cat(params), np.concatenate(accuracy), steps_taken
    weights, accuracy, steps_taken, _ = _lbfgs_sweep(objective, torch.zeros(len(penalties), size, **to_device),
                                                     max_iter=max_iter, val=(val, val_index))
    return weights, accuracy, steps_taken
