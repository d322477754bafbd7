"""Model speed and cost: our MS-G3D vs a straightforward original-structure MS-G3D, STF overhead.

Writes benchmarks/results/model.json with
- "train": training-step samples/s (forward + backward + SGD step) on CPU at N=8, T=64, M=2,
  full width, for `stf.models.msg3d.MSG3D` and for `ReferenceMSG3D` below (the original
  layer structure: nn.Unfold windows, per-scale adjacency stacked and applied with einsum,
  Conv3d window collapse), timed alternately in one run; "ratio" = ours / reference.
- "inference": samples/s of MS-G3D and STF (eval, no grad) at several (N, T, M).
- "flops": `stf.flops.compare_flops` at T = 300 for ntu60, ntu120 and kinetics.
- "machine": cpu count, torch version, threads.

Usage: .venv/bin/python benchmarks/bench_model.py [--quick] [--out benchmarks/results/model.json]
Takes about 3-5 minutes on 2 idle cores (--quick: under a minute, fewer repeats, smaller shapes).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from stf.config import load_params
from stf.flops import compare_flops
from stf.io import write_json_atomic
from stf.models.graph import adjacency, multiscale_stack, window_adjacency
from stf.models.msg3d import MSG3D, ModelSpec
from stf.models.stf import STFSpec

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]

# NTU-25 skeleton, 0-based (child, parent), as in MS-G3D's graph/ntu_rgb_d.py
NTU_EDGES = tuple(
    (a - 1, b - 1)
    for a, b in [
        (1, 2),
        (2, 21),
        (3, 21),
        (4, 3),
        (5, 21),
        (6, 5),
        (7, 6),
        (8, 7),
        (9, 21),
        (10, 9),
        (11, 10),
        (12, 11),
        (13, 1),
        (14, 13),
        (15, 14),
        (16, 15),
        (17, 1),
        (18, 17),
        (19, 18),
        (20, 19),
        (22, 23),
        (23, 8),
        (24, 25),
        (25, 12),
    ]
)


# --------------------------------------------------------------------------- reference implementation
# A direct transcription of the original *layer structure* (not its code): it is what ours must
# at least match in speed. Same parameters, same maths, the original's tensor operations.


class RefMLP(nn.Sequential):
    """1x1 conv + BN (+ ReLU)."""

    def __init__(self, c_in: int, c_out: int, relu: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class RefMSGCN(nn.Module):
    def __init__(self, k: int, c_in: int, c_out: int, a_bin: np.ndarray) -> None:
        super().__init__()
        stack = multiscale_stack(a_bin, k)  # (K, V, V)
        self.register_buffer("A_powers", torch.tensor(stack.reshape(-1, stack.shape[-1])))  # (K*V, V)
        self.A_res = nn.Parameter(torch.empty_like(self.A_powers).uniform_(-1e-6, 1e-6))
        self.k = k
        self.mlp = RefMLP(k * c_in, c_out)

    def forward(self, x: Tensor) -> Tensor:
        n, c, t, v = x.shape
        a = self.A_powers + self.A_res
        support = torch.einsum("vu,nctu->nctv", a, x)  # (N, C, T, K*V)
        support = support.view(n, c, t, self.k, v).permute(0, 3, 1, 2, 4).contiguous().view(n, self.k * c, t, v)
        return self.mlp(support)


class RefTemporalConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1) -> None:
        pad = (kernel + (kernel - 1) * (dilation - 1) - 1) // 2
        super().__init__(
            nn.Conv2d(c_in, c_out, (kernel, 1), padding=(pad, 0), stride=(stride, 1), dilation=(dilation, 1)),
            nn.BatchNorm2d(c_out),
        )


class RefMSTCN(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        bc = c_out // 6
        self.branches = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(c_in, bc, 1),
                    nn.BatchNorm2d(bc),
                    nn.ReLU(inplace=True),
                    RefTemporalConv(bc, bc, 3, stride, d),
                )
                for d in (1, 2, 3, 4)
            ]
            + [
                nn.Sequential(
                    nn.Conv2d(c_in, bc, 1),
                    nn.BatchNorm2d(bc),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d((3, 1), (stride, 1), (1, 0)),
                    nn.BatchNorm2d(bc),
                ),
                nn.Sequential(nn.Conv2d(c_in, bc, 1, stride=(stride, 1)), nn.BatchNorm2d(bc)),
            ]
        )
        self.residual = (lambda x: x) if (c_in == c_out and stride == 1) else RefTemporalConv(c_in, c_out, 1, stride)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        out = torch.cat([b(x) for b in self.branches], dim=1) + self.residual(x)
        return torch.relu(out) if self.relu else out


class RefUnfold(nn.Module):
    def __init__(self, tau: int, stride: int, dilation: int = 1) -> None:
        super().__init__()
        self.tau = tau
        pad = (tau + (tau - 1) * (dilation - 1) - 1) // 2
        self.unfold = nn.Unfold((tau, 1), dilation=(dilation, 1), stride=(stride, 1), padding=(pad, 0))

    def forward(self, x: Tensor) -> Tensor:
        n, c, _, v = x.shape
        x = self.unfold(x)  # (N, C*tau, T'*V)
        x = x.view(n, c, self.tau, -1, v).permute(0, 1, 3, 2, 4).contiguous()  # (N, C, T', tau, V)
        return x.view(n, c, -1, self.tau * v)


class RefG3D(nn.Module):
    def __init__(self, c_in: int, c_out: int, a_bin: np.ndarray, k: int, tau: int, stride: int, first: bool):
        super().__init__()
        c_embed = c_out if first else c_in
        self.tau = tau
        self.unfold = RefUnfold(tau, stride)
        stack = multiscale_stack(window_adjacency(a_bin, tau), k)  # (K, tau*V, tau*V)
        self.register_buffer("A_scales", torch.tensor(stack.reshape(-1, stack.shape[-1])))
        self.A_res = nn.Parameter(torch.empty_like(self.A_scales).uniform_(-1e-6, 1e-6))
        self.k = k
        self.mlp = RefMLP(k * c_in, c_embed, relu=False)
        self.out_conv = nn.Conv3d(c_embed, c_out, (1, tau, 1))
        self.out_bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.unfold(x)  # (N, C, T', tau*V)
        n, c, t, tv = x.shape
        a = self.A_scales + self.A_res
        support = torch.einsum("vu,nctu->nctv", a, x)  # (N, C, T', K*tau*V)
        support = support.view(n, c, t, self.k, tv).permute(0, 3, 1, 2, 4).contiguous().view(n, self.k * c, t, tv)
        y = torch.relu(self.mlp(support))  # (N, C_embed, T', tau*V)
        y = y.view(n, -1, t, self.tau, tv // self.tau)  # (N, C_embed, T', tau, V)
        return self.out_bn(self.out_conv(y).squeeze(3))  # (N, C_out, T', V)


class RefMultiG3D(nn.Module):
    def __init__(self, c_in: int, c_out: int, a_bin: np.ndarray, k: int, stride: int, first: bool):
        super().__init__()
        self.paths = nn.ModuleList(RefG3D(c_in, c_out, a_bin, k, tau, stride, first) for tau in (3, 5))

    def forward(self, x: Tensor) -> Tensor:
        return sum(p(x) for p in self.paths)


class ReferenceMSG3D(nn.Module):
    """The original MS-G3D layer structure (NTU: 13 / 6 scales, widths 96/192/384)."""

    def __init__(self, num_class: int, v: int, m: int, c: int, edges, gcn_k: int = 13, g3d_k: int = 6):
        super().__init__()
        a_bin = adjacency(edges, v)
        self.data_bn = nn.BatchNorm1d(m * v * c)
        c1, c2, c3 = 96, 192, 384
        self.gcn3d1 = RefMultiG3D(c, c1, a_bin, g3d_k, 1, True)
        self.sgcn1 = nn.Sequential(RefMSGCN(gcn_k, c, c1, a_bin), RefMSTCN(c1, c1), RefMSTCN(c1, c1, relu=False))
        self.tcn1 = RefMSTCN(c1, c1)
        self.gcn3d2 = RefMultiG3D(c1, c2, a_bin, g3d_k, 2, False)
        self.sgcn2 = nn.Sequential(RefMSGCN(gcn_k, c1, c1, a_bin), RefMSTCN(c1, c2, 2), RefMSTCN(c2, c2, relu=False))
        self.tcn2 = RefMSTCN(c2, c2)
        self.gcn3d3 = RefMultiG3D(c2, c3, a_bin, g3d_k, 2, False)
        self.sgcn3 = nn.Sequential(RefMSGCN(gcn_k, c2, c2, a_bin), RefMSTCN(c2, c3, 2), RefMSTCN(c3, c3, relu=False))
        self.tcn3 = RefMSTCN(c3, c3)
        self.fc = nn.Linear(c3, num_class)

    def forward(self, x: Tensor) -> Tensor:
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).contiguous().view(n, m * v * c, t)
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).contiguous().view(n * m, c, t, v)
        x = self.tcn1(torch.relu(self.sgcn1(x) + self.gcn3d1(x)))
        x = self.tcn2(torch.relu(self.sgcn2(x) + self.gcn3d2(x)))
        x = self.tcn3(torch.relu(self.sgcn3(x) + self.gcn3d3(x)))
        out = x.view(n, m, x.shape[1], -1).mean(3).mean(1)
        return self.fc(out)


def copy_reference_weights(ref: ReferenceMSG3D, ours: MSG3D) -> None:
    """Give `ours` the reference's weights (same tensors in registration order, reshaped)."""
    pairs: list[tuple[nn.Module, nn.Module]] = [(ref.data_bn, ours.data_bn), (ref.fc, ours.fc)]
    for i, block in enumerate(ours.blocks, start=1):
        sg = getattr(ref, f"sgcn{i}")
        pairs += [
            (sg[0], block.msgcn),
            (sg[1:], block.sgcn_tcn),
            (getattr(ref, f"gcn3d{i}"), block.gcn3d),
            (getattr(ref, f"tcn{i}"), block.tcn),
        ]
    with torch.no_grad():
        for r, o in pairs:
            rv = [v for k, v in r.state_dict().items() if "A_powers" not in k and "A_scales" not in k]
            ov = list(o.state_dict().values())
            if len(rv) != len(ov):
                raise RuntimeError(f"{type(r).__name__} vs {type(o).__name__}: {len(rv)} vs {len(ov)} tensors")
            for a, b in zip(rv, ov, strict=True):
                if a.numel() != b.numel():
                    raise RuntimeError(f"{type(r).__name__}: tensor of {a.numel()} vs {b.numel()} elements")
                b.copy_(a.reshape(b.shape))


