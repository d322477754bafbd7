"""Processed data of other projects -> the interim parquet that `stf preprocess` writes.

`import_dataset(fmt, source, dataset, out_path, cfg, frames, ...)` reads

- `fmt="msg3d"`: an MS-G3D / 2s-AGCN data folder (`stf.data.formats.msg3d`), the arrays
  memory-mapped, one sample in memory at a time;
- `fmt="pyskl"`: a pyskl annotation pickle (`stf.data.formats.pyskl`);

and writes `out_path` (same columns, schema metadata and row order as `preprocess`) and
`<out>.rejected.csv` (`file,reason`; the "file" names the source file and the sample). Every
sample is written, rejected with its reason, or excluded ("excluded: ..."): read = written +
rejected + excluded. Pickles load through `stf.data.safe_pickle` (no code runs).

What is redone and what is taken as it is (docs/method.md, "Imported data"):

- NTU from MS-G3D: the files are after `pre_normalization` (bodies chosen by the same energy
  rule, null frames repeat-padded, centred on joint 1 of person 0, rotated). The original
  length is recovered (`repeat_period` of the first present person) and the padding cut;
  person 0's centre joint, zeroed by the centring, counts as present whenever person 0 is;
  then our steps run as for raw files: trim, centre on `center_joint.ntu` (a no-op for the
  default joint 1), height, the visibility channel (1 = joint present, the rule raw
  preprocessing uses); stored at that length (fitted to T when read, as for raw files). The
  rotation can be neither undone nor applied again (it is not idempotent), whatever
  `msg3d_rotation` says.
- Kinetics from MS-G3D: x, y are already centred (-0.5, y up, 0 where the score is 0) and
  the top persons kept per frame; the zero tail is trimmed and our steps run as for raw clips.
- pyskl NTU 3-D: raw camera coordinates, every step as for a `.skeleton` file (energy rule on
  the stored persons, so more than two persons are chosen as preprocess chooses).
- pyskl OpenPose-18 2-D: pixel coordinates divided by `img_shape` (height, width) to the
  [0, 1] image units of the Kinetics clips, then every step as for a clip.

`--splits-out` (pyskl only) writes `<dir>/<setting>.parquet` from the pickle's own `split`
(xsub_* -> ntu60-xsub / ntu120-xsub, xview_* -> ntu60-xview, xset_* -> ntu120-xset,
train/val -> kinetics), in the format of `stf split`, and counts the samples whose part
disagrees with our id rules (`stf.data.splits.benchmark_part`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from stf.config import PreprocessConfig, SettingSpec, SplitConfig
from stf.data.formats import msg3d as msg3d_format
from stf.data.formats import ntu as ntu_format
from stf.data.formats import pyskl as pyskl_format
from stf.data.formats.kinetics import select_persons
from stf.data.normalize import (
    NormalizeSpec,
    normalize_sequence,
    trim_empty_frames,
    valid_from_coords,
)
from stf.data.preprocess import (
    NTU60_MAX_ACTION,
    NTU60_MAX_SETUP,
    STORAGE_DTYPES,
    InterimWriter,
    interim_info,
    normalize_spec,
    prepare_ntu_bodies,
    prepare_openpose,
    rejected_csv_path,
    stored_sample,
    write_rejected,
)
from stf.data.splits import benchmark_part, setting_name, write_split_table

log = logging.getLogger(__name__)

FORMATS = ("msg3d", "pyskl")
WRITE_ROWS = 64  # samples handed to the parquet writer at a time
# pyskl split name prefix -> benchmark, per dataset; Kinetics uses the plain "train" / "val"
SPLIT_BENCHMARKS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset"), "kinetics": ("",)}
NEEDED_LAYOUT = {"ntu60": "ntu25", "ntu120": "ntu25", "kinetics": "openpose18"}
_LAYOUT_TEXT = {
    "ntu25": "NTU-25 3-D (V = 25, C = 3)",
    "openpose18": "OpenPose-18 2-D (V = 18, C = 2 plus keypoint_score)",
    "coco17": "COCO-17 2-D (V = 17, pyskl's HRNet files)",
}


class ImportDataError(ValueError):
    """The source as a whole cannot be imported; the message names the file and the problem."""


@dataclass
class _Candidate:
    """One sample of the source: where it is (for rejected.csv), its id, label and part, and a
    function that prepares it -> ((C, F', V, M) float32 before fitting to T, persons present)."""

    where: str
    sample_id: str
    label: int
    part: str
    prepare: Callable[[], tuple[np.ndarray, int]]


# --------------------------------------------------------------------------- per-sample preparation


def _finite(x: np.ndarray) -> None:
    if not np.isfinite(x).all():
        raise ValueError("non-finite values (NaN or inf)")


def _fit_persons(coords: np.ndarray, persons: int) -> np.ndarray:
    """(F, M', V, D) -> (F, persons, V, D): the first `persons` slots (the source's order), zero-padded."""
    out = np.zeros((coords.shape[0], persons, *coords.shape[2:]), dtype=coords.dtype)
    k = min(persons, coords.shape[1])
    out[:, :k] = coords[:, :k]
    return out


def msg3d_ntu_sample(x: np.ndarray, cfg: PreprocessConfig, spec: NormalizeSpec) -> tuple[np.ndarray, int]:
    """One MS-G3D NTU sample (3, T, 25, M') after pre_normalization -> ((C, F', 25, M), persons present).

    The stored persons are already the energy rule's choice, in its order: the first
    `cfg.persons` are kept. Repeat padding is cut at the first present person's period.
    """
    x = np.asarray(x, dtype=np.float32)
    _finite(x)
    coords = _fit_persons(x.transpose(1, 3, 2, 0), cfg.persons)  # (3, T, V, M') -> (T, M, V, 3)
    valid = valid_from_coords(coords)  # (T, M, V)
    valid[:, 0, msg3d_format.MSG3D_CENTER] |= valid[:, 0].any(axis=1)  # centred to exactly 0, still present
    keep = trim_empty_frames(valid)
    coords, valid = coords[keep], valid[keep]
    if coords.shape[0] == 0:
        raise ValueError("no frame has a joint (an all-zero sample)")
    first = int(np.flatnonzero(valid.any(axis=(0, 2)))[0])
    period = msg3d_format.repeat_period(coords[:, first])  # (F, V, 3) of that person
    coords, valid = coords[:period], valid[:period]
    extra = valid.astype(np.float32) if cfg.visibility_channel else None
    sample = normalize_sequence(coords, valid, extra, spec)  # (C, F', V, M)
    return sample, int(valid.any(axis=(0, 2)).sum())


def msg3d_kinetics_sample(x: np.ndarray, cfg: PreprocessConfig, spec: NormalizeSpec) -> tuple[np.ndarray, int]:
    """One MS-G3D Kinetics sample (3 = x, y, score; T, 18, M') -> ((3, F', 18, M), persons present).

    x, y are already centred (-0.5, y up, 0 where the score is 0); persons are re-ranked per
    frame by summed score (the order they were stored in) and the top `cfg.persons` kept.
    """
    x = np.asarray(x, dtype=np.float32)
    _finite(x)
    pose = x[:2].transpose(1, 3, 2, 0)  # (2, T, V, M') -> (T, M', V, 2)
    score = x[2].transpose(0, 2, 1)  # (T, V, M') -> (T, M', V)
    pose, score = select_persons(pose, score, keep=cfg.persons, max_read=max(1, score.shape[1]))
    valid = score > 0  # (T, M, V)
    sample = normalize_sequence(pose * valid[..., None], valid, score * valid, spec)  # (3, F', V, M)
    return sample, int(valid.any(axis=(0, 2)).sum())


def _check_annotation(ann: dict, needed: str) -> None:
    layout = pyskl_format.keypoint_layout(ann)
    if layout != needed:
        found = _LAYOUT_TEXT.get(layout, layout)
        raise ValueError(f"keypoint layout is {found}, this dataset needs {_LAYOUT_TEXT[needed]}")
    kp = ann["keypoint"]
    total = ann.get("total_frames")
    if total is not None and int(total) != kp.shape[1]:
        raise ValueError(f"total_frames is {total} but keypoint has {kp.shape[1]} frames")
    if kp.shape[0] == 0 or kp.shape[1] == 0:
        raise ValueError(f"keypoint has shape {kp.shape}: no person or no frame")


def pyskl_ntu_sample(ann: dict, cfg: PreprocessConfig, spec: NormalizeSpec) -> tuple[np.ndarray, int]:
    """A pyskl NTU 3-D annotation (keypoint (M', T, 25, 3), camera metres) -> ((C, F', 25, M), persons)."""
    _check_annotation(ann, "ntu25")
    xyz = np.asarray(ann["keypoint"], dtype=np.float32).transpose(1, 0, 2, 3)  # (M', T, V, 3) -> (T, M', V, 3)
    return prepare_ntu_bodies(xyz, cfg, spec)


def pyskl_openpose_sample(ann: dict, cfg: PreprocessConfig, spec: NormalizeSpec) -> tuple[np.ndarray, int]:
    """A pyskl OpenPose-18 2-D annotation (keypoint (M', T, 18, 2) pixels, keypoint_score (M', T, 18),
    img_shape (h, w)) -> ((3, F', 18, M), persons). A C = 3 keypoint without keypoint_score
    carries the score as its third value."""
    _check_annotation(ann, "openpose18")
    kp = np.asarray(ann["keypoint"], dtype=np.float32)  # (M', T, V, C)
    score = ann.get("keypoint_score")
    if score is None:
        if kp.shape[3] != 3:
            raise ValueError("2-D keypoints need keypoint_score (M, T, V)")
        score = kp[..., 2]
    score = np.asarray(score, dtype=np.float32)
    if score.shape != kp.shape[:3]:
        raise ValueError(f"keypoint_score has shape {score.shape}, keypoint {kp.shape} needs {kp.shape[:3]}")
    shape = ann.get("img_shape")
    try:
        height, width = (float(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"2-D keypoints need img_shape (height, width), found {shape!r}") from None
    if not (height > 0 and width > 0):
        raise ValueError(f"img_shape {shape!r} is not positive")
    pose = kp[..., :2].transpose(1, 0, 2, 3) / np.array([width, height], np.float32)  # (T, M', V, 2) image units
    return prepare_openpose(pose, score.transpose(1, 0, 2), cfg, spec)


# --------------------------------------------------------------------------- candidates of each format


def _msg3d_candidates(
    source: Path, dataset: str, cfg: PreprocessConfig, spec: NormalizeSpec
) -> tuple[list[_Candidate], int]:
    parts = msg3d_format.read_msg3d(source)
    c, _, v, _ = parts[0].data.shape[1:]
    want_v = 18 if dataset == "kinetics" else 25
    if (c, v) != (3, want_v):
        what = "x, y, score of OpenPose-18" if dataset == "kinetics" else "x, y, z of NTU-25"
        raise ImportDataError(
            f"{parts[0].data_path}: arrays have C = {c}, V = {v}; {dataset} needs C = 3, V = {want_v} ({what})"
        )
    one = msg3d_kinetics_sample if dataset == "kinetics" else msg3d_ntu_sample
    # MS-G3D rotated the NTU data already; its two rotations are not idempotent (aligning the
    # shoulders tilts the spine off +z again), so they are never applied a second time
    spec = replace(spec, rotate=False)
    out: list[_Candidate] = []
    for part in parts:
        for i, (name, label) in enumerate(zip(part.names, part.labels, strict=True)):

            def prepare(data=part.data, i=i) -> tuple[np.ndarray, int]:
                return one(data[i], cfg, spec)  # (C, T, V, M') read from the memory map here

            out.append(
                _Candidate(
                    where=f"{part.data_path.name}[{i}]:{name}",
                    sample_id=msg3d_format.sample_stem(name),
                    label=int(label),
                    part=part.part if dataset == "kinetics" else "",
                    prepare=prepare,
                )
            )
    return out, len(out)


def _layout_error(path: Path, dataset: str, layouts: Iterable[str]) -> ImportDataError:
    found = ", ".join(_LAYOUT_TEXT.get(x, x) for x in sorted(set(layouts))) or "no keypoint arrays"
    hint = ""
    if "none" in layouts:
        hint = " (pyskl's Kinetics-400 file keeps keypoints in separate kpfiles, which stf does not read)"
    return ImportDataError(
        f"{path}: keypoints are {found}{hint}; stf has skeleton graphs for NTU-25 3-D and OpenPose-18 2-D only, "
        f"and --dataset {dataset} needs {_LAYOUT_TEXT[NEEDED_LAYOUT[dataset]]}"
    )


def _pyskl_candidates(
    source: Path, dataset: str, cfg: PreprocessConfig, spec: NormalizeSpec
) -> tuple[list[_Candidate], int, pyskl_format.PysklFile]:
    f = pyskl_format.read_pyskl(source)
    needed = NEEDED_LAYOUT[dataset]
    layouts = [pyskl_format.keypoint_layout(a) for a in f.annotations]
    if layouts and needed not in layouts:
        raise _layout_error(source, dataset, layouts)
    one = pyskl_openpose_sample if dataset == "kinetics" else pyskl_ntu_sample
    kinetics_part: dict[str, str] = {}
    if dataset == "kinetics":
        for part in ("train", "val"):
            for fd in f.split.get(part, []):
                kinetics_part.setdefault(fd, part)
    out: list[_Candidate] = []
    for i, ann in enumerate(f.annotations):
        fd = ann.get("frame_dir")
        label = ann.get("label")
        where = f"{source.name}[{i}]:{fd}"
        bad = None
        if not isinstance(fd, str) or not fd:
            bad = f"frame_dir is {fd!r}, not a name"
        elif isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            bad = f"label is {label!r}, not an integer"
        if bad is not None:
            out.append(_Candidate(where, f"#{i}", -1, "", _raiser(bad)))
            continue

        def prepare(ann=ann) -> tuple[np.ndarray, int]:
            return one(ann, cfg, spec)

        out.append(_Candidate(where, msg3d_format.sample_stem(fd), int(label), kinetics_part.get(fd, ""), prepare))
    return out, len(out), f


def _raiser(reason: str) -> Callable[[], tuple[np.ndarray, int]]:
    def fail() -> tuple[np.ndarray, int]:
        raise ValueError(reason)

    return fail


# --------------------------------------------------------------------------- the common writer


def _screen(
    cands: list[_Candidate], dataset: str, missing: set[str]
) -> tuple[list[_Candidate], list[tuple[str, str]], int, list[dict]]:
    """Id, label, part and exclusion checks, then dedupe -> (kept sorted by id, rejected rows,
    excluded count, id fields of the kept)."""
    kept: list[tuple[_Candidate, dict]] = []
    rejected: list[tuple[str, str]] = []
    excluded = 0
    for c in cands:
        ids = {"setup": -1, "camera": -1, "performer": -1, "replication": -1}
        if dataset == "kinetics":
            if c.part not in ("train", "val") and not c.sample_id.startswith("#"):
                rejected.append((c.where, "not in the source's train or val part"))
                continue
        elif not c.sample_id.startswith("#"):
            try:
                sid = ntu_format.parse_sample_id(c.sample_id)
            except ValueError as err:
                rejected.append((c.where, f"bad sample name: {err}"))
                continue
            if c.label != sid.action - 1:
                rejected.append((c.where, f"label {c.label} disagrees with the name's action A{sid.action:03d}"))
                continue
            if c.sample_id in missing:
                rejected.append((c.where, "excluded: missing-skeleton list"))
                excluded += 1
                continue
            if dataset == "ntu60" and (sid.setup > NTU60_MAX_SETUP or sid.action > NTU60_MAX_ACTION):
                rejected.append((c.where, "excluded: not an NTU-60 sample (setup > 17 or action > 60)"))
                excluded += 1
                continue
            ids = {"setup": sid.setup, "camera": sid.camera, "performer": sid.performer, "replication": sid.replication}
        kept.append((c, ids))
    kept.sort(key=lambda t: (t[0].sample_id, t[0].where))
    unique: list[tuple[_Candidate, dict]] = []
    for c, ids in kept:
        if unique and unique[-1][0].sample_id == c.sample_id and not c.sample_id.startswith("#"):
            rejected.append((c.where, f"duplicate sample id {c.sample_id} (also {unique[-1][0].where})"))
        else:
            unique.append((c, ids))
    return [c for c, _ in unique], rejected, excluded, [ids for _, ids in unique]


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, ValueError) else f"{type(err).__name__}: {text}"


def import_dataset(
    fmt: str,
    source: Path,
    dataset: str,
    out_path: Path,
    cfg: PreprocessConfig,
    frames: int,
    *,
    missing_list: Path | None = None,
    settings: Mapping[str, SettingSpec] | None = None,
    split_cfg: SplitConfig | None = None,
    splits_out: Path | None = None,
    strict: bool = False,
) -> dict:
    """Import `source` as `dataset` -> interim parquet + rejected.csv (+ split files); returns a summary.

    Summary: {read, written, rejected, excluded, seconds, out, rejected_csv, source, format}
    and, with `splits_out`, "splits": {setting: {train, test, disagree_with_id_rules, examples,
    not_imported, not_in_split}}. `settings` (params.settings) and `split_cfg` are needed with
    `splits_out`. Raises `ImportDataError` for a source that cannot be imported at all, when
    nothing could be written, and (after writing) under `strict` when any sample was rejected.
    """
    t0 = time.perf_counter()
    source, out_path = Path(source), Path(out_path)
    if fmt not in FORMATS:
        raise ImportDataError(f"unknown import format {fmt!r}; known: {list(FORMATS)}")
    if dataset not in NEEDED_LAYOUT:
        raise ImportDataError(f"unknown dataset {dataset!r}; known: {sorted(NEEDED_LAYOUT)}")
    if frames <= 0:
        raise ImportDataError(f"frames must be positive, got {frames}")
    if splits_out is not None and fmt != "pyskl":
        raise ImportDataError(
            f"{source}: --splits-out needs --format pyskl (an MS-G3D folder holds one benchmark's train/val "
            "division, which follows the same id rules as `stf split`)"
        )
    if splits_out is not None and (settings is None or split_cfg is None):
        raise ImportDataError("splits_out needs the settings and the split config")
    if missing_list is not None and dataset == "kinetics":
        raise ImportDataError(f"{missing_list}: a missing-skeleton list applies to NTU only, not {dataset}")
    if not cfg.msg3d_rotation and fmt == "msg3d" and dataset != "kinetics":
        log.warning("MS-G3D NTU data is already rotated by its pre_normalization; preprocess.msg3d_rotation "
                    "= false cannot undo that")  # fmt: skip
    spec = normalize_spec(dataset, cfg, frames)
    pyskl_file = None
    if fmt == "msg3d":
        cands, read = _msg3d_candidates(source, dataset, cfg, spec)
    else:
        if not source.is_file():
            raise ImportDataError(f"{source}: pyskl pickle not found")
        cands, read, pyskl_file = _pyskl_candidates(source, dataset, cfg, spec)
    if read == 0:
        raise ImportDataError(f"{source}: no samples")
    missing = ntu_format.read_missing_list(missing_list) if missing_list is not None else set()
    kept, rejected, excluded, id_fields = _screen(cands, dataset, missing)
    labels = [c.label for c in kept]
    info = interim_info(dataset, cfg, frames, (max(labels) + 1) if labels else 0)
    shape = tuple(info["shape"])  # (C, T, V, M) as loaded; stored at each sample's own length
    dtype = STORAGE_DTYPES[cfg.storage_dtype]

    written_rows: list[dict] = []
    rows: list[dict] = []
    samples: list[np.ndarray] = []
    bar = tqdm(total=len(kept), desc=f"import {fmt} {dataset}", unit="sample", disable=None)
    with InterimWriter(out_path, info) as writer, bar:
        for c, ids in zip(kept, id_fields, strict=True):
            bar.update(1)
            try:
                sample, persons = c.prepare()  # (C, F', V, M)
                if sample.shape[0] != shape[0]:
                    raise ValueError(f"prepared {sample.shape[0]} channels, expected {shape[0]}")
                samples.append(stored_sample(sample, dtype))  # (F', C, V, M)
            except Exception as err:  # noqa: BLE001 - a bad sample is reported, never fatal
                rejected.append((c.where, _reason(err)))
                continue
            rows.append({
                "sample_id": c.sample_id, "label": c.label, **ids, "part": c.part,
                "n_frames": int(sample.shape[1]), "n_persons": persons,
            })  # fmt: skip
            if len(rows) == WRITE_ROWS:
                writer.write(rows, samples)
                written_rows += rows
                rows, samples = [], []
        writer.write(rows, samples)
        written_rows += rows
    rejected_path = rejected_csv_path(out_path)
    write_rejected(rejected_path, rejected)
    n_rejected = len(rejected) - excluded
    summary: dict = {
        "format": fmt,
        "source": str(source),
        "read": read,
        "written": writer.written,
        "rejected": n_rejected,
        "excluded": excluded,
        "out": str(out_path),
        "rejected_csv": str(rejected_path),
    }
    if writer.written + n_rejected + excluded != read:  # pragma: no cover - bookkeeping guard
        raise ImportDataError(f"{out_path}: sample accounting is off: {summary}")
    if writer.written == 0:
        out_path.unlink(missing_ok=True)
        raise ImportDataError(
            f"{source}: no usable {dataset} sample; {n_rejected} rejected, {excluded} excluded (see {rejected_path})"
        )
    if splits_out is not None and pyskl_file is not None:
        meta = pd.DataFrame(written_rows)
        summary["splits"] = write_pyskl_splits(
            pyskl_file, meta, dataset, int(info["num_class"]), settings or {}, split_cfg, Path(splits_out)
        )
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    log.info("import %s %s: %s", fmt, dataset, {k: v for k, v in summary.items() if k != "splits"})
    if strict and n_rejected:
        raise ImportDataError(f"{source}: {n_rejected} sample(s) rejected (strict); see {rejected_path}")
    return summary


# --------------------------------------------------------------------------- split files from a pyskl pickle


def _benchmark_keys(split: Mapping[str, list[str]], benchmark: str) -> tuple[str, str] | None:
    train, val = (f"{benchmark}_train", f"{benchmark}_val") if benchmark else ("train", "val")
    return (train, val) if train in split and val in split else None


def write_pyskl_splits(
    f: pyskl_format.PysklFile,
    meta: pd.DataFrame,
    dataset: str,
    num_class: int,
    settings: Mapping[str, SettingSpec],
    split_cfg: SplitConfig | None,
    out_dir: Path,
) -> dict:
    """The pickle's split lists -> `<out_dir>/<setting>.parquet` for each benchmark it holds.

    meta: the imported rows (sample_id, label, performer, camera, setup, part). A sample in a
    *_train list is "train", in a *_val list "test"; imported samples in neither list are left
    out of that split ("not_in_split"), listed samples that were not imported are counted
    ("not_imported"). `disagree_with_id_rules` counts samples whose part differs from
    `benchmark_part` (NTU x-sub performers, x-view cameras, x-set setups).
    """
    if split_cfg is None:
        raise ImportDataError("split files need params.split")
    out: dict = {}
    for benchmark in SPLIT_BENCHMARKS[dataset]:
        keys = _benchmark_keys(f.split, benchmark)
        if keys is None:
            continue
        name = "kinetics" if dataset == "kinetics" else f"{dataset}-{benchmark}"
        spec = settings.get(name)
        if spec is None or spec.dataset != dataset:
            log.warning("%s: split %s/%s has no setting %s in params.settings; not written", f.path, *keys, name)
            continue
        train, val = set(f.split[keys[0]]), set(f.split[keys[1]])
        both = train & val
        if both:
            raise ImportDataError(
                f"{f.path}: {len(both)} samples are in both {keys[0]} and {keys[1]}, e.g. {sorted(both)[:3]}"
            )
        ids = meta["sample_id"].astype(str)
        in_train, in_val = ids.isin(train).to_numpy(), ids.isin(val).to_numpy()
        rows = meta.loc[in_train | in_val].reset_index(drop=True)
        part = np.where(ids[in_train | in_val].isin(train).to_numpy(), "train", "test")
        ours = benchmark_part(rows, spec)
        differ = rows.loc[ours != part, "sample_id"].astype(str).tolist()
        if differ:
            log.warning("%s: %d samples of %s/%s disagree with stf's %s id rule, e.g. %s",
                        f.path, len(differ), *keys, setting_name(spec), differ[:3])  # fmt: skip
        summary = write_split_table(rows, part, num_class, spec, split_cfg, out_dir / f"{name}.parquet")
        summary.update(
            {
                "from": list(keys),
                "disagree_with_id_rules": len(differ),
                "examples": differ[:5],
                "not_imported": len((train | val) - set(ids)),
                "not_in_split": int((~(in_train | in_val)).sum()),
            }
        )
        out[name] = summary
    if not out:
        wanted = ", ".join("train/val" if not b else f"{b}_train/{b}_val" for b in SPLIT_BENCHMARKS[dataset])
        raise ImportDataError(
            f"{f.path}: split has {sorted(f.split)}; none maps to a {dataset} setting of params.settings "
            f"(expected {wanted})"
        )
    return out
