"""The STF losses (paper eq. 2-6): each term's defining property, gradients, and zero cost when off."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stf.config import Lambdas
from stf.method.focus import cam, class_score, grad_cam, resample_time
from stf.method.losses import (
    LossInputError,
    focus_distance,
    loss_c,
    loss_d,
    loss_e,
    loss_gk,
    present_persons,
    stf_objective,
)


class Out(NamedTuple):
    logits: Tensor
    last: Tensor
    taps: list[Tensor]
    embeddings: list[Tensor]


class TinySTF(nn.Module):
    """The MSG3D interface in miniature: 6 gated graph-free 'STF' convs with β embeddings,
    a last block, mean pooling over (T, V) then persons, and a linear head `fc`."""

    def __init__(self, in_ch: int = 3, width: int = 6, num_class: int = 5, persons: int = 2):
        super().__init__()
        self.spec = SimpleNamespace(num_person=persons)
        self.stem = nn.Conv2d(in_ch, width, 1)
        self.bn = nn.BatchNorm2d(width)
        self.betas = nn.ModuleList(nn.Conv2d(width, 1, 1) for _ in range(6))
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, (3, 1), stride=(s, 1), padding=(1, 0)) for s in (1, 1, 2, 1, 1, 2)
        )
        self.tail = nn.Conv2d(width, width, 1)
        self.fc = nn.Linear(width, num_class)
        nn.init.zeros_(self.fc.bias)  # predictions driven by the features, as in a trained model
        self.calls = {"forward": 0, "forward_features": 0}

    def _features(self, x: Tensor) -> Out:
        n, c, t, v, m = x.shape
        h = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)  # (N*M, C, T, V)
        h = torch.relu(self.bn(self.stem(h)))
        taps, embs = [], []
        for conv, beta in zip(self.convs, self.betas, strict=True):
            b = torch.sigmoid(beta(h)).squeeze(1)  # (N*M, T_l, V)
            h = torch.relu(conv(h * (1 + b.unsqueeze(1))))  # (N*M, W, T_l', V)
            embs.append(b)
            taps.append(h)
        last = torch.relu(self.tail(h))  # (N*M, W, T3, V)
        pooled = last.mean(dim=(2, 3)).view(n, m, -1).mean(dim=1)  # (N, W)
        return Out(self.fc(pooled), last, taps, embs)

    def forward_features(self, x: Tensor) -> Out:
        self.calls["forward_features"] += 1
        return self._features(x)

    def forward(self, x: Tensor) -> Tensor:
        self.calls["forward"] += 1
        return self._features(x).logits


def _batch(n=4, c=3, t=16, v=5, m=2, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, t, v, m, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    return x, y


def _model(seed=0, **kw) -> TinySTF:
    torch.manual_seed(seed)
    return TinySTF(**kw)


ALL = Lambdas(e=0.01, d=0.1, c=0.1, gk=0.01)


# --------------------------------------------------------------------------- the distance


def test_focus_distance_rms_is_scale_free_and_frobenius_grows_with_size():
    a = torch.zeros(2, 2, 8, 5)
    b = torch.ones(2, 2, 8, 5)
    assert torch.allclose(focus_distance(a, b), torch.ones(2))
    assert torch.allclose(focus_distance(a, b, norm="frobenius"), torch.full((2,), math.sqrt(2 * 8 * 5)))
    big = torch.ones(2, 2, 80, 5)
    assert torch.allclose(focus_distance(torch.zeros_like(big), big), torch.ones(2))


def test_focus_distance_ignores_absent_persons_and_has_zero_gradient_when_equal():
    a = torch.rand(2, 2, 4, 3, requires_grad=True)
    b = a.detach().clone()
    b[:, 1] = 1 - b[:, 1]  # person 1 differs
    present = torch.tensor([[True, False], [True, True]])
    d = focus_distance(a, b, present)
    assert d[0] == 0 and d[1] > 0
    same = focus_distance(a, a.detach().clone())
    same.sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() == 0


def test_present_persons_marks_all_zero_people():
    x, _ = _batch()
    x[1, ..., 1] = 0
    assert present_persons(x).tolist() == [[True, True], [True, False], [True, True], [True, True]]


# --------------------------------------------------------------------------- L_Gk


def test_loss_gk_is_zero_when_beta_equals_q_and_trains_beta_not_q():
    q = torch.rand(2, 2, 4, 5, requires_grad=True)
    embs = [resample_time(q.detach(), t).reshape(4, t, 5) for t in (16, 16, 8, 8, 4, 4)]
    assert loss_gk(q, embs).item() == pytest.approx(0.0, abs=1e-7)
    beta = [e.clone().mul(0.5).requires_grad_(True) for e in embs]
    loss = loss_gk(q, beta)
    assert loss > 0
    loss.backward()
    assert q.grad is None  # Q is the target, detached
    assert all(b.grad is not None and b.grad.abs().sum() > 0 for b in beta)


def test_loss_gk_gradient_reaches_the_beta_networks():
    model = _model()
    x, _ = _batch()
    out = model.forward_features(x)
    q = cam(out.last, model.fc.weight, out.logits, out.logits.argmax(1), 2)
    loss_gk(q, out.embeddings).backward()
    for beta in model.betas:
        assert beta.weight.grad is not None and beta.weight.grad.abs().sum() > 0
    assert model.fc.weight.grad is None  # only through Q, which is detached


# --------------------------------------------------------------------------- L_d


def test_loss_d_is_non_positive_and_trains_the_backbone():
    model = _model()
    x, _ = _batch()
    out = model.forward_features(x)
    ld = loss_d(out.last, model.fc.weight, out.logits, persons=2)
    assert ld.item() < 0
    ld.backward()
    assert model.stem.weight.grad is not None and model.stem.weight.grad.abs().sum() > 0


def test_loss_d_is_zero_when_top_two_classes_share_their_fc_row():
    model = _model()
    with torch.no_grad():
        model.fc.weight[1] = model.fc.weight[0]
        model.fc.bias[:] = -100.0
        model.fc.bias[:2] = 100.0  # classes 0 and 1 are the top two for every sample
    x, _ = _batch()
    out = model.forward_features(x)
    assert loss_d(out.last, model.fc.weight, out.logits, persons=2).item() == 0.0


# --------------------------------------------------------------------------- L_c


def test_loss_c_zero_for_equal_maps_positive_otherwise_and_symmetric():
    q = torch.rand(2, 2, 8, 5)
    assert loss_c(q, q.clone()).item() == 0.0
    flat = torch.full((2, 2, 4, 5), 0.5)
    assert loss_c(flat, torch.full((2, 2, 8, 5), 0.5)).item() == pytest.approx(0.0, abs=1e-7)
    other = torch.rand(2, 2, 4, 5)
    assert loss_c(q, other).item() > 0
    assert loss_c(q, other).item() == pytest.approx(loss_c(other, q).item())


def test_loss_c_on_grad_cam_maps_trains_the_backbone():
    model = _model()
    x, _ = _batch()
    out = model.forward_features(x)
    pred = out.logits.detach().argmax(1)
    score = out.logits.softmax(1).gather(1, pred.view(-1, 1)).sum()
    q5, q6 = grad_cam(score, out.taps[4:], persons=2, create_graph=True)
    assert q5.shape == (4, 2, 8, 5) and q6.shape == (4, 2, 4, 5)
    lc = loss_c(q5, q6)
    assert lc.item() > 0
    lc.backward()
    assert model.stem.weight.grad.abs().sum() > 0
    assert model.convs[0].weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------- L_e


class OneJointNet(nn.Module):
    """Class 0's logit is 4 × the mean of channel 0 at joint 0; nothing else matters."""

    def __init__(self, joint: int = 0, with_bn: bool = False):
        super().__init__()
        self.joint = joint
        self.spec = SimpleNamespace(num_person=1)
        self.fc = nn.Linear(1, 3)
        self.bn = nn.BatchNorm2d(1) if with_bn else nn.Identity()
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[4.0], [0.0], [0.0]]))
            self.fc.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        n, c, t, v, m = x.shape
        h = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)[:, :1]  # (N*M, 1, T, V)
        h = self.bn(h)
        h = h[..., self.joint : self.joint + 1]  # (N*M, 1, T, 1)
        return self.fc(h.mean(dim=(2, 3)).view(n, m, 1).mean(dim=1))


