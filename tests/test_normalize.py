"""Per-sample normalisation on hand-built skeletons (no files)."""

from __future__ import annotations

import numpy as np
import pytest

from stf.data.normalize import (
    NTU_HEIGHT,
    NormalizeSpec,
    body_height,
    center_trajectory,
    fit_frames,
    fit_length,
    length_index,
    length_indices,
    msg3d_rotate,
    prepare_sample,
    rotation_to,
    trim_empty_frames,
    valid_from_coords,
)


def standing_person(frames: int, offset=(0.0, 0.0, 3.0), scale: float = 1.0) -> np.ndarray:
    """(F, 25, 3) NTU-like skeleton: a vertical head-to-ankle chain, slowly moving in x."""
    v = np.zeros((25, 3))
    heights = {
        3: 1.6,
        2: 1.5,
        20: 1.4,
        1: 1.2,
        0: 1.0,  # head .. spine base
        12: 0.95,
        16: 0.95,
        13: 0.5,
        17: 0.5,
        14: 0.1,
        18: 0.1,  # hips, knees, ankles
    }
    for j in range(25):
        v[j] = (0.0 if j in heights else 0.05 * (j % 5) + 0.2, heights.get(j, 1.3), 0.0)
    v[12, 0], v[16, 0] = -0.1, 0.1  # hips to the sides: spine base -> hip is not vertical
    v[13, 0], v[14, 0] = -0.1, -0.1
    v[17, 0], v[18, 0] = 0.1, 0.1
    seq = np.stack([v + np.array([0.01 * t, 0.0, 0.0]) for t in range(frames)])
    return seq * scale + np.asarray(offset)


def two_person_sample(frames: int = 10) -> tuple[np.ndarray, np.ndarray]:
    coords = np.zeros((frames, 2, 25, 3))
    coords[:, 0] = standing_person(frames)
    coords[:, 1] = standing_person(frames, offset=(1.0, 0.0, 3.5))
    return coords, valid_from_coords(coords)


def spec(**kw) -> NormalizeSpec:
    base = dict(center_joint=1, height=NTU_HEIGHT, frames=16, pad="repeat")
    base.update(kw)
    return NormalizeSpec(**base)


def test_center_joint_of_person_zero_becomes_origin_for_every_frame():
    coords, valid = two_person_sample()
    out, n = prepare_sample(coords, valid, valid.astype(np.float32), spec(frames=10, height=None))
    assert out.shape == (4, 10, 25, 2)  # (C, T, V, M)
    assert n == 10
    np.testing.assert_allclose(out[:3, :, 1, 0], 0.0, atol=1e-6)
    # person 1 is shifted by the same per-frame centre, not by its own
    expected = coords[:, 1, 1] - coords[:, 0, 1]  # (F, 3)
    np.testing.assert_allclose(out[:3, :, 1, 1].T, expected, atol=1e-5)


def test_height_becomes_one_whatever_the_body_size():
    for scale in (0.5, 1.0, 2.3):
        coords = np.zeros((8, 2, 25, 3))
        coords[:, 0] = standing_person(8, scale=scale)
        valid = valid_from_coords(coords)
        out, _ = prepare_sample(coords, valid, None, spec(frames=8))
        xyz = out.transpose(1, 3, 2, 0)  # (C, T, V, M) -> (T, M, V, C)
        assert body_height(xyz, valid, NTU_HEIGHT) == pytest.approx(1.0, rel=1e-5)


def test_height_is_skeletal_length_not_head_to_floor():
    coords = np.zeros((4, 1, 25, 3))
    coords[:, 0] = standing_person(4)
    valid = valid_from_coords(coords)
    h = body_height(coords, valid, NTU_HEIGHT)
    spine = 0.1 + 0.1 + 0.2 + 0.2
    leg = np.hypot(0.1, 0.05) + 0.45 + 0.4
    assert h == pytest.approx(spine + leg, rel=1e-6)
    # sitting down (knees bent forward) keeps the same height
    sit = coords.copy()
    sit[:, 0, [13, 17], 1] = 0.95
    sit[:, 0, [13, 17], 2] += 0.45
    sit[:, 0, [14, 18], 1] = 0.55
    sit[:, 0, [14, 18], 2] += 0.45
    assert body_height(sit, valid_from_coords(sit), NTU_HEIGHT) == pytest.approx(h, rel=1e-6)


def test_degenerate_height_leaves_scale_untouched():
    coords = np.zeros((3, 1, 25, 3))
    coords[:, 0, 1] = (2.0, 1.0, 3.0)  # only the centre and a hand are seen: no height segment
    coords[:, 0, 7] = (1.5, 1.0, 3.0)
    valid = valid_from_coords(coords)
    assert body_height(coords, valid, NTU_HEIGHT) == 0.0
    out, _ = prepare_sample(coords, valid, None, spec(frames=3))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, :, 7, 0].T, [[-0.5, 0, 0]] * 3)


def test_repeat_padding_repeats_the_sequence():
    coords, valid = two_person_sample(frames=5)
    out, n = prepare_sample(coords, valid, valid.astype(np.float32), spec(frames=12))
    assert n == 5
    np.testing.assert_array_equal(out[:, 5:10], out[:, 0:5])
    np.testing.assert_array_equal(out[:, 10:12], out[:, 0:2])


