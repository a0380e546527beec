"""Images/s of the bare model forward against zooprobe's full extraction, measured side by side.

Usage:
    python benchmarks/extract_throughput.py --model resnet18 --size 64 --n 2048 --batch-size 128 --device cpu
    python benchmarks/extract_throughput.py --model resnet50 --size 224 --n 10240 --batch-size 256 \
        --device cuda --precision bf16 --channels-last

(a) bare: ``model(x)`` on ready, preprocessed tensors already on the device, same batch size,
    precision and memory layout; nothing else.
(b) full: what ``zooprobe extract`` does: read uint8 batches from an HDF5 image set through
    the DataLoader, copy to the device, resize/normalise there, one forward pass for every
    layer, pool, copy back, and write the HDF5 feature file (temporary name, then rename).

The model is timm's architecture with random weights (no download). Each measurement is
repeated ``--repeats`` times, alternating (a) and (b), and the median is reported. The last
line is ``ratio=<b/a>``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from zooprobe.io import h5io  # noqa: E402
from zooprobe.data.imageset import ImageSet  # noqa: E402
from zooprobe.zoo.devices import pick_device  # noqa: E402
from zooprobe.extract.features import autocast, extract_to_writer, layer_dims, loader_workers, prepare_model  # noqa: E402
from zooprobe.params.settings import ExtractSettings  # noqa: E402
from zooprobe.params.spec import ModelSpec  # noqa: E402
from zooprobe.zoo.factory import create_model  # noqa: E402

WARMUP_BATCHES = 3
WRITE_CHUNK = 1024


def write_random_image_set(path: Path, *, n: int, side: int, seed: int = 0) -> None:
    """An image-set file of ``n`` random uint8 images, built in chunks so that any n fits in memory."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, side, side, 3), dtype=np.uint8)
    for start in range(0, n, WRITE_CHUNK):
        stop = min(n, start + WRITE_CHUNK)
        images[start:stop] = rng.integers(0, 256, (stop - start, side, side, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    h5io.write_image_set(path, ImageSet(images, labels, np.array(["test"] * n), [str(i) for i in range(10)],
                                        {"name": "random", "source": "benchmark"}))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_bare_forward(model: torch.nn.Module, *, n: int, batch_size: int, side: int, device: torch.device,
                      settings: ExtractSettings) -> float:
    """Seconds for ``model(x)`` over n images in batches, on tensors already on the device."""
    x = torch.randn(batch_size, 3, side, side, device=device)
    if settings.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    last = n - (n // batch_size) * batch_size
    with torch.inference_mode(), autocast(device, settings.precision):
        for _ in range(WARMUP_BATCHES):
            model(x)
        synchronize(device)
        started = time.perf_counter()
        for _ in range(n // batch_size):
            model(x)
        if last:
            model(x[:last])
        synchronize(device)
    return time.perf_counter() - started


def time_full_extraction(extractor, *, data: Path, out: Path, settings: ExtractSettings,
                         device: torch.device) -> float:
    """Seconds for zooprobe's extraction of ``data`` into ``out``, as ``zooprobe extract`` runs it."""
    labels, split, info = h5io.read_image_labels(data)
    layers = extractor.select_layers(())
    dims = layer_dims(extractor, tuple(info["image_shape"]), layers=layers, pooling=settings.pooling, device=device)
    synchronize(device)
    started = time.perf_counter()
    with h5io.FeatureWriter(out, n=info["n"], layer_dims=dims, labels=labels, split=split,
                            provenance={"benchmark": True}) as writer:
        extract_to_writer(extractor, lambda start: h5io.ImageBatches(data, settings.batch_size, start=start),
                          writer, layers=layers, settings=settings, device=device, with_head=False)
    synchronize(device)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a timm architecture, e.g. resnet18 or vit_base_patch16_224")
    parser.add_argument("--size", type=int, required=True, help="input side in pixels (stored images have this side)")
    parser.add_argument("--n", type=int, required=True, help="number of images")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--device", choices=["cpu", "cuda"], required=True)
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--num-workers", default="auto", help="loader workers for (b): 'auto' or an integer")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each, alternating; median reported")
    parser.add_argument("--workdir", type=Path, default=None, help="where the HDF5 files go (default: a temp dir)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    workers = args.num_workers if args.num_workers == "auto" else int(args.num_workers)
    settings = ExtractSettings(pooling="avg", batch_size=args.batch_size, device=args.device,
                               precision=args.precision, channels_last=args.channels_last, num_workers=workers)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    extractor = create_model(ModelSpec.from_config(args.model, {"source": "timm", "arch": args.model,
                                                                "input_size": args.size}))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        data, out = Path(tmp) / "images.h5", Path(tmp) / "features.h5"
        write_random_image_set(data, n=args.n, side=args.size)
        bare, full = [], []
        for _ in range(args.repeats):
            model = prepare_model(extractor, device, channels_last=settings.channels_last)
            bare.append(time_bare_forward(model, n=args.n, batch_size=args.batch_size, side=args.size,
                                          device=device, settings=settings))
            full.append(time_full_extraction(extractor, data=data, out=out, settings=settings, device=device))
    a, b = args.n / statistics.median(bare), args.n / statistics.median(full)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    print(f"model={args.model} size={args.size} n={args.n} batch_size={args.batch_size} device={name} "
          f"precision={args.precision} channels_last={args.channels_last} "
          f"loader_workers={loader_workers(settings, device)} torch={torch.__version__}")
    print(f"(a) bare forward, tensors on device: {a:9.1f} images/s  (runs: {', '.join(f'{args.n / t:.1f}' for t in bare)})")
    print(f"(b) full extraction HDF5->HDF5:      {b:9.1f} images/s  (runs: {', '.join(f'{args.n / t:.1f}' for t in full)})")
    print(f"peak host RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"ratio={b / a:.3f}")


if __name__ == "__main__":
    main()
