"""`fetch`: verify and unpack small archives built from the real fixtures (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from stf.config import Archive
from stf.data.fetch import MANIFEST, ArchiveError, MissingDataError, fetch
from stf.data.formats.ntu import read_skeleton

NTU_NAMES = ["S001C001P001R001A001.skeleton", "S017C003P020R002A054.skeleton"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def ntu_zip(fixtures_dir: Path, tmp_path: Path) -> Path:
    members = {f"nturgb+d_skeletons/{n}": (fixtures_dir / "ntu" / n).read_bytes() for n in NTU_NAMES}
    return make_zip(tmp_path / "nturgbd_skeletons_s001_to_s017.zip", members)


@pytest.fixture()
def kinetics_tar(fixtures_dir: Path, tmp_path: Path) -> Path:
    kin = fixtures_dir / "kinetics"
    labels = (kin / "labels_renumbered" / "kinetics_train_label.json").read_bytes()
    members = {
        "kinetics-skeleton/kinetics_train/sAP-xS5P0Bw.json": (kin / "sAP-xS5P0Bw.json").read_bytes(),
        "kinetics-skeleton/kinetics_val/__NrybzYzUg.json": (kin / "__NrybzYzUg.json").read_bytes(),
        "kinetics-skeleton/kinetics_train_label.json": labels,
        "kinetics-skeleton/kinetics_val_label.json": labels,
    }
    return make_tar(tmp_path / "kinetics-skeleton.tar.gz", members)


def test_zip_is_verified_unpacked_and_described(ntu_zip: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    before = (ntu_zip.read_bytes(), ntu_zip.stat().st_mtime_ns)
    out = tmp_path / "raw" / "ntu60"
    summary = fetch("ntu60", [Archive(path=str(ntu_zip), sha256=sha256(ntu_zip), size=ntu_zip.stat().st_size)], out)
    assert summary["unpacked"] is True
    assert summary["counts"] == {"files": 2, "skeleton": 2, "json": 0}
    assert summary["archives"][0]["sha256"] == sha256(ntu_zip)
    # the single top-level folder is dropped; files are byte copies that parse
    for name in NTU_NAMES:
        assert (out / name).read_bytes() == (fixtures_dir / "ntu" / name).read_bytes()
    assert read_skeleton(out / NTU_NAMES[1]).xyz.shape == (42, 2, 25, 3)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["files"] == sorted(NTU_NAMES)
    assert manifest["archives"][0]["sha256"] == sha256(ntu_zip)
    assert (ntu_zip.read_bytes(), ntu_zip.stat().st_mtime_ns) == before  # the source is only read


def test_second_fetch_with_same_archives_does_nothing(ntu_zip: Path, tmp_path: Path) -> None:
    out = tmp_path / "ntu60"
    fetch("ntu60", [Archive(path=str(ntu_zip))], out)
    stamp = (out / NTU_NAMES[0]).stat().st_mtime_ns
    again = fetch("ntu60", [Archive(path=str(ntu_zip))], out)
    assert again["unpacked"] is False and again["counts"]["skeleton"] == 2
    assert (out / NTU_NAMES[0]).stat().st_mtime_ns == stamp
    # a deleted file or a different archive triggers a fresh unpack
    (out / NTU_NAMES[0]).unlink()
    assert fetch("ntu60", [Archive(path=str(ntu_zip))], out)["unpacked"] is True
    assert (out / NTU_NAMES[0]).is_file()


def test_checksum_and_size_mismatch_name_the_file_and_both_values(ntu_zip: Path, tmp_path: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(ArchiveError) as err:
        fetch("ntu60", [Archive(path=str(ntu_zip), sha256=wrong)], tmp_path / "out")
    message = str(err.value)
    assert str(ntu_zip) in message and wrong in message and sha256(ntu_zip) in message
    size = ntu_zip.stat().st_size
    with pytest.raises(ArchiveError, match=rf"size is {size} bytes but params data.ntu60 expects {size + 1}"):
        fetch("ntu60", [Archive(path=str(ntu_zip), size=size + 1)], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_data_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as err:
        fetch("ntu120", [], tmp_path / "out")
    message = str(err.value)
    assert "data.ntu120" in message and "https://rose1.ntu.edu.sg/dataset/actionRecognition/" in message
    assert "nturgbd_skeletons_s001_to_s017.zip" in message and "nturgbd_skeletons_s018_to_s032.zip" in message
    with pytest.raises(MissingDataError, match=r"kinetics-skeleton.zip.*kinetics_train_label.json.*data.kinetics"):
        fetch("kinetics", [Archive(path=str(tmp_path / "kinetics-skeleton.zip"))], tmp_path / "out")
    with pytest.raises(MissingDataError, match=r"nope.zip: configured in params data.ntu60 but not found"):
        fetch("ntu60", [Archive(path=str(tmp_path / "nope.zip"))], tmp_path / "out")


def test_kinetics_tar_layout(kinetics_tar: Path, tmp_path: Path) -> None:
    out = tmp_path / "kinetics"
    summary = fetch("kinetics", [Archive(path=str(kinetics_tar))], out)
    assert summary["counts"] == {"files": 4, "skeleton": 0, "json": 4}
    assert (out / "kinetics_train" / "sAP-xS5P0Bw.json").is_file()
    assert (out / "kinetics_val_label.json").is_file()


def test_archive_without_the_dataset_files_is_rejected(fixtures_dir: Path, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "k.tar.gz", {"kinetics-skeleton/kinetics_train/a.json": b"{}"})
    with pytest.raises(ArchiveError, match=r"lacks kinetics_val, kinetics_train_label.json, kinetics_val_label.json"):
        fetch("kinetics", [Archive(path=str(tar))], tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    empty = make_zip(tmp_path / "e.zip", {"readme.txt": b"hi"})
    with pytest.raises(ArchiveError, match="no .skeleton files"):
        fetch("ntu60", [Archive(path=str(empty))], tmp_path / "out")


def test_unsafe_member_is_refused(tmp_path: Path) -> None:
    evil = make_zip(tmp_path / "evil.zip", {"../escaped.skeleton": b"0\n"})
    with pytest.raises(ArchiveError, match="outside the output folder"):
        fetch("ntu60", [Archive(path=str(evil))], tmp_path / "sub" / "out")
    assert not (tmp_path / "sub" / "escaped.skeleton").exists()


def test_two_archives_merge_and_overlaps_are_errors(fixtures_dir: Path, tmp_path: Path) -> None:
    ntu = fixtures_dir / "ntu"
    a = make_zip(tmp_path / "a.zip", {f"skel/{NTU_NAMES[0]}": (ntu / NTU_NAMES[0]).read_bytes()})
    b = make_zip(tmp_path / "b.zip", {f"skel/{NTU_NAMES[1]}": (ntu / NTU_NAMES[1]).read_bytes()})
    summary = fetch("ntu120", [Archive(path=str(a)), Archive(path=str(b))], tmp_path / "ntu120")
    assert summary["counts"]["skeleton"] == 2
    with pytest.raises(ArchiveError, match="overlap"):
        fetch("ntu120", [Archive(path=str(a)), Archive(path=str(a))], tmp_path / "again")


def test_folder_source_and_file_url(ntu_zip: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    folder = fetch("ntu60", [Archive(path=str(fixtures_dir / "ntu"))], tmp_path / "from_folder")
    assert folder["counts"]["skeleton"] == 6 and folder["archives"][0]["kind"] == "folder"
    out = tmp_path / "from_url"
    summary = fetch("ntu60", [Archive(path=ntu_zip.as_uri(), sha256=sha256(ntu_zip))], out)
    assert summary["counts"]["skeleton"] == 2
    cached = tmp_path / "from_url.downloads" / ntu_zip.name
    assert cached.read_bytes() == ntu_zip.read_bytes()
    with pytest.raises(MissingDataError, match="download failed"):
        fetch("ntu60", [Archive(path=(tmp_path / "gone.zip").as_uri())], tmp_path / "x")


def test_foreign_output_folder_is_left_alone(ntu_zip: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ArchiveError, match="not written by `stf fetch`"):
        fetch("ntu60", [Archive(path=str(ntu_zip))], out)
    assert (out / "notes.txt").read_text() == "keep me"
