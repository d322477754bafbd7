"""What every training entry point does around its loop: torch settings, data, recipe,
resume fingerprint, dvclive logging and the files of a model directory.

Used by `stf.stages.train` (baseline, fine-tuning) and `stf.stages.probe` (linear probe).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from stf.config import Params
from stf.io import atomic_path, write_json_atomic
from stf.metrics import compute_metrics, log_probs
from stf.sources import PACKAGE, SOURCE_DIR, TRAINING_CODE, code_files
from stf.stages.scores import METRICS, MODEL, write_scores
from stf.training import distributed
from stf.training.checkpoint import file_digest, fingerprint, save_checkpoint
from stf.training.loop import LAST, Recipe

log = logging.getLogger(__name__)

HISTORY = "history.csv"


def configure_torch(params: Params, ctx: distributed.DistContext) -> None:
    """CPU threads from the profile (when > 0); deterministic cuDNN when params.train.deterministic."""
    if params.sizes.threads > 0:
        torch.set_num_threads(params.sizes.threads)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.deterministic = params.train.deterministic
        torch.backends.cudnn.benchmark = not params.train.deterministic


def load_part(data: Path, split: Path, part: str, stream: str, fraction: int = 100) -> Any:
    """`stf.data.dataset.load_part`: a SkeletonPart (rows, y, ids, num_class, shape (C, T, V, M)),
    whose batches are read from the parquet when the loop needs them."""
    from stf.data.dataset import load_part as select

    if not 0 < fraction <= 100:
        raise ValueError(f"fraction must be a percentage in (0, 100], got {fraction}")
    return select(Path(data), Path(split), part, stream, fraction)


def recipe_from(
    params: Params, *, epochs: int, lr: float, seed: int, milestones: tuple[int, ...] = (), grad_probe: bool = False
) -> Recipe:
    """The optimisation recipe: batch sizes from the profile, SGD settings from params.train,
    `seed` (the run's seed: shuffle order). `grad_probe`: measure the loss terms' gradient
    norms on the profile's `grad_probe_batches` batches per epoch."""
    t, s = params.train, params.sizes
    return Recipe(
        epochs=epochs,
        batch_size=s.batch_size,
        forward_batch_size=s.forward_batch_size,
        lr=lr,
        momentum=t.momentum,
        nesterov=t.nesterov,
        weight_decay=t.weight_decay,
        milestones=tuple(milestones),
        gamma=t.lr_gamma,
        seed=seed,
        eval_batch_size=s.eval_batch_size,
        amp=t.amp,
        grad_probe_batches=s.grad_probe_batches if grad_probe else 0,
        num_workers=t.num_workers,
    )


def code_digest() -> str:
    """SHA-256 over the source files (paths and contents) of the code a training job runs:
    `stf.sources.code_files` of the training stages, the same files whose edit makes Snakemake
    and DVC rerun the job, so resume state never outlives a code change that reruns it."""
    h = hashlib.sha256()
    for name in code_files(*TRAINING_CODE):
        path = PACKAGE / Path(name).relative_to(SOURCE_DIR)
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def run_fingerprint(kind: str, params: Params, inputs: dict[str, Path], **extra: Any) -> str:
    """Hash of what decides a run's result: the profile's sizes, params.train and params.model,
    the run's arguments (`extra`), the contents of its input files (`stf.training.checkpoint.file_digest`)
    and the package's code (so a pipeline rerun after a code change never resumes stale state).

    Left out: CPU threads, device, data-loader workers (they do not change the result), and
    the profile's seed list (the run's own seed is one of the arguments).
    """
    return fingerprint(
        {
            "kind": kind,
            "code": code_digest(),
            "sizes": params.sizes.model_dump(exclude={"threads", "synth", "seeds"}),
            "train": params.train.model_dump(exclude={"device", "num_workers"}),
            "model": params.model.model_dump(),
            "inputs": {name: file_digest(path) for name, path in inputs.items()},
            **extra,
        }
    )


@contextlib.contextmanager
def dvclive_logger(
    workdir: Path, ctx: distributed.DistContext, resume: bool
) -> Iterator[Callable[[int, dict], None] | None]:
    """Yield `log_row(epoch, row)` recording metrics with dvclive in `<workdir>/dvclive` (rank 0; else None).

    dvclive creates no DVC experiment and does not touch dvc.yaml.
    """
    if not ctx.is_main:
        yield None
        return
    from dvclive import Live

    # a run that starts from epoch 1 (no resume state: the last run finished) starts a new log
    resume = resume and (Path(workdir) / LAST).is_file()
    live = Live(dir=str(Path(workdir) / "dvclive"), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)

    def log_row(epoch: int, row: dict) -> None:
        live.step = epoch
        for key, value in row.items():
            if key != "epoch":
                live.log_metric(key, float(value))
        live.make_summary()

    try:
        yield log_row
    finally:
        live.end()


def write_outputs(
    out_dir: Path,
    arrays: Any,
    logits: np.ndarray | None,
    probs: np.ndarray,
    history: list[dict],
    model_payload: dict | None = None,
) -> dict:
    """Write model.pt (when `model_payload`), scores.parquet, metrics.json and history.csv.

    arrays: the test part (y (N,), ids, num_class; a SkeletonPart); logits/probs (N, K) (logits None: log of
    probs). Returns the metrics dict.
    """
    out_dir = Path(out_dir)
    metrics = compute_metrics(probs, arrays.y, int(arrays.num_class))
    if model_payload is not None:
        save_checkpoint(out_dir / MODEL, model_payload)
    write_scores(out_dir, list(arrays.ids), arrays.y, log_probs(probs) if logits is None else logits, probs)
    write_json_atomic(out_dir / METRICS, metrics)
    with atomic_path(out_dir / HISTORY, suffix=".csv") as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    return metrics
