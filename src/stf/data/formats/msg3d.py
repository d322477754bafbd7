"""MS-G3D / 2s-AGCN processed data: `{part}_data_joint.npy` + `{part}_label.pkl` per part.

What their `data_gen` scripts write (one folder per benchmark, e.g. `data/ntu/xsub/`), for
part in {train, val}:

    {part}_data_joint.npy   float32 (N, C, T, V, M): NTU (N, 3, 300, 25, 2) x, y, z after
                            `pre_normalization` (null frames repeat-padded, centred on joint 1
                            of person 0, rotated); Kinetics (N, 3, 300, 18, 2) x, y, score
    {part}_label.pkl        a pickle of (sample_names, labels): names like
                            "S001C001P001R001A001.skeleton" (NTU-120: sometimes full paths) or
                            "<video id>.json" (Kinetics); labels 0-based ints

`read_msg3d(folder)` opens both parts that exist: the arrays memory-mapped (nothing is read
until a sample is used), the label pickles through `stf.data.safe_pickle` (no code runs).
`write_msg3d` writes the same files (tests, and anyone converting the other way).
`repeat_period` finds the length of a sequence that was padded by repeating it.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from stf.data.safe_pickle import load_pickle
from stf.io import atomic_path

__all__ = ["PARTS", "Msg3dFormatError", "Msg3dPart", "read_msg3d", "repeat_period", "sample_stem", "write_msg3d"]

PARTS = ("train", "val")
MSG3D_CENTER = 1  # pre_normalization centres on 0-based joint 1 (spine mid) of person 0


class Msg3dFormatError(ValueError):
    """An MS-G3D data folder is missing files or its files disagree; the message names them."""


@dataclass
class Msg3dPart:
    """One part of an MS-G3D folder.

    data: (N, C, T, V, M) read-only memory map; names: N sample names as stored;
    labels: (N,) int64.
    """

    part: str
    data_path: Path
    label_path: Path
    data: np.ndarray
    names: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def data_file(folder: Path, part: str) -> Path:
    return Path(folder) / f"{part}_data_joint.npy"


def label_file(folder: Path, part: str) -> Path:
    return Path(folder) / f"{part}_label.pkl"


def sample_stem(name: str) -> str:
    """A stored sample name -> the bare id: directories and `.skeleton` / `.json` dropped.

    "/data/nturgb+d_skeletons/S018C001P008R001A061.skeleton" -> "S018C001P008R001A061".
    """
    base = PureWindowsPath(PurePosixPath(str(name)).name).name
    for ext in (".skeleton", ".json", ".npy"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


def _read_labels(path: Path) -> tuple[list[str], np.ndarray]:
    obj = load_pickle(path)
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise Msg3dFormatError(f"{path}: expected a pickled (sample_names, labels) pair, found {type(obj).__name__}")
    names, labels = obj
    try:
        names = [str(n) for n in names]
        raw = np.asarray(labels)
    except TypeError as err:
        raise Msg3dFormatError(f"{path}: sample_names and labels must be sequences ({err})") from None
    if raw.ndim != 1 or (raw.size and not np.issubdtype(raw.dtype, np.integer)):
        raise Msg3dFormatError(f"{path}: labels must be a flat list of integers, found dtype {raw.dtype} {raw.shape}")
    if len(names) != len(raw):
        raise Msg3dFormatError(f"{path}: {len(names)} sample names but {len(raw)} labels")
    return names, raw.astype(np.int64)


def _open_data(path: Path) -> np.ndarray:
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise Msg3dFormatError(f"{path}: not a readable .npy array ({' '.join(str(err).split())[:200]})") from None
    if data.ndim != 5:
        raise Msg3dFormatError(f"{path}: expected an (N, C, T, V, M) array, found shape {data.shape}")
    if not np.issubdtype(data.dtype, np.floating):
        raise Msg3dFormatError(f"{path}: expected float data, found dtype {data.dtype}")
    return data


def read_msg3d(folder: Path | str) -> list[Msg3dPart]:
    """Open the train and val parts of an MS-G3D data folder (at least one must exist).

    Raises `Msg3dFormatError` naming the file when a part has only one of its two files,
    a file is unreadable, the array is not 5-D float, the label pickle is not (names, labels),
    the counts disagree, or the two parts differ in (C, T, V, M).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise Msg3dFormatError(f"{folder}: MS-G3D data folder not found")
    parts: list[Msg3dPart] = []
    for part in PARTS:
        dpath, lpath = data_file(folder, part), label_file(folder, part)
        if not dpath.exists() and not lpath.exists():
            continue
        if not dpath.is_file():
            raise Msg3dFormatError(f"{dpath}: missing (its labels {lpath.name} are there)")
        if not lpath.is_file():
            raise Msg3dFormatError(f"{lpath}: missing (its data {dpath.name} is there)")
        data = _open_data(dpath)
        names, labels = _read_labels(lpath)
        if data.shape[0] != len(names):
            raise Msg3dFormatError(f"{dpath}: {data.shape[0]} samples but {lpath.name} lists {len(names)}")
        parts.append(Msg3dPart(part, dpath, lpath, data, names, labels))
    if not parts:
        raise Msg3dFormatError(
            f"{folder}: no MS-G3D data (expected train_data_joint.npy + train_label.pkl and/or the val_ pair)"
        )
    shapes = {p.data.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise Msg3dFormatError(f"{folder}: the parts differ in (C, T, V, M): {sorted(shapes)}")
    return parts


def write_msg3d(folder: Path | str, part: str, data: np.ndarray, names: list[str], labels: list[int]) -> None:
    """Write `{part}_data_joint.npy` (float32 (N, C, T, V, M)) and `{part}_label.pkl` ((names, labels))."""
    folder = Path(folder)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 5 or data.shape[0] != len(names) or len(names) != len(labels):
        raise ValueError(f"write_msg3d: data {data.shape}, {len(names)} names, {len(labels)} labels do not fit")
    with atomic_path(data_file(folder, part)) as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.save would append ".npy" to the temp name
            np.save(fh, data)
    with atomic_path(label_file(folder, part)) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump((list(names), [int(v) for v in labels]), fh)


def repeat_period(frames: np.ndarray) -> int:
    """Length L of the sequence that, tiled, gives `frames` (F, ...); F when it is not tiled.

    MS-G3D's `pre_normalization` fills the tail after a sequence's last frame with copies of
    frames [0, L), so frames[t] == frames[t - L] exactly for t >= L. The smallest such L is
    the original length. Real skeletons never repeat a whole sequence bit for bit, so a
    sequence that was not padded returns F.
    """
    n = frames.shape[0]
    if n < 2:
        return n
    flat = np.ascontiguousarray(frames).reshape(n, -1)  # (F, D)
    same_as_first = np.flatnonzero((flat[1:] == flat[0]).all(axis=1)) + 1  # candidate periods
    for period in same_as_first:
        if np.array_equal(flat[period:], flat[: n - period]):
            return int(period)
    return n
