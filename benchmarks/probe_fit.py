"""Linear probe fit: the sklearn probe against the torch probe, side by side, and the torch probe's memory on HDF5 chunks.

Synthetic features: Gaussian class means (scaled so two means lie ``--separation`` noise units apart
on average) plus unit noise; N train / val / test rows, a three-value C sweep, the stage's
``max_iter``. For each D it times ``probe: sklearn`` (scikit-learn, one fit a C, as the stage runs it)
and the torch probe as the stage runs it (``probe: linear``: C by C warm-started, float32) on the
CPU; with bfloat16 matmuls (``--bf16``) and the whole sweep as one run (``--one-pass``) if asked, and on the
GPU when torch sees one (else it says so), and with plain IEEE float32 matmuls (``torch ieee float32``:
what the stage's checked use of oneDNN's bfloat16 math mode for float32 matmuls buys); it prints wall
time, the chosen C, val and test accuracy, and the speed-up. Then, in a child process (clean numbers),
it fits the torch probe on row chunks read from an HDF5 feature file written through
``zooprobe.io.h5io`` and prints its peak RSS beside the size of the feature matrix.

    nice -n 10 python benchmarks/probe_fit.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from zooprobe.cli.probes import OMP_WAIT_POLICY  # noqa: E402  (argparse only: no torch yet)

# As the probe stage runs both probes (cli/probes.py), before torch or sklearn start OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)

C_GRID = (0.01, 0.1, 1.0)


def synthetic(*, dim: int, classes: int, sizes: tuple[int, ...], separation: float, seed: int
              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(features, labels) per split: class means ``separation`` noise units apart on average, unit noise."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((classes, dim)).astype(np.float32) * np.float32(separation / np.sqrt(2 * dim))
    out = []
    for n in sizes:
        labels = rng.integers(0, classes, n)
        out.append(((means[labels] + rng.standard_normal((n, dim), dtype=np.float32)), labels))
    return out


def timed_fit(kind: str, splits: list[tuple[np.ndarray, np.ndarray]], *, device: str = "cpu",
              matmul_dtype: str = "float32", warm_start: bool | None = None,
              float32_matmul: str | None = None) -> dict[str, float]:
    """Fit one probe; its wall time, chosen C and val and test accuracy."""
    from zooprobe.probes.linear import MAX_ITER, fit_linear_probe
    from zooprobe.probes.torch_linear import fit_torch_probe

    (x, y), (vx, vy), (tx, ty) = splits
    start = time.perf_counter()
    if kind == "sklearn":
        fit = fit_linear_probe(train_x=x, train_y=y, val_x=vx, val_y=vy, c_grid=C_GRID, max_iter=MAX_ITER, seed=0)
    else:
        fit = fit_torch_probe(train_x=x, train_y=y, val_x=vx, val_y=vy, c_grid=C_GRID, max_iter=MAX_ITER, seed=0,
                              device=device, matmul_dtype=matmul_dtype,
                              # None: the stage's own default (fit_torch_probe's), not a copy of it here.
                              **({} if warm_start is None else {"warm_start": warm_start}),
                              **({} if float32_matmul is None else {"float32_matmul": float32_matmul}))
        if device == "cuda":
            import torch

            torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"s": seconds, "c": fit.c, "val": fit.val_accuracy, "test": float((fit.model.predict(tx) == ty).mean()),
            "matmuls": fit.float32_matmul or "float64 (scipy)"}


def peak_rss() -> int:
    """Peak resident set of this process in bytes (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def chunked_child(path: str, chunk_rows: int) -> None:
    """In a fresh process: fit the torch probe on HDF5 row chunks; print peak RSS (before and after) as JSON."""
    import torch  # noqa: F401  (the framework's own footprint is the baseline, not the probe's)

    from zooprobe.io import h5io
    from zooprobe.probes.linear import MAX_ITER
    from zooprobe.probes.torch_linear import fit_torch_probe

    with h5io._open(path) as f:  # labels and split only: small
        labels, split = f["labels"][...], f["split"][...].astype(str)
    imported = peak_rss()
    # A tiny fit first: torch's one-off set-up (BLAS buffers, thread pool) is the framework's, not the matrix's.
    timed_fit("torch", synthetic(dim=16, classes=4, sizes=(64, 32, 32), separation=4.0, seed=0))
    baseline = peak_rss()
    start = time.perf_counter()
    train, val, test = (split == s for s in ("train", "val", "test"))
    fit = fit_torch_probe(train_x=h5io.FeatureRowChunks(path, "l", rows=train, chunk_rows=chunk_rows),
                          train_y=labels[train],
                          val_x=h5io.FeatureRowChunks(path, "l", rows=val, chunk_rows=chunk_rows), val_y=labels[val],
                          c_grid=C_GRID, max_iter=MAX_ITER, seed=0, device="cpu")
    seconds = time.perf_counter() - start
    correct = sum(int((fit.model.predict(chunk) == labels[test][i:i + len(chunk)]).sum())
                  for i, chunk in _offsets(h5io.FeatureRowChunks(path, "l", rows=test, chunk_rows=chunk_rows)))
    peak = peak_rss()
    print(json.dumps({"imported": imported, "baseline": baseline, "peak": peak, "s": seconds, "c": fit.c, "val": fit.val_accuracy,
                      "test": correct / int(test.sum())}))


def _offsets(chunks):
    """(offset of the chunk's first row, chunk) of a chunk iterable."""
    offset = 0
    for chunk in chunks:
        yield offset, chunk
        offset += len(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="*", default=[512, 2048])
    parser.add_argument("--n", type=int, nargs=3, default=[20000, 5000, 5000], metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--separation", type=float, default=4.5)
    parser.add_argument("--chunk-rows", type=int, default=2048, help="rows per HDF5 chunk of the memory run")
    parser.add_argument("--rss-dim", type=int, default=2048, help="D of the chunked-HDF5 memory run (0: skip)")
    parser.add_argument("--bf16", action="store_true",
                        help="also time bfloat16 matmuls (finished in float32 near the tolerance)")
    parser.add_argument("--one-pass", action="store_true",
                        help="also time the whole sweep as one run, every C evaluated in one pass over the features")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "CHUNK_ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        chunked_child(args.child[0], int(args.child[1]))
        return
    import torch

    from zooprobe.probes.linear import MAX_ITER

    print(f"torch={torch.__version__} threads={torch.get_num_threads()} cuda={torch.cuda.is_available()} "
          f"loadavg={os.getloadavg()[0]:.2f} N={args.n} classes={args.classes} C={list(C_GRID)} max_iter={MAX_ITER} "
          f"separation={args.separation} OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    # The torch probe as the stage runs it (probe: linear: fit_torch_probe's defaults, here on the CPU with
    # the machine's threads); variants only when asked.
    runs = [("torch (stage)", dict(device="cpu")),
            # The stage's fit with plain IEEE float32 matmuls: what oneDNN's checked bfloat16 math mode buys.
            ("torch ieee float32", dict(device="cpu", float32_matmul="ieee"))]
    if args.bf16:
        runs.append(("torch bfloat16", dict(device="cpu", matmul_dtype="bfloat16")))
    if args.one_pass:
        runs.append(("torch one pass", dict(device="cpu", warm_start=False)))
    if torch.cuda.is_available():
        runs.append(("torch cuda (stage)", dict(device="cuda")))
    else:
        print("GPU: not measured (torch sees no GPU on this machine)")
    # One small fit first, so that no timed run pays for torch's first-call set-up.
    timed_fit("torch", synthetic(dim=16, classes=4, sizes=(64, 32, 32), separation=4.0, seed=0))
    for dim in args.dims:
        splits = synthetic(dim=dim, classes=args.classes, sizes=tuple(args.n), separation=args.separation, seed=dim)
        base = timed_fit("sklearn", splits)
        print(f"D={dim}  {'probe: sklearn':20s} {base['s']:8.2f} s  C={base['c']:<5g} val={base['val']:.4f} "
              f"test={base['test']:.4f}", flush=True)
        for name, options in runs:
            if "cuda" in name:
                timed_fit("torch", splits, **options)  # warm-up: CUDA context and kernels
            got = timed_fit("torch", splits, **options)
            print(f"D={dim}  {name:20s} {got['s']:8.2f} s  C={got['c']:<5g} val={got['val']:.4f} "
                  f"test={got['test']:.4f}  speed-up={base['s'] / got['s']:.1f}x  "
                  f"test diff={100 * (got['test'] - base['test']):+.2f} pp  matmuls={got['matmuls']}", flush=True)
    if args.rss_dim:
        from zooprobe.io import h5io

        splits = synthetic(dim=args.rss_dim, classes=args.classes, sizes=tuple(args.n), separation=args.separation,
                           seed=args.rss_dim)
        x = np.concatenate([s[0] for s in splits])
        labels = np.concatenate([s[1] for s in splits])
        split = np.repeat(np.array(["train", "val", "test"]), args.n)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "features.h5"
            with h5io.FeatureWriter(path, n=len(x), layer_dims={"l": args.rss_dim}, labels=labels, split=split,
                                    provenance={"model": "synthetic"}) as writer:
                for start in range(0, len(x), 4096):
                    writer.write({"l": x[start:start + 4096]})
            matrix = x.nbytes
            del x, splits
            child = subprocess.run([sys.executable, __file__, "--child", str(path), str(args.chunk_rows)],
                                   check=True, capture_output=True, text=True)
            got = json.loads(child.stdout.strip().splitlines()[-1])
        mib = 2 ** 20
        print(f"chunked HDF5, D={args.rss_dim}, {args.chunk_rows}-row chunks: feature matrix {matrix / mib:.0f} MiB "
              f"(float32, all splits); child peak RSS {got['peak'] / mib:.0f} MiB, of which {got['imported'] / mib:.0f} "
              f"MiB after the imports (python, torch, h5py) and {got['baseline'] / mib:.0f} MiB after a tiny warm-up fit "
              f"(torch's one-off set-up), so the fit added {(got['peak'] - got['baseline']) / mib:.0f} MiB "
              f"({(got['peak'] - got['imported']) / mib:.0f} MiB over the imports); {got['s']:.1f} s, C={got['c']:g} val={got['val']:.4f} test={got['test']:.4f}")


if __name__ == "__main__":
    main()
