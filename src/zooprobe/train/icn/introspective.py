"""Introspective classification: reclassification-by-synthesis (Jin, Lazarow & Tu, 2017).

One network is both classifier and generator. Each round, pseudo-negatives are synthesised by
Langevin dynamics on the input (:func:`langevin`), drawn from the distribution that the current
classifier defines, ``p(x | class k) ∝ exp(score_k(x) / T)`` on the valid box, and join the
training set as negatives with hard labels; the classifier then goes on training on the real
data plus every pseudo-negative so far. By default each round's chains continue from the
previous round's samples (persistent chains, ``init: previous``).

**Output layout: K+1 softmax outputs**, the K classes plus "pseudo-negative" (index K), rather
than K one-vs-all heads. Reasons:

- the class decision stays an ordinary softmax over the first K logits, so the trained network
  is a normal zoo model once the negative output is cut off (``models.drop_negative_output``);
- the baseline is the *same* network and loss trained with zero rounds, so a comparison isolates
  the pseudo-negatives, and 0 rounds reproduces the baseline bit for bit (tested);
- ``logit_k - logit_neg = log p(k | x) / p(neg | x)`` is the log density ratio that the paper's
  sampler climbs for class k, so one forward pass gives every class's score.

The baseline's (K+1)-th output never sees an example; it is pushed down by the softmax and does
not take part in the class decision.

**Budget.** The rounds sit at evenly spaced epoch boundaries of the shared recipe, so the ICN
and its baseline make the same passes over the real data with the same learning-rate schedule
and seed; the ICN also trains on its negatives and pays for sampling (both timed).

The same machinery probes frozen features (:func:`fit_feature_probe`): a linear or MLP head with
K+1 outputs whose pseudo-negatives are synthesised in (standardised) feature space.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from zooprobe.data.imageset import ImageSet
from zooprobe.params.sections import section_from_config

log = logging.getLogger(__name__)

SAMPLER_INITS: tuple[str, ...] = ("previous", "noise")
PROBE_HEADS: tuple[str, ...] = ("linear", "mlp")
FGSM_EPSILONS_255: tuple[int, ...] = (1, 2, 4)  # FGSM budgets in 1/255 pixel units
SAMPLE_BATCH = 256  # images per Langevin chunk: bounds memory, whatever samples_per_class is


@dataclass(frozen=True)
class SamplerSettings:
    """Langevin dynamics on the input: ``x <- clip(x + step_size * grad score + sqrt(2 step_size T) * N(0, 1))``.

    With the noise tied to the step this way the chain's stationary distribution (as the step
    goes to 0) is ``∝ exp(score(x) / T)`` restricted to the clamping box, so the samples are
    draws from the classifier-defined distribution, not points near its modes.

    Attributes:
        steps: Langevin steps per round.
        step_size: gradient step (pixels in [0, 1]; standardised units for feature probes).
        temperature: T; 1 samples the model's own distribution, lower values concentrate the
            samples on high scores (the old independent noise ``sigma`` at step ``s`` is
            ``T = sigma**2 / (2 s)``).
        init: ``previous`` (persistent chains: each round continues from the previous round's
            samples of the same class; the first round starts from noise) or ``noise`` (every
            round restarts from Gaussian noise with the real data's mean and sd).
    """

    steps: int = 30
    step_size: float = 0.01
    temperature: float = 1.0
    init: str = "previous"

    def __post_init__(self) -> None:
        if self.init not in SAMPLER_INITS:
            raise ValueError(f"sampler init {self.init!r} is not one of {list(SAMPLER_INITS)}")
        if self.steps < 0 or self.step_size < 0 or self.temperature < 0:
            raise ValueError(f"sampler steps, step_size and temperature must be >= 0, got {self}")

    @property
    def noise_sd(self) -> float:
        """Standard deviation of each step's Gaussian noise, ``sqrt(2 step_size T)``."""
        return math.sqrt(2.0 * self.step_size * self.temperature)

    @classmethod
    def from_config(cls, section: Mapping[str, Any], *, name: str) -> "SamplerSettings":
        """Build from a ``sampler`` params section; the removed ``noise`` key fails with its replacement.

        Args:
            section: the mapping from params.yaml.
            name: the section's name, for the error message.

        Returns:
            The settings. Unknown keys fail with the valid ones.
        """
        if "noise" in section:
            step = section.get("step_size", cls.step_size)
            hint = (f" (noise {section['noise']} at step_size {step} is temperature "
                    f"{float(section['noise']) ** 2 / (2 * float(step)):.3g})" if step else "")
            raise ValueError(f"{name}: 'noise' was replaced by 'temperature': the sampler is Langevin dynamics, "
                             f"whose noise sd is sqrt(2 * step_size * temperature); an independent noise sd "
                             f"sigma is temperature sigma**2 / (2 * step_size){hint}")
        return section_from_config(cls, section, name=name)


@dataclass(frozen=True)
class IntrospectiveSettings:
    """Reclassification-by-synthesis for a model trained from scratch (``introspective.model``).

    Attributes:
        rounds: synthesis rounds, at evenly spaced epoch boundaries (must be < ``train.epochs``).
        samples_per_class: pseudo-negatives synthesised per class per round (M).
        grid_per_class: samples per class kept for the per-round grid.
        sampler: the Langevin sampler's settings.
    """

    rounds: int = 2
    samples_per_class: int = 20
    grid_per_class: int = 4
    sampler: SamplerSettings = field(default_factory=SamplerSettings)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "IntrospectiveSettings":
        """Build from ``introspective.model``; unknown keys fail with the valid ones."""
        values = dict(section)
        sampler = SamplerSettings.from_config(values.pop("sampler", {}), name="introspective.model.sampler")
        return replace(section_from_config(cls, values, name="introspective.model"), sampler=sampler)


def round_epochs(rounds: int, epochs: int) -> list[int]:
    """Epochs before which a round synthesises: evenly spaced, never before the first epoch.

    Args:
        rounds: number of rounds.
        epochs: epochs of the recipe.

    Returns:
        ``rounds`` distinct epoch indices in ``[1, epochs)``.
    """
    if rounds < 0 or (rounds and rounds >= epochs):
        raise ValueError(f"introspective rounds ({rounds}) must be between 0 and train.epochs - 1 ({epochs - 1}): "
                         f"each round sits at an epoch boundary after the first epoch; raise train.epochs or "
                         f"lower the rounds")
    return [r * epochs // (rounds + 1) for r in range(1, rounds + 1)]


def class_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``logit_target - logit_negative``: the log ratio p(target | x) / p(pseudo-negative | x).

    Args:
        logits: (n, K+1) with the pseudo-negative output last.
        targets: (n,) class indices in ``[0, K)``.

    Returns:
        (n,) scores.
    """
    return logits.gather(1, targets[:, None])[:, 0] - logits[:, -1]


def langevin(score: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, settings: SamplerSettings, *,
             low: torch.Tensor | float | None, high: torch.Tensor | float | None,
             generator: torch.Generator) -> torch.Tensor:
    """Run Langevin chains on ``score`` (the unnormalised log density) from ``start``.

    Each step is ``x <- clip(x + step_size * grad score(x) + sqrt(2 step_size T) * eps, low, high)``
    with ``eps ~ N(0, I)`` (the unadjusted Langevin algorithm; the gradient is exact, not a
    minibatch estimate). Its stationary distribution approaches ``∝ exp(score / T)`` on the box as
    the step shrinks; clamping is the projection onto the box.

    Args:
        score: maps a batch to one log density (up to a constant) per row.
        start: initial batch, one chain per row (its device is used throughout).
        settings: steps, step size and temperature.
        low: lower bound of valid values (a float, or a tensor broadcastable to a row); None for none.
        high: upper bound; None for none.
        generator: CPU generator of the noise, so samples do not depend on the device.

    Returns:
        The final batch, detached.
    """
    x = start.detach().clone()
    noise_sd = settings.noise_sd
    for _ in range(settings.steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(score(x).sum(), x)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x.detach() + settings.step_size * grad + noise_sd * noise
        if low is not None or high is not None:
            x = torch.clamp(x, low, high)
    return x.detach()


def tile_grid(samples: np.ndarray) -> np.ndarray:
    """Lay (K, g, H, W, C) images out as one (K*(H+1)-1, g*(W+1)-1, C) uint8 grid, a class per row."""
    k, g, h, w, c = samples.shape
    grid = np.full((k * (h + 1) - 1, g * (w + 1) - 1, c), 255, dtype=np.uint8)
    for row in range(k):
        for col in range(g):
            grid[row * (h + 1):row * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = samples[row, col]
    return grid


class PixelSynthesiser:
    """The per-epoch hook of :func:`zooprobe.train.recipe.train_model` that runs the synthesis rounds.

    Before each round's epoch it draws ``samples_per_class`` images per class by Langevin
    dynamics on the class score, clamped to [0, 1] (from the previous round's samples with
    ``init: previous``), keeps a grid of them and returns them as new negatives.
    """

    def __init__(self, settings: IntrospectiveSettings, *, epochs: int, num_classes: int, real: np.ndarray,
                 seed: int) -> None:
        self.settings = settings
        self.epochs = round_epochs(settings.rounds, epochs)
        self.num_classes = num_classes
        pixels = torch.from_numpy(real).float().div(255.0)
        self.image_shape = tuple(real.shape[1:])
        # Starting noise matches the real images' per-channel mean and sd.
        self.mean, self.std = pixels.mean(dim=(0, 1, 2)), pixels.std(dim=(0, 1, 2))
        self.generator = torch.Generator().manual_seed(seed)
        self.previous: torch.Tensor | None = None
        self.grids: list[np.ndarray] = []
        self.rounds: list[dict[str, float]] = []

    def targets(self) -> torch.Tensor:
        return torch.arange(self.num_classes).repeat_interleave(self.settings.samples_per_class)

    def __call__(self, epoch: int, model: torch.nn.Module, preprocess: Callable[[torch.Tensor], torch.Tensor]
                 ) -> torch.Tensor | None:
        if epoch not in self.epochs:
            return None
        started = time.perf_counter()
        targets = self.targets()
        if self.settings.sampler.init == "previous" and self.previous is not None:
            start = self.previous
        else:
            noise = torch.randn((len(targets), *self.image_shape), generator=self.generator)
            start = (self.mean + self.std * noise).clamp(0, 1)
        device = next(model.parameters()).device
        model.eval()
        samples, before, after = [], [], []
        for chunk in range(0, len(targets), SAMPLE_BATCH):
            y = targets[chunk:chunk + SAMPLE_BATCH].to(device)

            def score(x: torch.Tensor, y: torch.Tensor = y) -> torch.Tensor:
                return class_scores(model(preprocess(x)), y)

            x0 = start[chunk:chunk + SAMPLE_BATCH].to(device)
            x = langevin(score, x0, self.settings.sampler, low=0.0, high=1.0, generator=self.generator)
            with torch.no_grad():
                before.append(score(x0).cpu())
                after.append(score(x).cpu())
            samples.append(x.cpu())
        synthesised = torch.cat(samples)
        self.previous = synthesised
        keep = min(self.settings.grid_per_class, self.settings.samples_per_class)
        per_class = synthesised.view(self.num_classes, self.settings.samples_per_class, *self.image_shape)[:, :keep]
        self.grids.append(tile_grid((per_class.numpy() * 255).round().astype(np.uint8)))
        self.rounds.append({"round": len(self.rounds) + 1, "epoch": epoch, "samples": len(targets),
                            "score_before": float(torch.cat(before).mean()),
                            "score_after": float(torch.cat(after).mean())})
        # Timings go to the log only: a rerun must write the same bytes.
        log.info("round %d before epoch %d: class score %.2f -> %.2f over %d samples in %.1f s", len(self.rounds),
                 epoch + 1, self.rounds[-1]["score_before"], self.rounds[-1]["score_after"], len(targets),
                 time.perf_counter() - started)
        return synthesised


def train_introspective(spec: Any, data: ImageSet, recipe: Any, settings: IntrospectiveSettings, *,
                        threads: int = 1, progress: bool = True) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Train ``spec``'s architecture from scratch as an introspective classifier.

    Args:
        spec: a ``trained`` zoo entry (its ``introspective:`` prefix, if any, is implied here).
        data: image set; ``train`` is fitted, ``val`` scored after each epoch.
        recipe: the shared :class:`zooprobe.train.recipe.Recipe` (same as the baseline's).
        settings: rounds and sampler.
        threads: torch CPU threads.
        progress: show a progress bar.

    Returns:
        The checkpoint (K+1 outputs; ``negative_class`` = K; ``sample_grids``, one uint8 grid per
        round; ``rounds``, the sampler's log; ``introspective_settings``, rounds and sampler with
        defaults filled in) and the per-epoch history.
    """
    from zooprobe.train.recipe import train_model

    train = data.subset("train")
    synthesiser = PixelSynthesiser(settings, epochs=recipe.epochs, num_classes=len(data.class_names),
                                   real=train.images, seed=recipe.seed + spec.seed + 1)
    checkpoint, history = train_model(spec, data, recipe, threads=threads, progress=progress,
                                      negative_output=True, synthesise=synthesiser)
    checkpoint["negative_class"] = len(data.class_names)
    checkpoint["sample_grids"] = [torch.from_numpy(grid) for grid in synthesiser.grids]
    checkpoint["rounds"] = [dict(r) for r in synthesiser.rounds]
    # Provenance: the settings in force, defaults filled in (the sampler's kind is implied: Langevin).
    checkpoint["introspective_settings"] = asdict(settings)
    return checkpoint, history


# ----------------------------------------------------------------------------- evaluation
def _batches(n: int, size: int = 256) -> range:
    return range(0, n, size)


def error_rate(model: torch.nn.Module, preprocess: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray,
               labels: np.ndarray, *, num_classes: int) -> float:
    """Top-1 error over the first ``num_classes`` logits (the pseudo-negative output is ignored)."""
    model.eval()
    device = next(model.parameters()).device
    wrong = 0
    with torch.no_grad():
        for start in _batches(len(labels)):
            logits = model(preprocess(torch.from_numpy(images[start:start + 256]).to(device)))[:, :num_classes]
            wrong += int((logits.argmax(1).cpu().numpy() != labels[start:start + 256]).sum())
    return wrong / max(1, len(labels))


def fgsm_error(model: torch.nn.Module, preprocess: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray,
               labels: np.ndarray, *, epsilon: float, num_classes: int) -> float:
    """Top-1 error under FGSM (Goodfellow et al. 2015) with budget ``epsilon`` in [0, 1] pixel units.

    The attack steps along the sign of the cross-entropy gradient over the K class logits, then
    clamps to the valid pixel range.
    """
    model.eval()
    device = next(model.parameters()).device
    wrong = 0
    for start in _batches(len(labels)):
        x = torch.from_numpy(images[start:start + 256]).to(device).float().div(255.0).requires_grad_(True)
        y = torch.from_numpy(labels[start:start + 256]).to(device)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(preprocess(x))[:, :num_classes], y), x)
        with torch.no_grad():
            attacked = (x + epsilon * grad.sign()).clamp(0, 1)
            wrong += int((model(preprocess(attacked))[:, :num_classes].argmax(1) != y).sum())
    return wrong / max(1, len(labels))


