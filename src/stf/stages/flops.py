"""Parameters and FLOPs of MS-G3D vs STF, counted on the meta device (no memory, no compute).

Convention: `torch.utils.flop_counter` (2 FLOPs per multiply-add; convolutions, matmuls,
einsum-as-bmm and linear layers; batch norm, ReLU, pooling and additions count 0). This is
the convention of the 65.5 GFLOPs figure for MS-G3D on NTU at T = 300, M = 2 (32.8 GMAC;
thop's "24 GMAC" leaves out the graph aggregations).

- `count_params(model) -> int`
- `count_flops(model, x) -> int`: one inference forward (eval mode, no grad) of x.
- `compare_flops(params, dataset, frames, persons, in_channels) -> dict`: the paper-width
  models (96/192/384) whatever the active profile.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from stf.config import Params
from stf.models.msg3d import MSG3D, NUM_CLASSES
from stf.stages.spec import spec_for

log = logging.getLogger(__name__)

META = torch.device("meta")


class FlopsInputError(ValueError):
    """Bad arguments to `compare_flops` (unknown dataset, non-positive sizes)."""


def count_params(model: nn.Module) -> int:
    """Number of parameter elements (A_res masks included, fixed graph buffers not)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, x: Tensor) -> int:
    """FLOPs of one eval-mode forward of `x` (torch flop counter). Put both on META to make it free."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def compare_flops(params: Params, dataset: str, frames: int, persons: int, in_channels: int) -> dict:
    """MS-G3D vs STF at the paper's widths for one sample of (in_channels, frames, V, persons).

    Returns {"msg3d": {"params", "flops"}, "stf": {"params", "flops"}, "msg3d_c3": {"params",
    "flops"} (MS-G3D with the original's C = 3 input, x, y, z: what the visibility channel
    adds is msg3d minus msg3d_c3), "ratio" (STF / MS-G3D FLOPs), "frames", "persons",
    "in_channels", "dataset"}.
    """
    if dataset not in NUM_CLASSES:
        raise FlopsInputError(f"compare_flops: unknown dataset {dataset!r}; expected one of {sorted(NUM_CLASSES)}")
    for name, value in (("frames", frames), ("persons", persons), ("in_channels", in_channels)):
        if value < 1:
            raise FlopsInputError(f"compare_flops: {name} must be >= 1, got {value}")
    result: dict = {"dataset": dataset, "frames": frames, "persons": persons, "in_channels": in_channels}
    runs = [("msg3d", False, in_channels), ("stf", True, in_channels)]
    runs += [("msg3d_c3", False, 3)] if in_channels != 3 else []
    for name, with_stf, channels in runs:
        spec = spec_for(params, dataset, NUM_CLASSES[dataset], channels, stf=with_stf, full_width=True)
        spec = replace(spec, num_person=persons)
        with META:
            model = MSG3D(spec)
            x = torch.empty(1, channels, frames, spec.num_point, persons)  # (N, C, T, V, M)
        result[name] = {"params": count_params(model), "flops": count_flops(model, x)}
    result.setdefault("msg3d_c3", dict(result["msg3d"]))
    result["ratio"] = result["stf"]["flops"] / result["msg3d"]["flops"]
    log.info(
        "%s T=%d M=%d: MS-G3D %.2f GFLOPs, STF %.2f GFLOPs (x%.3f)",
        dataset,
        frames,
        persons,
        result["msg3d"]["flops"] / 1e9,
        result["stf"]["flops"] / 1e9,
        result["ratio"],
    )
    return result
