"""NTU RGB+D `.skeleton` files: vectorised reader, writer, sample ids, body selection.

The format (one value per whitespace-separated token, LF or CRLF line ends):

    <frames>
    per frame:   <bodies>
      per body:  <bodyID> <clipedEdges> <handLeftConfidence> <handLeftState>
                 <handRightConfidence> <handRightState> <isRestricted> <leanX> <leanY> <trackingState>
                 <joints = 25>
                 25 x: <x> <y> <z> <depthX> <depthY> <colorX> <colorY> <oriW> <oriX> <oriY> <oriZ> <trackingState>

Only x, y, z (camera space, metres) are returned. `read_skeleton` reads the file as bytes
and never steps through joints in Python:

1. every byte must belong to a number or whitespace (one `bytes.translate`);
2. the fast path (`_fast_parse`) finds all whitespace with one numpy pass, derives the values
   per line, checks the whole count structure with array operations, and converts the x, y, z
   tokens (and the bodyIDs) with one Arrow cast over the file's own bytes (correctly rounded,
   equal to Python's `float`);
3. a file the fast path does not take (irregular whitespace, blank lines, or any error) goes to
   `_careful_parse`, a plain line-by-line reader that accepts the same files and names the first
   problem: non-numeric or non-finite value, wrong joint count, wrong number of values on a
   line, a count the remaining lines cannot hold (truncated file, bogus header), trailing data.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stf.io import atomic_path

log = logging.getLogger(__name__)

__all__ = [
    "NUM_JOINTS",
    "NtuSkeleton",
    "SampleId",
    "SkeletonFormatError",
    "parse_sample_id",
    "read_missing_list",
    "read_skeleton",
    "select_bodies",
    "write_skeleton",
]

NUM_JOINTS = 25
JOINT_FIELDS = 12
BODY_FIELDS = 10
_BODY_LINES = 2 + NUM_JOINTS  # info line, joint count, joints


class SkeletonFormatError(ValueError):
    """A `.skeleton` file (or missing-sample list) is malformed; the message starts with its path."""


# --------------------------------------------------------------------------- sample ids

_SAMPLE_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


class SampleId(NamedTuple):
    """The five 1-based fields of an NTU name `SsssCcccPpppRrrrAaaa`."""

    setup: int
    camera: int
    performer: int
    replication: int
    action: int


def parse_sample_id(name: str) -> SampleId:
    """Parse `SsssCcccPpppRrrrAaaa` (a trailing `.skeleton` is allowed); ValueError otherwise.

    Every field must be 3 digits and at least 1.
    """
    stem = name.removesuffix(".skeleton")
    match = _SAMPLE_RE.fullmatch(stem)
    if match is None:
        raise ValueError(f"{name!r} is not an NTU sample name (SsssCcccPpppRrrrAaaa, e.g. S001C002P003R002A013)")
    sid = SampleId(*(int(g) for g in match.groups()))
    if min(sid) < 1:
        raise ValueError(f"{name!r}: NTU id fields start at 1, got {tuple(sid)}")
    return sid


# --------------------------------------------------------------------------- the parsed file


@dataclass
class NtuSkeleton:
    """One parsed `.skeleton` file.

    name: file stem, e.g. "S001C001P001R001A001".
    xyz: float32 (frames, bodies, 25, 3); bodies in file order within each frame, slots
        beyond a frame's body count are zero; bodies = the largest body count of any frame
        (capped by `read_skeleton(max_bodies=...)`).
    body_counts: int64 (frames,), bodies per frame as written in the file (not capped).
    body_ids: per frame, the bodyIDs in file order (not capped).
    """

    name: str
    xyz: np.ndarray
    body_counts: np.ndarray
    body_ids: list[list[int]]

    @property
    def sample_id(self) -> SampleId:
        """The parsed name; ValueError when the name is not `SsssCcccPpppRrrrAaaa`."""
        return parse_sample_id(self.name)

    @property
    def setup(self) -> int:
        return self.sample_id.setup

    @property
    def camera(self) -> int:
        return self.sample_id.camera

    @property
    def performer(self) -> int:
        return self.sample_id.performer

    @property
    def replication(self) -> int:
        return self.sample_id.replication

    @property
    def action(self) -> int:
        """1-based action number as in the name (label = action - 1)."""
        return self.sample_id.action


# --------------------------------------------------------------------------- reader

# Bytes a `.skeleton` file may hold: digits, the other characters of a decimal or exponent
# number, and whitespace. Anything else (letters, "nan", "inf", control bytes) is rejected first.
_NUMERIC_BYTES = b"0123456789.+-eE \t\n\r\v\f"
_BAD_BYTE = re.compile(rb"[^0-9.+\-eE \t\n\r\v\f]")
_WHITESPACE = (b" ", b"\t", b"\n", b"\r", b"\v", b"\f")
_INT_TOKEN = re.compile(rb"-?\d{1,30}")
_MAX_COUNT_DIGITS = 12


class _Problem(Exception):
    """Internal: what is wrong, at which 1-based line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class _Parsed:
    frames: int
    bodies: np.ndarray  # float32 (bodies_total, 25, 3): x, y, z of every body block, file order
    body_frame: np.ndarray  # int64 (bodies_total,): frame of each block
    body_slot: np.ndarray  # int64 (bodies_total,): position of the block within its frame
    body_counts: list[int]
    body_ids: list[list[int]]


