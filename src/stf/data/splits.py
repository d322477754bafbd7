"""Benchmark splits (x-sub, x-view, x-set, Kinetics train/val) and nested stratified subsets.

`make_split_file(interim, spec, cfg, out, val_percent)` reads the id columns of a preprocessed
parquet and writes `data/splits/{setting}.parquet`: `sample_id`, `label` int32, `part`
("train"/"val"/"test") and one bool column `p{f}` per fraction f of `cfg.fractions` (true for
the training samples of that subset; val and test rows false). With `val_percent` > 0 that
share of the benchmark's training samples becomes the `val` part (`validation_part`: seeded,
stratified by class); it is held out of every training subset and is what anything chosen
(the fine-tuning lr, `stf select-lr`) is chosen on, never the test part. Subsets are nested
(p10 ⊂ p20 ⊂ p25 ⊂ p100) and keep round(f% of each class), at least one sample per class.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stf.config import SettingSpec, SplitConfig
from stf.data.preprocess import read_interim_meta
from stf.data.protocols import NTU60_XSUB_TRAIN, NTU60_XVIEW_TRAIN_CAMERAS, NTU120_XSUB_TRAIN
from stf.io import atomic_path

log = logging.getLogger(__name__)


class SplitError(ValueError):
    """A split cannot be made as asked; the message names the setting or file and the problem."""


def setting_name(spec: SettingSpec) -> str:
    """`ntu60` + `xsub` -> "ntu60-xsub"; Kinetics (benchmark trainval) -> "kinetics"."""
    return "kinetics" if spec.dataset == "kinetics" else f"{spec.dataset}-{spec.benchmark}"


def benchmark_part(meta: pd.DataFrame, spec: SettingSpec) -> np.ndarray:
    """Rows of an interim table -> (N,) array of "train" / "test" by the benchmark's rule.

    Needs columns `performer` (x-sub), `camera` (x-view), `setup` (x-set) or `part`
    (Kinetics: "train" -> train, "val" -> test).
    """
    name = setting_name(spec)
    if spec.benchmark == "trainval":
        part = meta["part"].astype(str).to_numpy()
        bad = sorted(set(part) - {"train", "val"})
        if bad:
            raise SplitError(f"{name}: part column must be 'train' or 'val', found {bad[:5]}")
        is_train = part == "train"
    elif spec.benchmark == "xsub":
        subjects = NTU60_XSUB_TRAIN if spec.dataset == "ntu60" else NTU120_XSUB_TRAIN
        is_train = meta["performer"].isin(subjects).to_numpy()
    elif spec.benchmark == "xview":
        is_train = meta["camera"].isin(NTU60_XVIEW_TRAIN_CAMERAS).to_numpy()
    elif spec.benchmark == "xset":
        is_train = (meta["setup"].to_numpy() % 2) == 0
    else:  # pragma: no cover - SettingSpec allows no other value
        raise SplitError(f"{name}: unknown benchmark {spec.benchmark!r}")
    return np.where(is_train, "train", "test")


def stratified_subsets(
    labels: np.ndarray, fractions: Sequence[int], seed: int, num_class: int | None = None
) -> dict[int, np.ndarray]:
    """(N,) int labels -> {f: (N,) bool mask of the f% subset} for each f in `fractions`.

    Each class c with n_c samples keeps its first k = max(1, round(f * n_c / 100)) samples in
    one seeded permutation of that class, so every subset holds f% of every class (±0.5
    sample), at least one sample of each class, and smaller fractions are prefixes of larger
    ones (nested). `num_class` (default: max label + 1) lists the classes that must be present;
    a class with no sample raises `SplitError`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    for f in fractions:
        if not 0 < f <= 100:
            raise SplitError(f"fraction {f} is not a percent in (0, 100]")
    k_classes = int(labels.max()) + 1 if num_class is None and labels.size else int(num_class or 0)
    counts = np.bincount(labels, minlength=k_classes) if labels.size else np.zeros(k_classes, int)
    empty = np.flatnonzero(counts[:k_classes] == 0)
    if empty.size:
        raise SplitError(
            f"classes {empty[:10].tolist()} have no training sample, so no subset can keep one of each "
            f"(training samples per class: min {int(counts.min())}, {labels.size} in all)"
        )
    rng = np.random.default_rng(seed)
    # one permutation per class; rank[i] = position of sample i inside its class's permutation
    rank = np.empty(labels.size, dtype=np.int64)
    for c in range(counts.size):
        members = np.flatnonzero(labels == c)
        rank[members[rng.permutation(members.size)]] = np.arange(members.size)
    out: dict[int, np.ndarray] = {}
    for f in sorted(set(int(f) for f in fractions)):
        keep = np.maximum(1, np.floor(counts * f / 100.0 + 0.5).astype(np.int64))  # (K,)
        out[f] = rank < keep[labels]
    return out


