"""Preprocessing real NTU / Kinetics files into the interim parquet, and reading it back."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from stf.config import PreprocessConfig
from stf.data.normalize import NTU_HEIGHT, body_height
from stf.data.preprocess import InterimFormatError, PreprocessError, preprocess, read_interim, read_interim_meta

NTU_IDS = [
    "S001C001P001R001A001",
    "S001C001P001R001A008",
    "S001C001P001R001A011",
    "S001C003P008R002A058",
    "S003C001P015R001A034",
    "S017C003P020R002A054",
]
NTU_FRAMES = [103, 71, 82, 70, 71, 42]
NTU_PERSONS = [1, 1, 1, 2, 1, 2]


def rejected(out: Path) -> dict[str, str]:
    with open(out.with_name(out.name.replace(".parquet", ".rejected.csv")), newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["file", "reason"]
    return {f: r for f, r in rows[1:]}


def run(dataset, raw, out, frames=64, missing=None, strict=False, **cfg):
    return preprocess(dataset, raw, out, PreprocessConfig(**cfg), frames=frames, missing_list=missing, strict=strict)


# --------------------------------------------------------------------------- NTU


def test_ntu_fixtures_rows_labels_shapes(fixtures_dir, tmp_path):
    out = tmp_path / "interim" / "ntu60.parquet"
    summary = run("ntu60", fixtures_dir / "ntu", out, frames=128)
    assert summary == {**summary, "read": 6, "written": 6, "rejected": 0, "excluded": 0, "out": str(out)}
    it = read_interim(out)
    assert it.meta.sample_id.tolist() == NTU_IDS
    assert it.meta.label.tolist() == [int(s[-3:]) - 1 for s in NTU_IDS]
    assert it.meta.setup.tolist() == [1, 1, 1, 1, 3, 17]
    assert it.meta.camera.tolist() == [1, 1, 1, 3, 1, 3]
    assert it.meta.performer.tolist() == [1, 1, 1, 8, 15, 20]
    assert it.meta.replication.tolist() == [1, 1, 1, 2, 1, 2]
    assert it.meta.n_frames.tolist() == NTU_FRAMES
    assert it.meta.n_persons.tolist() == NTU_PERSONS
    assert it.data.shape == (6, 4, 128, 25, 2) and it.data.dtype == np.float32
    assert it.info == {"dataset": "ntu60", "layout": "ntu25", "shape": [4, 128, 25, 2], "num_class": 58,
                       "channels": ["x", "y", "z", "visibility"], "pad": "repeat",
                       "storage": {"dtype": "float32", "axes": ["T", "C", "V", "M"]}}  # fmt: skip
    schema = pq.read_schema(out)
    assert schema.field("label").type == pa.int32() and schema.field("setup").type == pa.int16()
    assert schema.field("data").type == pa.binary()
    # each sample is stored at its own length: n_frames x C x V x M float32 values, no padding
    stored = pc.binary_length(pq.read_table(out, columns=["data"])["data"]).to_pylist()
    assert stored == [n * 4 * 25 * 2 * 4 for n in NTU_FRAMES]

    x = it.data
    vis = x[:, 3]  # (N, T, V, M)
    assert np.all(vis[:, :, :, 0] == 1)  # person 0 tracked in every frame of these files
    for i, persons in enumerate(NTU_PERSONS):
        assert np.all(vis[i, :, :, 1] == (persons == 2))
        if persons == 1:
            assert np.all(x[i, :, :, :, 1] == 0)  # absent second person is exactly zero
    np.testing.assert_allclose(x[:, :3, :, 1, 0], 0.0, atol=1e-6)  # centre joint (spine mid) at the origin
    for i in range(6):  # body height 1 (over the real frames; padding repeats some of them)
        xyz = x[i, :3, : NTU_FRAMES[i], :, 0].transpose(1, 2, 0)[:, None]  # (F, 1, V, 3) of person 0
        assert body_height(xyz, np.ones(xyz.shape[:3], bool), NTU_HEIGHT) == pytest.approx(1.0, rel=1e-4)
    n = NTU_FRAMES[0]  # repeat padding: frame n + k is frame k
    np.testing.assert_array_equal(x[0, :, n : n + 20], x[0, :, :20])


def prepared(raw: Path, out: Path, **kw):
    run("ntu60", raw, out, **kw)
    return read_interim(out)


def test_ntu_options_zero_pad_resample_no_visibility_rotation(fixtures_dir, tmp_path):
    src = fixtures_dir / "ntu"
    zero = prepared(src, tmp_path / "z.parquet", frames=128, pad="zero")
    assert np.all(zero.data[0, :, NTU_FRAMES[0] :] == 0) and np.all(zero.data[0, 3, : NTU_FRAMES[0], :, 0] == 1)
    # 103 frames resampled to 32 keep the first and last frames
    short = prepared(src, tmp_path / "s.parquet", frames=32)
    full = prepared(src, tmp_path / "f.parquet", frames=103)
    np.testing.assert_allclose(short.data[0, :, 0], full.data[0, :, 0])
    np.testing.assert_allclose(short.data[0, :, -1], full.data[0, :, 102])
    assert prepared(src, tmp_path / "nv.parquet", visibility_channel=False).info["shape"] == [3, 64, 25, 2]
    rot = prepared(src, tmp_path / "r.parquet", msg3d_rotation=True)
    shoulders = rot.data[:, :3, 0, 8, 0] - rot.data[:, :3, 0, 4, 0]  # (N, 3), frame 0, person 0
    assert np.all(shoulders[:, 0] > 0)
    np.testing.assert_allclose(shoulders[:, 1:], 0.0, atol=1e-5)


def lines_of(path: Path) -> list[str]:
    return path.read_bytes().decode().split("\r\n" if b"\r\n" in path.read_bytes() else "\n")


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines))


def corrupt(raw: Path, source: Path) -> dict[str, str]:
    """Corrupted copies of `source` under new valid names -> {file: expected reason fragment}."""
    lines = lines_of(source)
    cases = {}

    def add(name: str, new_lines: list[str] | None, expect: str, text: str | None = None) -> None:
        path = raw / "bad" / f"{name}.skeleton"
        path.parent.mkdir(exist_ok=True)
        if text is not None:
            path.write_text(text)
        else:
            write_lines(path, new_lines)
        cases[f"bad/{name}.skeleton"] = expect

    add("S001C002P001R001A001", lines[: len(lines) // 2], "truncated")
    wrong = list(lines)
    wrong[3] = "24"  # joint count of body 1 in frame 1
    add("S001C002P001R001A002", wrong, "joint count")
    nan = list(lines)
    nan[10] = "nan " + nan[10].split(" ", 1)[1]
    add("S001C002P001R001A003", nan, "NaN")
    word = list(lines)
    word[11] = "abc " + word[11].split(" ", 1)[1]
    add("S001C002P001R001A004", word, "non-numeric")
    add("S001C002P001R001A005", None, "empty", text="")
    zeros = list(lines)
    for i, line in enumerate(zeros):
        parts = line.split(" ")
        if len(parts) == 12:
            zeros[i] = " ".join(["0", "0", "0"] + parts[3:])
    add("S001C002P001R001A006", zeros, "no frame has a valid joint")
    add("S001C002P001R001A007", None, "no frames", text="0\n")
    return cases


def test_corrupted_files_are_rejected_with_reason(fixtures_copy, tmp_path):
    raw = fixtures_copy / "ntu"
    expected = corrupt(raw, raw / "S001C001P001R001A001.skeleton")
    (raw / "notes.skeleton").write_text("3\n")  # not an NTU name
    expected["notes.skeleton"] = "not an NTU sample name"
    out = tmp_path / "ntu60.parquet"
    summary = run("ntu60", raw, out)
    got = rejected(out)
    assert set(got) == set(expected)
    for f, fragment in expected.items():
        assert fragment.lower() in got[f].lower(), (f, got[f])
    assert summary["read"] == 6 + len(expected)
    assert summary["written"] == 6 and summary["rejected"] == len(expected) and summary["excluded"] == 0
    assert summary["read"] == summary["written"] + summary["rejected"] + summary["excluded"]
    assert read_interim_meta(out)[0].sample_id.tolist() == NTU_IDS

    strict_out = tmp_path / "strict.parquet"
    with pytest.raises(PreprocessError, match=rf"{len(expected)} file\(s\) rejected.*strict\.rejected\.csv"):
        run("ntu60", raw, strict_out, strict=True)
    assert strict_out.exists() and (tmp_path / "strict.rejected.csv").exists()


def test_missing_list_and_ntu60_range_exclusions(fixtures_copy, tmp_path):
    raw = fixtures_copy / "ntu"
    shutil.copy(raw / "S001C001P001R001A001.skeleton", raw / "S018C001P045R001A061.skeleton")
    missing = tmp_path / "missing.txt"
    missing.write_text(
        "Samples with missing skeletons\nsecond header line\n\nS001C001P001R001A008\nS003C001P015R001A034\n"
    )
    out = tmp_path / "ntu60.parquet"
    summary = run("ntu60", raw, out, missing=missing)
    assert (summary["read"], summary["written"], summary["rejected"], summary["excluded"]) == (7, 4, 0, 3)
    got = rejected(out)
    assert got["S001C001P001R001A008.skeleton"] == "excluded: missing-skeleton list"
    assert got["S003C001P015R001A034.skeleton"] == "excluded: missing-skeleton list"
    assert got["S018C001P045R001A061.skeleton"].startswith("excluded: not an NTU-60 sample")
    summary120 = run("ntu120", raw, tmp_path / "ntu120.parquet")
    assert summary120["written"] == 7
    assert read_interim_meta(tmp_path / "ntu120.parquet")[1]["num_class"] == 61


def test_duplicate_ids_and_empty_folder(fixtures_copy, tmp_path):
    raw = fixtures_copy / "ntu"
    (raw / "again").mkdir()
    shutil.copy(raw / "S001C001P001R001A011.skeleton", raw / "again" / "S001C001P001R001A011.skeleton")
    out = tmp_path / "ntu60.parquet"
    summary = run("ntu60", raw, out)
    assert summary["written"] == 6 and summary["rejected"] == 1
    assert "duplicate sample id" in rejected(out)["again/S001C001P001R001A011.skeleton"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(PreprocessError, match="no raw ntu60 files"):
        run("ntu60", tmp_path / "empty", tmp_path / "e.parquet")


def test_parallel_workers_write_the_same_file(fixtures_copy, tmp_path):
    raw = fixtures_copy / "ntu"
    corrupt(raw, raw / "S001C001P001R001A008.skeleton")
    cfg = PreprocessConfig()
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    preprocess("ntu60", raw, a, cfg, frames=48, missing_list=None, strict=False, workers=1)
    preprocess("ntu60", raw, b, cfg, frames=48, missing_list=None, strict=False, workers=2, chunk_size=2)
    ia, ib = read_interim(a), read_interim(b)
    assert ia.meta.equals(ib.meta) and ia.info == ib.info
    np.testing.assert_array_equal(ia.data, ib.data)
    assert rejected(a) == rejected(b)


def test_float16_storage_halves_the_tensor_bytes_within_its_rounding(fixtures_dir, tmp_path):
    full = prepared(fixtures_dir / "ntu", tmp_path / "f32.parquet", frames=128)
    half = prepared(fixtures_dir / "ntu", tmp_path / "f16.parquet", frames=128, storage_dtype="float16")
    assert half.info["storage"]["dtype"] == "float16" and half.data.dtype == np.float32
    bytes32, bytes16 = (sum(pc.binary_length(pq.read_table(p, columns=["data"])["data"]).to_pylist())
                        for p in (tmp_path / "f32.parquet", tmp_path / "f16.parquet"))  # fmt: skip
    assert bytes16 * 2 == bytes32
    err = np.abs(half.data - full.data)
    assert err.max() <= 2.0**-11 * np.abs(full.data).max()  # half an ulp of float16 at the largest value
    np.testing.assert_array_equal(half.data[:, 3], full.data[:, 3])  # visibility 0/1 is exact


# --------------------------------------------------------------------------- reading back


def test_read_interim_rows_and_bad_files(fixtures_dir, tmp_path):
    out = tmp_path / "ntu60.parquet"
    run("ntu60", fixtures_dir / "ntu", out, frames=16)
    full = read_interim(out)
    part = read_interim(out, rows=np.array([4, 0, 2]))
    assert part.meta.sample_id.tolist() == [NTU_IDS[4], NTU_IDS[0], NTU_IDS[2]]
    np.testing.assert_array_equal(part.data, full.data[[4, 0, 2]])
    meta, info = read_interim_meta(out)
    assert "data" not in meta.columns and info == full.info

    table = pq.read_table(out)
    plain = tmp_path / "plain.parquet"
    pq.write_table(table.replace_schema_metadata(None), plain)
    with pytest.raises(InterimFormatError, match=r"plain\.parquet.*metadata"):
        read_interim(plain)
    wrong = tmp_path / "wrong.parquet"  # metadata says 3 persons, the rows hold 2
    bad_info = {**json.loads(table.schema.metadata[b"stf"]), "shape": [4, 16, 25, 3]}
    pq.write_table(table.replace_schema_metadata({b"stf": json.dumps(bad_info).encode()}), wrong)
    with pytest.raises(InterimFormatError, match=r"wrong\.parquet: row 0 holds 82400 bytes, n_frames 103 needs 123600"):
        read_interim(wrong)
    old = tmp_path / "old.parquet"  # the padded fixed-size layout of earlier versions
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(6 * 8, np.float32)), 8)
    old_info = {k: v for k, v in json.loads(table.schema.metadata[b"stf"]).items() if k not in ("pad", "storage")}
    pq.write_table(table.set_column(table.schema.get_field_index("data"), "data", fixed)
                   .replace_schema_metadata({b"stf": json.dumps(old_info).encode()}), old)  # fmt: skip
    with pytest.raises(InterimFormatError, match=r"old\.parquet: data column fixed_size_list.*rerun stf preprocess"):
        read_interim_meta(old)
    with pytest.raises(InterimFormatError, match="not found"):
        read_interim(tmp_path / "absent.parquet")


# --------------------------------------------------------------------------- Kinetics

KINETICS_TRAIN = {"sAP-xS5P0Bw": ("motorcycling", 199), "kkwHdOvpCoc": ("cutting watermelon", 83)}
KINETICS_VAL = {
    "-0BveUV52cM": ("smoking hookah", 317),
    "__NrybzYzUg": ("abseiling", 0),
    "__U_scuxNlQ": ("clay pottery making", 58),
    "__vzEs2wzdQ": ("strumming guitar", 335),
    "__lt03EF4ao": ("passing American football (in game)", 208),
}


def kinetics_raw(fixtures_dir: Path, root: Path, train_labels=None, val_labels=None) -> Path:
    """Real clips in the release layout, with label files written here (the real ones are not in fixtures)."""
    for part, clips in (("train", KINETICS_TRAIN), ("val", KINETICS_VAL)):
        (root / f"kinetics_{part}").mkdir(parents=True, exist_ok=True)
        for vid in clips:
            shutil.copy(fixtures_dir / "kinetics" / f"{vid}.json", root / f"kinetics_{part}" / f"{vid}.json")
    if train_labels is None:
        train_labels = {
            v: {"has_skeleton": True, "label": lab, "label_index": i} for v, (lab, i) in KINETICS_TRAIN.items()
        }
        train_labels["not-downloaded"] = {"has_skeleton": True, "label": "x", "label_index": 3}
    if val_labels is None:
        val_labels = {v: {"has_skeleton": v != "__U_scuxNlQ", "label": lab, "label_index": i}
                      for v, (lab, i) in KINETICS_VAL.items() if v != "__lt03EF4ao"}  # fmt: skip
    (root / "kinetics_train_label.json").write_text(json.dumps(train_labels, indent=4))
    (root / "kinetics_val_label.json").write_text(json.dumps(val_labels, indent=4))
    return root


def test_kinetics_fixtures_rows_parts_channels(fixtures_dir, tmp_path):
    raw = kinetics_raw(fixtures_dir, tmp_path / "raw")
    out = tmp_path / "kinetics.parquet"
    summary = run("kinetics", raw, out, frames=64)
    assert (summary["read"], summary["written"], summary["rejected"], summary["excluded"]) == (7, 5, 0, 2)
    got = rejected(out)
    assert got == {
        "kinetics_val/__U_scuxNlQ.json": "excluded: has_skeleton false in kinetics_val_label.json",
        "kinetics_val/__lt03EF4ao.json": "excluded: not in kinetics_val_label.json",
    }
    it = read_interim(out)
    ids = ["-0BveUV52cM", "__NrybzYzUg", "__vzEs2wzdQ", "kkwHdOvpCoc", "sAP-xS5P0Bw"]
    assert it.meta.sample_id.tolist() == ids
    assert it.meta.part.tolist() == ["val", "val", "val", "train", "train"]
    assert it.meta.label.tolist() == [317, 0, 335, 83, 199]
    assert (it.meta[["setup", "camera", "performer", "replication"]] == -1).all().all()
    assert it.info == {"dataset": "kinetics", "layout": "openpose18", "shape": [3, 64, 18, 2], "num_class": 336,
                       "channels": ["x", "y", "confidence"], "pad": "repeat",
                       "storage": {"dtype": "float32", "axes": ["T", "C", "V", "M"]}}  # fmt: skip
    x = it.data  # (N, 3, T, 18, 2)
    conf = x[:, 2]
    assert conf.min() >= 0 and conf.max() <= 1 and conf.max() > 0.5
    assert np.all(x[:, :2][np.broadcast_to(conf[:, None] == 0, x[:, :2].shape)] == 0)  # no score -> no coordinates
    neck_seen = conf[:, :, 1, 0] > 0  # (N, T)
    assert np.all(x[:, :2, :, 1, 0].transpose(0, 2, 1)[neck_seen] == 0)  # neck of person 0 is the origin
    nose_seen = neck_seen & (conf[:, :, 0, 0] > 0)
    assert (x[:, 1, :, 0, 0][nose_seen] > 0).mean() > 0.9  # y points up: the nose is above the neck
    assert it.meta.n_persons.tolist()[1] == 2 and it.meta.n_persons.tolist()[4] == 1
    # sAP-xS5P0Bw shows a person in one frame only: trimmed to it, then repeated
    assert it.meta.n_frames.tolist()[4] == 1
    np.testing.assert_array_equal(x[4, :, 1:], np.repeat(x[4, :, :1], 63, axis=1))


def test_kinetics_label_problems(fixtures_dir, tmp_path):
    train = {v: {"has_skeleton": True, "label": lab, "label_index": i} for v, (lab, i) in KINETICS_TRAIN.items()}
    train["kkwHdOvpCoc"]["label_index"] = 5
    raw = kinetics_raw(fixtures_dir, tmp_path / "raw", train_labels=train)
    (raw / "kinetics_train" / "broken.json").write_text('{"data": [')
    out = tmp_path / "kinetics.parquet"
    summary = run("kinetics", raw, out)
    got = rejected(out)
    assert "disagrees" in got["kinetics_train/kkwHdOvpCoc.json"]
    assert got["kinetics_train/broken.json"] == "excluded: not in kinetics_train_label.json"
    assert summary["rejected"] == 1 and summary["read"] == 8
    train["broken"] = {"has_skeleton": True, "label": "x", "label_index": 1}
    kinetics_raw(fixtures_dir, raw, train_labels=train)
    run("kinetics", raw, out)
    assert "not valid JSON" in rejected(out)["kinetics_train/broken.json"]
    (raw / "kinetics_val_label.json").unlink()
    with pytest.raises(PreprocessError, match="kinetics_val_label.json is missing"):
        run("kinetics", raw, out)
    with pytest.raises(PreprocessError, match="NTU only"):
        run("kinetics", raw, out, missing=tmp_path / "list.txt")
