"""Bookkeeping cost of the two workflow tools after a completed run (target: < 10 s each).

Times the no-op `snakemake -n results/report.md` and `dvc status` (median of repeats) in a
completed run. By default the run is built from stand-ins: a copy of the workflow files and
src/stf in benchmarks/work/pipeline/, every output of the 80 jobs written as a small file,
then `snakemake --touch -F` and `dvc commit -f` record them, as `make run` leaves a real run.
The tools' cost depends on the DAG (jobs, deps, params) and barely on the outputs' size.
`--run DIR` measures an existing completed run instead (e.g. `--run .` after `make run`).
Also records `snakemake --version` and `dvc --version` (start-up alone) for a ratio.

Writes benchmarks/results/pipeline.json.
Usage: .venv/bin/python benchmarks/bench_pipeline.py [--quick] [--run DIR] [--out PATH]
Takes about 1-2 minutes on 2 cores (--quick: one repeat).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from stf.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKDIR = REPO / "benchmarks" / "work" / "pipeline"
TARGET_S = 10.0
WORKFLOW_FILES = ["Snakefile", "workflow", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config",
                  ".dvc/.gitignore"]  # fmt: skip


def tool(root: Path, *args: str) -> str:
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {root}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout + proc.stderr


def timed(root: Path, repeats: int, *args: str) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        out = tool(root, *args)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def stand_in_run(root: Path) -> int:
    """A completed run of stand-in outputs under `root`; returns the number of jobs."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        src, dst = REPO / name, root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy2(src, dst)
    for py in (REPO / "src" / "stf").rglob("*.py"):
        dst = root / py.relative_to(REPO)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(py, dst)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dry = tool(root, "snakemake", "-n", "-F", "--cores", "1", "results/report.md")
    outputs = [p.strip() for line in dry.splitlines() if line.startswith("    output:")
               for p in line.split(":", 1)[1].split(",")]  # fmt: skip
    for out in outputs:
        path = root / out
        if "." in path.name:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"stand-in for {out}\n")
        else:
            path.mkdir(parents=True, exist_ok=True)
            (path / "stand-in.txt").write_text(f"stand-in for {out}\n")
    tool(root, "snakemake", "results/report.md", "--touch", "-F", "--cores", "1")
    tool(root, "dvc", "commit", "-f", "-q")
    return len(re.findall(r"^(?:local)?rule \w+:", dry, flags=re.M))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat instead of three")
    parser.add_argument("--run", type=Path, help="an existing completed run (default: stand-ins)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "pipeline.json")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3

    if args.run:
        root, setup, jobs = args.run.resolve(), "existing run", None
    else:
        root, setup = WORKDIR, "stand-in outputs"
        start = time.perf_counter()
        jobs = stand_in_run(root)
        print(f"stand-in run of {jobs} jobs in {time.perf_counter() - start:.1f} s", flush=True)

    snakemake_s, dry = timed(root, repeats, "snakemake", "-n", "--cores", "1", "results/report.md")
    if "Nothing to be done" not in dry:
        raise SystemExit(f"{root}: snakemake -n has work to do; not a completed run:\n{dry[-2000:]}")
    dvc_s, status = timed(root, repeats, "dvc", "status")
    if "up to date" not in status:
        raise SystemExit(f"{root}: dvc status is not clean (run `dvc commit -f` after Snakemake):\n{status[-2000:]}")
    snakemake_start, _ = timed(root, repeats, "snakemake", "--version")
    dvc_start, _ = timed(root, repeats, "dvc", "--version")

    result = {
        "setup": setup,
        "run": str(root.relative_to(REPO)) if root.is_relative_to(REPO) else str(root),
        "jobs": jobs,
        "repeats": repeats,
        "snakemake_noop_s": round(snakemake_s, 3),
        "dvc_status_s": round(dvc_s, 3),
        "target_s": TARGET_S,
        "ok": snakemake_s < TARGET_S and dvc_s < TARGET_S,
        "startup_s": {"snakemake": round(snakemake_start, 3), "dvc": round(dvc_start, 3)},
        "ratio_to_startup": {"snakemake": round(snakemake_s / snakemake_start, 2), "dvc": round(dvc_s / dvc_start, 2)},
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "snakemake": tool(root, "snakemake", "--version").strip(),
            "dvc": tool(root, "dvc", "--version").strip(),
            "platform": platform.platform(),
        },
    }
    write_json_atomic(args.out, result)
    print(f"snakemake -n: {snakemake_s:.2f} s, dvc status: {dvc_s:.2f} s (target < {TARGET_S:.0f} s) -> {args.out}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
