"""Entry points that produce model directories: the MS-G3D baseline and STF fine-tuning.

- `train_baseline`: MS-G3D from scratch with cross-entropy (paper/MS-G3D recipe).
- `finetune`: an STF model initialised from a baseline's `model.pt` (backbone weights
  loaded, STF modules new), trained on eq. 6 with one variant's loss terms.
- `linear_probe` (defined in `stf.probe`, re-exported here for the CLI): frozen source
  model(s), a new linear head per model trained on the target setting.

Each writes into `out_dir` (docs/architecture.md, "A model directory"): model.pt,
scores.parquet, metrics.json, history.csv; resume state and dvclive logs go to `workdir`
(default `<out_dir>.work`). Under torchrun rank 0 writes. The loop is `stf.engine.fit`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from stf import distributed
from stf.checkpoint import default_workdir, load_checkpoint
from stf.config import Params
from stf.engine import CrossEntropyObjective, Recipe, STFObjective, fit
from stf.evaluate import MODEL, compute_metrics, softmax
from stf.probe import linear_probe
from stf.runtime import configure_torch, dvclive_logger, load_part, recipe_from, run_fingerprint, write_outputs

log = logging.getLogger(__name__)


class InitModelError(ValueError):
    """The baseline checkpoint given to `finetune` does not fit the STF model."""


# --------------------------------------------------------------------------- shared


def _train_model(
    objective_for: Callable[[torch.nn.Module], Any],
    model: torch.nn.Module,
    train: Any,
    test: Any,
    recipe: Recipe,
    ctx: distributed.DistContext,
    out_dir: Path,
    workdir: Path | None,
    resume: bool,
    fp: str,
    meta: dict,
    on_epoch_end: Callable[[int, dict], None] | None,
) -> dict:
    """`fit` + outputs, shared by the baseline and fine-tuning."""
    workdir = Path(workdir) if workdir is not None else default_workdir(out_dir)
    with dvclive_logger(workdir, ctx, resume) as log_row:
        result = fit(
            objective_for(model), train, test, recipe, ctx,
            workdir, fp, resume=resume, on_epoch_end=on_epoch_end, log_row=log_row,
        )  # fmt: skip
    metrics: dict = {}
    if ctx.is_main:
        payload = {
            "spec": model.spec.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": meta,
        }
        logits = result.test_logits
        metrics = write_outputs(out_dir, test, logits, softmax(logits), result.history, payload)
        log.info("%s: top1 %.2f top5 %.2f (n=%d)", out_dir, metrics["top1"], metrics["top5"], metrics["n"])
    else:
        metrics = compute_metrics(softmax(result.test_logits), test.y, int(test.num_class))
    distributed.barrier(ctx)
    return metrics


def _base_meta(params: Params, setting: str, stream: str, fraction: int, arrays: Any, epochs: int) -> dict:
    return {
        "setting": setting,
        "stream": stream,
        "dataset": params.setting(setting).dataset,
        "fraction": int(fraction),
        "epochs": int(epochs),
        "seed": int(params.train.seed),
        "num_class": int(arrays.num_class),
        "n_train": int(len(arrays.y)),
    }


# --------------------------------------------------------------------------- entry points


def train_baseline(
    params: Params,
    setting: str,
    stream: str,
    data: Path,
    split: Path,
    out_dir: Path,
    fraction: int = 100,
    workdir: Path | None = None,
    resume: bool = False,
    *,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train the MS-G3D baseline of one setting and stream; returns the test metrics.

    `on_epoch_end(epoch, history_row)` runs after each epoch's checkpoint (every rank).
    """
    from stf.models.msg3d import MSG3D, spec_for

    dataset = params.setting(setting).dataset
    ctx = distributed.setup(params.train.device)
    try:
        configure_torch(params, ctx)
        train = load_part(data, split, "train", stream, fraction)
        test = load_part(data, split, "test", stream)
        torch.manual_seed(params.train.seed)
        model = MSG3D(spec_for(params, dataset, int(train.num_class), in_channels=train.shape[0]))
        epochs = params.sizes.epochs[dataset]
        steps = tuple(params.sizes.lr_steps[dataset])
        recipe = recipe_from(params, epochs=epochs, lr=params.train.lr[dataset], milestones=steps)
        fp = run_fingerprint(
            "baseline", params, {"data": Path(data), "split": Path(split)},
            setting=setting, stream=stream, fraction=fraction,
        )  # fmt: skip
        meta = _base_meta(params, setting, stream, fraction, train, epochs) | {"variant": "msg3d", "losses": []}
        return _train_model(
            CrossEntropyObjective, model, train, test, recipe, ctx, out_dir, workdir, resume, fp, meta, on_epoch_end
        )
    finally:
        distributed.teardown(ctx)


