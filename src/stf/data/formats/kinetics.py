"""Kinetics-skeleton clips (the ST-GCN release): per-video JSON, label files, person selection.

A clip file is one line of compact JSON:

    {"data": [{"frame_index": 1, "skeleton": [{"pose": [x0, y0, ..., x17, y17],
                                               "score": [s0, ..., s17]}, ...]}, ...],
     "label": "abseiling", "label_index": 0}

OpenPose-18 joints, coordinates normalised to the frame (a little outside [0, 1] happens),
3 decimals. `frame_index` is 1-based; frames with nobody are `"skeleton": []`; a frame can
hold many people. A label file maps video ids to `{has_skeleton, label, label_index}`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stf.io import atomic_path

log = logging.getLogger(__name__)

__all__ = [
    "NUM_JOINTS",
    "ClipFormatError",
    "KineticsClip",
    "read_clip",
    "read_label_file",
    "select_persons",
    "write_clip",
    "write_label_file",
]

NUM_JOINTS = 18
MAX_FRAMES = 10_000  # > 5 minutes at 30 fps; Kinetics clips are 10 s (300 frames)
MAX_CELLS = 1_000_000  # frames x persons of the dense arrays (about 216 MB of float32)


class ClipFormatError(ValueError):
    """A Kinetics-skeleton clip or label file is malformed; the message starts with its path."""


@dataclass
class KineticsClip:
    """One parsed clip.

    video_id: file stem (the YouTube id).
    pose: float32 (frames, persons, 18, 2), x and y per joint; frame f of the file (1-based
        `frame_index`) is row f - 1; persons in file order within each frame; absent = 0.
    score: float32 (frames, persons, 18), OpenPose confidence per joint; absent = 0.
    label, label_index: as stored in the clip.
    """

    video_id: str
    pose: np.ndarray
    score: np.ndarray
    label: str
    label_index: int


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} (NaN/inf)")


def _load_json(path: Path) -> tuple[object, bytes]:
    """The parsed document and the file's bytes."""
    raw = path.read_bytes()
    if not raw.strip():
        raise ClipFormatError(f"{path}: empty file")
    try:
        return json.loads(raw, parse_constant=_reject_constant), raw
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ClipFormatError(f"{path}: not valid JSON: {err}") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numbers(path: Path, rows: list[list], width: int, what: str, may_hold_bool: bool) -> np.ndarray:
    """float64 (len(rows), width) from lists of JSON numbers; ClipFormatError for anything else.

    numpy would turn true/false into 1/0, so when the file mentions them at all the values
    are checked one by one.
    """
    if not rows:
        return np.zeros((0, width))
    if may_hold_bool and any(isinstance(v, bool) for row in rows for v in row):
        raise ClipFormatError(f"{path}: a {what} value is true/false, not a number")
    bad = ClipFormatError(f"{path}: a {what} list holds something other than {width} plain numbers")
    try:
        arr = np.array(rows)  # (N, width) for well-formed lists
    except (ValueError, OverflowError):
        raise bad from None
    if arr.dtype.kind not in "fi" or arr.shape != (len(rows), width):
        raise bad
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ClipFormatError(f"{path}: a {what} value is not finite")
    return arr


