"""Focus Q (paper eq. 2): min-max, time resampling, analytic CAM == autograd Grad-CAM."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from stf.method.focus import FocusShapeError, cam, class_score, grad_cam, minmax, project_to_input, resample_time


def _head(n=3, m=2, c=5, t=4, v=6, k=4, seed=0):
    """A last-block map and a mean-pool + linear head, as in MS-G3D."""
    g = torch.Generator().manual_seed(seed)
    last = torch.randn(n * m, c, t, v, generator=g).requires_grad_(True)  # (N*M, C, T, V)
    fc = torch.nn.Linear(c, k)
    with torch.no_grad():
        fc.weight.copy_(torch.randn(k, c, generator=g))
        fc.bias.copy_(torch.randn(k, generator=g))
    pooled = last.mean(dim=(2, 3)).view(n, m, c).mean(dim=1)  # (N, C)
    return last, fc, fc(pooled)


def test_minmax_maps_each_sample_and_person_to_unit_range():
    q = torch.randn(3, 2, 5, 7) * torch.tensor([1.0, 100.0]).view(1, 2, 1, 1) + 4
    out = minmax(q)
    assert out.shape == q.shape
    assert torch.allclose(out.amin(dim=(2, 3)), torch.zeros(3, 2))
    assert torch.allclose(out.amax(dim=(2, 3)), torch.ones(3, 2))
    # order within a map is kept
    assert torch.equal(out[1, 1].flatten().argsort(), q[1, 1].flatten().argsort())


def test_minmax_of_constant_map_is_zero_and_has_finite_gradient():
    q = torch.full((2, 1, 3, 4), 0.7, requires_grad=True)
    out = minmax(q)
    assert torch.equal(out, torch.zeros_like(out))
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


def test_resample_time_identity_shape_and_linear_ramp():
    q = torch.rand(2, 3, 8, 5)
    assert resample_time(q, 8) is q
    assert resample_time(q, 13).shape == (2, 3, 13, 5)
    ramp = torch.arange(4.0).view(1, 4, 1).expand(1, 4, 3)  # (1, T=4, V=3), value = frame index
    up = resample_time(ramp, 8)
    # cell-centred linear interpolation: interior output frames lie on the same line
    assert torch.allclose(up[0, 1:-1, 0], torch.tensor([0.25, 0.75, 1.25, 1.75, 2.25, 2.75]))
    const = torch.full((2, 6, 4), 0.3)
    assert torch.allclose(resample_time(const, 3), const[:, :3])


def test_analytic_cam_equals_autograd_grad_cam_of_probability():
    last, fc, logits = _head()
    pred = logits.detach().argmax(dim=1)
    score = logits.softmax(dim=1).gather(1, pred.view(-1, 1)).sum()
    (q_auto,) = grad_cam(score, [last], persons=2)
    q = cam(last, fc.weight, logits, pred, persons=2)
    assert q.shape == (3, 2, 4, 6)
    assert q.min() >= 0 and q.max() <= 1
    assert torch.allclose(q, q_auto, atol=1e-5)


def test_analytic_cam_matches_autograd_for_a_non_predicted_class():
    last, fc, logits = _head(seed=1)
    runner_up = logits.detach().topk(2, dim=1).indices[:, 1]
    score = logits.softmax(dim=1).gather(1, runner_up.view(-1, 1)).sum()
    (q_auto,) = grad_cam(score, [last], persons=2)
    assert torch.allclose(cam(last, fc.weight, logits, runner_up, 2), q_auto, atol=1e-5)


def test_cam_is_probability_not_logit_gradient():
    """For p_y the weights are W_y - Σ p_j W_j: a channel every class uses equally is ignored."""
    n, m, c, t, v = 1, 1, 2, 3, 4
    last = torch.zeros(n * m, c, t, v)
    last[0, 0, 1, 2] = 5.0  # channel 0 fires at (t=1, v=2)
    last[0, 1, 0, 0] = 5.0  # channel 1 fires at (t=0, v=0)
    w = torch.tensor([[1.0, 3.0], [0.0, 3.0]])  # channel 1 weighs the same for both classes
    logits = torch.tensor([[2.0, 0.0]])
    q = cam(last, w, logits, torch.tensor([0]), persons=1)[0, 0]
    assert q[1, 2] == 1 and q[0, 0] == 0


def test_cam_focuses_where_the_class_evidence_is():
    n, m, c, t, v = 2, 2, 3, 5, 6
    last = torch.rand(n * m, c, t, v) * 0.1
    last[:, 0, 2, 4] += 3.0  # class-0 channel fires at frame 2, joint 4
    w = torch.eye(3)
    logits = torch.tensor([[3.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    q = cam(last, w, logits, torch.tensor([0, 0]), persons=2)
    flat = q.flatten(2).argmax(dim=2)  # (N, M)
    assert torch.equal(flat, torch.full((n, m), 2 * v + 4))


def test_grad_cam_keeps_graph_so_a_loss_on_q_trains_the_model():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 1)
    fc = torch.nn.Linear(4, 3)
    x = torch.randn(2 * 2, 3, 6, 5)
    feat = torch.relu(conv(x))  # (N*M, 4, 6, 5)
    logits = fc(feat.mean(dim=(2, 3)).view(2, 2, 4).mean(dim=1))
    score = logits.softmax(dim=1).max(dim=1).values.sum()
    (q,) = grad_cam(score, [feat], persons=2, create_graph=True)
    assert q.requires_grad
    q.pow(2).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_project_to_input_broadcasts_over_channels():
    q = torch.rand(2, 3, 4, 5)  # (N, M, T3, V)
    p = project_to_input(q, 8)
    assert p.shape == (2, 1, 8, 5, 3)
    x = torch.ones(2, 4, 8, 5, 3)  # (N, C, T, V, M)
    masked = x - p * x
    assert torch.allclose(masked[:, 0], masked[:, 3])
    assert torch.allclose(p[1, 0, :, 2, 1], resample_time(q, 8)[1, 1, :, 2])


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: cam(torch.rand(5, 3, 4, 2), torch.rand(4, 3), torch.rand(2, 4), torch.zeros(2).long(), 2), "multiple"),
        (
            lambda: cam(torch.rand(4, 3, 4, 2), torch.rand(4, 5), torch.rand(2, 4), torch.zeros(2).long(), 2),
            "fc_weight",
        ),
        (lambda: cam(torch.rand(4, 3, 4, 2), torch.rand(4, 3), torch.rand(3, 4), torch.zeros(2).long(), 2), "logits"),
        (lambda: minmax(torch.rand(3)), "minmax"),
        (lambda: project_to_input(torch.rand(2, 3, 4), 8), "project_to_input"),
    ],
)
def test_bad_shapes_raise_value_error_naming_the_argument(call, needle):
    with pytest.raises(FocusShapeError, match=needle) as err:
        call()
    assert isinstance(err.value, ValueError)


def test_cam_gradient_matches_finite_differences():
    """The analytic CAM is differentiable in last, fc weight and logits (L_d trains through it)."""
    torch.manual_seed(3)
    last = torch.randn(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(1, 4, dtype=torch.float64, requires_grad=True)
    cls = torch.tensor([1])
    target = torch.rand(1, 2, 2, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b, c: F.mse_loss(cam(a, b, c, cls, 2), target), (last, w, logits))


# --------------------------------------------------------------------------- mixed precision


def _tap_head(confidence: float, seed: int = 0):
    """A conv tap (N, C, T, V) of a full-size last block (T3 = 75, V·M = 50), ReLU, mean pooling
    and a linear head whose class 0 gets probability `confidence`-ish; returns a run(autocast, scaled) fn."""
    torch.manual_seed(seed)
    n, c, t, v = 2, 16, 75, 50
    f = torch.randn(n, c, t, v)
    conv, fc = torch.nn.Conv2d(c, c, 1), torch.nn.Linear(c, 60)
    with torch.no_grad():
        fc.bias[0] = confidence

    def run(enabled: bool, scaled: bool) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.float16, enabled=enabled):
            tap = conv(f)  # (N, C, T, V), float16 under autocast
            logits = fc(tap.relu().mean((2, 3)))  # (N, 60)
            score = class_score(logits, logits.detach().argmax(1), t * v, scaled)
            (grad,) = torch.autograd.grad(score, [tap], retain_graph=True)
            return grad_cam(score, [tap], persons=1, create_graph=False)[0].detach(), grad

    return run


def test_scaled_class_score_keeps_grad_cam_out_of_float16_underflow():
    run = _tap_head(confidence=9.0)  # p_y = 0.990: the median gradient 8.8e-8 at p_y = 0.99
    q32, g32 = run(False, False)
    q16, g16 = run(True, False)
    q16s, g16s = run(True, True)
    tiny, u = torch.finfo(torch.float16).tiny, 2.0**-11  # smallest normal; unit roundoff
    live = g32 != 0  # the ReLU zeroes about half of the gradient exactly, in any precision
    assert float((g16[live].abs() < tiny).float().mean()) == 1.0  # plain: every gradient subnormal or lost
    assert float((g16s[live].abs() < tiny).float().mean()) < 1e-3  # scaled: normal float16 numbers
    # a float16 map rounded once per step is within a few units of roundoff of the float32 map;
    # unscaled, subnormal gradients (fewer significant bits) put it 10x further off
    assert float((q16s - q32).abs().max()) <= 4 * u
    assert float((q16 - q32).abs().max()) > 40 * u


def test_scaled_and_plain_scores_give_the_same_focus_in_float32():
    from helpers import TINY_SPEC
    from stf.models.msg3d import MSG3D
    from stf.models.stf import STFSpec

    torch.manual_seed(0)
    model = MSG3D(replace(TINY_SPEC, stf=STFSpec(graph_scales=2))).train()  # BatchNorm couples the samples
    x = torch.randn(4, 2, 16, 5, 2)
    out = model.forward_features(x)
    pred = out.logits.detach().argmax(1)
    maps = [grad_cam(class_score(out.logits, pred, 40, scaled), out.taps[-2:], persons=2)  # keeps the graph
            for scaled in (False, True)]  # fmt: skip
    for plain, scaled in zip(*maps, strict=True):
        torch.testing.assert_close(scaled, plain, rtol=0, atol=1e-5)
