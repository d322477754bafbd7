"""Raw skeleton files -> one parquet per dataset (`data/interim/{dataset}.parquet`).

`preprocess(dataset, raw_dir, out_path, cfg, frames, missing_list, strict)` finds the raw
files (NTU `**/*.skeleton`; Kinetics `**/kinetics_{train,val}/*.json` with
`kinetics_{train,val}_label.json`), parses and normalises them in worker processes
(`stf.data.normalize.normalize_sequence`) and streams the rows, sorted by sample id, into a
parquet file in small row groups. Every file that is not written is listed with its
reason in `<out without .parquet>.rejected.csv` (`file,reason`; reasons of files left out
on purpose start with "excluded:"), so read = written + rejected + excluded.

Each sample is stored at its own length; fitting to T frames (repeat or zero padding,
resampling of longer ones) happens when a batch is read (`stf.data.normalize.fit_frames`).
The parquet layout (docs/architecture.md): `sample_id` string, `label` int32,
`setup camera performer replication` int16 (-1 for Kinetics), `part` string,
`n_frames n_persons` int32, `data` binary: the sample's (n_frames, C, V, M) values in C
order (frame-major), little-endian float32 or float16. Schema metadata b"stf" = JSON
{dataset, layout, shape [C, T, V, M] of a loaded sample, num_class, channels, pad,
storage {dtype, axes}}. Row groups hold about `ROW_GROUP_BYTES` of tensor data, so a
random sample costs one small row-group read (`InterimReader`). `read_interim` loads a
selection back as one fitted (N, C, T, V, M) float32 array.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from stf.config import PreprocessConfig
from stf.data.formats import kinetics as kinetics_format
from stf.data.formats import ntu as ntu_format
from stf.data.normalize import (
    NTU_HEIGHT,
    OPENPOSE_HEIGHT,
    NormalizeSpec,
    fit_frames,
    fit_length,
    normalize_sequence,
    valid_from_coords,
)
from stf.data.skeletons import layout_for
from stf.io import atomic_path

log = logging.getLogger(__name__)

META_COLUMNS = ("sample_id", "label", "setup", "camera", "performer", "replication", "part", "n_frames", "n_persons")
_META_TYPES = {
    "sample_id": pa.string(),
    "label": pa.int32(),
    "setup": pa.int16(),
    "camera": pa.int16(),
    "performer": pa.int16(),
    "replication": pa.int16(),
    "part": pa.string(),
    "n_frames": pa.int32(),
    "n_persons": pa.int32(),
}
ROW_GROUP_BYTES = 256 << 10  # tensor bytes per row group: a random sample reads ~256 KiB (NTU: ~4 samples)
COMPRESSION = "lz4"  # cheap to decode; own-length float data compresses little, absent persons a lot
STORAGE_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
STORAGE_AXES = ["T", "C", "V", "M"]  # one stored row: (n_frames, C, V, M), frame-major
NTU60_MAX_SETUP, NTU60_MAX_ACTION = 17, 60
MIN_FILES_PER_WORKER = 256  # below this, starting worker processes costs more than it saves


class PreprocessError(ValueError):
    """The raw folder as a whole cannot be preprocessed, or `strict` found rejected files."""


class InterimFormatError(ValueError):
    """A preprocessed parquet is unreadable or inconsistent; the message names the file."""


# --------------------------------------------------------------------------- interim file I/O


def interim_schema(info: dict) -> pa.Schema:
    """The explicit schema of an interim parquet whose b"stf" metadata is `info`."""
    fields = [pa.field(name, _META_TYPES[name], nullable=False) for name in META_COLUMNS]
    fields.append(pa.field("data", pa.binary(), nullable=False))
    return pa.schema(fields, metadata={b"stf": json.dumps(info, sort_keys=True).encode()})


def frame_shape(info: dict) -> tuple[int, int, int]:
    """(C, V, M) of one stored frame, from the b"stf" metadata."""
    c, _, v, m = (int(s) for s in info["shape"])
    return c, v, m


class InterimWriter:
    """Streams rows into an interim parquet; the file appears atomically on a clean exit.

    with InterimWriter(path, info) as w:
        w.write(rows, samples)   # rows: dicts with META_COLUMNS; samples: (n_frames, C, V, M) arrays

    Samples are stored in info["storage"]["dtype"] (cast here if they are not). Rows are
    buffered up to `ROW_GROUP_BYTES` of tensor data and flushed as one row group, so memory
    stays bounded whatever the dataset size.
    """

    def __init__(self, path: Path, info: dict, compression: str | None = COMPRESSION) -> None:
        self.path = Path(path)
        self.info = dict(info)
        self.frame = frame_shape(self.info)
        self.dtype = STORAGE_DTYPES[self.info["storage"]["dtype"]]
        self.schema = interim_schema(self.info)
        self.compression = compression
        self.written = 0
        self._rows: list[dict] = []
        self._data: list[np.ndarray] = []
        self._buffered = 0

    def __enter__(self) -> InterimWriter:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        # no dictionaries or statistics: row groups are small, and nothing filters on them
        self._writer = pq.ParquetWriter(
            tmp, self.schema, compression=self.compression, use_dictionary=False, write_statistics=False
        )
        return self

    def write(self, rows: Sequence[dict], samples: Sequence[np.ndarray]) -> None:
        if len(rows) != len(samples):
            raise ValueError(f"{self.path}: {len(rows)} rows but {len(samples)} samples")
        for row, sample in zip(rows, samples, strict=True):
            if sample.ndim != 4 or tuple(sample.shape[1:]) != self.frame or sample.shape[0] != row["n_frames"]:
                raise ValueError(
                    f"{self.path}: sample {row['sample_id']} has shape {sample.shape}, expected "
                    f"({row['n_frames']}, {', '.join(map(str, self.frame))}) = (n_frames, C, V, M)"
                )
            self._rows.append(row)
            self._data.append(np.ascontiguousarray(sample, dtype=self.dtype))
            self._buffered += sample.shape[0] * math.prod(self.frame) * self.dtype.itemsize
            if self._buffered >= ROW_GROUP_BYTES:
                self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        sizes = np.array([d.nbytes for d in self._data], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)  # (k + 1,) byte offsets
        blob = np.concatenate([d.reshape(-1) for d in self._data])  # (sum of n_frames*C*V*M,)
        arrays = [pa.array([r[name] for r in self._rows], _META_TYPES[name]) for name in META_COLUMNS]
        arrays.append(
            pa.BinaryArray.from_buffers(pa.binary(), len(self._rows), [None, pa.py_buffer(offsets), pa.py_buffer(blob)])
        )
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema), row_group_size=len(self._rows))
        self.written += len(self._rows)
        self._rows, self._data, self._buffered = [], [], 0

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush()
        finally:
            self._writer.close()
            self._atomic.__exit__(exc_type, exc, tb)


@dataclass
class Interim:
    """A preprocessed selection: `meta` (one row per sample, no tensor), `data` (N, C, T, V, M)
    float32 in the same row order (fitted to T), `info` the b"stf" metadata dict."""

    meta: pd.DataFrame
    data: np.ndarray
    info: dict = field(default_factory=dict)


def _open_interim(path: Path, pre_buffer: bool = True) -> tuple[pq.ParquetFile, dict]:
    path = Path(path)
    if not path.is_file():
        raise InterimFormatError(f"{path}: preprocessed parquet not found")
    try:
        pf = pq.ParquetFile(path, pre_buffer=pre_buffer)
    except (OSError, pa.ArrowInvalid) as err:
        raise InterimFormatError(f"{path}: not a readable parquet file: {err}") from None
    schema = pf.schema_arrow
    raw = (schema.metadata or {}).get(b"stf")
    if raw is None:
        raise InterimFormatError(f"{path}: no b'stf' schema metadata; not written by stf preprocess")
    try:
        info = json.loads(raw)
        shape = [int(s) for s in info["shape"]]
        for key in ("dataset", "layout", "num_class", "channels"):
            info[key]
    except (ValueError, KeyError, TypeError) as err:
        raise InterimFormatError(f"{path}: bad b'stf' metadata ({err!r})") from None
    if len(shape) != 4 or min(shape) <= 0:
        raise InterimFormatError(f"{path}: metadata shape {shape} is not a positive [C, T, V, M]")
    if len(info["channels"]) != shape[0]:
        raise InterimFormatError(f"{path}: metadata lists {len(info['channels'])} channels for C = {shape[0]}")
    missing = [c for c in (*META_COLUMNS, "data") if c not in schema.names]
    if missing:
        raise InterimFormatError(f"{path}: missing columns {missing}")
    storage = info.get("storage")
    if (
        schema.field("data").type != pa.binary()
        or not isinstance(storage, dict)
        or storage.get("dtype") not in STORAGE_DTYPES
        or storage.get("axes") != STORAGE_AXES
        or info.get("pad") not in ("repeat", "zero")
    ):
        raise InterimFormatError(
            f"{path}: data column {schema.field('data').type} with storage {storage!r}, pad {info.get('pad')!r}; "
            f"this stf reads binary (n_frames, C, V, M) rows of {'/'.join(STORAGE_DTYPES)} (rerun stf preprocess)"
        )
    return pf, info


def read_interim_meta(path: Path) -> tuple[pd.DataFrame, dict]:
    """Interim parquet -> (meta DataFrame without the tensor, b"stf" info); reads no tensor data."""
    pf, info = _open_interim(path)
    return pf.read(columns=list(META_COLUMNS), use_threads=False).to_pandas(), info


class InterimReader:
    """Random access to the stored frames of an interim parquet, a batch of rows at a time.

    `frames(rows, n_frames)` reads each row group that holds a requested row once (the `data`
    column only), views its binary values without copying, and copies just the requested
    samples' frames into one array, in request order: -> (sum(n_frames), C, V, M) of the
    storage dtype. `n_frames` (from the metadata) is checked against the stored byte lengths.
    The file is read with plain reads (no memory map, so the page cache never counts as this
    process's memory) and opened lazily, again in a new process (after a DataLoader worker
    forks), so an instance can be pickled or copied.
    """

    def __init__(self, path: Path, info: dict) -> None:
        self.path = Path(path)
        self.frame = frame_shape(info)
        self.dtype = STORAGE_DTYPES[info["storage"]["dtype"]]
        self.frame_bytes = math.prod(self.frame) * self.dtype.itemsize
        self._pid: int | None = None
        self._pf: pq.ParquetFile | None = None
        self._starts = np.zeros(1, dtype=np.int64)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pid": None, "_pf": None}

    def _file(self) -> pq.ParquetFile:
        if self._pf is None or self._pid != os.getpid():
            # measured: with scattered small row groups, no pre-buffering and one call per group
            # read 2x faster than read_row_groups (benchmarks/bench_scale.py)
            self._pf, _ = _open_interim(self.path, pre_buffer=False)
            md = self._pf.metadata
            sizes = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
            self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])  # (G + 1,) first row of each group
            self._pid = os.getpid()
        return self._pf

    def frames(self, rows: np.ndarray, n_frames: np.ndarray) -> np.ndarray:
        pf = self._file()
        rows = np.asarray(rows, dtype=np.int64)
        n_frames = np.asarray(n_frames, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self._starts[-1]):
            raise InterimFormatError(f"{self.path}: row index out of range 0..{self._starts[-1] - 1}")
        group = np.searchsorted(self._starts, rows, side="right") - 1  # (B,) row group of each row
        nbytes = n_frames * self.frame_bytes  # (B,) bytes each sample should hold
        dest = np.cumsum(nbytes) - nbytes  # (B,) where each sample goes in the output
        out = np.empty((int(n_frames.sum()), *self.frame), dtype=self.dtype)  # (F, C, V, M)
        flat = out.reshape(-1).view(np.uint8)
        order = np.argsort(group, kind="stable")  # requested samples grouped by row group
        cuts = np.flatnonzero(np.diff(group[order])) + 1
        for members in np.split(order, cuts):
            g = int(group[members[0]])
            col = pf.read_row_group(g, columns=["data"], use_threads=False).column(0)
            chunk = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
            offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
            values = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)  # the group's bytes, no copy
            for b, r in zip(members.tolist(), (rows[members] - self._starts[g]).tolist(), strict=True):
                lo, hi = int(offsets[r]), int(offsets[r + 1])
                if hi - lo != nbytes[b]:
                    raise InterimFormatError(
                        f"{self.path}: row {rows[b]} holds {hi - lo} bytes, n_frames {n_frames[b]} needs {nbytes[b]}"
                    )
                flat[dest[b] : dest[b] + hi - lo] = values[lo:hi]
        return out


def read_interim(path: Path, rows: np.ndarray | None = None) -> Interim:
    """Interim parquet -> `Interim` with data (N, C, T, V, M) float32, fitted to the file's T.

    `rows` (sorted or not, 0-based positions) loads only those samples, in that order; memory
    then stays at the selection plus one read. For small selections (tests, report figures);
    training streams batches instead (`stf.data.dataset.SkeletonPart`).
    """
    path = Path(path)
    meta, info = read_interim_meta(path)
    want = np.arange(len(meta)) if rows is None else np.asarray(rows, dtype=np.int64)
    if want.size and (want.min() < 0 or want.max() >= len(meta)):
        raise InterimFormatError(f"{path}: row index out of range 0..{len(meta) - 1}")
    meta = meta.iloc[want].reset_index(drop=True)
    lengths = meta["n_frames"].to_numpy(dtype=np.int64)
    values = InterimReader(path, info).frames(want, lengths).astype(np.float32, copy=False)  # (F, C, V, M)
    data = fit_frames(values, lengths, int(info["shape"][1]), info["pad"])  # (N, C, T, V, M)
    return Interim(meta=meta, data=data, info=info)


# --------------------------------------------------------------------------- raw file discovery


@dataclass(frozen=True)
class _Task:
    """One raw file to parse: where it is, its id, and what the file list already told."""

    path: str
    rel: str
    sample_id: str
    label: int = -1  # Kinetics: label_index from the label file
    part: str = ""


@dataclass
class _Plan:
    tasks: list[_Task]
    skipped: list[tuple[str, str]]  # (file, reason) decided without parsing
    excluded: int
    found: int
    labels: list[int]  # labels known from names / label files of the tasks (for num_class)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _dedupe(tasks: list[_Task], skipped: list[tuple[str, str]]) -> list[_Task]:
    """Sort by (sample_id, file); later files with an id already seen are rejected."""
    tasks.sort(key=lambda t: (t.sample_id, t.rel))
    kept: list[_Task] = []
    for t in tasks:
        if kept and kept[-1].sample_id == t.sample_id:
            skipped.append((t.rel, f"duplicate sample id {t.sample_id} (also {kept[-1].rel})"))
        else:
            kept.append(t)
    return kept


def _plan_ntu(dataset: str, raw_dir: Path, missing_list: Path | None) -> _Plan:
    files = sorted(raw_dir.rglob("*.skeleton"))
    missing = ntu_format.read_missing_list(missing_list) if missing_list is not None else set()
    tasks, skipped, labels, excluded = [], [], [], 0
    for path in files:
        rel = _rel(path, raw_dir)
        name = path.name[: -len(".skeleton")]
        try:
            ids = ntu_format.parse_sample_id(name)
        except ValueError as err:
            skipped.append((rel, f"bad file name: {err}"))
            continue
        if name in missing:
            skipped.append((rel, "excluded: missing-skeleton list"))
            excluded += 1
            continue
        if dataset == "ntu60" and (ids.setup > NTU60_MAX_SETUP or ids.action > NTU60_MAX_ACTION):
            skipped.append((rel, "excluded: not an NTU-60 sample (setup > 17 or action > 60)"))
            excluded += 1
            continue
        tasks.append(_Task(str(path), rel, name))
        labels.append(ids.action - 1)
    return _Plan(_dedupe(tasks, skipped), skipped, excluded, len(files), labels)


def _find_one(raw_dir: Path, name: str) -> Path | None:
    hits = sorted(raw_dir.rglob(name))
    if len(hits) > 1:
        raise PreprocessError(f"{raw_dir}: {len(hits)} files named {name} ({', '.join(map(str, hits[:3]))})")
    return hits[0] if hits else None


def _plan_kinetics(raw_dir: Path) -> _Plan:
    tasks, skipped, labels, excluded, found = [], [], [], 0, 0
    for part in ("train", "val"):
        clips = sorted(p for d in raw_dir.rglob(f"kinetics_{part}") if d.is_dir() for p in d.glob("*.json"))
        found += len(clips)
        if not clips:
            continue
        label_path = _find_one(raw_dir, f"kinetics_{part}_label.json")
        if label_path is None:
            raise PreprocessError(
                f"{raw_dir}: kinetics_{part}/ holds {len(clips)} clips but kinetics_{part}_label.json is missing"
            )
        table = kinetics_format.read_label_file(label_path)
        for path in clips:
            rel, vid = _rel(path, raw_dir), path.stem
            entry = table.get(vid)
            if entry is None:
                skipped.append((rel, f"excluded: not in {label_path.name}"))
                excluded += 1
            elif not entry["has_skeleton"]:
                skipped.append((rel, f"excluded: has_skeleton false in {label_path.name}"))
                excluded += 1
            else:
                tasks.append(_Task(str(path), rel, vid, int(entry["label_index"]), part))
                labels.append(int(entry["label_index"]))
    return _Plan(_dedupe(tasks, skipped), skipped, excluded, found, labels)


# --------------------------------------------------------------------------- per-file work (worker processes)


@dataclass(frozen=True)
class _Job:
    """What a worker needs besides the file: picklable, sent with every chunk."""

    dataset: str
    cfg: PreprocessConfig
    spec: NormalizeSpec


def _finite(x: np.ndarray, what: str) -> None:
    if not np.isfinite(x).all():
        raise ValueError(f"non-finite {what} (NaN or inf)")


def prepare_ntu_bodies(xyz: np.ndarray, cfg: PreprocessConfig, spec: NormalizeSpec) -> tuple[np.ndarray, int]:
    """NTU bodies as read (F, B, 25, 3) -> ((C, F', V, M) float32 before fitting to T, persons present).

    The energy rule keeps `cfg.persons` of the first `cfg.max_bodies_read` body slots; a joint
    is present where any coordinate is non-zero, and that is the visibility channel (when
    `cfg.visibility_channel`); then `normalize_sequence`.
    """
    if xyz.shape[0] == 0:
        raise ValueError("no frames")
    _finite(xyz, "coordinates")
    xyz = ntu_format.select_bodies(xyz, keep=cfg.persons, max_read=cfg.max_bodies_read)  # (F, M, 25, 3)
    valid = valid_from_coords(xyz)  # (F, M, 25)
    extra = valid.astype(np.float32) if cfg.visibility_channel else None
    sample = normalize_sequence(xyz, valid, extra, spec)  # (C, F', V, M)
    return sample, int(valid.any(axis=(0, 2)).sum())


def prepare_openpose(
    pose: np.ndarray, score: np.ndarray, cfg: PreprocessConfig, spec: NormalizeSpec
) -> tuple[np.ndarray, int]:
    """OpenPose-18 pose (F, P, 18, 2) in [0, 1] image units and score (F, P, 18) ->
    ((3, F', 18, M) float32 before fitting to T, persons present).

    Per frame the `cfg.persons` highest-scoring of the first `cfg.max_persons_read` persons
    are kept; `kinetics_channels`; the confidence is the third channel; `normalize_sequence`.
    """
    if pose.shape[0] == 0:
        raise ValueError("no frames")
    _finite(pose, "pose")
    _finite(score, "score")
    pose, score = kinetics_format.select_persons(
        pose, score, keep=cfg.persons, max_read=cfg.max_persons_read
    )  # (F, M, 18, 2), (F, M, 18)
    xy, valid = kinetics_channels(pose, score)
    sample = normalize_sequence(xy, valid, score.astype(np.float32) * valid, spec)  # (3, F', V, M)
    return sample, int(valid.any(axis=(0, 2)).sum())


def _ntu_sample(task: _Task, job: _Job) -> tuple[dict, np.ndarray]:
    sk = ntu_format.read_skeleton(Path(task.path), max_bodies=job.cfg.max_bodies_read)
    sample, persons = prepare_ntu_bodies(sk.xyz, job.cfg, job.spec)
    row = {
        "sample_id": task.sample_id,
        "label": int(sk.action) - 1,
        "setup": int(sk.setup),
        "camera": int(sk.camera),
        "performer": int(sk.performer),
        "replication": int(sk.replication),
        "part": "",
        "n_frames": int(sample.shape[1]),
        "n_persons": persons,
    }
    return row, sample


def kinetics_channels(pose: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenPose pose (F, M, V, 2) in [0, 1] image units, score (F, M, V) -> (xy, valid).

    x, y -= 0.5 and y is negated (y up); joints with score 0 are absent and set to 0.
    """
    valid = score > 0  # (F, M, V)
    xy = pose.astype(np.float32) - 0.5
    xy[..., 1] *= -1.0
    return xy * valid[..., None], valid


def _kinetics_sample(task: _Task, job: _Job) -> tuple[dict, np.ndarray]:
    clip = kinetics_format.read_clip(Path(task.path))
    if task.label >= 0 and int(clip.label_index) != task.label:
        raise ValueError(f"label_index {clip.label_index} disagrees with the label file's {task.label}")
    sample, persons = prepare_openpose(clip.pose, clip.score, job.cfg, job.spec)
    row = {
        "sample_id": task.sample_id,
        "label": task.label if task.label >= 0 else int(clip.label_index),
        "setup": -1,
        "camera": -1,
        "performer": -1,
        "replication": -1,
        "part": task.part,
        "n_frames": int(sample.shape[1]),
        "n_persons": persons,
    }
    return row, sample


def _reason(err: BaseException, path: str) -> str:
    """One-line reason; the file's own path is dropped from the front (the csv names the file)."""
    text = " ".join(str(err).split()) or type(err).__name__
    text = text.removeprefix(f"{path}: ")
    return text if isinstance(err, ValueError) else f"{type(err).__name__}: {text}"


def stored_sample(sample: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """(C, F', V, M) float32 -> the stored (F', C, V, M) array of `dtype`; a value outside its range is an error."""
    out = np.ascontiguousarray(sample.transpose(1, 0, 2, 3), dtype=dtype)  # (F', C, V, M)
    if dtype != np.float32 and not np.isfinite(out).all():
        raise ValueError(f"a value of magnitude {float(np.abs(sample).max()):.3g} does not fit {dtype.name} storage")
    return out


def _process_chunk(tasks: Sequence[_Task], job: _Job) -> tuple[list[dict], list[np.ndarray], list[tuple[str, str]]]:
    """Parse and normalise a chunk of files -> (rows, samples, rejected (file, reason)).

    Samples are the stored (F', C, V, M) arrays at their own length F', already in the
    storage dtype, so only the real frames travel between processes.
    """
    one = _kinetics_sample if job.dataset == "kinetics" else _ntu_sample
    dtype = STORAGE_DTYPES[job.cfg.storage_dtype]
    rows, samples, rejected = [], [], []
    for task in tasks:
        try:
            row, sample = one(task, job)
            stored = stored_sample(sample, dtype)
        except Exception as err:  # noqa: BLE001 - any bad file is reported, never fatal
            rejected.append((task.rel, _reason(err, task.path)))
            continue
        rows.append(row)
        samples.append(stored)
    return rows, samples, rejected


def _sample_shape(job: _Job) -> tuple[int, int, int, int]:
    """(C, T, V, M) of a sample as training reads it."""
    layout = layout_for(job.dataset)
    coords = 2 if job.dataset == "kinetics" else 3
    channels = coords + (1 if job.dataset == "kinetics" or job.cfg.visibility_channel else 0)
    return channels, job.spec.frames, layout.num_joints, job.cfg.persons


def _channel_names(job: _Job) -> list[str]:
    if job.dataset == "kinetics":
        return ["x", "y", "confidence"]
    return ["x", "y", "z", "visibility"] if job.cfg.visibility_channel else ["x", "y", "z"]


def normalize_spec(dataset: str, cfg: PreprocessConfig, frames: int) -> NormalizeSpec:
    """The `NormalizeSpec` that `preprocess` uses for `dataset` under `cfg`, T = `frames`."""
    family = "kinetics" if dataset == "kinetics" else "ntu"
    return NormalizeSpec(
        center_joint=cfg.center_joint[family],
        height=(OPENPOSE_HEIGHT if family == "kinetics" else NTU_HEIGHT) if cfg.normalise_height else None,
        frames=frames,
        pad=cfg.pad,
        rotate=cfg.msg3d_rotation and family == "ntu",
    )


def interim_info(dataset: str, cfg: PreprocessConfig, frames: int, num_class: int) -> dict:
    """The b"stf" metadata of an interim parquet of `dataset` prepared under `cfg` (shape, channels...)."""
    job = _Job(dataset=dataset, cfg=cfg, spec=normalize_spec(dataset, cfg, frames))
    return {
        "dataset": dataset,
        "layout": layout_for(dataset).name,
        "shape": list(_sample_shape(job)),
        "num_class": int(num_class),
        "channels": _channel_names(job),
        "pad": cfg.pad,
        "storage": {"dtype": cfg.storage_dtype, "axes": STORAGE_AXES},
    }


def prepare_raw_file(path: Path, dataset: str, cfg: PreprocessConfig, frames: int) -> tuple[dict, np.ndarray]:
    """One raw file (NTU `.skeleton` or Kinetics clip `.json`), prepared exactly as `preprocess`
    prepares it and fits it to T as training reads it -> (interim row dict, (C, T, V, M) float32 sample).

    The file may have any name: NTU id fields (and the label) are -1 when the name is not an
    NTU id; a Kinetics clip's label is its own `label_index`. Raises what the readers raise
    (`ValueError` subclasses naming the file) or ValueError for an unusable sample.
    """
    path = Path(path)
    job = _Job(dataset=dataset, cfg=cfg, spec=normalize_spec(dataset, cfg, frames))
    if dataset == "kinetics":
        row, sample = _kinetics_sample(_Task(str(path), path.name, path.stem), job)
        return row, fit_length(sample, frames, cfg.pad, axis=1)  # (C, T, V, M)
    sk = ntu_format.read_skeleton(path, max_bodies=cfg.max_bodies_read)
    try:
        ids = tuple(ntu_format.parse_sample_id(sk.name))
    except ValueError:
        ids = (-1, -1, -1, -1, 0)
    sample, persons = prepare_ntu_bodies(sk.xyz, cfg, job.spec)
    setup, camera, performer, replication, action = ids
    row = {
        "sample_id": sk.name,
        "label": action - 1,
        "setup": setup,
        "camera": camera,
        "performer": performer,
        "replication": replication,
        "part": "",
        "n_frames": int(sample.shape[1]),
        "n_persons": persons,
    }
    return row, fit_length(sample, frames, cfg.pad, axis=1)  # (C, T, V, M)


def _ordered(
    fn: Callable[[Sequence[_Task], _Job], tuple], chunks: Iterable[Sequence[_Task]], job: _Job, workers: int
) -> Iterator[tuple]:
    """Results of fn(chunk, job) in chunk order; at most 2 * workers chunks in flight."""
    if workers <= 1:
        for chunk in chunks:
            yield fn(chunk, job)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        it = iter(chunks)
        pending = deque(pool.submit(fn, c, job) for c in islice(it, 2 * workers))
        while pending:
            result = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(fn, nxt, job))
            yield result


def write_rejected(path: Path, rows: list[tuple[str, str]]) -> None:
    """The rejected-files table `path` (see `rejected_csv_path`): columns file,reason, rows sorted."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "reason"])
            w.writerows(sorted(rows))


def rejected_csv_path(out_path: Path) -> Path:
    """`data/interim/ntu60.parquet` -> `data/interim/ntu60.rejected.csv`."""
    out_path = Path(out_path)
    stem = out_path.name[: -len(".parquet")] if out_path.name.endswith(".parquet") else out_path.name
    return out_path.with_name(stem + ".rejected.csv")


def preprocess(
    dataset: str,
    raw_dir: Path,
    out_path: Path,
    cfg: PreprocessConfig,
    frames: int,
    missing_list: Path | None,
    strict: bool,
    *,
    workers: int | None = None,
    chunk_size: int = 16,
) -> dict:
    """Raw folder -> interim parquet + rejected.csv; returns {read, written, rejected, excluded, seconds, out}.

    Samples are stored at their own length; `frames` (T) and `cfg.pad` are recorded in the
    metadata and applied whenever a batch is read. `workers` defaults to os.cpu_count(), fewer
    when there are under `MIN_FILES_PER_WORKER` files per worker (1 = parse in this process);
    `chunk_size` files go to a worker at a time.
    Worker processes are spawned, so a script calling this needs an `if __name__ == "__main__"`
    guard. `strict` raises `PreprocessError` (after writing both files) when any file
    was rejected. A run where nothing could be written also raises.
    """
    t0 = time.perf_counter()
    raw_dir, out_path = Path(raw_dir), Path(out_path)
    if dataset not in ("ntu60", "ntu120", "kinetics"):
        raise PreprocessError(f"unknown dataset {dataset!r}")
    if not raw_dir.is_dir():
        raise PreprocessError(f"{raw_dir}: raw data folder not found")
    if frames <= 0:
        raise PreprocessError(f"frames must be positive, got {frames}")
    family = "kinetics" if dataset == "kinetics" else "ntu"
    if cfg.msg3d_rotation and family == "kinetics":
        log.warning("preprocess.msg3d_rotation applies to 3-D NTU skeletons only; ignored for kinetics")
    if family == "kinetics":
        if missing_list is not None:
            raise PreprocessError(f"{missing_list}: a missing-skeleton list applies to NTU only, not {dataset}")
        plan = _plan_kinetics(raw_dir)
    else:
        plan = _plan_ntu(dataset, raw_dir, missing_list)
    if plan.found == 0:
        raise PreprocessError(f"{raw_dir}: no raw {dataset} files found")

    layout = layout_for(dataset)
    spec = normalize_spec(dataset, cfg, frames)
    if not 0 <= spec.center_joint < layout.num_joints:
        raise PreprocessError(f"preprocess.center_joint.{family} = {spec.center_joint} is not a joint of {layout.name}")
    job = _Job(dataset=dataset, cfg=cfg, spec=spec)
    info = interim_info(dataset, cfg, frames, (max(plan.labels) + 1) if plan.labels else 0)
    if workers is None:
        workers = min(os.cpu_count() or 1, max(1, len(plan.tasks) // MIN_FILES_PER_WORKER))
    workers = max(1, workers)
    chunks = [plan.tasks[i : i + chunk_size] for i in range(0, len(plan.tasks), chunk_size)]
    workers = min(workers, len(chunks)) if chunks else 1
    rejected_rows = list(plan.skipped)
    bar = tqdm(total=len(plan.tasks), desc=f"preprocess {dataset}", unit="file", disable=None)
    with InterimWriter(out_path, info) as writer, bar:
        for rows, samples, rejected in _ordered(_process_chunk, chunks, job, workers):
            writer.write(rows, samples)
            rejected_rows.extend(rejected)
            bar.update(len(rows) + len(rejected))
    rejected_path = rejected_csv_path(out_path)
    write_rejected(rejected_path, rejected_rows)

    n_rejected = len(rejected_rows) - plan.excluded
    summary = {
        "read": plan.found,
        "written": writer.written,
        "rejected": n_rejected,
        "excluded": plan.excluded,
        "seconds": round(time.perf_counter() - t0, 3),
        "out": str(out_path),
        "rejected_csv": str(rejected_path),
    }
    log.info("preprocess %s: %s", dataset, summary)
    if writer.written + n_rejected + plan.excluded != plan.found:  # pragma: no cover - bookkeeping guard
        raise PreprocessError(f"{out_path}: file accounting is off: {summary}")
    if writer.written == 0:
        out_path.unlink(missing_ok=True)  # an empty table is not a dataset; keep only the csv
        raise PreprocessError(
            f"{raw_dir}: no usable {dataset} sample; {n_rejected} rejected, {plan.excluded} excluded "
            f"(see {rejected_path})"
        )
    if strict and n_rejected:
        raise PreprocessError(f"{raw_dir}: {n_rejected} file(s) rejected (strict); see {rejected_path}")
    return summary
