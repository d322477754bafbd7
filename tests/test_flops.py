"""FLOPs and parameters on the meta device: MS-G3D's published costs, STF's overhead."""

from __future__ import annotations

import pytest
import torch

from stf.config import parse_params
from stf.data.skeletons import NTU25
from stf.models.msg3d import MSG3D, ModelSpec
from stf.stages.flops import compare_flops, count_flops, count_params

META = torch.device("meta")


@pytest.fixture(scope="module")
def params():
    """Minimal params: a narrow active profile (compare_flops must ignore it) and default sections."""
    profile = {"source": "synthetic", "widths": [4, 8, 8]}
    return parse_params({"profile": "p", "profiles": {"p": profile}, "settings": {}})


@pytest.mark.parametrize(
    ("dataset", "frames", "gflops", "n_params"),
    [("ntu60", 300, 65.5, 3_194_595), ("ntu60", 100, 21.8, 3_194_595), ("kinetics", 300, 47.9, 3_144_328)],
)
def test_msg3d_cost_matches_the_original(params, dataset, frames, gflops, n_params):
    r = compare_flops(params, dataset, frames=frames, persons=2, in_channels=3)
    assert r["msg3d"]["flops"] == pytest.approx(gflops * 1e9, rel=0.01)
    assert r["msg3d"]["params"] == n_params
    assert (r["dataset"], r["frames"], r["persons"], r["in_channels"]) == (dataset, frames, 2, 3)


@pytest.mark.parametrize("dataset", ["ntu60", "ntu120", "kinetics"])
def test_stf_costs_at_most_ten_percent_more(params, dataset):
    r = compare_flops(params, dataset, frames=300, persons=2, in_channels=3)
    assert r["ratio"] == r["stf"]["flops"] / r["msg3d"]["flops"]
    assert 1.0 < r["ratio"] <= 1.10
    assert r["msg3d"]["params"] < r["stf"]["params"] < 1.05 * r["msg3d"]["params"]


def test_cost_grows_with_channels_and_persons(params):
    base = compare_flops(params, "ntu120", frames=64, persons=2, in_channels=3)
    vis = compare_flops(params, "ntu120", frames=64, persons=2, in_channels=4)
    one = compare_flops(params, "ntu120", frames=64, persons=1, in_channels=3)
    assert vis["msg3d"]["flops"] > base["msg3d"]["flops"]
    assert vis["msg3d"]["params"] > base["msg3d"]["params"]
    assert vis["msg3d_c3"] == base["msg3d"]  # every result also holds the original's C = 3 cost
    # persons are folded into the batch: one person costs about half (the head is shared)
    assert one["msg3d"]["flops"] == pytest.approx(base["msg3d"]["flops"] / 2, rel=0.001)


def test_visibility_channel_cost_at_the_papers_size(params):
    """What the README and the report quote: C = 4 adds 2,500 parameters and 0.34 GFLOPs to the
    original's 3,194,595 / 65.54 G (NTU, T = 300, M = 2)."""
    r = compare_flops(params, "ntu60", frames=300, persons=2, in_channels=4)
    assert r["msg3d_c3"]["params"] == 3_194_595 and round(r["msg3d_c3"]["flops"] / 1e9, 2) == 65.54
    assert r["msg3d"]["params"] - r["msg3d_c3"]["params"] == 2_500
    assert round((r["msg3d"]["flops"] - r["msg3d_c3"]["flops"]) / 1e9, 2) == 0.34


def test_count_flops_and_params_on_a_known_layer():
    with META:
        lin = torch.nn.Linear(10, 3)
        x = torch.empty(5, 10)
    assert count_flops(lin, x) == 2 * 5 * 10 * 3
    assert count_params(lin) == 33


def test_count_flops_leaves_training_mode_alone():
    with META:
        spec = ModelSpec(num_class=5, num_point=25, num_person=1, in_channels=3, edges=NTU25.edges, widths=(6, 12, 12))
        m = MSG3D(spec)
        x = torch.empty(1, 3, 8, 25, 1)
    m.train()
    assert count_flops(m, x) > 0
    assert m.training


@pytest.mark.parametrize(("kwargs", "match"), [({"dataset": "ucla"}, "unknown dataset"), ({"frames": 0}, "frames")])
def test_bad_arguments_are_value_errors(params, kwargs, match):
    args = {"dataset": "ntu60", "frames": 300, "persons": 2, "in_channels": 3} | kwargs
    with pytest.raises(ValueError, match=match):
        compare_flops(params, **args)
