"""The files every scored model directory holds, and `scores.parquet` itself.

A model directory (trained, fine-tuned, an ensemble or a fusion) holds `scores.parquet`
(one row per test sample: sample_id, label, logits and probs as list<float32>),
`metrics.json` (`stf.metrics.compute_metrics`) and, for a network, `model.pt`; an
ensemble directory also `ensemble.json`. `write_scores` / `read_scores` / `score_matrix`
are shared by training, evaluation, fusion and the report; no torch here, so fusion and
the report start without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stf.io import atomic_path

SCORES = "scores.parquet"
METRICS = "metrics.json"
MODEL = "model.pt"
ENSEMBLE = "ensemble.json"  # an ensemble directory's members: {"members": [paths relative to it]}


class ScoresError(ValueError):
    """A scores file or model directory is missing or malformed; the message names it."""


# --------------------------------------------------------------------------- scores.parquet


def _list_column(matrix: np.ndarray) -> pa.Array:
    """(N, K) float matrix -> list<float32> column of N rows."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n, k = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32) if n else np.zeros(1, np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))  # flat (N*K,)


def write_scores(
    out_dir: Path | str, ids: Sequence[str], labels: np.ndarray, logits: np.ndarray, probs: np.ndarray
) -> Path:
    """Write `<out_dir>/scores.parquet`: sample_id, label int32, logits and probs list<float32>."""
    out_dir = Path(out_dir)
    labels = np.asarray(labels)
    logits, probs = np.asarray(logits), np.asarray(probs)
    if not (len(ids) == len(labels) == logits.shape[0] == probs.shape[0]) or logits.shape != probs.shape:
        raise ValueError(
            f"{out_dir / SCORES}: mismatched lengths ids={len(ids)} labels={len(labels)} "
            f"logits={logits.shape} probs={probs.shape}"
        )
    table = pa.table(
        {
            "sample_id": pa.array([str(i) for i in ids], pa.string()),
            "label": pa.array(labels.astype(np.int32)),
            "logits": _list_column(logits),
            "probs": _list_column(probs),
        }
    )
    target = out_dir / SCORES
    with atomic_path(target, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    return target


def read_scores(path: Path | str) -> pd.DataFrame:
    """Read `scores.parquet` (given its directory or the file itself).

    Returns a DataFrame with sample_id (str), label (int), logits and probs (one float32
    array per row, all of the same length). Raises `ScoresError` naming the file when it
    is missing, lacks a column, has ragged score rows or duplicate sample ids.
    """
    path = Path(path)
    file = path / SCORES if path.is_dir() or path.suffix != ".parquet" else path
    if not file.is_file():
        raise ScoresError(f"{file}: scores file not found")
    try:
        table = pq.read_table(file)
    except (OSError, pa.ArrowInvalid) as err:
        raise ScoresError(f"{file}: not a readable parquet file ({err})") from None
    missing = {"sample_id", "label", "logits", "probs"} - set(table.column_names)
    if missing:
        raise ScoresError(f"{file}: missing columns {sorted(missing)}")
    df = table.select(["sample_id", "label", "logits", "probs"]).to_pandas()
    if df.empty:
        raise ScoresError(f"{file}: no rows")
    for col in ("logits", "probs"):
        lengths = {len(v) for v in df[col]}
        if len(lengths) != 1:
            raise ScoresError(f"{file}: column {col} has rows of different lengths {sorted(lengths)}")
        df[col] = [np.asarray(v, dtype=np.float32) for v in df[col]]
    if df["sample_id"].duplicated().any():
        dup = df.loc[df["sample_id"].duplicated(), "sample_id"].iloc[0]
        raise ScoresError(f"{file}: duplicate sample_id {dup!r}")
    return df


def score_matrix(df: pd.DataFrame, column: str = "probs") -> np.ndarray:
    """Stack a list column of `read_scores` output into an (N, K) float32 matrix."""
    return np.stack(df[column].to_numpy()).astype(np.float32)
