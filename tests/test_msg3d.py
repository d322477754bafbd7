"""MS-G3D backbone: faithfulness to the original (parameter counts, shapes, layer maths), spec, API."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from stf.config import load_params
from stf.data.skeletons import NTU25, OPENPOSE18
from stf.models.blocks import branch_widths
from stf.models.msg3d import MSG3D, MSGCN, G3DPathway, ModelInputError, ModelSpec
from stf.models.stf import STFSpec
from stf.stages.spec import spec_for

REPO = Path(__file__).resolve().parents[1]
META = torch.device("meta")


def ntu_spec(num_class=60, in_channels=3, **kw) -> ModelSpec:
    return ModelSpec(num_class=num_class, num_point=25, num_person=2, in_channels=in_channels, edges=NTU25.edges, **kw)


def kinetics_spec(**kw) -> ModelSpec:
    return ModelSpec(num_class=400, num_point=18, num_person=2, in_channels=3, edges=OPENPOSE18.edges,
                     gcn_scales=8, g3d_scales=8, **kw)  # fmt: skip


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_model(spec: ModelSpec) -> MSG3D:
    with META:
        return MSG3D(spec)


# --------------------------------------------------------------------------- faithfulness


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(ntu_spec(60), 3_194_595), (ntu_spec(120), 3_217_695), (kinetics_spec(), 3_144_328)],
    ids=["ntu60", "ntu120", "kinetics"],
)
def test_parameter_count_matches_original(spec, expected):
    assert n_params(meta_model(spec)) == expected


def test_ntu60_parameter_breakdown_matches_original():
    m = meta_model(ntu_spec(60))
    got = {"fc": n_params(m.fc), "data_bn": n_params(m.data_bn)}
    for i, b in enumerate(m.blocks, start=1):
        got[f"gcn3d{i}"] = n_params(b.gcn3d)
        got[f"sgcn{i}"] = n_params(b.msgcn) + n_params(b.sgcn_tcn)
        got[f"tcn{i}"] = n_params(b.tcn)
    assert got == {
        "gcn3d1": 205_836, "sgcn1": 37_757, "tcn1": 12_800,
        "gcn3d2": 387_276, "sgcn2": 229_149, "tcn2": 50_176,
        "gcn3d3": 1_163_148, "sgcn3": 886_397, "tcn3": 198_656,
        "fc": 23_100, "data_bn": 300,
    }  # fmt: skip
    a_res = sum(p.numel() for name, p in m.named_parameters() if name.endswith("A_res"))
    assert a_res == 406_875


@pytest.mark.parametrize("spec_fn", [ntu_spec, kinetics_spec])
def test_visibility_channel_adds_only_its_input_weights(spec_fn):
    s3 = spec_fn()
    s4 = ModelSpec.from_dict(s3.to_dict() | {"in_channels": 4})
    w1 = s3.widths[0]
    # data BN (weight + bias per person and joint), block-1 MS-GCN 1x1 conv (one input per scale),
    # block-1 G3D 1x1 conv of each window (one input per scale)
    extra = 2 * s3.num_person * s3.num_point + s3.gcn_scales * w1 + len(s3.window_sizes) * s3.g3d_scales * w1
    assert n_params(meta_model(s4)) - n_params(meta_model(s3)) == extra


def test_feature_map_shapes_at_300_frames():
    m = meta_model(ntu_spec(60))
    shapes = []
    for b in m.blocks:
        b.register_forward_hook(lambda mod, inp, out: shapes.append(tuple(out[0].shape)))
    out = m.forward_features(torch.empty(3, 3, 300, 25, 2, device=META))
    assert shapes == [(6, 96, 300, 25), (6, 192, 150, 25), (6, 384, 75, 25)]
    assert tuple(out.last.shape) == (6, 384, 75, 25)
    assert tuple(out.logits.shape) == (3, 60)
    assert out.taps == [] and out.embeddings == []


def test_fixed_graphs_are_buffers_not_parameters_nor_saved():
    m = MSG3D(ntu_spec(10, widths=(6, 12, 12)))
    buffers = dict(m.named_buffers())
    assert "blocks.0.msgcn.A" in buffers and buffers["blocks.0.msgcn.A"].shape == (13, 25, 25)
    assert buffers["blocks.1.gcn3d.windows.1.A"].shape == (6, 125, 125)
    assert not any(k.endswith(".A") for k in m.state_dict())  # rebuilt from the spec
    assert all(not k.endswith(".A") for k, _ in m.named_parameters())


# --------------------------------------------------------------------------- layer maths


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("A_res"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.2 - 0.1)
        for mod in module.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
    module.eval()


def naive_msgcn(layer: MSGCN, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
    """sum_k W_k X (A_k + A_res_k + G_k) with the original's einsum and (N, K*C, T, V) stacking."""
    n, c, t, v = x.shape
    a = (layer.A + layer.A_res).expand(n, -1, -1, -1).clone()  # (N, K, V, V)
    if g is not None:
        a[:, : g.shape[1]] += g
    support = torch.einsum("nkvu,nctu->nkctv", a, x).reshape(n, -1, t, v)
    return F.relu(layer.bn(layer.conv(support)))