def test_zero_padding_appends_zeros_including_visibility():
    coords, valid = two_person_sample(frames=5)
    out, _ = prepare_sample(coords, valid, valid.astype(np.float32), spec(frames=12, pad="zero"))
    assert np.all(out[:, 5:] == 0)
    assert np.all(out[3, :5] == 1)


def test_longer_sequences_are_resampled_uniformly_keeping_ends():
    x = np.arange(10)[:, None].astype(np.float32)  # (F=10, 1)
    out = fit_length(x, 4, "repeat")
    np.testing.assert_array_equal(out[:, 0], [0, 3, 6, 9])
    assert fit_length(x, 10, "zero") is x


@pytest.mark.parametrize("pad", ["repeat", "zero"])
def test_batched_fit_equals_the_per_sample_fit(pad):
    lengths = np.array([1, 2, 5, 17, 64, 65, 299, 300, 301, 1000])
    for frames in (1, 17, 64, 300):
        rows = length_indices(lengths, frames, pad)
        for n, row in zip(lengths, rows, strict=True):
            np.testing.assert_array_equal(row, length_index(int(n), frames, pad))
    rng = np.random.default_rng(0)
    lengths = np.array([3, 9, 20, 9, 1])
    samples = [rng.normal(size=(n, 2, 4, 2)).astype(np.float32) for n in lengths]  # (F, C, V, M) each
    batch = fit_frames(np.concatenate(samples), lengths, 9, pad)  # (B, C, 9, V, M)
    expected = np.stack([fit_length(s.transpose(1, 0, 2, 3), 9, pad, axis=1) for s in samples])
    np.testing.assert_array_equal(batch, expected)
    with pytest.raises(ValueError, match="lengths sum to 42 but 40 frames"):
        fit_frames(np.concatenate(samples)[:40], lengths, 9, pad)


def test_visibility_channel_marks_present_joints_and_absent_person():
    coords = np.zeros((6, 2, 25, 3))
    coords[:, 0] = standing_person(6)
    coords[2:4, 1] = standing_person(2, offset=(1, 0, 3))  # second person only in frames 2-3
    valid = valid_from_coords(coords)
    out, _ = prepare_sample(coords, valid, valid.astype(np.float32), spec(frames=6, height=None))
    vis = out[3]  # (T, V, M)
    assert np.all(vis[:, :, 0] == 1)
    assert np.all(vis[2:4, :, 1] == 1)
    assert np.all(vis[[0, 1, 4, 5], :, 1] == 0)
    assert np.all(out[:3, [0, 1, 4, 5], :, 1] == 0)  # absent person stays exactly 0


def test_leading_and_trailing_empty_frames_are_trimmed():
    coords = np.zeros((9, 2, 25, 3))
    coords[2:7, 0] = standing_person(5)
    valid = valid_from_coords(coords)
    assert trim_empty_frames(valid) == slice(2, 7)
    out, n = prepare_sample(coords, valid, valid.astype(np.float32), spec(frames=10))
    assert n == 5
    assert np.all(out[3, :, :, 0] == 1)  # repeat padding never reaches an empty frame


def test_all_empty_sample_is_an_error():
    coords = np.zeros((4, 2, 25, 3))
    with pytest.raises(ValueError, match="no frame"):
        prepare_sample(coords, valid_from_coords(coords), None, spec())


def test_missing_center_takes_the_nearest_frame():
    coords = np.zeros((5, 1, 25, 3))
    coords[:, 0] = standing_person(5)
    valid = valid_from_coords(coords)
    valid[1, 0, 1] = False  # centre joint lost in frame 1 and 3
    valid[3, 0, 1] = False
    c = center_trajectory(coords, valid, 1)
    np.testing.assert_allclose(c[1], coords[0, 0, 1])  # tie -> earlier frame
    np.testing.assert_allclose(c[3], coords[2, 0, 1])
    np.testing.assert_allclose(c[4], coords[4, 0, 1])


def test_rotation_to_aligns_and_preserves_length():
    rng = np.random.default_rng(0)
    for _ in range(20):
        v, t = rng.normal(size=3), rng.normal(size=3)
        r = rotation_to(v, t)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-9)
        w = r @ v
        np.testing.assert_allclose(w / np.linalg.norm(w), t / np.linalg.norm(t), atol=1e-9)
    np.testing.assert_array_equal(rotation_to(np.array([0, 0, 2.0]), np.array([0, 0, 1.0])), np.eye(3))


def test_msg3d_rotation_puts_shoulders_on_x_and_keeps_distances():
    rng = np.random.default_rng(1)
    coords, valid = two_person_sample(frames=4)
    coords = coords + rng.normal(scale=0.05, size=coords.shape)
    a = rotation_to(np.array([0.3, 1.0, 0.2]), np.array([0.1, -0.4, 1.0]))
    coords = coords @ a.T  # an arbitrary camera rotation
    coords[:, 1, :, :] *= valid[:, 1, :, None]
    out = msg3d_rotate(coords, valid)
    shoulder = out[0, 0, 8] - out[0, 0, 4]
    assert shoulder[0] > 0
    np.testing.assert_allclose(shoulder[1:], 0.0, atol=1e-9)
    d_before = np.linalg.norm(coords[:, :, 3] - coords[:, :, 0], axis=-1)
    d_after = np.linalg.norm(out[:, :, 3] - out[:, :, 0], axis=-1)
    np.testing.assert_allclose(d_after, d_before, rtol=1e-9)
