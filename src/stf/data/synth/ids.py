"""Which synthetic files exist: NTU sample ids and Kinetics video ids, train/val parts.

`ntu_plan(dataset, classes, samples_per_class, seed)` lays out NTU-style recordings: one
performance (setup, performer, replication, action) is filmed by up to 3 cameras at once, as
in the real dataset. The ids are chosen so that every class has training and test samples
under every benchmark of the dataset (x-sub and x-view for NTU-60, x-sub and x-set for
NTU-120) as soon as a class has 2 or more samples: the first performance of a class is by a
training performer in an even setup with camera 1, the second by a test performer in an odd
setup with camera 2 or 3; later ones are drawn (training performers 65 %, even setups 50 %).

`kinetics_plan(classes, samples_per_class, seed)` gives every clip an 11-character
YouTube-like id, its part (every 5th clip of a class, from the second on, is "val": 20 %)
and whether the label file says it has a skeleton (about 2 % do not; never the first train
or val clip of a class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stf.data.protocols import NTU60_XSUB_TRAIN, NTU120_XSUB_TRAIN, NTU_PERFORMERS, NTU_SETUPS

# dataset -> (setups, performers, training performers)
NTU_RANGES = {
    "ntu60": (NTU_SETUPS["ntu60"], NTU_PERFORMERS["ntu60"], NTU60_XSUB_TRAIN),
    "ntu120": (NTU_SETUPS["ntu120"], NTU_PERFORMERS["ntu120"], NTU120_XSUB_TRAIN),
}
DATASET_CODE = {"ntu60": 0, "ntu120": 1, "kinetics": 2}
_ID_CHARS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


@dataclass(frozen=True)
class NtuPerformance:
    """One performance of action `label + 1`, filmed by `cameras`; `index` counts within the class."""

    label: int
    index: int
    setup: int
    performer: int
    replication: int
    cameras: tuple[int, ...]

    def name(self, camera: int) -> str:
        return f"S{self.setup:03d}C{camera:03d}P{self.performer:03d}R{self.replication:03d}A{self.label + 1:03d}"


@dataclass(frozen=True)
class KineticsClip:
    label: int
    index: int  # global clip index: the clip's random stream
    video_id: str
    part: str  # "train" or "val"
    has_skeleton: bool


def _camera_counts(samples: int) -> list[int]:
    """Files per performance: at least 2 performances (when samples >= 2), at most 3 files each."""
    n = 1 if samples < 2 else max(2, math.ceil(samples / 3))
    return [samples // n + (p < samples % n) for p in range(n)]


def ntu_plan(dataset: str, classes: int, samples_per_class: int, seed: int) -> list[NtuPerformance]:
    """Performances of every class, in label order; ValueError when the id space is too small."""
    if dataset not in NTU_RANGES:
        raise ValueError(f"{dataset!r} is not an NTU dataset (ntu60, ntu120)")
    setups, performers, train = NTU_RANGES[dataset]
    if classes > (60 if dataset == "ntu60" else 120):
        raise ValueError(f"{dataset} has at most {60 if dataset == 'ntu60' else 120} actions, asked for {classes}")
    groups = ([p for p in performers if p in train], [p for p in performers if p not in train])
    parities = ([s for s in setups if s % 2 == 0], [s for s in setups if s % 2 == 1])
    counts = _camera_counts(samples_per_class)
    out: list[NtuPerformance] = []
    for label in range(classes):
        rng = np.random.default_rng([seed, DATASET_CODE[dataset], 1, label])
        cells: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        for p, count in enumerate(counts):
            if p < 2:
                key = (p, p)  # (0 = training performer, 0 = even setup) and (1 = test, 1 = odd)
            else:
                key = (int(rng.random() >= 0.65), int(rng.random() >= 0.5))
            if key not in cells:
                combos = [(s, q, r) for s in parities[key[1]] for q in groups[key[0]] for r in (1, 2)]
                cells[key] = [combos[i] for i in rng.permutation(len(combos))]
            if not cells[key]:
                raise ValueError(
                    f"{dataset}: {samples_per_class} samples per class need more distinct "
                    f"(setup, performer, replication) ids than the dataset's ranges hold"
                )
            setup, performer, replication = cells[key].pop()
            if count == 3:
                cams: tuple[int, ...] = (1, 2, 3)
            elif count == 2:
                cams = (1, int(rng.integers(2, 4)))
            else:
                cams = (1,) if p % 2 == 0 else (int(rng.integers(2, 4)),)
            out.append(NtuPerformance(label, p, setup, performer, replication, cams))
    return out


def kinetics_plan(classes: int, samples_per_class: int, seed: int) -> list[KineticsClip]:
    """Clips of every class, in label order, with unique ids (ValueError on a collision)."""
    out: list[KineticsClip] = []
    seen: set[str] = set()
    for label in range(classes):
        for j in range(samples_per_class):
            i = label * samples_per_class + j
            rng = np.random.default_rng([seed, DATASET_CODE["kinetics"], 1, i])
            video_id = "".join(_ID_CHARS[rng.integers(0, len(_ID_CHARS), size=11)])
            if video_id in seen:  # 66 random bits: practically never
                raise ValueError(f"kinetics: video id {video_id} drawn twice; change synth.seed")
            seen.add(video_id)
            part = "val" if j % 5 == 1 else "train"
            out.append(KineticsClip(label, i, video_id, part, has_skeleton=not (j >= 2 and i % 47 == 5)))
    return out
