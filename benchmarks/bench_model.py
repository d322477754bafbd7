"""Model speed and cost: our MS-G3D vs the original MS-G3D code, STF overhead, FLOPs.

Writes benchmarks/results/model.json with
- "original": with `--original PATH`, the real `model.msg3d.Model` of a kenziyuliu/MS-G3D
  checkout at PATH, built with its NTU-60 arguments, and `stf.models.msg3d.MSG3D` with the
  same ones (in_channels 3); both parameter counts, the largest logit difference with the
  original's weights copied into ours, and, at full width, N=8, T=64, M=2:
  "train" (forward + backward + SGD step) and "inference" (eval, no grad) samples/s of both,
  timed alternately in one run (the order flips every repeat), medians, ours / original as the
  ratio of the medians and as the median of the per-repeat (back-to-back) ratios.
- "inference": samples/s of MS-G3D and STF (eval, no grad) at several (N, T, M).
- "flops": `stf.stages.flops.compare_flops` at T = 300 for ntu60, ntu120 and kinetics.
- "machine": cpu count, torch version, threads, load average before and after.

The original code is never part of this project: fetch it anywhere outside it, e.g.
  git clone https://github.com/kenziyuliu/MS-G3D /tmp/MS-G3D   (tested at commit 2f927f4)
Without `--original` the comparison is not rerun: an earlier run's "original" entry in the output
file is kept, flagged "from_an_earlier_run" (else null), and the rest is measured. `make bench`
passes `--original "$MSG3D_ORIGINAL"` when that variable names a checkout.

Usage: .venv/bin/python benchmarks/bench_model.py [--original /tmp/MS-G3D] [--quick]
       [--repeats 8] [--out benchmarks/results/model.json]
Not yet timed on an idle machine: with --original it took 14.5 minutes on 2 cores shared with
other jobs (load average 5-6), 23-34 minutes at load 10-15; --quick (2 repeats, smaller shapes)
took 3.4 minutes at load 3-7.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

import stf
from stf.config import load_params
from stf.data.skeletons import layout_for
from stf.io import write_json_atomic
from stf.models.msg3d import MSG3D, ModelSpec
from stf.models.stf import STFSpec
from stf.stages.flops import compare_flops

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]

# The original's NTU-60 arguments (its config/nturgbd-cross-subject/train_joint.yaml, 3 input channels).
ORIGINAL_ARGS = dict(
    num_class=60,
    num_point=25,
    num_person=2,
    num_gcn_scales=13,
    num_g3d_scales=6,
    graph="graph.ntu_rgb_d.AdjMatrixGraph",
    in_channels=3,
)
# Its top-level module names: model/msg3d.py does `from utils import ...`, `from model.ms_gcn import ...`,
# and graph/*.py `from graph import tools`; `Model` resolves the graph with `__import__("graph")`.
ORIGINAL_TOP_LEVEL = (("utils", "utils.py"), ("graph", "graph/__init__.py"), ("model", "model/__init__.py"))


# --------------------------------------------------------------------------- the original code


def load_original(checkout: Path) -> type[nn.Module]:
    """`model.msg3d.Model` of a kenziyuliu/MS-G3D checkout, imported in place from `checkout`.

    The original's own modules import each other under the top-level names `utils`, `graph`
    and `model`; each is loaded from its file in `checkout` with importlib and registered
    under that name in sys.modules (refused if a module of that name is already imported),
    so its submodules resolve inside `checkout` through the packages' __path__ and no
    sys.path entry is added. Its modules' own `sys.path.insert(0, '')` / `extend(['../'])`
    at import are undone afterwards. Nothing of the original is changed or copied.
    """
    checkout = checkout.resolve()
    for name, rel in ORIGINAL_TOP_LEVEL:
        if not (checkout / rel).is_file():
            raise SystemExit(f"--original {checkout}: no {rel}; expected a checkout of kenziyuliu/MS-G3D")
        if name in sys.modules:
            raise SystemExit(
                f"--original: a module named {name!r} is already imported "
                f"({getattr(sys.modules[name], '__file__', '?')}); cannot load the original's"
            )
    saved_path = list(sys.path)
    try:
        for name, rel in ORIGINAL_TOP_LEVEL:
            file = checkout / rel
            package_dir = [str(file.parent)] if file.name == "__init__.py" else None
            spec = importlib.util.spec_from_file_location(name, file, submodule_search_locations=package_dir)
            if spec is None or spec.loader is None:
                raise SystemExit(f"--original: cannot import {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        msg3d: ModuleType = importlib.import_module("model.msg3d")
    finally:
        sys.path[:] = saved_path
    return msg3d.Model


def checkout_commit(checkout: Path) -> str | None:
    """The checkout's git commit, or None when it is not a git work tree (e.g. a `git archive`)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def copy_original_weights(orig: nn.Module, ours: MSG3D) -> None:
    """Give `ours` the original's weights: per matching submodule, the same tensors in registration order.

    The original keeps its fixed adjacencies (A_powers, A_scales) as plain attributes, so its state
    dicts hold exactly the trainable tensors and BN statistics that ours holds; shapes differ only in
    layout (its Conv3d (C', C, 1, tau, 1) window collapse is our (C', C, 1, tau) conv), so each tensor
    is copied reshaped, after checking counts and element numbers.
    """
    pairs: list[tuple[nn.Module, nn.Module]] = [(orig.data_bn, ours.data_bn), (orig.fc, ours.fc)]
    for i, block in enumerate(ours.blocks, start=1):
        sg = getattr(orig, f"sgcn{i}")
        pairs += [
            (sg[0], block.msgcn),
            (sg[1:], block.sgcn_tcn),
            (getattr(orig, f"gcn3d{i}"), block.gcn3d),
            (getattr(orig, f"tcn{i}"), block.tcn),
        ]
    with torch.no_grad():
        for o, w in pairs:
            ov, wv = list(o.state_dict().values()), list(w.state_dict().values())
            if len(ov) != len(wv):
                raise RuntimeError(
                    f"original {type(o).__name__} vs ours {type(w).__name__}: {len(ov)} vs {len(wv)} tensors"
                )
            for a, b in zip(ov, wv, strict=True):
                if a.numel() != b.numel():
                    raise RuntimeError(f"original {type(o).__name__}: tensor of {a.numel()} vs {b.numel()} elements")
                b.copy_(a.reshape(b.shape))


