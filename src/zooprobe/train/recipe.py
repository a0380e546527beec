"""From-scratch training with one recipe for every architecture (the ImageNot protocol).

Salaudeen & Hardt (2024) compare architectures trained with an identical recipe, so that
ranking differences come from the architecture, not from per-model tuning. Every knob of
the recipe is a field of :class:`zooprobe.params.settings.Recipe` and comes from the ``train``
section of the params.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from zooprobe.data.imageset import ImageSet
from zooprobe.params.settings import Recipe
from zooprobe.params.spec import ModelSpec
from zooprobe.zoo.checkpoints import state_dict_sha256
from zooprobe.zoo.devices import pick_device
from zooprobe.zoo.factory import build_timm, preprocessing_of


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to 1/8 of the side (reflect-padded crop): cheap and label-safe."""
    n, h, w, _ = images.shape
    pad = max(1, h // 8)
    padded = F.pad(images.permute(0, 3, 1, 2).float(), (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, padded.shape[1], h, padded.shape[3])
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, padded.shape[1], h, w)
    return cropped.gather(3, cols).permute(0, 2, 3, 1).round().to(torch.uint8)


# Called before each epoch with (epoch, model, preprocess); returns new negative images (float
# (n, H, W, C) in [0, 1]) to add to the training set for good, or None.
NegativeSynthesiser = Callable[[int, torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]], "torch.Tensor | None"]


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, *, num_classes: int, label_smoothing: float,
                        negative_output: bool) -> torch.Tensor:
    """Mean cross-entropy of a batch; label smoothing touches real examples only.

    Without a pseudo-negative output this is ``F.cross_entropy`` with ``label_smoothing``, as
    always. With one (introspective training, and its 0-round baseline), a real example's
    target is smoothed over the K classes only (``1 - s + s/K`` on its class, ``s/K`` on the
    others, 0 on pseudo-negative: a real image is never a negative), and a pseudo-negative
    (label K) has the hard target, as Jin et al. (2017) train them.

    Args:
        logits: (n, K) or, with ``negative_output``, (n, K+1).
        labels: (n,) class indices; K marks a pseudo-negative.
        num_classes: K.
        label_smoothing: s, the recipe's smoothing of real labels.
        negative_output: whether the last logit is the pseudo-negative output.

    Returns:
        The scalar mean loss over the batch.
    """
    if not negative_output:
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    log_probs = logits.log_softmax(dim=1)
    hard = -log_probs.gather(1, labels[:, None])[:, 0]
    real = labels < num_classes
    if label_smoothing == 0 or not bool(real.any()):
        return hard.mean()
    # For real rows: -(1 - s) log p_y - (s / K) sum_{k < K} log p_k.
    uniform = -log_probs[:, :num_classes].mean(dim=1)
    smoothed = (1 - label_smoothing) * hard + label_smoothing * uniform
    return torch.where(real, smoothed, hard).mean()