def naive_g3d(layer: G3DPathway, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
    """nn.Unfold windows, tile(A+I) scales (+ tile(G_k)), 1x1 conv, Conv3d (1, tau, 1) collapse."""
    n, c, t, v = x.shape
    tau, s, d = layer.tau, layer.stride, layer.dilation
    pad = ((tau - 1) * d) // 2
    u = F.unfold(x, (tau, 1), dilation=(d, 1), stride=(s, 1), padding=(pad, 0))  # (N, C*tau, T'*V)
    u = u.view(n, c, tau, -1, v).permute(0, 1, 3, 2, 4).reshape(n, c, -1, tau * v)  # (N, C, T', tau*V)
    a = (layer.A + layer.A_res).expand(n, -1, -1, -1).clone()  # (N, K, tau*V, tau*V)
    if g is not None:
        a[:, : g.shape[1]] += g.repeat(1, 1, tau, tau)  # tile (tau, tau)
    support = torch.einsum("nkvu,nctu->nkctv", a, u).reshape(n, -1, u.shape[2], tau * v)
    y = F.relu(layer.bn(layer.conv(support)))  # (N, Ce, T', tau*V)
    y = y.view(n, y.shape[1], -1, tau, v)
    w3 = layer.out_conv.weight.unsqueeze(-1)  # (C_out, Ce, 1, tau, 1)
    return layer.out_bn(F.conv3d(y, w3, layer.out_conv.bias).squeeze(3))


@pytest.mark.parametrize(("c_in", "with_g"), [(3, False), (20, False), (3, True), (20, True)])
def test_msgcn_computes_the_multiscale_sum(c_in, with_g):
    spec = ntu_spec(widths=(6, 12, 12), stf=STFSpec() if with_g else None)
    layer = MSGCN(c_in, 12, spec)
    _randomise(layer)
    torch.manual_seed(1)
    x = torch.randn(2, c_in, 7, 25)
    g = torch.randn(2, 3, 25, 25) * 0.3 if with_g else None
    if with_g:  # force the STF module to output this g
        layer.stf.forward = lambda inp: (g, torch.zeros(inp.shape[0], inp.shape[2], inp.shape[3]))
    out, _ = layer(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, naive_msgcn(layer, x, g), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("c_in", "tau", "stride", "dilation", "with_g"),
    [(3, 3, 1, 1, False), (20, 5, 2, 1, False), (20, 3, 2, 2, False), (3, 5, 1, 1, True), (20, 3, 2, 1, True)],
)
def test_g3d_pathway_matches_unfold_and_tiled_graph(c_in, tau, stride, dilation, with_g):
    spec = ntu_spec(widths=(6, 12, 12), stf=STFSpec() if with_g else None)
    layer = G3DPathway(c_in, 10, 12, tau, stride, dilation, spec)
    _randomise(layer)
    torch.manual_seed(2)
    x = torch.randn(2, c_in, 9, 25)
    g = torch.randn(2, 3, 25, 25) * 0.3 if with_g else None
    out = layer(x.contiguous(memory_format=torch.channels_last), g)
    expected = naive_g3d(layer, x, g)
    assert out.shape == expected.shape == (2, 12, (9 - 1) // stride + 1, 25)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_branch_widths_split_channels():
    assert branch_widths(96, 6) == [16] * 6
    assert branch_widths(8, 6) == [2, 2, 1, 1, 1, 1]
    assert branch_widths(4, 6) == [1, 1, 1, 1, 0, 0]
    assert sum(branch_widths(32, 6)) == 32


# --------------------------------------------------------------------------- model behaviour (tiny widths)


def tiny_model(stf: bool = False, **kw) -> MSG3D:
    torch.manual_seed(0)
    return MSG3D(ntu_spec(num_class=7, in_channels=4, widths=(8, 16, 32), stf=STFSpec() if stf else None, **kw))


def test_tiny_forward_shapes_and_determinism():
    m = tiny_model().eval()
    x = torch.randn(3, 4, 16, 25, 2)
    with torch.no_grad():
        out = m.forward_features(x)
        again = m(x)
    assert out.logits.shape == (3, 7)
    assert out.last.shape == (6, 32, 4, 25)
    assert torch.equal(out.logits, again)


def test_samples_do_not_mix_in_eval_mode():
    m = tiny_model().eval()
    x = torch.randn(3, 4, 16, 25, 2)
    with torch.no_grad():
        batch = m(x)
        single = torch.cat([m(x[i : i + 1]) for i in range(3)])
        x2 = x.clone()
        x2[2, :, :, :, 1] += 1.0  # change person 2 of sample 2 only
        changed = m(x2)
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(changed[:2], batch[:2])
    assert not torch.allclose(changed[2], batch[2])


def test_every_parameter_gets_a_gradient():
    m = tiny_model().train()
    x = torch.randn(2, 4, 16, 25, 2)
    F.cross_entropy(m(x), torch.tensor([1, 5])).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    assert m.blocks[1].gcn3d.windows[0].A_res.grad.abs().sum() > 0


def test_any_frame_count_works():
    m = tiny_model().eval()
    with torch.no_grad():
        for t in (1, 5, 23):
            assert m(torch.randn(1, 4, t, 25, 2)).shape == (1, 7)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((2, 4, 16, 25), "got 4 dims"),
        ((2, 3, 16, 25, 2), "C=4"),
        ((2, 4, 16, 18, 2), "V=25"),
        ((2, 4, 16, 25, 1), "M=2"),
    ],
)
def test_wrong_input_shape_is_a_value_error(shape, match):
    m = tiny_model()
    with pytest.raises(ModelInputError, match=match):
        m(torch.zeros(shape))
    assert issubclass(ModelInputError, ValueError)


