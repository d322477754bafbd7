"""A setting's part (train or test, joint or bone) of a preprocessed parquet, read a batch at a time.

`load_part(interim, split, part, stream, fraction)` joins the interim parquet's metadata with
a split parquet and returns a `SkeletonPart`: which rows, their labels and ids, no tensor.
A `SkeletonPart` is a map-style torch `Dataset` whose item is a whole batch:
`part[positions]` reads those samples (positions 0..len-1 in the part) from the parquet,
computes the bone stream when asked (`bone_features`, on the stored frames), fits every
sample to T frames (`stf.data.normalize.fit_frames`, repeat or zero padding as the file's
metadata says) and returns (x (B, C, T, V, M) float32, y (B,) int64, positions (B,) int64).
`stf.data.loader.batch_loader` streams such batches with worker processes, so memory does
not grow with the dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from stf.data.normalize import fit_frames
from stf.data.preprocess import InterimReader, read_interim_meta
from stf.data.skeletons import Layout, layout_for
from stf.data.splits import read_split

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """Interim and split files do not fit together, or a request does not fit them."""


def _coord_channels(layout: Layout) -> int:
    """Coordinates per joint of a layout: 3 for NTU-25 (Kinect, metres), 2 for OpenPose-18."""
    return 2 if layout.num_joints == 18 else 3


def bone_features(
    x: np.ndarray | torch.Tensor, layout: Layout, coord_channels: int | None = None
) -> np.ndarray | torch.Tensor:
    """Joint tensor (N, C, T, V, M) -> bone tensor of the same shape and type.

    For each bone pair (v1, v2) of `layout.bone_pairs` (every joint is the v1 of exactly one
    pair), the coordinate channels of joint v1 become joint[v1] - joint[v2] (the root's
    self-pair gives 0). The channels after `coord_channels` (NTU visibility, Kinetics
    confidence) become min(value[v1], value[v2]), and the bone's coordinates are zeroed where
    that minimum is 0 (a bone needs both ends). `coord_channels` defaults to the layout's
    dimension (3 NTU, 2 OpenPose). Any T works, e.g. T = 1 for a stack of single frames.
    """
    cc = _coord_channels(layout) if coord_channels is None else coord_channels
    if x.ndim != 5 or not 0 < cc <= x.shape[1] or x.shape[3] != layout.num_joints:
        raise ValueError(f"bone_features needs (N, C>={cc}, T, V={layout.num_joints}, M), got shape {tuple(x.shape)}")
    parents = layout.bone_parents  # (V,): v2 of each joint's pair
    if isinstance(x, torch.Tensor):
        xp = x.index_select(3, torch.from_numpy(parents).to(x.device))  # (N, C, T, V, M): x at v2
        out = torch.empty_like(x)
        minimum = torch.minimum
    else:
        xp = np.take(x, parents, axis=3)  # (N, C, T, V, M): x at v2
        out = np.empty_like(x)
        minimum = np.minimum
    out[:, :cc] = x[:, :cc] - xp[:, :cc]
    if x.shape[1] > cc:
        lo = minimum(x[:, cc:], xp[:, cc:])  # (N, C - cc, T, V, M)
        out[:, cc:] = lo
        out[:, :cc] *= lo[:, :1] > 0  # (N, 1, T, V, M): both ends present
    return out


class SkeletonPart(Dataset):
    """One part of a setting, streamed from the interim parquet; an item is a batch.

    path: the interim parquet; rows (N,) int64 its row numbers (ascending); y (N,) int64
    labels; ids (N,) str; n_frames (N,) stored lengths; stream "joint" or "bone"; info the
    file's b"stf" metadata. `shape` is (C, T, V, M) of one loaded sample. Picklable: worker
    processes open the file themselves.
    """

    def __init__(
        self, path: Path, rows: np.ndarray, y: np.ndarray, ids: np.ndarray, n_frames: np.ndarray,
        stream: str, info: dict,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.y = np.asarray(y, dtype=np.int64)
        self.ids = np.asarray(ids)
        self.n_frames = np.asarray(n_frames, dtype=np.int64)
        self.stream = stream
        self.info = info
        self.dataset = str(info["dataset"])
        self.num_class = int(info["num_class"])
        self.layout: Layout = layout_for(self.dataset)
        self.shape: tuple[int, int, int, int] = tuple(int(s) for s in info["shape"])  # (C, T, V, M)
        self._reader = InterimReader(self.path, info)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def read(self, positions: np.ndarray) -> np.ndarray:
        """Samples at `positions` (B,) of this part -> (B, C, T, V, M) float32, in that order."""
        positions = np.asarray(positions, dtype=np.int64)
        lengths = self.n_frames[positions]
        values = self._reader.frames(self.rows[positions], lengths)  # (F, C, V, M), storage dtype
        values = values.astype(np.float32, copy=False)  # float16 widened; nothing below writes into it
        if self.stream == "bone":
            f, c, v, m = values.shape
            values = bone_features(values.reshape(f, c, 1, v, m), self.layout).reshape(f, c, v, m)  # per frame
        return fit_frames(values, lengths, self.shape[1], self.info["pad"])  # (B, C, T, V, M)

    def __getitem__(self, positions: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch: (x (B, C, T, V, M) float32, y (B,) int64, positions (B,) int64)."""
        positions = np.asarray(positions, dtype=np.int64)
        if positions.ndim != 1:
            raise DatasetError(f"{self.path}: a SkeletonPart item is a batch; give a 1-D list of positions")
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise DatasetError(f"{self.path}: positions outside 0..{len(self) - 1} of this part")
        x = torch.from_numpy(self.read(positions))
        return x, torch.from_numpy(self.y[positions]), torch.from_numpy(positions)


