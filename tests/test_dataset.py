"""Bone features, selecting a setting's part, and reading its batches from the interim parquet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import write_interim
from stf.config import SettingSpec, SplitConfig
from stf.data.dataset import DatasetError, SkeletonPart, bone_features, load_part
from stf.data.normalize import fit_length
from stf.data.preprocess import STORAGE_AXES, InterimFormatError, InterimWriter
from stf.data.skeletons import NTU25, Layout
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
    interim = write_interim(tmp_path / "ntu60.parquet", info, rows, data)
    split = tmp_path / "ntu60-xsub.parquet"
    make_split_file(
        interim, SettingSpec(dataset="ntu60", benchmark="xsub"), SplitConfig(fractions=[10, 50, 100]), split
    )
    return interim, split, ids


def test_load_part_selects_part_and_fraction(tmp_path):
    import pandas as pd

    interim, split, ids = make_files(tmp_path)
    table = pd.read_parquet(split)
    for part, fraction, col in (("train", 10, "p10"), ("train", 50, "p50"), ("train", 100, "p100")):
        sel = load_part(interim, split, part, "joint", fraction)
        want = table.loc[table[col], "sample_id"].tolist()
        assert sel.ids.tolist() == want and len(sel) == len(want)
        x, y, pos = sel[np.arange(len(sel))]
        assert x.shape == (len(want), 4, 3, 25, 2) and x.dtype == torch.float32 and sel.shape == (4, 3, 25, 2)
        np.testing.assert_array_equal(x[:, 0, 0, 0, 0].numpy(), [ids.index(s) for s in want])  # the right tensors
        np.testing.assert_array_equal(y.numpy(), [int(s[-3:]) - 1 for s in want])
        np.testing.assert_array_equal(pos.numpy(), np.arange(len(want)))
        assert sel.num_class == 3 and sel.dataset == "ntu60" and sel.layout.name == "ntu25"
    test = load_part(interim, split, "test", "joint")
    assert test.ids.tolist() == table.loc[table.part == "test", "sample_id"].tolist()
    assert len(load_part(interim, split, "train", "joint", 10)) == 3  # 10 train per class -> 1 each
    batch = [5, 0, 3]  # any order; the batch comes back in that order
    np.testing.assert_array_equal(test[batch][0][:, 0, 0, 0, 0].numpy(), [ids.index(test.ids[i]) for i in batch])


def test_load_part_bone_stream_and_errors(tmp_path):
    interim, split, _ = make_files(tmp_path)
    joint = load_part(interim, split, "test", "joint")
    bone = load_part(interim, split, "test", "bone")
    every = np.arange(len(joint))
    np.testing.assert_array_equal(bone[every][0].numpy(), bone_features(joint[every][0].numpy(), joint.layout))
    with pytest.raises(DatasetError, match=r"p25.*\['p10', 'p100', 'p50'\]"):
        load_part(interim, split, "train", "joint", 25)
    with pytest.raises(DatasetError, match="positions outside"):
        joint[[0, len(joint)]]
    with pytest.raises(DatasetError, match="1-D list of positions"):
        joint[3]
    (tmp_path / "other").mkdir()
    other, _, _ = make_files(tmp_path / "other", n_per_class=4)  # lacks most of the split's samples
    with pytest.raises(DatasetError, match="not in"):
        load_part(other, split, "train", "joint")


def ragged_part(tmp_path, lengths, frames: int, pad: str, dtype: str = "float32", stream: str = "joint"):
    """A SkeletonPart over random NTU samples of the given lengths, and the samples (C, F, V, M)."""
    rng = np.random.default_rng(sum(lengths))
    samples = [rng.normal(size=(4, n, 25, 2)).astype(np.float32) for n in lengths]
    for s in samples:
        s[3] = rng.random((n := s.shape[1], 25, 2)) > 0.2  # visibility 0/1
    info = {
        "dataset": "ntu60",
        "layout": "ntu25",
        "shape": [4, frames, 25, 2],
        "num_class": 2,
        "channels": ["x", "y", "z", "visibility"],
        "pad": pad,
        "storage": {"dtype": dtype, "axes": STORAGE_AXES},
    }
    ids = [f"S001C001P001R{i + 1:03d}A001" for i in range(len(lengths))]
    rows = [{"sample_id": s, "label": 0, "setup": 1, "camera": 1, "performer": 1, "replication": i + 1, "part": "",
             "n_frames": n, "n_persons": 2} for i, (s, n) in enumerate(zip(ids, lengths, strict=True))]  # fmt: skip
    path = tmp_path / f"ragged-{pad}-{dtype}.parquet"
    with InterimWriter(path, info) as w:
        w.write(rows, [s.transpose(1, 0, 2, 3) for s in samples])
    n = len(lengths)
    part = SkeletonPart(path, np.arange(n), np.zeros(n), np.array(ids), np.array(lengths), stream, info)
    return part, samples


@pytest.mark.parametrize("pad", ["repeat", "zero"])
def test_batches_are_fitted_like_one_sample_at_a_time(tmp_path, pad):
    lengths = [3, 7, 12, 30, 7, 1]  # shorter and longer than T = 12, one of exactly T
    part, samples = ragged_part(tmp_path, lengths, 12, pad)
    order = np.array([4, 0, 5, 3, 1, 2])
    x, _, _ = part[order]
    expected = np.stack([fit_length(samples[i], 12, pad, axis=1) for i in order])  # (B, C, T, V, M)
    np.testing.assert_array_equal(x.numpy(), expected)
    bone, _ = ragged_part(tmp_path / "..", lengths, 12, pad, stream="bone")
    np.testing.assert_array_equal(bone[order][0].numpy(), bone_features(expected, NTU25))  # bone of the fitted joints


def test_float16_storage_is_half_the_bytes_and_close(tmp_path):
    lengths = [40, 80, 120]
    full, samples = ragged_part(tmp_path, lengths, 100, "repeat", "float32")
    half, _ = ragged_part(tmp_path, lengths, 100, "repeat", "float16")
    assert half.path.stat().st_size < 0.6 * full.path.stat().st_size
    a, b = full[[0, 1, 2]][0].numpy(), half[[0, 1, 2]][0].numpy()
    assert b.dtype == np.float32
    # float16 keeps 11 significant bits: relative error <= 2**-11 (below 6.1e-5, subnormals: 2**-25 absolute)
    np.testing.assert_allclose(b, a, rtol=2.0**-11, atol=2.0**-25)
    np.testing.assert_array_equal(b[:, 3], a[:, 3])


def test_a_row_whose_bytes_disagree_with_n_frames_is_named(tmp_path):
    part, _ = ragged_part(tmp_path, [4, 5], 8, "repeat")
    wrong = SkeletonPart(part.path, part.rows, part.y, part.ids, np.array([4, 6]), "joint", part.info)
    with pytest.raises(InterimFormatError, match=r"row 1 holds 4000 bytes, n_frames 6 needs 4800"):
        wrong[[0, 1]]