def read_clip(path: Path | str) -> KineticsClip:
    """Parse one clip file into dense arrays (see `KineticsClip`).

    Raises `ClipFormatError` naming the file and the problem: invalid JSON, missing or
    mistyped keys, a frame_index < 1, repeated or beyond 10000, a pose without 36 numbers or
    a score without 18, non-finite values.
    """
    path = Path(path)
    doc, raw = _load_json(path)
    if not isinstance(doc, dict):
        raise ClipFormatError(f"{path}: top level is {type(doc).__name__}, expected an object")
    for key in ("data", "label", "label_index"):
        if key not in doc:
            raise ClipFormatError(f"{path}: missing key {key!r}")
    data, label, label_index = doc["data"], doc["label"], doc["label_index"]
    if not isinstance(data, list):
        raise ClipFormatError(f"{path}: 'data' is {type(data).__name__}, expected a list")
    if not isinstance(label, str):
        raise ClipFormatError(f"{path}: 'label' is {type(label).__name__}, expected a string")
    if not _is_int(label_index):
        raise ClipFormatError(f"{path}: 'label_index' is {label_index!r}, expected an integer")

    seen: set[int] = set()
    frame_of: list[int] = []
    slot_of: list[int] = []
    poses: list[list] = []
    scores: list[list] = []
    persons = 0
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or "frame_index" not in entry or "skeleton" not in entry:
            raise ClipFormatError(f"{path}: data[{i}] is not an object with frame_index and skeleton")
        fi, people = entry["frame_index"], entry["skeleton"]
        if not _is_int(fi) or not 1 <= fi <= MAX_FRAMES:
            raise ClipFormatError(f"{path}: data[{i}]: frame_index {fi!r} is not an integer in 1..{MAX_FRAMES}")
        if fi in seen:
            raise ClipFormatError(f"{path}: data[{i}]: frame_index {fi} appears twice")
        seen.add(fi)
        if not isinstance(people, list):
            raise ClipFormatError(f"{path}: data[{i}]: 'skeleton' is {type(people).__name__}, expected a list")
        for s, person in enumerate(people):
            if not isinstance(person, dict) or not all(isinstance(person.get(k), list) for k in ("pose", "score")):
                raise ClipFormatError(f"{path}: data[{i}].skeleton[{s}] is not an object with pose and score lists")
            if len(person["pose"]) != 2 * NUM_JOINTS or len(person["score"]) != NUM_JOINTS:
                raise ClipFormatError(
                    f"{path}: data[{i}].skeleton[{s}]: pose has {len(person['pose'])} values (expected "
                    f"{2 * NUM_JOINTS}), score has {len(person['score'])} (expected {NUM_JOINTS})"
                )
            poses.append(person["pose"])
            scores.append(person["score"])
            frame_of.append(fi - 1)
            slot_of.append(s)
        persons = max(persons, len(people))
    frames = max(seen, default=0)
    if frames * persons > MAX_CELLS:
        raise ClipFormatError(f"{path}: {frames} frames x {persons} persons is beyond the {MAX_CELLS} cells allowed")

    may_hold_bool = b"true" in raw or b"false" in raw
    pose_flat = _numbers(path, poses, 2 * NUM_JOINTS, "pose", may_hold_bool)  # (N, 36)
    score_flat = _numbers(path, scores, NUM_JOINTS, "score", may_hold_bool)  # (N, 18)
    pose = np.zeros((frames, persons, NUM_JOINTS, 2), dtype=np.float32)
    score = np.zeros((frames, persons, NUM_JOINTS), dtype=np.float32)
    pose[frame_of, slot_of] = pose_flat.reshape(-1, NUM_JOINTS, 2)  # (N, 18, 2): x0 y0 x1 y1 ... -> pairs
    score[frame_of, slot_of] = score_flat
    return KineticsClip(video_id=path.stem, pose=pose, score=score, label=label, label_index=label_index)


# --------------------------------------------------------------------------- writer

_PERSON_FMT = (
    '{"pose": [' + ", ".join(["%.3f"] * (2 * NUM_JOINTS)) + '], "score": [' + ", ".join(["%.3f"] * NUM_JOINTS) + "]}"
)