def load_part(
    interim: Path,
    split: Path,
    part: Literal["train", "val", "test"],
    stream: Literal["joint", "bone"],
    fraction: int = 100,
) -> SkeletonPart:
    """Interim parquet + split parquet -> the samples of `part` (train: the `p{fraction}` subset;
    val: the validation part held out of training, empty when the split has none).

    Rows keep the interim order (sorted by sample id). Reads metadata only. Raises
    `DatasetError` when the split names samples the interim file lacks, when the datasets
    differ, or when column `p{fraction}` does not exist.
    """
    interim, split = Path(interim), Path(split)
    if part not in ("train", "val", "test"):
        raise DatasetError(f"part must be 'train', 'val' or 'test', got {part!r}")
    if stream not in ("joint", "bone"):
        raise DatasetError(f"stream must be 'joint' or 'bone', got {stream!r}")
    meta, info = read_interim_meta(interim)
    table, split_info = read_split(split)
    if split_info.get("dataset") != info["dataset"]:
        raise DatasetError(
            f"{split}: split of dataset {split_info.get('dataset')!r}, but {interim} holds {info['dataset']!r}"
        )
    mask = (table["part"] == part).to_numpy()
    if part == "train":
        col = f"p{fraction}"
        if col not in table.columns:
            have = sorted(c for c in table.columns if c.startswith("p") and c[1:].isdigit())
            raise DatasetError(f"{split}: no training subset {col}; the split has {have}")
        mask = mask & table[col].to_numpy(dtype=bool)
    wanted = table.loc[mask, "sample_id"].astype(str).to_numpy()
    position = {sid: i for i, sid in enumerate(meta["sample_id"].astype(str))}
    absent = [s for s in wanted if s not in position]
    if absent:
        raise DatasetError(f"{split}: {len(absent)} sample(s) not in {interim}, e.g. {absent[:3]}")
    rows = np.sort(np.fromiter((position[s] for s in wanted), dtype=np.int64, count=len(wanted)))
    chosen = meta.iloc[rows]
    out = SkeletonPart(
        interim, rows, chosen["label"].to_numpy(dtype=np.int64), chosen["sample_id"].astype(str).to_numpy(),
        chosen["n_frames"].to_numpy(dtype=np.int64), stream, info,
    )  # fmt: skip
    log.info("%s %s/%s p%d: %d samples of %s", info["dataset"], part, stream, fraction, len(out), out.shape)
    return out