def load_init(params: Params, init: Path, dataset: str, num_class: int, in_channels: int) -> torch.nn.Module:
    """An STF `MSG3D` whose backbone comes from the baseline at `<init>/model.pt`.

    Raises `InitModelError` when the baseline's spec differs from this params' baseline spec
    (other than the STF part) or its weights leave anything but STF parameters unset.
    """
    from stf.models.msg3d import MSG3D, spec_for

    file = Path(init) / MODEL
    if not file.is_file():
        raise InitModelError(f"{file}: baseline model not found (run `stf train` first)")
    payload = load_checkpoint(file)
    expected = spec_for(params, dataset, num_class, in_channels).to_dict()
    saved = payload.get("spec")
    if not isinstance(saved, dict):
        raise InitModelError(f"{file}: checkpoint has no model spec")
    diff = sorted(k for k in set(expected) | set(saved) if k != "stf" and saved.get(k) != expected.get(k))
    if diff:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)!r} vs params {expected.get(k)!r}" for k in diff[:4])
        raise InitModelError(f"{file}: baseline spec does not match the STF model's backbone ({details})")
    model = MSG3D(spec_for(params, dataset, num_class, in_channels, stf=True))
    try:
        missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    except (RuntimeError, KeyError) as err:
        raise InitModelError(f"{file}: cannot load the baseline weights ({str(err).splitlines()[0]})") from None
    not_stf = [k for k in missing if ".stf." not in k]
    if unexpected or not_stf:
        raise InitModelError(f"{file}: weights do not fit: unexpected {unexpected[:4]}, missing non-STF {not_stf[:4]}")
    log.info("initialised %d tensors from %s; %d new STF tensors", len(payload["state_dict"]), file, len(missing))
    return model


def finetune(
    params: Params,
    setting: str,
    stream: str,
    variant: str,
    data: Path,
    split: Path,
    init: Path,
    out_dir: Path,
    fraction: int = 100,
    workdir: Path | None = None,
    resume: bool = False,
    *,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> dict:
    """Fine-tune the STF variant `variant` (a key of params.stf.variants) from the baseline in `init`.

    Constant lr params.stf.lr for params.sizes.finetune_epochs epochs; loss = eq. 6 with the
    variant's terms. Returns the test metrics.
    """
    if variant not in params.stf.variants:
        raise ValueError(f"unknown STF variant {variant!r}; params stf.variants has {sorted(params.stf.variants)}")
    active = list(params.stf.variants[variant])
    dataset = params.setting(setting).dataset
    ctx = distributed.setup(params.train.device)
    try:
        configure_torch(params, ctx)
        train = load_part(data, split, "train", stream, fraction)
        test = load_part(data, split, "test", stream)
        torch.manual_seed(params.train.seed)
        model = load_init(params, Path(init), dataset, int(train.num_class), train.shape[0])
        epochs = params.sizes.finetune_epochs
        recipe = recipe_from(params, epochs=epochs, lr=params.stf.lr, milestones=())
        fp = run_fingerprint(
            "finetune", params, {"data": Path(data), "split": Path(split), "init": Path(init) / MODEL},
            setting=setting, stream=stream, fraction=fraction, variant=variant, active=active,
            stf=params.stf.model_dump(),
        )  # fmt: skip
        meta = _base_meta(params, setting, stream, fraction, train, epochs) | {
            "variant": variant,
            "losses": active,
            "lambdas": params.stf.lambdas.model_dump(),
            "loss_norm": params.stf.loss_norm,
            "lr": params.stf.lr,
            "init": str(init),
        }

        def objective_for(m: torch.nn.Module) -> STFObjective:
            return STFObjective(m, params.stf.lambdas, active, norm=params.stf.loss_norm)

        return _train_model(
            objective_for, model, train, test, recipe, ctx, out_dir, workdir, resume, fp, meta, on_epoch_end
        )
    finally:
        distributed.teardown(ctx)


__all__ = ["InitModelError", "finetune", "linear_probe", "load_init", "train_baseline"]
