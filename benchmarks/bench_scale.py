"""Paper-scale data on one machine: disk size, loader speed and `stf train` memory at NTU-120 and Kinetics size.

For each dataset it writes a synthetic interim parquet straight from arrays, through
`stf.data.preprocess.InterimWriter` (what `stf preprocess` writes; generating 355,000 raw
files would take hours and measure the parsers instead):

- ntu120: 114,480 samples, C = 4 (x, y, z, visibility), V = 25, M = 2; lengths log-normal
  around 75 frames clipped to 30..300 (as benchmarks/bench_preprocess.py; NTU's clips are 1-10 s
  at 30 fps); 22 % two-person samples (26 of NTU-120's 120 classes are mutual actions).
- kinetics: 240,436 clips (the Kinetics-400 training set of the skeleton release), C = 3
  (x, y, confidence), V = 18, M = 2; 80 % of the clips 300 frames long (10 s at 30 fps), the
  rest 30..300; a second person in 60 % of the clips; 5 % of the joints missing (score 0).

Coordinates are smooth random walks (consecutive frames of a shared pool of motion, at a
random offset per sample), so the float data compresses about as little as real skeletons do;
absent persons and missing joints are exact zeros, visibility 0/1.

Measured per dataset, in this order:
- disk_gb: the file (float32 storage, the default); ntu120 also with float16 storage and in
  the padded layout this replaces (T = 300 repeat-padded float32 fixed-size lists, lz4, 64 MB
  row groups), written for a 5 % subset and scaled up ("disk_gb_padded_layout");
- loader samples/s at T = 300, batch 32, joint and bone, with 0 and 2 workers: the first
  `--batches` batches of a shuffled epoch (`stf.training.loop.epoch_batches`), read by
  `stf.data.loader.batch_loader` over a `SkeletonPart` of every sample; the first 3 batches
  are not timed. `loader_samples_per_s` holds the 2-worker figure, all four are in "loader".
  The page cache starts with whatever writing the file left in it (noted: file size vs RAM);
- the peak memory of `stf train` (the CLI, bone stream, num_workers 2, widths 4/4/4, T = 300,
  batch 32 in forward chunks of 16): one epoch over a bounded split (`--train` training and
  `--test` test samples drawn from the file) instead of the whole training part: a CPU trains
  this model at about one sample per second at T = 300, so a real epoch would take 17 h
  (NTU-120) and 67 h (Kinetics). The split file is the only bounded thing: the run opens the
  full-size interim file and reads its metadata. It runs twice, on the full-size file and on
  one holding its first 10 % of samples (same split samples), to show the peak does not grow
  with the dataset. Memory is sampled every 0.25 s over the process and its workers: summed
  RSS (counts pages shared with the forked workers once per process: an upper bound) and
  summed PSS (shared pages split between the processes). "train_epoch_peak_rss_gb" is the
  summed RSS on the full-size file.
- "today": the memory the replaced design needed for the same `stf train` on the whole
  setting, computed from array sizes (not measured): both parts held as (N, C, 300, V, M)
  float32, and for the bone stream `bone_features` on a whole part, which allocates on top of
  its input a peak the issue measured with tracemalloc at 3.25x that input for NTU and 3.0x
  for Kinetics (so the train part peaks at 4.25x / 4x, then the test part beside it); the interpreter,
  torch and the model come on top. NTU-120 x-sub part sizes come from the synthetic ids and the
  protocol's subject list, Kinetics' from the real release (240,436 train, 19,796 val).
- float16 storage error on the real NTU fixtures (../shared/fixtures/ntu) and on `stf synth`
  Kinetics clips: max |float16 - float32| of the normalised values.

The machine's load (`uptime`) is recorded before each stage; other jobs share its 2 cores.

Writes benchmarks/results/scale.json ({ntu120: {...}, kinetics: {...}, machine, command});
`--quick` uses 2 % of the samples and writes benchmarks/work/scale_quick.json instead.
Usage: .venv/bin/python benchmarks/bench_scale.py [--quick] [--only ntu120] [--batches 150]
The full run takes about an hour on 2 shared cores and needs ~45 GB of free disk for a while
(the Kinetics file is 31 GB); files are deleted as soon as they are measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from stf.config import PreprocessConfig, SettingSpec
from stf.data.dataset import load_part
from stf.data.loader import batch_loader
from stf.data.preprocess import STORAGE_AXES, InterimWriter, preprocess, read_interim, read_interim_meta
from stf.data.protocols import NTU120_XSUB_TRAIN
from stf.data.splits import benchmark_part
from stf.io import write_json_atomic
from stf.training.loop import epoch_batches, epoch_seed

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work" / "scale"
FRAMES, BATCH = 300, 32
SIZES = {"ntu120": 114_480, "kinetics": 240_436}
NTU_GRID = {"ntu60": (17, 3, 40, 2, 60), "ntu120": (32, 3, 106, 2, 120)}  # setups, cameras, performers, reps, actions
KINETICS_VAL = 19_796  # clips in the Kinetics-skeleton validation set (for the "today" figure)
BONE_PEAK_FACTOR = {"ntu120": 3.25, "kinetics": 3.0}  # bone_features peak / input, measured in issue 10
SHAPES = {"ntu60": (4, 25, 2), "ntu120": (4, 25, 2), "kinetics": (3, 18, 2)}  # (C, V, M) of a frame
CHANNELS = {"ntu60": ["x", "y", "z", "visibility"], "ntu120": ["x", "y", "z", "visibility"],
            "kinetics": ["x", "y", "confidence"]}  # fmt: skip
SETTING = {"ntu60": "ntu60-xsub", "ntu120": "ntu120-xsub", "kinetics": "kinetics"}
GB = 1e9


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# --------------------------------------------------------------------------- synthetic interim files


def sample_table(dataset: str, n: int, seed: int = 0) -> pd.DataFrame:
    """Sorted ids, labels, id fields and lengths of n synthetic samples (deterministic)."""
    rng = np.random.default_rng(seed)
    if dataset in NTU_GRID:
        grid = NTU_GRID[dataset]
        flat = np.sort(rng.choice(math.prod(grid), size=n, replace=False))
        s, c, p, r, a = np.unravel_index(flat, grid)
        ids = [f"S{s_ + 1:03d}C{c_ + 1:03d}P{p_ + 1:03d}R{r_ + 1:03d}A{a_ + 1:03d}" for s_, c_, p_, r_, a_ in
               zip(s, c, p, r, a, strict=True)]  # fmt: skip
        meta = pd.DataFrame({"sample_id": ids, "label": a, "setup": s + 1, "camera": c + 1, "performer": p + 1,
                             "replication": r + 1, "part": ""})  # fmt: skip
        lengths = np.clip(np.round(rng.lognormal(np.log(75), 0.45, n)), 30, 300)
        persons = np.where(rng.random(n) < 0.22, 2, 1)
    else:
        ids = [f"k{i:010d}" for i in range(n)]  # YouTube-id-like, 11 characters, sorted
        meta = pd.DataFrame({"sample_id": ids, "label": rng.integers(0, 400, n), "setup": -1, "camera": -1,
                             "performer": -1, "replication": -1, "part": "train"})  # fmt: skip
        lengths = np.where(rng.random(n) < 0.8, 300, rng.integers(30, 301, n))
        persons = np.where(rng.random(n) < 0.6, 2, 1)
    meta["n_frames"] = lengths.astype(np.int64)
    meta["n_persons"] = persons
    return meta


class Motion:
    """Frames of smooth random motion for synthetic samples: a shared pool, a random offset per sample."""

    def __init__(self, dataset: str, seed: int = 1, pool_frames: int = 1 << 16) -> None:
        c, v, m = SHAPES[dataset]
        rng = np.random.default_rng(seed)
        steps = rng.standard_normal((pool_frames, c, v, m), dtype=np.float32) * 0.02
        self.pool = np.cumsum(steps, axis=0) % 2.0 - 1.0  # (P, C, V, M) wandering in [-1, 1)
        self.rng = np.random.default_rng(seed + 1)
        self.dataset = dataset

    def sample(self, n: int, persons: int) -> np.ndarray:
        """(n, C, V, M) float32: one stored sample."""
        o = int(self.rng.integers(0, len(self.pool) - n))
        x = self.pool[o : o + n].copy()
        if self.dataset != "kinetics":
            x[:, 3] = 1.0  # visibility
        else:
            x[:, 2] = np.abs(x[:, 2])  # confidence in [0, 1)
            missing = self.rng.random((n, 1, x.shape[2], x.shape[3])) < 0.05
            x *= ~missing
        if persons == 1:
            x[..., 1] = 0.0
        return x


def write_interim(dataset: str, path: Path, n: int, dtype: str = "float32", total: int | None = None,
                  frames: int = FRAMES) -> dict:  # fmt: skip
    """The synthetic interim file of the first n of `total` (default SIZES) samples, loaded at `frames`;
    returns {seconds, gb, row_groups, footer_mb}."""
    meta = sample_table(dataset, total or SIZES[dataset])[:n]
    c, v, m = SHAPES[dataset]
    num_class = NTU_GRID[dataset][-1] if dataset in NTU_GRID else 400
    info = {
        "dataset": dataset,
        "layout": "openpose18" if dataset == "kinetics" else "ntu25",
        "shape": [c, frames, v, m],
        "num_class": num_class,
        "channels": CHANNELS[dataset],
        "pad": "repeat",
        "storage": {"dtype": dtype, "axes": STORAGE_AXES},
    }
    motion = Motion(dataset)
    t0 = time.perf_counter()
    records = meta.to_dict("records")
    with InterimWriter(path, info) as w:
        for s in range(0, n, 512):
            rows = records[s : s + 512]
            w.write(rows, [motion.sample(int(r["n_frames"]), int(r["n_persons"])) for r in rows])
    md = pq.ParquetFile(path).metadata
    return {"seconds": round(time.perf_counter() - t0, 1), "gb": round(path.stat().st_size / GB, 3),
            "row_groups": md.num_row_groups, "footer_mb": round(md.serialized_size / 1e6, 1)}  # fmt: skip


def padded_layout_gb(dataset: str, n: int, work: Path) -> float:
    """Disk size of the replaced layout (T = 300 repeat-padded float32 fixed-size lists, lz4, 64 MB
    row groups), measured on the first 5 % of the samples and scaled to n."""
    k = max(1, n // 20)
    meta = sample_table(dataset, SIZES[dataset])[:k]
    c, v, m = SHAPES[dataset]
    size = c * FRAMES * v * m
    motion, path = Motion(dataset), work / "padded.parquet"
    per_group = max(1, (64 << 20) // (4 * size))
    writer = None
    for s in range(0, k, per_group):
        part = meta[s : s + per_group]
        data = np.empty((len(part), c, FRAMES, v, m), np.float32)
        for i, r in enumerate(part.itertuples()):
            x = motion.sample(int(r.n_frames), int(r.n_persons))  # (F, C, V, M)
            data[i] = x[np.arange(FRAMES) % len(x)].transpose(1, 0, 2, 3)  # repeat-padded (C, T, V, M)
        table = pa.Table.from_pandas(part, preserve_index=False).append_column(
            "data", pa.FixedSizeListArray.from_arrays(pa.array(data.reshape(-1)), size)
        )
        writer = writer or pq.ParquetWriter(path, table.schema, compression="lz4")
        writer.write_table(table, row_group_size=len(part))
    writer.close()
    gb = path.stat().st_size / GB * n / k
    path.unlink()
    return round(gb, 3)


# --------------------------------------------------------------------------- loader and training


def loader_rate(data: Path, split: Path, stream: str, workers: int, batches: int) -> float:
    """Samples/s of `batch_loader` over the first `batches` batches of a shuffled epoch (3 untimed)."""
    part = load_part(data, split, "train", stream)
    plan = epoch_batches(len(part), BATCH, epoch_seed(0, 0))[: batches + 3]
    it = iter(batch_loader(part, plan, workers))
    for _ in range(3):
        next(it)
    t0, n = time.perf_counter(), 0
    for x, _, _ in it:
        n += len(x)
    return round(n / (time.perf_counter() - t0), 1)


def all_train_split(data: Path, out: Path, dataset: str) -> None:
    """A split with every sample in the training part (what the loader benchmark reads)."""
    meta, _ = read_interim_meta(data)
    write_split(out, dataset, meta["sample_id"], meta["label"], np.full(len(meta), "train"))


def write_split(out: Path, dataset: str, ids, labels, part: np.ndarray) -> None:
    """A split parquet in `stf split`'s format (p100 = the training part)."""
    spec = SettingSpec(dataset=dataset, benchmark="trainval" if dataset == "kinetics" else "xsub")
    table = pa.table({"sample_id": pa.array(list(ids), pa.string()), "label": pa.array(np.asarray(labels, np.int32)),
                      "part": pa.array(list(part), pa.string()), "p100": pa.array(part == "train")})  # fmt: skip
    info = {"setting": SETTING[dataset], "dataset": dataset, "benchmark": spec.benchmark, "seed": 0}
    pq.write_table(table.replace_schema_metadata({b"stf": json.dumps(info).encode()}), out)


