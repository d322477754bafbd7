"""Raw skeleton files -> one parquet per dataset (`data/interim/{dataset}.parquet`).

`preprocess(dataset, raw_dir, out_path, cfg, frames, missing_list, strict)` finds the raw
files (NTU `**/*.skeleton`; Kinetics `**/kinetics_{train,val}/*.json` with
`kinetics_{train,val}_label.json`), parses and normalises them in worker processes
(`stf.data.normalize.normalize_sequence`), fits each sample to T frames in this process
(`fit_length`) and streams the rows, sorted by sample id, into a parquet file in bounded
row groups. Every file that is not written is listed with its
reason in `<out without .parquet>.rejected.csv` (`file,reason`; reasons of files left out
on purpose start with "excluded:"), so read = written + rejected + excluded.

The parquet layout (docs/architecture.md): `sample_id` string, `label` int32,
`setup camera performer replication` int16 (-1 for Kinetics), `part` string,
`n_frames n_persons` int32, `data` fixed_size_list<float32>[C*T*V*M] holding the sample's
(C, T, V, M) tensor in C order; schema metadata b"stf" = JSON {dataset, layout, shape
[C, T, V, M], num_class, channels}. `read_interim` loads it back as one (N, C, T, V, M) array.
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
ROW_GROUP_BYTES = 64 << 20  # bytes of tensor data per parquet row group
COMPRESSION = "lz4"  # measured: 4x smaller than plain on repeat-padded data, faster to write and read than zstd
NTU60_MAX_SETUP, NTU60_MAX_ACTION = 17, 60
MIN_FILES_PER_WORKER = 256  # below this, starting worker processes costs more than it saves


class PreprocessError(ValueError):
    """The raw folder as a whole cannot be preprocessed, or `strict` found rejected files."""


class InterimFormatError(ValueError):
    """A preprocessed parquet is unreadable or inconsistent; the message names the file."""


# --------------------------------------------------------------------------- interim file I/O


def interim_schema(info: dict) -> pa.Schema:
    """The explicit schema of an interim parquet whose b"stf" metadata is `info`."""
    size = math.prod(info["shape"])
    fields = [pa.field(name, _META_TYPES[name], nullable=False) for name in META_COLUMNS]
    fields.append(pa.field("data", pa.list_(pa.field("item", pa.float32(), nullable=False), size), nullable=False))
    return pa.schema(fields, metadata={b"stf": json.dumps(info, sort_keys=True).encode()})


class InterimWriter:
    """Streams rows into an interim parquet; the file appears atomically on a clean exit.

    with InterimWriter(path, info) as w:
        w.write(rows, data)   # rows: list of dicts with META_COLUMNS; data (k, C, T, V, M) float32

    Rows are buffered up to `ROW_GROUP_BYTES` of tensor data and flushed as one row group,
    so memory stays bounded whatever the dataset size.
    """

    def __init__(self, path: Path, info: dict, compression: str | None = COMPRESSION) -> None:
        self.path = Path(path)
        self.info = dict(info)
        self.shape = tuple(int(s) for s in info["shape"])
        self.size = math.prod(self.shape)
        self.schema = interim_schema(self.info)
        self.rows_per_group = max(1, ROW_GROUP_BYTES // (4 * self.size))
        self.compression = compression
        self.written = 0
        self._rows: list[dict] = []
        self._data: list[np.ndarray] = []
        self._buffered = 0

    def __enter__(self) -> InterimWriter:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._writer = pq.ParquetWriter(
            tmp,
            self.schema,
            compression=self.compression,
            use_dictionary=["sample_id", "part"],  # a dictionary attempt on the tensor floats only costs time
            write_statistics=list(META_COLUMNS),
        )
        return self

    def write(self, rows: Sequence[dict], data: np.ndarray) -> None:
        data = np.asarray(data, dtype=np.float32).reshape(len(rows), self.size)  # (k, C*T*V*M)
        if not rows:
            return
        self._rows.extend(rows)
        self._data.append(data)
        self._buffered += len(rows)
        if self._buffered >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        flat = np.concatenate(self._data).reshape(-1)  # (k * C*T*V*M,)
        arrays = [pa.array([r[name] for r in self._rows], _META_TYPES[name]) for name in META_COLUMNS]
        arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), self.size))
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
    """A preprocessed dataset: `meta` (one row per sample, no tensor), `data` (N, C, T, V, M)
    float32 in the same row order, `info` the b"stf" metadata dict."""

    meta: pd.DataFrame
    data: np.ndarray
    info: dict = field(default_factory=dict)


def _open_interim(path: Path) -> tuple[pq.ParquetFile, dict, int]:
    path = Path(path)
    if not path.is_file():
        raise InterimFormatError(f"{path}: preprocessed parquet not found")
    try:
        pf = pq.ParquetFile(path, memory_map=True)
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
    dtype = schema.field("data").type
    size = math.prod(shape)
    if not pa.types.is_fixed_size_list(dtype) or dtype.list_size != size or dtype.value_type != pa.float32():
        raise InterimFormatError(
            f"{path}: data column is {dtype}, metadata shape {shape} needs fixed_size_list<float>[{size}]"
        )
    return pf, info, size


def read_interim_meta(path: Path) -> tuple[pd.DataFrame, dict]:
    """Interim parquet -> (meta DataFrame without the tensor, b"stf" info); reads no tensor data."""
    pf, info, _ = _open_interim(path)
    return pf.read(columns=list(META_COLUMNS)).to_pandas(), info


def read_interim(path: Path, rows: np.ndarray | None = None) -> Interim:
    """Interim parquet -> `Interim` with data (N, C, T, V, M) float32.

    `rows` (sorted or not, 0-based positions) loads only those samples, in that order; memory
    then stays at the selection plus one row group. Row groups are copied once into one
    preallocated array (no per-row copies).
    """
    path = Path(path)
    pf, info, size = _open_interim(path)
    meta = pf.read(columns=list(META_COLUMNS)).to_pandas()
    n_total = len(meta)
    if rows is None:
        want = np.arange(n_total)
    else:
        want = np.asarray(rows, dtype=np.int64)
        if want.size and (want.min() < 0 or want.max() >= n_total):
            raise InterimFormatError(f"{path}: row index out of range 0..{n_total - 1}")
    order = np.argsort(want, kind="stable")
    sorted_rows = want[order]
    out = np.empty((want.size, size), dtype=np.float32)  # (n, C*T*V*M)
    start = 0
    for g in range(pf.num_row_groups):
        n_g = pf.metadata.row_group(g).num_rows
        lo, hi = np.searchsorted(sorted_rows, [start, start + n_g])
        if hi > lo:
            col = pf.read_row_group(g, columns=["data"], use_threads=False).column("data").combine_chunks()
            values = col.flatten().to_numpy().reshape(n_g, size)  # (n_g, C*T*V*M), zero-copy view
            if rows is None:
                out[start : start + n_g] = values
            else:
                out[order[lo:hi]] = values[sorted_rows[lo:hi] - start]
        start += n_g
    if start != n_total:
        raise InterimFormatError(f"{path}: row groups hold {start} rows, the table {n_total}")
    meta = meta.iloc[want].reset_index(drop=True)
    return Interim(meta=meta, data=out.reshape(want.size, *info["shape"]), info=info)  # (N, C, T, V, M)


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


def _process_chunk(tasks: Sequence[_Task], job: _Job) -> tuple[list[dict], list[np.ndarray], list[tuple[str, str]]]:
    """Parse and normalise a chunk of files -> (rows, samples, rejected (file, reason)).

    Samples are (C, F', V, M) at their own length F'; the parent pads them to T, so only the
    real frames travel between processes (about T / mean length = 3.6x less for NTU at T = 300).
    """
    one = _kinetics_sample if job.dataset == "kinetics" else _ntu_sample
    rows, samples, rejected = [], [], []
    for task in tasks:
        try:
            row, sample = one(task, job)
        except Exception as err:  # noqa: BLE001 - any bad file is reported, never fatal
            rejected.append((task.rel, _reason(err, task.path)))
            continue
        rows.append(row)
        samples.append(sample)
    return rows, samples, rejected


def _fit_chunk(samples: Sequence[np.ndarray], job: _Job) -> np.ndarray:
    """Samples (C, F', V, M) -> one (k, C, T, V, M) float32 array, each fitted to T (repeat/zero/resample)."""
    data = np.empty((len(samples), *_sample_shape(job)), dtype=np.float32)  # (k, C, T, V, M)
    for i, sample in enumerate(samples):
        fit_length(sample, job.spec.frames, job.spec.pad, axis=1, out=data[i])
    return data


def _sample_shape(job: _Job) -> tuple[int, int, int, int]:
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
    }


def prepare_raw_file(path: Path, dataset: str, cfg: PreprocessConfig, frames: int) -> tuple[dict, np.ndarray]:
    """One raw file (NTU `.skeleton` or Kinetics clip `.json`), prepared exactly as `preprocess`
    prepares it -> (interim row dict, (C, T, V, M) float32 sample).

    The file may have any name: NTU id fields (and the label) are -1 when the name is not an
    NTU id; a Kinetics clip's label is its own `label_index`. Raises what the readers raise
    (`ValueError` subclasses naming the file) or ValueError for an unusable sample.
    """
    path = Path(path)
    job = _Job(dataset=dataset, cfg=cfg, spec=normalize_spec(dataset, cfg, frames))
    if dataset == "kinetics":
        row, sample = _kinetics_sample(_Task(str(path), path.name, path.stem), job)
        return row, _fit_chunk([sample], job)[0]
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
    return row, _fit_chunk([sample], job)[0]


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


def _write_rejected(path: Path, rows: list[tuple[str, str]]) -> None:
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

    `workers` defaults to os.cpu_count(), fewer when there are under `MIN_FILES_PER_WORKER`
    files per worker (1 = parse in this process); `chunk_size` files go to a worker at a time.
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
    info = {
        "dataset": dataset,
        "layout": layout.name,
        "shape": list(_sample_shape(job)),
        "num_class": (max(plan.labels) + 1) if plan.labels else 0,
        "channels": _channel_names(job),
    }
    if workers is None:
        workers = min(os.cpu_count() or 1, max(1, len(plan.tasks) // MIN_FILES_PER_WORKER))
    workers = max(1, workers)
    chunks = [plan.tasks[i : i + chunk_size] for i in range(0, len(plan.tasks), chunk_size)]
    workers = min(workers, len(chunks)) if chunks else 1
    rejected_rows = list(plan.skipped)
    bar = tqdm(total=len(plan.tasks), desc=f"preprocess {dataset}", unit="file", disable=None)
    with InterimWriter(out_path, info) as writer, bar:
        for rows, samples, rejected in _ordered(_process_chunk, chunks, job, workers):
            writer.write(rows, _fit_chunk(samples, job))
            rejected_rows.extend(rejected)
            bar.update(len(rows) + len(rejected))
    rejected_path = rejected_csv_path(out_path)
    _write_rejected(rejected_path, rejected_rows)

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
