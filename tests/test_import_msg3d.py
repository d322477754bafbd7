"""`stf import --format msg3d`: MS-G3D's processed NTU / Kinetics files -> the interim parquet.

The MS-G3D files are written here from the real fixture `.skeleton` files the way MS-G3D's
`data_gen` does it (energy rule, repeat padding to 300 frames, centring on joint 1 of person 0,
the two rotations), so an import can be compared with `stf preprocess` of the same raw files.
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest

from stf.config import PreprocessConfig
from stf.data.formats import msg3d as m3
from stf.data.formats import ntu as ntu_format
from stf.data.importer import ImportDataError, import_dataset
from stf.data.normalize import msg3d_rotate, valid_from_coords
from stf.data.preprocess import preprocess, read_interim, read_interim_meta
from stf.data.safe_pickle import UnsafePickleError

T0 = 300  # MS-G3D's max_frame


def msg3d_pre_normalize(xyz: np.ndarray, frames: int = T0) -> np.ndarray:
    """(F, 2, 25, 3) selected bodies -> (3, frames, 25, 2) as MS-G3D stores them: each person's
    frames repeated to `frames`, centred on joint 1 of person 0 per frame (absent joints stay 0),
    rotated (spine -> +z, shoulders -> +x)."""
    f, m = xyz.shape[:2]
    out = np.zeros((frames, m, 25, 3), np.float32)
    for p in range(m):
        person = xyz[:, p]
        present = np.flatnonzero(np.abs(person).sum(axis=(1, 2)) > 0)
        if present.size == 0:
            continue
        seq = person[present]  # non-empty frames moved to the front
        out[:, p] = seq[np.arange(frames) % len(seq)]
    valid = valid_from_coords(out)
    center = out[:, 0, 1].copy()  # (frames, 3)
    out = (out - center[:, None, None, :]) * valid[..., None]
    out = msg3d_rotate(out, valid | (np.arange(25) == 1)[None, None, :] & valid.any(-1, keepdims=True))
    return out.transpose(3, 0, 2, 1).astype(np.float32)  # (T, M, V, 3) -> (3, T, V, M)


def ntu_fixture_arrays(fixtures_dir: Path) -> tuple[np.ndarray, list[str], list[int], dict[str, int]]:
    data, names, labels, lengths = [], [], [], {}
    for path in sorted((fixtures_dir / "ntu").glob("*.skeleton")):
        sk = ntu_format.read_skeleton(path, max_bodies=4)
        xyz = ntu_format.select_bodies(sk.xyz, keep=2, max_read=4)
        data.append(msg3d_pre_normalize(xyz))
        names.append(path.name)
        labels.append(sk.action - 1)
        lengths[sk.name] = xyz.shape[0]
    return np.stack(data), names, labels, lengths


@pytest.fixture(scope="module")
def msg3d_dir(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> tuple[Path, dict[str, int]]:
    folder = tmp_path_factory.mktemp("msg3d")
    data, names, labels, lengths = ntu_fixture_arrays(fixtures_dir)
    m3.write_msg3d(folder, "train", data[:4], names[:4], labels[:4])
    m3.write_msg3d(folder, "val", data[4:], [f"/abs/path/{n}" for n in names[4:]], labels[4:])
    return folder, lengths


CFG = PreprocessConfig(msg3d_rotation=True)


def test_repeat_period_finds_the_tiled_length() -> None:
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(37, 5, 3))
    assert m3.repeat_period(seq[np.arange(300) % 37]) == 37
    assert m3.repeat_period(seq) == 37  # not tiled: its own length
    assert m3.repeat_period(seq[np.arange(300) % 300 % 37][:40]) == 37
    assert m3.repeat_period(np.zeros((1, 5, 3))) == 1


def test_read_msg3d_memory_maps_and_strips_paths(msg3d_dir: tuple[Path, dict]) -> None:
    folder, _ = msg3d_dir
    parts = m3.read_msg3d(folder)
    assert [p.part for p in parts] == ["train", "val"]
    assert all(isinstance(p.data, np.memmap) for p in parts)
    assert parts[0].data.shape[1:] == (3, T0, 25, 2)
    assert m3.sample_stem(parts[1].names[0]) == Path(parts[1].names[0]).stem


def test_import_matches_preprocess_of_the_raw_files(
    msg3d_dir: tuple[Path, dict], fixtures_dir: Path, tmp_path: Path
) -> None:
    folder, lengths = msg3d_dir
    out = tmp_path / "ntu60.parquet"
    summary = import_dataset("msg3d", folder, "ntu60", out, CFG, frames=64)
    assert (summary["read"], summary["written"], summary["rejected"]) == (6, 6, 0)
    raw = preprocess("ntu60", fixtures_dir / "ntu", tmp_path / "raw.parquet", CFG, 64, None, False, workers=1)
    assert raw["written"] == 6
    a, b = read_interim(out), read_interim(tmp_path / "raw.parquet")
    assert a.info == b.info and a.info["channels"] == ["x", "y", "z", "visibility"]
    assert a.meta.drop(columns="n_frames").equals(b.meta.drop(columns="n_frames"))
    # the repeat padding is cut: n_frames is each sample's real length
    assert dict(zip(a.meta.sample_id, a.meta.n_frames, strict=True)) == lengths
    assert (a.meta.n_frames == b.meta.n_frames).all()
    # visibility: the same 0/1 map as raw preprocessing (person 0's zeroed centre joint included)
    np.testing.assert_array_equal(a.data[:, 3], b.data[:, 3])
    np.testing.assert_allclose(a.data[:, :3], b.data[:, :3], atol=1e-5)


def test_visibility_channel_of_files_without_one(msg3d_dir: tuple[Path, dict], tmp_path: Path) -> None:
    """MS-G3D files have C = 3; the 4th channel is 1 where a joint is present, also at person 0's
    centre joint (exactly 0 after MS-G3D's centring), 0 for an absent person and after the end."""
    folder, lengths = msg3d_dir
    d = read_interim(_import(folder, tmp_path, frames=300))
    one_person = d.meta.index[d.meta.n_persons == 1][0]
    vis = d.data[one_person, 3]  # (T, V, M)
    assert (vis[..., 0] == 1).all() and (vis[..., 1] == 0).all()
    assert (d.data[one_person, :3, :, :, 1] == 0).all()
    assert (d.data[one_person, :3, :, 1, 0] == 0).all()  # the centre joint itself sits at the origin
    off = read_interim(_import(folder, tmp_path, frames=300, cfg=PreprocessConfig(visibility_channel=False)))
    assert off.info["shape"][0] == 3 and off.info["channels"] == ["x", "y", "z"]
    zero_pad = read_interim(_import(folder, tmp_path, frames=300, cfg=PreprocessConfig(pad="zero")))
    i = zero_pad.meta.index[zero_pad.meta.sample_id == "S017C003P020R002A054"][0]
    n = lengths["S017C003P020R002A054"]
    assert (zero_pad.data[i, 3, :n, :, 0] == 1).all() and (zero_pad.data[i, :, n:] == 0).all()


def _import(folder: Path, tmp_path: Path, frames: int, cfg: PreprocessConfig = CFG, **kw) -> Path:
    out = tmp_path / f"import-{frames}-{cfg.visibility_channel}-{cfg.pad}.parquet"
    import_dataset("msg3d", folder, kw.pop("dataset", "ntu60"), out, cfg, frames=frames, **kw)
    return out


def test_bad_samples_are_listed_and_nothing_is_lost(
    msg3d_dir: tuple[Path, dict], fixtures_dir: Path, tmp_path: Path
) -> None:
    data, names, labels, _ = ntu_fixture_arrays(fixtures_dir)
    extra = np.zeros((6, *data.shape[1:]), np.float32)
    extra[0] = data[0]
    extra[0, 0, 5, 3, 0] = np.nan  # non-finite
    extra[2] = data[1]  # all-zero sample: index 1 stays 0; index 2 gets a bad name
    extra[3] = data[2]  # label disagrees with the name
    extra[4] = data[3]  # an NTU-120 sample in an NTU-60 import
    extra[5] = data[4]  # duplicate of a train sample
    bad_names = ["S002C001P001R001A001.skeleton", "S002C001P001R001A002.skeleton", "not-an-ntu-name.skeleton",
                 "S002C001P003R001A005.skeleton", "S018C001P001R001A061.skeleton", names[4]]  # fmt: skip
    bad_labels = [0, 1, 0, 7, 60, labels[4]]
    folder = tmp_path / "bad"
    m3.write_msg3d(folder, "train", data, names, labels)
    m3.write_msg3d(folder, "val", extra, bad_names, bad_labels)
    missing = tmp_path / "missing.txt"
    missing.write_text("S001C001P001R001A001\n")
    out = tmp_path / "ntu60.parquet"
    s = import_dataset("msg3d", folder, "ntu60", out, CFG, frames=32, missing_list=missing)
    assert s["read"] == 12 and s["written"] + s["rejected"] + s["excluded"] == 12
    assert (s["written"], s["excluded"]) == (5, 2)
    with open(out.with_name("ntu60.rejected.csv")) as fh:
        reasons = {row["file"]: row["reason"] for row in csv.DictReader(fh)}
    assert len(reasons) == 7
    text = " | ".join(f"{k} -> {v}" for k, v in sorted(reasons.items()))
    needles = ("non-finite", "all-zero", "bad sample name", "disagrees with the name's action A005",
               "excluded: not an NTU-60 sample", "duplicate sample id", "excluded: missing-skeleton list")  # fmt: skip
    for needle in needles:
        assert needle in text, text
    assert "val_data_joint.npy[0]:S002C001P001R001A001.skeleton" in reasons
    meta, _ = read_interim_meta(out)
    assert "S001C001P001R001A001" not in set(meta.sample_id)


def test_whole_folder_problems_name_the_file(msg3d_dir: tuple[Path, dict], tmp_path: Path) -> None:
    folder, _ = msg3d_dir
    with pytest.raises(ImportDataError, match="needs C = 3, V = 18"):
        _import(folder, tmp_path, frames=16, dataset="kinetics")
    with pytest.raises(ImportDataError, match="--splits-out needs --format pyskl"):
        _import(folder, tmp_path, frames=16, splits_out=tmp_path / "s")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    np.save(lonely / "train_data_joint.npy", np.zeros((2, 3, 10, 25, 2), np.float32))
    with pytest.raises(m3.Msg3dFormatError, match=r"train_label.pkl: missing"):
        m3.read_msg3d(lonely)
    with open(lonely / "train_label.pkl", "wb") as fh:
        pickle.dump((["S001C001P001R001A001.skeleton"], [0]), fh)
    with pytest.raises(m3.Msg3dFormatError, match="2 samples but train_label.pkl lists 1"):
        m3.read_msg3d(lonely)
    (tmp_path / "empty").mkdir()
    with pytest.raises(m3.Msg3dFormatError, match="no MS-G3D data"):
        m3.read_msg3d(tmp_path / "empty")


def test_label_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "hostile"
    folder.mkdir()
    np.save(folder / "train_data_joint.npy", np.zeros((1, 3, 10, 25, 2), np.float32))
    with open(folder / "train_label.pkl", "wb") as fh:
        pickle.dump((["S001C001P001R001A001.skeleton"], [Hostile()]), fh)
    with pytest.raises(UnsafePickleError, match=r"train_label.pkl: refusing to load posix.system"):
        m3.read_msg3d(folder)
    assert not marker.exists()


def test_kinetics_msg3d_files(fixtures_dir: Path, tmp_path: Path) -> None:
    """MS-G3D's Kinetics arrays (x, y, score, zero-padded) import like the raw clips."""
    from stf.data.formats import kinetics as kfmt
    from stf.data.preprocess import kinetics_channels

    clips = sorted((fixtures_dir / "kinetics").glob("*.json"))[:3]
    data = np.zeros((len(clips), 3, T0, 18, 2), np.float32)
    for i, path in enumerate(clips):
        clip = kfmt.read_clip(path)
        pose, score = kfmt.select_persons(clip.pose, clip.score, keep=2, max_read=5)
        xy, _ = kinetics_channels(pose, score)
        f = min(len(xy), T0)
        data[i, :2, :f] = xy[:f].transpose(3, 0, 2, 1)
        data[i, 2, :f] = score[:f].transpose(0, 2, 1)
    m3.write_msg3d(tmp_path / "k", "val", data, [p.name for p in clips], [kfmt.read_clip(p).label_index for p in clips])
    out = tmp_path / "kinetics.parquet"
    s = import_dataset("msg3d", tmp_path / "k", "kinetics", out, PreprocessConfig(), frames=32)
    assert s["written"] == 3
    d = read_interim(out)
    assert d.info["channels"] == ["x", "y", "confidence"] and d.data.shape[1:] == (3, 32, 18, 2)
    assert set(d.meta.part) == {"val"} and set(d.meta.sample_id) == {p.stem for p in clips}
