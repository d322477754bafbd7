"""NTU `.skeleton` parsing throughput: `stf.data.formats.ntu.read_skeleton` vs a line-by-line reader.

The reference reads the way MS-G3D's data generation does (readline per line, a dict of
`float()`s per body and per joint, x/y/z copied into an array). Both read the six real files of
../shared/fixtures/ntu, repeated until each has read about `--mb` MB per round, in alternating
rounds so machine load hits both alike. Rates are MB of file per CPU-second of this single-
threaded process (= per core; also reported per wall-clock second). Target: >= 200 MB/s per
core and >= 10x the reference. The writer's throughput (files/s, with the atomic fsync) is
reported too. Writes benchmarks/results/parse.json.

    .venv/bin/python benchmarks/bench_parse.py            # about 100 MB per reader
    .venv/bin/python benchmarks/bench_parse.py --quick    # about 20 MB
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from stf.data.formats.ntu import read_skeleton, write_skeleton
from stf.io import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("STF_SHARED", ROOT.parent / "shared")) / "fixtures" / "ntu"

_BODY_KEYS = (
    "bodyID", "clipedEdges", "handLeftConfidence", "handLeftState", "handRightConfidence",
    "handRightState", "isResticted", "leanX", "leanY", "trackingState",
)  # fmt: skip
_JOINT_KEYS = (
    "x", "y", "z", "depthX", "depthY", "colorX", "colorY",
    "orientationW", "orientationX", "orientationY", "orientationZ", "trackingState",
)  # fmt: skip


def reference_read(path: Path, max_bodies: int = 4) -> np.ndarray:
    """Line-by-line reader in MS-G3D's style: (frames, max_bodies, 25, 3) float32."""
    with open(path) as fh:
        frames = []
        for _ in range(int(fh.readline())):
            bodies = []
            for _ in range(int(fh.readline())):
                body = {k: float(v) for k, v in zip(_BODY_KEYS, fh.readline().split(), strict=False)}
                joints = []
                for _ in range(int(fh.readline())):
                    joints.append({k: float(v) for k, v in zip(_JOINT_KEYS, fh.readline().split(), strict=False)})
                body["jointInfo"] = joints
                bodies.append(body)
            frames.append(bodies)
    data = np.zeros((len(frames), max_bodies, 25, 3), dtype=np.float32)
    for t, bodies in enumerate(frames):
        for m, body in enumerate(bodies[:max_bodies]):
            for j, joint in enumerate(body["jointInfo"]):
                data[t, m, j] = [joint["x"], joint["y"], joint["z"]]
    return data


def ours(path: Path) -> np.ndarray:
    return read_skeleton(path).xyz


def one_round(reader, files: list[Path], repeats: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) to read every file `repeats` times."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        for path in files:
            reader(path)
    return time.process_time() - cpu, time.perf_counter() - wall


def bench_write(files: list[Path], seconds: float) -> dict:
    """Files and MB per second written by `write_skeleton` (atomic, fsync'ed), rewriting the fixtures."""
    parsed = [read_skeleton(p) for p in files]
    written = nbytes = 0
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cpu = time.process_time()
        while time.perf_counter() - start < seconds:
            for skel, path in zip(parsed, files, strict=True):
                out = Path(tmp) / path.name
                write_skeleton(out, skel.xyz, skel.body_ids[0])
                written += 1
                nbytes += out.stat().st_size
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "files": written,
        "files_per_s_wall": round(written / wall, 1),
        "mb_per_cpu_s": round(nbytes / cpu / 1e6, 1),
        "mb_per_wall_s": round(nbytes / wall / 1e6, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="MB each reader parses in total")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds the total is split into")
    ap.add_argument("--quick", action="store_true", help="about 20 MB per reader")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "parse.json")
    args = ap.parse_args()
    if args.quick:
        args.mb = 20.0
    files = sorted(FIXTURES.glob("*.skeleton"))
    if not files:
        print(f"no .skeleton files in {FIXTURES}; set STF_SHARED", file=sys.stderr)
        return 2
    file_bytes = sum(p.stat().st_size for p in files)
    for path in files:  # both readers agree before anything is timed
        np.testing.assert_array_equal(ours(path), reference_read(path, max_bodies=read_skeleton(path).xyz.shape[1]))
    repeats = max(1, round(args.mb * 1e6 / file_bytes / args.rounds))
    per_round = file_bytes * repeats
    rates: dict[str, list[tuple[float, float]]] = {"stf": [], "reference": []}
    for r in range(args.rounds):
        order = [("stf", ours), ("reference", reference_read)]
        for name, reader in order if r % 2 == 0 else order[::-1]:
            cpu, wall = one_round(reader, files, repeats)
            rates[name].append((per_round / cpu / 1e6, per_round / wall / 1e6))
        print(
            f"round {r + 1}/{args.rounds}: stf {rates['stf'][-1][0]:.0f} MB/s, "
            f"reference {rates['reference'][-1][0]:.1f} MB/s (per CPU-second)",
            flush=True,
        )

    def med(name: str, i: int) -> float:
        return statistics.median(x[i] for x in rates[name])

    ratios = [s[0] / r[0] for s, r in zip(rates["stf"], rates["reference"], strict=True)]
    result = {
        "benchmark": "parse",
        "what": "NTU .skeleton -> float32 (frames, bodies, 25, 3); MB of file per second, single process",
        "files": [p.name for p in files],
        "mb_per_reader": round(per_round * args.rounds / 1e6, 1),
        "rounds": args.rounds,
        "stf_mb_per_cpu_s": round(med("stf", 0), 1),
        "reference_mb_per_cpu_s": round(med("reference", 0), 1),
        "ratio": round(statistics.median(ratios), 2),
        "stf_mb_per_wall_s": round(med("stf", 1), 1),
        "reference_mb_per_wall_s": round(med("reference", 1), 1),
        "per_round": {k: [[round(c, 1), round(w, 1)] for c, w in v] for k, v in rates.items()},
        "target": {"stf_mb_per_cpu_s": 200, "ratio": 10},
        "write": bench_write(files, seconds=2.0 if args.quick else 5.0),
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pyarrow": version("pyarrow"),
            "torch": version("torch"),
        },
        "command": "python benchmarks/bench_parse.py" + (" --quick" if args.quick else f" --mb {args.mb:g}"),
    }
    result["meets_target"] = result["stf_mb_per_cpu_s"] >= 200 and result["ratio"] >= 10
    write_json_atomic(args.out, result)
    print(
        f"stf {result['stf_mb_per_cpu_s']} MB/s, reference {result['reference_mb_per_cpu_s']} MB/s, "
        f"ratio {result['ratio']}x (target >= 200 MB/s and >= 10x: {result['meets_target']}); "
        f"writer {result['write']['files_per_s_wall']} files/s -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
