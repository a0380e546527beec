"""Time the analyse stage on configs/imagenot-mini.yaml's probe results: before and after a change.

"Before" is the zooprobe source at a git revision (default: the last commit before the two-level
bootstrap), unpacked into a temporary folder; "after" is this checkout. Both run the same
``python -m zooprobe analyse`` command a job runs, on the same probe result files, alternating,
and the script prints each run's wall time, the medians and their ratio (after / before).

    python benchmarks/analyse_speed.py                       # probe results under ./results/probes
    python benchmarks/analyse_speed.py --results OTHER_CHECKOUT/results --repeats 5

Without probe results it first runs the workflow up to the probe rule (about 15-25 minutes on
2 CPU cores): snakemake --cores all --configfile configs/imagenot-mini.yaml --until probe.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "imagenot-mini.yaml"
# The last commit before issue 16's agreement intervals (seeds as units, two-level bootstrap).
BEFORE = "577c269"


def unpack_source(revision: str, into: Path) -> Path:
    """The package source at a revision, as files, without touching the working tree."""
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "src.tar"
    with archive.open("wb") as handle:
        subprocess.run(["git", "-C", str(REPO), "archive", revision, "src"], stdout=handle, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def analyse_command(probes: list[str], out: Path, *, with_design: bool) -> list[str]:
    config = yaml.safe_load(CONFIG.read_text())
    command = [sys.executable, "-m", "zooprobe", "analyse", "--probes", *probes,
               "--settings", json.dumps(config["analyse"], sort_keys=True),
               "--sweep", json.dumps(config.get("sweep"), sort_keys=True),
               "--scores", str(out / "scores.csv"), "--summary", str(out / "summary.json")]
    if with_design:
        sys.path.insert(0, str(REPO / "src"))
        from zooprobe.params.config import analysis_design

        command += ["--design", json.dumps(analysis_design(config), sort_keys=True)]
    return command


def timed(command: list[str], source: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(source))
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=REPO / "results", help="folder holding probes/<model>/<task>.h5")
    parser.add_argument("--before", default=BEFORE, help="git revision of the 'before' code")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    probes = sorted(str(p) for p in (args.results / "probes").glob("*/*.h5"))
    if not probes:
        print(f"no probe results under {args.results}/probes: running imagenot-mini up to the probe rule", flush=True)
        subprocess.run(["snakemake", "--cores", "all", "--configfile", str(CONFIG), "--replace-workflow-config",
                        "--until", "probe"], cwd=REPO, check=True)
        probes = sorted(str(p) for p in (REPO / "results" / "probes").glob("*/*.h5"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        before_src = unpack_source(args.before, tmp / "before")
        runs = {"before": [], "after": []}
        for name in ("before", "after"):
            (tmp / name / "out").mkdir(parents=True, exist_ok=True)
        for repeat in range(args.repeats):
            for name, source, design in (("before", before_src, False), ("after", REPO / "src", True)):
                seconds = timed(analyse_command(probes, tmp / name / "out", with_design=design), source)
                runs[name].append(seconds)
                print(f"repeat {repeat + 1}: {name:6s} {seconds:6.2f} s", flush=True)
    before, after = statistics.median(runs["before"]), statistics.median(runs["after"])
    print(f"{len(probes)} probe result files of {CONFIG.name}; before = {args.before}, after = this checkout")
    print(f"median wall time per analyse job: before {before:.2f} s, after {after:.2f} s")
    print(f"ratio after/before = {after / before:.2f} (target: at most 2.0)")


if __name__ == "__main__":
    main()
