"""The articulated body behind the synthetic dataset: rest pose, proportions, FK and arm IK.

One 3-D body serves both datasets. Its 30 joints are the 25 NTU RGB+D joints (0-based, in
NTU order) followed by 5 face points (nose, left/right eye, left/right ear) that only the
OpenPose-18 projection uses. The kinematic tree is the NTU graph of `stf.data.skeletons.NTU25`
re-rooted at the spine base, with the face points hung from the head.

Body frame: x = the person's left, y = up, z = the direction the person faces; metres; the
spine base is the origin of the rest pose. Rotations follow the bone convention: the rotation
stored for joint j turns the bone parent(j) -> j, pivoting at the parent, and everything
below it. `forward_kinematics` takes per-bone rotation tracks `(F, 3, 3)` and returns joint
positions `(F, J, 3)`; `reach_arm` overwrites one arm with a two-bone IK solution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------- joint names

SPINE_BASE, SPINE_MID, NECK, HEAD = 0, 1, 2, 3
L_SHOULDER, L_ELBOW, L_WRIST, L_HAND = 4, 5, 6, 7
R_SHOULDER, R_ELBOW, R_WRIST, R_HAND = 8, 9, 10, 11
L_HIP, L_KNEE, L_ANKLE, L_FOOT = 12, 13, 14, 15
R_HIP, R_KNEE, R_ANKLE, R_FOOT = 16, 17, 18, 19
SPINE_SHOULDER = 20
L_TIP, L_THUMB, R_TIP, R_THUMB = 21, 22, 23, 24
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 25, 26, 27, 28, 29
NUM_JOINTS = 30
NTU_JOINTS = 25

# arm chains: shoulder, elbow, wrist, hand, thumb, tip
ARMS: dict[str, tuple[int, int, int, int, int, int]] = {
    "L": (L_SHOULDER, L_ELBOW, L_WRIST, L_HAND, L_THUMB, L_TIP),
    "R": (R_SHOULDER, R_ELBOW, R_WRIST, R_HAND, R_THUMB, R_TIP),
}
FEET = (L_ANKLE, L_FOOT, R_ANKLE, R_FOOT)
# OpenPose-18 joint k is body joint OPENPOSE_FROM_BODY[k] (neck = NTU spine shoulder).
OPENPOSE_FROM_BODY = np.array(
    [NOSE, SPINE_SHOULDER, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST,
     R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, R_EYE, L_EYE, R_EAR, L_EAR]
)  # fmt: skip

# Rest pose of a 1.75 m person, body frame. Arms hang with elbow, wrist and hand on one line.
_REST = {
    SPINE_BASE: (0.0, 0.0, 0.0), SPINE_MID: (0.0, 0.27, -0.01), SPINE_SHOULDER: (0.0, 0.47, -0.02),
    NECK: (0.0, 0.54, -0.01), HEAD: (0.0, 0.66, 0.01),
    L_SHOULDER: (0.16, 0.45, -0.02), L_ELBOW: (0.19, 0.17, -0.04), L_WRIST: (0.21, -0.08, 0.0),
    R_SHOULDER: (-0.16, 0.45, -0.02), R_ELBOW: (-0.19, 0.17, -0.04), R_WRIST: (-0.21, -0.08, 0.0),
    L_HIP: (0.085, -0.02, 0.0), L_KNEE: (0.09, -0.44, 0.01), L_ANKLE: (0.09, -0.84, -0.02),
    L_FOOT: (0.09, -0.89, 0.08),
    R_HIP: (-0.085, -0.02, 0.0), R_KNEE: (-0.09, -0.44, 0.01), R_ANKLE: (-0.09, -0.84, -0.02),
    R_FOOT: (-0.09, -0.89, 0.08),
    NOSE: (0.0, 0.64, 0.11), L_EYE: (0.035, 0.67, 0.09), R_EYE: (-0.035, 0.67, 0.09),
    L_EAR: (0.075, 0.65, 0.0), R_EAR: (-0.075, 0.65, 0.0),
}  # fmt: skip
_HAND_LEN = 0.08
# hand, thumb and tip offsets from the hand joint; the mirror for the right hand flips x
_THUMB = (-0.01, -0.03, 0.045)
_TIP = (0.0, -0.09, 0.01)
REST_HEIGHT = 1.75
# elbows point out and back; the IK keeps them on that side of the shoulder-hand line
POLE = {"L": np.array([1.0, -0.3, -1.0]), "R": np.array([-1.0, -0.3, -1.0])}

_GROUPS = {
    "arm": (L_ELBOW, L_WRIST, L_HAND, L_THUMB, L_TIP, R_ELBOW, R_WRIST, R_HAND, R_THUMB, R_TIP),
    "leg": (L_KNEE, L_ANKLE, L_FOOT, R_KNEE, R_ANKLE, R_FOOT),
    "torso": (SPINE_MID, SPINE_SHOULDER, NECK, HEAD),
}


def _rest_positions() -> np.ndarray:
    """(30, 3) rest-pose joint positions of the reference person."""
    pos = np.zeros((NUM_JOINTS, 3))
    for j, p in _REST.items():
        pos[j] = p
    for side, sign in (("L", 1.0), ("R", -1.0)):
        _, elbow, wrist, hand, thumb, tip = ARMS[side]
        fore = pos[wrist] - pos[elbow]
        pos[hand] = pos[wrist] + _HAND_LEN * fore / np.linalg.norm(fore)
        pos[thumb] = pos[hand] + np.array(_THUMB) * (sign, 1, 1)
        pos[tip] = pos[thumb] + (np.array(_TIP) - np.array(_THUMB)) * (sign, 1, 1)
    return pos


def kinematic_tree(edges: Sequence[tuple[int, int]], num_joints: int) -> np.ndarray:
    """Undirected NTU edges (0-based pairs) -> parent array (30,) rooted at the spine base.

    The face points hang from the head; the root's parent is -1.
    """
    if num_joints != NTU_JOINTS or len(edges) != NTU_JOINTS - 1:
        raise ValueError(f"expected the 25-joint NTU layout with 24 edges, got {num_joints} joints")
    nbrs: dict[int, list[int]] = {j: [] for j in range(num_joints)}
    for a, b in edges:
        nbrs[a].append(b)
        nbrs[b].append(a)
    parent = np.full(NUM_JOINTS, -2)
    parent[SPINE_BASE] = -1
    stack = [SPINE_BASE]
    while stack:
        j = stack.pop()
        for k in nbrs[j]:
            if parent[k] == -2:
                parent[k] = j
                stack.append(k)
    if (parent[:NTU_JOINTS] == -2).any():
        raise ValueError("the NTU edges do not connect all 25 joints")
    parent[[NOSE, L_EYE, R_EYE, L_EAR, R_EAR]] = HEAD
    return parent


def topological_order(parent: np.ndarray) -> list[int]:
    """Joints ordered so that every parent comes before its children (root first)."""
    order, seen = [], set()

    def visit(j: int) -> None:
        if j in seen:
            return
        if parent[j] >= 0:
            visit(int(parent[j]))
        seen.add(j)
        order.append(j)

    for j in range(len(parent)):
        visit(j)
    return order


@dataclass(frozen=True)
class Body:
    """One performer's skeleton: parent array (J,), bone offsets (J, 3) in the body frame.

    `offsets[j]` = rest position of j minus rest position of its parent (zero at the root).
    `rest` (J, 3) is the rest pose with the spine base at the origin.
    """

    parent: np.ndarray
    order: tuple[int, ...]
    offsets: np.ndarray
    rest: np.ndarray
    height: float


def make_body(parent: np.ndarray, rng: np.random.Generator) -> Body:
    """A performer's body: height 1.50-1.92 m, arm/leg/torso ratios ±8 %, shoulders ±12 %."""
    height = float(rng.uniform(1.50, 1.92))
    ratios = {g: float(rng.uniform(0.92, 1.08)) for g in _GROUPS}
    shoulder = float(rng.uniform(0.88, 1.12))
    rest0 = _rest_positions()
    order = topological_order(parent)
    offsets = np.zeros_like(rest0)
    for j in order:
        if parent[j] >= 0:
            offsets[j] = rest0[j] - rest0[parent[j]]
    offsets *= height / REST_HEIGHT
    for group, joints in _GROUPS.items():
        offsets[list(joints)] *= ratios[group]
    offsets[[L_SHOULDER, R_SHOULDER, L_HIP, R_HIP], 0] *= shoulder
    rest = np.zeros_like(offsets)
    for j in order:
        if parent[j] >= 0:
            rest[j] = rest[parent[j]] + offsets[j]
    return Body(parent=parent, order=tuple(order), offsets=offsets, rest=rest, height=height)


