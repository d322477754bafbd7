"""The four STF losses on the focus Q and the total objective (paper eq. 2-6).

- `loss_gk`: L_Gk = ‖Q − β(X)‖ per STF module, averaged over the 6 modules (eq. 2, text).
- `loss_e`:  L_e = p_y(X − Q ⊙ X), exploration (eq. 3).
- `loss_d`:  L_d = −‖Q^{y1} − Q^{y2}‖ for the top-2 predicted classes, divergence (eq. 4).
- `loss_c`:  L_c = ‖Q_5 − Q_6‖ between the last two STF modules, coherence (eq. 5).
- `stf_objective`: L = L_ce + λe L_e + λd L_d + λc L_c + λGk L_Gk over the active terms (eq. 6).

‖·‖ is `focus_distance`, one value per sample, then the batch mean. With norm="rms" (the
default, `stf.loss_norm` in params.yaml) it is the root mean square over (M, T, V), i.e.
the Frobenius norm divided by sqrt(M·T·V): every term then lies in [0, 1] whatever the
frame count, joint count or number of persons, so one set of λ means the same thing on the
tiny profile and at T = 300. norm="frobenius" is the paper's literal ‖·‖₂ of the whole map.

Persons whose input is all zero (absent second person) are left out of every distance:
their Q is a normalised map of bias terms, not a focus.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stf.config import Lambdas
from stf.method.focus import cam, class_score, grad_cam, project_to_input, resample_time, wide

__all__ = [
    "LOSS_NAMES",
    "LossInputError",
    "LossTerms",
    "batchnorm_stats_frozen",
    "focus_distance",
    "loss_c",
    "loss_d",
    "loss_e",
    "loss_gk",
    "present_persons",
    "stf_loss_terms",
    "stf_objective",
]

log = logging.getLogger(__name__)

LOSS_NAMES: tuple[str, ...] = ("e", "d", "c", "gk")
Norm = Literal["rms", "frobenius"]


class LossInputError(ValueError):
    """Inputs to an STF loss do not fit together; the message names the argument."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise LossInputError(msg)


def present_persons(x: Tensor) -> Tensor:
    """x (N, C, T, V, M) -> bool (N, M): True where the person has any non-zero value."""
    _check(x.dim() == 5, f"present_persons: expected x (N, C, T, V, M), got shape {tuple(x.shape)}")
    return x.detach().abs().amax(dim=(1, 2, 3)) > 0  # (N, M)


def focus_distance(a: Tensor, b: Tensor, present: Tensor | None = None, norm: Norm = "rms") -> Tensor:
    """‖a − b‖ per sample over present persons: a, b (N, M, T, V) -> (N,).

    present: bool (N, M) or None (all present). norm="rms": sqrt(Σ (a−b)² / (M_present·T·V))
    in [0, 1] for maps in [0, 1]; norm="frobenius": sqrt(Σ (a−b)²). A sample with no
    present person gives 0. The gradient at a == b is 0 (not NaN).
    """
    _check(
        a.shape == b.shape and a.dim() == 4,
        f"focus_distance: expected two (N, M, T, V) maps of one shape, got {tuple(a.shape)} and {tuple(b.shape)}",
    )
    _check(norm in ("rms", "frobenius"), f"focus_distance: norm must be 'rms' or 'frobenius', got {norm!r}")
    n, m, t, v = a.shape
    diff = a - b  # (N, M, T, V)
    if present is not None:
        _check(
            tuple(present.shape) == (n, m), f"focus_distance: present must be ({n}, {m}), got {tuple(present.shape)}"
        )
        diff = diff * present[:, :, None, None].to(diff.dtype)
    dist = torch.linalg.vector_norm(diff.flatten(1), dim=1)  # (N,)
    if norm == "frobenius":
        return dist
    persons = present.sum(dim=1).to(dist.dtype) if present is not None else torch.full_like(dist, m)
    return dist / torch.sqrt(persons.clamp_min(1) * (t * v))


def loss_gk(q: Tensor, embeddings: Sequence[Tensor], present: Tensor | None = None, norm: Norm = "rms") -> Tensor:
    """L_Gk: mean over the STF modules of ‖Q − β(X)‖ (batch mean), a scalar.

    q: (N, M, T3, V) focus, the supervision target: it is detached here, so L_Gk trains the
    embedding networks β (and what feeds them), never the focus itself.
    embeddings: the modules' β(X) maps, each (N*M, T_l, V) in [0, 1]; Q is resampled to T_l.
    """
    _check(q.dim() == 4, f"loss_gk: q must be (N, M, T, V), got shape {tuple(q.shape)}")
    _check(len(embeddings) > 0, "loss_gk: no embeddings (is the model built with stf=True?)")
    n, m, _, v = q.shape
    target = q.detach()
    terms = []
    for i, emb in enumerate(embeddings):
        _check(
            emb.dim() == 3 and emb.shape[0] == n * m and emb.shape[2] == v,
            f"loss_gk: embeddings[{i}] must be ({n * m}, T, {v}), got shape {tuple(emb.shape)}",
        )
        beta = wide(emb).reshape(n, m, emb.shape[1], v)  # (N, M, T_l, V), float32 under autocast too
        terms.append(focus_distance(resample_time(target, emb.shape[1]), beta, present, norm).mean())
    return torch.stack(terms).mean()