def test_loss_e_is_lower_when_the_focus_covers_the_discriminative_joint():
    model = OneJointNet(joint=0)
    x = torch.ones(2, 4, 8, 5, 1)  # (N, C, T, V, M) with a visibility-like channel
    y = model(x).argmax(1)
    assert torch.equal(y, torch.zeros(2, dtype=torch.long))
    on_joint = torch.zeros(2, 1, 4, 5)
    on_joint[..., 0] = 1.0
    elsewhere = torch.zeros(2, 1, 4, 5)
    elsewhere[..., 3] = 1.0
    le_on = loss_e(model, x, on_joint, y)
    le_off = loss_e(model, x, elsewhere, y)
    assert le_on.item() == pytest.approx(1 / 3, abs=1e-6)  # joint erased: all logits equal
    assert le_off.item() > 0.9
    # gradient flows into Q and says: grow the focus on the discriminative joint
    q = torch.full((2, 1, 4, 5), 0.2, requires_grad=True)
    loss_e(model, x, q, y).backward()
    assert (q.grad[..., 0] < 0).all() and (q.grad[..., 1:] == 0).all()


def test_loss_e_leaves_batchnorm_running_stats_alone():
    model = OneJointNet(with_bn=True).train()
    x = torch.rand(2, 2, 8, 5, 1) + 1
    before = (model.bn.running_mean.clone(), model.bn.running_var.clone(), model.bn.num_batches_tracked.clone())
    loss_e(model, x, torch.rand(2, 1, 4, 5), torch.zeros(2, dtype=torch.long))
    assert torch.equal(model.bn.running_mean, before[0]) and torch.equal(model.bn.running_var, before[1])
    assert torch.equal(model.bn.num_batches_tracked, before[2])
    assert model.bn.track_running_stats
    model(x)  # an ordinary forward still updates them
    assert not torch.equal(model.bn.running_mean, before[0])


