"""Training arrays: one setting's part (and subset) of a preprocessed parquet, joint or bone.

`load_arrays(interim, split, part, stream, fraction)` joins the interim parquet with a split
parquet and returns `SkeletonArrays` (x (N, C, T, V, M) float32, y (N,) int64, ids).
Training gathers its batches from these arrays (`stf.training.loop`); `SkeletonDataset` is
the same data as a torch `Dataset`, for DataLoader users.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from stf.data.preprocess import read_interim, read_interim_meta
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

    For each bone pair (v1, v2) of `layout.bone_pairs`, the coordinate channels of joint v1
    become joint[v1] - joint[v2] (the root's self-pair gives 0). The channels after
    `coord_channels` (NTU visibility, Kinetics confidence) become min(value[v1], value[v2]),
    and the bone's coordinates are zeroed where that minimum is 0 (a bone needs both ends).
    `coord_channels` defaults to the layout's dimension (3 NTU, 2 OpenPose); joints that are
    not the first element of any pair become 0.
    """
    cc = _coord_channels(layout) if coord_channels is None else coord_channels
    if x.ndim != 5 or not 0 < cc <= x.shape[1]:
        raise ValueError(f"bone_features needs (N, C>={cc}, T, V, M), got shape {tuple(x.shape)}")
    v1 = [a for a, _ in layout.bone_pairs]
    v2 = [b for _, b in layout.bone_pairs]
    is_torch = isinstance(x, torch.Tensor)
    out = torch.zeros_like(x) if is_torch else np.zeros_like(x)
    out[:, :cc, :, v1] = x[:, :cc, :, v1] - x[:, :cc, :, v2]
    if x.shape[1] > cc:
        minimum = torch.minimum if is_torch else np.minimum
        lo = minimum(x[:, cc:, :, v1], x[:, cc:, :, v2])  # (N, C - cc, T, |pairs|, M)
        out[:, cc:, :, v1] = lo
        both = lo[:, :1] > 0  # (N, 1, T, |pairs|, M)
        out[:, :cc, :, v1] = out[:, :cc, :, v1] * both
    return out


@dataclass
class SkeletonArrays:
    """One part of a setting in memory: x (N, C, T, V, M) float32, y (N,) int64, ids (N,) str."""

    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    num_class: int
    layout: Layout
    dataset: str

    def __len__(self) -> int:
        return int(self.y.shape[0])


def load_arrays(
    interim: Path,
    split: Path,
    part: Literal["train", "val", "test"],
    stream: Literal["joint", "bone"],
    fraction: int = 100,
) -> SkeletonArrays:
    """Interim parquet + split parquet -> the samples of `part` (train: the `p{fraction}` subset;
    val: the validation part held out of training, empty when the split has none).

    Rows keep the interim order (sorted by sample id). Only the selected samples' tensors are
    read. Raises `DatasetError` when the split names samples the interim file lacks, when the
    datasets differ, or when column `p{fraction}` does not exist.
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
    loaded = read_interim(interim, rows)
    layout = layout_for(info["dataset"])
    x = loaded.data  # (N, C, T, V, M)
    if stream == "bone":
        x = bone_features(x, layout)
    log.info("%s %s/%s p%d: %d samples %s", info["dataset"], part, stream, fraction, len(rows), tuple(x.shape))
    return SkeletonArrays(
        x=x,
        y=loaded.meta["label"].to_numpy(dtype=np.int64),
        ids=loaded.meta["sample_id"].astype(str).to_numpy(),
        num_class=int(info["num_class"]),
        layout=layout,
        dataset=str(info["dataset"]),
    )


class SkeletonDataset(Dataset):
    """torch Dataset over `SkeletonArrays`: item i -> (x (C, T, V, M) float tensor, label int, i)."""

    def __init__(self, arrays: SkeletonArrays) -> None:
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return torch.from_numpy(self.arrays.x[i]), int(self.arrays.y[i]), int(i)
