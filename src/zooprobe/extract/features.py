"""Layer-wise feature extraction: uint8 images in, pooled (N, D) features per layer out.

The pipeline keeps the device busy and host memory bounded for any dataset size:

* a ``DataLoader`` (worker processes, pinned memory) reads whole uint8 batches from HDF5;
* the uint8 batch crosses to the device (4x fewer bytes than float), and resizing and
  normalising run there;
* one forward pass yields every requested layer, optionally under bf16/fp16 autocast and
  with channels-last memory layout;
* pooled features are copied back asynchronously and a background thread writes them to
  HDF5 batch by batch, while the device already runs the next batch. At most a few batches
  are in flight, so host memory grows with the batch size, not with N.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from zooprobe.params.settings import ExtractSettings
from zooprobe.workflow.allocation import allocated_cpus
from zooprobe.zoo.extractors import Extractor
from zooprobe.zoo.pooling import pool, spatial_map

# The autocast dtype of each precision in zooprobe.params.settings.PRECISIONS (fp32: none).
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Batches waiting for the writer thread; bounds host memory at a few batches.
WRITE_QUEUE_DEPTH = 2
# Batches each loader worker reads ahead.
PREFETCH_PER_WORKER = 2


def loader_workers(settings: ExtractSettings, device: torch.device, *, threads: int | None = None) -> int:
    """Loader worker processes to use on ``device``.

    Args:
        settings: the extract settings (``num_workers``: a count, or ``auto``).
        device: where the forward pass runs.
        threads: the job's threads (the rule's ``threads``), used where no SLURM allocation says more.

    Returns:
        ``num_workers``, or for ``auto`` 0 on the CPU (the forward pass needs every core) and up
        to 4 on a GPU, leaving one of the job's CPUs (its SLURM allocation or affinity, see
        :func:`zooprobe.workflow.allocation.allocated_cpus`) to the main process.
    """
    if settings.num_workers != "auto":
        return int(settings.num_workers)
    return 0 if device.type == "cpu" else min(4, max(1, allocated_cpus(threads) - 1))


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    dtype = AUTOCAST_DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def prepare_model(extractor: Extractor, device: torch.device, *, channels_last: bool) -> torch.nn.Module:
    """Move the frozen model to ``device``, in channels-last layout if asked."""
    model = extractor.model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def to_model_input(extractor: Extractor, images: torch.Tensor | np.ndarray, device: torch.device, *,
                   channels_last: bool, transformed: bool = False) -> torch.Tensor:
    """Move a uint8 (B, H, W, C) batch to ``device`` and preprocess it there.

    ``transformed``: the loader already resized and cropped the batch (``Preprocessing.decode``).
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    x = extractor.preprocessing(images.to(device, non_blocking=True), transformed=transformed)
    # Permuting (B, H, W, C) already gives channels-last strides; make the layout explicit either way.
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def extract_batches(extractor: Extractor, batches: Iterable[torch.Tensor | np.ndarray], *, layers: list[str],
                    pooling: str, device: torch.device, with_head: bool = False, precision: str = "fp32",
                    channels_last: bool = False, spatial_grid: int | None = None
                    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
    """Yield pooled features of each uint8 image batch.

    Args:
        extractor: the frozen model.
        batches: uint8 (B, H, W, C) arrays or tensors (pinned, for an asynchronous copy).
        layers: layer names, all from ``extractor.layer_names``.
        pooling: a pooling in :data:`zooprobe.params.settings.POOLINGS`.
        device: where the forward pass runs.
        with_head: also return the model's own head's predicted class per image.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast).
        channels_last: channels-last layout for model and input.
        spatial_grid: keep layers spatial, (B, C, h, w) pooled to at most this grid, instead of pooling.

    Returns:
        An iterator with one item per input batch: layer name -> float32 (B, D) array, and the
        head's int64 (B,) predictions (``None`` unless ``with_head``).
    """
    for host, head, ready in _pooled_on_host(extractor, batches, layers=layers, pooling=pooling, device=device,
                                             with_head=with_head, precision=precision, channels_last=channels_last,
                                             spatial_grid=spatial_grid):
        ready()
        yield ({name: value.numpy() for name, value in host.items()},
               head.argmax(1).numpy().astype(np.int64) if head is not None else None)


def _pooled_on_host(extractor: Extractor, batches: Iterable[torch.Tensor | np.ndarray], *, layers: list[str],
                    pooling: str, device: torch.device, with_head: bool, precision: str, channels_last: bool,
                    spatial_grid: int | None = None, transformed: bool = False
                    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor | None, Callable[[], None]]]:
    """Like :func:`extract_batches`, but yields before the device finishes.

    Each item holds host tensors that a non-blocking copy is still filling (pooled layers, and
    the head's float logits when ``with_head``), and a function to call before reading them.
    On CUDA this lets the caller hand the batch to a writer thread and enqueue the next
    forward pass at once.
    """
    prepare_model(extractor, device, channels_last=channels_last)
    pinned = device.type == "cuda"
    with torch.inference_mode():
        for batch in batches:
            x = to_model_input(extractor, batch, device, channels_last=channels_last, transformed=transformed)
            with autocast(device, precision):
                outputs, logits = extractor.forward_layers(x, layers, with_head=with_head)
            if spatial_grid:
                pooled = {name: spatial_map(outputs[name], grid=spatial_grid,
                                             num_prefix_tokens=extractor.sequence_prefix_tokens or None).float()
                          for name in layers}
            else:
                pooled = {name: pool(outputs[name], pooling,
                                     num_prefix_tokens=extractor.sequence_prefix_tokens).float() for name in layers}
            head = logits.float() if with_head else None
            if not pinned:
                yield pooled, head, _nothing
                continue
            host = {name: _to_pinned_host(value) for name, value in pooled.items()}
            host_head = _to_pinned_host(head) if head is not None else None
            event = torch.cuda.Event()
            event.record()
            yield host, host_head, event.synchronize


