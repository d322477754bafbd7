"""Entry points that produce model directories: the MS-G3D baseline and STF fine-tuning.

- `train_baseline`: MS-G3D from scratch with cross-entropy (paper/MS-G3D recipe).
- `finetune`: an STF model initialised from a baseline's `model.pt` (backbone weights
  loaded, STF modules new), trained on eq. 6 with one variant's loss terms; or one of the
  cross-entropy controls with exactly the same recipe (`control="ft"`: the baseline network,
  no STF modules; `control="stf-ce"`: the STF network, every λ = 0). `finetune_spec` says
  which network and which loss terms a run has.
- `select_lr`: fine-tune once per lr of params stf.lr_grid on the training part, score the
  split's validation part, and write the winner to `selection.json` (never the test part).
- `linear_probe` (defined in `stf.stages.probe`, re-exported here for the CLI): frozen source
  model(s), a new linear head per model trained on the target setting.

Each writes into `out_dir` (docs/architecture.md, "A model directory"): model.pt,
scores.parquet, metrics.json, history.csv; resume state and dvclive logs go to `workdir`
(default `<out_dir>.work`); the resume state is deleted once the outputs are written, so a
forced rerun trains again. Under torchrun rank 0 writes. The loop is `stf.training.loop.fit`.
Every run takes a `seed` (model initialisation and shuffle order; default: the profile's
first seed).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stf.config import Params
from stf.io import write_json_atomic
from stf.metrics import compute_metrics, softmax
from stf.paths import CONTROL_KINDS, control_name, variant_name
from stf.stages.probe import linear_probe
from stf.stages.runtime import configure_torch, dvclive_logger, load_part, recipe_from, run_fingerprint, write_outputs
from stf.stages.scores import MODEL
from stf.training import distributed
from stf.training.checkpoint import default_workdir, load_checkpoint
from stf.training.loop import CrossEntropyObjective, Recipe, STFObjective, discard_resume_state, fit

log = logging.getLogger(__name__)


class InitModelError(ValueError):
    """The baseline checkpoint given to `finetune` does not fit the STF model."""


SELECTION = "selection.json"


@dataclass(frozen=True)
class FinetuneSpec:
    """What one fine-tuning run trains: `name` (its directory name, `stf.paths`), whether the
    network has the STF modules, and the active STF loss terms (empty: cross-entropy alone)."""

    name: str
    stf_modules: bool
    losses: tuple[str, ...]
    variant: str | None = None
    control: str | None = None
    member: int = 0


def finetune_spec(
    params: Params, variant: str | None = None, control: str | None = None, member: int = 0
) -> FinetuneSpec:
    """The run of STF variant `variant` (a key of params stf.variants) or of control `control`
    ("ft": MS-G3D+ft, "stf-ce": STF+ce); exactly one of the two. `member` > 0 names the extra
    members of an ensemble control (msg3d-ft-b); ValueError for anything else."""
    if (variant is None) == (control is None):
        raise ValueError("give exactly one of an STF variant and a control")
    if variant is not None:
        if variant not in params.stf.variants:
            raise ValueError(f"unknown STF variant {variant!r}; params stf.variants has {sorted(params.stf.variants)}")
        if member != 0:
            raise ValueError(f"STF variant {variant!r} has one member, got member {member}")
        return FinetuneSpec(variant_name(variant), True, tuple(params.stf.variants[variant]), variant=variant)
    if control not in CONTROL_KINDS:
        raise ValueError(f"unknown control {control!r}; known: {list(CONTROL_KINDS)}")
    name = control_name(control, member)
    return FinetuneSpec(name, control == "stf-ce", (), control=control, member=member)


def member_seed(seed: int, member: int) -> int:
    """Shuffle/initialisation seed of ensemble member `member` of a run with seed `seed`:
    the seed itself for member 0, else a value derived from (seed, member)."""
    if member == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(member)]).generate_state(1)[0])


def _seed_of(params: Params, seed: int | None) -> int:
    return int(params.sizes.seeds[0] if seed is None else seed)


# --------------------------------------------------------------------------- shared


@dataclass(frozen=True)
class TrainRun:
    """One run of `_train_model`, which the baseline and fine-tuning both describe this way.

    `objective_for(model)` wraps the network in its loss (`CrossEntropyObjective` or an
    `STFObjective`); `model`: the `MSG3D` to train (its `spec` goes into model.pt); `train`,
    `test`: the parts (`SkeletonPart`), `test` the one scored into scores.parquet and
    metrics.json; `recipe`, `ctx`: optimisation and rank context; `out_dir`: the model
    directory; `workdir`: resume state and dvclive logs (None: `<out_dir>.work`); `resume`:
    continue from `<workdir>/last.pt`; `fingerprint`: its resume fingerprint
    (`run_fingerprint`); `meta`: model.pt's "meta"; `on_epoch_end(epoch, row)`: after each
    epoch's checkpoint (every rank).
    """

    objective_for: Callable[[torch.nn.Module], Any]
    model: torch.nn.Module
    train: Any
    test: Any
    recipe: Recipe
    ctx: distributed.DistContext
    out_dir: Path
    workdir: Path | None
    resume: bool
    fingerprint: str
    meta: dict
    on_epoch_end: Callable[[int, dict], None] | None = None


def _train_model(run: TrainRun) -> dict:
    """`fit` + outputs, shared by the baseline and fine-tuning; returns the test metrics."""
    model, test, ctx, out_dir = run.model, run.test, run.ctx, run.out_dir
    workdir = Path(run.workdir) if run.workdir is not None else default_workdir(out_dir)
    with dvclive_logger(workdir, ctx, run.resume) as log_row:
        result = fit(
            run.objective_for(model), run.train, test, run.recipe, ctx, workdir, run.fingerprint,
            resume=run.resume, on_epoch_end=run.on_epoch_end, log_row=log_row,
        )  # fmt: skip
    metrics: dict = {}
    if ctx.is_main:
        payload = {
            "spec": model.spec.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": run.meta,
        }
        logits = result.test_logits
        metrics = write_outputs(out_dir, test, logits, softmax(logits), result.history, payload)
        discard_resume_state(workdir)  # finished: a forced rerun trains again from epoch 1
        log.info("%s: top1 %.2f top5 %.2f (n=%d)", out_dir, metrics["top1"], metrics["top5"], metrics["n"])
    else:
        metrics = compute_metrics(softmax(result.test_logits), test.y, int(test.num_class))
    distributed.barrier(ctx)
    return metrics


def _base_meta(params: Params, setting: str, stream: str, fraction: int, arrays: Any, epochs: int, seed: int) -> dict:
    return {
        "setting": setting,
        "stream": stream,
        "dataset": params.setting(setting).dataset,
        "fraction": int(fraction),
        "epochs": int(epochs),
        "seed": int(seed),
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
    seed: int | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train the MS-G3D baseline of one setting and stream; returns the test metrics.

    `seed`: initialisation and shuffle seed (default: the profile's first seed).
    `on_epoch_end(epoch, history_row)` runs after each epoch's checkpoint (every rank).
    """
    from stf.models.msg3d import MSG3D
    from stf.stages.spec import spec_for

    dataset = params.setting(setting).dataset
    ctx = distributed.setup(params.train.device)
    try:
        configure_torch(params, ctx)
        seed = _seed_of(params, seed)
        train = load_part(data, split, "train", stream, fraction)
        test = load_part(data, split, "test", stream)
        torch.manual_seed(seed)
        model = MSG3D(spec_for(params, dataset, int(train.num_class), in_channels=train.shape[0]))
        epochs = params.sizes.epochs[dataset]
        steps = tuple(params.sizes.lr_steps[dataset])
        recipe = recipe_from(params, epochs=epochs, lr=params.train.lr[dataset], seed=seed, milestones=steps)
        fp = run_fingerprint(
            "baseline", params, {"data": Path(data), "split": Path(split)},
            setting=setting, stream=stream, fraction=fraction, seed=seed,
        )  # fmt: skip
        meta = _base_meta(params, setting, stream, fraction, train, epochs, seed) | {"variant": "msg3d", "losses": []}
        return _train_model(TrainRun(
            objective_for=CrossEntropyObjective, model=model, train=train, test=test, recipe=recipe, ctx=ctx,
            out_dir=out_dir, workdir=workdir, resume=resume, fingerprint=fp, meta=meta, on_epoch_end=on_epoch_end,
        ))  # fmt: skip
    finally:
        distributed.teardown(ctx)


