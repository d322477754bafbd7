"""The spatio-temporal focus Q of STF (paper eq. 2): Grad-CAM maps over (T, V) per person.

Q answers "which joints, in which frames, raised the probability of the predicted class".
Paper eq. 2 takes, at a feature map X^l (C, T, V), the channel weights
w_c = (1/Z) Σ_{t,v} ∂ŷ/∂X_ctv (ŷ = softmax probability of the class), then
Q = ReLU(Σ_c w_c X_c) and min-max normalises Q to [0, 1].

Two ways to get it:

- `cam`: at the last block, where the head is a global mean followed by a linear layer,
  the gradient is the same at every position and has a closed form, so Q needs no
  autograd pass (and stays differentiable for the losses that push on it).
- `grad_cam`: at any intermediate map (the STF modules' outputs, for L_c), through
  `torch.autograd.grad(..., create_graph=True)` so the losses can backpropagate through Q.

Maps are (N, M, T, V): batch, persons, frames, joints. Models fold persons into the batch,
so feature maps arrive as (N*M, C, T, V) and `persons` = M unfolds them.

Mixed precision: both functions compute the map itself (channel weights, weighted sum,
ReLU, min-max) with autocast off, in float32 when the feature maps are float16/bfloat16
(`wide`). The gradients `grad_cam` needs come from the network's backward, which runs in
the forward's dtype; under float16 the raw ∂p_y/∂X are mostly below float16's smallest
normal, so `class_score(..., scaled=True)` multiplies the score by a detached positive
factor that brings them to order one. Min-max removes a positive factor, so Q is unchanged (in float32
the scaled and plain scores give the same Q up to rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "FocusShapeError",
    "cam",
    "class_score",
    "grad_cam",
    "minmax",
    "project_to_input",
    "resample_time",
    "wide",
]

SCALE_FLOOR = 1e-6  # smallest p(1 - p) a scaled score divides by (keeps the factor finite)


def wide(t: Tensor) -> Tensor:
    """`t` in float32 if it is float16 / bfloat16 (an autocast output); float32/64 unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class FocusShapeError(ValueError):
    """A tensor handed to the focus functions has the wrong shape; the message names it."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise FocusShapeError(msg)


def minmax(q: Tensor) -> Tensor:
    """Min-max normalise each (T, V) map to [0, 1].

    q: (..., T, V), e.g. (N, M, T, V); the minimum and maximum are taken per leading index
    (per sample and person). A constant map (range 0) becomes all zeros instead of NaN.
    Differentiable; invariant to a positive scale of q.
    """
    _check(q.dim() >= 2, f"minmax: expected (..., T, V), got shape {tuple(q.shape)}")
    flat = q.flatten(-2)  # (..., T*V)
    lo = flat.amin(dim=-1, keepdim=True)  # (..., 1)
    hi = flat.amax(dim=-1, keepdim=True)  # (..., 1)
    rng = hi - lo
    safe = torch.where(rng > 0, rng, torch.ones_like(rng))
    return ((flat - lo) / safe).view_as(q)  # (..., T, V)


def resample_time(q: Tensor, t_new: int) -> Tensor:
    """Linear interpolation of q along its frame axis to `t_new` frames.

    q: (..., T, V) -> (..., t_new, V). Frames are treated as cells (align_corners=False), so
    a map after a stride-2 layer lines up with the frames it summarises. Identity if T == t_new.
    """
    _check(q.dim() >= 2, f"resample_time: expected (..., T, V), got shape {tuple(q.shape)}")
    _check(t_new > 0, f"resample_time: t_new must be positive, got {t_new}")
    *lead, t, v = q.shape
    if t == t_new:
        return q
    x = q.reshape(-1, t, v).transpose(1, 2)  # (B, V, T)
    x = F.interpolate(x, size=t_new, mode="linear", align_corners=False)  # (B, V, t_new)
    return x.transpose(1, 2).reshape(*lead, t_new, v)  # (..., t_new, V)


def _unfold_persons(feat: Tensor, persons: int, name: str) -> Tensor:
    """(N*M, C, T, V) -> (N, M, C, T, V)."""
    _check(feat.dim() == 4, f"{name}: expected (N*M, C, T, V), got shape {tuple(feat.shape)}")
    _check(
        persons > 0 and feat.shape[0] % persons == 0,
        f"{name}: first dim {feat.shape[0]} is not a multiple of persons={persons}",
    )
    nm, c, t, v = feat.shape
    return feat.reshape(nm // persons, persons, c, t, v)  # (N, M, C, T, V)


def cam(last: Tensor, fc_weight: Tensor, logits: Tensor, classes: Tensor, persons: int) -> Tensor:
    """Analytic Grad-CAM of the probability of `classes` at the last block (eq. 2).

    last: (N*M, C3, T3, V), the map that the head averages over (M, T3, V) before `fc`;
    fc_weight: (K, C3); logits: (N, K) = fc(mean(last)); classes: (N,) long, one class per
    sample (the prediction for Q, the runner-up for L_d's second map).
    Returns Q: (N, M, T3, V) in [0, 1].

    With p = softmax(logits), ∂p_y/∂last[n, m, c, t, v] = p_y (W[y, c] − Σ_j p_j W[j, c]) / (M T3 V)
    at every position, so the Grad-CAM channel weight (mean gradient over T, V) is that
    constant. The positive per-sample factor p_y / (M T3 V) is left out: min-max removes it
    exactly, and leaving it out keeps maps of very unlikely classes (p_y ≈ 1e-30) from
    underflowing. The result is a differentiable function of last, fc_weight and logits.
    """
    feats = _unfold_persons(last, persons, "cam(last)")  # (N, M, C3, T3, V)
    n, _, c, _, _ = feats.shape
    _check(
        fc_weight.dim() == 2 and fc_weight.shape[1] == c,
        f"cam: fc_weight must be (K, {c}), got shape {tuple(fc_weight.shape)}",
    )
    k = fc_weight.shape[0]
    _check(tuple(logits.shape) == (n, k), f"cam: logits must be ({n}, {k}), got shape {tuple(logits.shape)}")
    _check(tuple(classes.shape) == (n,), f"cam: classes must be ({n},), got shape {tuple(classes.shape)}")
    with torch.autocast(feats.device.type, enabled=False):  # float32 whatever the autocast dtype
        p = wide(logits).softmax(dim=1)  # (N, K)
        w = wide(fc_weight)
        mean_w = p @ w  # (N, C3): Σ_j p_j W[j]
        weights = w[classes] - mean_w  # (N, C3)
        raw = torch.einsum("nc,nmctv->nmtv", weights, wide(feats))  # (N, M, T3, V)
        return minmax(F.relu(raw))


def class_score(logits: Tensor, classes: Tensor, positions: int = 1, scaled: bool = False) -> Tensor:
    """Σ_n p_{n, classes[n]}, the scalar whose Grad-CAM is Q (eq. 2); logits (N, K), classes (N,).

    scaled: multiply the sum by the detached factor positions / max_n p_n(1 − p_n) (p_n the
    class probability, `positions` = M·T3·V of the last block, whose mean pooling divides every
    gradient by that). ∂p_n/∂logits is p_n(1 − p_n)-sized, so the gradients at the feature
    maps become of order one for the least confident sample (never larger: no overflow) and
    lose their 1/(M·T3·V): what float16 autocast needs to keep them above its smallest
    normal. One factor for the whole batch, so Q is exactly the same function as unscaled
    even though BatchNorm couples the samples in train mode (min-max removes the factor).
    """
    _check(
        logits.dim() == 2 and tuple(classes.shape) == (logits.shape[0],),
        f"class_score: expected logits (N, K) and classes (N,), got {tuple(logits.shape)}, {tuple(classes.shape)}",
    )
    p = wide(logits).softmax(dim=1).gather(1, classes.view(-1, 1)).squeeze(1)  # (N,)
    if not scaled:
        return p.sum()
    spread = (p * (1 - p)).detach().amax().clamp_min(SCALE_FLOOR)  # largest ∂p/∂logit scale in the batch
    return p.sum() * (positions / spread)


def grad_cam(score: Tensor, feature_maps: list[Tensor], persons: int, create_graph: bool = True) -> list[Tensor]:
    """Grad-CAM of a scalar `score` at each of `feature_maps` (eq. 2), via autograd.

    score: a scalar that depends on every map, e.g. `class_score` = Σ_n p_{y_n} over the batch
    (samples do not interact in the model, except through BatchNorm's batch statistics in
    train mode; under float16 autocast use `class_score(..., scaled=True)`);
    feature_maps: list of (N*M, C_l, T_l, V) tensors in score's graph.
    Returns one Q (N, M, T_l, V) in [0, 1] per map. One `torch.autograd.grad` call for all maps;
    with create_graph=True the maps stay differentiable, so losses on Q train the model.
    """
    _check(score.dim() == 0, f"grad_cam: score must be a scalar, got shape {tuple(score.shape)}")
    _check(len(feature_maps) > 0, "grad_cam: no feature maps given")
    grads = torch.autograd.grad(score, feature_maps, create_graph=create_graph)
    out = []
    for i, (feat, grad) in enumerate(zip(feature_maps, grads, strict=True)):
        f = _unfold_persons(feat, persons, f"grad_cam(feature_maps[{i}])")  # (N, M, C, T, V)
        g = _unfold_persons(grad, persons, f"grad_cam(grad[{i}])")  # (N, M, C, T, V)
        with torch.autocast(feat.device.type, enabled=False):  # the map in float32
            weights = wide(g).mean(dim=(3, 4))  # (N, M, C): mean gradient over (T, V)
            raw = torch.einsum("nmc,nmctv->nmtv", weights, wide(f))  # (N, M, T, V)
            out.append(minmax(F.relu(raw)))
    return out


def project_to_input(q: Tensor, frames: int) -> Tensor:
    """Q (N, M, T3, V) -> (N, 1, frames, V, M): resampled to the input's frames, laid out to
    broadcast over the input's channels (N, C, T, V, M), e.g. for L_e's X − Q ⊙ X."""
    _check(q.dim() == 4, f"project_to_input: expected (N, M, T, V), got shape {tuple(q.shape)}")
    q = resample_time(q, frames)  # (N, M, frames, V)
    return q.permute(0, 2, 3, 1).unsqueeze(1)  # (N, 1, frames, V, M)
