"""The GPU check (`benchmarks/gpu_check.sh`): CUDA tests, training and evaluation speed, one short paper epoch.

Steps, in order, each timed (the whole check is sized for at most 8 minutes on one GPU):

1. `pytest tests/test_gpu.py` (model, STF objective and AMP on CUDA vs CPU; the STF objective
   under bf16 and fp16 autocast vs fp32): pass/fail counts and the summary line.
2. Training samples/s of MS-G3D (cross-entropy) and of STF "dcg" (L_d + L_c + L_Gk) and "e"
   (L_e), NTU-60 shapes (C = 4, V = 25, M = 2, 60 classes), full width 96/192/384, T = 300,
   batch 32 in one forward, SGD step included, in fp32 and bf16 autocast (the engine's
   `amp_dtype` choice on GPUs that support it); `--steps` timed steps after 2 warm-up steps;
   peak GPU memory of each (torch.cuda.max_memory_allocated).
3. Evaluation samples/s of MS-G3D (no grad, batch 64) in fp32 and bf16.
4. One short epoch of the paper profile through the real CLI (`stf train`, joint stream, params
   `paper` profile with train.amp = true, num_workers = 8): a synthetic interim file of NTU-60
   size (56,880 samples at their own lengths, written straight from arrays as in
   bench_scale.py) and a split holding `--epoch-train` training / `--epoch-test` test samples, so the
   epoch is bounded; reports its seconds, training samples/s (data loading included) and the
   history row.

Writes benchmarks/results/gpu.json. `--dry-run` runs every step on the CPU with tiny sizes
(widths 4/4/4, T = 16, batch 4, 1 timed step, 600-sample interim file, the `micro`
profile; bf16 autocast on CPU) and writes benchmarks/work/gpu_dry.json instead: it checks the
script, not the GPU. `--skip-tests` leaves out step 1.

Usage: .venv/bin/python benchmarks/gpu_check.py [--dry-run] [--skip-tests] [--steps 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from stf.config import Lambdas, load_params
from stf.io import write_json_atomic
from stf.models.msg3d import MSG3D
from stf.stages.spec import spec_for
from stf.training.loop import CrossEntropyObjective, STFObjective

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work" / "gpu"
NTU60_SAMPLES = 56_880
GB = 1e9


def run_tests(device: torch.device) -> dict:
    """pytest tests/test_gpu.py; returns rc, counts and the summary line."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/test_gpu.py", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    summary = lines[-1] if lines else proc.stderr[-500:]
    counts = {k: 0 for k in ("passed", "failed", "skipped", "error")}
    for part in summary.strip("= ").split(","):
        words = part.split()
        if len(words) >= 2 and words[1].rstrip("s") in counts and words[0].isdigit():
            counts[words[1].rstrip("s")] = int(words[0])
    failures = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    return {"rc": proc.returncode, **counts, "summary": summary, "failures": failures,
            "seconds": round(time.perf_counter() - t0, 1), "device": str(device)}  # fmt: skip


