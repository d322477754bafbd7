"""Linear probe heads on frozen features (the paper's data-shift test).

The source backbones are frozen, so their pooled features (N, C3) of the target training
and test sets are computed once (`stf.training.inference.predict_logits(features=True)`); then one
new `Linear(C3, K_target)` head per source model is trained on them with SGD. The heads'
softmax probabilities on the test set are averaged (the STF ensemble when several source
models are given). `train_heads` is the loop, `linear_probe` the entry point (the CLI imports it
from `stf.stages.train`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stf.config import Params
from stf.metrics import compute_metrics, topk_accuracy
from stf.stages.evaluate import load_model
from stf.stages.runtime import configure_torch, dvclive_logger, load_part, recipe_from, run_fingerprint, write_outputs
from stf.stages.scores import MODEL, ScoresError
from stf.training import distributed
from stf.training.checkpoint import default_workdir, save_checkpoint
from stf.training.inference import amp_dtype, predict_logits
from stf.training.loop import (
    LAST,
    NonFiniteLossError,
    Recipe,
    discard_resume_state,
    epoch_batches,
    epoch_seed,
    open_resume_state,
)

log = logging.getLogger(__name__)


def _probs(heads: Sequence[nn.Linear], feats: Sequence[torch.Tensor]) -> np.ndarray:
    """Mean over heads of softmax(head(features)), (N, K) float32."""
    with torch.no_grad():
        total = sum(h(f).float().softmax(1).double() for h, f in zip(heads, feats, strict=True))
    return (total / len(heads)).float().cpu().numpy()


def train_heads(
    train_feats: Sequence[np.ndarray],
    train_y: np.ndarray,
    test_feats: Sequence[np.ndarray],
    test_y: np.ndarray,
    num_class: int,
    recipe: Recipe,
    ctx: distributed.DistContext,
    workdir: Path,
    fingerprint: str,
    resume: bool = False,
    log_row: Callable[[int, dict], None] | None = None,
) -> tuple[np.ndarray, list[dict]]:
    """Train one Linear head per feature set; returns (test probabilities (N_test, K), history).

    train_feats[i]: (N_train, D_i) features of source model i; test_feats[i]: (N_test, D_i).
    Each epoch every head sees the training set once in `recipe.batch_size` batches (seeded
    shuffle, no sample dropped), SGD at the constant `recipe.lr`. History rows: epoch, lr,
    train_loss and train_top1 (means over heads), test_top1 (of the averaged probabilities),
    seconds. Every rank trains the same heads; rank 0 writes `<workdir>/last.pt`.
    """
    dev = ctx.device
    ytr = torch.from_numpy(train_y.astype(np.int64)).to(dev)  # (N_train,)
    ftr = [torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32)).to(dev) for f in train_feats]
    fte = [torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32)).to(dev) for f in test_feats]
    torch.manual_seed(recipe.seed)
    heads = [nn.Linear(f.shape[1], num_class).to(dev) for f in ftr]
    opts = [
        torch.optim.SGD(
            h.parameters(), lr=recipe.lr, momentum=recipe.momentum,
            nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=recipe.weight_decay,
        )
        for h in heads
    ]  # fmt: skip
    last = Path(workdir) / LAST
    history: list[dict] = []
    start = 0
    state = open_resume_state(last, fingerprint, resume, ctx)
    if state is not None:
        for h, o, hs, os_ in zip(heads, opts, state["heads"], state["optimizers"], strict=True):
            h.load_state_dict(hs)
            o.load_state_dict(os_)
        history, start = [dict(r) for r in state["history"]], int(state["epoch"])
        log.info("probe: resuming from %s after epoch %d", last, start)
    n = len(train_y)
    for epoch in range(start, recipe.epochs):
        t0 = time.perf_counter()
        batches = epoch_batches(n, recipe.batch_size, epoch_seed(recipe.seed, epoch), drop_last=False)
        loss_sum, correct = 0.0, 0.0
        for i, (head, opt, f) in enumerate(zip(heads, opts, ftr, strict=True)):
            for step, b in enumerate(batches):
                idx = torch.from_numpy(b).to(dev)
                logits = head(f[idx])  # (B, K)
                loss = F.cross_entropy(logits, ytr[idx])
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(
                        f"non-finite probe loss at epoch {epoch + 1}, step {step + 1} (head {i + 1}); "
                        f"last good state: {last}"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += float(loss.detach()) * len(b)
                correct += float((logits.detach().argmax(1) == ytr[idx]).sum())
        probs = _probs(heads, fte)
        row = {
            "epoch": epoch + 1,
            "lr": recipe.lr,
            "train_loss": loss_sum / (n * len(heads)),
            "train_top1": 100.0 * correct / (n * len(heads)),
            "test_top1": topk_accuracy(probs, test_y, 1),
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        log.info(
            "probe epoch %d/%d loss %.4f test %.2f%%", epoch + 1, recipe.epochs, row["train_loss"], row["test_top1"]
        )
        if ctx.is_main:
            save_checkpoint(
                last,
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch + 1,
                    "heads": [h.state_dict() for h in heads],
                    "optimizers": [o.state_dict() for o in opts],
                    "history": history,
                },
            )
            if log_row is not None:
                log_row(epoch + 1, row)
    return _probs(heads, fte), history


def linear_probe(
    params: Params,
    setting: str,
    stream: str,
    data: Path,
    split: Path,
    models: list[Path],
    out_dir: Path,
    workdir: Path | None = None,
    resume: bool = False,
    *,
    seed: int | None = None,
) -> dict:
    """Data-shift test: frozen source model(s), new linear head(s) trained on `setting`'s train part.

    For each source model directory: eval mode, pooled features of the target train and test
    parts computed once, a new Linear(C3, K_target) trained for params.sizes.probe_epochs at
    params.stf.probe_lr. Several models: their heads' softmax probabilities are averaged.
    `seed` (default: the profile's first seed) seeds the heads and the shuffle order.
    Writes scores.parquet, metrics.json and history.csv; returns the metrics.
    """
    if not models:
        raise ValueError("linear_probe needs at least one source model directory")
    params.setting(setting)
    ctx = distributed.setup(params.train.device)
    try:
        configure_torch(params, ctx)
        train = load_part(data, split, "train", stream)
        test = load_part(data, split, "test", stream)
        bs, amp, workers = (
            params.sizes.eval_batch_size,
            amp_dtype(ctx.device, params.train.amp),
            params.train.num_workers,
        )
        train_feats, test_feats = [], []
        for i, model_dir in enumerate(models):
            model, payload = load_model(model_dir, ctx.device)
            spec = payload["spec"]
            c, _, v, _ = train.shape  # (C, T, V, M)
            if int(spec["in_channels"]) != c or int(spec["num_point"]) != v:
                raise ScoresError(
                    f"{Path(model_dir) / MODEL}: source model reads C={spec['in_channels']}, V={spec['num_point']} "
                    f"but {data} has C={c}, V={v}"
                )
            for p in model.parameters():
                p.requires_grad_(False)
            for part, feats in ((train, train_feats), (test, test_feats)):
                feats.append(
                    predict_logits(
                        model, part, bs, ctx, amp, features=True, desc=f"features {i + 1}", num_workers=workers
                    )
                )  # (N, C3): held in memory, 1.5 KB per sample at full width
        seed = int(params.sizes.seeds[0] if seed is None else seed)
        recipe = recipe_from(params, epochs=params.sizes.probe_epochs, lr=params.stf.probe_lr, seed=seed)
        inputs = {"data": Path(data), "split": Path(split)}
        inputs |= {f"model{i}": Path(m) / MODEL for i, m in enumerate(models)}
        fp = run_fingerprint(
            "probe", params, inputs, setting=setting, stream=stream, probe_lr=params.stf.probe_lr, seed=seed
        )
        workdir = Path(workdir) if workdir is not None else default_workdir(out_dir)
        with dvclive_logger(workdir, ctx, resume) as log_row:
            probs, history = train_heads(
                train_feats, train.y, test_feats, test.y, int(test.num_class), recipe, ctx,
                workdir, fp, resume=resume, log_row=log_row,
            )  # fmt: skip
        metrics = compute_metrics(probs, test.y, int(test.num_class))
        if ctx.is_main:
            write_outputs(out_dir, test, None, probs, history, None)
            discard_resume_state(workdir)  # finished: a forced rerun trains again
            log.info("probe %s: top1 %.2f (%d source models)", setting, metrics["top1"], len(models))
        distributed.barrier(ctx)
        return metrics
    finally:
        distributed.teardown(ctx)
