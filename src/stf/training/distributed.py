"""Data-parallel training under `torchrun`: process group, batch slicing, collectives.

`setup(device)` reads `WORLD_SIZE` / `RANK` / `LOCAL_RANK` (set by `torchrun`) and joins
the process group (NCCL on CUDA, gloo on CPU); without them it returns a one-process
context and every helper here is a no-op, so the training loop has a single code path.

How a global batch is shared (see `stf.training.loop`): every rank draws the same permutation,
takes the contiguous slice `rank_slice(len(batch), rank, world)` of each global batch and
splits it into forward chunks. Gradients are averaged by DistributedDataParallel; the
BatchNorm running statistics, which DDP would otherwise copy from rank 0, are merged by
`merge_batchnorm_stats` into exactly what one process would hold after running all the
chunks one after another. So W ranks with forward batch b train the same model as one
process with forward batch b and global batch W*b.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


class DistributedSetupError(ValueError):
    """The torchrun environment or the requested device is unusable."""


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: `rank` of `world_size`, its `device`, and whether it
    created the process group (and so must destroy it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, outputs and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise DistributedSetupError(f"environment variable {name}={raw!r} is not an integer") from None


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """`auto` -> CUDA (device `local_rank`) when present, else CPU; `cuda` without CUDA is an error."""
    if preference not in ("auto", "cpu", "cuda"):
        raise DistributedSetupError(f"unknown device {preference!r}; use auto, cpu or cuda")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DistributedSetupError("params train.device is 'cuda' but no CUDA device is available")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def setup(device: str = "auto", timeout_min: float = 60.0) -> DistContext:
    """Join the torchrun process group when `WORLD_SIZE` > 1, else a one-process context.

    A process group that already exists (e.g. created by a caller) is reused and left
    for its creator to destroy.
    """
    world = _env_int("WORLD_SIZE", 1)
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = _env_int("LOCAL_RANK", rank)
        dev = resolve_device(device, local_rank)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return DistContext(rank, world, local_rank, dev, owns_group=False)
    if world <= 1:
        return DistContext(device=resolve_device(device, 0))
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if not 0 <= rank < world:
        raise DistributedSetupError(f"RANK={rank} is outside WORLD_SIZE={world}")
    dev = resolve_device(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_min))
    log.info("rank %d/%d on %s (%s)", rank, world, dev, backend)
    return DistContext(rank, world, local_rank, dev, owns_group=True)


def teardown(ctx: DistContext) -> None:
    """Destroy the process group if `setup` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def rank_slice(n: int, rank: int, world: int) -> slice:
    """Contiguous slice of `n` items owned by `rank` (sizes differ by at most one, lower ranks larger)."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def slice_sizes(n: int, world: int) -> list[int]:
    """Length of every rank's `rank_slice` of `n` items."""
    return [rank_slice(n, r, world).stop - rank_slice(n, r, world).start for r in range(world)]


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def all_sum(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Element-wise sum of `values` over ranks (float64)."""
    if not ctx.distributed:
        return [float(v) for v in values]
    t = torch.tensor(list(values), dtype=torch.float64, device=_comm_device(ctx))
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True when `flag` is true on at least one rank."""
    return all_sum([1.0 if flag else 0.0], ctx)[0] > 0


def gather_rows(arr: np.ndarray, ctx: DistContext) -> np.ndarray:
    """Concatenate every rank's `arr` (same trailing shape) in rank order, on every rank."""
    if not ctx.distributed:
        return arr
    parts: list[np.ndarray | None] = [None] * ctx.world_size
    dist.all_gather_object(parts, arr)
    return np.concatenate([p for p in parts if p is not None], axis=0)


def _comm_device(ctx: DistContext) -> torch.device:
    return ctx.device if ctx.device.type == "cuda" else torch.device("cpu")


def wrap(module: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around `module` when distributed, else `module` itself.

    Buffers are not broadcast at each forward (`merge_batchnorm_stats` keeps them equal).
    """
    if not ctx.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, forward_sync_buffers=False)


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None
    ]


def batchnorm_snapshot(model: nn.Module) -> list[torch.Tensor]:
    """Copies of every BatchNorm's running mean and variance, before a step's forwards."""
    out = []
    for m in _batchnorms(model):
        out += [m.running_mean.detach().clone(), m.running_var.detach().clone()]
    return out


def merge_batchnorm_stats(
    model: nn.Module, before: list[torch.Tensor], chunks_per_rank: Sequence[int], ctx: DistContext
) -> None:
    """Make every rank's BatchNorm running stats what one process would hold.

    Rank r ran `chunks_per_rank[r]` forward chunks in training mode, each an exponential
    update s <- (1 - m) s + m * batch_stat from the common state `before`. One process
    running rank 0's chunks, then rank 1's, ... ends with
    s = D * s0 + sum_r (prod_{q > r} d_q) * (s_r - d_r * s0), with d_r = (1 - m)^{n_r},
    D = prod_r d_r and s_r the state rank r reached. Momentum-free (cumulative) BatchNorm
    layers are averaged over ranks instead. `num_batches_tracked` gains sum(n_r).
    """
    if not ctx.distributed:
        return
    bns = _batchnorms(model)
    if not bns:
        return
    local = torch.cat([t for m in bns for t in (m.running_mean, m.running_var)]).detach()  # (S,)
    gathered = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, local)
    stacked = torch.stack(gathered)  # (W, S)
    offset = 0
    n_total = int(sum(chunks_per_rank))
    for i, m in enumerate(bns):
        size = m.running_mean.numel()
        for j, buf in enumerate((m.running_mean, m.running_var)):
            s0 = before[2 * i + j]
            per_rank = stacked[:, offset : offset + size]  # (W, size)
            offset += size
            if m.momentum is None:
                merged = per_rank.mean(0)
            else:
                d = [(1.0 - m.momentum) ** n for n in chunks_per_rank]
                merged = float(np.prod(d)) * s0
                for r in range(ctx.world_size):
                    later = float(np.prod(d[r + 1 :]))
                    merged = merged + later * (per_rank[r] - d[r] * s0)
            buf.copy_(merged)
        if m.num_batches_tracked is not None:
            # this rank's own count grew by its n_r; the merged state saw all chunks
            m.num_batches_tracked.add_(n_total - int(chunks_per_rank[ctx.rank]))