def model_for(params, variant: str | None, full: bool, widths: tuple[int, int, int] | None) -> torch.nn.Module:
    """An NTU-60 MS-G3D (variant None) or STF objective; full width unless `widths` is given."""
    spec = spec_for(params, "ntu60", 60, 4, stf=variant is not None, full_width=full)
    if widths is not None:
        spec = dataclasses.replace(spec, widths=widths)
    model = MSG3D(spec)
    if variant is None:
        return CrossEntropyObjective(model)
    return STFObjective(model, Lambdas(), list(params.stf.variants[variant]), norm=params.stf.loss_norm)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rate(objective, device, dtype, batch: int, frames: int, steps: int) -> dict:
    """Samples/s of full SGD steps (forward, backward, step) and the peak memory, one forward per step."""
    objective = objective.to(device).train()
    opt = torch.optim.SGD(objective.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    g = torch.Generator().manual_seed(0)
    x = (torch.cumsum(torch.randn(batch, 4, frames, 25, 2, generator=g) * 0.05, dim=2)).to(device)
    y = torch.randint(0, 60, (batch,), generator=g).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(2 + steps):
        sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            total, _, _ = objective(x, y)
        scaler.scale(total).backward()
        scaler.step(opt)
        scaler.update()
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / GB if device.type == "cuda" else None
    return {
        "samples_per_s": round(batch / float(np.median(times)), 2),
        "step_s_median": round(float(np.median(times)), 4),
        "steps": steps,
        "peak_memory_gb": None if peak is None else round(peak, 2),
        "loss_finite": bool(torch.isfinite(total.detach())),
    }


@torch.no_grad()
def eval_rate(model, device, dtype, batch: int, frames: int, steps: int) -> dict:
    model = model.to(device).eval()
    x = torch.randn(batch, 4, frames, 25, 2, device=device) * 0.3
    times = []
    for i in range(2 + steps):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            model(x)
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return {"samples_per_s": round(batch / float(np.median(times)), 2), "batch": batch, "steps": steps}


def paper_epoch(args: argparse.Namespace, device: torch.device) -> dict:
    """`stf train` of one bounded epoch on an NTU-60-sized synthetic interim file."""
    from bench_scale import bounded_split, write_interim  # the script beside this one (its folder is on sys.path)

    WORK.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    if args.dry_run:
        prof, samples = "micro", 600
        raw["profiles"]["micro"] = {**raw["profiles"]["micro"], "widths": [4, 4, 4]}
        raw["train"] = {**raw["train"], "amp": True, "num_workers": 2, "device": "cpu"}
    else:
        prof, samples = "paper", NTU60_SAMPLES
        raw["train"] = {**raw["train"], "amp": True, "num_workers": 8, "device": "cuda"}
    raw["profile"] = prof
    raw["profiles"][prof] = {**raw["profiles"][prof], "epochs": {"ntu60": 1, "ntu120": 1, "kinetics": 1},
                             "lr_steps": {"ntu60": [1], "ntu120": [1], "kinetics": [1]}}  # fmt: skip
    frames = int(raw["profiles"][prof]["frames"])
    params_path, data, split = WORK / "params.yaml", WORK / "ntu60.parquet", WORK / "split.parquet"
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    t0 = time.perf_counter()
    written = write_interim("ntu60", data, samples, total=samples, frames=frames)
    bounded_split(data, split, "ntu60", args.epoch_train, args.epoch_test, pool=samples)
    out = WORK / "model"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(WORK / "model.work", ignore_errors=True)
    cmd = [str(Path(sys.executable).parent / "stf"), "train", "--params", str(params_path), "--setting", "ntu60-xsub",
           "--stream", "joint", "--data", str(data), "--split", str(split), "--out", str(out)]  # fmt: skip
    t1 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=WORK, capture_output=True, text=True)
    seconds = time.perf_counter() - t1
    if proc.returncode != 0:
        return {"rc": proc.returncode, "log_tail": proc.stderr[-3000:]}
    history = (out / "history.csv").read_text().splitlines()
    row = dict(zip(history[0].split(","), (float(v) for v in history[-1].split(",")), strict=True))
    return {"rc": 0, "profile": prof, "interim_samples": samples, "interim_gb": written["gb"],
            "write_seconds": round(t1 - t0, 1), "train_samples": args.epoch_train, "test_samples": args.epoch_test,
            "epoch_seconds": round(row["seconds"], 1), "stf_train_seconds": round(seconds, 1),
            "train_samples_per_s": round(args.epoch_train / row["seconds"], 1), "history_row": row,
            "amp": True, "num_workers": raw["train"]["num_workers"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="tiny sizes on the CPU; writes benchmarks/work/gpu_dry.json"
    )
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per configuration")
    parser.add_argument("--epoch-train", type=int, default=1024, help="training samples of the short paper epoch")
    parser.add_argument("--epoch-test", type=int, default=512)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    t_start = time.perf_counter()
    if args.dry_run:
        device, full, widths, frames, batch = torch.device("cpu"), False, (4, 4, 4), 16, 4
        args.steps, args.epoch_train, args.epoch_test = 1, 16, 8
        out = args.out or ROOT / "benchmarks" / "work" / "gpu_dry.json"
    else:
        if not torch.cuda.is_available():
            sys.exit("gpu_check: no CUDA device (use --dry-run to check the script on a CPU)")
        device, full, widths, frames, batch = torch.device("cuda"), True, None, 300, 32
        out = args.out or ROOT / "benchmarks" / "results" / "gpu.json"
        torch.backends.cudnn.benchmark = True
    params = load_params(ROOT / "params.yaml")
    bf16_ok = device.type == "cpu" or torch.cuda.is_bf16_supported()
    dtypes = {"fp32": None, "bf16": torch.bfloat16} if bf16_ok else {"fp32": None, "fp16": torch.float16}
    result: dict = {
        "dry_run": args.dry_run,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "shapes": {
            "frames": frames,
            "batch": batch,
            "widths": list(widths or params.profiles["paper"].widths),
            "C": 4,
            "V": 25,
            "M": 2,
            "classes": 60,
        },
    }
    if not args.skip_tests:
        result["tests"] = run_tests(device)
        print("tests:", result["tests"]["summary"], flush=True)
    train: dict = {}
    for name, variant in (("msg3d", None), ("stf-dcg", "dcg"), ("stf-e", "e")):
        train[name] = {}
        for label, dtype in dtypes.items():
            torch.manual_seed(0)
            train[name][label] = train_rate(
                model_for(params, variant, full, widths), device, dtype, batch, frames, args.steps
            )
            print(f"train {name} {label}: {train[name][label]}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    result["train"] = train
    result["eval"] = {}
    for label, dtype in dtypes.items():
        torch.manual_seed(0)
        model = model_for(params, None, full, widths).model
        result["eval"][label] = eval_rate(model, device, dtype, 2 * batch, frames, max(args.steps, 3))
        print(f"eval {label}: {result['eval'][label]}", flush=True)
    result["paper_epoch"] = paper_epoch(args, device)
    print("paper epoch:", result["paper_epoch"], flush=True)
    result["seconds_total"] = round(time.perf_counter() - t_start, 1)
    result["command"] = " ".join(["benchmarks/gpu_check.sh", *sys.argv[1:]])
    write_json_atomic(out, result)
    print(json.dumps({k: result[k] for k in ("device", "seconds_total")}), f"-> {out}")


if __name__ == "__main__":
    main()
