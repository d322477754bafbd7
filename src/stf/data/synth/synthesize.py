"""`stf synth`: a procedural skeleton dataset written in the real raw formats.

`synthesize(dataset, out_dir, synth, sizes) -> dict` writes

- NTU-60 / NTU-120: `out_dir/SsssCcccPpppRrrrAaaa.skeleton`, camera-space metres (z 2-4 m),
  each performance seen by up to 3 cameras (azimuth 0, +0.8 and -0.8 of
  `synth.max_camera_yaw_deg`); ids from `ids.ntu_plan`;
- Kinetics: `out_dir/kinetics_{train,val}/<id>.json` (2-D OpenPose-18 poses in [0, 1] image
  coordinates, scores, missing joints, empty frames, low-score bystanders) and
  `out_dir/kinetics_{train,val}_label.json`;

and returns a summary (files, classes, samples, frame range, two-person classes, confusable
pairs). Class motions come from `motion` (NTU-120's first classes are NTU-60's), bodies
and poses from `body` / `render`. Every performance and file has its own
Generator seeded from (synth.seed, dataset, label, index[, camera]), so the bytes of a file
do not depend on which other files are written.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stf.config import SynthConfig, SynthSizes
from stf.data.formats import kinetics as kfmt
from stf.data.formats import ntu as nfmt
from stf.data.skeletons import NTU25
from stf.data.synth import body as sb
from stf.data.synth.ids import DATASET_CODE, kinetics_plan, ntu_plan
from stf.data.synth.motion import ClassMotion, PersonMotion, Root, class_motions
from stf.data.synth.render import Placement, render

log = logging.getLogger(__name__)

NTU_NAMESPACE, KINETICS_NAMESPACE = 100, 102  # class-definition streams (shared by NTU-60/120)
_PERFORMER, _CAMERA = 200, 201  # performer bodies and NTU camera rigs (shared by NTU-60/120)
_BODY_ID_BASE = 72057594037927936  # Kinect body ids are 2**56 + a tracking counter
_HAND_JOINTS = [sb.L_HAND, sb.R_HAND, sb.L_TIP, sb.L_THUMB, sb.R_TIP, sb.R_THUMB]
_IMAGE_W, _IMAGE_H = 340.0, 256.0  # the Kinetics-skeleton release's frame size


class SynthError(ValueError):
    """The synthetic dataset cannot be written as asked; the message names the folder."""


def _motions(classes: int, synth: SynthConfig, namespace: int, parent: np.ndarray) -> list[ClassMotion]:
    return class_motions(classes, synth.seed, namespace, synth.two_person_fraction, synth.confusable_fraction, parent)


def _frames(motion: ClassMotion, sizes: SynthSizes, speed: float, rng: np.random.Generator) -> int:
    """Clip length: the class's typical share of [min, max] frames, log-normal spread, performer tempo.

    Typical shares are 0.08-0.45, so with 32-300 frames most clips have 50-150 frames and a
    few run to 300, like NTU RGB+D.
    """
    frac = float(np.clip(motion.duration * rng.lognormal(0.0, 0.3) / speed, 0.0, 1.0))
    return sizes.min_frames + round(frac * (sizes.max_frames - sizes.min_frames))


def _keep_frames(rng: np.random.Generator, frames: int, drop: float) -> np.ndarray:
    """(F,) bool: frames that show anybody; each is dropped with probability `drop`, but never
    all of them unless `drop` is 1."""
    kept = rng.random(frames) >= drop
    if not kept.any() and drop < 1:
        kept[frames // 2] = True
    return kept


def _placement(rng: np.random.Generator, people: int, yaw_range: float) -> Placement:
    """Floor positions and headings; two people stand 0.7-1 m apart, turned to each other."""
    centre = np.array([rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3)])
    if people == 1:
        return Placement(centre[None], np.array([rng.uniform(-yaw_range, yaw_range)]))
    gap = rng.uniform(0.7, 1.0) / 2
    turn = math.pi / 2 - rng.uniform(15, 40) * math.pi / 180
    return Placement(centre + np.array([[-gap, 0.0], [gap, 0.0]]), np.array([turn, -turn]))


def camera_matrix(azimuth: float, pitch: float) -> np.ndarray:
    """(3, 3) world -> camera rows (x, y, z) of a camera at `azimuth` looking at the origin.

    Kinect convention: y up, z away from the camera; the person's left appears at smaller x.
    """
    forward = np.array([-math.sin(azimuth), 0.0, -math.cos(azimuth)])
    up = np.array([0.0, 1.0, 0.0])
    x = np.cross(up, forward)
    y = math.cos(pitch) * up + math.sin(pitch) * forward
    z = -math.sin(pitch) * up + math.cos(pitch) * forward
    return np.stack([x, y, z])


def _to_camera(world: np.ndarray, azimuth: float, distance: float, height: float, pitch: float) -> np.ndarray:
    """(..., 3) world points -> camera space of a camera `distance` m away at `height` m."""
    position = np.array([distance * math.sin(azimuth), height, distance * math.cos(azimuth)])
    return (world - position) @ camera_matrix(azimuth, pitch).T  # (..., 3)


def _stale(found: list[Path], expected: set[str], folder: Path) -> None:
    extra = sorted(p.name for p in found if p.name not in expected)
    if extra:
        raise SynthError(
            f"{folder}: holds {len(extra)} raw files that this synthetic set does not write "
            f"(e.g. {extra[0]}); remove them or choose an empty folder"
        )


# --------------------------------------------------------------------------- NTU


def _write_ntu(dataset: str, out_dir: Path, synth: SynthConfig, sizes: SynthSizes) -> dict:
    classes, per_class = sizes.classes[dataset], sizes.samples_per_class[dataset]
    plan = ntu_plan(dataset, classes, per_class, synth.seed)
    expected = {f"{p.name(c)}.skeleton" for p in plan for c in p.cameras}
    _stale(list(out_dir.glob("*.skeleton")), expected, out_dir)
    parent = sb.kinematic_tree(NTU25.edges, NTU25.num_joints)
    motions = _motions(classes, synth, NTU_NAMESPACE, parent)
    yaw = synth.max_camera_yaw_deg * math.pi / 180
    code = DATASET_CODE[dataset]
    lengths = []
    with tqdm(total=sum(len(p.cameras) for p in plan), desc=f"synth {dataset}", unit="file", disable=None) as bar:
        for perf in plan:
            motion = motions[perf.label]
            body_rng = np.random.default_rng([synth.seed, _PERFORMER, perf.performer])
            bodies = [sb.make_body(parent, body_rng)]
            speed = float(body_rng.uniform(0.85, 1.2))
            rng = np.random.default_rng([synth.seed, code, 2, perf.label, perf.index])
            people = 1 if motion.partner is None else 2
            bodies += [sb.make_body(parent, rng) for _ in range(people - 1)]
            frames = _frames(motion, sizes, speed, rng)
            world = render(motion, bodies, frames, rng, _placement(rng, people, 0.2 * yaw))  # (P, F, 30, 3)
            ids = [_BODY_ID_BASE + int(i) for i in rng.choice(10**6, size=people, replace=False)]
            lengths.append(frames)
            for cam in perf.cameras:
                rig = np.random.default_rng([synth.seed, _CAMERA, perf.setup, cam])
                azimuth = {1: 0.0, 2: 0.8 * yaw, 3: -0.8 * yaw}[cam]
                distance, height = rig.uniform(2.6, 3.6), rig.uniform(0.6, 1.3)
                pitch = rig.uniform(-3, 12) * math.pi / 180
                xyz = _to_camera(world[:, :, : sb.NTU_JOINTS], azimuth, distance, height, pitch)
                xyz = xyz.transpose(1, 0, 2, 3)  # (F, P, 25, 3)
                frng = np.random.default_rng([synth.seed, code, 3, perf.label, perf.index, cam])
                noise = frng.normal(0.0, synth.noise_std, size=xyz.shape)
                noise[:, :, _HAND_JOINTS] *= 2.0  # Kinect hands are the noisiest joints
                kept = _keep_frames(frng, frames, synth.drop_frame_prob)
                present = np.repeat(kept[:, None], people, axis=1)  # (F, P)
                nfmt.write_skeleton(out_dir / f"{perf.name(cam)}.skeleton", xyz + noise, ids, present=present)
                bar.update()
    return {
        "files": sum(len(p.cameras) for p in plan),
        "samples": sum(len(p.cameras) for p in plan),
        "performances": len(plan),
        "frames": [min(lengths), max(lengths)],
        "motions": motions,
    }


# --------------------------------------------------------------------------- Kinetics


def _project(world: np.ndarray, rng: np.random.Generator, yaw: float) -> np.ndarray:
    """(P, F, 30, 3) world -> (P, F, 18, 2) OpenPose image coordinates (x right, y down, [0, 1])."""
    azimuth = rng.uniform(-yaw, yaw)
    distance, height, pitch = rng.uniform(2.5, 6.5), rng.uniform(0.8, 1.8), rng.uniform(-5, 15) * math.pi / 180
    cam = _to_camera(world, azimuth, distance, height, pitch)[:, :, sb.OPENPOSE_FROM_BODY]  # (P, F, 18, 3)
    focal = rng.uniform(250, 500)  # pixels; a 1.75 m person 4 m away is 0.4-0.85 of the frame height
    plane = cam[..., :2] / np.maximum(cam[..., 2:], 0.1)  # (P, F, 18, 2)
    image = np.stack([-plane[..., 0] * focal / _IMAGE_W, -plane[..., 1] * focal / _IMAGE_H], axis=-1)
    frames = world.shape[1]
    anchor = image[0, frames // 2, 1]  # the performer's neck mid-clip lands near the centre
    drift = rng.normal(0.0, 0.03, size=2) * (np.arange(frames) / max(frames - 1, 1) - 0.5)[:, None]  # (F, 2)
    centre = np.array([rng.uniform(0.35, 0.65), rng.uniform(0.3, 0.5)])
    return image - anchor + centre + drift[None, :, None, :]


def _kinetics_clip(
    motion: ClassMotion, parent: np.ndarray, sizes: SynthSizes, synth: SynthConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One clip -> pose (F, P, 18, 2), score (F, P, 18), present (F, P) bool, with bystanders."""
    yaw = synth.max_camera_yaw_deg * math.pi / 180
    people = 1 if motion.partner is None else 2
    bodies = [sb.make_body(parent, rng) for _ in range(people)]
    frames = _frames(motion, sizes, float(rng.uniform(0.85, 1.2)), rng)
    world = render(motion, bodies, frames, rng, _placement(rng, people, yaw))  # (P, F, 30, 3)
    quality = np.ones(people)
    extra = int(rng.choice([0, 1, 2], p=[0.75, 0.15, 0.1]))
    idle = ClassMotion(-1, PersonMotion((), None, Root()), None, 1.0)
    for _ in range(extra):  # bystanders: further back, idle, faint
        xz, heading = [rng.uniform(-2.0, 2.0), rng.uniform(-3.0, -1.0)], rng.uniform(-math.pi, math.pi)
        spot = Placement(np.array([xz]), np.array([heading]))
        world = np.concatenate([world, render(idle, [sb.make_body(parent, rng)], frames, rng, spot)])
        quality = np.append(quality, rng.uniform(0.15, 0.45))
    pose = _project(world, rng, yaw).transpose(1, 0, 2, 3)  # (F, P, 18, 2)
    pose = pose + rng.normal(0.0, synth.noise_std, size=pose.shape)
    base = rng.uniform(0.45, 0.95, size=18)
    score = np.clip(base[None, None] * quality[None, :, None] + rng.normal(0, 0.08, size=pose.shape[:3]), 0.02, 1.0)
    missing = rng.random(score.shape) < synth.kinetics_missing_joint_prob
    missing |= ((pose < -0.05) | (pose > 1.05)).any(axis=-1)
    pose[missing], score[missing] = 0.0, 0.0
    present = rng.random(pose.shape[:2]) >= 0.02  # (F, P) others are missed now and then
    present[:, 0] = True  # the performer is in every frame that is not dropped
    kept = _keep_frames(rng, frames, synth.drop_frame_prob)
    for opening in (True, False):  # the clip may open or close on empty frames
        if rng.random() < 0.3:
            n = int(rng.integers(1, max(2, frames // 7)))
            kept[slice(0, n) if opening else slice(frames - n, frames)] = False
    if not kept.any() and synth.drop_frame_prob < 1:
        kept[frames // 2] = True
    present &= kept[:, None]
    for k in range(people, pose.shape[1]):  # bystanders are seen in one stretch of the clip
        a = int(rng.integers(0, frames))
        b = a + int(rng.integers(frames // 3, frames + 1))
        present[:, k] &= (np.arange(frames) >= a) & (np.arange(frames) < b)
    order = np.argsort(rng.random(pose.shape[:2]), axis=1)  # (F, P): OpenPose lists people in no fixed order
    take = np.arange(frames)[:, None]
    return pose[take, order], score[take, order], present[take, order]


def _write_kinetics(out_dir: Path, synth: SynthConfig, sizes: SynthSizes) -> dict:
    classes, per_class = sizes.classes["kinetics"], sizes.samples_per_class["kinetics"]
    plan = kinetics_plan(classes, per_class, synth.seed)
    for part in ("train", "val"):
        folder = out_dir / f"kinetics_{part}"
        _stale(list(folder.glob("*.json")), {f"{c.video_id}.json" for c in plan if c.part == part}, folder)
    parent = sb.kinematic_tree(NTU25.edges, NTU25.num_joints)
    motions = _motions(classes, synth, KINETICS_NAMESPACE, parent)
    labels: dict[str, dict] = {"train": {}, "val": {}}
    lengths = []
    for clip in tqdm(plan, desc="synth kinetics", unit="file", disable=None):
        rng = np.random.default_rng([synth.seed, DATASET_CODE["kinetics"], 2, clip.index])
        pose, score, present = _kinetics_clip(motions[clip.label], parent, sizes, synth, rng)
        if not clip.has_skeleton:
            present[:] = False
        name = f"synthetic class {clip.label}"
        path = out_dir / f"kinetics_{clip.part}" / f"{clip.video_id}.json"
        kfmt.write_clip(path, pose, score, name, clip.label, present=present)
        entry = {"has_skeleton": clip.has_skeleton, "label": name, "label_index": clip.label}
        labels[clip.part][clip.video_id] = entry
        lengths.append(len(pose))
    for part, entries in labels.items():
        kfmt.write_label_file(out_dir / f"kinetics_{part}_label.json", entries)
    return {
        "files": len(plan),
        "samples": len(plan),
        "train": len(labels["train"]),
        "val": len(labels["val"]),
        "no_skeleton": sum(not c.has_skeleton for c in plan),
        "frames": [min(lengths), max(lengths)],
        "motions": motions,
    }


def synthesize(dataset: str, out_dir: Path, synth: SynthConfig, sizes: SynthSizes) -> dict:
    """Write the synthetic raw files of `dataset` ("ntu60", "ntu120", "kinetics") under `out_dir`.

    Returns {dataset, out_dir, seed, classes, samples_per_class, files, samples, frames
    [min, max], two_person_classes [labels], confusable_pairs [[base, twin] labels], ...}.
    """
    out_dir = Path(out_dir)
    if dataset not in DATASET_CODE:
        raise SynthError(f"{out_dir}: unknown dataset {dataset!r}; known: {sorted(DATASET_CODE)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if dataset == "kinetics":
        summary = _write_kinetics(out_dir, synth, sizes)
    else:
        summary = _write_ntu(dataset, out_dir, synth, sizes)
    motions: list[ClassMotion] = summary.pop("motions")
    summary.update(
        dataset=dataset,
        out_dir=str(out_dir),
        seed=synth.seed,
        classes=sizes.classes[dataset],
        samples_per_class=sizes.samples_per_class[dataset],
        two_person_classes=[m.label for m in motions if m.partner is not None],
        confusable_pairs=[[m.twin_of, m.label] for m in motions if m.twin_of is not None],
    )
    log.info("synth %s: %d files in %s", dataset, summary["files"], out_dir)
    return summary
