"""`stf synth`: the synthetic raw dataset, read back with the real readers.

Sizes are tiny (a few hundred short files). The benchmark split rules are restated here from
the dataset papers, so a wrong id layout in `synth` cannot hide behind a shared constant.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from stf.config import SynthConfig, SynthSizes
from stf.data.formats.kinetics import read_clip, read_label_file
from stf.data.formats.ntu import read_skeleton
from stf.data.skeletons import NTU25
from stf.data.synth.synthesize import SynthError, synthesize

XSUB60 = {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38}
XSUB120 = XSUB60 | {45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83,
                    84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103}  # fmt: skip
NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})\.skeleton")


def sizes(classes: int, per_class: int, dataset: str = "ntu60", frames: tuple[int, int] = (20, 40)) -> SynthSizes:
    return SynthSizes(
        classes={"ntu60": 4, "ntu120": 4, "kinetics": 4} | {dataset: classes},
        samples_per_class={"ntu60": 4, "ntu120": 4, "kinetics": 4} | {dataset: per_class},
        min_frames=frames[0],
        max_frames=frames[1],
    )


def digests(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def ntu_table(folder: Path) -> list[dict]:
    """Every .skeleton file parsed: its id fields, label, bodies per frame, xyz."""
    rows = []
    for path in sorted(folder.glob("*.skeleton")):
        m = NAME.fullmatch(path.name)
        assert m, path.name
        s, c, p, r, a = (int(g) for g in m.groups())
        sk = read_skeleton(path)
        rows.append(dict(name=path.stem, setup=s, camera=c, performer=p, replication=r, label=a - 1,
                         counts=sk.body_counts, xyz=sk.xyz))  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def ntu60(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[dict]]:
    out = tmp_path_factory.mktemp("ntu60")
    summary = synthesize("ntu60", out, SynthConfig(seed=0), sizes(8, 15))
    return summary, ntu_table(out)


@pytest.fixture(scope="module")
def ntu120(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[dict]]:
    out = tmp_path_factory.mktemp("ntu120")
    summary = synthesize("ntu120", out, SynthConfig(seed=0), sizes(12, 5, "ntu120"))
    return summary, ntu_table(out)


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("kinetics")
    summary = synthesize("kinetics", out, SynthConfig(seed=0), sizes(4, 15, "kinetics"))
    return summary, out


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    for dataset in ("ntu60", "kinetics"):
        small = sizes(3, 4, dataset, frames=(10, 16))
        a, b, c = tmp_path / f"{dataset}-a", tmp_path / f"{dataset}-b", tmp_path / f"{dataset}-c"
        synthesize(dataset, a, SynthConfig(seed=3), small)
        synthesize(dataset, b, SynthConfig(seed=3), small)
        synthesize(dataset, c, SynthConfig(seed=4), small)
        da, db, dc = digests(a), digests(b), digests(c)
        assert da == db and len(da) >= 12
        common = set(da) & set(dc)
        assert da != dc and all(da[k] != dc[k] for k in common if k.endswith(".skeleton"))


def test_a_file_does_not_depend_on_how_many_classes_are_written(tmp_path: Path) -> None:
    """Partial generation: the files of the first 3 classes are the same in a 3- and a 5-class run."""
    synthesize("ntu60", tmp_path / "three", SynthConfig(), sizes(3, 4, frames=(10, 16)))
    synthesize("ntu60", tmp_path / "five", SynthConfig(), sizes(5, 4, frames=(10, 16)))
    three, five = digests(tmp_path / "three"), digests(tmp_path / "five")
    assert len(five) == 20 and all(five[k] == v for k, v in three.items())


def test_ntu120_starts_with_the_ntu60_classes(tmp_path: Path) -> None:
    cfg = SynthConfig(two_person_fraction=0.2, confusable_fraction=0.3)
    s60 = synthesize("ntu60", tmp_path / "60", cfg, sizes(10, 2, "ntu60", frames=(8, 10)))
    s120 = synthesize("ntu120", tmp_path / "120", cfg, sizes(16, 2, "ntu120", frames=(8, 10)))
    assert s60["two_person_classes"] and s60["confusable_pairs"]
    assert [c for c in s120["two_person_classes"] if c < 10] == s60["two_person_classes"]
    assert [p for p in s120["confusable_pairs"] if p[1] < 10] == s60["confusable_pairs"]


# --------------------------------------------------------------------------- NTU files


def test_ntu_files_parse_and_ids_obey_the_dataset_ranges(ntu60, ntu120) -> None:
    for (summary, rows), setups, performers in ((ntu60, 17, 40), (ntu120, 32, 106)):
        assert summary["files"] == len(rows) == summary["classes"] * summary["samples_per_class"]
        assert len({r["name"] for r in rows}) == len(rows)
        for r in rows:
            assert 1 <= r["setup"] <= setups and 1 <= r["camera"] <= 3
            assert 1 <= r["performer"] <= performers and r["replication"] in (1, 2)
            assert 0 <= r["label"] < summary["classes"]
            frames = len(r["counts"])
            assert summary["frames"][0] <= frames <= summary["frames"][1]
            z = r["xyz"][r["counts"] > 0][..., 2]
            assert z.min() > 1.0 and z.max() < 6.0  # camera space, metres in front of a Kinect
        labels = [r["label"] for r in rows]
        assert np.bincount(labels).tolist() == [summary["samples_per_class"]] * summary["classes"]


@pytest.mark.parametrize(
    "fixture, rules",
    [
        ("ntu60", {"xsub": lambda r: r["performer"] in XSUB60, "xview": lambda r: r["camera"] != 1}),
        ("ntu120", {"xsub": lambda r: r["performer"] in XSUB120, "xset": lambda r: r["setup"] % 2 == 0}),
    ],
)
def test_every_benchmark_split_has_every_class_in_train_and_test(fixture, rules, request) -> None:
    summary, rows = request.getfixturevalue(fixture)
    everything = set(range(summary["classes"]))
    for name, is_train in rules.items():
        train = {r["label"] for r in rows if is_train(r)}
        test = {r["label"] for r in rows if not is_train(r)}
        assert train == everything and test == everything, name


def test_one_performance_is_seen_by_three_cameras(ntu60) -> None:
    """x-view is meaningful: the same motion, the same length, seen from other angles."""
    _, rows = ntu60
    by_take = defaultdict(list)
    for r in rows:
        by_take[(r["setup"], r["performer"], r["replication"], r["label"])].append(r)
    takes = [t for t in by_take.values() if len(t) == 3]
    assert takes
    hands = {7, 11, 21, 22, 23, 24}  # short, noisy bones: left out of the length comparison
    edges = np.array([e for e in NTU25.edges if not hands & set(e)])
    for take in takes:
        assert sorted(r["camera"] for r in take) == [1, 2, 3]
        assert len({len(r["counts"]) for r in take}) == 1
        keep = np.all([r["counts"] > 0 for r in take], axis=0)
        body = [r["xyz"][keep, 0] for r in take]  # (F, 25, 3) per camera
        bones = [np.linalg.norm(b[:, edges[:, 0]] - b[:, edges[:, 1]], axis=-1).mean(0) for b in body]
        np.testing.assert_allclose(bones[0], bones[1], atol=0.02)
        np.testing.assert_allclose(bones[0], bones[2], atol=0.02)
        shoulders = [b[:, 8] - b[:, 4] for b in body]  # right minus left shoulder, (F, 3)
        yaw = [np.degrees(np.median(np.arctan2(v[:, 2], v[:, 0]))) for v in shoulders]
        assert min(abs(yaw[0] - yaw[1]), abs(yaw[0] - yaw[2]), abs(yaw[1] - yaw[2])) > 15


def test_bodies_are_rigid_skeletons_without_noise(tmp_path: Path) -> None:
    synthesize("ntu60", tmp_path, SynthConfig(noise_std=0.0, drop_frame_prob=0.0), sizes(6, 2))
    edges = np.array(NTU25.edges)
    for r in ntu_table(tmp_path):
        body = r["xyz"][:, 0]  # (F, 25, 3)
        length = np.linalg.norm(body[:, edges[:, 0]] - body[:, edges[:, 1]], axis=-1)  # (F, 24)
        assert np.ptp(length, axis=0).max() < 1e-4
        height = body[:, 3, 1] - body[:, [15, 19], 1].min(1)  # head above the lower foot
        assert 1.0 < np.median(height) < 2.0
        assert np.ptp(body, axis=0).max() > 0.05  # something moves


def test_two_person_classes_have_two_bodies_and_frames_are_dropped(ntu60) -> None:
    summary, rows = ntu60
    two = set(summary["two_person_classes"])
    assert two and len(two) < summary["classes"]
    for r in rows:
        seen = r["counts"][r["counts"] > 0]
        assert set(seen.tolist()) == ({2} if r["label"] in two else {1})
    counts = np.concatenate([r["counts"] for r in rows])
    assert 0 < (counts == 0).mean() < 0.1  # synth.drop_frame_prob = 0.02


def test_a_simple_classifier_learns_it_but_not_perfectly(ntu60) -> None:
    """Logistic regression on per-joint mean/std of the centred first body, across subjects:
    far above chance, below 100 %, and its mistakes sit mostly inside the confusable pairs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    summary, rows = ntu60
    feats, labels, train = [], [], []
    for r in rows:
        body = r["xyz"][r["counts"] > 0, 0]  # (F, 25, 3)
        body = body - body[:, 1:2]  # centred on the spine
        feats.append(np.concatenate([body.mean(0).ravel(), body.std(0).ravel()]))
        labels.append(r["label"])
        train.append(r["performer"] in XSUB60)
    x, y, train = np.array(feats), np.array(labels), np.array(train)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[train], y[train])
    pred = clf.predict(x[~train])
    accuracy = (pred == y[~train]).mean()
    chance = 1 / summary["classes"]
    assert 3 * chance < accuracy < 1.0
    twins = {frozenset(p) for p in summary["confusable_pairs"]}
    wrong = [(t, p) for t, p in zip(y[~train], pred, strict=True) if t != p]
    assert sum(frozenset((t, p)) in twins for t, p in wrong) >= len(wrong) / 2


