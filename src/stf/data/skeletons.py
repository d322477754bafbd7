"""Joint layouts: the NTU RGB+D Kinect-v2 skeleton (25 joints) and OpenPose-18 (Kinetics).

A `Layout` holds what the rest of the package needs about a skeleton: the joint count, the
graph edges, the bone pairs of the bone stream, the centre joint used for normalisation and
the joint names. Edges and bone pairs are MS-G3D's (`graph/ntu_rgb_d.py`, `graph/kinetics.py`,
`data_gen/gen_bone_data.py`), converted to 0-based indices:

- `edges`: the "inward" edges `(child, parent)`; the graph is their symmetric closure.
- `bone_pairs`: `(v1, v2)`, the bone stored at joint v1 is `joint[v1] - joint[v2]`; every joint
  appears exactly once as v1, and the root's pair is `(root, root)` (a zero bone).

`Layout.adjacency()` gives the symmetric binary adjacency (V, V) without self-loops;
`Layout.bone_parents` the v2 of every joint, so `bones = x[..., parents, :]`-style indexing works.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Layout", "NTU25", "OPENPOSE18", "layout_for"]


@dataclass(frozen=True)
class Layout:
    """A skeleton layout; all indices are 0-based.

    name: "ntu25" or "openpose18".
    num_joints: V.
    edges: inward edges (child, parent), V - 1 of them for a tree.
    bone_pairs: (v1, v2) with bone[v1] = joint[v1] - joint[v2]; one pair per joint.
    center: the joint subtracted from all joints by preprocessing.
    joint_names: V names, index = joint.
    """

    name: str
    num_joints: int
    edges: tuple[tuple[int, int], ...]
    bone_pairs: tuple[tuple[int, int], ...]
    center: int
    joint_names: tuple[str, ...]

    def __post_init__(self) -> None:
        v = self.num_joints
        if len(self.joint_names) != v:
            raise ValueError(f"layout {self.name}: {len(self.joint_names)} joint names for {v} joints")
        for a, b in self.edges + self.bone_pairs:
            if not (0 <= a < v and 0 <= b < v):
                raise ValueError(f"layout {self.name}: pair ({a}, {b}) outside 0..{v - 1}")
        if any(a == b for a, b in self.edges):
            raise ValueError(f"layout {self.name}: self-loop in edges")
        if sorted(a for a, _ in self.bone_pairs) != list(range(v)):
            raise ValueError(f"layout {self.name}: every joint must appear exactly once as a bone's v1")
        if not 0 <= self.center < v:
            raise ValueError(f"layout {self.name}: center {self.center} outside 0..{v - 1}")

    def adjacency(self) -> np.ndarray:
        """Symmetric binary adjacency, float32 (V, V): 1 where two joints share an edge, 0 on the diagonal."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        child, parent = np.asarray(self.edges, dtype=np.int64).T  # (E,), (E,)
        a[child, parent] = 1.0
        a[parent, child] = 1.0
        return a

    @property
    def bone_parents(self) -> np.ndarray:
        """int64 (V,): `parents[v1] = v2` of v1's bone pair, so `bone = x - x[..., parents, :]` per joint."""
        parents = np.empty(self.num_joints, dtype=np.int64)
        for v1, v2 in self.bone_pairs:
            parents[v1] = v2
        return parents


def _zero_based(pairs_1based: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    return tuple((a - 1, b - 1) for a, b in pairs_1based)


# MS-G3D graph/ntu_rgb_d.py inward edges, 1-based (child, parent); 24 edges.
_NTU_EDGES_1 = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
)  # fmt: skip
# MS-G3D data_gen/gen_bone_data.py NTU pairs, 1-based (v1, v2); root 21 (spine shoulder).
_NTU_BONES_1 = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (21, 21), (23, 8), (24, 25), (25, 12),
)  # fmt: skip
_NTU_NAMES = (
    "spine base", "spine mid", "neck", "head",
    "left shoulder", "left elbow", "left wrist", "left hand",
    "right shoulder", "right elbow", "right wrist", "right hand",
    "left hip", "left knee", "left ankle", "left foot",
    "right hip", "right knee", "right ankle", "right foot",
    "spine shoulder", "left hand tip", "left thumb", "right hand tip", "right thumb",
)  # fmt: skip

NTU25 = Layout(
    name="ntu25",
    num_joints=25,
    edges=_zero_based(_NTU_EDGES_1),
    bone_pairs=_zero_based(_NTU_BONES_1),
    center=1,  # spine mid (MS-G3D pre_normalization centres on 0-based joint 1)
    joint_names=_NTU_NAMES,
)

# MS-G3D graph/kinetics.py, already 0-based; 17 edges.
_OPENPOSE_EDGES = (
    (4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2),
    (5, 1), (2, 1), (0, 1), (15, 0), (14, 0), (17, 15), (16, 14),
)  # fmt: skip
# MS-G3D data_gen/gen_bone_data.py Kinetics pairs, 0-based; root 0 (nose).
_OPENPOSE_BONES = (
    (0, 0), (1, 0), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6), (8, 2), (9, 8),
    (10, 9), (11, 5), (12, 11), (13, 12), (14, 0), (15, 0), (16, 14), (17, 15),
)  # fmt: skip
_OPENPOSE_NAMES = (
    "nose", "neck", "right shoulder", "right elbow", "right wrist",
    "left shoulder", "left elbow", "left wrist", "right hip", "right knee", "right ankle",
    "left hip", "left knee", "left ankle", "right eye", "left eye", "right ear", "left ear",
)  # fmt: skip

OPENPOSE18 = Layout(
    name="openpose18",
    num_joints=18,
    edges=_OPENPOSE_EDGES,
    bone_pairs=_OPENPOSE_BONES,
    center=1,  # neck
    joint_names=_OPENPOSE_NAMES,
)

_BY_DATASET = {"ntu60": NTU25, "ntu120": NTU25, "kinetics": OPENPOSE18}


def layout_for(dataset: str) -> Layout:
    """The layout of a dataset name ("ntu60", "ntu120" -> NTU25; "kinetics" -> OPENPOSE18)."""
    try:
        return _BY_DATASET[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(_BY_DATASET)}") from None
