"""One performance of a synthetic class -> world joint positions over time.

`render(motion, bodies, frames, rng, placement)` turns a `ClassMotion` (what the class does)
into `(P, F, 30, 3)` world positions (P = 1 or 2 people, F frames, the 30 joints of
`body`; metres, y up, floor at y = 0). Everything a repetition varies lives here and is
drawn from `rng`: amplitudes ±25 %, postures ±20 %, tempo ±15 %, phases, idle sway, the
start and end of the action inside the clip, and a few centimetres of target error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stf.data.synth import body as sb
from stf.data.synth.motion import DOFS, ClassMotion, Dof, PersonMotion, Reach

_RAMP = 0.15  # share of an action window spent ramping a posture in or out


@dataclass(frozen=True)
class Placement:
    """Where people stand: (P, 2) floor positions (x, z) and (P,) yaw, radians (0 faces +z)."""

    xz: np.ndarray
    yaw: np.ndarray


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def action_time(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(F,) action time u in [0, 1]: idle for 0-12 % of the clip at each end, then the action."""
    t = np.arange(frames) / max(frames - 1, 1)
    start, end = rng.uniform(0, 0.12), 1 - rng.uniform(0, 0.12)
    return np.clip((t - start) / (end - start), 0.0, 1.0)


def _envelope(u: np.ndarray, env: str) -> np.ndarray:
    if env == "const":
        return np.ones_like(u)
    rise, fall = _smooth(u / _RAMP), _smooth((1 - u) / _RAMP)
    return {"inout": rise * fall, "in": rise, "out": fall}[env]


def _jitter(dof: Dof, rng: np.random.Generator) -> Dof:
    return Dof(dof.name, dof.offset * rng.uniform(0.8, 1.2), dof.amp * rng.uniform(0.75, 1.25),
               dof.cycles * rng.uniform(0.85, 1.15), dof.phase + rng.normal(0, 0.3), dof.env)  # fmt: skip


def idle_dofs(rng: np.random.Generator, count: int = 3) -> list[Dof]:
    """Small (1-4 degree) slow sways of random upper-body bones, over the whole clip."""
    names = [n for n in DOFS if "hip" not in n and "knee" not in n]
    return [Dof(str(n), 0.0, rng.uniform(1, 4) * math.pi / 180, rng.uniform(0.3, 1.5), rng.uniform(0, 6.3), "const")
            for n in rng.choice(names, size=count, replace=False)]  # fmt: skip


def _rotations(dofs: list[Dof], u: np.ndarray) -> dict[int, np.ndarray]:
    """Dofs -> {bone joint: (F, 3, 3)}; several dofs on one bone compose in list order."""
    rots: dict[int, np.ndarray] = {}
    for d in dofs:
        joint, axis, sign = DOFS[d.name]
        angle = sign * _envelope(u, d.env) * (d.offset + d.amp * np.sin(2 * math.pi * d.cycles * u + d.phase))
        r = sb.axis_rotation(axis, angle)
        rots[joint] = rots[joint] @ r if joint in rots else r  # (F, 3, 3)
    return rots


def _reach_weight(u: np.ndarray, reach: Reach) -> np.ndarray:
    """(F,) 0 = hand where the joint angles put it, 1 = at the target; `touches` go-hold-return."""
    v = (u * reach.touches) % 1.0
    v[u >= 1.0] = 0.0
    go = max((1 - reach.hold) / 2, 1e-3)
    return _smooth(v / go) * _smooth((1 - v) / go)