def evaluate(model: torch.nn.Module, preprocess: Callable[[torch.Tensor], torch.Tensor], test: ImageSet,
             ood: Mapping[str, ImageSet], *, epsilons_255: Sequence[int] = FGSM_EPSILONS_255) -> dict[str, float]:
    """Test error, error on each OOD set and FGSM error at each budget.

    Args:
        model: classifier whose first K logits are the classes.
        preprocess: its preprocessing.
        test: the ID test examples.
        ood: OOD sets by name (all their examples are scored).
        epsilons_255: FGSM budgets in 1/255 units.

    Returns:
        ``{"test_error": .., "ood_error:<name>": .., "fgsm_error:<eps>/255": ..}``.
    """
    k = len(test.class_names)
    scores = {"test_error": error_rate(model, preprocess, test.images, test.labels, num_classes=k)}
    for name, shifted in ood.items():
        scores[f"ood_error:{name}"] = error_rate(model, preprocess, shifted.images, shifted.labels, num_classes=k)
    for eps in epsilons_255:
        scores[f"fgsm_error:{eps}/255"] = fgsm_error(model, preprocess, test.images, test.labels,
                                                     epsilon=eps / 255.0, num_classes=k)
    return scores


# ----------------------------------------------------------------------------- feature-space probe
@dataclass(frozen=True)
class FeatureProbeSettings:
    """An introspective probe on frozen features (``introspective.probe``).

    Attributes:
        head: ``linear`` or ``mlp`` (one hidden layer of ``hidden`` units).
        hidden: MLP width.
        epochs: passes over the training features.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: minibatch size.
        rounds: synthesis rounds (0 is the plain probe); evenly spaced epoch boundaries.
        samples_per_class: pseudo-negatives per class per round.
        sampler: Langevin dynamics in standardised feature space, clamped to the training features' range.
    """

    head: str = "linear"
    hidden: int = 256
    epochs: int = 60
    lr: float = 0.01
    weight_decay: float = 1e-4
    batch_size: int = 256
    rounds: int = 2
    samples_per_class: int = 50
    sampler: SamplerSettings = field(default_factory=lambda: SamplerSettings(steps=30, step_size=0.1))

    def __post_init__(self) -> None:
        if self.head not in PROBE_HEADS:
            raise ValueError(f"introspective probe head {self.head!r} is not one of {list(PROBE_HEADS)}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "FeatureProbeSettings":
        """Build from ``introspective.probe`` (minus its task and seed lists)."""
        values = {key: value for key, value in section.items() if key not in ("tasks", "seeds")}
        sampler = SamplerSettings.from_config(values.pop("sampler", {}), name="introspective.probe.sampler")
        return replace(section_from_config(cls, values, name="introspective.probe"), sampler=sampler)


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
    log: list[dict[str, float]] = []
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
                log.append({"round": len(log) + 1, "epoch": epoch, "score_before": float(score(start).mean()),
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
    return FeatureProbe(mean=mean, std=std, head=head, num_classes=num_classes, rounds=log)


def summarise_paired(baseline: Sequence[float], introspective: Sequence[float]) -> dict[str, float | str]:
    """Mean and sd of each arm, and the paired difference (ICN - baseline) with a 95% t interval.

    Args:
        baseline: one value per seed, lower is better (an error).
        introspective: the ICN's values for the same seeds, in the same order.

    Returns:
        Means, sds, the mean difference, its interval and the paired t-test's two-sided ``p``
        (scipy's ``ttest_rel``). The verdict comes later, from the Holm-adjusted p over the family
        (:func:`add_verdicts`).
    """
    from scipy import stats

    a, b = np.asarray(baseline, dtype=float), np.asarray(introspective, dtype=float)
    if a.shape != b.shape or len(a) == 0:
        raise ValueError(f"paired values need the same seeds: {len(a)} baseline against {len(b)} ICN")
    n = len(a)
    nan = float("nan")
    if n > 1 and np.ptp(b - a) > 0:
        test = stats.ttest_rel(b, a)
        low, high = (float(x) for x in test.confidence_interval(0.95))
        p = float(test.pvalue)
    else:  # one seed, or the same difference on every seed: no spread to test against
        low, high, p = nan, nan, nan
    return {"baseline_mean": float(a.mean()), "baseline_sd": float(a.std(ddof=1)) if n > 1 else nan,
            "icn_mean": float(b.mean()), "icn_sd": float(b.std(ddof=1)) if n > 1 else nan,
            "diff_mean": float((b - a).mean()), "diff_low": low, "diff_high": high, "p": p, "n_seeds": n}


def add_verdicts(verdicts: list[dict[str, Any]], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Holm-adjust the paired p-values within each experiment's family and name each verdict.

    ``helped`` (the ICN's error is lower) or ``hurt`` when the Holm-adjusted p is below ``alpha``,
    else ``no clear difference``.
    """
    from zooprobe.analysis.stats import holm

    out = [dict(v) for v in verdicts]
    for experiment in {v["experiment"] for v in out}:
        family = [v for v in out if v["experiment"] == experiment]
        for v, adjusted in zip(family, holm([v["p"] for v in family])):
            v["p_holm"] = float(adjusted)
            v["family_size"] = len(family)
            significant = np.isfinite(adjusted) and adjusted < alpha
            v["verdict"] = ("helped" if v["diff_mean"] < 0 else "hurt") if significant else "no clear difference"
    return out


# ----------------------------------------------------------------------------- experiments
def compare_from_scratch(spec: Any, data: ImageSet, ood: Mapping[str, ImageSet], recipe: Any,
                         settings: IntrospectiveSettings, *, epsilons_255: Sequence[int] = FGSM_EPSILONS_255,
                         threads: int = 1) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Train the baseline and the ICN of one architecture with one seed, and score both.

    The baseline is the same (K+1)-output network trained by the same code with zero rounds.

    Args:
        spec: the architecture as a ``trained`` :class:`zooprobe.zoo.models.ModelSpec` (its seed is the run's).
        data: the ID set (``train``, ``val``, ``test`` splits).
        ood: shifted sets with the same classes.
        recipe: the shared recipe.
        settings: the ICN's rounds and sampler.
        epsilons_255: FGSM budgets.
        threads: torch CPU threads.

    Returns:
        ``{"baseline": {...}, "icn": {...}}`` with each arm's scores and history (the
        ICN's also its rounds), and the ICN's sample grid of each round.
    """
    from zooprobe.zoo.models import build_timm, preprocessing_of
    from zooprobe.train.recipe import train_model

    result: dict[str, Any] = {}
    grids: list[np.ndarray] = []
    test = data.subset("test")
    for arm in ("baseline", "icn"):
        started = time.perf_counter()
        if arm == "baseline":
            checkpoint, history = train_model(spec, data, recipe, threads=threads, progress=False,
                                               negative_output=True)
        else:
            checkpoint, history = train_introspective(spec, data, recipe, settings, threads=threads, progress=False)
            grids = [grid.numpy() for grid in checkpoint["sample_grids"]]
        log.info("%s %s trained in %.1f s", arm, spec.name, time.perf_counter() - started)  # in the log, not the result
        model = build_timm(spec, num_classes=len(data.class_names) + 1)
        model.load_state_dict(checkpoint["state_dict"])
        torch.set_num_threads(threads)
        scores = evaluate(model, preprocessing_of(model), test, ood, epsilons_255=epsilons_255)
        result[arm] = {"scores": scores, "history": [{k: v for k, v in h.items() if k != "seconds"} for h in history],
                       "weights_sha256": checkpoint["weights_sha256"], "rounds": checkpoint.get("rounds", [])}
    return result, grids


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


def icn_tables(compare: Sequence[Mapping[str, Any]], probes: Sequence[Mapping[str, Any]]) -> tuple[Any, dict[str, Any]]:
    """Tidy every ICN score and give a verdict per dataset, architecture (or model) and metric.

    Args:
        compare: ``icn-compare`` results, one per dataset, architecture and seed.
        probes: ``icn-probe`` results, one per model and task.

    Returns:
        A tidy DataFrame (``experiment, dataset, model, layer, seed, method, metric, value``) and
        ``{"verdicts": [...]}``: for each group, :func:`summarise_paired` over seeds of the error
        (lower is better), its verdict on the Holm-adjusted p within the experiment (:func:`add_verdicts`). A probe's layer is the one where the plain probe's mean val accuracy is
        highest, the same layer for both methods.
    """
    import pandas as pd

    rows = []
    for result in compare:
        for method in ("baseline", "icn"):
            arm = result[method]
            for metric, value in arm["scores"].items():
                rows.append({"experiment": "from_scratch", "dataset": result["dataset"], "model": result["arch"],
                             "layer": "", "seed": result["seed"], "method": method, "metric": metric,
                             "value": value})
    for probe in probes:
        for row in probe["rows"]:
            method = "baseline" if row["method"] == "plain" else "icn"
            pairs = [("val_error", 1 - row["val_accuracy"])] + [
                (f"test_error" if name == probe["id_eval"] else f"ood_error:{name}", 1 - acc)
                for name, acc in row["accuracy"].items()]
            for metric, value in pairs:
                rows.append({"experiment": "probe", "dataset": probe["task"], "model": probe["model"],
                             "layer": row["layer"], "seed": row["seed"], "method": method, "metric": metric,
                             "value": value})
    table = pd.DataFrame(rows, columns=["experiment", "dataset", "model", "layer", "seed", "method", "metric",
                                        "value"])
    verdicts = []
    for (experiment, dataset, model), group in table.groupby(["experiment", "dataset", "model"], sort=True):
        if experiment == "probe":
            val = group[(group.metric == "val_error") & (group.method == "baseline")]
            layer = val.groupby("layer").value.mean().idxmin()
            group = group[group.layer == layer]
        else:
            layer = ""
        for metric in [m for m in group.metric.unique() if m != "val_error"]:
            arms = group[group.metric == metric].pivot(index="seed", columns="method", values="value").dropna()
            verdicts.append(dict(summarise_paired(arms["baseline"], arms["icn"]), experiment=experiment,
                                 dataset=dataset, arch=model, layer=layer, metric=metric))
    return table, {"verdicts": add_verdicts(verdicts)}