def _arrow_numbers(data: bytes, starts: np.ndarray, ends: np.ndarray, kind: pa.DataType) -> np.ndarray | None:
    """Convert the tokens data[starts[i]:ends[i]] (K of them, in file order, not overlapping)
    with one Arrow cast; float64 or int64 (K,), or None when one does not parse.

    The file's bytes become an Arrow string array without copying: the elements are
    token 0, gap 0, token 1, gap 1, ..., the gaps marked null, so the cast reads exactly the K
    tokens. Arrow's decimal parsing is correctly rounded (the same value as Python's float).
    """
    k = len(starts)
    if k == 0:
        return np.zeros(0, dtype=kind.to_pandas_dtype())
    bounds = np.empty(2 * k + 1, dtype=np.int64)  # element e = data[bounds[e] : bounds[e + 1]]
    bounds[0:-1:2] = starts
    bounds[1::2] = ends
    bounds[-1] = ends[-1]
    valid = pa.py_buffer(b"\x55" * ((2 * k + 7) // 8))  # bits 1, 0, 1, 0, ...: tokens valid, gaps null
    text = pa.LargeStringArray.from_buffers(2 * k, pa.py_buffer(bounds), pa.py_buffer(data), valid, null_count=k)
    try:
        parsed = pc.cast(text, kind)
    except pa.ArrowInvalid:
        return None
    return np.frombuffer(parsed.buffers()[1], dtype=kind.to_pandas_dtype(), count=2 * k)[0::2]


def _small_counts(data: bytes, b: np.ndarray, ls: np.ndarray, le: np.ndarray) -> np.ndarray:
    """int64 (n,): value of each 1-value line [ls, le) that is a non-negative integer, else -1.

    One and two digit counts (bodies per frame, joints = 25) are read with numpy; longer ones
    (the frame count) with Python's int.
    """
    length = le - ls
    out = np.full(len(ls), -1, dtype=np.int64)
    d0 = b[ls].astype(np.int64) - 48
    d1 = b[np.minimum(ls + 1, len(b) - 1)].astype(np.int64) - 48
    ok0 = (d0 >= 0) & (d0 <= 9)
    ok1 = (d1 >= 0) & (d1 <= 9)
    one = (length == 1) & ok0
    two = (length == 2) & ok0 & ok1
    out[one] = d0[one]
    out[two] = d0[two] * 10 + d1[two]
    for i in np.flatnonzero((length > 2) & (length <= _MAX_COUNT_DIGITS)).tolist():
        raw = data[ls[i] : le[i]]
        if raw.isdigit():
            out[i] = int(raw)
    return out


def _fast_parse(data: bytes) -> _Parsed | None:
    """The vectorised parser for canonical files: values separated by single spaces, LF or CRLF
    line ends, no blank lines, no other whitespace. No Python step per joint.

    Returns None when the file is not canonical or anything does not fit the format; the
    careful parser then takes over (and names the problem).
    """
    b = np.frombuffer(data, dtype=np.uint8)
    size = len(b)
    sep = np.flatnonzero(b <= 32)  # (m,) offsets of all whitespace / control bytes
    m = len(sep)
    if m == 0 or sep[0] == 0 or b[-1] == 32 or b[-1] == 13:
        return None
    kind = b[sep]  # (m,) which separator
    is_nl = kind == 10
    is_cr = kind == 13
    touching = np.diff(sep) == 1  # (m-1,) two separators side by side
    n_cr = np.count_nonzero(is_cr)
    # canonical: only ' ', '\n', '\r'; the only separators side by side are CR + LF
    if (
        np.count_nonzero(kind == 32) + np.count_nonzero(is_nl) + n_cr != m
        or np.count_nonzero(touching) != n_cr
        or np.count_nonzero(touching & is_cr[:-1] & is_nl[1:]) != n_cr
    ):
        return None

    # ---- lines (line i ends at the i-th LF; the last one at the end of the file)
    nl = np.flatnonzero(is_nl)  # (k,) separator index of each LF
    cr_end = np.zeros(len(nl), dtype=np.int64)
    cr_end[nl > 0] = is_cr[nl[nl > 0] - 1]
    line_start = np.concatenate(([0], sep[nl] + 1))  # (k+1,) byte offsets
    line_end = np.concatenate((sep[nl] - cr_end, [size]))  # (k+1,) exclusive, without the CR
    first_sep = np.concatenate(([0], nl + 1))  # (k+1,) first separator after the line start
    count = np.concatenate((nl - cr_end, [m])) - first_sep + 1  # (k+1,) values per line
    if line_end[-1] == line_start[-1]:  # the file ends with a line break
        line_start, line_end, first_sep, count = line_start[:-1], line_end[:-1], first_sep[:-1], count[:-1]
    if len(count) == 0 or (line_end <= line_start).any() or count[0] != 1:
        return None  # blank lines go to the careful parser
    ls, le, fs = line_start, line_end, first_sep
    n = len(count)

    # ---- counts: the value of every 1-value line (-1 unless a non-negative integer)
    one = np.flatnonzero(count == 1)
    val = np.full(n, -1, dtype=np.int64)
    val[one] = _small_counts(data, b, ls[one], le[one])
    frames = int(val[0])
    if frames < 0 or (frames == 0 and n != 1):
        return None

    # ---- structure: info line (10 values), joint count 25, 25 joint lines of 12 values
    info = np.flatnonzero(count == BODY_FIELDS)  # (bodies,) line index
    if len(info) and info[-1] + _BODY_LINES > n:
        return None
    if not (val[info + 1] == NUM_JOINTS).all():
        return None
    joints = info[:, None] + (2 + np.arange(NUM_JOINTS))  # (bodies, 25)
    if not (count[joints] == JOINT_FIELDS).all():
        return None
    covered = np.zeros(n, dtype=bool)
    covered[0] = True
    covered[info] = True
    covered[info + 1] = True
    covered[joints.ravel()] = True
    frame_line = np.flatnonzero(~covered)  # (frames,) the body-count line of each frame
    if len(frame_line) != frames or (frames and frame_line[0] != 1):
        return None
    body_counts = val[frame_line]
    following = np.append(frame_line[1:], n)
    if (body_counts < 0).any() or not (following - frame_line - 1 == _BODY_LINES * body_counts).all():
        return None
    body_frame = np.searchsorted(frame_line, info) - 1
    body_slot = (info - frame_line[body_frame] - 1) // _BODY_LINES

    # ---- x, y, z: the first three values of each joint line; body IDs: the first of each info line
    jl = joints.ravel()  # (bodies*25,)
    spaces = sep[fs[jl][:, None] + np.arange(3)]  # (bodies*25, 3) first three spaces
    starts = np.concatenate([ls[jl, None], spaces[:, :2] + 1], axis=1)  # (bodies*25, 3)
    values = _arrow_numbers(data, starts.ravel(), spaces.ravel(), pa.float64())
    if values is None or not np.isfinite(values).all():
        return None
    ids = _arrow_numbers(data, ls[info], sep[fs[info]], pa.int64())
    if ids is None:
        return None
    offsets = np.concatenate(([0], np.cumsum(body_counts))).tolist()
    return _Parsed(
        frames=frames,
        bodies=values.reshape(-1, NUM_JOINTS, 3).astype(np.float32),
        body_frame=body_frame.astype(np.int64),
        body_slot=body_slot.astype(np.int64),
        body_counts=body_counts.tolist(),
        body_ids=[ids[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:], strict=True)],
    )


def _careful_parse(data: bytes) -> _Parsed:
    """Line-by-line parser for what the fast one declines: any whitespace, and on bad input a
    `_Problem` naming the first line that does not fit. Python per value, so only used then."""
    rows = [(i, toks) for i, line in enumerate(data.split(b"\n"), start=1) if (toks := line.split())]
    n = len(rows)
    if n == 0:
        raise _Problem(1, "empty file (no values)")

    def count_at(p: int, what: str) -> int:
        line, toks = rows[p]
        if len(toks) != 1:
            raise _Problem(line, f"expected {what} (1 value), found {len(toks)} values")
        if not toks[0].isdigit() or len(toks[0]) > _MAX_COUNT_DIGITS:
            raise _Problem(line, f"{what} must be a non-negative integer, found {_show(toks[0])}")
        return int(toks[0])

    frames = count_at(0, "the frame count")
    if frames > n - 1:
        raise _Problem(
            rows[0][0],
            f"header says {frames} frames but only {n - 1} non-empty lines follow (truncated or bogus count)",
        )
    bodies: list[list[float]] = []
    body_frame: list[int] = []
    body_slot: list[int] = []
    body_counts: list[int] = []
    body_ids: list[list[int]] = []
    p = 1
    for f in range(frames):
        if p >= n:
            raise _Problem(rows[-1][0] + 1, f"file ends before frame {f + 1} of {frames} (truncated)")
        nb = count_at(p, f"the body count of frame {f + 1}")
        if p + 1 + nb * _BODY_LINES > n:
            raise _Problem(
                rows[p][0],
                f"frame {f + 1} has {nb} bodies, which need {nb * _BODY_LINES} lines, but only "
                f"{n - p - 1} non-empty lines remain (truncated or bogus count)",
            )
        ids: list[int] = []
        q = p + 1
        for s in range(nb):
            line, toks = rows[q]
            if len(toks) != BODY_FIELDS:
                raise _Problem(
                    line,
                    f"expected the {BODY_FIELDS}-value info line of body {s + 1} in frame {f + 1}, "
                    f"found {len(toks)} values",
                )
            if not _INT_TOKEN.fullmatch(toks[0]):
                raise _Problem(line, f"bodyID must be an integer, found {_show(toks[0])}")
            ids.append(int(toks[0]))
            joints = count_at(q + 1, "the joint count")
            if joints != NUM_JOINTS:
                raise _Problem(rows[q + 1][0], f"wrong joint count {joints}, expected {NUM_JOINTS}")
            for line, toks in rows[q + 2 : q + _BODY_LINES]:
                if len(toks) != JOINT_FIELDS:
                    raise _Problem(line, f"expected {JOINT_FIELDS} values on a joint line, found {len(toks)}")
                bodies.append([_number(line, t) for t in toks[:3]])
            body_frame.append(f)
            body_slot.append(s)
            q += _BODY_LINES
        body_counts.append(nb)
        body_ids.append(ids)
        p = q
    if p < n:
        raise _Problem(rows[p][0], f"unexpected data after the last of {frames} frames")
    return _Parsed(
        frames=frames,
        bodies=np.asarray(bodies, dtype=np.float64).reshape(-1, NUM_JOINTS, 3).astype(np.float32),
        body_frame=np.asarray(body_frame, dtype=np.int64),
        body_slot=np.asarray(body_slot, dtype=np.int64),
        body_counts=body_counts,
        body_ids=body_ids,
    )


def _show(raw: bytes, limit: int = 24) -> str:
    text = raw[:limit].decode("ascii", errors="backslashreplace")
    return repr(text + ("..." if len(raw) > limit else ""))


def _number(line: int, raw: bytes) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise _Problem(line, f"non-numeric value {_show(raw)}") from None
    if not math.isfinite(value):
        raise _Problem(line, f"non-finite value {_show(raw)} (NaN/inf)")
    return value


def _check_bytes(data: bytes) -> None:
    """Reject any byte that cannot be part of a number or whitespace, naming its token."""
    if not data.translate(None, _NUMERIC_BYTES):
        return
    bad = _BAD_BYTE.search(data)
    assert bad is not None
    pos = bad.start()
    lo = max(data.rfind(w, 0, pos) for w in _WHITESPACE) + 1
    hi = min((i for i in (data.find(w, pos) for w in _WHITESPACE) if i >= 0), default=len(data))
    line = data.count(b"\n", 0, pos) + 1
    _number(line, data[lo:hi])  # names NaN/inf as such
    raise _Problem(line, f"non-numeric value {_show(data[lo:hi])}")


def _parse(data: bytes) -> _Parsed:
    _check_bytes(data)
    return _fast_parse(data) or _careful_parse(data)


def read_skeleton(path: Path | str, max_bodies: int | None = None) -> NtuSkeleton:
    """Parse one `.skeleton` file.

    path: the file (LF or CRLF line ends; blank lines and extra whitespace are tolerated).
    max_bodies: keep at most this many body slots in `xyz` (None = all).
    Returns an `NtuSkeleton`, `xyz` float32 (frames, bodies, 25, 3).
    Raises `SkeletonFormatError` ("<path>: line N: <problem>") for malformed content: a
    non-numeric or non-finite value, a count that does not match the lines that follow
    (truncated file, wrong joint count, bogus header), a line with the wrong number of values.
    Only x, y, z are converted; the other 9 joint columns and the body info fields must
    consist of number characters but are not converted.
    """
    path = Path(path)
    if max_bodies is not None and max_bodies < 0:
        raise ValueError(f"max_bodies must be >= 0, got {max_bodies}")
    data = path.read_bytes()
    try:
        parsed = _parse(data)
    except _Problem as problem:
        raise SkeletonFormatError(f"{path}: line {problem.line}: {problem.message}") from None
    width = max(parsed.body_counts, default=0)
    if max_bodies is not None:
        width = min(width, max_bodies)
    if parsed.body_counts == [width] * parsed.frames:  # the usual case: the same bodies in every frame
        xyz = parsed.bodies.reshape(parsed.frames, width, NUM_JOINTS, 3)  # (F, B, 25, 3)
    else:
        xyz = np.zeros((parsed.frames, width, NUM_JOINTS, 3), dtype=np.float32)
        keep = parsed.body_slot < width
        xyz[parsed.body_frame[keep], parsed.body_slot[keep]] = parsed.bodies[keep]
    return NtuSkeleton(
        name=path.name.removesuffix(".skeleton"),
        xyz=xyz,
        body_counts=np.asarray(parsed.body_counts, dtype=np.int64),
        body_ids=parsed.body_ids,
    )


# --------------------------------------------------------------------------- writer

# Kinect v2 pinhole intrinsics (cx, cy, fx, fy), fitted by least squares to the joints of the six
# real fixture files: depth image 512x424, colour image 1920x1080; u = cx + fx x/z, v = cy - fy y/z.
_DEPTH_CAMERA = (259.2, 209.0, 358.9, 368.5)
_COLOR_CAMERA = (974.9, 555.5, 1054.2, 1022.3)
_JOINT_FMT = "%.9G %.9G %.9G %.7G %.7G %.7G %.7G 0 0 0 0 2"  # orientation 0, trackingState 2 (tracked)


def _project(xyz: np.ndarray, camera: tuple[float, float, float, float]) -> np.ndarray:
    """(..., 3) camera-space metres -> (..., 2) pixel coordinates; 0 where z <= 0."""
    cx, cy, fx, fy = camera
    z = xyz[..., 2]
    safe = np.where(z > 0, z, 1.0)
    u = np.where(z > 0, cx + fx * xyz[..., 0] / safe, 0.0)
    v = np.where(z > 0, cy - fy * xyz[..., 1] / safe, 0.0)
    return np.stack([u, v], axis=-1)


def write_skeleton(
    path: Path | str,
    xyz: np.ndarray,
    body_ids: Sequence[int],
    present: np.ndarray | None = None,
    crlf: bool = True,
) -> None:
    """Write a real-format `.skeleton` file atomically; identical input gives identical bytes.

    xyz: (frames, bodies, 25, 3) camera-space metres (finite).
    body_ids: one integer bodyID per body slot.
    present: bool (frames, bodies), which slots appear in each frame (default: all); a frame's
        present bodies are written in slot order, so `read_skeleton` returns them packed to the
        front in that order.
    crlf: CRLF line ends like the original dataset (False: LF).

    x, y, z are written with 9 significant digits, so float32 values read back exactly;
    depthX/Y and colorX/Y come from a Kinect-v2-like pinhole projection, orientation is 0,
    both trackingStates are 2 and the body info line is `<bodyID> 0 1 1 1 1 0 0 0 2`.
    """
    path = Path(path)
    xyz = np.asarray(xyz)
    if xyz.ndim != 4 or xyz.shape[2:] != (NUM_JOINTS, 3):
        raise ValueError(f"{path}: xyz must have shape (frames, bodies, {NUM_JOINTS}, 3), got {xyz.shape}")
    frames, bodies = xyz.shape[:2]
    values = xyz.astype(np.float32).astype(np.float64)  # write exactly what a float32 reader gets back
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: xyz holds NaN or inf")
    ids = [int(i) for i in body_ids]
    if len(ids) != bodies:
        raise ValueError(f"{path}: {len(ids)} body_ids for {bodies} body slots")
    if present is None:
        present = np.ones((frames, bodies), dtype=bool)
    present = np.asarray(present, dtype=bool)
    if present.shape != (frames, bodies):
        raise ValueError(f"{path}: present must have shape {(frames, bodies)}, got {present.shape}")

    eol = "\r\n" if crlf else "\n"
    depth = _project(values, _DEPTH_CAMERA)  # (F, B, 25, 2)
    color = _project(values, _COLOR_CAMERA)  # (F, B, 25, 2)
    rows = np.concatenate([values, depth, color], axis=-1)  # (F, B, 25, 7)
    block_fmt = eol.join([_JOINT_FMT] * NUM_JOINTS) + eol
    info = [f"{i} 0 1 1 1 1 0 0 0 2{eol}{NUM_JOINTS}{eol}" for i in ids]
    parts = [f"{frames}{eol}"]
    for f in range(frames):
        slots = np.flatnonzero(present[f]).tolist()
        parts.append(f"{len(slots)}{eol}")
        for s in slots:
            parts.append(info[s])
            parts.append(block_fmt % tuple(rows[f, s].ravel().tolist()))  # one C-level format per body
    with atomic_path(path, durable=False) as tmp:  # one small file per sample: no fsync
        tmp.write_bytes("".join(parts).encode("ascii"))


# --------------------------------------------------------------------------- body selection


def select_bodies(xyz: np.ndarray, keep: int = 2, max_read: int = 4) -> np.ndarray:
    """MS-G3D's energy rule: the `keep` most active of the first `max_read` body slots.

    xyz: (F, B, 25, 3).
    Energy of a slot = sum over x, y, z of the standard deviation (population) of that
    coordinate over all joints of the slot's non-zero frames (a frame counts when any of
    its 75 values is non-zero); 0 for a slot that is never present. Slots are ranked by
    energy, highest first, ties in slot order.
    Returns (F, keep, 25, 3) in the input dtype, zero-padded when fewer slots exist.
    """
    xyz = np.asarray(xyz)
    if xyz.ndim != 4 or xyz.shape[2:] != (NUM_JOINTS, 3):
        raise ValueError(f"xyz must have shape (frames, bodies, {NUM_JOINTS}, 3), got {xyz.shape}")
    if keep < 1 or max_read < 1:
        raise ValueError(f"keep and max_read must be >= 1, got keep={keep}, max_read={max_read}")
    frames = xyz.shape[0]
    cand = xyz[:, :max_read].astype(np.float64)  # (F, B', 25, 3)
    present = (cand != 0).any(axis=(2, 3))  # (F, B')
    n = present.sum(axis=0) * NUM_JOINTS  # (B',) values per coordinate
    w = present[:, :, None, None]  # (F, B', 1, 1)
    denom = np.maximum(n, 1)[:, None]  # (B', 1)
    mean = (cand * w).sum(axis=(0, 2)) / denom  # (B', 3)
    var = (((cand - mean[None, :, None, :]) * w) ** 2).sum(axis=(0, 2)) / denom  # (B', 3)
    energy = np.where(n > 0, np.sqrt(var).sum(axis=1), 0.0)  # (B',)
    order = np.argsort(-energy, kind="stable")[:keep]
    out = np.zeros((frames, keep, NUM_JOINTS, 3), dtype=xyz.dtype)
    out[:, : len(order)] = xyz[:, order]
    return out


# --------------------------------------------------------------------------- missing-sample lists


def read_missing_list(path: Path | str) -> set[str]:
    """Sample names of an official "samples with missing skeletons" list.

    Accepts the official files (English header lines, a blank line, then one name per line)
    and the header-less copies (MS-G3D, ST-GCN). Blank lines are skipped; any other non-name
    line after the first name raises `SkeletonFormatError` naming the line.
    """
    path = Path(path)
    names: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        text = line.strip().removesuffix(".skeleton")
        if not text:
            continue
        if _SAMPLE_RE.fullmatch(text):
            names.add(text)
        elif names:
            raise SkeletonFormatError(f"{path}: line {lineno}: not an NTU sample name: {text[:40]!r}")
    return names