def test_loss_e_trains_the_backbone():
    model = _model()
    x, y = _batch()
    out = model.forward_features(x)
    pred = out.logits.detach().argmax(1)
    q = cam(out.last, model.fc.weight, out.logits, pred, 2)
    le = loss_e(model, x, q, pred)
    assert 0 < le.item() < 1
    le.backward()
    assert model.stem.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------- the objective


def test_objective_without_active_terms_is_plain_cross_entropy():
    model = _model().eval()
    x, y = _batch()
    total, parts = stf_objective(model, x, y, ALL, active=[])
    assert torch.allclose(total, F.cross_entropy(model(x), y))
    assert set(parts) == {"ce", "total"} and parts["ce"] == parts["total"]


def test_objective_sums_the_weighted_terms():
    model = _model().eval()
    x, y = _batch()
    total, parts = stf_objective(model, x, y, ALL, active=["e", "d", "c", "gk"])
    assert set(parts) == {"ce", "e", "d", "c", "gk", "total"}
    expected = parts["ce"] + 0.01 * parts["e"] + 0.1 * parts["d"] + 0.1 * parts["c"] + 0.01 * parts["gk"]
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert parts["d"] <= 0 <= parts["c"] and 0 <= parts["gk"] <= 1 and 0 <= parts["e"] <= 1
    total.backward()
    assert all(p.grad is not None for p in (model.stem.weight, model.betas[0].weight, model.fc.weight))


def test_frobenius_norm_is_rms_times_the_map_size():
    """stf.loss_norm: frobenius (the paper's literal ‖·‖₂) and rms give the same terms up to
    sqrt(M·T·V) of each term's maps, with every person present; L_ce and L_e do not change."""
    x, y = _batch()  # T = 16: the last block has T3 = 4, taps[4] 8 frames, taps[5] 4
    rms = stf_objective(_model().eval(), x, y, ALL, active=["e", "d", "c"], norm="rms")[1]
    frob = stf_objective(_model().eval(), x, y, ALL, active=["e", "d", "c"], norm="frobenius")[1]
    assert frob["ce"] == pytest.approx(rms["ce"]) and frob["e"] == pytest.approx(rms["e"])
    assert frob["d"] == pytest.approx(rms["d"] * math.sqrt(2 * 4 * 5), rel=1e-5) and rms["d"] < 0
    assert frob["c"] == pytest.approx(rms["c"] * math.sqrt(2 * 8 * 5), rel=1e-5)


def test_loss_terms_are_the_summands_of_the_objective():
    from stf.method.losses import stf_loss_terms

    x, y = _batch()
    terms = stf_loss_terms(_model().eval(), x, y, ALL, ["d", "gk", "e"])
    assert list(terms.weighted) == ["ce", "e", "d", "gk"]  # ce first, then eq. 6's order
    for k in ("e", "d", "gk"):
        assert terms.weighted[k].item() == pytest.approx(getattr(ALL, k) * terms.raw[k].item())
    total, parts = stf_objective(_model().eval(), x, y, ALL, ["d", "gk", "e"])
    assert terms.total().item() == pytest.approx(total.item()) and terms.parts() == pytest.approx(parts)
    assert terms.logits.shape == (4, 5)


