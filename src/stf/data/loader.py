"""Streaming input for training, evaluation and the probe: a torch `DataLoader` of whole batches.

`batch_loader(source, batches, num_workers, device)` yields one batch per index array of
`batches`, in exactly that order: `source[batch]` (a `stf.data.dataset.SkeletonPart`, or
any map-style Dataset whose item is a batch) read in `num_workers` worker processes
(0 = in this process), `PREFETCH_FACTOR` batches ahead per worker, into pinned memory when
the device is CUDA. The order is the caller's: the training loop passes its seeded epoch
permutation cut into this rank's forward chunks (`stf.training.loop`), evaluation the contiguous
batches of this rank's shard (`contiguous_batches`). Each batch is read from the parquet
when it is needed, so memory holds at most (workers × prefetch + 1) batches, whatever the
dataset size; the numbers are the same with any worker count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

PREFETCH_FACTOR = 2  # batches each worker keeps ready (torch's default)


def contiguous_batches(start: int, stop: int, batch_size: int) -> list[np.ndarray]:
    """Positions start..stop-1 cut into consecutive pieces of at most `batch_size`."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return [np.arange(s, min(s + batch_size, stop), dtype=np.int64) for s in range(start, stop, batch_size)]


def batch_loader(
    source: Dataset,
    batches: Sequence[np.ndarray],
    num_workers: int = 0,
    device: torch.device | None = None,
) -> DataLoader:
    """A DataLoader yielding `source[b]` for every index array `b` of `batches`, in order.

    Automatic batching is off (`batch_size=None`): the dataset reads a batch in one call,
    which is what makes the parquet reads vectorised. With `num_workers` > 0 the batches are
    read in that many worker processes; `pin_memory` when `device` is CUDA, so the copy to the
    GPU can be asynchronous (`.to(device, non_blocking=True)`).
    """
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    pin = device is not None and device.type == "cuda"
    return DataLoader(
        source,
        sampler=list(batches),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin,
        prefetch_factor=PREFETCH_FACTOR if num_workers > 0 else None,
        persistent_workers=False,
        # the loader draws a worker base seed when iterated; a private generator keeps that
        # draw off the global torch RNG, so the model's random stream is the same as without it
        generator=torch.Generator().manual_seed(0),
    )