# --------------------------------------------------------------------------- rotations


def axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation about body axis 0/1/2 (x/y/z) by `angle` (F,) radians -> (F, 3, 3)."""
    c, s = np.cos(angle), np.sin(angle)
    r = np.zeros((len(angle), 3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r[:, axis, axis] = 1.0
    r[:, i, i] = c
    r[:, j, j] = c
    r[:, i, j] = -s
    r[:, j, i] = s
    return r


def forward_kinematics(
    body: Body, rotations: Mapping[int, np.ndarray], root_rotation: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-bone rotations {joint: (F, 3, 3)} and the root's (F, 3, 3) -> positions, frames.

    Returns positions (F, J, 3) with the spine base at the origin and the global rotation of
    every bone (F, J, 3, 3) (the frame its children hang in).
    """
    frames = len(root_rotation)
    pos = np.zeros((frames, NUM_JOINTS, 3))
    glob = np.zeros((frames, NUM_JOINTS, 3, 3))
    for j in body.order:
        p = body.parent[j]
        if p < 0:
            glob[:, j] = root_rotation
            continue
        g = glob[:, p]
        if j in rotations:
            g = g @ rotations[j]  # (F, 3, 3)
        glob[:, j] = g
        pos[:, j] = pos[:, p] + g @ body.offsets[j]  # (F, 3)
    return pos, glob


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _frame(direction: np.ndarray, pole: np.ndarray) -> np.ndarray:
    """Orthonormal frames (..., 3, 3) with columns: direction, pole made perpendicular, their cross."""
    d = _unit(direction)
    n = pole - (pole * d).sum(-1, keepdims=True) * d + 1e-6 * np.array([0.0, 0.0, 1.0])
    n = _unit(n - (n * d).sum(-1, keepdims=True) * d)
    return np.stack([d, n, np.cross(d, n)], axis=-1)


