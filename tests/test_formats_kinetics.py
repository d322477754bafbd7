"""Kinetics-skeleton clips and label files on the real files in ../shared/fixtures/kinetics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stf.data.formats.kinetics import (
    ClipFormatError,
    KineticsClip,
    read_clip,
    read_label_file,
    select_persons,
    write_clip,
    write_label_file,
)

# SOURCES.md: label, label_index, frames (max frame_index), {persons in frame: number of frames}
REAL = {
    "sAP-xS5P0Bw": ("motorcycling", 199, 299, {0: 298, 1: 1}),
    "kkwHdOvpCoc": ("cutting watermelon", 83, 299, {0: 193, 1: 96, 2: 10}),
    "-0BveUV52cM": ("smoking hookah", 317, 298, {0: 225, 1: 66, 2: 7}),
    "__NrybzYzUg": ("abseiling", 0, 299, {0: 234, 1: 60, 2: 5}),
    "__U_scuxNlQ": ("clay pottery making", 58, 299, {1: 297, 2: 2}),
    "__vzEs2wzdQ": ("strumming guitar", 335, 164, {0: 1, 1: 52, 2: 68, 3: 27, 4: 14, 5: 2}),
    "__lt03EF4ao": ("passing American football (in game)", 208, 249, None),
}


def clip_path(fixtures_dir: Path, vid: str) -> Path:
    return fixtures_dir / "kinetics" / f"{vid}.json"


@pytest.mark.parametrize("vid", sorted(REAL))
def test_real_clip_shapes_labels_and_people(fixtures_dir: Path, vid: str) -> None:
    label, index, frames, people = REAL[vid]
    clip = read_clip(clip_path(fixtures_dir, vid))
    assert isinstance(clip, KineticsClip)
    assert (clip.video_id, clip.label, clip.label_index) == (vid, label, index)
    assert clip.pose.shape[0] == frames and clip.pose.shape[2:] == (18, 2) and clip.pose.dtype == np.float32
    assert clip.score.shape == clip.pose.shape[:3]
    present = (clip.pose != 0).any(axis=(2, 3)) | (clip.score != 0).any(axis=2)  # (F, P)
    histogram = dict(zip(*np.unique(present.sum(axis=1), return_counts=True), strict=True))
    if people is not None:
        assert {int(k): int(v) for k, v in histogram.items()} == people
        assert clip.pose.shape[1] == max(people)
    else:
        assert clip.pose.shape[1] == 9  # up to 9 people in one frame


def test_values_match_the_raw_json(fixtures_dir: Path) -> None:
    path = clip_path(fixtures_dir, "__lt03EF4ao")
    doc = json.loads(path.read_text())
    clip = read_clip(path)
    for entry in doc["data"][::37]:
        for slot, person in enumerate(entry["skeleton"]):
            f = entry["frame_index"] - 1
            np.testing.assert_array_equal(clip.pose[f, slot, :, 0], np.float32(person["pose"][0::2]))
            np.testing.assert_array_equal(clip.pose[f, slot, :, 1], np.float32(person["pose"][1::2]))
            np.testing.assert_array_equal(clip.score[f, slot], np.float32(person["score"]))
        np.testing.assert_array_equal(clip.pose[f, len(entry["skeleton"]) :], 0)


def test_coordinates_above_one_are_kept(fixtures_dir: Path) -> None:
    clip = read_clip(clip_path(fixtures_dir, "__NrybzYzUg"))
    assert clip.pose.max() == np.float32(1.021)


@pytest.mark.parametrize("vid", sorted(REAL))
def test_writing_a_read_clip_reproduces_the_release_bytes(fixtures_dir: Path, tmp_path: Path, vid: str) -> None:
    path = clip_path(fixtures_dir, vid)
    clip = read_clip(path)
    out = tmp_path / path.name
    write_clip(out, clip.pose, clip.score, clip.label, clip.label_index)
    assert out.read_bytes() == path.read_bytes()


def test_round_trip_of_new_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pose = rng.uniform(-0.1, 1.1, size=(12, 3, 18, 2))
    score = rng.uniform(0, 1, size=(12, 3, 18))
    present = rng.uniform(size=(12, 3)) < 0.6
    present[4] = False  # a frame with nobody
    pose[~present], score[~present] = 0, 0
    pose[0, 0, 0] = [-0.0001, 0.00049]  # rounds to 0.000 without a minus sign
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_clip(a, pose, score, "riding a bike", 7)
    write_clip(b, pose.copy(), score.copy(), "riding a bike", 7)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    assert "\n" not in text and "-0.000" not in text
    assert '{"frame_index": 5, "skeleton": []}' in text
    clip = read_clip(a)
    assert (clip.label, clip.label_index, clip.video_id) == ("riding a bike", 7, "a")
    # persons are packed to the front of each frame, values rounded to 3 decimals
    for f in range(12):
        slots = np.flatnonzero(present[f])
        np.testing.assert_array_equal(clip.pose[f, : len(slots)], np.round(pose[f, slots], 3).astype(np.float32))
        np.testing.assert_array_equal(clip.score[f, : len(slots)], np.round(score[f, slots], 3).astype(np.float32))


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    with pytest.raises(ValueError, match="pose must have shape"):
        write_clip(path, np.zeros((2, 1, 17, 2)), np.zeros((2, 1, 17)), "x", 0)
    with pytest.raises(ValueError, match="score must have shape"):
        write_clip(path, np.zeros((2, 1, 18, 2)), np.zeros((2, 2, 18)), "x", 0)
    with pytest.raises(ValueError, match="NaN"):
        write_clip(path, np.full((2, 1, 18, 2), np.nan), np.zeros((2, 1, 18)), "x", 0)
    assert not path.exists()


# --------------------------------------------------------------------------- corrupted clips


def _edit_json(fn):
    def edit(raw: bytes) -> bytes:
        doc = json.loads(raw)
        fn(doc)
        return json.dumps(doc).encode()

    return edit


def _first_person(doc: dict) -> dict:
    return next(e for e in doc["data"] if e["skeleton"])["skeleton"][0]


CORRUPTIONS = {
    "truncated": (lambda raw: raw[: len(raw) // 2], r"not valid JSON"),
    "empty": (lambda raw: b"", r"empty file"),
    "nan": (lambda raw: raw.replace(b"0.000", b"NaN", 1), r"NaN"),
    "overflow": (lambda raw: raw.replace(b"0.000", b"1e999", 1), r"not finite"),
    "short_pose": (_edit_json(lambda d: _first_person(d)["pose"].pop()), r"pose has 35 values"),
    "string_value": (
        _edit_json(lambda d: _first_person(d)["score"].__setitem__(3, "0.5")),
        r"score list holds something other",
    ),
    "bool_value": (_edit_json(lambda d: _first_person(d)["pose"].__setitem__(0, True)), r"true/false"),
    "frame_index_zero": (_edit_json(lambda d: d["data"][0].__setitem__("frame_index", 0)), r"frame_index 0 is not"),
    "huge_frame_index": (
        _edit_json(lambda d: d["data"][-1].__setitem__("frame_index", 10**9)),
        r"frame_index 1000000000",
    ),
    "repeated_frame": (
        _edit_json(lambda d: d["data"][1].__setitem__("frame_index", 1)),
        r"frame_index 1 appears twice",
    ),
    "no_label": (_edit_json(lambda d: d.pop("label")), r"missing key 'label'"),
    "label_index_text": (_edit_json(lambda d: d.__setitem__("label_index", "3")), r"'label_index' is '3'"),
    "not_an_object": (lambda raw: b"[1, 2, 3]", r"top level is list"),
    "binary_junk": (lambda raw: raw[:50] + b"\xff\xfe" + raw[50:], r"not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupted_clips_are_rejected_with_the_reason(fixtures_copy: Path, case: str) -> None:
    edit, reason = CORRUPTIONS[case]
    path = fixtures_copy / "kinetics" / "kkwHdOvpCoc.json"
    path.write_bytes(edit(path.read_bytes()))
    with pytest.raises(ClipFormatError, match=reason) as err:
        read_clip(path)
    assert str(err.value).startswith(f"{path}: ")


# --------------------------------------------------------------------------- label files


def test_label_file_read_and_write(fixtures_dir: Path, tmp_path: Path) -> None:
    labels = read_label_file(fixtures_dir / "kinetics" / "labels_renumbered" / "kinetics_train_label.json")
    assert len(labels) == 5
    assert labels["___qijXy2f0"] == {"has_skeleton": True, "label": "playing harp", "label_index": 1}
    labels["__zzz"] = {"has_skeleton": False, "label": "abseiling", "label_index": 0}
    out = tmp_path / "kinetics_val_label.json"
    write_label_file(out, labels)
    assert read_label_file(out) == labels
    assert list(read_label_file(out)) == list(labels)  # order kept
    first = out.read_bytes()
    write_label_file(out, dict(labels))
    assert out.read_bytes() == first


def test_label_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text('{"abc": {"has_skeleton": "yes", "label": "x", "label_index": 1}}')
    with pytest.raises(ClipFormatError, match=r"entry 'abc' needs has_skeleton"):
        read_label_file(path)
    path.write_text('["abc"]')
    with pytest.raises(ClipFormatError, match="top level is list"):
        read_label_file(path)
    with pytest.raises(ValueError, match="entry 'v'"):
        write_label_file(path, {"v": {"label": "x", "label_index": 1}})


# --------------------------------------------------------------------------- person selection


def test_select_persons_ranks_by_summed_score_per_frame() -> None:
    pose = np.arange(2 * 4 * 18 * 2, dtype=np.float32).reshape(2, 4, 18, 2)
    score = np.zeros((2, 4, 18), dtype=np.float32)
    score[0, :, 0] = [0.1, 0.9, 0.5, 0.2]  # frame 0: order 1, 2
    score[1, :, 0] = [0.7, 0.7, 0.0, 0.8]  # frame 1: order 3, then the tie 0/1 -> 0
    p, s = select_persons(pose, score, keep=2, max_read=5)
    assert p.shape == (2, 2, 18, 2) and s.shape == (2, 2, 18)
    np.testing.assert_array_equal(p[0], pose[0, [1, 2]])
    np.testing.assert_array_equal(p[1], pose[1, [3, 0]])
    np.testing.assert_array_equal(s[1, :, 0], np.float32([0.8, 0.7]))


def test_select_persons_reads_only_max_read_and_pads(fixtures_dir: Path) -> None:
    clip = read_clip(clip_path(fixtures_dir, "__lt03EF4ao"))  # up to 9 people
    p, s = select_persons(clip.pose, clip.score, keep=2, max_read=5)
    totals = clip.score[:, :5].astype(np.float64).sum(axis=2)  # (F, 5)
    best = np.sort(totals, axis=1)[:, ::-1][:, :2]
    np.testing.assert_allclose(s.astype(np.float64).sum(axis=2), best, rtol=1e-6)
    one = read_clip(clip_path(fixtures_dir, "sAP-xS5P0Bw"))  # at most one person
    p1, s1 = select_persons(one.pose, one.score)
    assert p1.shape == (299, 2, 18, 2)
    np.testing.assert_array_equal(p1[:, 1], 0)
    np.testing.assert_array_equal(p1[:, 0], one.pose[:, 0])