def load_init(
    params: Params, init: Path, dataset: str, num_class: int, in_channels: int, stf: bool = True
) -> torch.nn.Module:
    """An `MSG3D` whose backbone comes from the baseline at `<init>/model.pt`: with the STF
    modules (new, α zero-initialised) when `stf`, else the baseline network itself.

    Raises `InitModelError` when the baseline's spec differs from this params' baseline spec
    (other than the STF part) or its weights leave anything but STF parameters unset.
    """
    from stf.models.msg3d import MSG3D
    from stf.stages.spec import spec_for

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
    model = MSG3D(spec_for(params, dataset, num_class, in_channels, stf=stf))
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
    variant: str | None,
    data: Path,
    split: Path,
    init: Path,
    out_dir: Path,
    fraction: int = 100,
    workdir: Path | None = None,
    resume: bool = False,
    *,
    control: str | None = None,
    member: int = 0,
    seed: int | None = None,
    lr: float | None = None,
    eval_part: str = "test",
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> dict:
    """Fine-tune from the baseline in `init`: STF variant `variant` (a key of params.stf.variants)
    or, with `variant=None`, the control `control` ("ft" or "stf-ce", see `finetune_spec`).

    One recipe for all: constant lr (`lr`, default params.stf.lr) for params.sizes.finetune_epochs
    epochs, SGD as the baseline, the profile's batch sizes; loss = eq. 6 with the variant's
    terms (a control: cross-entropy alone). `seed` (default: the profile's first seed) seeds
    the STF modules' initialisation and the shuffle order; ensemble member `member` > 0 uses
    `member_seed(seed, member)`. `eval_part`: the part scored into scores.parquet / metrics.json
    ("test", or "val" when choosing the lr). Returns those metrics.
    """
    spec = finetune_spec(params, variant, control, member)
    active = list(spec.losses)
    dataset = params.setting(setting).dataset
    seed = _seed_of(params, seed)
    run_seed = member_seed(seed, member)
    lr = float(params.stf.lr if lr is None else lr)
    if eval_part not in ("test", "val"):
        raise ValueError(f"eval_part must be 'test' or 'val', got {eval_part!r}")
    ctx = distributed.setup(params.train.device)
    try:
        configure_torch(params, ctx)
        train = load_part(data, split, "train", stream, fraction)
        test = load_part(data, split, eval_part, stream)
        if len(test) == 0:
            raise ValueError(f"{split}: no {eval_part} samples (set the profile's val_percent > 0 for a val part)")
        torch.manual_seed(run_seed)
        model = load_init(params, Path(init), dataset, int(train.num_class), train.shape[0], stf=spec.stf_modules)
        epochs = params.sizes.finetune_epochs
        recipe = recipe_from(params, epochs=epochs, lr=lr, seed=run_seed, milestones=(), grad_probe=bool(active))
        fp = run_fingerprint(
            "finetune", params, {"data": Path(data), "split": Path(split), "init": Path(init) / MODEL},
            setting=setting, stream=stream, fraction=fraction, name=spec.name, active=active,
            stf_modules=spec.stf_modules, seed=seed, member=member, lr=lr, eval_part=eval_part,
            lambdas={k: getattr(params.stf.lambdas, k) for k in active},
            loss_norm=params.stf.loss_norm if active else None,
            stf_spec=params.stf.model_dump(include={"graph_scales", "beta_hidden", "alpha_hidden", "alpha_time_bins"})
            if spec.stf_modules else None,
        )  # fmt: skip
        meta = _base_meta(params, setting, stream, fraction, train, epochs, seed) | {
            "variant": spec.variant or spec.name,
            "control": spec.control,
            "member": member,
            "run_seed": run_seed,
            "stf_modules": spec.stf_modules,
            "losses": active,
            # only what the run used: a control's model.pt must not change with λ it never reads
            "lambdas": {k: getattr(params.stf.lambdas, k) for k in active},
            "loss_norm": params.stf.loss_norm if active else None,
            "lr": lr,
            "init": str(init),
            "eval_part": eval_part,
        }

        def objective_for(m: torch.nn.Module) -> Any:
            if not active:
                return CrossEntropyObjective(m)
            return STFObjective(m, params.stf.lambdas, active, norm=params.stf.loss_norm)

        return _train_model(TrainRun(
            objective_for=objective_for, model=model, train=train, test=test, recipe=recipe, ctx=ctx,
            out_dir=out_dir, workdir=workdir, resume=resume, fingerprint=fp, meta=meta, on_epoch_end=on_epoch_end,
        ))  # fmt: skip
    finally:
        distributed.teardown(ctx)


