"""Per-sample normalisation of a skeleton sequence (pure numpy, no files).

The paper prepares its input "in the same fashion as Si et al. 2018": subtract the centre
joint, divide by the body height, pad every sequence to T frames by repeating it, and add a
visibility channel. This module is that math, on one sample at a time, in the readers'
frame-major layout:

    coords  (F, M, V, D)   float  joint coordinates, D = 3 (NTU, metres) or 2 (Kinetics)
    valid   (F, M, V)      bool   the joint of that person exists in that frame
    extra   (F, M, V)      float  the 4th/3rd channel: NTU visibility, Kinetics confidence

`prepare_sample` composes the steps and returns the model layout `(C, T, V, M)` float32 with
C = D + 1 (or D without an extra channel). Absent joints and persons stay exactly 0 in every
coordinate channel after every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

# A body-height definition: groups of alternative segments (v1, v2), 0-based. The length of
# a segment is its mean over the frames where person 0 has both joints; a group is the mean
# of its observed alternatives (left/right sides); the height is the sum over the groups that
# were observed at all. Chains run head-to-ankle along the skeleton, so the height does not
# shrink when the person sits or bends.
HeightSegments = Sequence[Sequence[tuple[int, int]]]

NTU_HEIGHT: tuple[tuple[tuple[int, int], ...], ...] = (
    ((3, 2),),  # head - neck
    ((2, 20),),  # neck - spine shoulder
    ((20, 1),),  # spine shoulder - spine mid
    ((1, 0),),  # spine mid - spine base
    ((0, 12), (0, 16)),  # spine base - hip (left, right)
    ((12, 13), (16, 17)),  # hip - knee
    ((13, 14), (17, 18)),  # knee - ankle
)

OPENPOSE_HEIGHT: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 1),),  # nose - neck
    ((1, 8), (1, 11)),  # neck - hip (right, left)
    ((8, 9), (11, 12)),  # hip - knee
    ((9, 10), (12, 13)),  # knee - ankle
)

MIN_HEIGHT = 1e-6  # below this the sample is not scaled (a degenerate or unobserved body)


@dataclass(frozen=True)
class NormalizeSpec:
    """Everything `prepare_sample` needs besides the arrays.

    center_joint: 0-based joint subtracted per frame (of person 0) from every person.
    height: segment groups of `body_height`, or None to skip the division.
    frames: T of the output. pad: "repeat" tiles a short sequence, "zero" appends zeros.
    rotate: apply MS-G3D's two alignment rotations (3-D only).
    """

    center_joint: int
    height: HeightSegments | None
    frames: int
    pad: Literal["repeat", "zero"] = "repeat"
    rotate: bool = False


def valid_from_coords(coords: np.ndarray) -> np.ndarray:
    """(F, M, V, D) -> (F, M, V) bool: a joint exists where any coordinate is non-zero.

    This is the NTU convention (readers write absent bodies as zeros).
    """
    return np.any(coords != 0, axis=-1)


def trim_empty_frames(valid: np.ndarray) -> slice:
    """(F, M, V) bool -> the slice of frames from the first to the last frame with any joint.

    Returns slice(0, 0) when no frame has a joint.
    """
    any_joint = valid.reshape(valid.shape[0], -1).any(axis=1)  # (F,)
    idx = np.flatnonzero(any_joint)
    if idx.size == 0:
        return slice(0, 0)
    return slice(int(idx[0]), int(idx[-1]) + 1)


def _fill_nearest(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """(F, D) values, (F,) ok -> (F, D): rows where not ok take the nearest ok row.

    Ties go to the earlier frame. `ok` must have at least one True.
    """
    idx = np.flatnonzero(ok)
    pos = np.searchsorted(idx, np.arange(len(ok)))  # index of the first ok frame >= t
    left = idx[np.clip(pos - 1, 0, len(idx) - 1)]
    right = idx[np.clip(pos, 0, len(idx) - 1)]
    t = np.arange(len(ok))
    nearest = np.where(np.abs(t - left) <= np.abs(right - t), left, right)
    return values[nearest]


def center_trajectory(coords: np.ndarray, valid: np.ndarray, joint: int) -> np.ndarray:
    """(F, M, V, D), (F, M, V) -> (F, D): the centre of each frame.

    The centre is `joint` of person 0. Frames where person 0 lacks that joint take it from the
    nearest frame that has it. If person 0 never has it, the mean of person 0's valid joints is
    used the same way; if person 0 has no joint at all, the first person that has joints.
    """
    n_frames, n_persons = coords.shape[:2]
    ok = valid[:, 0, joint]
    if ok.any():
        return _fill_nearest(coords[:, 0, joint], ok)
    for m in range(n_persons):
        per_frame = valid[:, m].sum(axis=1)  # (F,)
        if per_frame.any():
            mean = (coords[:, m] * valid[:, m, :, None]).sum(axis=1) / np.maximum(per_frame, 1)[:, None]
            return _fill_nearest(mean, per_frame > 0)
    return np.zeros((n_frames, coords.shape[-1]), dtype=coords.dtype)


def subtract_center(coords: np.ndarray, valid: np.ndarray, joint: int) -> np.ndarray:
    """(F, M, V, D) -> (F, M, V, D): coordinates relative to `center_trajectory`; absent joints stay 0."""
    center = center_trajectory(coords, valid, joint)  # (F, D)
    return (coords - center[:, None, None, :]) * valid[..., None]


def body_height(coords: np.ndarray, valid: np.ndarray, segments: HeightSegments) -> float:
    """(F, M, V, D), (F, M, V) -> the skeletal height of person 0 (see `NTU_HEIGHT`).

    Each segment's length is averaged over the frames where person 0 has both of its joints.
    Returns 0.0 when no segment was ever observed.
    """
    pairs = [pair for group in segments for pair in group]
    a = np.array([p for p, _ in pairs], dtype=np.int64)
    b = np.array([q for _, q in pairs], dtype=np.int64)
    p0 = coords[:, 0]  # (F, V, D)
    ok = valid[:, 0]  # (F, V)
    both = ok[:, a] & ok[:, b]  # (F, S)
    lengths = np.linalg.norm(p0[:, a] - p0[:, b], axis=-1) * both  # (F, S)
    seen = both.sum(axis=0)  # (S,) frames that show each segment
    mean = lengths.sum(axis=0) / np.maximum(seen, 1)  # (S,)
    total, s = 0.0, 0
    for group in segments:
        k = len(group)
        observed = seen[s : s + k] > 0
        if observed.any():
            total += float(mean[s : s + k][observed].mean())
        s += k
    return total


def rotation_to(v: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3,), (3,) -> (3, 3) rotation matrix R with R @ v parallel to `target`.

    Axis-angle (Rodrigues) about cross(v, target); identity when the axis or the angle is
    below 1e-6 (already aligned, opposite, or a zero vector).
    """
    v = np.asarray(v, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    axis = np.cross(v, target)
    axis_norm = np.linalg.norm(axis)
    norms = np.linalg.norm(v) * np.linalg.norm(target)
    if axis_norm < 1e-6 or norms < 1e-12:
        return np.eye(3)
    angle = np.arctan2(axis_norm, float(np.dot(v, target)))
    if abs(angle) < 1e-6:
        return np.eye(3)
    k = axis / axis_norm
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * (kx @ kx)


def msg3d_rotate(
    coords: np.ndarray,
    valid: np.ndarray,
    spine: tuple[int, int] = (0, 1),
    shoulders: tuple[int, int] = (4, 8),
) -> np.ndarray:
    """MS-G3D's pre_normalization steps 3-4 on (F, M, V, 3) -> (F, M, V, 3).

    First rotate so that person 0's spine vector spine[0] -> spine[1] (NTU spine base -> spine
    mid) in the first frame where both exist is parallel to +z; then so that the shoulder vector
    shoulders[0] -> shoulders[1] (left -> right shoulder) of that frame is parallel to +x.
    The same rotation applies to every frame and person; absent joints stay 0.
    """
    if coords.shape[-1] != 3:
        raise ValueError(f"msg3d_rotate needs 3-D coordinates, got D = {coords.shape[-1]}")
    out = coords.astype(np.float64, copy=True)
    for (a, b), target in ((spine, (0.0, 0.0, 1.0)), (shoulders, (1.0, 0.0, 0.0))):
        both = valid[:, 0, a] & valid[:, 0, b]
        if not both.any():
            continue
        t0 = int(np.argmax(both))
        rot = rotation_to(out[t0, 0, b] - out[t0, 0, a], np.array(target))
        out = out @ rot.T  # (F, M, V, 3): each row vector x -> R x
    out *= valid[..., None]
    return out.astype(coords.dtype, copy=False)


def length_index(n: int, frames: int, pad: Literal["repeat", "zero"]) -> np.ndarray:
    """Source frame of each of `frames` output frames for a sequence of n frames; -1 = a zero frame.

    Shorter: "repeat" tiles the sequence (0, 1, ..., n-1, 0, 1, ...) and cuts at `frames`;
    "zero" appends zero frames. Longer: uniform temporal resampling, frame
    round(i * (n - 1) / (frames - 1)) for i = 0..frames-1 (first and last frames kept).
    """
    if n <= 0:
        raise ValueError("cannot fit an empty sequence to a length")
    if n >= frames:
        if frames == 1:
            return np.zeros(1, dtype=np.int64)
        return np.floor(np.arange(frames) * (n - 1) / (frames - 1) + 0.5).astype(np.int64)
    if pad == "repeat":
        return np.arange(frames) % n
    return np.where(np.arange(frames) < n, np.arange(frames), -1)


def length_indices(lengths: np.ndarray, frames: int, pad: Literal["repeat", "zero"]) -> np.ndarray:
    """`length_index` of every sequence length in `lengths` (B,) at once -> (B, frames) int64.

    Row b equals `length_index(lengths[b], frames, pad)` exactly (same integer and float64
    arithmetic), so batches fitted at load time hold the values a per-sample fit would.
    """
    n = np.asarray(lengths, dtype=np.int64)[:, None]  # (B, 1)
    if n.size and n.min() <= 0:
        raise ValueError("cannot fit an empty sequence to a length")
    t = np.arange(frames, dtype=np.int64)[None, :]  # (1, frames)
    if frames == 1:
        longer = np.zeros((n.shape[0], 1), dtype=np.int64)
    else:
        longer = np.floor(t * (n - 1) / (frames - 1) + 0.5).astype(np.int64)  # (B, frames)
    shorter = t % n if pad == "repeat" else np.where(t < n, t, -1)  # (B, frames)
    return np.where(n >= frames, longer, shorter)


def fit_frames(values: np.ndarray, lengths: np.ndarray, frames: int, pad: Literal["repeat", "zero"]) -> np.ndarray:
    """Concatenated sequences -> one batch fitted to `frames`: (F, C, V, M) -> (B, C, frames, V, M).

    values: the frames of B samples one after another, frame-major, F = sum(lengths);
    lengths: (B,) frames of each sample. Each sample is fitted by `length_indices` (repeat or
    zero padding, uniform resampling when longer), in one gather whose output is already in
    the model layout. The output has values' dtype.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    f, c, v, m = values.shape
    if int(lengths.sum()) != f:
        raise ValueError(f"fit_frames: lengths sum to {int(lengths.sum())} but {f} frames were given")
    b = len(lengths)
    idx = length_indices(lengths, frames, pad)  # (B, frames), -1 = zero frame
    starts = np.cumsum(lengths) - lengths  # (B,) first frame of each sample
    src = starts[:, None] + np.maximum(idx, 0)  # (B, frames) frame in `values`
    rows = src[:, None, :] * c + np.arange(c)[None, :, None]  # (B, C, frames) row of values as (F*C, V*M)
    out = np.empty((b, c, frames, v, m), dtype=values.dtype)
    np.take(values.reshape(f * c, v * m), rows.reshape(-1), axis=0, out=out.reshape(b * c * frames, v * m))
    zero = idx < 0  # (B, frames)
    if zero.any():
        out.transpose(0, 2, 1, 3, 4)[zero] = 0  # (B, frames, C, V, M) view, masked frames
    return out


def fit_length(
    x: np.ndarray, frames: int, pad: Literal["repeat", "zero"], axis: int = 0, out: np.ndarray | None = None
) -> np.ndarray:
    """Resize `x` to `frames` along `axis` by `length_index` (repeat/zero padding, resampling).

    Returns `x` itself when it already has that length and no `out` is given; otherwise writes
    into `out` (same shape as the result) when given.
    """
    n = x.shape[axis]
    if n == frames and out is None:
        return x
    idx = length_index(n, frames, pad)
    if out is None:
        shape = list(x.shape)
        shape[axis] = frames
        out = np.empty(shape, dtype=x.dtype)
    src = np.maximum(idx, 0)
    np.take(x, src, axis=axis, out=out)
    if (idx < 0).any():
        sl = [slice(None)] * x.ndim
        sl[axis] = idx < 0
        out[tuple(sl)] = 0
    return out


def normalize_sequence(
    coords: np.ndarray,
    valid: np.ndarray,
    extra: np.ndarray | None,
    spec: NormalizeSpec,
) -> np.ndarray:
    """One sample, before fitting its length -> (C, F', V, M) float32, F' = frames kept.

    coords (F, M, V, D) and valid (F, M, V) as in the module docstring; extra (F, M, V) or None.
    Steps: trim leading/trailing frames without any joint; subtract the centre joint;
    optionally rotate (MS-G3D); divide by the body height (skipped when it is below
    `MIN_HEIGHT`); stack the extra channel as the last channel. Raises ValueError when no
    frame has a joint.
    """
    keep = trim_empty_frames(valid)
    coords, valid = coords[keep], valid[keep]
    if coords.shape[0] == 0:
        raise ValueError("no frame has a valid joint")
    x = subtract_center(coords.astype(np.float64), valid, spec.center_joint)  # (F', M, V, D)
    if spec.rotate:
        x = msg3d_rotate(x, valid)
    if spec.height is not None:
        h = body_height(x, valid, spec.height)
        if h >= MIN_HEIGHT:
            x = x / h
    n_frames, persons, joints, dims = x.shape
    channels = dims + (extra is not None)
    sample = np.empty((channels, n_frames, joints, persons), dtype=np.float32)  # (C, F', V, M)
    sample[:dims] = x.transpose(3, 0, 2, 1)  # (F', M, V, D) -> (D, F', V, M)
    if extra is not None:
        sample[dims] = extra[keep].transpose(0, 2, 1)  # (F', M, V) -> (F', V, M)
    return sample


def prepare_sample(
    coords: np.ndarray,
    valid: np.ndarray,
    extra: np.ndarray | None,
    spec: NormalizeSpec,
) -> tuple[np.ndarray, int]:
    """One sample -> ((C, T, V, M) float32, frames kept before padding).

    `normalize_sequence`, then `fit_length` to `spec.frames` along T.
    """
    sample = normalize_sequence(coords, valid, extra, spec)  # (C, F', V, M)
    return fit_length(sample, spec.frames, spec.pad, axis=1), sample.shape[1]  # (C, T, V, M)
