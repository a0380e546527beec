"""Streaming dataset build: peak memory against the number of images, and decoding threads.

Generates image folders of 2,000 and 20,000 JPEGs (500 x 375, 10 classes, smooth random content
so that the files have realistic sizes) in a temporary folder, then builds each with the real
`zooprobe dataset` path (`data.registry.build_dataset`, source `imagefolder`, stored at 224 px)
in a fresh child process, and prints, side by side:

* the child's peak RSS (VmHWM) for 2,000 and for 20,000 images, and their ratio (target <= 1.3:
  memory must not grow with N);
* images per second with 1 and with 2 decoding threads, and their ratio (target >= 1.6).

Run: python benchmarks/dataset_build.py [--sizes 2000 20000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, CLASSES, STORED_SIZE = 500, 375, 10, 224

CHILD = """
import json, sys, time
from pathlib import Path
from zooprobe.data.registry import build_dataset
root, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
provenance = build_dataset(name="bench", spec={"source": "imagefolder", "root": root, "size": %d,
                                               "splits": {"test": 1.0}, "seed": 0}, out=out, threads=threads)
seconds = time.perf_counter() - start
peak = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
            if line.startswith("VmHWM:"))
print(json.dumps({"n": provenance["n"], "seconds": seconds, "peak_rss": peak}))
""" % STORED_SIZE


def make_folder(root: Path, n: int, *, seed: int = 0) -> None:
    """``n`` JPEGs in ``root/<class>/``: upsampled random blocks, so each is smooth, like a photograph."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / f"class{i % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        blocks = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(blocks).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
        image.save(folder / f"{i:06d}.jpg", quality=85)


def build(root: Path, out: Path, threads: int) -> dict[str, float]:
    """Build ``root`` in a fresh interpreter (clean peak RSS) and return its numbers."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    result = subprocess.run([sys.executable, "-c", CHILD, str(root), str(out), str(threads)], check=True,
                            capture_output=True, text=True, env=env)
    out.unlink()
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[2000, 20000])
    parser.add_argument("--keep", type=Path, help="generate the folders here (and keep them) instead of a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        print(f"JPEGs {WIDTH}x{HEIGHT}, {CLASSES} classes, stored at {STORED_SIZE} px; cpus={len(os.sched_getaffinity(0))} "
              f"loadavg={os.getloadavg()[0]:.2f}")
        runs: dict[tuple[int, int], dict[str, float]] = {}
        for n in args.sizes:
            root = base / f"jpegs{n}"
            if not root.exists():
                start = time.perf_counter()
                make_folder(root, n)
                print(f"generated {n} JPEGs in {time.perf_counter() - start:.1f} s")
            for threads in (1, 2):
                runs[n, threads] = run = build(root, base / f"set{n}.h5", threads)
                print(f"N={n:>6} threads={threads}  {run['seconds']:7.1f} s  {n / run['seconds']:7.1f} images/s  "
                      f"peak RSS {run['peak_rss'] / 2**20:7.1f} MiB")
        small, large = args.sizes
        for threads in (1, 2):
            ratio = runs[large, threads]["peak_rss"] / runs[small, threads]["peak_rss"]
            print(f"peak RSS N={large} / N={small}, threads={threads}: {ratio:.2f} (target <= 1.3)")
        for n in args.sizes:
            speedup = runs[n, 1]["seconds"] / runs[n, 2]["seconds"]
            print(f"images/s 2 threads / 1 thread, N={n}: {speedup:.2f} (target >= 1.6)")


if __name__ == "__main__":
    main()
