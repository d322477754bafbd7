"""Sweep the project's convolution shapes through oneDNN's AVX2 kernels (issue 8).

Runs benchmarks/onednn_probe.py, one fresh process per case, under `ONEDNN_MAX_CPU_ISA=AVX2`
and `MALLOC_CHECK_=3`: the micro, tiny and paper widths, odd widths, NTU (C = 4) and Kinetics
(C = 3), MS-G3D (cross-entropy) and STF (the eq. 6 objective: beta/alpha convolutions, Grad-CAM
double backward), plus no-grad evaluation batches. Writes benchmarks/results/onednn_sweep.json:
per case the exit status, the worst gradient difference and glibc's message if it aborted.

    .venv/bin/python benchmarks/bench_onednn.py [--quick] [--out benchmarks/results/onednn_sweep.json]

`--quick`: the micro and tiny cases only. About 6 minutes in full on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBE = HERE / "onednn_probe.py"

# (name, widths, frames, batch, iterations, eval batch)
CASES = [
    ("micro", (4, 8, 8), 16, 8, 30, 32),
    ("tiny", (8, 16, 32), 24, 8, 20, 64),
    ("paper", (96, 192, 384), 16, 2, 3, 4),
    ("odd-4-12-12", (4, 12, 12), 16, 8, 30, 0),
    ("odd-6-12-24", (6, 12, 24), 16, 8, 30, 0),
    ("odd-12-24-48", (12, 24, 48), 16, 8, 20, 0),
    ("odd-2-4-4", (2, 4, 4), 16, 8, 30, 0),
]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "onednn_sweep.json", help="result JSON")
    ap.add_argument("--quick", action="store_true", help="micro and tiny widths only")
    args = ap.parse_args()
    cases = [c for c in CASES if c[0] in ("micro", "tiny")] if args.quick else CASES
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "MALLOC_CHECK_": "3", "OMP_NUM_THREADS": "1"}
    rows = []
    for name, widths, frames, batch, iterations, eval_batch in cases:
        for dataset in ("ntu60", "kinetics"):
            for stf in (False, True):
                cmd = [sys.executable, "-W", "ignore", str(PROBE), "--dataset", dataset,
                       "--widths", *map(str, widths), "--frames", str(frames), "--batch", str(batch),
                       "--iterations", str(iterations), "--eval-batch", str(eval_batch)]  # fmt: skip
                if stf:
                    cmd.append("--stf")
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                row = {"case": name, "dataset": dataset, "stf": stf, "widths": list(widths), "frames": frames,
                       "batch": batch, "iterations": iterations, "eval_batch": eval_batch,
                       "returncode": proc.returncode}  # fmt: skip
                if proc.returncode in (0, 1) and proc.stdout.strip():
                    row["worst_relative_grad_diff"] = json.loads(proc.stdout.strip().splitlines()[-1])[
                        "worst_relative_grad_diff"
                    ]
                if proc.returncode != 0:
                    row["stderr"] = proc.stderr.strip().splitlines()[-1:] if proc.stderr.strip() else []
                print(json.dumps(row), flush=True)
                rows.append(row)
    result = {
        "machine": cpu_model(),
        "isa_cap": "AVX2",
        "command": "python benchmarks/bench_onednn.py" + (" --quick" if args.quick else ""),
        "all_safe": all(r["returncode"] == 0 for r in rows),
        "cases": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    return 0 if result["all_safe"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
