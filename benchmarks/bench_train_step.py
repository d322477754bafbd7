"""Training-step throughput: MS-G3D (cross-entropy) vs STF with the "dcg" and "e" loss sets.

One full step = forward, loss, backward, SGD update, on the same random NTU-shaped batch
(N, C=4, T, V=25, M=2) and the same device. Configurations run round-robin, one step each
per round, so a change in machine load hits all of them alike; the median step time of each
is reported, with samples/s and the ratio to the MS-G3D step (target: STF ≤ 2.0 ×).
Both wall-clock and process CPU time are recorded; on a shared machine the CPU-time ratio
(one torch thread by default, so CPU time is compute, not spinning) is the one to compare.

    .venv/bin/python benchmarks/bench_train_step.py            # writes benchmarks/results/train_step.json
    .venv/bin/python benchmarks/bench_train_step.py --widths 96 192 384 --steps 3
    .venv/bin/python benchmarks/bench_train_step.py --quick   # T = 32, 2 steps
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from stf.config import Lambdas, load_params
from stf.io import write_json_atomic
from stf.method.losses import stf_objective
from stf.models.msg3d import MSG3D
from stf.stages.spec import spec_for

ROOT = Path(__file__).resolve().parents[1]

# name -> (model with STF modules?, active loss terms or None for plain cross-entropy)
CONFIGS: dict[str, tuple[bool, list[str] | None]] = {
    "msg3d": (False, None),
    "stf_ce": (True, []),
    "stf_dcg": (True, ["d", "c", "gk"]),
    "stf_e": (True, ["e"]),
}


def _step(model, opt, x, y, lambdas: Lambdas, active) -> None:
    opt.zero_grad(set_to_none=True)
    if active is None:
        loss = F.cross_entropy(model(x), y)
    else:
        loss, _ = stf_objective(model, x, y, lambdas, active)
    loss.backward()
    opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--widths", type=int, nargs=3, default=[48, 96, 192])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--quick", action="store_true", help="T = 32 and 2 timed steps (same ratios, less time)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_step.json")
    args = ap.parse_args()
    if args.quick:
        args.frames, args.steps = 32, 2

    params = load_params(args.params)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    num_class, channels = 60, 4
    torch.manual_seed(0)
    m = params.preprocess.persons
    x = torch.randn(args.batch, channels, args.frames, 25, m, device=device)  # (N, C, T, V, M)
    x[:, -1] = 1.0  # visibility channel
    y = torch.randint(0, num_class, (args.batch,), device=device)

    runs = {}
    for name, (with_stf, active) in CONFIGS.items():
        spec = spec_for(params, "ntu60", num_class, channels, stf=with_stf)
        spec = dataclasses.replace(spec, widths=tuple(args.widths))
        torch.manual_seed(0)
        model = MSG3D(spec).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
        runs[name] = (model, opt, active)

    lambdas = params.stf.lambdas
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(args.warmup + args.steps):
        for name, (model, opt, active) in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            _step(model, opt, x, y, lambdas, active)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        print(
            f"round {i + 1}/{args.warmup + args.steps}: "
            + ", ".join(f"{n} {t[-1]:.2f}s (cpu {cpu[n][-1]:.2f}s)" for n, t in times.items() if t),
            flush=True,
        )

    base = statistics.median(times["msg3d"])
    base_cpu = statistics.median(cpu["msg3d"])
    results = {}
    for name, ts in times.items():
        med, med_cpu = statistics.median(ts), statistics.median(cpu[name])
        results[name] = {
            "active": CONFIGS[name][1],
            "step_s_median": med,
            "step_s_all": ts,
            "samples_per_s": args.batch / med,
            "ratio_to_msg3d": med / base,
            "cpu_s_median": med_cpu,
            "cpu_s_all": cpu[name],
            "samples_per_cpu_s": args.batch / med_cpu,
            "cpu_ratio_to_msg3d": med_cpu / base_cpu,
        }
    report = {
        "what": "full training step (forward, loss, backward, SGD): MS-G3D cross-entropy vs STF loss sets",
        "target": "STF step <= 2.0 x MS-G3D step",
        "within_target_cpu_time": {n: r["cpu_ratio_to_msg3d"] <= 2.0 for n, r in results.items() if n != "msg3d"},
        "within_target_wall": {n: r["ratio_to_msg3d"] <= 2.0 for n, r in results.items() if n != "msg3d"},
        "results": results,
        "setup": {
            "dataset_shape": "ntu60",
            "batch": args.batch,
            "channels": channels,
            "frames": args.frames,
            "joints": 25,
            "persons": m,
            "num_class": num_class,
            "widths": list(args.widths),
            "lambdas": params.stf.lambdas.model_dump(),
            "steps": args.steps,
            "warmup": args.warmup,
            "threads_requested": args.threads,
        },
        "machine": {
            "device": str(device),
            "cpu_count": os.cpu_count(),
            "load_average_after": os.getloadavg(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        },
    }
    write_json_atomic(args.out, report)
    for name, r in results.items():
        print(
            f"{name:8s} wall {r['step_s_median']:.3f} s/step "
            f"({r['samples_per_s']:.2f} samples/s, x{r['ratio_to_msg3d']:.2f})"
            f"  cpu {r['cpu_s_median']:.3f} s/step (x{r['cpu_ratio_to_msg3d']:.2f})"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