def bounded_split(data: Path, out: Path, dataset: str, n_train: int, n_test: int, pool: int) -> None:
    """`n_train` training and `n_test` test samples drawn from the first `pool` rows; the rest unused."""
    meta, _ = read_interim_meta(data)
    rng = np.random.default_rng(0)
    pick = rng.choice(pool, size=n_train + n_test, replace=False)
    part = np.full(len(meta), "unused", dtype=object)
    part[pick[:n_train]] = "train"
    part[pick[n_train:]] = "test"
    write_split(out, dataset, meta["sample_id"], meta["label"], part.astype(str))


def bench_params(path: Path) -> None:
    """params.yaml with a `scale` profile: T = 300, widths 4/4/4, batch 32 (chunks of 16), 1 epoch, 2 workers.

    Widths 4/4/4 rather than the micro profile's 4/8/8: at T = 300 a stride-2 1x1 conv with 8 input
    channels crashes oneDNN's AVX jit kernel in backward on this CPU (see the report of issue 10).
    """
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    prof = dict(raw["profiles"]["micro"])
    one = {"ntu60": 1, "ntu120": 1, "kinetics": 1}
    prof.update(frames=FRAMES, widths=[4, 4, 4], batch_size=BATCH, forward_batch_size=16, epochs=one,
                lr_steps={k: [1] for k in one}, eval_batch_size=32, threads=2)  # fmt: skip
    raw["profiles"]["scale"] = prof
    raw["profile"] = "scale"
    raw["train"] = {**raw["train"], "num_workers": 2, "device": "cpu"}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def train_memory(params: Path, dataset: str, data: Path, split: Path, out: Path, log: Path) -> dict:
    """Run `stf train` (bone) and sample its process tree's memory; returns GB peaks and seconds."""
    cmd = [str(Path(sys.executable).parent / "stf"), "train", "--params", str(params), "--setting", SETTING[dataset],
           "--stream", "bone", "--data", str(data), "--split", str(split), "--out", str(out)]  # fmt: skip
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=WORK)
        rss, pss, main, procs = [], [], [], 0
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            tree = [root, *root.children(recursive=True)]
            r = p = 0
            for i, q in enumerate(tree):
                try:
                    full = q.memory_full_info()
                except psutil.Error:
                    continue
                r, p = r + full.rss, p + full.pss
                if i == 0:
                    main.append(full.rss)
            rss.append(r)
            pss.append(p)
            procs = max(procs, len(tree))
            time.sleep(0.25)
    if proc.returncode != 0:
        raise RuntimeError(f"stf train failed ({proc.returncode}); see {log}: {log.read_text()[-2000:]}")
    quarters = [round(max(q) / GB, 3) for q in np.array_split(np.array(rss), 4) if len(q)]
    return {
        "peak_rss_gb": round(max(rss) / GB, 3),
        "peak_pss_gb": round(max(pss) / GB, 3),
        "peak_main_process_rss_gb": round(max(main) / GB, 3),
        "peak_rss_gb_by_quarter": quarters,
        "processes": procs,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def today_memory(dataset: str, n_train: int, n_test: int) -> dict:
    """GB that the replaced design held for `stf train` of the whole setting (arrays only, computed)."""
    c, v, m = SHAPES[dataset]
    per = c * FRAMES * v * m * 4  # bytes of one padded float32 sample
    tr, te, f = n_train * per / GB, n_test * per / GB, BONE_PEAK_FACTOR[dataset]
    return {
        "n_train": n_train,
        "n_test": n_test,
        "bytes_per_sample": per,
        "joint_gb": round(tr + te, 2),
        "bone_gb": round(max((1 + f) * tr, tr + (1 + f) * te), 2),
        "bone_peak_factor": f,
        "how": "computed from array sizes: parts as (N, C, 300, V, M) float32, bone_features peak "
        "factor from issue 10's tracemalloc measurement; interpreter, torch, model not included",
    }


def setting_sizes(dataset: str) -> tuple[int, int]:
    if dataset == "kinetics":
        return SIZES["kinetics"], KINETICS_VAL
    meta = sample_table(dataset, SIZES[dataset])
    train = int(meta["performer"].isin(NTU120_XSUB_TRAIN).sum())
    assert (benchmark_part(meta, SettingSpec(dataset="ntu120", benchmark="xsub")) == "train").sum() == train
    return train, len(meta) - train


# --------------------------------------------------------------------------- float16 error on real files


def float16_error(work: Path) -> dict:
    """max |float16 - float32| of preprocessed values: real NTU fixtures, synthetic Kinetics clips."""
    from stf.config import SynthConfig, SynthSizes
    from stf.data.synth import synthesize

    out = {}
    fixtures = ROOT.parent / "shared" / "fixtures" / "ntu"
    kin = work / "kinetics_raw"
    sizes = SynthSizes(
        classes={"ntu60": 2, "ntu120": 2, "kinetics": 4}, samples_per_class={"ntu60": 2, "ntu120": 2, "kinetics": 6}
    )
    synthesize("kinetics", kin, SynthConfig(), sizes)
    for name, dataset, raw in (("ntu_fixtures", "ntu60", fixtures), ("kinetics_synth", "kinetics", kin)):
        if not raw.is_dir():
            continue
        got = {}
        for dtype in ("float32", "float16"):
            path = work / f"{name}-{dtype}.parquet"
            preprocess(dataset, raw, path, PreprocessConfig(storage_dtype=dtype), FRAMES, None, False, workers=1)
            got[dtype] = read_interim(path).data
        diff = np.abs(got["float16"] - got["float32"])
        out[name] = {
            "samples": int(len(diff)),
            "max_abs": float(diff.max()),
            "max_abs_value": float(np.abs(got["float32"]).max()),
            "mean_abs": float(diff.mean()),
        }
    shutil.rmtree(kin, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- main


def measure(dataset: str, n: int, args: argparse.Namespace, params: Path) -> dict:
    work = WORK / dataset
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    res: dict = {"samples": n, "load_before": uptime()}
    data = work / f"{dataset}.parquet"
    written = write_interim(dataset, data, n)
    res["disk_gb"], res["write"] = written["gb"], written
    meta, _ = read_interim_meta(data)
    res["mean_frames"] = round(float(meta["n_frames"].mean()), 1)
    res["ram_gb"] = round(psutil.virtual_memory().total / GB, 1)
    if dataset == "ntu120":
        half = work / "half.parquet"
        res["disk_gb_float16"] = write_interim(dataset, half, n, "float16")["gb"]
        half.unlink()
        res["disk_gb_padded_layout"] = padded_layout_gb(dataset, n, work)
    split = work / "all-train.parquet"
    all_train_split(data, split, dataset)
    res["load_before_loader"] = uptime()
    loader = {}
    for stream in ("joint", "bone"):
        loader[stream] = {f"workers_{w}": loader_rate(data, split, stream, w, args.batches) for w in (0, 2)}
    res["loader"] = loader
    res["loader_samples_per_s"] = {s: loader[s]["workers_2"] for s in ("joint", "bone")}
    res["loader_batches_timed"] = args.batches
    # stf train on the full file and on its first 10 %, same bounded split
    small = work / f"{dataset}-10pct.parquet"
    res["write_10pct"] = write_interim(dataset, small, n // 10)
    runs = {}
    for name, path in (("full", data), ("tenth", small)):
        bsplit = work / f"bounded-{name}.parquet"
        bounded_split(path, bsplit, dataset, args.train, args.test, pool=n // 10)
        res[f"load_before_train_{name}"] = uptime()
        runs[name] = train_memory(params, dataset, path, bsplit, work / f"model-{name}", work / f"train-{name}.log")
        runs[name]["interim_samples"] = len(read_interim_meta(path)[0])
    res["train"] = {
        "stream": "bone",
        "widths": [4, 4, 4],
        "frames": FRAMES,
        "batch": BATCH,
        "forward_batch": 16,
        "num_workers": 2,
        "train_samples": args.train,
        "test_samples": args.test,
        "runs": runs,
        "bounded": "one epoch over a bounded split of the full-size file (see the script's docstring)",
    }
    res["train_epoch_peak_rss_gb"] = runs["full"]["peak_rss_gb"]
    res["today"] = today_memory(dataset, *setting_sizes(dataset))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 %% of the samples; writes benchmarks/work/scale_quick.json"
    )
    parser.add_argument("--only", nargs="*", choices=sorted(SIZES), default=sorted(SIZES, reverse=True))
    parser.add_argument("--batches", type=int, default=150, help="timed loader batches per configuration")
    parser.add_argument("--train", type=int, default=64, help="training samples of the bounded stf train epoch")
    parser.add_argument("--test", type=int, default=32, help="test samples of the bounded stf train epoch")
    parser.add_argument("--keep", action="store_true", help="keep the files in benchmarks/work/scale")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or (ROOT / "benchmarks" / ("work/scale_quick.json" if args.quick else "results/scale.json"))
    if args.quick:
        args.batches, args.train, args.test = min(args.batches, 20), min(args.train, 32), min(args.test, 32)
    WORK.mkdir(parents=True, exist_ok=True)
    params = WORK / "params.yaml"
    bench_params(params)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    result: dict = {k: v for k, v in previous.items() if k in SIZES and k not in args.only}
    for dataset in args.only:
        n = SIZES[dataset] // 50 if args.quick else SIZES[dataset]
        print(f"== {dataset}: {n} samples", flush=True)
        result[dataset] = measure(dataset, n, args, params)
        print(json.dumps(result[dataset], indent=1), flush=True)
    result["float16_error"] = float16_error(WORK)
    cpu = platform.processor() or platform.machine()
    result["machine"] = (f"{os.cpu_count()} CPUs ({cpu}), {psutil.virtual_memory().total / GB:.0f} GB RAM, shared with "
                         f"other jobs; load at the end: {uptime()}")  # fmt: skip
    result["versions"] = {"python": platform.python_version(), "numpy": np.__version__, "pyarrow": pa.__version__}
    result["command"] = " ".join([".venv/bin/python", "benchmarks/bench_scale.py", *sys.argv[1:]])
    write_json_atomic(out, result)
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    print(json.dumps({k: result[k] for k in ("machine", "command")}, indent=1))


if __name__ == "__main__":
    main()
