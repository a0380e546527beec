"""Peak host memory of `zooprobe extract` against dataset size N and batch size, side by side.

Usage:
    python benchmarks/extract_memory.py [--model resnet18] [--size 64] [--ns 2000 20000] [--batch-sizes 64 256]

Each measurement runs `zooprobe extract` in a fresh Python process on a random uint8 image
set and reads that process's peak resident set size (``VmHWM``, Linux; on the CPU there are no
loader worker processes). If extraction held the whole dataset or all its features, the peak would grow
by the dataset's size (printed beside it); bounded extraction grows with the batch size only.
The last line is ``ratio=<peak(N max)/peak(N min)>`` at the first batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from extract_throughput import write_random_image_set  # noqa: E402

# Runs in the child: the CLI exactly as a rule calls it, then its own peak RSS. VmHWM, not
# ru_maxrss: ru_maxrss survives exec, so it would count the pages of this (forking) benchmark
# process; and children are left out, since on the CPU there are no loader workers and the one
# child (git, for the code version) would count the extraction's pages a second time.
MEASURE = """
import sys
from zooprobe.cli.main import main
main(sys.argv[1:])
with open("/proc/self/status") as status:
    print("PEAK_KIB=" + next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


def peak_rss_mib(*, data: Path, out: Path, model: str, size: int, batch_size: int, device: str) -> float:
    """Peak RSS in MiB of one `zooprobe extract` process."""
    spec = {"source": "timm", "arch": model, "input_size": size}
    settings = {"pooling": "avg"}
    execution = {"batch_size": batch_size, "device": device}
    src = str(Path(__file__).resolve().parents[1] / "src")
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, "extract", "--model", model, "--spec", json.dumps(spec),
         "--settings", json.dumps(settings), "--execution", json.dumps(execution), "--data", str(data),
         "--threads", "2", "--out", str(out)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": src})
    line = next(line for line in result.stdout.splitlines() if line.startswith("PEAK_KIB="))
    out.unlink()
    return int(line.split("=")[1]) / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--ns", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args(argv)

    peaks: dict[tuple[int, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.ns:
            data = Path(tmp) / f"images_{n}.h5"
            write_random_image_set(data, n=n, side=args.size)
            for batch_size in args.batch_sizes:
                peaks[n, batch_size] = peak_rss_mib(data=data, out=Path(tmp) / "features.h5", model=args.model,
                                                    size=args.size, batch_size=batch_size, device=args.device)
                images_mib = n * args.size * args.size * 3 / 2**20
                print(f"n={n:>6} batch_size={batch_size:>4} peak_rss={peaks[n, batch_size]:7.0f} MiB "
                      f"(the uint8 images alone would be {images_mib:6.0f} MiB)", flush=True)
            data.unlink()
    first = args.batch_sizes[0]
    lo, hi = min(args.ns), max(args.ns)
    print(f"model={args.model} size={args.size} device={args.device}: N x{hi / lo:.0f} -> peak "
          f"+{peaks[hi, first] - peaks[lo, first]:.0f} MiB at batch {first}")
    print(f"ratio={peaks[hi, first] / peaks[lo, first]:.3f}")


if __name__ == "__main__":
    main()
