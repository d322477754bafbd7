"""Run MS-G3D / STF forward and backward many times and compare the gradients with torch's
native (non-oneDNN) CPU kernels: the check behind tests/test_onednn_safety.py and
benchmarks/bench_onednn.py.

Meant to run in a fresh process with the environment that selects the kernels under test,
e.g. `ONEDNN_MAX_CPU_ISA=AVX2 MALLOC_CHECK_=3 python benchmarks/onednn_probe.py --dataset ntu60
--widths 4 8 8 --stf`. A heap corruption in a oneDNN kernel aborts the process (non-zero exit,
glibc's message on stderr); wrong gradients exit with status 1 and a line naming the tensor.
Prints one JSON line: the configuration, iterations, worst relative gradient difference.

The model runs with BatchNorm in eval mode (a fixed affine map): every convolution still runs
its forward, backward-data and backward-weights kernels, but no gradient is a near-cancelling
sum over batch statistics (in train mode some differ by up to 1.6e-3 of the largest gradient
between oneDNN and the native kernels at every ISA, which is rounding, not the bug).
Difference of a tensor = max |g_onednn - g_native| / G, G the largest |g_native| of any
parameter; measured ~3e-6 on sound kernels, so `--tolerance` (default 1e-3) is far above
rounding and far below what a corrupted buffer gives. A non-finite gradient counts as
infinitely different.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch.nn import functional as F

from stf.config import Lambdas
from stf.data.skeletons import layout_for
from stf.method.losses import stf_objective
from stf.models.msg3d import MSG3D, ModelSpec, STFSpec

IN_CHANNELS = {"ntu60": 4, "ntu120": 4, "kinetics": 3}  # NTU: x, y, z, visibility; Kinetics: x, y, score


def build(dataset: str, widths: tuple[int, int, int], stf: bool) -> MSG3D:
    layout = layout_for(dataset)
    family_scales = (13, 6) if dataset.startswith("ntu") else (8, 8)
    spec = ModelSpec(
        num_class=5,
        num_point=layout.num_joints,
        num_person=2,
        in_channels=IN_CHANNELS[dataset],
        edges=layout.edges,
        widths=widths,
        gcn_scales=family_scales[0],
        g3d_scales=family_scales[1],
        stf=STFSpec() if stf else None,
    )
    return MSG3D(spec)


def gradients(model: MSG3D, x: torch.Tensor, y: torch.Tensor, stf: bool, onednn: bool) -> dict[str, torch.Tensor]:
    """Parameter gradients of one training step (STF: the full eq. 6 objective, whose L_c
    differentiates through Grad-CAM; MS-G3D: cross-entropy)."""
    model.zero_grad(set_to_none=True)
    with torch.backends.mkldnn.flags(enabled=onednn):
        if stf:
            loss, _ = stf_objective(model, x, y, Lambdas(e=0.01, d=0.1, c=0.1, gk=0.01), ("e", "d", "c", "gk"))
        else:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=sorted(IN_CHANNELS), default="ntu60", help="skeleton layout and C")
    ap.add_argument("--widths", type=int, nargs=3, default=(4, 8, 8), help="channels of the three blocks")
    ap.add_argument("--stf", action="store_true", help="STF model and objective instead of MS-G3D + CE")
    ap.add_argument("--frames", type=int, default=16, help="T")
    ap.add_argument("--batch", type=int, default=8, help="N (samples; the model sees N*M persons)")
    ap.add_argument("--iterations", type=int, default=30, help="oneDNN steps compared with the native one")
    ap.add_argument("--eval-batch", type=int, default=0, help="also run no-grad forwards of this batch size")
    ap.add_argument("--tolerance", type=float, default=1e-3, help="largest relative gradient difference")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build(args.dataset, tuple(args.widths), args.stf).eval()
    c, v = model.spec.in_channels, model.spec.num_point
    x = torch.randn(args.batch, c, args.frames, v, 2)  # (N, C, T, V, M)
    y = torch.arange(args.batch) % model.spec.num_class
    reference = gradients(model, x, y, args.stf, onednn=False)
    scale = max(float(g.abs().max()) for g in reference.values())
    worst, worst_name = 0.0, ""
    for _ in range(args.iterations):
        for name, g in gradients(model, x, y, args.stf, onednn=True).items():
            ref = reference[name]
            diff = float((g - ref).abs().max())
            rel = diff / scale if torch.isfinite(g).all() else float("inf")
            if rel > worst:
                worst, worst_name = rel, name
        if args.eval_batch:
            with torch.no_grad():
                model(torch.randn(args.eval_batch, c, args.frames, v, 2))  # (N_eval, C, T, V, M)
    result = {
        "dataset": args.dataset,
        "widths": list(args.widths),
        "stf": args.stf,
        "frames": args.frames,
        "batch": args.batch,
        "eval_batch": args.eval_batch,
        "iterations": args.iterations,
        "worst_relative_grad_diff": worst,
        "worst_tensor": worst_name,
    }
    print(json.dumps(result))
    if worst > args.tolerance:
        print(
            f"gradient of {worst_name} differs from the native kernel's by {worst:.3g} of the largest gradient",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
