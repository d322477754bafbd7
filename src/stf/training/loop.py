"""The training loop shared by the baseline and STF fine-tuning: `fit`.

One optimiser step = one global batch of `recipe.batch_size` samples, run as forward
chunks of `recipe.forward_batch_size` with gradient accumulation (each chunk's loss is
weighted by its share of the global batch, i.e. divided by the number of chunks when
they are equal). SGD + Nesterov momentum, `MultiStepLR` stepped per epoch, shuffle with
drop_last (a training set smaller than one batch is one short batch), the test part
scored after every epoch, and after every epoch the resume state `<workdir>/last.pt`.

Under torchrun (see `stf.training.distributed`) every rank draws the same permutation, owns a
contiguous slice of each global batch, and all ranks score a shard of the test part; rank
0 writes the checkpoint. A non-finite loss stops the run before the optimiser step with
`NonFiniteLossError` (naming epoch and step); `last.pt` then still holds the last good
epoch. A run resumed from `last.pt` ends with the same weights as an uninterrupted one:
the shuffle seed of epoch e is derived from (seed, e) and the RNG states are restored.
Once a run's outputs are written its `last.pt` is deleted (`discard_resume_state`), so only
an interrupted run resumes; a (re)starting run first sweeps the temporaries of a killed
`last.pt` write (`open_resume_state`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from stf.data.loader import batch_loader
from stf.io import remove_stale_temps
from stf.method.losses import LossTerms
from stf.metrics import topk_accuracy
from stf.training import distributed
from stf.training.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from stf.training.inference import amp_dtype, autocast, predict_logits

log = logging.getLogger(__name__)

LAST = "last.pt"


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite; the message names epoch, step and checkpoint."""


@dataclass(frozen=True)
class Recipe:
    """Optimisation settings of one run (built from params by `stf.stages.train`)."""

    epochs: int
    batch_size: int
    forward_batch_size: int
    lr: float
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    seed: int = 0
    eval_batch_size: int = 64
    amp: bool = False  # CUDA autocast (bfloat16 where supported, else float16 + GradScaler)
    # the first this many global batches of each epoch also measure every loss term's
    # gradient norm (`gradient_norms`); 0 = never. Only objectives with terms besides L_ce.
    grad_probe_batches: int = 0
    num_workers: int = 0  # data-loader worker processes (do not change the result)


# --------------------------------------------------------------------------- objectives