def train_model(spec: ModelSpec, data: ImageSet, recipe: Recipe, *, threads: int = 1, progress: bool = True,
                negative_output: bool = False, synthesise: NegativeSynthesiser | None = None,
                ) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Train ``spec``'s architecture from scratch on the ``train`` split of ``data``.

    Args:
        spec: zoo entry with source ``trained``.
        data: image set; its ``train`` split is used, ``val`` is scored after each epoch.
        recipe: the shared recipe.
        threads: torch CPU threads.
        progress: show a tqdm bar (on stderr, so it lands in the rule's log).
        negative_output: give the classifier a (K+1)-th output, "pseudo-negative" (class index K).
        synthesise: introspective training (:mod:`zooprobe.train.icn.sampler`): before each epoch, its
            images join the training set labelled K. The real data's schedule is unchanged, so an
            epoch is still one pass over the real data (plus the negatives so far).

    Returns:
        A checkpoint dict (``state_dict``, ``num_classes``, ``provenance``) that loads with
        ``torch.load(weights_only=True)``, and the per-epoch history.
    """
    torch.set_num_threads(threads)
    device = pick_device(recipe.device)
    # The model's seed shifts the recipe's, so sweep seeds change both initialisation and data order.
    torch.manual_seed(recipe.seed + spec.seed)
    generator = torch.Generator().manual_seed(recipe.seed + spec.seed)
    num_classes = len(data.class_names)
    # Initialised on the CPU, then moved, so the same seed gives the same start on any device.
    model = build_timm(spec, num_classes=num_classes + int(negative_output)).to(device)
    preprocess = preprocessing_of(model)
    train, val = data.subset("train"), data.subset("val")
    x_train, y_train = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    steps_per_epoch = math.ceil(len(y_train) / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    warmup = max(1, int(recipe.warmup_fraction * total))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)

    def lr_factor(step: float) -> float:
        # Linear warmup then cosine decay, over real-data steps, so the schedule is independent of epochs.
        return min((step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup)))))

    negatives = torch.empty((0, *x_train.shape[1:]), dtype=torch.float32)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    bar = tqdm(total=total, desc=f"train {spec.name}", disable=not progress, mininterval=2)
    for epoch in range(recipe.epochs):
        if synthesise is not None:
            new = synthesise(epoch, model, preprocess)
            if new is not None:
                negatives = torch.cat([negatives, new.detach().float().cpu()])
        model.train()
        n_real, n_all = len(y_train), len(y_train) + len(negatives)
        order = torch.randperm(n_all, generator=generator)
        steps_this_epoch = math.ceil(n_all / recipe.batch_size)
        running = 0.0
        for batch, start in enumerate(range(0, n_all, recipe.batch_size)):
            # With negatives an epoch has more steps; the schedule advances by real-data progress.
            step = epoch * steps_per_epoch + batch * steps_per_epoch / steps_this_epoch
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * lr_factor(step)
            index = order[start:start + recipe.batch_size]
            real, fake = index[index < n_real], index[index >= n_real] - n_real
            # Sampling and augmentation stay on the CPU generator, so data order does not depend on the device.
            images = _augment(x_train[real], generator) if recipe.augment else x_train[real]
            inputs, labels = preprocess(images.to(device)), y_train[real]
            if len(fake):
                inputs = torch.cat([inputs, preprocess(negatives[fake].to(device))])
                labels = torch.cat([labels, torch.full((len(fake),), num_classes, dtype=labels.dtype)])
            loss = classification_loss(model(inputs), labels.to(device), num_classes=num_classes,
                                       label_smoothing=recipe.label_smoothing, negative_output=negative_output)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += float(loss.detach()) * len(index)
            bar.update(steps_per_epoch / steps_this_epoch)
        val_acc = top1(model, preprocess, val.images, val.labels, num_classes=num_classes).accuracy \
            if len(val.labels) else float("nan")
        history.append({"epoch": epoch + 1, "train_loss": running / n_all, "val_accuracy": val_acc,
                        "negatives": len(negatives), "seconds": time.perf_counter() - started})
        bar.set_postfix(loss=f"{running / len(order):.3f}", val_acc=f"{val_acc:.3f}")
    bar.close()
    model.eval().cpu()
    checkpoint = {"state_dict": model.state_dict(), "num_classes": num_classes + int(negative_output),
                  "weights_sha256": state_dict_sha256(model), "recipe": asdict(recipe),
                  # Without the wall-clock seconds, so that a rerun writes the same bytes.
                  "history": [{k: v for k, v in h.items() if k != "seconds"} for h in history]}
    return checkpoint, history


@dataclass(frozen=True)
class Top1:
    """How many of ``n`` examples the model's own head classified right."""

    correct: int
    n: int

    @property
    def accuracy(self) -> float:
        """Share right (0 for no examples)."""
        return self.correct / max(1, self.n)

    @property
    def error(self) -> float:
        """Share wrong (0 for no examples), counted, so that it is exact, not ``1 - accuracy``."""
        return (self.n - self.correct) / max(1, self.n)


@torch.inference_mode()
def top1(model: torch.nn.Module, preprocess: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray,
         labels: np.ndarray, *, num_classes: int, batch_size: int = 256) -> Top1:
    """Top-1 decisions of ``model``'s own head over its first ``num_classes`` logits.

    Only the dataset's classes compete: an introspective classifier's pseudo-negative output is ignored.

    Args:
        model: the classifier (put in eval mode here).
        preprocess: its preprocessing of uint8 (N, H, W, C) images.
        images: uint8 (N, H, W, C) images.
        labels: (N,) class indices.
        num_classes: K, the dataset's classes.
        batch_size: images per forward pass.

    Returns:
        The count of right decisions out of N.
    """
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = model(preprocess(torch.from_numpy(images[start:start + batch_size]).to(device)))[:, :num_classes]
        correct += int((logits.argmax(1).cpu().numpy() == labels[start:start + batch_size]).sum())
    return Top1(correct=correct, n=len(labels))