@pytest.fixture()
def grad_calls(monkeypatch):
    calls = []
    real = torch.autograd.grad

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    return calls


@pytest.mark.parametrize(
    ("lambdas", "active", "forwards", "grads", "keys"),
    [
        (ALL, ["d", "c", "gk"], 0, 1, {"d", "c", "gk"}),
        (ALL, ["e"], 1, 0, {"e"}),
        (ALL, ["d", "gk"], 0, 0, {"d", "gk"}),
        (Lambdas(e=0.0, d=0.1, c=0.0, gk=0.01), ["e", "d", "c", "gk"], 0, 0, {"d", "gk"}),
        (Lambdas(e=0.0, d=0.0, c=0.0, gk=0.0), ["e", "d", "c", "gk"], 0, 0, set()),
        (ALL, ["e", "d", "c", "gk"], 1, 1, {"e", "d", "c", "gk"}),
    ],
)
def test_inactive_or_zero_weight_terms_cost_nothing(grad_calls, lambdas, active, forwards, grads, keys):
    model = _model()
    x, y = _batch()
    _, parts = stf_objective(model, x, y, lambdas, active)
    assert model.calls == {"forward_features": 1, "forward": forwards}
    assert len(grad_calls) == grads
    assert set(parts) == keys | {"ce", "total"}


def test_objective_with_an_absent_person_stays_finite():
    model = _model()
    x, y = _batch()
    x[:, ..., 1] = 0  # nobody is person 1
    total, parts = stf_objective(model, x, y, ALL, active=["e", "d", "c", "gk"])
    assert all(math.isfinite(v) for v in parts.values())
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_absent_person_does_not_change_the_distance_terms():
    """Whatever the model's map for an absent person looks like, d / c / gk ignore it."""
    model = _model().eval()
    x, y = _batch()
    x[:, ..., 1] = 0
    _, parts = stf_objective(model, x, y, ALL, active=["d", "c", "gk"])
    out = model.forward_features(x)
    pred = out.logits.argmax(1)
    q = cam(out.last, model.fc.weight, out.logits, pred, 2)
    only0 = torch.tensor([[True, False]] * x.shape[0])
    assert parts["gk"] == pytest.approx(loss_gk(q, out.embeddings, only0).item(), rel=1e-5)
    assert abs(parts["gk"] - loss_gk(q, out.embeddings).item()) > 1e-5


def test_unknown_loss_name_and_model_without_taps_are_errors():
    model = _model()
    x, y = _batch()
    with pytest.raises(LossInputError, match="unknown loss names"):
        stf_objective(model, x, y, ALL, active=["x"])

    class NoTaps(TinySTF):
        def forward_features(self, x):
            out = super().forward_features(x)
            return out._replace(taps=[], embeddings=[])

    with pytest.raises(LossInputError, match="stf=True"):
        stf_objective(NoTaps(), x, y, ALL, active=["c"])
    with pytest.raises(LossInputError, match="stf=True"):
        stf_objective(NoTaps(), x, y, ALL, active=["gk"])


# --------------------------------------------------------------------------- on the real MS-G3D


def _msg3d(stf: bool = True):
    from stf.models.msg3d import MSG3D, ModelSpec
    from stf.models.stf import STFSpec

    torch.manual_seed(0)
    spec = ModelSpec(
        num_class=5,
        num_point=6,
        num_person=2,
        in_channels=3,
        edges=((1, 0), (2, 1), (3, 2), (4, 1), (5, 4)),
        widths=(4, 8, 8),
        gcn_scales=3,
        g3d_scales=2,
        stf=STFSpec(graph_scales=2, beta_hidden=4, alpha_hidden=4, time_bins=4) if stf else None,
    )
    model = MSG3D(spec)
    nn.init.zeros_(model.fc.bias)
    return model


def test_analytic_cam_matches_autograd_on_msg3d():
    model = _msg3d(stf=False).eval()
    x, _ = _batch(n=3, t=16, v=6)
    out = model.forward_features(x)
    pred = out.logits.detach().argmax(1)
    score = out.logits.softmax(1).gather(1, pred.view(-1, 1)).sum()
    (q_auto,) = grad_cam(score, [out.last], persons=2)
    q = cam(out.last, model.fc.weight, out.logits, pred, persons=2)
    assert q.shape == (3, 2, 4, 6)
    assert torch.allclose(q, q_auto, atol=1e-5)


