"""Data loading speed: interim parquet -> arrays, and the training batch iterator.

Writes benchmarks/results/loading.json with
- "load_arrays": seconds and samples/s of `stf.data.dataset.load_arrays` (train part, p100)
  from an interim parquet of random NTU-shaped samples (C=4, T, V=25, M=2; random walks of
  30..T frames, repeat-padded to T, as preprocessing writes them);
- "train_batches": samples/s of the training loop's batching over those arrays (batch 32: a
  seeded permutation cut by `stf.training.loop.epoch_batches`, each batch one gather into a
  contiguous tensor, as `_train_epoch` does; target >= 20,000 samples/s at T = 300), with and
  without the short last batch;
- "dataloader": samples/s of a plain `torch.utils.data.DataLoader(SkeletonDataset, batch 32,
  shuffle)` on the same arrays, and "ratio" = train_batches / dataloader (epochs of the three
  iterators alternate; the best epoch of each is kept);
- "memcpy": GB/s of one bulk copy of the arrays into a touched buffer (the bound a gather cannot beat);
- "machine": cpu count, torch/numpy versions.

Usage: .venv/bin/python benchmarks/bench_loading.py [--samples 4000] [--frames 300] [--quick]
Takes about a minute on 2 cores (--quick: 1,000 samples). Scratch files go to benchmarks/work/.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from stf.config import SettingSpec, SplitConfig
from stf.data.dataset import SkeletonDataset, load_arrays
from stf.data.preprocess import InterimWriter
from stf.data.splits import make_split_file
from stf.io import write_json_atomic
from stf.training.loop import epoch_batches

ROOT = Path(__file__).resolve().parents[1]


def random_sample(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(4, frames, 25, 2): a random walk of 30..frames frames, repeat-padded like preprocess does;
    a quarter of the samples have a second person."""
    n = int(rng.integers(30, frames + 1))
    x = np.cumsum(rng.standard_normal((4, n, 25, 2), dtype=np.float32) * 0.01, axis=1)  # (C, n, V, M)
    x[3] = 1.0
    if rng.random() >= 0.25:
        x[..., 1] = 0.0
    return x[:, np.arange(frames) % n]  # (C, T, V, M)


def write_random_interim(path: Path, n: int, frames: int, seed: int = 0) -> None:
    """n random NTU-60-shaped samples with x-sub-style ids; every class has train and test samples."""
    rng = np.random.default_rng(seed)
    classes = 60
    info = {"dataset": "ntu60", "layout": "ntu25", "shape": [4, frames, 25, 2], "num_class": classes,
            "channels": ["x", "y", "z", "visibility"]}  # fmt: skip
    # performer 1 (x-sub train) / 3 (test) alternate per round of classes; replication counts rounds
    ids = sorted(
        f"S001C001P{[1, 3][(i // classes) % 2]:03d}R{i // classes + 1:03d}A{i % classes + 1:03d}" for i in range(n)
    )
    with InterimWriter(path, info) as w:
        for start in range(0, n, 256):
            chunk = ids[start : start + 256]
            rows = [
                {"sample_id": s, "label": int(s[-3:]) - 1, "setup": 1, "camera": 1, "performer": int(s[9:12]),
                 "replication": int(s[13:16]), "part": "", "n_frames": frames, "n_persons": 2}
                for s in chunk
            ]  # fmt: skip
            w.write(rows, np.stack([random_sample(rng, frames) for _ in chunk]))


def train_batches(x: np.ndarray, batch: int, seed: int, drop_last: bool):
    """The training loop's batches of one epoch: (B, C, T, V, M) tensors gathered by index."""
    for idx in epoch_batches(len(x), batch, seed, drop_last):
        yield torch.from_numpy(np.ascontiguousarray(x[idx])), None, None


def rate(n_samples: int, seconds: float) -> float:
    return round(n_samples / seconds, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs of each iterator (best is kept)")
    parser.add_argument("--quick", action="store_true", help="1,000 samples")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "loading.json")
    args = parser.parse_args()
    n = 1000 if args.quick else args.samples

    work = ROOT / "benchmarks" / "work" / "loading"
    work.mkdir(parents=True, exist_ok=True)
    interim, split = work / "ntu60.parquet", work / "ntu60-xsub.parquet"
    t = time.perf_counter()
    write_random_interim(interim, n, args.frames)
    write_s = time.perf_counter() - t
    make_split_file(interim, SettingSpec(dataset="ntu60", benchmark="xsub"), SplitConfig(), split)

    t = time.perf_counter()
    arrays = load_arrays(interim, split, "train", "joint", 100)
    load_s = time.perf_counter() - t
    m = len(arrays)

    buffer = np.empty_like(arrays.x)
    np.copyto(buffer, arrays.x)  # first touch of the buffer's pages
    t = time.perf_counter()
    np.copyto(buffer, arrays.x)
    memcpy_s = time.perf_counter() - t
    del buffer

    def epoch_seconds(batches) -> float:
        t0 = time.perf_counter()
        for xb, _, _ in batches:
            xb.shape  # noqa: B018 - consume the batch
        return time.perf_counter() - t0

    loader = DataLoader(SkeletonDataset(arrays), batch_size=args.batch, shuffle=True, num_workers=0)
    runs: dict[str, list[float]] = {"ours": [], "ours_drop": [], "dataloader": []}
    for epoch in range(args.epochs):  # round-robin, so changing machine load hits all three alike
        for key, drop in (("ours", False), ("ours_drop", True)):
            batches = train_batches(arrays.x, args.batch, seed=epoch, drop_last=drop)
            runs[key].append(epoch_seconds(batches))
        runs["dataloader"].append(epoch_seconds(iter(loader)))
    ours, ours_drop, dl = (min(runs[k]) for k in ("ours", "ours_drop", "dataloader"))

    result = {
        "samples": n,
        "train_samples": m,
        "shape": list(arrays.x.shape[1:]),
        "bytes_per_sample": int(arrays.x[0].nbytes),
        "write_interim_s": round(write_s, 3),
        "interim_mb": round(interim.stat().st_size / 1e6, 1),
        "load_arrays": {"seconds": round(load_s, 3), "samples_per_s": rate(m, load_s)},
        "train_batches": {
            "batch": args.batch,
            "samples_per_s": rate(m, ours),
            "samples_per_s_drop_last": rate((m // args.batch) * args.batch, ours_drop),
            "target_samples_per_s": 20000,
            "meets_target": m / ours >= 20000,
        },
        "dataloader": {"samples_per_s": rate(m, dl)},
        "ratio_train_batches_vs_dataloader": round(dl / ours, 2),
        "memcpy_gb_per_s": round(arrays.x.nbytes / memcpy_s / 1e9, 2),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    write_json_atomic(args.out, result)
    shutil.rmtree(work, ignore_errors=True)
    print(result)


if __name__ == "__main__":
    main()