def read_selection(path: Path) -> float:
    """The lr chosen by `select_lr`, from its `selection.json` (a file or its directory)."""
    path = Path(path)
    file = path / SELECTION if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{file}: lr selection not found (run `stf select-lr` first)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{file}: not valid JSON ({err})") from None
    lr = data.get("lr") if isinstance(data, dict) else None
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ValueError(f"{file}: expected a positive number under 'lr', got {lr!r}")
    return float(lr)


def select_lr(
    params: Params,
    setting: str,
    stream: str,
    variant: str | None,
    data: Path,
    split: Path,
    init: Path,
    out_dir: Path,
    *,
    control: str | None = None,
    seed: int | None = None,
) -> dict:
    """Choose the fine-tuning lr of one run on the validation part: for each lr of
    params stf.lr_grid, fine-tune (same recipe as `finetune`) on the training part, which
    excludes the validation part, and score the validation part. The highest validation
    top-1 wins (ties: the earlier lr of the grid). The test part is never read.

    Writes `<out_dir>/selection.json` {"lr", "val_top1": {lr: percent}, "n_val", "name",
    "seed"} and one model directory per candidate, `<out_dir>/lr<lr>/`; returns the dict.
    """
    spec = finetune_spec(params, variant, control)
    seed = _seed_of(params, seed)
    scores: dict[str, float] = {}
    n_val = 0
    for lr in params.stf.lr_grid:
        metrics = finetune(
            params, setting, stream, variant, data, split, init, Path(out_dir) / f"lr{lr:g}",
            control=control, seed=seed, lr=lr, eval_part="val",
        )  # fmt: skip
        scores[f"{lr:g}"] = float(metrics["top1"])
        n_val = int(metrics["n"])
    best = max(params.stf.lr_grid, key=lambda lr: (scores[f"{lr:g}"], -params.stf.lr_grid.index(lr)))
    result = {"lr": float(best), "val_top1": scores, "n_val": n_val, "name": spec.name, "seed": seed}
    if int(os.environ.get("RANK", "0") or 0) == 0:  # under torchrun rank 0 writes
        write_json_atomic(Path(out_dir) / SELECTION, result)
    log.info("select-lr %s %s %s: %s -> lr %g", setting, stream, spec.name, scores, best)
    return result


__all__ = [
    "FinetuneSpec",
    "InitModelError",
    "finetune",
    "finetune_spec",
    "linear_probe",
    "load_init",
    "member_seed",
    "read_selection",
    "select_lr",
    "train_baseline",
]
