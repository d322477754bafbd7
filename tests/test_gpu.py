"""CUDA checks, run where a GPU is present (skipped elsewhere by the `gpu` marker): the model,
the STF objective and AMP give the CPU's answers on the GPU."""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import TINY_SPEC
from stf.config import Lambdas
from stf.method.losses import stf_objective
from stf.models.msg3d import MSG3D
from stf.models.stf import STFSpec
from stf.stages.evaluate import autocast

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
    model = MSG3D(TINY_SPEC.with_stf(STFSpec(graph_scales=2))).train()
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
    with autocast(torch.device("cuda"), amp=True):
        logits_amp = model(x)
    loss_amp = torch.nn.functional.cross_entropy(logits_amp.float(), y)
    scaler = torch.amp.GradScaler("cuda")
    scaler.scale(loss_amp).backward()
    assert torch.isfinite(loss_amp)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    logits_fp32 = model(x)
    torch.testing.assert_close(logits_amp.float(), logits_fp32, rtol=5e-2, atol=5e-2)
