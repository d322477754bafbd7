"""Saved models, and the softmax-averaged ensemble of several models on a test part.

`load_model(dir)` rebuilds an `MSG3D` from `model.pt` (the model is run over a part by
`stf.training.inference.predict_logits`); `evaluate_ensemble` is the entry point of the
evaluate stages. The score files are `stf.stages.scores`, the metrics `stf.metrics`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stf.io import write_json_atomic
from stf.metrics import compute_metrics, log_probs, softmax
from stf.stages.scores import ENSEMBLE, METRICS, MODEL, ScoresError, write_scores
from stf.training import distributed
from stf.training.checkpoint import load_checkpoint
from stf.training.inference import amp_dtype, predict_logits

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- models


def load_model(model_dir: Path | str, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the `MSG3D` saved in `<model_dir>/model.pt`; returns (model in eval mode, payload).

    payload is the checkpoint dict: {"spec", "state_dict", "meta"}.
    """
    from stf.models.msg3d import MSG3D, ModelSpec

    model_dir = Path(model_dir)
    file = model_dir / MODEL
    if not file.is_file():
        raise ScoresError(f"{file}: model file not found (is {model_dir} a trained model directory?)")
    payload = load_checkpoint(file)
    missing = {"spec", "state_dict", "meta"} - set(payload)
    if missing:
        raise ScoresError(f"{file}: model checkpoint lacks {sorted(missing)}")
    try:
        spec = ModelSpec.from_dict(payload["spec"])
        model = MSG3D(spec)
        model.load_state_dict(payload["state_dict"])
    except (TypeError, KeyError, RuntimeError, ValueError) as err:
        raise ScoresError(f"{file}: cannot rebuild the model ({str(err).splitlines()[0]})") from None
    return model.to(device).eval(), payload


# --------------------------------------------------------------------------- ensemble entry point


def write_ensemble_file(out_dir: Path | str, members: Sequence[Path | str]) -> Path:
    """`<out_dir>/ensemble.json`: {"members": [member directories relative to out_dir]}."""
    out_dir = Path(out_dir)
    rel = [os.path.relpath(Path(m).resolve(), out_dir.resolve()) for m in members]
    write_json_atomic(out_dir / ENSEMBLE, {"members": rel})
    return out_dir / ENSEMBLE


def check_compatible(payload: dict, part: Any, model_dir: Path | str) -> None:
    """Raise `ScoresError` unless the saved model reads the data's (C, V, M) and predicts its classes."""
    spec = payload["spec"]
    c, _, v, m = part.shape  # (C, T, V, M) of one sample
    wanted = {"in_channels": c, "num_point": v, "num_person": m, "num_class": int(part.num_class)}
    for key, value in wanted.items():
        if key in spec and int(spec[key]) != value:
            raise ScoresError(f"{Path(model_dir) / MODEL}: model has {key}={spec[key]} but the data has {value}")


def evaluate_ensemble(
    params: Any,
    setting: str,
    stream: str,
    data: Path,
    split: Path,
    models: list[Path],
    out_dir: Path,
) -> dict:
    """Softmax probabilities of each model on the test part, averaged (STF's test-time ensemble).

    Writes `<out_dir>/scores.parquet` (logits = log of the averaged probabilities),
    `metrics.json` and `ensemble.json` (the member directories); returns the metrics dict.
    Under torchrun the test set is sharded and rank 0 writes.
    """
    from stf.data.dataset import load_part

    if not models:
        raise ValueError("evaluate_ensemble needs at least one model directory")
    params.setting(setting)  # unknown setting -> ParamsError
    if params.sizes.threads > 0:
        torch.set_num_threads(params.sizes.threads)
    ctx = distributed.setup(params.train.device)
    try:
        test = load_part(Path(data), Path(split), "test", stream)
        amp = amp_dtype(ctx.device, params.train.amp)
        total = np.zeros((len(test), int(test.num_class)), np.float64)
        for i, model_dir in enumerate(models):
            model, payload = load_model(model_dir, ctx.device)
            check_compatible(payload, test, Path(model_dir))
            logits = predict_logits(
                model, test, params.sizes.eval_batch_size, ctx, amp, desc=f"model {i + 1}",
                num_workers=params.train.num_workers,
            )  # fmt: skip
            total += softmax(logits)
        probs = (total / len(models)).astype(np.float32)
        metrics = compute_metrics(probs, test.y, int(test.num_class))
        if ctx.is_main:
            write_scores(out_dir, list(test.ids), test.y, log_probs(probs), probs)
            write_json_atomic(Path(out_dir) / METRICS, metrics)
            write_ensemble_file(Path(out_dir), models)  # so `stf predict` / `stf export` find the members
            log.info(
                "%s %s ensemble of %d: top1 %.2f top5 %.2f",
                setting, stream, len(models), metrics["top1"], metrics["top5"],
            )  # fmt: skip
        distributed.barrier(ctx)
        return metrics
    finally:
        distributed.teardown(ctx)
