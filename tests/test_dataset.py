"""Bone features, loading a setting's part, and the batch iterator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stf.config import SettingSpec, SplitConfig
from stf.data.dataset import DatasetError, SkeletonDataset, bone_features, load_arrays
from stf.data.preprocess import InterimWriter
from stf.data.skeletons import Layout
from stf.data.splits import make_split_file

TOY = Layout(
    name="toy3", num_joints=3, edges=((1, 0), (2, 1)), bone_pairs=((0, 0), (1, 0), (2, 1)), center=0,
    joint_names=("root", "mid", "tip"),
)  # fmt: skip


def toy_joints() -> np.ndarray:
    x = np.zeros((1, 4, 2, 3, 1), np.float32)  # (N, C = xyz + visibility, T, V, M)
    x[0, :3, :, 0, 0] = np.array([0.0, 0.0, 0.0])[:, None]
    x[0, :3, :, 1, 0] = np.array([0.0, 1.0, 0.0])[:, None]
    x[0, :3, :, 2, 0] = np.array([[1.0, 3.0], [1.0, 1.0], [0.0, 2.0]])
    x[0, 3] = 1.0
    x[0, :, 1, 2, 0] *= np.array([1, 1, 1, 0])  # frame 1: tip invisible (coords kept to test masking)
    return x


def test_bone_features_on_a_toy_layout():
    b = bone_features(toy_joints(), TOY, coord_channels=3)
    assert b.shape == (1, 4, 2, 3, 1)
    np.testing.assert_array_equal(b[0, :3, 0, 0, 0], [0, 0, 0])  # root self-pair
    np.testing.assert_array_equal(b[0, :3, 0, 1, 0], [0, 1, 0])  # mid - root
    np.testing.assert_array_equal(b[0, :3, 0, 2, 0], [1, 0, 0])  # tip - mid
    np.testing.assert_array_equal(b[0, 3, :, :, 0], [[1, 1, 1], [1, 1, 0]])  # min of the ends' visibility
    np.testing.assert_array_equal(b[0, :3, 1, 2, 0], [0, 0, 0])  # a bone with an invisible end is 0


def test_bone_features_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 5, 3, 2)).astype(np.float32)  # coordinates only
    b_np = bone_features(x, TOY, coord_channels=3)
    b_t = bone_features(torch.from_numpy(x), TOY, coord_channels=3)
    assert isinstance(b_t, torch.Tensor)
    np.testing.assert_allclose(b_t.numpy(), b_np, rtol=0, atol=0)
    np.testing.assert_allclose(b_np[:, :, :, 2], x[:, :, :, 2] - x[:, :, :, 1])


def make_files(tmp_path, n_per_class: int = 20, classes: int = 3):
    """Interim (sample i has every value = i) + x-sub split; returns (interim, split, ids)."""
    ids = sorted(
        f"S001C001P{[1, 3][k % 2]:03d}R{k + 1:03d}A{a:03d}" for a in range(1, classes + 1) for k in range(n_per_class)
    )
    info = {
        "dataset": "ntu60",
        "layout": "ntu25",
        "shape": [4, 3, 25, 2],
        "num_class": classes,
        "channels": ["x", "y", "z", "visibility"],
    }
    rows = [
        {"sample_id": s, "label": int(s[-3:]) - 1, "setup": 1, "camera": 1, "performer": int(s[9:12]),
         "replication": int(s[13:16]), "part": "", "n_frames": 3, "n_persons": 1}
        for s in ids
    ]  # fmt: skip
    data = np.broadcast_to(np.arange(len(ids), dtype=np.float32)[:, None, None, None, None], (len(ids), 4, 3, 25, 2))
    interim = tmp_path / "ntu60.parquet"
    with InterimWriter(interim, info) as w:
        w.write(rows[:7], data[:7])
        w.write(rows[7:], data[7:])
    split = tmp_path / "ntu60-xsub.parquet"
    make_split_file(
        interim, SettingSpec(dataset="ntu60", benchmark="xsub"), SplitConfig(fractions=[10, 50, 100]), split
    )
    return interim, split, ids


def test_load_arrays_selects_part_and_fraction(tmp_path):
    import pandas as pd

    interim, split, ids = make_files(tmp_path)
    table = pd.read_parquet(split)
    for part, fraction, col in (("train", 10, "p10"), ("train", 50, "p50"), ("train", 100, "p100")):
        arr = load_arrays(interim, split, part, "joint", fraction)
        want = table.loc[table[col], "sample_id"].tolist()
        assert arr.ids.tolist() == want
        assert arr.x.shape == (len(want), 4, 3, 25, 2) and arr.x.dtype == np.float32
        np.testing.assert_array_equal(arr.x[:, 0, 0, 0, 0], [ids.index(s) for s in want])  # the right tensors
        np.testing.assert_array_equal(arr.y, [int(s[-3:]) - 1 for s in want])
        assert arr.num_class == 3 and arr.dataset == "ntu60" and arr.layout.name == "ntu25"
    test = load_arrays(interim, split, "test", "joint")
    assert test.ids.tolist() == table.loc[table.part == "test", "sample_id"].tolist()
    assert len(load_arrays(interim, split, "train", "joint", 10)) == 3  # 10 train per class -> 1 each


def test_load_arrays_bone_stream_and_errors(tmp_path):
    interim, split, _ = make_files(tmp_path)
    joint = load_arrays(interim, split, "test", "joint")
    bone = load_arrays(interim, split, "test", "bone")
    np.testing.assert_array_equal(bone.x, bone_features(joint.x, joint.layout))
    with pytest.raises(DatasetError, match=r"p25.*\['p10', 'p100', 'p50'\]"):
        load_arrays(interim, split, "train", "joint", 25)
    (tmp_path / "other").mkdir()
    other, _, _ = make_files(tmp_path / "other", n_per_class=4)  # lacks most of the split's samples
    with pytest.raises(DatasetError, match="not in"):
        load_arrays(other, split, "train", "joint")


def small_arrays(n: int = 23):
    from stf.data.dataset import SkeletonArrays
    from stf.data.skeletons import NTU25

    x = np.arange(n, dtype=np.float32)[:, None, None, None, None] * np.ones((1, 2, 4, 25, 2), np.float32)
    return SkeletonArrays(
        x=x, y=np.arange(n) % 5, ids=np.array([f"s{i}" for i in range(n)]), num_class=5, layout=NTU25, dataset="ntu60"
    )


def test_skeleton_dataset_items():
    ds = SkeletonDataset(small_arrays(6))
    x, y, i = ds[4]
    assert len(ds) == 6 and x.shape == (2, 4, 25, 2) and y == 4 and i == 4 and float(x[0, 0, 0, 0]) == 4.0