def max_logit_difference(orig: nn.Module, ours: MSG3D, t: int = 32) -> float:
    """Largest |logit difference| (eval mode) on random input after copying the original's weights into ours."""
    copy_original_weights(orig, ours)
    x = torch.randn(2, 3, t, 25, 2)
    orig.eval(), ours.eval()
    with torch.no_grad():
        return float((orig(x) - ours(x)).abs().max())


# --------------------------------------------------------------------------- timing


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


def alternate(fns: dict[str, Callable[[], None]], repeats: int, desc: str) -> dict[str, list[float]]:
    """Seconds of each fn per repeat, run alternately; the order flips every repeat (A B, B A, ...)."""
    seconds: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in tqdm(range(repeats), desc=desc):
        for k in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            fns[k]()
            seconds[k].append(time.perf_counter() - t0)
    return seconds


def _summary(seconds: dict[str, list[float]], n: int) -> dict:
    return {
        k: {
            "samples_per_s": n / float(np.median(s)),
            "seconds_median": float(np.median(s)),
            "seconds": [round(v, 4) for v in s],
        }
        for k, s in seconds.items()
    }


def time_training(models: dict[str, nn.Module], n: int, t: int, m: int, repeats: int, seed: int = 0) -> dict:
    """Samples/s of a full SGD step (median), models timed alternately after 1 warm-up step each."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, t, 25, m, generator=g)
    y = torch.randint(0, 60, (n,), generator=g)
    opts = {k: torch.optim.SGD(mod.parameters(), lr=0.01, momentum=0.9, nesterov=True) for k, mod in models.items()}
    for k, mod in models.items():
        mod.train()
        _train_step(mod, opts[k], x, y)
    fns = {k: (lambda mod=mod, opt=opts[k]: _train_step(mod, opt, x, y)) for k, mod in models.items()}
    return _summary(alternate(fns, repeats, f"train N={n} T={t} M={m}"), n)


@torch.no_grad()
def time_inference(models: dict[str, nn.Module], n: int, t: int, m: int, repeats: int) -> dict:
    """Samples/s of an eval forward pass (median), models timed alternately after 1 warm-up pass each."""
    x = torch.randn(n, 3, t, 25, m)
    for mod in models.values():
        mod.eval()
        mod(x)
    fns = {k: (lambda mod=mod: mod(x)) for k, mod in models.items()}
    return _summary(alternate(fns, repeats, f"inference N={n} T={t} M={m}"), n)


def compare_with_original(checkout: Path, quick: bool, repeats: int) -> dict:
    """Build the original and ours with the same NTU-60 arguments, check they agree, time both."""
    original_cls = load_original(checkout)
    orig = original_cls(**ORIGINAL_ARGS)
    layout = layout_for("ntu60")
    a = ORIGINAL_ARGS
    spec = ModelSpec(
        num_class=a["num_class"],
        num_point=a["num_point"],
        num_person=a["num_person"],
        in_channels=a["in_channels"],
        edges=layout.edges,
        widths=(96, 192, 384),
        gcn_scales=a["num_gcn_scales"],
        g3d_scales=a["num_g3d_scales"],
    )
    ours = MSG3D(spec)
    n_orig = sum(p.numel() for p in orig.parameters())
    n_ours = sum(p.numel() for p in ours.parameters())
    log.info("parameters: original %d, ours %d", n_orig, n_ours)
    if n_ours != n_orig:
        raise RuntimeError(f"the original has {n_orig} parameters, ours {n_ours}: not the same network")
    same = max_logit_difference(orig, ours)
    log.info("max |logit difference| ours vs original with the same weights: %.2e", same)
    if same > 1e-3:
        raise RuntimeError(f"ours and the original disagree (max logit difference {same:.3g})")

    shape = (4, 32, 2) if quick else (8, 64, 2)
    models = {"msg3d": ours, "original": orig}
    train = time_training(models, *shape, repeats=repeats)
    train["ratio_ours_over_original"] = train["msg3d"]["samples_per_s"] / train["original"]["samples_per_s"]
    infer = time_inference(models, *shape, repeats=repeats)
    infer["ratio_ours_over_original"] = infer["msg3d"]["samples_per_s"] / infer["original"]["samples_per_s"]
    for r in (train, infer):
        # per repeat, the two models ran back to back: the median of those ratios is robust to load drifting
        # during the run on a shared machine (the ratio of medians above is not)
        r["ratio_paired_median"] = float(np.median(np.divide(r["original"]["seconds"], r["msg3d"]["seconds"])))
    for name, r in (("train", train), ("inference", infer)):
        log.info(
            "%s N=%d T=%d M=%d: ours %.2f samples/s, original %.2f samples/s (ours / original %.2f, "
            "paired median %.2f)",
            name,
            *shape,
            r["msg3d"]["samples_per_s"],
            r["original"]["samples_per_s"],
            r["ratio_ours_over_original"],
            r["ratio_paired_median"],
        )
    return {
        "checkout": str(checkout.resolve()),
        "commit": checkout_commit(checkout),
        "args": ORIGINAL_ARGS,
        "params": {"original": n_orig, "msg3d": n_ours},
        "max_logit_difference_same_weights": same,
        "shape": dict(zip(("N", "T", "M"), shape, strict=True)),
        "repeats": repeats,
        "train": train,
        "inference": infer,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "model.json"))
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--original", type=Path, help="a checkout of kenziyuliu/MS-G3D outside this project")
    ap.add_argument("--repeats", type=int, help="timed repeats per model for the comparison (default 8, --quick 2)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller shapes (smoke run)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)  # before the timing: a bad params file fails now, not after minutes
    torch.set_num_threads(2)
    torch.manual_seed(0)
    started = time.perf_counter()
    load_start = os.getloadavg()

    original = None
    if args.original is not None:
        repeats = args.repeats if args.repeats is not None else (2 if args.quick else 8)
        original = compare_with_original(args.original, args.quick, repeats)
    else:
        # keep an earlier run's comparison (its ratios were measured within that run) rather than
        # overwrite it with nothing; it is flagged as such
        out = Path(args.out)
        earlier = json.loads(out.read_text()).get("original") if out.is_file() else None
        if earlier:
            original = {**earlier, "from_an_earlier_run": True}
        log.warning("no --original checkout given: the comparison with the original MS-G3D is not rerun%s",
                    " (the earlier run's is kept, flagged from_an_earlier_run)" if earlier else "")  # fmt: skip

    spec = ModelSpec(num_class=60, num_point=25, num_person=2, in_channels=3, edges=layout_for("ntu60").edges)
    ours, stf_model = MSG3D(spec), MSG3D(replace(spec, stf=STFSpec()))
    shapes = [(1, 64, 2), (4, 32, 2)] if args.quick else [(1, 300, 2), (8, 64, 2), (16, 100, 2)]
    inference = []
    for n, t, m in shapes:
        r = time_inference({"msg3d": ours, "stf": stf_model}, n, t, m, repeats=1 if args.quick else 2)
        ms, st = r["msg3d"]["samples_per_s"], r["stf"]["samples_per_s"]
        inference.append(
            {
                "N": n,
                "T": t,
                "M": m,
                "msg3d_samples_per_s": ms,
                "stf_samples_per_s": st,
                "stf_time_over_msg3d_time": ms / st,
            }
        )
        log.info("inference N=%d T=%d M=%d: MS-G3D %.2f samples/s, STF %.2f samples/s", n, t, m, ms, st)

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
            # the machine may be shared: load average (1, 5, 15 min) before and after the run
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
            "stf_package": str(Path(stf.__file__).resolve().parent),  # which stf was measured (PYTHONPATH)
            "onednn_env": {k: v for k, v in os.environ.items() if k.startswith(("ONEDNN_", "DNNL_"))},
        },
        "quick": args.quick,
        "original": original,
        "inference": inference,
        "flops": flops,
        "seconds": time.perf_counter() - started,
    }
    write_json_atomic(Path(args.out), result)
    log.info("wrote %s (%.0f s)", args.out, result["seconds"])


if __name__ == "__main__":
    main()
