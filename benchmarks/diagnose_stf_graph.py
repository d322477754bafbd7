"""Why do STF-architecture models lose test accuracy? A diagnostic of the learned graph term G.

For each model directory of a run (an STF variant, STF+ce, or a model without STF modules for
comparison), it scores the test part of the model's setting three times: as trained; with the
BatchNorm running statistics recomputed as a plain average over the training part (does the
drop come from running statistics that lag the weights?); and with every STF module's alpha
output layer set to zero, so that G = 0 and the network is the fine-tuned backbone alone.
It also records the size of G on the test samples (mean |G| over all entries, the largest |G|)
beside the mean |A| of the static normalised adjacency scales G is added to. A model without
STF modules scores the same with G = 0 (a check of the script).

Usage (on the evidence run folder that `make evidence` leaves):
  .venv/bin/python benchmarks/diagnose_stf_graph.py --run runs/evidence \\
      --model models/ntu60-xsub/joint/s1/stf-ce --model models/ntu60-xsub/joint/s1/stf-dcg ...
Writes benchmarks/results/stf_graph.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from stf.data.dataset import load_part
from stf.io import write_json_atomic
from stf.models.msg3d import MSG3D, ModelSpec
from stf.models.stf import STFModule
from stf.training.checkpoint import load_checkpoint
from stf.training.inference import predict_logits

ROOT = Path(__file__).resolve().parents[1]


def graph_sizes(model: MSG3D, x: torch.Tensor) -> dict[str, float]:
    """Mean and max |G| over the STF modules' outputs on the batch x (N, C, T, V, M)."""
    sizes: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(out[0].detach().abs()))
        for m in model.modules()
        if isinstance(m, STFModule)
    ]
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return {
        "mean_abs_G": float(torch.stack([s.mean() for s in sizes]).mean()),
        "max_abs_G": float(max(s.max() for s in sizes)),
    }


def static_adjacency_size(model: MSG3D) -> float:
    """Mean |A| of the normalised static adjacency buffers the graph convolutions use."""
    values = [b.abs().mean() for name, b in model.named_buffers() if name.split(".")[-1] == "A"]
    return float(torch.stack(values).mean()) if values else float("nan")


def recalibrate_batchnorm(model: MSG3D, part, batch: int) -> None:
    """Recompute every BatchNorm layer's running statistics as the plain average over the
    training part (train mode, no gradient, no weight change)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for start in range(0, len(part), batch):
            x, _, _ = part[list(range(start, min(len(part), start + batch)))]  # (B, C, T, V, M)
            model(x)
    model.eval()


def diagnose(run: Path, model_dir: Path, batch: int) -> dict:
    payload = load_checkpoint(run / model_dir / "model.pt")
    meta = payload["meta"]
    model = MSG3D(ModelSpec.from_dict(payload["spec"]))
    model.load_state_dict(payload["state_dict"])
    setting, stream = meta["setting"], meta["stream"]
    dataset = meta["dataset"]
    test = load_part(run / "data/interim" / f"{dataset}.parquet", run / "data/splits" / f"{setting}.parquet", "test",
                     stream)  # fmt: skip
    y = test.y
    top1 = float((predict_logits(model, test, batch).argmax(1) == y).mean() * 100)
    x, _, _ = test[list(range(min(len(test), batch)))]  # (B, C, T, V, M)
    sizes = graph_sizes(model, torch.as_tensor(x)) if model.spec.stf is not None else {}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    train = load_part(run / "data/interim" / f"{dataset}.parquet", run / "data/splits" / f"{setting}.parquet",
                      "train", stream)  # fmt: skip
    recalibrate_batchnorm(model, train, batch)
    top1_bn = float((predict_logits(model, test, batch).argmax(1) == y).mean() * 100)
    model.load_state_dict(state)
    for bn in model.modules():
        if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
            bn.momentum = 0.1
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, STFModule):
                m.alpha[-1].weight.zero_()
                m.alpha[-1].bias.zero_()
    top1_g0 = float((predict_logits(model, test, batch).argmax(1) == y).mean() * 100)
    return {
        "model": str(model_dir),
        "test_samples": int(len(y)),
        "top1": top1,
        "top1_with_G_zero": top1_g0,
        "top1_batchnorm_recalibrated": top1_bn,
        **sizes,
        "mean_abs_A": static_adjacency_size(model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="the run folder (runs/evidence)")
    parser.add_argument("--model", action="append", required=True, help="model directory relative to --run")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stf_graph.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: list[dict] = []
    for m in args.model:  # the file is rewritten after every model, so a stopped run keeps what it measured
        rows.append(diagnose(args.run, Path(m), args.batch))
        print(json.dumps(rows[-1]), flush=True)
        write_json_atomic(args.out, {
            "models": rows,
            "command": " ".join([".venv/bin/python", "benchmarks/diagnose_stf_graph.py", *sys.argv[1:]]),
            "load_average": os.getloadavg(),
            "mean_top1_change_with_batchnorm_recalibrated": float(
                np.mean([r["top1_batchnorm_recalibrated"] - r["top1"] for r in rows])
            ),
        })  # fmt: skip


if __name__ == "__main__":
    main()
