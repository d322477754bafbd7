"""Test-set scores, metrics, and the softmax-averaged ensemble of several models.

Pure functions: `per_class_accuracy(probs, labels, num_class)` and `compute_metrics(probs,
labels, num_class)` (percent, scikit-learn; `topk_accuracy` is in `stf.training.inference`).
Files: `write_scores(dir, ids, labels, logits, probs)` / `read_scores(dir)` for
`scores.parquet`, shared by training, fusion and the report. Models: `load_model(dir)`
rebuilds an `MSG3D` from `model.pt`; the model is run over a part by
`stf.training.inference.predict_logits`. Entry point: `evaluate_ensemble`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from sklearn.metrics import confusion_matrix

from stf.io import atomic_path, write_json_atomic
from stf.training import distributed
from stf.training.checkpoint import load_checkpoint
from stf.training.inference import amp_dtype, check_scores, predict_logits, topk_accuracy

log = logging.getLogger(__name__)

SCORES = "scores.parquet"
METRICS = "metrics.json"
MODEL = "model.pt"
ENSEMBLE = "ensemble.json"  # an ensemble directory's members: {"members": [paths relative to it]}


class ScoresError(ValueError):
    """A scores file or model directory is missing or malformed; the message names it."""


# --------------------------------------------------------------------------- metrics


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray, num_class: int) -> np.ndarray:
    """Top-1 accuracy (percent) of each class, (num_class,); NaN for classes absent from `labels`."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    check_scores(probs, labels, num_class)
    cm = confusion_matrix(labels, probs.argmax(1), labels=np.arange(num_class))  # (K, K) rows = truth
    support = cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, 100.0 * np.diag(cm) / support, np.nan)


def compute_metrics(probs: np.ndarray, labels: np.ndarray, num_class: int) -> dict[str, Any]:
    """The `metrics.json` dict: top1, top5 (percent), n, num_class, per_class {label: percent}.

    `per_class` lists only the classes that occur in `labels` (keys are str(label)).
    """
    pc = per_class_accuracy(probs, labels, num_class)
    return {
        "top1": topk_accuracy(probs, labels, 1),
        "top5": topk_accuracy(probs, labels, 5),
        "n": int(len(labels)),
        "num_class": int(num_class),
        "per_class": {str(c): float(a) for c, a in enumerate(pc) if not np.isnan(a)},
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, float64 inside, float32 out."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def log_probs(probs: np.ndarray) -> np.ndarray:
    """log of (N, K) probabilities, floored at the smallest normal float32."""
    return np.log(np.maximum(probs.astype(np.float64), np.finfo(np.float32).tiny)).astype(np.float32)


# --------------------------------------------------------------------------- scores.parquet


def _list_column(matrix: np.ndarray) -> pa.Array:
    """(N, K) float matrix -> list<float32> column of N rows."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n, k = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32) if n else np.zeros(1, np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))  # flat (N*K,)


def write_scores(
    out_dir: Path | str, ids: Sequence[str], labels: np.ndarray, logits: np.ndarray, probs: np.ndarray
) -> Path:
    """Write `<out_dir>/scores.parquet`: sample_id, label int32, logits and probs list<float32>."""
    out_dir = Path(out_dir)
    labels = np.asarray(labels)
    logits, probs = np.asarray(logits), np.asarray(probs)
    if not (len(ids) == len(labels) == logits.shape[0] == probs.shape[0]) or logits.shape != probs.shape:
        raise ValueError(
            f"{out_dir / SCORES}: mismatched lengths ids={len(ids)} labels={len(labels)} "
            f"logits={logits.shape} probs={probs.shape}"
        )
    table = pa.table(
        {
            "sample_id": pa.array([str(i) for i in ids], pa.string()),
            "label": pa.array(labels.astype(np.int32)),
            "logits": _list_column(logits),
            "probs": _list_column(probs),
        }
    )
    target = out_dir / SCORES
    with atomic_path(target, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    return target


def read_scores(path: Path | str) -> pd.DataFrame:
    """Read `scores.parquet` (given its directory or the file itself).

    Returns a DataFrame with sample_id (str), label (int), logits and probs (one float32
    array per row, all of the same length). Raises `ScoresError` naming the file when it
    is missing, lacks a column, has ragged score rows or duplicate sample ids.
    """
    path = Path(path)
    file = path / SCORES if path.is_dir() or path.suffix != ".parquet" else path
    if not file.is_file():
        raise ScoresError(f"{file}: scores file not found")
    try:
        table = pq.read_table(file)
    except (OSError, pa.ArrowInvalid) as err:
        raise ScoresError(f"{file}: not a readable parquet file ({err})") from None
    missing = {"sample_id", "label", "logits", "probs"} - set(table.column_names)
    if missing:
        raise ScoresError(f"{file}: missing columns {sorted(missing)}")
    df = table.select(["sample_id", "label", "logits", "probs"]).to_pandas()
    if df.empty:
        raise ScoresError(f"{file}: no rows")
    for col in ("logits", "probs"):
        lengths = {len(v) for v in df[col]}
        if len(lengths) != 1:
            raise ScoresError(f"{file}: column {col} has rows of different lengths {sorted(lengths)}")
        df[col] = [np.asarray(v, dtype=np.float32) for v in df[col]]
    if df["sample_id"].duplicated().any():
        dup = df.loc[df["sample_id"].duplicated(), "sample_id"].iloc[0]
        raise ScoresError(f"{file}: duplicate sample_id {dup!r}")
    return df


def score_matrix(df: pd.DataFrame, column: str = "probs") -> np.ndarray:
    """Stack a list column of `read_scores` output into an (N, K) float32 matrix."""
    return np.stack(df[column].to_numpy()).astype(np.float32)


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