def _pose(person: PersonMotion, body: sb.Body, u: np.ndarray, rng: np.random.Generator,
          xz: np.ndarray, yaw: float, away: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Joint angles + root motion -> world positions (F, J, 3) and bone frames (F, J, 3, 3)."""
    dofs = [_jitter(d, rng) for d in person.dofs] + idle_dofs(rng)
    reach = person.reach
    if reach is not None and reach.who == "self" and reach.joint in (sb.L_KNEE, sb.R_KNEE):
        dofs.append(Dof("spine_flex", rng.uniform(40, 55) * math.pi / 180, 0.0, 1.0, 0.0))  # bend to reach down
    root = person.root
    heading = yaw + root.turn * _smooth(u)  # (F,)
    pos, glob = sb.forward_kinematics(body, _rotations(dofs, u), sb.axis_rotation(1, heading))
    pos[..., 1] -= pos[:, sb.FEET, 1].min(axis=1, keepdims=True)  # lowest foot on the floor
    move = np.zeros((len(u), 3))
    facing = np.stack([np.sin(heading), np.zeros_like(u), np.cos(heading)], axis=-1)  # (F, 3)
    move += facing * (root.walk * rng.uniform(0.8, 1.2) * _smooth(u))[:, None]
    move[:, 1] += root.hop * rng.uniform(0.8, 1.2) * np.abs(np.sin(math.pi * root.hop_cycles * u))
    move += away[None, :] * (root.push_back * _smooth((u - 0.35) / 0.3))[:, None]
    pos += (np.array([xz[0], 0.0, xz[1]]) + move)[:, None, :]
    return pos, glob


def _target(reach: Reach, me: int, pos: list[np.ndarray], glob: list[np.ndarray], bodies: list[sb.Body]) -> np.ndarray:
    """(F, 3) world point the reach goes to (before wiggle and the per-side offset)."""
    if reach.who == "meet":
        chest = (pos[0][:, sb.SPINE_SHOULDER] + pos[-1][:, sb.SPINE_SHOULDER]) / 2
        return chest - np.array([0.0, 0.3 * bodies[me].height / sb.REST_HEIGHT, 0.0])
    if reach.who == "front":
        scale = bodies[me].height / sb.REST_HEIGHT
        return pos[me][:, sb.SPINE_SHOULDER] + glob[me][:, sb.SPINE_SHOULDER] @ (np.array(reach.point) * scale)
    who = me if reach.who == "self" else 1 - me
    scale = bodies[who].height / sb.REST_HEIGHT
    return pos[who][:, reach.joint] + glob[who][:, sb.SPINE_BASE] @ (np.array(reach.point) * scale)


def _apply_reach(reach: Reach, me: int, pos: list[np.ndarray], glob: list[np.ndarray], bodies: list[sb.Body],
                 u: np.ndarray, rng: np.random.Generator) -> None:  # fmt: skip
    """Drive the reaching hand(s) of person `me` to the target with IK; changes pos[me]."""
    target = _target(reach, me, pos, glob, bodies) + rng.normal(0, 0.02, size=3)
    root = glob[me][:, sb.SPINE_BASE]  # (F, 3, 3)
    angle = 2 * math.pi * reach.wiggle_cycles * u
    circle = np.stack([np.cos(angle), np.sin(angle), np.zeros_like(u)], axis=-1) * reach.wiggle  # (F, 3)
    target = target + (root @ circle[..., None])[..., 0]
    w = _reach_weight(u, reach)[:, None]
    chest = glob[me][:, sb.SPINE_SHOULDER]
    sides = ["L", "R"] if reach.side == "both" else [reach.side]
    for side in sides:
        spread = 0.0 if len(sides) == 1 else (0.06 if side == "L" else -0.06)
        aim = target + root @ np.array([spread, 0.0, 0.0])
        hand = pos[me][:, sb.ARMS[side][3]]
        sb.reach_arm(bodies[me], pos[me], chest, side, hand + w * (aim - hand))


def render(motion: ClassMotion, bodies: list[sb.Body], frames: int, rng: np.random.Generator,
           placement: Placement) -> np.ndarray:  # fmt: skip
    """One performance -> (P, F, 30, 3) world positions; P = 2 when the class has a partner."""
    people = [motion.actor] if motion.partner is None else [motion.actor, motion.partner]
    if len(bodies) < len(people) or len(placement.yaw) < len(people):
        raise ValueError(f"class {motion.label} needs {len(people)} bodies and placements")
    u = action_time(frames, rng)
    xz = placement.xz
    pos, glob = [], []
    for k, person in enumerate(people):
        away = np.zeros(3)
        if len(people) == 2:
            d = xz[k] - xz[1 - k]
            away = np.array([d[0], 0.0, d[1]]) / max(float(np.linalg.norm(d)), 1e-6)
        p, g = _pose(person, bodies[k], u, rng, xz[k], float(placement.yaw[k]), away)
        pos.append(p)
        glob.append(g)
    for k, person in enumerate(people):
        if person.reach is not None:
            _apply_reach(person.reach, k, pos, glob, bodies, u, rng)
    return np.stack(pos)  # (P, F, J, 3)