@contextlib.contextmanager
def batchnorm_stats_frozen(model: nn.Module) -> Iterator[None]:
    """Inside: BatchNorm layers still normalise with batch statistics in train mode but do
    not update their running mean/var (the masked input of L_e is not a data sample; the
    gradient probe of `stf.training.loop` must not move them either). Nests: each layer gets back
    the flag it had on entry."""
    bns = [mod for mod in model.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
    before = [bn.track_running_stats for bn in bns]
    for bn in bns:
        bn.track_running_stats = False
    try:
        yield
    finally:
        for bn, flag in zip(bns, before, strict=True):
            bn.track_running_stats = flag


def loss_e(model: nn.Module, x: Tensor, q: Tensor, y: Tensor) -> Tensor:
    """L_e = p_y(X − Q ⊙ X), batch mean, a scalar (eq. 3).

    x: (N, C, T, V, M) input; q: (N, M, T3, V) focus of the original prediction; y: (N,)
    the original predicted class (detached argmax). Q is resampled to T and applied to every
    channel (the visibility / confidence channel too, so masked joints read as invisible).
    The masked input goes through the same `model` (its `forward`); BatchNorm running
    statistics are not updated by this pass. Q is not detached: minimising L_e moves Q onto
    more of the joints and frames that carry class y, which is how L_e widens the focus.
    """
    _check(x.dim() == 5, f"loss_e: x must be (N, C, T, V, M), got shape {tuple(x.shape)}")
    n, _, t, v, m = x.shape
    _check(
        tuple(q.shape[:2]) == (n, m) and q.dim() == 4 and q.shape[3] == v,
        f"loss_e: q must be ({n}, {m}, T, {v}), got shape {tuple(q.shape)}",
    )
    _check(tuple(y.shape) == (n,), f"loss_e: y must be ({n},), got shape {tuple(y.shape)}")
    masked = x - project_to_input(q, t) * x  # (N, C, T, V, M)
    with batchnorm_stats_frozen(model):
        logits = model(masked)  # (N, K)
    return wide(logits).softmax(dim=1).gather(1, y.view(-1, 1)).mean()


def loss_d(
    last: Tensor, fc_weight: Tensor, logits: Tensor, persons: int, present: Tensor | None = None, norm: Norm = "rms"
) -> Tensor:
    """L_d = −‖Q^{y1} − Q^{y2}‖ (batch mean), a scalar ≤ 0 (eq. 4).

    y1, y2 = the two highest logits per sample (chosen without gradient); both maps are the
    analytic last-layer CAM (`stf.method.focus.cam`) of last (N*M, C3, T3, V) with fc_weight (K, C3)
    and logits (N, K). Gradients reach the backbone through both maps.
    """
    _check(logits.dim() == 2 and logits.shape[1] >= 2, f"loss_d: logits must be (N, K>=2), got {tuple(logits.shape)}")
    top2 = logits.detach().topk(2, dim=1).indices  # (N, 2)
    q1 = cam(last, fc_weight, logits, top2[:, 0], persons)  # (N, M, T3, V)
    q2 = cam(last, fc_weight, logits, top2[:, 1], persons)  # (N, M, T3, V)
    return -focus_distance(q1, q2, present, norm).mean()


def loss_c(q5: Tensor, q6: Tensor, present: Tensor | None = None, norm: Norm = "rms") -> Tensor:
    """L_c = ‖Q_5 − Q_6‖ (batch mean), a scalar ≥ 0 (eq. 5).

    q5, q6: (N, M, T5, V), (N, M, T6, V), the Grad-CAM foci of the last two STF modules.
    The shorter map is resampled to the longer T (no frame of the finer map is skipped).
    Symmetric: both maps are trained towards each other.
    """
    _check(
        q5.dim() == 4 and q6.dim() == 4 and q5.shape[:2] == q6.shape[:2] and q5.shape[3] == q6.shape[3],
        f"loss_c: maps must be (N, M, T, V) with equal N, M, V, got {tuple(q5.shape)} and {tuple(q6.shape)}",
    )
    t = max(q5.shape[2], q6.shape[2])
    return focus_distance(resample_time(q5, t), resample_time(q6, t), present, norm).mean()


@dataclass(frozen=True)
class LossTerms:
    """The terms of eq. 6 for one batch, as tensors that still carry their graph.

    logits (N, K) of the clean input; weighted: "ce" -> L_ce, and for every computed STF term
    name -> λ_name · L_name (the summands of eq. 6, in the order e, d, c, gk); raw: the same
    STF terms without λ. `total()` is their sum.
    """

    logits: Tensor
    weighted: dict[str, Tensor]
    raw: dict[str, Tensor]

    def total(self) -> Tensor:
        items = iter(self.weighted.values())
        total = next(items)
        for value in items:
            total = total + value
        return total

    def parts(self) -> dict[str, float]:
        """Float values: "ce", every computed raw term (without λ), and "total"."""
        parts = {"ce": float(self.weighted["ce"].detach())}
        parts |= {name: float(value.detach()) for name, value in self.raw.items()}
        parts["total"] = float(self.total().detach())
        return parts


def stf_loss_terms(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    lambdas: Lambdas,
    active: Sequence[str],
    *,
    norm: Norm = "rms",
) -> LossTerms:
    """The summands of eq. 6 for one batch (see `stf_objective` for what is computed how)."""
    unknown = sorted(set(active) - set(LOSS_NAMES))
    _check(not unknown, f"stf_objective: unknown loss names {unknown}; known: {list(LOSS_NAMES)}")
    _check(x.dim() == 5, f"stf_objective: x must be (N, C, T, V, M), got shape {tuple(x.shape)}")
    weight = {name: float(getattr(lambdas, name)) for name in LOSS_NAMES}
    run = [name for name in LOSS_NAMES if name in active and weight[name] > 0]

    out = model.forward_features(x)
    ce = F.cross_entropy(wide(out.logits), y)
    if not run:
        return LossTerms(out.logits, {"ce": ce}, {})

    persons = x.shape[-1]
    present = present_persons(x)  # (N, M)
    pred = out.logits.detach().argmax(dim=1)  # (N,)
    q = None
    if "gk" in run or "e" in run:
        q = cam(out.last, model.fc.weight, out.logits, pred, persons)  # (N, M, T3, V)

    terms: dict[str, Tensor] = {}
    if "e" in run:
        terms["e"] = loss_e(model, x, q, pred)
    if "d" in run:
        terms["d"] = loss_d(out.last, model.fc.weight, out.logits, persons, present, norm)
    if "c" in run:
        _check(len(out.taps) >= 2, "stf_objective: L_c needs the STF taps (is the model built with stf=True?)")
        # under autocast the backward runs in low precision: scale the score (Q is unchanged)
        n_pos = persons * out.last.shape[2] * out.last.shape[3]  # M·T3·V pooled by the head
        score = class_score(out.logits, pred, n_pos, scaled=torch.is_autocast_enabled(x.device.type))
        q5, q6 = grad_cam(score, [out.taps[-2], out.taps[-1]], persons, create_graph=True)
        terms["c"] = loss_c(q5, q6, present, norm)
    if "gk" in run:
        terms["gk"] = loss_gk(q, out.embeddings, present, norm)
    weighted = {"ce": ce} | {name: weight[name] * value for name, value in terms.items()}
    return LossTerms(out.logits, weighted, terms)


def stf_objective(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    lambdas: Lambdas,
    active: Sequence[str],
    *,
    norm: Norm = "rms",
) -> tuple[Tensor, dict[str, float]]:
    """The training loss of eq. 6 for one batch: (total, parts).

    model: an MS-G3D (`stf.models.msg3d.MSG3D`) or anything with `forward_features(x)` ->
    (logits, last, taps, embeddings), `fc` and `spec.num_person`; x: (N, C, T, V, M);
    y: (N,) ground-truth labels for L_ce; active: subset of {"e", "d", "c", "gk"}.
    One `forward_features` pass feeds every term. Q is the CAM of the predicted class
    (detached argmax) at the last block, computed analytically; "c" adds one
    `torch.autograd.grad` call (Grad-CAM at taps[4], taps[5]); "e" adds one forward of the
    masked input. A term that is not active or has λ = 0 is not computed at all.
    parts: float value of "ce", every computed term (without λ), and "total".
    `stf_loss_terms` returns the same terms as tensors.
    """
    terms = stf_loss_terms(model, x, y, lambdas, active, norm=norm)
    total = terms.total()
    parts = terms.parts()
    if not math.isfinite(parts["total"]):
        log.warning("non-finite STF loss: %s", parts)
    return total, parts