def write_clip(
    path: Path | str,
    pose: np.ndarray,
    score: np.ndarray,
    label: str,
    label_index: int,
    present: np.ndarray | None = None,
) -> None:
    """Write a clip atomically in the release's format: one line of compact JSON, 3 decimals,
    no trailing newline, every frame listed (empty ones as `"skeleton": []`). Deterministic.

    pose: (frames, persons, 18, 2); score: (frames, persons, 18); both finite.
    present: bool (frames, persons), persons written in each frame, in slot order (so a reader
        packs them to the front); default: slots with any non-zero pose or score.
    """
    path = Path(path)
    pose = np.asarray(pose, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if pose.ndim != 4 or pose.shape[2:] != (NUM_JOINTS, 2):
        raise ValueError(f"{path}: pose must have shape (frames, persons, {NUM_JOINTS}, 2), got {pose.shape}")
    if score.shape != pose.shape[:3]:
        raise ValueError(f"{path}: score must have shape {pose.shape[:3]}, got {score.shape}")
    if not (np.isfinite(pose).all() and np.isfinite(score).all()):
        raise ValueError(f"{path}: pose/score hold NaN or inf")
    if not isinstance(label, str) or not _is_int(label_index):
        raise ValueError(f"{path}: label must be a string and label_index an integer")
    frames, persons = pose.shape[:2]
    if present is None:
        present = (pose != 0).any(axis=(2, 3)) | (score != 0).any(axis=2)  # (F, P)
    present = np.asarray(present, dtype=bool)
    if present.shape != (frames, persons):
        raise ValueError(f"{path}: present must have shape {(frames, persons)}, got {present.shape}")

    # round first so "%.3f" never prints -0.000 and equal inputs print equal text
    pose3 = np.round(pose, 3) + 0.0
    score3 = np.round(score, 3) + 0.0
    rows = np.concatenate([pose3.reshape(frames, persons, 2 * NUM_JOINTS), score3], axis=2)  # (F, P, 54)
    entries = []
    for f in range(frames):
        people = ", ".join(_PERSON_FMT % tuple(rows[f, s].tolist()) for s in np.flatnonzero(present[f]).tolist())
        entries.append(f'{{"frame_index": {f + 1}, "skeleton": [{people}]}}')
    text = f'{{"data": [{", ".join(entries)}], "label": {json.dumps(label)}, "label_index": {int(label_index)}}}'
    with atomic_path(path, durable=False) as tmp:  # one small file per sample: no fsync
        tmp.write_bytes(text.encode("utf-8"))


# --------------------------------------------------------------------------- label files


def read_label_file(path: Path | str) -> dict[str, dict]:
    """`{video_id: {"has_skeleton": bool, "label": str, "label_index": int}}` of a label file.

    Raises `ClipFormatError` naming the file and the first bad entry.
    """
    path = Path(path)
    doc, _ = _load_json(path)
    if not isinstance(doc, dict):
        raise ClipFormatError(f"{path}: top level is {type(doc).__name__}, expected an object of videos")
    out: dict[str, dict] = {}
    for vid, entry in doc.items():
        if not isinstance(entry, dict):
            raise ClipFormatError(f"{path}: entry {vid!r} is {type(entry).__name__}, expected an object")
        has, label, index = entry.get("has_skeleton"), entry.get("label"), entry.get("label_index")
        if not isinstance(has, bool) or not isinstance(label, str) or not _is_int(index):
            raise ClipFormatError(
                f"{path}: entry {vid!r} needs has_skeleton (bool), label (string), label_index (integer); "
                f"got {entry!r:.120}"
            )
        out[vid] = {"has_skeleton": has, "label": label, "label_index": index}
    return out


def write_label_file(path: Path | str, entries: dict[str, dict]) -> None:
    """Write a label file atomically, in the official layout (indent 4, in the given order)."""
    path = Path(path)
    clean: dict[str, dict] = {}
    for vid, entry in entries.items():
        has, label, index = entry.get("has_skeleton"), entry.get("label"), entry.get("label_index")
        if not isinstance(has, bool) or not isinstance(label, str) or not _is_int(index):
            raise ValueError(f"{path}: entry {vid!r} needs has_skeleton (bool), label (str), label_index (int)")
        clean[str(vid)] = {"has_skeleton": has, "label": label, "label_index": int(index)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(clean, indent=4, separators=(", ", ": ")), encoding="utf-8")


# --------------------------------------------------------------------------- person selection


def select_persons(
    pose: np.ndarray, score: np.ndarray, keep: int = 2, max_read: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """ST-GCN/MS-G3D's rule, per frame: of the first `max_read` person slots, keep the `keep`
    with the highest summed joint score (ties in slot order).

    pose: (F, P, 18, 2), score: (F, P, 18).
    Returns pose (F, keep, 18, 2) and score (F, keep, 18), zero-padded when P < keep.
    """
    pose = np.asarray(pose)
    score = np.asarray(score)
    if pose.ndim != 4 or pose.shape[2:] != (NUM_JOINTS, 2) or score.shape != pose.shape[:3]:
        raise ValueError(
            f"expected pose (F, P, {NUM_JOINTS}, 2) and score (F, P, {NUM_JOINTS}); got {pose.shape}, {score.shape}"
        )
    if keep < 1 or max_read < 1:
        raise ValueError(f"keep and max_read must be >= 1, got keep={keep}, max_read={max_read}")
    frames = pose.shape[0]
    cand_pose = pose[:, :max_read]  # (F, P', 18, 2)
    cand_score = score[:, :max_read]  # (F, P', 18)
    total = cand_score.astype(np.float64).sum(axis=2)  # (F, P')
    order = np.argsort(-total, axis=1, kind="stable")[:, :keep]  # (F, k') slot indices, best first
    k = order.shape[1]
    out_pose = np.zeros((frames, keep, NUM_JOINTS, 2), dtype=pose.dtype)
    out_score = np.zeros((frames, keep, NUM_JOINTS), dtype=score.dtype)
    out_pose[:, :k] = np.take_along_axis(cand_pose, order[:, :, None, None], axis=1)
    out_score[:, :k] = np.take_along_axis(cand_score, order[:, :, None], axis=1)
    return out_pose, out_score