def _to_pinned_host(value: torch.Tensor) -> torch.Tensor:
    """Start a non-blocking copy into pinned host memory (PyTorch caches these buffers)."""
    return torch.empty(value.shape, dtype=value.dtype, pin_memory=True).copy_(value, non_blocking=True)


def _nothing() -> None:
    return None


@dataclass
class ExtractionRun:
    """What one call of :func:`extract_to_writer` did."""

    rows: int
    resumed_from: int
    seconds: float
    device: str
    num_workers: int

    @property
    def images_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


class _BackgroundWriter:
    """Runs ``write`` on a thread, a bounded queue ahead of the producer; re-raises its errors."""

    def __init__(self, write: Callable[[dict[str, np.ndarray], np.ndarray | None], None]) -> None:
        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=WRITE_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="zooprobe-feature-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # drain, so the producer never blocks on a dead writer
            host, head, ready = item
            try:
                ready()
                self._write({name: value.numpy() for name, value in host.items()},
                            head.numpy() if head is not None else None)
            except BaseException as error:  # noqa: BLE001 - re-raised in the producer's thread
                self._error = error

    def submit(self, item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def image_loader(batches: torch.utils.data.Dataset, *, device: torch.device, num_workers: int
                 ) -> torch.utils.data.DataLoader:
    """A loader over whole uint8 batches (``batch_size=None``), pinned when the device is CUDA."""
    return torch.utils.data.DataLoader(
        batches, batch_size=None, shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda",
        prefetch_factor=PREFETCH_PER_WORKER if num_workers else None, persistent_workers=False)


def extract_to_writer(extractor: Extractor, batches_from: Callable[[int], torch.utils.data.Dataset], writer: Any, *,
                      layers: list[str], settings: ExtractSettings, device: torch.device, with_head: bool,
                      progress: Callable[[int], None] | None = None, spatial_grid: int | None = None,
                      transformed: bool = False) -> ExtractionRun:
    """Extract every remaining row into an entered :class:`zooprobe.io.h5io.FeatureWriter`.

    Args:
        extractor: the frozen model.
        batches_from: given the first row still to do, the dataset of uint8 batches from there
            (e.g. ``lambda start: h5io.ImageBatches(path, batch_size, start=start)``).
        writer: an entered feature writer; its ``rows_done`` says where to resume.
        layers: layer names to keep.
        settings: the extract settings.
        device: where the forward pass runs.
        with_head: also write the model's own logits and predicted class per image.
        progress: called with the number of rows after each written batch.
        spatial_grid: keep layers spatial (see :func:`extract_batches`).
        transformed: the batches come already resized and cropped (``ImageBatches`` with ``decode``).

    Returns:
        An :class:`ExtractionRun` with rows written, the resume point and the wall time.
    """
    started, resumed_from = time.perf_counter(), writer.rows_done
    # The job's threads were set from the rule's (extract.jobs): never the node's core count.
    workers = loader_workers(settings, device, threads=torch.get_num_threads())
    loader = image_loader(batches_from(resumed_from), device=device, num_workers=workers)

    def write(batch: dict[str, np.ndarray], head: np.ndarray | None) -> None:
        writer.write(batch, head)
        if progress is not None:
            progress(len(next(iter(batch.values()))))

    background = _BackgroundWriter(write)
    try:
        for item in _pooled_on_host(extractor, loader, layers=layers, pooling=settings.pooling, device=device,
                                    with_head=with_head, precision=settings.precision,
                                    channels_last=settings.channels_last, spatial_grid=spatial_grid,
                                    transformed=transformed):
            background.submit(item)
    finally:
        background.close()
    return ExtractionRun(rows=writer.rows_done - resumed_from, resumed_from=resumed_from,
                         seconds=time.perf_counter() - started, device=str(device), num_workers=workers)


def layer_dims(extractor: Extractor, image_shape: tuple[int, ...], *, layers: list[str], pooling: str,
               device: torch.device, spatial_grid: int | None = None) -> dict[str, int | tuple[int, ...]]:
    """Width of each pooled layer (or (C, h, w) of each spatial one), from one blank image.

    Needed before the output file exists.
    """
    blank = np.zeros((1, *image_shape), dtype=np.uint8)
    features, _ = next(extract_batches(extractor, [blank], layers=layers, pooling=pooling, device=device,
                                       spatial_grid=spatial_grid))
    return {name: (tuple(int(d) for d in value.shape[1:]) if spatial_grid else int(value.shape[1]))
            for name, value in features.items()}