def reach_arm(body: Body, pos: np.ndarray, chest: np.ndarray, side: str, target: np.ndarray) -> None:
    """Move one arm in `pos` (F, J, 3) so its hand reaches `target` (F, 3); in place.

    Two-bone IK (upper arm, forearm + hand) from the shoulder; the elbow bends towards the
    side's pole direction, given in the chest frame `chest` (F, 3, 3). Unreachable targets
    get the straightened arm pointing at them. Bone lengths are kept exactly.
    """
    sh, el, wr, ha, th, ti = ARMS[side]
    a = np.linalg.norm(body.offsets[el])
    fore = np.linalg.norm(body.offsets[wr])
    b = fore + np.linalg.norm(body.offsets[ha])
    shoulder = pos[:, sh]
    to_target = target - shoulder  # (F, 3)
    dist = np.clip(np.linalg.norm(to_target, axis=-1), abs(a - b) + 1e-3, a + b - 1e-4)
    pole = chest @ POLE[side]  # (F, 3)
    frame = _frame(to_target, pole)  # (F, 3, 3)
    cos_a = (a * a + dist * dist - b * b) / (2 * a * dist)
    sin_a = np.sqrt(np.clip(1 - cos_a**2, 0.0, 1.0))
    elbow = shoulder + a * (cos_a[:, None] * frame[..., 0] + sin_a[:, None] * frame[..., 1])
    hand = shoulder + dist[:, None] * frame[..., 0]
    rest = body.rest
    hand_frame = _frame(hand - elbow, pole)  # (F, 3, 3)
    rest_frame = _frame(rest[ha] - rest[el], POLE[side])  # (3, 3)
    turn = hand_frame @ rest_frame.T  # (F, 3, 3): rest hand -> posed hand
    pos[:, el] = elbow
    pos[:, wr] = elbow + (hand - elbow) * (fore / b)
    pos[:, ha] = hand
    pos[:, th] = hand + turn @ (rest[th] - rest[ha])
    pos[:, ti] = pos[:, th] + turn @ (rest[ti] - rest[th])
