"""Run every benchmark in this folder (`make bench`); each writes benchmarks/results/<name>.json.

Usage: python benchmarks/run_all.py [--only NAME ...] [--quick]
`--quick` passes `--quick` to the benchmarks that accept it (smaller sizes, same ratios).
With MSG3D_ORIGINAL set to a checkout of kenziyuliu/MS-G3D (outside this project),
bench_model.py also times the original code (`--original`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="benchmark names (file stem without bench_)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    failed = []
    for script in scripts:
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        if script.stem == "bench_model" and os.environ.get("MSG3D_ORIGINAL"):
            cmd += ["--original", os.environ["MSG3D_ORIGINAL"]]
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"== {script.name}: exit {rc} in {time.perf_counter() - start:.1f} s", flush=True)
        if rc != 0:
            failed.append(script.name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
