"""Running a model over a data part, and mixed precision: what the training loop scores its
test part with after every epoch, and what the stages reuse.

`predict_logits(model, source, batch_size, ctx, amp, ...)` runs a model in eval mode over every
sample of a part, streamed in batches (sharded over ranks under torchrun); `pooled_features`
is the input of `model.fc`; `amp_dtype` / `autocast` pick mixed precision. The accuracy of
the logits is `stf.metrics`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from stf.data.loader import batch_loader, contiguous_batches
from stf.training import distributed


def amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype of a run: None without `amp` or off CUDA; on CUDA bfloat16 where the GPU
    supports it (fp32's exponent range, so no loss scaling), else float16 (with a GradScaler)."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to `dtype` on `device` (see `amp_dtype`); a disabled context when dtype is None."""
    return torch.autocast(device_type=device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    source: Dataset,
    batch_size: int,
    ctx: distributed.DistContext | None = None,
    amp: torch.dtype | None = None,
    features: bool = False,
    desc: str = "predict",
    num_workers: int = 0,
) -> np.ndarray:
    """Run `model` in eval mode over every sample of `source`; returns (N, K) float32 logits.

    source: a `stf.data.dataset.SkeletonPart` (or any Dataset whose item at a list of
    positions is the batch (x (B, C, T, V, M), y, positions)), streamed in batches of
    `batch_size` by `stf.data.loader.batch_loader` with `num_workers` workers; `amp` an
    autocast dtype (`amp_dtype`). With `features=True` returns the pooled block-3 features
    (N, C3) that `model.fc` reads instead. Under torchrun each rank scores a contiguous shard
    and every rank receives all N rows. The model's train/eval mode is restored afterwards.
    """
    ctx = ctx or distributed.DistContext(device=next(model.parameters()).device)
    shard = distributed.rank_slice(len(source), ctx.rank, ctx.world_size)
    batches = contiguous_batches(shard.start, shard.stop, batch_size)
    was_training = model.training
    model.eval()
    outs = []
    try:
        loader = batch_loader(source, batches, num_workers, ctx.device)
        for xb, _, _ in tqdm(loader, desc=desc, leave=False, disable=not ctx.is_main or len(batches) < 2):
            xb = xb.to(ctx.device, non_blocking=True)  # (B, C, T, V, M)
            with autocast(ctx.device, amp):
                out = pooled_features(model, xb) if features else model(xb)
            outs.append(out.float().cpu().numpy())
    finally:
        model.train(was_training)
    width = outs[0].shape[1] if outs else (model.fc.in_features if features else model.fc.out_features)
    local = np.concatenate(outs, 0) if outs else np.zeros((0, width), np.float32)
    return distributed.gather_rows(local, ctx)


def pooled_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Input of `model.fc`: block-3 output averaged over (T3, V) then persons; x (N, C, T, V, M) -> (N, C3)."""
    n, m = x.shape[0], x.shape[-1]
    last = model.forward_features(x).last  # (N*M, C3, T3, V)
    return last.mean(dim=(2, 3)).view(n, m, -1).mean(1)  # (N*M, C3) -> (N, M, C3) -> (N, C3)