class Objective(nn.Module):
    """Wraps `model`; `terms(x, y)` -> `stf.losses.LossTerms` (logits and the weighted summands
    of the loss, "ce" first); `forward(x, y)` -> (total loss, logits (B, K) detached,
    {term: float}).

    The loss is computed inside `forward` so that DistributedDataParallel wraps it.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def term_names(self) -> tuple[str, ...]:
        """Names of the summands `terms` returns ("ce" first)."""
        return ("ce",)

    def terms(self, x: torch.Tensor, y: torch.Tensor) -> LossTerms:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        terms = self.terms(x, y)
        total = terms.total()
        parts = terms.parts()
        values = {k: v for k, v in parts.items() if k != "total"}
        values |= {f"weighted_{k}": float(v.detach()) for k, v in terms.weighted.items() if k != "ce"}
        return total, terms.logits.detach(), values


class CrossEntropyObjective(Objective):
    """The MS-G3D baseline loss (and that of the cross-entropy controls): cross-entropy of the logits."""

    def terms(self, x: torch.Tensor, y: torch.Tensor) -> LossTerms:
        logits = self.model(x)  # (B, K)
        return LossTerms(logits, {"ce": F.cross_entropy(logits.float(), y)}, {})


class STFObjective(Objective):
    """Eq. 6: `stf.losses.stf_loss_terms` with the given λ, active terms and focus-distance norm."""

    def __init__(self, model: nn.Module, lambdas: Any, active: list[str], norm: str = "rms") -> None:
        super().__init__(model)
        self.lambdas = lambdas
        self.active = list(active)
        self.norm = norm

    @property
    def term_names(self) -> tuple[str, ...]:
        from stf.method.losses import LOSS_NAMES

        run = [n for n in LOSS_NAMES if n in self.active and float(getattr(self.lambdas, n)) > 0]
        return ("ce", *run)

    def terms(self, x: torch.Tensor, y: torch.Tensor) -> LossTerms:
        from stf.method.losses import stf_loss_terms

        return stf_loss_terms(self.model, x, y, self.lambdas, self.active, norm=self.norm)


def gradient_norms(objective: Objective, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Each loss summand's gradient norm over the model's trainable parameters, on one batch.

    Returns {"grad_norm_ce": ‖∇θ L_ce‖, "grad_ratio_<k>": ‖∇θ λ_k L_k‖ / ‖∇θ L_ce‖ for every
    other summand} (ratio NaN when ‖∇θ L_ce‖ is 0). Runs its own forward pass with BatchNorm
    running statistics frozen and `torch.autograd.grad` (no `.grad` is touched, no RNG is
    drawn), so training with this probe gives the same weights as training without it.
    """
    from stf.method.losses import batchnorm_stats_frozen

    model = objective.model
    params = [p for p in model.parameters() if p.requires_grad]
    with batchnorm_stats_frozen(model):
        terms = objective.terms(x, y)
    names = list(terms.weighted)
    norms: dict[str, float] = {}
    for i, name in enumerate(names):
        grads = torch.autograd.grad(terms.weighted[name], params, retain_graph=i < len(names) - 1, allow_unused=True)
        squares = [g.detach().double().pow(2).sum() for g in grads if g is not None]
        norms[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    ce = norms["ce"]
    out = {"grad_norm_ce": ce}
    out |= {f"grad_ratio_{k}": (v / ce if ce > 0 else float("nan")) for k, v in norms.items() if k != "ce"}
    return out


# --------------------------------------------------------------------------- batches


def epoch_seed(seed: int, epoch: int) -> int:
    """Shuffle seed of 0-based `epoch`, a pure function of (seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def epoch_batches(n: int, batch_size: int, seed: int, drop_last: bool = True) -> list[np.ndarray]:
    """Global batches of one epoch: a seeded permutation of range(n) cut into `batch_size` pieces.

    With `drop_last` the incomplete tail is dropped, except when `n < batch_size`: then the
    whole (shuffled) set is the epoch's single batch.
    """
    if n <= 0:
        raise ValueError("cannot train on an empty training set")
    perm = np.random.default_rng(seed).permutation(n)
    if n < batch_size:
        return [perm]
    stop = (n // batch_size) * batch_size if drop_last else n
    return [perm[s : s + batch_size] for s in range(0, stop, batch_size)]


def chunks(indices: np.ndarray, size: int) -> list[np.ndarray]:
    """Consecutive pieces of at most `size` indices."""
    return [indices[s : s + size] for s in range(0, len(indices), size)]


# --------------------------------------------------------------------------- optimiser


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.SGD:
    """SGD with (Nesterov) momentum; weight decay on every parameter, as MS-G3D does."""
    return torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0,
        weight_decay=recipe.weight_decay,
    )


def make_scheduler(opt: torch.optim.Optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.MultiStepLR:
    """Multiply the lr by `gamma` at each milestone epoch (stepped once per epoch)."""
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(recipe.milestones), gamma=recipe.gamma)


# --------------------------------------------------------------------------- the loop


@dataclass
class FitResult:
    """`history`: one dict per epoch; `test_logits` (N_test, K) of the final weights;
    `start_epoch`: epochs already done when this call started (resume)."""

    history: list[dict[str, float]] = field(default_factory=list)
    test_logits: np.ndarray | None = None
    start_epoch: int = 0


def open_resume_state(path: Path, fp: str, resume: bool, ctx: distributed.DistContext) -> dict | None:
    """What a (re)starting run does with its resume file `path`: sweep the temporaries a killed
    write of it left behind (rank 0), then, with `resume`, return `load_resume_state(path, fp)`."""
    if ctx.is_main:
        for stale in remove_stale_temps(path):
            log.info("removed %s, left by a write that was killed", stale)
    return load_resume_state(path, fp) if resume else None


def discard_resume_state(workdir: Path) -> None:
    """Delete `<workdir>/last.pt` once the run's outputs are written (rank 0 calls it).

    A finished run leaves nothing to resume: a forced rerun (`snakemake --forcerun`,
    `dvc repro -f`) trains again from epoch 1 instead of reloading the final epoch. Only a
    run stopped before its outputs were written resumes.
    """
    last = Path(workdir) / LAST
    last.unlink(missing_ok=True)
    remove_stale_temps(last)


def load_resume_state(path: Path, fp: str) -> dict | None:
    """The resume dict in `path` if it exists, reads, and carries fingerprint `fp`; else None (logged)."""
    if not path.is_file():
        log.info("no resume state at %s; starting from epoch 1", path)
        return None
    try:
        state = load_checkpoint(path)
    except CheckpointError as err:
        log.warning("ignoring unreadable resume state: %s", err)
        return None
    if state.get("fingerprint") != fp:
        log.warning("%s belongs to other params or inputs (fingerprint differs); starting fresh", path)
        return None
    return state


@dataclass(frozen=True)
class EpochRun:
    """What `fit` hands `_train_epoch` for every epoch of one run (the same object each epoch).

    `net`: the module whose forward(x, y) gives (loss, logits, terms): `objective` itself or its
    DistributedDataParallel wrapper under torchrun; `objective`: the unwrapped `Objective`
    (train mode, gradient probe, BatchNorm merge); `opt`, `scaler`: the optimiser and the
    GradScaler (enabled for float16 only); `train`: the training part (`SkeletonPart`-like);
    `recipe`: the run's `Recipe`; `ctx`: the rank context; `amp`: the autocast dtype or None.
    """

    net: nn.Module
    objective: Objective
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    train: Dataset
    recipe: Recipe
    ctx: distributed.DistContext
    amp: torch.dtype | None


def _train_epoch(run: EpochRun, epoch: int) -> dict[str, float]:
    """One epoch (0-based `epoch`) over the training set; returns train_loss, train_top1 and mean loss terms."""
    net, objective, opt, scaler, train = run.net, run.objective, run.opt, run.scaler, run.train
    recipe, ctx, amp = run.recipe, run.ctx, run.amp
    objective.train()
    batches = epoch_batches(len(train), recipe.batch_size, epoch_seed(recipe.seed, epoch))
    f = recipe.forward_batch_size
    # this rank's forward chunks of every step, in order: what the loader reads
    plan = [chunks(gidx[distributed.rank_slice(len(gidx), ctx.rank, ctx.world_size)], f) for gidx in batches]
    loader = iter(batch_loader(train, [c for step in plan for c in step], recipe.num_workers, ctx.device))
    loss_sum, correct, count = 0.0, 0.0, 0.0
    term_sums: dict[str, float] = {}
    probe = len(objective.term_names) > 1 and recipe.grad_probe_batches > 0
    probe_sums: dict[str, float] = {}
    probes = 0
    steps = tqdm(zip(batches, plan, strict=True), total=len(batches), desc=f"epoch {epoch + 1}", leave=False,
                 disable=not ctx.is_main)  # fmt: skip
    for step, (gidx, local_chunks) in enumerate(steps):
        n_chunks = [-(-size // f) for size in distributed.slice_sizes(len(gidx), ctx.world_size)]  # per rank
        # this step's chunks from the loader: (x (b, C, T, V, M), y (b,)) each, on the device
        loaded = [tuple(t.to(ctx.device, non_blocking=True) for t in next(loader)[:2]) for _ in local_chunks]
        if probe and step < recipe.grad_probe_batches and len(local_chunks):
            for k, v in gradient_norms(objective, *loaded[0]).items():
                probe_sums[k] = probe_sums.get(k, 0.0) + v
            probes += 1
        bn_before = distributed.batchnorm_snapshot(objective) if ctx.distributed else []
        opt.zero_grad(set_to_none=True)
        bad = False
        for j, (cidx, (x, y)) in enumerate(zip(local_chunks, loaded, strict=True)):
            last_chunk = j == len(local_chunks) - 1
            sync = contextlib.nullcontext() if last_chunk or not ctx.distributed else net.no_sync()
            with sync:
                with autocast(ctx.device, amp):
                    total, logits, terms = net(x, y)
                # DDP averages over ranks, so scale by world size to sum the global batch's shares
                weight = len(cidx) / len(gidx) * ctx.world_size
                scaler.scale(total * weight).backward()
            value = float(total.detach())
            bad = bad or not np.isfinite(value)
            loss_sum += value * len(cidx)
            correct += float((logits.argmax(1) == y).sum())
            count += len(cidx)
            for k, v in terms.items():
                term_sums[k] = term_sums.get(k, 0.0) + float(v) * len(cidx)
        if distributed.any_rank(bad, ctx):
            raise NonFiniteLossError(f"non-finite training loss at epoch {epoch + 1}, step {step + 1}")
        scaler.step(opt)
        scaler.update()
        if ctx.distributed:
            distributed.merge_batchnorm_stats(objective, bn_before, n_chunks, ctx)
    keys = sorted(term_sums)
    sums = distributed.all_sum([loss_sum, correct, count] + [term_sums[k] for k in keys], ctx)
    row = {"train_loss": sums[0] / sums[2], "train_top1": 100.0 * sums[1] / sums[2]}
    for k, s in zip(keys, sums[3:], strict=True):
        row[k if k.startswith("weighted_") else f"loss_{k}"] = s / sums[2]
    if probe:
        pkeys = sorted(probe_sums)
        psums = distributed.all_sum([float(probes)] + [probe_sums[k] for k in pkeys], ctx)
        row.update({k: s / psums[0] for k, s in zip(pkeys, psums[1:], strict=True)})
    return row


def fit(
    objective: Objective,
    train: Dataset,
    test: Dataset,
    recipe: Recipe,
    ctx: distributed.DistContext,
    workdir: Path,
    fingerprint: str,
    resume: bool = False,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    log_row: Callable[[int, dict], None] | None = None,
) -> FitResult:
    """Train `objective.model` for `recipe.epochs` epochs on the `train` part.

    train, test: `stf.data.dataset.SkeletonPart`s (or any Dataset whose item at a list of
    positions is the batch (x (B, C, T, V, M), y (B,), positions) and with labels `.y`); their
    batches stream through `stf.data.loader.batch_loader` with `recipe.num_workers` workers.
    After each epoch: score `test`, append a history row (epoch, lr, train_loss,
    train_top1, test_top1, seconds, loss_<term>...), write `<workdir>/last.pt` (rank 0),
    call `log_row(epoch, row)` (rank 0) and `on_epoch_end(epoch, row)` (every rank).
    With `resume`, continue from `last.pt` when its fingerprint equals `fingerprint`. The
    caller deletes `last.pt` once it has written the run's outputs (`discard_resume_state`).
    """
    test_y = np.asarray(test.y)
    if min(len(train), recipe.batch_size) < ctx.world_size:
        raise ValueError(
            f"{ctx.world_size} ranks need at least {ctx.world_size} samples per batch; "
            f"training set has {len(train)}, batch_size is {recipe.batch_size}"
        )
    model = objective.model
    objective.to(ctx.device)
    amp = amp_dtype(ctx.device, recipe.amp)  # None, bfloat16 or float16
    opt = make_optimizer(model, recipe)
    sched = make_scheduler(opt, recipe)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=amp == torch.float16)  # bf16 needs no loss scaling
    last = Path(workdir) / LAST
    result = FitResult()
    state = open_resume_state(last, fingerprint, resume, ctx)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if scaler.is_enabled() and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        result.history = [dict(r) for r in state["history"]]
        result.start_epoch = int(state["epoch"])
        log.info("resuming from %s after epoch %d of %d", last, result.start_epoch, recipe.epochs)
    run = EpochRun(
        net=distributed.wrap(objective, ctx), objective=objective, opt=opt, scaler=scaler, train=train,
        recipe=recipe, ctx=ctx, amp=amp,
    )  # fmt: skip
    for epoch in range(result.start_epoch, recipe.epochs):
        t0 = time.perf_counter()
        lr = float(opt.param_groups[0]["lr"])
        try:
            stats = _train_epoch(run, epoch)
        except NonFiniteLossError as err:
            kept = f"last good state kept at {last} (epoch {epoch})" if epoch > 0 else "no epoch finished"
            raise NonFiniteLossError(f"{err}; {kept}") from None
        sched.step()
        result.test_logits = predict_logits(
            model, test, recipe.eval_batch_size, ctx, amp, desc="test", num_workers=recipe.num_workers
        )
        row: dict[str, float] = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": stats.pop("train_loss"),
            "train_top1": stats.pop("train_top1"),
            "test_top1": topk_accuracy(result.test_logits, test_y, 1),
            "seconds": time.perf_counter() - t0,
            **stats,  # loss_<term>, weighted_<term> means; grad_norm_ce, grad_ratio_<term> (probed batches)
        }
        result.history.append(row)
        log.info(
            "epoch %d/%d lr %.3g loss %.4f train %.2f%% test %.2f%% (%.1f s, %.1f samples/s)",
            epoch + 1, recipe.epochs, lr, row["train_loss"], row["train_top1"], row["test_top1"],
            row["seconds"], len(train) / max(row["seconds"], 1e-9),
        )  # fmt: skip
        if ctx.is_main:
            save_checkpoint(
                last,
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                    "rng": rng_state(),
                    "history": result.history,
                },
            )
            if log_row is not None:
                log_row(epoch + 1, row)
        distributed.barrier(ctx)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)
    if result.test_logits is None:  # nothing left to train after a resume
        result.test_logits = predict_logits(
            model, test, recipe.eval_batch_size, ctx, amp, desc="test", num_workers=recipe.num_workers
        )
    return result
