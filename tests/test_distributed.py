"""Data-parallel training: 2 gloo ranks train the same model as one process with the same global batch."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from helpers import ArrayPart
from stf.config import Lambdas
from stf.models.msg3d import MSG3D, ModelSpec
from stf.models.stf import STFSpec
from stf.training import distributed
from stf.training.distributed import DistContext, DistributedSetupError, rank_slice, resolve_device, setup, slice_sizes
from stf.training.loop import CrossEntropyObjective, Recipe, STFObjective, fit

TINY = ModelSpec(
    num_class=3, num_point=5, num_person=2, in_channels=2, edges=((1, 0), (2, 1), (3, 2), (4, 3)),
    widths=(4, 4, 4), gcn_scales=2, g3d_scales=2, window_sizes=(3,), window_dilations=(1,),
)  # fmt: skip
# (global batch, forward batch of the single process, forward batch per rank with 2 ranks, STF terms
# or None for the cross-entropy baseline). lr 0.01: with BatchNorm over 2-sample chunks, larger
# steps amplify float rounding chaotically.
CASES = [(8, 4, 4, None), (8, 2, 2, None), (8, 4, 4, ["d", "c", "gk", "e"])]


def _data(n: int, seed: int) -> ArrayPart:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(0, 0.3, size=(n, 2, 8, 5, 2))  # (N, C, T, V, M)
    x[np.arange(n), 0, :, y + 1, 0] += 1.0
    return ArrayPart(x, y, np.float64)


def _train(ctx: DistContext, batch: int, fwd: int, terms: list[str] | None, workdir: Path) -> dict:
    """Two epochs in float64: one process and two ranks add the same gradients in a different
    order, and in float32 the training steps amplify those rounding differences to ~4e-5 on
    some CPUs' kernels (oneDNN's AVX2 convolutions), which would hide a real DDP error of that
    size. In float64 they stay far below the tolerances."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        if terms is None:
            objective = CrossEntropyObjective(MSG3D(TINY))
        else:
            stf = STFSpec(graph_scales=2, beta_hidden=4, alpha_hidden=4, time_bins=4)
            objective = STFObjective(MSG3D(replace(TINY, stf=stf)), Lambdas(e=0.1, d=0.1, c=0.1, gk=0.1), terms)
        model = objective.model.double()  # the graph buffers are built as float32
        recipe = Recipe(epochs=2, batch_size=batch, forward_batch_size=fwd, lr=0.01, milestones=(1,), eval_batch_size=4)
        res = fit(objective, _data(24, 0), _data(10, 1), recipe, ctx, workdir, "fp")
    finally:
        torch.set_default_dtype(default)
    return {"state": model.state_dict(), "logits": torch.from_numpy(res.test_logits), "history": res.history}


def _worker(rank: int, world: int, port: int, root: str) -> None:
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    ctx = setup("cpu")
    try:
        for i, (batch, _, fwd, terms) in enumerate(CASES):
            out = _train(ctx, batch, fwd, terms, Path(root) / f"work{i}")
            if ctx.is_main:
                torch.save(out, Path(root) / f"ddp{i}.pt")
    finally:
        distributed.teardown(ctx)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rank_slices_partition_a_batch() -> None:
    for n in (1, 5, 8, 9):
        for world in (1, 2, 3):
            parts = [list(range(n))[rank_slice(n, r, world)] for r in range(world)]
            assert sum(parts, []) == list(range(n))
            assert [len(p) for p in parts] == slice_sizes(n, world)
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_without_torchrun_there_is_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    ctx = setup("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    assert ctx.device == torch.device("cpu")
    assert distributed.all_sum([1.0, 2.0], ctx) == [1.0, 2.0]
    assert not distributed.any_rank(False, ctx) and distributed.any_rank(True, ctx)


def test_bad_environment_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(DistributedSetupError, match="WORLD_SIZE='two'"):
        setup("cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(DistributedSetupError, match="RANK=5"):
        setup("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DistributedSetupError, match="no CUDA"):
            resolve_device("cuda")


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(tmp_path: Path) -> None:
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="spawn", join=True)
    torch.set_num_threads(1)
    for i, (batch, fwd_single, _, terms) in enumerate(CASES):
        single = _train(DistContext(), batch, fwd_single, terms, tmp_path / f"single{i}")
        ddp = torch.load(tmp_path / f"ddp{i}.pt", weights_only=True)
        for k, v in single["state"].items():
            # parameters (averaged gradients) and BatchNorm running stats (merged) both agree
            torch.testing.assert_close(ddp["state"][k], v, rtol=1e-7, atol=1e-9, msg=lambda m, k=k: f"{k}: {m}")
        torch.testing.assert_close(ddp["logits"], single["logits"], rtol=1e-5, atol=1e-6)  # float32 logits
        for a, b in zip(ddp["history"], single["history"], strict=True):
            assert a.keys() == b.keys()
            for key in a:
                if key.startswith("loss_") or key == "train_loss":
                    assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-8), key  # float32 losses
            assert a["train_top1"] == b["train_top1"] and a["test_top1"] == b["test_top1"]
        assert (tmp_path / f"work{i}" / "last.pt").is_file()  # written once, by rank 0
