"""Per-class motion programs of the synthetic dataset, drawn from a seed.

A class is a `ClassMotion`: what the performer (and, for two-person classes, the partner)
does, as joint-angle tracks (`Dof`: which bone, which axis, posture offset, amplitude,
cycles, phase, envelope), an optional hand reach to a target (`Reach`: a joint of the own
body, of the partner, a point in front, or a meeting point between two people), and root
motion (`Root`: walk, turn, hop, being pushed back).

`class_motions(n, seed, namespace, two_person_fraction, confusable_fraction, parent)` returns
the n classes. Class c depends only on (seed, namespace, c) and the fractions, so a dataset
with more classes starts with the same classes as one with fewer (NTU-120 contains NTU-60).
Roles are placed by quota (`class_roles`): class c becomes a twin of class c - 1 while fewer
than round((c + 1) * confusable_fraction) twins exist (never a twin of a twin, so at most
half the classes), otherwise a two-person class while fewer than
round((c + 1) * two_person_fraction) exist. A twin copies its base, including the number of
people, and moves the reach target one link along the skeleton graph (touch head -> touch
neck); the base is drawn with a joint-target reach for that reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from stf.data.synth import body as sb

DEG = math.pi / 180.0

# (bone joint, axis, sign): the bone's rotation that a positive angle means, body frame
DOFS: dict[str, tuple[int, int, float]] = {
    "l_shoulder_flex": (sb.L_ELBOW, 0, -1.0), "r_shoulder_flex": (sb.R_ELBOW, 0, -1.0),
    "l_shoulder_abd": (sb.L_ELBOW, 2, 1.0), "r_shoulder_abd": (sb.R_ELBOW, 2, -1.0),
    "l_elbow_flex": (sb.L_WRIST, 0, -1.0), "r_elbow_flex": (sb.R_WRIST, 0, -1.0),
    "l_hip_flex": (sb.L_KNEE, 0, -1.0), "r_hip_flex": (sb.R_KNEE, 0, -1.0),
    "l_hip_abd": (sb.L_KNEE, 2, 1.0), "r_hip_abd": (sb.R_KNEE, 2, -1.0),
    "l_knee_flex": (sb.L_ANKLE, 0, 1.0), "r_knee_flex": (sb.R_ANKLE, 0, 1.0),
    "spine_flex": (sb.SPINE_MID, 0, 1.0), "spine_side": (sb.SPINE_MID, 2, 1.0),
    "spine_twist": (sb.SPINE_MID, 1, 1.0), "chest_flex": (sb.SPINE_SHOULDER, 0, 1.0),
    "neck_nod": (sb.HEAD, 0, 1.0), "neck_turn": (sb.HEAD, 1, 1.0), "neck_tilt": (sb.HEAD, 2, 1.0),
}  # fmt: skip

# joints a hand may reach on a body; twins move along these graph links
SELF_TARGETS = (sb.HEAD, sb.NECK, sb.SPINE_SHOULDER, sb.SPINE_MID, sb.SPINE_BASE, sb.L_SHOULDER,
                sb.R_SHOULDER, sb.L_ELBOW, sb.R_ELBOW, sb.L_HIP, sb.R_HIP, sb.L_KNEE, sb.R_KNEE)  # fmt: skip
PARTNER_TARGETS = (sb.HEAD, sb.NECK, sb.SPINE_SHOULDER, sb.SPINE_MID, sb.SPINE_BASE, sb.L_SHOULDER,
                   sb.R_SHOULDER, sb.L_ELBOW, sb.R_ELBOW, sb.L_WRIST, sb.R_WRIST, sb.L_HAND, sb.R_HAND,
                   sb.L_HIP, sb.R_HIP)  # fmt: skip
_OWN_ARM = {"L": {sb.L_SHOULDER, sb.L_ELBOW}, "R": {sb.R_SHOULDER, sb.R_ELBOW}}


def _banned(side: str) -> set[int]:
    """Joints of the reaching arm itself, which that hand cannot touch."""
    return _OWN_ARM["L"] | _OWN_ARM["R"] if side == "both" else _OWN_ARM[side]


@dataclass(frozen=True)
class Dof:
    """angle(u) = sign * env(u) * (offset + amp * sin(2 pi cycles u' + phase)), u' in the window.

    `env`: "inout" ramps in and back out, "in" ramps in and stays (sit down), "out" starts in
    the posture and returns to rest (stand up). Angles in radians.
    """

    name: str
    offset: float
    amp: float
    cycles: float
    phase: float
    env: str = "inout"


@dataclass(frozen=True)
class Reach:
    """A hand (side "L", "R" or "both") goes to a target `touches` times and holds there.

    who: "self" / "partner" (a joint of that body, `point` metres in front of it), "front"
    (`point` in the performer's chest frame), "meet" (between two people, at chest height).
    """

    side: str
    who: str
    joint: int
    point: tuple[float, float, float]
    touches: int
    hold: float
    wiggle: float  # metres of circling at the target (rubbing, brushing)
    wiggle_cycles: float


@dataclass(frozen=True)
class Root:
    walk: float = 0.0  # metres along the facing direction over the action
    turn: float = 0.0  # radians of yaw over the action
    hop: float = 0.0  # metres of jump height
    hop_cycles: float = 0.0
    push_back: float = 0.0  # metres moved away from the other person mid-action


@dataclass(frozen=True)
class PersonMotion:
    dofs: tuple[Dof, ...]
    reach: Reach | None
    root: Root


@dataclass(frozen=True)
class ClassMotion:
    """One class: the performer, the partner (None for one-person classes), typical length."""

    label: int
    actor: PersonMotion
    partner: PersonMotion | None
    duration: float  # typical length as a fraction of [min_frames, max_frames]
    twin_of: int | None = None


def _quota(c: int, fraction: float, count: int) -> bool:
    return count < math.floor((c + 1) * fraction + 0.5)


def class_roles(n: int, two_person_fraction: float, confusable_fraction: float) -> list[tuple[bool, bool]]:
    """(is_two_person, is_twin_of_previous) for classes 0..n-1; a prefix of a longer list."""
    roles: list[tuple[bool, bool]] = []
    two = twins = 0
    for c in range(n):
        if c >= 1 and not roles[c - 1][1] and _quota(c, confusable_fraction, twins):
            role = (roles[c - 1][0], True)
        else:
            role = (_quota(c, two_person_fraction, two), False)
        two += role[0]
        twins += role[1]
        roles.append(role)
    return roles


def _angle(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi)) * DEG


def _arm_dofs(rng: np.random.Generator) -> list[Dof]:
    """Waving, raising, punching: 1-2 arm dofs on one arm or both (in phase or alternating)."""
    sides = [["l"], ["r"], ["l", "r"]][rng.choice(3, p=[0.3, 0.4, 0.3])]
    kinds = rng.choice(["shoulder_flex", "shoulder_abd", "elbow_flex"], size=rng.integers(1, 3), replace=False)
    anti = bool(rng.random() < 0.5)
    out = []
    for kind in kinds:
        off, amp = _angle(rng, 0, 100), _angle(rng, 15, 60)
        cyc, ph = float(rng.uniform(1, 4)), float(rng.uniform(0, 2 * math.pi))
        for k, s in enumerate(sides):
            out.append(Dof(f"{s}_{kind}", off, amp, cyc, ph + (math.pi if anti and k else 0.0)))
    return out


def _leg_dofs(rng: np.random.Generator) -> list[Dof]:
    """Kicking, stepping: hip and knee of one leg swing together."""
    s = "l" if rng.random() < 0.4 else "r"
    cyc, ph = float(rng.uniform(1, 3)), float(rng.uniform(0, 2 * math.pi))
    knee_phase = ph + float(rng.uniform(-1, 1))
    dofs = [
        Dof(f"{s}_hip_flex", _angle(rng, 10, 50), _angle(rng, 15, 45), cyc, ph),
        Dof(f"{s}_knee_flex", _angle(rng, 10, 60), _angle(rng, 10, 40), cyc, knee_phase),
    ]
    if rng.random() < 0.3:
        dofs.append(Dof(f"{s}_hip_abd", _angle(rng, 5, 30), _angle(rng, 5, 20), cyc, ph))
    return dofs


_TORSO = ["spine_flex", "spine_side", "spine_twist", "chest_flex", "neck_nod", "neck_turn", "neck_tilt"]


def _torso_dofs(rng: np.random.Generator, small: bool = False) -> list[Dof]:
    """Bowing, bending, twisting, nodding, shaking the head (`small`: a quarter of the angles)."""
    name = str(rng.choice(_TORSO))
    scale = 0.25 if small else 1.0
    off = _angle(rng, 0, 45) * scale * (1 if name.endswith("flex") else float(rng.choice([-1, 1])))
    return [Dof(name, off, _angle(rng, 5, 35) * scale, float(rng.uniform(0.5, 3)), float(rng.uniform(0, 6.3)))]


def _gait(rng: np.random.Generator) -> list[Dof]:
    """Legs alternating: 2-5 steps over the action."""
    half, amp = float(rng.integers(2, 6)) / 2, _angle(rng, 15, 30)
    return [
        Dof("l_hip_flex", 0.0, amp, half, 0.0), Dof("r_hip_flex", 0.0, amp, half, math.pi),
        Dof("l_knee_flex", amp, amp, half, -1.0), Dof("r_knee_flex", amp, amp, half, math.pi - 1.0),
    ]  # fmt: skip


def _whole(rng: np.random.Generator) -> tuple[list[Dof], Root]:
    """Whole-body actions: walk (forward or back), hop, squat / sit down / stand up, turn round."""
    kind = rng.choice(["walk", "hop", "squat", "turn"])
    if kind == "walk":
        return _gait(rng), Root(walk=float(rng.choice([-1, 1]) * rng.uniform(0.4, 1.2)))
    if kind == "hop":
        cyc = float(rng.integers(1, 5))
        knees = [Dof(f"{s}_knee_flex", _angle(rng, 10, 30), 0.0, cyc, 0.0) for s in "lr"]
        return knees, Root(hop=float(rng.uniform(0.05, 0.25)), hop_cycles=cyc)
    if kind == "squat":
        env = str(rng.choice(["inout", "in", "out"]))  # squat, sit down, stand up
        hip, knee = _angle(rng, 50, 95), _angle(rng, 60, 115)
        dofs = [Dof(f"{s}_{j}_flex", a, 0.0, 1, 0.0, env) for s in "lr" for j, a in (("hip", hip), ("knee", knee))]
        return dofs + [Dof("spine_flex", _angle(rng, 0, 30), 0.0, 1, 0.0, env)], Root()
    return _torso_dofs(rng, small=True), Root(turn=float(rng.choice([-1, 1])) * _angle(rng, 60, 180))


def _reach(rng: np.random.Generator, who: str, joint_required: bool) -> Reach:
    """A hand reach to a joint of `who` ("self" / "partner"); a "self" reach may aim in front."""
    side = str(rng.choice(["R", "L", "both"], p=[0.45, 0.25, 0.3]))
    if who == "self" and not joint_required and rng.random() < 0.3:
        who = "front"
    if who == "front":
        point = (float(rng.uniform(-0.25, 0.25)), float(rng.uniform(-0.3, 0.5)), float(rng.uniform(0.3, 0.55)))
        joint = sb.SPINE_SHOULDER
    else:
        pool = SELF_TARGETS if who == "self" else PARTNER_TARGETS
        allowed = [j for j in pool if who == "partner" or j not in _banned(side)]
        joint = int(rng.choice(allowed))
        point = (0.0, 0.0, float(rng.uniform(0.05, 0.1)))
    wiggle = float(rng.uniform(0.02, 0.06)) if rng.random() < 0.4 else 0.0
    touches, hold = int(rng.integers(1, 4)), float(rng.uniform(0.2, 0.7))
    return Reach(side, who, joint, point, touches, hold, wiggle, float(rng.uniform(2, 6)))


def _solo(rng: np.random.Generator, force_reach: bool) -> PersonMotion:
    """A one-person class; `force_reach` when the next class will be its twin."""
    families = ["reach", "arm", "leg", "torso", "whole"]
    family = "reach" if force_reach else rng.choice(families, p=[0.4, 0.2, 0.12, 0.13, 0.15])
    dofs: list[Dof] = []
    root, reach = Root(), None
    if family == "reach":
        reach = _reach(rng, "self", force_reach)
    elif family == "arm":
        dofs = _arm_dofs(rng)
    elif family == "leg":
        dofs = _leg_dofs(rng)
    elif family == "torso":
        dofs = _torso_dofs(rng)
    else:
        dofs, root = _whole(rng)
    if rng.random() < 0.5:
        dofs += _torso_dofs(rng, small=True)
    return PersonMotion(tuple(dofs), reach, root)


def _pair(rng: np.random.Generator, force_reach: bool) -> tuple[PersonMotion, PersonMotion]:
    """A two-person class: what the performer does, and how the partner responds."""
    families = ["reach", "meet", "arm", "leg", "approach"]
    family = "reach" if force_reach else rng.choice(families, p=[0.45, 0.15, 0.15, 0.15, 0.1])
    if family == "meet":  # handshake-like: both right hands meet between the two
        hold, wiggle, cycles = float(rng.uniform(0.4, 0.8)), float(rng.uniform(0.0, 0.04)), float(rng.uniform(2, 5))
        meet = Reach("R", "meet", sb.SPINE_SHOULDER, (0.0, 0.0, 0.0), 1, hold, wiggle, cycles)
        return PersonMotion((), meet, Root()), PersonMotion((), meet, Root())
    actor_dofs: list[Dof] = []
    reach, root = None, Root()
    if family == "reach":
        reach = _reach(rng, "partner", True)
    elif family == "arm":
        actor_dofs = _arm_dofs(rng)
    elif family == "leg":
        actor_dofs = _leg_dofs(rng)
    else:
        actor_dofs, root = _gait(rng), Root(walk=float(rng.uniform(0.15, 0.3)))
    actor = PersonMotion(tuple(actor_dofs), reach, root)
    response = rng.choice(["pushed", "torso", "arm", "reach"], p=[0.35, 0.25, 0.2, 0.2])
    if response == "pushed":
        pushed = Root(push_back=float(rng.uniform(0.1, 0.4)))
        partner = PersonMotion(tuple(_torso_dofs(rng, small=True)), None, pushed)
    elif response == "torso":
        partner = PersonMotion(tuple(_torso_dofs(rng)), None, Root())
    elif response == "arm":
        partner = PersonMotion(tuple(_arm_dofs(rng)), None, Root())
    else:
        partner = PersonMotion((), _reach(rng, "partner", False), Root())
    return actor, partner


def _twin(base: ClassMotion, rng: np.random.Generator, label: int, parent: np.ndarray) -> ClassMotion:
    """The base class with its reach target moved one link along the skeleton graph."""
    reach = base.actor.reach
    if reach is None or reach.who not in ("self", "partner"):
        raise ValueError(f"class {base.label} has no joint target to move; it cannot have a twin")
    pool = SELF_TARGETS if reach.who == "self" else PARTNER_TARGETS
    banned = set() if reach.who == "partner" else _banned(reach.side)
    t = reach.joint
    near = [j for j in pool if j not in banned and (parent[j] == t or parent[t] == j)]
    actor = replace(base.actor, reach=replace(reach, joint=int(rng.choice(near))))
    return replace(base, label=label, actor=actor, twin_of=base.label)


def class_motions(
    n: int, seed: int, namespace: int, two_person_fraction: float, confusable_fraction: float, parent: np.ndarray
) -> list[ClassMotion]:
    """The first n classes of a dataset; class c is drawn from the Generator (seed, namespace, c).

    `parent` (30,) is the body's kinematic tree (`body.kinematic_tree`); twins use its links.
    """
    roles = class_roles(n + 1, two_person_fraction, confusable_fraction)
    out: list[ClassMotion] = []
    for c in range(n):
        rng = np.random.default_rng([seed, namespace, c])
        two, is_twin = roles[c]
        if is_twin:
            out.append(_twin(out[c - 1], rng, c, parent))
            continue
        force_reach = roles[c + 1][1]
        actor, partner = _pair(rng, force_reach) if two else (_solo(rng, force_reach), None)
        out.append(ClassMotion(c, actor, partner, float(rng.uniform(0.08, 0.45))))
    return out