def validation_part(labels: np.ndarray, percent: int, seed: int) -> np.ndarray:
    """(N,) int labels of the training samples -> (N,) bool, True for the validation part.

    `percent` of the samples, stratified by class and seeded (scikit-learn's
    `train_test_split(stratify=labels)`); percent 0 -> none. Raises `SplitError` when a class
    has fewer than 2 samples or the part would be smaller than the number of classes.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels, dtype=np.int64)
    out = np.zeros(labels.size, dtype=bool)
    if percent == 0:
        return out
    if not 0 < percent < 100:
        raise SplitError(f"val_percent must be in [0, 100), got {percent}")
    counts = np.bincount(labels)
    present = counts[counts > 0]
    n_val = int(np.ceil(labels.size * percent / 100.0))
    if present.min() < 2 or n_val < present.size or labels.size - n_val < present.size:
        raise SplitError(
            f"a stratified {percent}% validation part of {labels.size} training samples needs at least 2 "
            f"samples per class and one per class on each side (smallest class: {int(present.min())}, "
            f"{present.size} classes, {n_val} validation samples)"
        )
    _, val = train_test_split(np.arange(labels.size), test_size=n_val, stratify=labels, random_state=seed)
    out[val] = True
    return out


def _check_classes(name: str, labels: np.ndarray, part: np.ndarray, num_class: int) -> None:
    train = np.bincount(labels[part == "train"], minlength=num_class)
    test = np.bincount(labels[part == "test"], minlength=num_class)
    short = np.flatnonzero((train == 0) | (test == 0))
    problems = [f"class {c}: {train[c]} train / {test[c]} test" for c in short]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... {len(problems) - 8} more" if len(problems) > 8 else "")
        raise SplitError(f"{name}: every class needs at least one training and one test sample ({shown})")


def make_split_file(
    interim_path: Path, spec: SettingSpec, cfg: SplitConfig, out_path: Path, val_percent: int = 0
) -> dict:
    """Preprocessed parquet -> split parquet of one setting; returns a summary.

    Summary: {"setting", "train", "val", "test", "classes", "fractions": {"p10": n, ...}}
    ("train" counts the training part without the validation part).
    """
    interim_path, out_path = Path(interim_path), Path(out_path)
    name = setting_name(spec)
    meta, info = read_interim_meta(interim_path)
    if info["dataset"] != spec.dataset:
        raise SplitError(f"{interim_path}: holds dataset {info['dataset']!r}, setting {name} needs {spec.dataset!r}")
    return write_split_table(meta, benchmark_part(meta, spec), int(info["num_class"]), spec, cfg, out_path, val_percent)


def write_split_table(
    meta: pd.DataFrame,
    part: np.ndarray,
    num_class: int,
    spec: SettingSpec,
    cfg: SplitConfig,
    out_path: Path,
    val_percent: int = 0,
) -> dict:
    """Rows (sample_id, label) and their parts ("train"/"test") -> the split parquet; returns a summary.

    `val_percent` of the training rows become the `val` part (see `validation_part`).

    The benchmark rule (`benchmark_part`) or another source of parts (`stf import --splits-out`
    takes a pyskl pickle's own split) decides `part`; the stratified subsets follow `cfg`.
    """
    out_path = Path(out_path)
    name = setting_name(spec)
    labels = meta["label"].to_numpy(dtype=np.int64)
    part = np.asarray(part, dtype=object)
    _check_classes(name, labels, part, num_class)
    train_rows = np.flatnonzero(part == "train")
    try:
        held_out = validation_part(labels[train_rows], val_percent, cfg.seed)
    except SplitError as err:
        raise SplitError(f"{name}: {err}") from None
    part[train_rows[held_out]] = "val"
    is_train = part == "train"
    try:
        subsets = stratified_subsets(labels[is_train], cfg.fractions, cfg.seed, num_class)
    except SplitError as err:
        raise SplitError(f"{name}: {err}") from None

    columns: dict[str, pa.Array] = {
        "sample_id": pa.array(meta["sample_id"].astype(str).to_numpy(), pa.string()),
        "label": pa.array(labels.astype(np.int32), pa.int32()),
        "part": pa.array(part, pa.string()),
    }
    counts: dict[str, int] = {}
    for f, mask in subsets.items():
        full = np.zeros(len(meta), dtype=bool)
        full[is_train] = mask
        columns[f"p{f}"] = pa.array(full, pa.bool_())
        counts[f"p{f}"] = int(full.sum())
    metadata = {
        "setting": name, "dataset": spec.dataset, "benchmark": spec.benchmark, "seed": cfg.seed,
        "val_percent": int(val_percent),
    }  # fmt: skip
    table = pa.table(columns).replace_schema_metadata({b"stf": json.dumps(metadata).encode()})
    with atomic_path(out_path) as tmp:
        pq.write_table(table, tmp)
    summary = {
        "setting": name,
        "train": int(is_train.sum()),
        "val": int((part == "val").sum()),
        "test": int((part == "test").sum()),
        "classes": num_class,
        "fractions": counts,
    }
    log.info("split %s: %s", name, summary)
    return summary


def read_split(path: Path) -> tuple[pd.DataFrame, dict]:
    """Split parquet -> (table as a DataFrame, its b"stf" metadata dict)."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise SplitError(f"{path}: cannot read split file: {err}") from None
    raw = (table.schema.metadata or {}).get(b"stf")
    if raw is None or not {"sample_id", "label", "part"} <= set(table.column_names):
        raise SplitError(f"{path}: not a split file (needs sample_id, label, part and b'stf' metadata)")
    return table.to_pandas(), json.loads(raw)