def max_logit_difference(ref: ReferenceMSG3D, ours: MSG3D, t: int = 32) -> float:
    """Largest |logit difference| (eval mode) after copying the reference's weights into ours."""
    copy_reference_weights(ref, ours)
    x = torch.randn(2, 3, t, 25, 2)
    ref.eval(), ours.eval()
    with torch.no_grad():
        return float((ref(x) - ours(x)).abs().max())


# --------------------------------------------------------------------------- timing


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


def time_training(models: dict[str, nn.Module], n: int, t: int, m: int, steps: int, seed: int = 0) -> dict:
    """Samples/s of a full SGD step, models timed alternately (1 warm-up step each, then `steps`)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, t, 25, m, generator=g)
    y = torch.randint(0, 60, (n,), generator=g)
    opts = {k: torch.optim.SGD(mod.parameters(), lr=0.01, momentum=0.9, nesterov=True) for k, mod in models.items()}
    for k, mod in models.items():
        mod.train()
        _train_step(mod, opts[k], x, y)
    seconds = {k: [] for k in models}
    for _ in tqdm(range(steps), desc=f"train N={n} T={t} M={m}"):
        for k, mod in models.items():
            t0 = time.perf_counter()
            _train_step(mod, opts[k], x, y)
            seconds[k].append(time.perf_counter() - t0)
    out = {
        k: {"samples_per_s": n / float(np.median(s)), "step_s_median": float(np.median(s)), "steps": steps}
        for k, s in seconds.items()
    }
    return out


@torch.no_grad()
def time_inference(models: dict[str, nn.Module], n: int, t: int, m: int, reps: int) -> dict:
    x = torch.randn(n, 3, t, 25, m)
    for mod in models.values():
        mod.eval()
        mod(x)
    seconds = {k: [] for k in models}
    for _ in range(reps):
        for k, mod in models.items():
            t0 = time.perf_counter()
            mod(x)
            seconds[k].append(time.perf_counter() - t0)
    return {k: n / float(np.median(s)) for k, s in seconds.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "model.json"))
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller shapes (smoke run)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(2)
    torch.manual_seed(0)
    started = time.perf_counter()
    load_start = os.getloadavg()[0]

    spec = ModelSpec(num_class=60, num_point=25, num_person=2, in_channels=3, edges=NTU_EDGES)
    ours, ref = MSG3D(spec), ReferenceMSG3D(60, 25, 2, 3, NTU_EDGES)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_ref = sum(p.numel() for p in ref.parameters())
    if n_ours != n_ref:
        raise RuntimeError(f"reference has {n_ref} parameters, ours {n_ours}: not the same network")

    same = max_logit_difference(ref, ours)
    log.info("max |logit difference| ours vs reference with the same weights: %.2e", same)
    if same > 1e-3:
        raise RuntimeError(f"ours and the reference disagree (max logit difference {same:.3g})")

    train_shape = (4, 32, 2) if args.quick else (8, 64, 2)
    train = time_training({"msg3d": ours, "reference": ref}, *train_shape, steps=2 if args.quick else 4)
    train["ratio_ours_over_reference"] = train["msg3d"]["samples_per_s"] / train["reference"]["samples_per_s"]
    train["shape"] = dict(zip(("N", "T", "M"), train_shape, strict=True))
    log.info(
        "train: ours %.2f samples/s, reference %.2f samples/s (ratio %.2f)",
        train["msg3d"]["samples_per_s"],
        train["reference"]["samples_per_s"],
        train["ratio_ours_over_reference"],
    )

    stf_model = MSG3D(spec.with_stf(STFSpec()))
    shapes = [(1, 64, 2), (4, 32, 2)] if args.quick else [(1, 300, 2), (8, 64, 2), (16, 100, 2)]
    inference = []
    for n, t, m in tqdm(shapes, desc="inference"):
        r = time_inference({"msg3d": ours, "stf": stf_model}, n, t, m, reps=1 if args.quick else 2)
        inference.append(
            {
                "N": n,
                "T": t,
                "M": m,
                "msg3d_samples_per_s": r["msg3d"],
                "stf_samples_per_s": r["stf"],
                "stf_time_over_msg3d_time": r["msg3d"] / r["stf"],
            }
        )
        log.info("inference N=%d T=%d M=%d: MS-G3D %.2f samples/s, STF %.2f samples/s", n, t, m, r["msg3d"], r["stf"])

    params = load_params(args.params)
    flops = {
        ds: compare_flops(params, ds, frames=300, persons=2, in_channels=3) for ds in ("ntu60", "ntu120", "kinetics")
    }

    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            # the machine is shared: load average (1 min) before and after the run
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg()[0],
            "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        },
        "quick": args.quick,
        "params": {"msg3d_ntu60": n_ours, "reference_ntu60": n_ref},
        "max_logit_difference_same_weights": same,
        "train": train,
        "inference": inference,
        "flops": flops,
        "seconds": time.perf_counter() - started,
    }
    write_json_atomic(Path(args.out), result)
    log.info("wrote %s (%.0f s)", args.out, result["seconds"])


if __name__ == "__main__":
    main()
