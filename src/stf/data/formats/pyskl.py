"""pyskl annotation pickles (`ntu60_3danno.pkl`, `ntu120_3danno.pkl`, 2-D files of the same form).

The format (pyskl's tools/data/README.md): a dict with

    split        {split name: [frame_dir, ...]}, e.g. xsub_train, xsub_val, xview_train, ...
    annotations  [ {frame_dir: str, label: int, total_frames: int,
                    keypoint: (M, T, V, C) array,
                    keypoint_score: (M, T, V) array   (2-D data only),
                    img_shape: (height, width)        (2-D data only), ...}, ... ]

NTU 3-D annotations hold raw Kinect camera coordinates (metres, float16 in pyskl's release)
of at most two persons, `frame_dir` the NTU name without extension. `read_pyskl` loads the
file through `stf.data.safe_pickle` (no code runs) and checks the top-level structure;
`keypoint_layout` names the joint layout of one annotation's array; `write_pyskl` writes
the same structure (tests).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stf.data.safe_pickle import load_pickle
from stf.io import atomic_path

__all__ = ["PysklFile", "PysklFormatError", "keypoint_layout", "read_pyskl", "write_pyskl"]


class PysklFormatError(ValueError):
    """A pyskl pickle is not the documented dict of split and annotations; the message names it."""


@dataclass
class PysklFile:
    path: Path
    split: dict[str, list[str]]
    annotations: list[dict]


def read_pyskl(path: Path | str) -> PysklFile:
    """Load and check the top level: a dict with `split` (str -> list of str) and `annotations`
    (a list of dicts). Annotations themselves are checked by the importer, one at a time."""
    path = Path(path)
    obj = load_pickle(path)
    if not isinstance(obj, dict):
        raise PysklFormatError(f"{path}: expected a dict with 'split' and 'annotations', found {type(obj).__name__}")
    missing = [k for k in ("split", "annotations") if k not in obj]
    if missing:
        raise PysklFormatError(f"{path}: missing top-level keys {missing} (found {sorted(map(str, obj))[:8]})")
    split, annotations = obj["split"], obj["annotations"]
    if not isinstance(split, dict) or not all(isinstance(v, (list, tuple)) for v in split.values()):
        raise PysklFormatError(f"{path}: 'split' must map split names to lists of frame_dir")
    if not isinstance(annotations, (list, tuple)):
        raise PysklFormatError(f"{path}: 'annotations' must be a list, found {type(annotations).__name__}")
    bad = next((i for i, a in enumerate(annotations) if not isinstance(a, dict)), None)
    if bad is not None:
        raise PysklFormatError(f"{path}: annotation {bad} is a {type(annotations[bad]).__name__}, not a dict")
    clean_split = {str(k): [str(x) for x in v] for k, v in split.items()}
    return PysklFile(path=path, split=clean_split, annotations=list(annotations))


# (V, C) -> layout name; pyskl's other 2-D layouts (COCO-17 from HRNet) have no graph here
_LAYOUTS = {(25, 3): "ntu25", (18, 2): "openpose18", (18, 3): "openpose18"}


def keypoint_layout(annotation: dict) -> str:
    """ "ntu25" (V = 25, C = 3), "openpose18" (V = 18, C = 2; or C = 3 = x, y, score),
    "coco17" (V = 17, pyskl's HRNet 2-D files) or "V=.., C=.." for anything else;
    "none" when there is no 4-D `keypoint` array."""
    kp = annotation.get("keypoint")
    if not isinstance(kp, np.ndarray) or kp.ndim != 4:
        return "none"
    v, c = int(kp.shape[2]), int(kp.shape[3])
    if v == 17:
        return "coco17"
    return _LAYOUTS.get((v, c), f"V={v}, C={c}")


def write_pyskl(path: Path | str, split: dict[str, list[str]], annotations: list[dict]) -> None:
    """Write `{"split": split, "annotations": annotations}` with the default pickle protocol."""
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump({"split": split, "annotations": annotations}, fh)
