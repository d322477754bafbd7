"""CUDA checks, run where a GPU is present (skipped elsewhere by the `gpu` marker): the model,
the STF objective and AMP give the CPU's answers on the GPU; the STF objective under bf16 and
fp16 autocast stays close to fp32 (`benchmarks/gpu_check.sh` runs these)."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from helpers import TINY_SPEC
from stf.config import Lambdas
from stf.method.focus import cam, class_score, grad_cam
from stf.method.losses import stf_objective
from stf.models.msg3d import MSG3D
from stf.models.stf import STFSpec
from stf.training.inference import amp_dtype, autocast

pytestmark = pytest.mark.gpu


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, TINY_SPEC.in_channels, 16, TINY_SPEC.num_point, TINY_SPEC.num_person, generator=g)
    return x, torch.randint(0, TINY_SPEC.num_class, (4,), generator=g)


def test_forward_on_cuda_matches_cpu():
    torch.manual_seed(0)
    model = MSG3D(TINY_SPEC).eval()
    x, _ = _batch()
    cpu = model(x)
    gpu = copy.deepcopy(model).cuda()(x.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-4, atol=1e-4)


def test_stf_objective_and_its_gradients_on_cuda_match_cpu():
    torch.manual_seed(0)
    model = MSG3D(replace(TINY_SPEC, stf=STFSpec(graph_scales=2))).train()
    x, y = _batch(1)
    lambdas = Lambdas()
    active = ["d", "c", "gk", "e"]
    gpu_model = copy.deepcopy(model).cuda()
    total_cpu, _ = stf_objective(model, x, y, lambdas, active)
    total_cpu.backward()
    total_gpu, _ = stf_objective(gpu_model, x.cuda(), y.cuda(), lambdas, active)
    total_gpu.backward()
    torch.testing.assert_close(total_gpu.cpu(), total_cpu, rtol=1e-3, atol=1e-4)
    for (name, p_cpu), p_gpu in zip(model.named_parameters(), gpu_model.parameters(), strict=True):
        if p_cpu.grad is not None:
            torch.testing.assert_close(p_gpu.grad.cpu(), p_cpu.grad, rtol=1e-2, atol=1e-4, msg=name)


def test_amp_training_step_is_finite_and_close_to_fp32():
    torch.manual_seed(0)
    model = MSG3D(TINY_SPEC).cuda().train()
    x, y = (t.cuda() for t in _batch(2))
    with autocast(torch.device("cuda"), torch.float16):
        logits_amp = model(x)
    loss_amp = torch.nn.functional.cross_entropy(logits_amp.float(), y)
    scaler = torch.amp.GradScaler("cuda")
    scaler.scale(loss_amp).backward()
    assert torch.isfinite(loss_amp)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    logits_fp32 = model(x)
    torch.testing.assert_close(logits_amp.float(), logits_fp32, rtol=5e-2, atol=5e-2)


def test_amp_dtype_is_bf16_where_supported():
    dev = torch.device("cuda")
    assert amp_dtype(dev, False) is None
    assert amp_dtype(dev, True) == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_stf_objective_under_autocast_stays_close_to_fp32(dtype):
    """Full-width NTU model (96/192/384), T = 64, batch 4: focus maps and loss terms under autocast
    vs fp32 on the GPU. Tolerances as in the CPU test (tests/test_losses.py): each map within 3x the
    distance that rounding input and weights to `dtype` alone causes, plus 0.005; loss terms
    within 0.01, cross-entropy within 1 %; with fp16 no non-zero tap gradient is lost to underflow."""
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("GPU without bfloat16")
    from helpers import REPO
    from stf.config import load_params
    from stf.stages.spec import spec_for

    params = load_params(REPO / "params.yaml")
    torch.manual_seed(0)
    model = MSG3D(spec_for(params, "ntu60", 60, 4, stf=True, full_width=True)).cuda().train()
    g = torch.Generator().manual_seed(0)
    x0 = torch.cumsum(torch.randn(4, 4, 64, 25, 2, generator=g) * 0.05, dim=2)
    x0[:, 3] = 1.0
    x0, y = x0.cuda(), torch.randint(0, 60, (4,), generator=g).cuda()

    def run(x, enabled):
        with torch.autocast("cuda", dtype=dtype, enabled=enabled):
            out = model.forward_features(x)
            pred = out.logits.detach().argmax(1)
            q = cam(out.last, model.fc.weight, out.logits, pred, 2)
            n_pos = 2 * out.last.shape[2] * out.last.shape[3]
            score = class_score(out.logits, pred, n_pos, scaled=enabled)
            (grad,) = torch.autograd.grad(score, [out.taps[-2]], retain_graph=True)
            q5, q6 = grad_cam(score, out.taps[-2:], 2)
            _, parts = stf_objective(model, x, y, Lambdas(), ["d", "c", "gk", "e"])
        return [m.detach() for m in (q, q5, q6)], parts, grad

    def rms(a, b):
        return float(((a - b) ** 2).flatten(2).mean(-1).sqrt().max())

    ref_maps, ref, g32 = run(x0, False)
    amp_maps, amp, g_amp = run(x0, True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).float())
    floor_maps, _, _ = run(x0.to(dtype).float(), False)
    model.load_state_dict(state)
    for name, a, r, f in zip(("Q", "Q5", "Q6"), amp_maps, ref_maps, floor_maps, strict=True):
        assert rms(a, r) <= 3 * rms(f, r) + 0.005, name
    assert abs(amp["ce"] - ref["ce"]) <= 0.01 * ref["ce"]
    for term in ("e", "d", "c", "gk"):
        assert abs(amp[term] - ref[term]) <= 0.01, term
    if dtype == torch.float16:
        lost = (g_amp == 0) & (g32 != 0) & (g32.abs() > 1e-6 * g32.abs().max())
        assert float(lost.float().mean()) < 1e-3