def test_refuses_a_folder_with_other_raw_files(tmp_path: Path) -> None:
    (tmp_path / "S001C001P001R001A060.skeleton").write_text("1\n0\n")
    with pytest.raises(SynthError, match=str(tmp_path)):
        synthesize("ntu60", tmp_path, SynthConfig(), sizes(2, 2))


@pytest.mark.parametrize("dataset", ["ntu60", "kinetics"])
def test_rerun_into_its_own_folder_rewrites_the_same_bytes(tmp_path: Path, dataset: str) -> None:
    small = sizes(2, 3, dataset, frames=(10, 14))
    synthesize(dataset, tmp_path, SynthConfig(seed=1), small)
    first = digests(tmp_path)
    synthesize(dataset, tmp_path, SynthConfig(seed=1), small)  # same params, same folder: allowed
    assert digests(tmp_path) == first and len(first) >= 6
    # a raw file this set does not write is still refused, and the folder is left as it was
    foreign = "S001C001P001R001A060.skeleton" if dataset == "ntu60" else "kinetics_train/foreign.json"
    (tmp_path / foreign).write_text("{}")
    with pytest.raises(SynthError, match=Path(foreign).name):
        synthesize(dataset, tmp_path, SynthConfig(seed=1), small)
    assert digests(tmp_path) == first | {foreign: digests(tmp_path)[foreign]}


