"""The STF module (beta, alpha -> G_k) and the STF-GCN model built on MS-G3D."""

from __future__ import annotations

import pytest
import torch

from stf.data.skeletons import NTU25
from stf.models.msg3d import MSG3D, ModelSpec
from stf.models.stf import STFModule, STFSpec, STFSpecError, dynamic_aggregate

T = 16


def spec(stf: STFSpec | None) -> ModelSpec:
    return ModelSpec(num_class=7, num_point=25, num_person=2, in_channels=4, edges=NTU25.edges,
                     widths=(8, 16, 32), stf=stf)  # fmt: skip


def models() -> tuple[MSG3D, MSG3D]:
    """A baseline and an STF model initialised from the baseline's state dict."""
    torch.manual_seed(0)
    base = MSG3D(spec(None))
    stf = MSG3D(spec(STFSpec()))
    missing, unexpected = stf.load_state_dict(base.state_dict(), strict=False)
    assert unexpected == []
    assert missing and all(".stf." in k for k in missing)
    assert set(missing) == {k for k in stf.state_dict() if ".stf." in k}
    return base, stf


def perturb_alpha(model: MSG3D, scale: float = 0.5) -> None:
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, STFModule):
                last = mod.alpha[-1]
                last.weight.copy_(torch.randn(last.weight.shape, generator=g) * scale)
                last.bias.copy_(torch.randn(last.bias.shape, generator=g) * scale)


# --------------------------------------------------------------------------- the module


@pytest.mark.parametrize("t", [3, 16, 37])
def test_module_shapes_and_embedding_range(t):
    torch.manual_seed(0)
    mod = STFModule(in_channels=5, num_point=25, spec=STFSpec(graph_scales=3, time_bins=16))
    x = torch.randn(4, 5, t, 25) * 3
    g, emb = mod(x)
    assert g.shape == (4, 3, 25, 25)
    assert emb.shape == (4, t, 25)
    assert emb.min() >= 0 and emb.max() <= 1
    assert torch.equal(g, torch.zeros_like(g))  # alpha's last layer starts at zero


def test_g_is_instance_dependent_once_alpha_is_trained():
    torch.manual_seed(0)
    mod = STFModule(in_channels=5, num_point=25, spec=STFSpec())
    with torch.no_grad():
        mod.alpha[-1].weight.normal_()
    g, _ = mod(torch.randn(2, 5, 12, 25))
    assert not torch.allclose(g[0], g[1])


def test_dynamic_aggregate_is_per_sample_graph_product():
    torch.manual_seed(0)
    g = torch.randn(2, 3, 25, 25)
    x = torch.randn(2, 6, 25, 4)  # (N, T, V, C)
    out = dynamic_aggregate(g, x)  # (N, T, V, K, C)
    expected = torch.einsum("nkvu,ntuc->ntvkc", g, x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_stf_spec_validation_and_round_trip():
    s = STFSpec(graph_scales=2, beta_hidden=4, alpha_hidden=8, time_bins=5)
    assert STFSpec.from_dict(s.to_dict()) == s
    with pytest.raises(STFSpecError, match="graph_scales"):
        STFSpec(graph_scales=0)
    with pytest.raises(ValueError, match="unknown keys"):
        STFSpec.from_dict({"graph_scales": 3, "gamma": 1})


# --------------------------------------------------------------------------- in the model


def test_zero_init_stf_reproduces_the_baseline_exactly():
    base, stf = models()
    base.eval(), stf.eval()
    x = torch.randn(2, 4, T, 25, 2)
    with torch.no_grad():
        b = base.forward_features(x)
        s = stf.forward_features(x)
    assert torch.equal(b.logits, s.logits)
    assert torch.equal(b.last, s.last)


def test_trained_alpha_changes_the_prediction():
    base, stf = models()
    perturb_alpha(stf)
    base.eval(), stf.eval()
    x = torch.randn(2, 4, T, 25, 2)
    with torch.no_grad():
        assert not torch.allclose(base(x), stf(x))


def test_taps_and_embeddings_of_the_six_graph_convolutions():
    _, stf = models()
    x = torch.randn(2, 4, T, 25, 2)
    out = stf.forward_features(x)
    # block inputs: T, T, T/2 (strides 1, 2, 2); MS-GCN keeps its input's T, G3D applies the stride
    assert [tuple(t.shape) for t in out.taps] == [
        (4, 8, T, 25), (4, 8, T, 25),
        (4, 8, T, 25), (4, 16, T // 2, 25),
        (4, 16, T // 2, 25), (4, 32, T // 4, 25),
    ]  # fmt: skip
    assert [tuple(e.shape) for e in out.embeddings] == [(4, T, 25)] * 4 + [(4, T // 2, 25)] * 2
    for e in out.embeddings:
        assert e.min() >= 0 and e.max() <= 1
    # the taps are the tensors the network uses: the logits depend on each of them
    grads = torch.autograd.grad(out.logits.sum(), out.taps)
    assert all(g.abs().sum() > 0 for g in grads)
    assert len({id(m) for m in stf.modules() if isinstance(m, STFModule)}) == 6  # not shared


def test_gradient_reaches_alpha_and_beta():
    _, stf = models()
    x = torch.randn(2, 4, T, 25, 2)
    y = torch.tensor([0, 3])
    # at initialisation: classification reaches alpha's last layer, the embeddings reach beta
    out = stf.forward_features(x)
    loss = torch.nn.functional.cross_entropy(out.logits, y) + sum(e.mean() for e in out.embeddings)
    loss.backward()
    for mod in (m for m in stf.modules() if isinstance(m, STFModule)):
        assert mod.alpha[-1].weight.grad.abs().sum() > 0
        assert all(p.grad.abs().sum() > 0 for p in mod.beta.parameters())
    # once G != 0, the classification loss alone trains every STF parameter
    stf.zero_grad()
    perturb_alpha(stf, scale=0.1)
    torch.nn.functional.cross_entropy(stf(x), y).backward()
    no_grad = [n for n, p in stf.named_parameters() if ".stf." in n and (p.grad is None or p.grad.abs().sum() == 0)]
    assert no_grad == []