# --------------------------------------------------------------------------- spec


def test_spec_round_trips_through_plain_data_and_torch_save():
    spec = ntu_spec(num_class=120, in_channels=4, stf=STFSpec(graph_scales=2, beta_hidden=8, alpha_hidden=4))
    d = spec.to_dict()
    json.dumps(d)  # plain data only
    buf = io.BytesIO()
    torch.save({"spec": d}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)["spec"]
    assert ModelSpec.from_dict(loaded) == spec
    assert ModelSpec.from_dict(ntu_spec().to_dict()) == ntu_spec()
    assert replace(spec, stf=None) == ntu_spec(num_class=120, in_channels=4)


def test_spec_dict_keeps_the_checkpoint_format():
    """model.pt files written before keep loading and `load_init` compares saved and expected
    specs key by key, so the dict keeps its exact form: lists (never tuples), `stf` a dict."""
    spec = ntu_spec(num_class=120, in_channels=4, stf=STFSpec(graph_scales=2, beta_hidden=8, alpha_hidden=4))
    d = spec.to_dict()
    assert list(d) == [
        "num_class", "num_point", "num_person", "in_channels", "edges", "widths",
        "gcn_scales", "g3d_scales", "window_sizes", "window_dilations", "stf",
    ]  # fmt: skip
    assert d["edges"] == [list(e) for e in NTU25.edges] and all(type(e) is list for e in d["edges"])
    assert all(type(d[k]) is list for k in ("widths", "window_sizes", "window_dilations"))
    assert d["stf"] == {"graph_scales": 2, "beta_hidden": 8, "alpha_hidden": 4, "time_bins": 16}
    assert ntu_spec().to_dict()["stf"] is None


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"colour": 1}, "unknown keys"),
        ({"widths": [8, 16]}, "widths"),
        ({"num_class": 0}, "num_class"),
        ({"edges": [[0, 30]]}, "outside"),
        ({"window_dilations": [1]}, "equal length"),
        ({"stf": {"graph_scales": 9}}, "exceeds"),
        ({"stf": {"bogus": 1}}, "unknown keys"),
    ],
)
def test_bad_spec_dicts_are_rejected(change, match):
    with pytest.raises(ValueError, match=match):
        ModelSpec.from_dict(ntu_spec().to_dict() | change)


def test_spec_for_uses_the_active_profile_and_model_scales():
    params = load_params(REPO / "params.yaml")
    sizes = params.profiles["tiny"]
    params = params.model_copy(update={"profile": "tiny"})
    ntu = spec_for(params, "ntu120", 16, in_channels=4)
    assert ntu.widths == tuple(sizes.widths)
    assert (ntu.num_point, ntu.num_class, ntu.in_channels, ntu.num_person) == (25, 16, 4, params.preprocess.persons)
    assert (ntu.gcn_scales, ntu.g3d_scales) == (params.model.gcn_scales["ntu"], params.model.g3d_scales["ntu"])
    assert ntu.edges == NTU25.edges and ntu.stf is None
    kin = spec_for(params, "kinetics", 10, in_channels=3, stf=True, full_width=True)
    assert kin.widths == (96, 192, 384) and kin.num_point == 18 and kin.edges == OPENPOSE18.edges
    assert kin.gcn_scales == params.model.gcn_scales["kinetics"]
    assert kin.g3d_scales == params.model.g3d_scales["kinetics"]
    assert kin.stf == STFSpec(
        graph_scales=params.stf.graph_scales, beta_hidden=params.stf.beta_hidden,
        alpha_hidden=params.stf.alpha_hidden, time_bins=params.stf.alpha_time_bins,
    )  # fmt: skip
    with pytest.raises(ValueError, match="unknown dataset"):
        spec_for(params, "ucla", 10, 3)
    # the tiny model actually runs
    m = MSG3D(ntu).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 4, sizes.frames, 25, ntu.num_person)).shape == (1, 16)


def test_window_graph_matches_tile_of_skeleton():
    m = MSG3D(ntu_spec(widths=(6, 12, 12)))
    a = m.blocks[0].gcn3d.windows[0].A.numpy()  # (6, 75, 75)
    assert a.shape == (6, 75, 75)
    np.testing.assert_allclose(a[0], np.eye(75))
    assert np.array_equal(a[1][:25, 25:50] > 0, a[1][:25, :25] > 0)  # same neighbours in every frame