def test_too_many_samples_for_the_id_space_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ntu60"):
        synthesize("ntu60", tmp_path, SynthConfig(), sizes(1, 5000))
    assert not list(tmp_path.glob("*.skeleton"))


# --------------------------------------------------------------------------- Kinetics


def test_kinetics_label_files_agree_with_the_clips(kinetics) -> None:
    summary, out = kinetics
    parts = {}
    for part in ("train", "val"):
        labels = read_label_file(out / f"kinetics_{part}_label.json")
        clips = {p.stem: read_clip(p) for p in (out / f"kinetics_{part}").glob("*.json")}
        assert set(labels) == set(clips) and clips
        for vid, entry in labels.items():
            assert re.fullmatch(r"[A-Za-z0-9_-]{11}", vid)
            clip = clips[vid]
            assert (clip.label, clip.label_index) == (entry["label"], entry["label_index"])
            assert (clip.score > 0).any() == entry["has_skeleton"]  # no-skeleton clips hold nobody
            assert summary["frames"][0] <= len(clip.pose) <= summary["frames"][1]
        parts[part] = labels
    total = len(parts["train"]) + len(parts["val"])
    assert total == summary["files"] == summary["classes"] * summary["samples_per_class"]
    assert 0.15 <= len(parts["val"]) / total <= 0.25
    assert not set(parts["train"]) & set(parts["val"])
    for labels in parts.values():
        usable = {e["label_index"] for e in labels.values() if e["has_skeleton"]}
        assert usable == set(range(summary["classes"]))
    missing = [v for labels in parts.values() for v, e in labels.items() if not e["has_skeleton"]]
    assert 1 <= len(missing) == summary["no_skeleton"] <= total * 0.05


def test_kinetics_poses_look_like_openpose_output(kinetics) -> None:
    _, out = kinetics
    people_per_frame, visible, scores, missing = [], [], [], []
    for path in sorted(out.glob("kinetics_*/*.json")):
        clip = read_clip(path)
        if not len(clip.pose):
            continue
        seen = (clip.score > 0).any(axis=2)  # (F, P) a person with any detected joint
        people_per_frame.append(seen.sum(axis=1))
        joints = clip.score[seen]  # (N, 18)
        visible.append(clip.pose[seen][joints > 0])  # (K, 2)
        scores.append(joints[joints > 0])
        missing.append(((joints == 0) & (clip.pose[seen] == 0).all(-1)).ravel())
    people = np.concatenate(people_per_frame)
    xy, score, gone = np.concatenate(visible), np.concatenate(scores), np.concatenate(missing)
    assert (people == 0).any() and (people >= 3).any() and (people == 1).mean() > 0.3
    assert xy.min() >= -0.06 and xy.max() <= 1.06 and 0 < ((xy < 0) | (xy > 1)).any(-1).mean() < 0.05
    assert 0.02 < gone.mean() < 0.2  # synth.kinetics_missing_joint_prob = 0.05, plus joints out of frame
    assert score.max() <= 1.0 and 0.4 < score.mean() < 0.9