def _grads(model: nn.Module, loss: Tensor) -> dict[str, float]:
    model.zero_grad()
    loss.backward()
    return {name: (p.grad.abs().sum().item() if p.grad is not None else 0.0) for name, p in model.named_parameters()}


def test_msg3d_gradients_reach_beta_through_gk_and_the_backbone_through_d_c_e():
    model = _msg3d()
    x, y = _batch(n=4, t=16, v=6)
    only = {
        name: Lambdas(**{k: (1.0 if k == name else 0.0) for k in ("e", "d", "c", "gk")})
        for name in ("e", "d", "c", "gk")
    }
    for name in ("gk", "d", "c", "e"):
        total, parts = stf_objective(model, x, y, only[name], active=[name])
        assert name in parts and math.isfinite(parts[name])
        grads = _grads(model, total - F.cross_entropy(model.forward(x), y))  # λ·term alone
        if name == "gk":
            betas = [n for n in grads if ".stf.beta." in n]
            assert len(betas) == 6 * 6 and all(grads[n] > 0 for n in betas if n.endswith("weight"))
        else:
            backbone = [n for n in grads if ".stf." not in n and n.startswith("blocks.0.msgcn.conv")]
            assert backbone and all(grads[n] > 0 for n in backbone), (name, parts)


# --------------------------------------------------------------------------- mixed precision


def test_stf_objective_under_bf16_autocast_matches_float32_within_bf16_sensitivity():
    """bf16 autocast vs float32 on an NTU-shaped STF model (train mode, smooth motion input).

    Tolerance: bfloat16 keeps 8 significant bits (unit roundoff 2^-8). How far that moves a
    focus map depends on the map's conditioning, which differs a lot between layers (at this
    size Q5 is ill-conditioned: rounding only the input and the weights to bf16, then computing
    in float32, moves it by an rms of 0.07). So each map must stay within 3x the distance that
    bf16 rounding of input and weights alone causes in float32 (autocast also rounds every
    activation and gradient once more per layer; measured 0.9-1.9x), plus 0.005. The loss
    terms are distances of maps in [0, 1] (rms norm), so they move by at most the maps' rms
    differences: within 0.01 absolute (measured <= 0.0016); cross-entropy within 1 % (0.05 %).
    """
    import dataclasses

    from helpers import REPO
    from stf.config import load_params
    from stf.models.msg3d import MSG3D
    from stf.stages.spec import spec_for

    params = load_params(REPO / "params.yaml")
    torch.manual_seed(0)
    spec = dataclasses.replace(spec_for(params, "ntu60", 10, 4, stf=True), widths=(8, 16, 16))
    model = MSG3D(spec).train()
    g = torch.Generator().manual_seed(0)
    x0 = torch.cumsum(torch.randn(4, 4, 32, 25, 2, generator=g) * 0.05, dim=2)  # (N, C, T, V, M) random walks
    x0[:, 3] = 1.0  # visibility
    y = torch.randint(0, 10, (4,), generator=g)
    active = ["d", "c", "gk", "e"]

    def run(x: Tensor, bf16: bool) -> tuple[list[Tensor], dict[str, float]]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model.forward_features(x)
            pred = out.logits.detach().argmax(1)
            q = cam(out.last, model.fc.weight, out.logits, pred, 2)  # (N, M, T3, V)
            n_pos = 2 * out.last.shape[2] * out.last.shape[3]
            q5, q6 = grad_cam(class_score(out.logits, pred, n_pos, scaled=bf16), out.taps[-2:], 2)
            _, parts = stf_objective(model, x, y, Lambdas(), active)
        return [m.detach() for m in (q, q5, q6)], parts

    def rms_per_map(a: Tensor, b: Tensor) -> float:
        return float(((a - b) ** 2).flatten(2).mean(-1).sqrt().max())  # worst (sample, person) map

    ref_maps, ref = run(x0, bf16=False)
    amp_maps, amp = run(x0, bf16=True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for prm in model.parameters():
            prm.copy_(prm.bfloat16().float())
    floor_maps, _ = run(x0.bfloat16().float(), bf16=False)  # float32 arithmetic, bf16-rounded data
    model.load_state_dict(state)
    for name, a, r, f in zip(("Q", "Q5", "Q6"), amp_maps, ref_maps, floor_maps, strict=True):
        assert rms_per_map(a, r) <= 3 * rms_per_map(f, r) + 0.005, name
    assert abs(amp["ce"] - ref["ce"]) <= 0.01 * ref["ce"]
    for term in ("e", "d", "c", "gk"):
        assert abs(amp[term] - ref[term]) <= 0.01, term
