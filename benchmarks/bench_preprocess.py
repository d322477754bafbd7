"""Preprocessing speed and memory on an NTU-60-sized raw dataset (56,880 `.skeleton` files).

Builds the raw dataset in benchmarks/work/preprocess/raw (gitignored): `--templates` distinct
files written by `stf.data.formats.ntu.write_skeleton` (random motion, lengths drawn like
NTU's: log-normal around 75 frames, clipped to 30..300; 18% two-person, 1% of frames with no
body), copied under `--files` distinct real names (SsssCcccPpppRrrrAaaa, S001-S017, A001-A060).
That is about 12 GB of text for the full size. Then it times `stf.data.preprocess.preprocess`
at T = 300 with one worker per CPU and samples the summed RSS of this process and its workers
every 0.2 s.

Writes benchmarks/results/preprocess.json: files, text MB, seconds, files/s, MB/s of text,
CPU seconds (this process + workers) and the wall time they would take on idle cores (the
machine is shared, so wall time depends on what else runs; the load averages are recorded),
peak RSS (MB; whole run and per quarter of the run, to show it does not grow with the number
of files written), the summary, the parquet size, the target (56,880 files < 180 s, peak RSS
< 2 GiB) and machine facts (cpu count, load average before the run, versions). Deletes the
raw files and the parquet afterwards unless --keep.

Usage: .venv/bin/python benchmarks/bench_preprocess.py [--files 56880] [--quick] [--keep]
The full size takes about 10-15 minutes on 2 cores (--quick: 2,000 files, about 30 s).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from stf.config import PreprocessConfig
from stf.data.formats.ntu import write_skeleton
from stf.data.preprocess import preprocess
from stf.io import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
NTU60_FILES = 56_880
TARGET_SECONDS = 180.0
TARGET_RSS_MB = 2048.0


def template_motion(rng: np.random.Generator, frames: int, bodies: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames, bodies, 25, 3) camera-space metres of smooth random motion, and (frames, bodies) presence."""
    base = rng.normal(scale=0.35, size=(bodies, 25, 3)) + np.array([0.0, 0.2, 3.0])
    base[1:, :, 0] += 0.8  # a second person stands beside the first
    t = np.arange(frames)[:, None, None, None] / 30.0
    freq = rng.uniform(0.3, 1.5, size=(1, bodies, 25, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(1, bodies, 25, 3))
    xyz = (
        base[None] + 0.1 * np.sin(2 * np.pi * freq * t + phase) + rng.normal(scale=0.004, size=(frames, bodies, 25, 3))
    )
    present = rng.random((frames, 1)) >= 0.01  # dropped frames: no body at all
    return xyz.astype(np.float32), np.repeat(present, bodies, axis=1)


def sample_names(n: int, seed: int) -> list[str]:
    """n distinct NTU-60 names spread over setups, cameras, performers, replications, actions."""
    grid = list(itertools.product(range(1, 18), range(1, 4), range(1, 41), range(1, 3), range(1, 61)))
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(grid), size=n, replace=False)
    return [f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}" for s, c, p, r, a in (grid[i] for i in np.sort(pick))]


def build_raw(raw: Path, n_files: int, n_templates: int, seed: int = 0) -> dict:
    """Write the raw dataset (or reuse one with the same manifest); returns the manifest."""
    manifest_path = raw / "MANIFEST.json"
    wanted = {"files": n_files, "templates": n_templates, "seed": seed}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if {k: manifest.get(k) for k in wanted} == wanted:
            return manifest
    shutil.rmtree(raw, ignore_errors=True)
    (raw / "templates").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    templates = []
    for k in range(n_templates):
        frames = int(np.clip(round(rng.lognormal(np.log(75), 0.45)), 30, 300))
        bodies = 2 if rng.random() < 0.18 else 1
        xyz, present = template_motion(rng, frames, bodies)
        path = raw / "templates" / f"t{k:04d}.bin"
        write_skeleton(path, xyz, body_ids=[72057594037927936 + k * 2 + b for b in range(bodies)], present=present)
        templates.append(path.read_bytes())
    out = raw / "nturgb+d_skeletons"
    out.mkdir()
    total = 0
    for i, name in enumerate(sample_names(n_files, seed)):
        data = templates[i % n_templates]
        (out / f"{name}.skeleton").write_bytes(data)
        total += len(data)
    shutil.rmtree(raw / "templates")
    manifest = {**wanted, "bytes": total}
    manifest_path.write_text(json.dumps(manifest))
    return manifest


class RssSampler(threading.Thread):
    """Samples the summed RSS (bytes) of this process and all its descendants every `period` s."""

    def __init__(self, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.period = period
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self._stop_event.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.samples.append((time.perf_counter(), total))
            self._stop_event.wait(self.period)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the pool's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=NTU60_FILES)
    parser.add_argument("--templates", type=int, default=400, help="distinct file contents")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--workers", type=int, default=None, help="default: os.cpu_count()")
    parser.add_argument("--quick", action="store_true", help="2,000 files")
    parser.add_argument("--keep", action="store_true", help="keep the raw files and parquet in benchmarks/work")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "preprocess.json")
    args = parser.parse_args()
    n_files = 2000 if args.quick else args.files

    work = ROOT / "benchmarks" / "work" / "preprocess"
    raw = work / "raw"
    t = time.perf_counter()
    manifest = build_raw(raw, n_files, min(args.templates, n_files))
    build_s = time.perf_counter() - t
    print(f"raw dataset: {n_files} files, {manifest['bytes'] / 1e9:.2f} GB ({build_s:.0f} s)", flush=True)

    out = work / "ntu60.parquet"
    load_before = os.getloadavg()
    sampler = RssSampler()
    sampler.start()
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    summary = preprocess(
        "ntu60", raw, out, PreprocessConfig(), frames=args.frames, missing_list=None, strict=False,
        workers=args.workers or os.cpu_count(),
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    load_after = os.getloadavg()
    sampler.stop()
    rss = np.array([r for _, r in sampler.samples], dtype=np.float64) / 2**20
    quarters = [round(float(q.max()), 1) for q in np.array_split(rss, 4) if q.size]
    parquet_mb = out.stat().st_size / 1e6

    files_per_s = n_files / seconds
    result = {
        "files": n_files,
        "frames": args.frames,
        "text_mb": round(manifest["bytes"] / 1e6, 1),
        "build_raw_s": round(build_s, 1),
        "seconds": round(seconds, 2),
        "files_per_s": round(files_per_s, 1),
        "text_mb_per_s": round(manifest["bytes"] / 1e6 / seconds, 1),
        "projected_ntu60_seconds": round(NTU60_FILES / files_per_s, 1),
        "cpu_seconds": round(cpu, 1),
        "cpu_ms_per_file": round(1000 * cpu / n_files, 2),
        # the wall time the same CPU work takes when no one else uses the cores
        "projected_ntu60_seconds_idle": round(NTU60_FILES * cpu / n_files / (os.cpu_count() or 1), 1),
        "peak_rss_mb": round(float(rss.max()), 1),
        "peak_rss_mb_by_quarter": quarters,
        "parquet_mb": round(parquet_mb, 1),
        "summary": summary,
        "target": {"ntu60_seconds": TARGET_SECONDS, "peak_rss_mb": TARGET_RSS_MB},
        "meets_target": {
            "seconds": NTU60_FILES / files_per_s < TARGET_SECONDS,
            "rss": float(rss.max()) < TARGET_RSS_MB,
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "workers": args.workers or os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
        },
    }
    write_json_atomic(args.out, result)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
