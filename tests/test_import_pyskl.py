"""`stf import --format pyskl`: pyskl annotation pickles -> the interim parquet (+ split files).

The pickles are written here from the real fixture files in pyskl's documented layout:
NTU 3-D `keypoint` (M, T, 25, 3) camera metres, OpenPose-18 2-D `keypoint` in pixels with
`keypoint_score` and `img_shape`.
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stf.config import PreprocessConfig, SettingSpec, SplitConfig
from stf.data.formats import kinetics as kfmt
from stf.data.formats import ntu as ntu_format
from stf.data.formats.pyskl import keypoint_layout, write_pyskl
from stf.data.importer import ImportDataError, import_dataset
from stf.data.preprocess import prepare_raw_file, read_interim
from stf.data.safe_pickle import UnsafePickleError, load_pickle
from stf.data.splits import read_split

CFG = PreprocessConfig()
FRAMES = 48
# each fixture file becomes class k (A00k) under four (camera, performer) names, so that every
# class has samples on both sides of x-sub (P001 train, P003 test) and x-view (C002 / C001)
VARIANTS = [(1, 1), (2, 3), (2, 1), (1, 3)]
SETTINGS = {
    "ntu60-xsub": SettingSpec(dataset="ntu60", benchmark="xsub"),
    "ntu60-xview": SettingSpec(dataset="ntu60", benchmark="xview"),
    "kinetics": SettingSpec(dataset="kinetics", benchmark="trainval"),
}


def ntu_annotations(fixtures_dir: Path, dtype=np.float32) -> tuple[list[dict], dict[str, Path]]:
    anns, source = [], {}
    for k, path in enumerate(sorted((fixtures_dir / "ntu").glob("*.skeleton")), start=1):
        sk = ntu_format.read_skeleton(path, max_bodies=4)
        xyz = ntu_format.select_bodies(sk.xyz, keep=2, max_read=4)  # (F, 2, 25, 3)
        persons = [p for p in range(2) if np.abs(xyz[:, p]).sum() > 0]
        kp = xyz[:, persons].transpose(1, 0, 2, 3).astype(dtype)  # (M, T, 25, 3)
        for c, p in VARIANTS:
            name = f"S001C{c:03d}P{p:03d}R001A{k:03d}"
            anns.append({"frame_dir": name, "label": k - 1, "keypoint": kp, "total_frames": kp.shape[1]})
            source[name] = path
    return anns, source


def ntu_split(names: list[str]) -> dict[str, list[str]]:
    return {
        "xsub_train": [n for n in names if "P001" in n],
        "xsub_val": [n for n in names if "P003" in n],
        "xview_train": [n for n in names if "C002" in n],
        "xview_val": [n for n in names if "C001" in n],
    }


@pytest.fixture(scope="module")
def ntu_pickle(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> tuple[Path, dict[str, Path]]:
    anns, source = ntu_annotations(fixtures_dir)
    path = tmp_path_factory.mktemp("pyskl") / "ntu60_3danno.pkl"
    write_pyskl(path, ntu_split([a["frame_dir"] for a in anns]), anns)
    return path, source


def test_ntu_3d_import_prepares_as_preprocess(ntu_pickle: tuple[Path, dict], tmp_path: Path) -> None:
    path, source = ntu_pickle
    out = tmp_path / "ntu60.parquet"
    s = import_dataset("pyskl", path, "ntu60", out, CFG, FRAMES)
    assert (s["read"], s["written"], s["rejected"], s["excluded"]) == (24, 24, 0, 0)
    d = read_interim(out)
    assert d.info["channels"] == ["x", "y", "z", "visibility"] and d.info["num_class"] == 6
    assert list(d.meta.sample_id) == sorted(source)
    for i, sid in enumerate(d.meta.sample_id):
        row, ref = prepare_raw_file(source[sid], "ntu60", CFG, FRAMES)
        np.testing.assert_array_equal(d.data[i], ref)
        assert d.meta.n_frames[i] == row["n_frames"] and d.meta.n_persons[i] == row["n_persons"]
        assert d.meta.label[i] == int(sid[-3:]) - 1 and d.meta.performer[i] == int(sid[9:12])


def test_float16_and_more_than_two_persons(fixtures_dir: Path, tmp_path: Path) -> None:
    anns, source = ntu_annotations(fixtures_dir, dtype=np.float16)
    anns = anns[:1]
    kp = anns[0]["keypoint"]  # (1, T, 25, 3) one person
    still = np.repeat(kp[:, :1], kp.shape[1], axis=1) + np.float16(0.5)  # a motionless bystander
    anns.append({**anns[0], "frame_dir": "S001C001P001R001A002", "label": 1,
                 "keypoint": np.concatenate([still, kp, still + np.float16(1.0)])})  # fmt: skip
    path = tmp_path / "x.pkl"
    write_pyskl(path, {}, anns)
    s = import_dataset("pyskl", path, "ntu60", tmp_path / "o.parquet", CFG, FRAMES)
    assert s["written"] == 2
    d = read_interim(tmp_path / "o.parquet")
    # the energy rule keeps the moving person first, as preprocess would; the bystanders rank after
    np.testing.assert_allclose(d.data[1, :, :, :, 0], d.data[0, :, :, :, 0], atol=1e-6)
    assert d.meta.n_persons.tolist() == [1, 2]


def test_splits_out_follows_the_pickle_and_reports_disagreements(ntu_pickle: tuple[Path, dict], tmp_path: Path) -> None:
    path, _ = ntu_pickle
    f = load_pickle(path)
    moved = f["split"]["xsub_val"].pop(0)  # a test-performer sample the pickle puts in training
    f["split"]["xsub_train"].append(moved)
    f["split"]["xsub_val"].append("S001C001P003R001A099")  # listed but not in the annotations
    write_pyskl(tmp_path / "edited.pkl", f["split"], f["annotations"])
    s = import_dataset(
        "pyskl", tmp_path / "edited.pkl", "ntu60", tmp_path / "ntu60.parquet", CFG, FRAMES,
        settings=SETTINGS, split_cfg=SplitConfig(fractions=[50, 100]), splits_out=tmp_path / "splits",
    )  # fmt: skip
    assert set(s["splits"]) == {"ntu60-xsub", "ntu60-xview"}
    xsub = s["splits"]["ntu60-xsub"]
    assert (xsub["train"], xsub["test"], xsub["disagree_with_id_rules"]) == (13, 11, 1)
    assert xsub["examples"] == [moved] and xsub["not_imported"] == 1
    assert s["splits"]["ntu60-xview"]["disagree_with_id_rules"] == 0
    table, meta = read_split(tmp_path / "splits" / "ntu60-xsub.parquet")
    assert meta["setting"] == "ntu60-xsub"
    parts = dict(zip(table.sample_id, table.part, strict=True))
    assert parts[moved] == "train" and set(parts.values()) == {"train", "test"}
    assert {"sample_id", "part", "label", "p100", "p50"} <= set(table.columns)


def test_openpose_2d_import(fixtures_dir: Path, tmp_path: Path) -> None:
    width, height = 340.0, 256.0
    anns, refs = [], {}
    clips = sorted((fixtures_dir / "kinetics").glob("*.json"))
    for path in clips:
        clip = kfmt.read_clip(path)
        kp = clip.pose.transpose(1, 0, 2, 3) * np.array([width, height], np.float32)  # (P, T, 18, 2) pixels
        anns.append({"frame_dir": path.stem, "label": int(clip.label_index), "keypoint": kp,
                     "keypoint_score": clip.score.transpose(1, 0, 2), "img_shape": (height, width),
                     "total_frames": kp.shape[1]})  # fmt: skip
        refs[path.stem] = prepare_raw_file(path, "kinetics", CFG, FRAMES)[1]
    anns.append({**anns[0], "frame_dir": "no-shape", "img_shape": None})
    split = {"train": [p.stem for p in clips[:3]], "val": [p.stem for p in clips[3:]] + ["no-shape"]}
    path = tmp_path / "k.pkl"
    write_pyskl(path, split, anns)
    out = tmp_path / "kinetics.parquet"
    s = import_dataset("pyskl", path, "kinetics", out, CFG, FRAMES, settings=SETTINGS,
                       split_cfg=SplitConfig(fractions=[100]), splits_out=None)  # fmt: skip
    assert (s["written"], s["rejected"]) == (len(clips), 1)
    d = read_interim(out)
    for i, sid in enumerate(d.meta.sample_id):
        np.testing.assert_allclose(d.data[i], refs[sid], atol=1e-5)
    assert dict(zip(d.meta.sample_id, d.meta.part, strict=True)) == {
        **{c: "train" for c in split["train"]}, **{c: "val" for c in split["val"][:-1]}}  # fmt: skip
    with open(tmp_path / "kinetics.rejected.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["file"] == "k.pkl[7]:no-shape" and "img_shape" in row["reason"]


def test_layouts_without_a_graph_are_refused(tmp_path: Path) -> None:
    coco = [{"frame_dir": "S001C001P001R001A001", "label": 0, "total_frames": 5,
             "keypoint": np.zeros((1, 5, 17, 2), np.float32), "keypoint_score": np.ones((1, 5, 17), np.float32),
             "img_shape": (1080, 1920)}]  # fmt: skip
    write_pyskl(tmp_path / "ntu60_hrnet.pkl", {"xsub_train": ["S001C001P001R001A001"]}, coco)
    assert keypoint_layout(coco[0]) == "coco17"
    for dataset in ("ntu60", "kinetics"):
        with pytest.raises(ImportDataError, match="COCO-17.*graphs for NTU-25 3-D and OpenPose-18 2-D only"):
            import_dataset("pyskl", tmp_path / "ntu60_hrnet.pkl", dataset, tmp_path / "o.parquet", CFG, FRAMES)
    toc = [{"frame_dir": "abc", "label": 3, "total_frames": 10, "raw_file": "kpfile_1.pkl"}]
    write_pyskl(tmp_path / "k400_hrnet.pkl", {"train": ["abc"]}, toc)
    with pytest.raises(ImportDataError, match="kpfiles"):
        import_dataset("pyskl", tmp_path / "k400_hrnet.pkl", "kinetics", tmp_path / "o.parquet", CFG, FRAMES)


def test_bad_annotations_are_listed(ntu_pickle: tuple[Path, dict], tmp_path: Path) -> None:
    f = load_pickle(ntu_pickle[0])
    anns = f["annotations"][:4]
    good = anns[0]
    anns += [
        {**good, "frame_dir": "S002C001P001R001A001", "total_frames": 7},
        {**good, "frame_dir": "S002C001P001R001A002", "label": 1, "keypoint": good["keypoint"][..., :2]},
        {**good, "frame_dir": 17},
        {**good, "frame_dir": "S002C001P001R001A003", "label": "two"},
        {
            **good,
            "frame_dir": "S002C001P001R001A004",
            "label": 3,
            "keypoint": np.full_like(good["keypoint"], np.inf),
        },  # fmt: skip
    ]
    write_pyskl(tmp_path / "bad.pkl", {}, anns)
    s = import_dataset("pyskl", tmp_path / "bad.pkl", "ntu60", tmp_path / "o.parquet", CFG, FRAMES)
    assert (s["read"], s["written"], s["rejected"]) == (9, 4, 5)
    reasons = pd.read_csv(tmp_path / "o.rejected.csv")["reason"].str.cat(sep=" | ")
    for needle in ("total_frames is 7", "V = 25, C = 3", "frame_dir is 17", "label is 'two'", "non-finite"):
        assert needle in reasons, reasons
    with pytest.raises(ImportDataError, match="rejected \\(strict\\)"):
        import_dataset("pyskl", tmp_path / "bad.pkl", "ntu60", tmp_path / "o.parquet", CFG, FRAMES, strict=True)


def test_hostile_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Hostile:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    path = tmp_path / "ntu60_3danno.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"split": {}, "annotations": [Hostile()]}, fh)
    with pytest.raises(UnsafePickleError, match=r"ntu60_3danno.pkl: refusing to load posix.system"):
        import_dataset("pyskl", path, "ntu60", tmp_path / "o.parquet", CFG, FRAMES)
    assert not marker.exists() and not (tmp_path / "o.parquet").exists()


def test_safe_pickle_admits_numpy_in_every_protocol(tmp_path: Path) -> None:
    obj = {"a": np.arange(6, dtype=np.float16).reshape(2, 3), "n": np.int64(3), "s": {1, 2}, "t": (b"x", 1.5)}
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
        back = load_pickle(path)
        np.testing.assert_array_equal(back["a"], obj["a"])
        assert back["n"] == 3 and back["s"] == {1, 2} and back["t"] == (b"x", 1.5)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="junk.pkl: not a readable pickle"):
        load_pickle(tmp_path / "junk.pkl")
