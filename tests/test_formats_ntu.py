"""NTU `.skeleton` reader/writer on the real files in ../shared/fixtures/ntu, corrupted copies,
sample ids, body selection and the missing-sample lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stf.data.formats.ntu import (
    NtuSkeleton,
    SkeletonFormatError,
    parse_sample_id,
    read_missing_list,
    read_skeleton,
    select_bodies,
    write_skeleton,
)

# SOURCES.md: frames, bodies per frame, line endings
REAL = {
    "S001C001P001R001A001": (103, 1, "LF"),
    "S001C001P001R001A008": (71, 1, "CRLF"),
    "S001C001P001R001A011": (82, 1, "CRLF"),
    "S001C003P008R002A058": (70, 2, "CRLF"),
    "S003C001P015R001A034": (71, 1, "CRLF"),
    "S017C003P020R002A054": (42, 2, "LF"),
}
TWO_BODY = "S001C003P008R002A058"


def plain_reader(path: Path) -> tuple[list[list[list[list[float]]]], list[list[int]]]:
    """Test oracle: the file read token by token with str.split and float."""
    tokens = path.read_text().split()
    pos = 0

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    frames, ids = [], []
    for _ in range(int(take())):
        bodies, frame_ids = [], []
        for _ in range(int(take())):
            info = [take() for _ in range(10)]
            frame_ids.append(int(info[0]))
            joints = [[float(v) for v in [take() for _ in range(12)][:3]] for _ in range(int(take()))]
            bodies.append(joints)
        frames.append(bodies)
        ids.append(frame_ids)
    assert pos == len(tokens)
    return frames, ids


def fixture(fixtures_dir: Path, name: str) -> Path:
    return fixtures_dir / "ntu" / f"{name}.skeleton"


# --------------------------------------------------------------------------- real files


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_file_counts_and_values(fixtures_dir: Path, name: str) -> None:
    frames, bodies, endings = REAL[name]
    path = fixture(fixtures_dir, name)
    assert (b"\r\n" in path.read_bytes()) == (endings == "CRLF")
    skel = read_skeleton(path)
    assert isinstance(skel, NtuSkeleton)
    assert skel.xyz.shape == (frames, bodies, 25, 3) and skel.xyz.dtype == np.float32
    assert skel.body_counts.tolist() == [bodies] * frames
    assert len({i for ids in skel.body_ids for i in ids}) == bodies  # one bodyID per person throughout
    oracle, ids = plain_reader(path)
    np.testing.assert_array_equal(skel.xyz, np.asarray(oracle, dtype=np.float32))
    assert skel.body_ids == ids
    sid = parse_sample_id(name)
    assert (skel.setup, skel.camera, skel.performer, skel.replication, skel.action) == tuple(sid)
    assert skel.name == name


def test_spot_values_against_raw_text(fixtures_dir: Path) -> None:
    skel = read_skeleton(fixture(fixtures_dir, "S001C001P001R001A001"))
    lines = fixture(fixtures_dir, "S001C001P001R001A001").read_text().splitlines()
    # line 5 is the first joint of frame 1: "0.2181153 0.1725972 3.785547 ..."
    assert lines[2].split()[0] == "72057594037931101"
    assert skel.body_ids[0] == [72057594037931101]
    assert skel.xyz[0, 0, 0].tolist() == np.float32([0.2181153, 0.1725972, 3.785547]).tolist()
    assert skel.xyz[0, 0, 0].tolist() == np.float32([float(v) for v in lines[4].split()[:3]]).tolist()
    last_joint = [float(v) for v in lines[-1].split()[:3]]
    assert skel.xyz[-1, 0, 24].tolist() == np.float32(last_joint).tolist()


def test_two_body_file_keeps_file_order_and_max_bodies(fixtures_dir: Path) -> None:
    path = fixture(fixtures_dir, TWO_BODY)
    full = read_skeleton(path)
    first = read_skeleton(path, max_bodies=1)
    assert first.xyz.shape == (70, 1, 25, 3)
    np.testing.assert_array_equal(first.xyz[:, 0], full.xyz[:, 0])
    assert first.body_counts.tolist() == full.body_counts.tolist() == [2] * 70
    assert full.body_ids[0] == [72057594037944738, 72057594037944734]
    assert not np.array_equal(full.xyz[:, 0], full.xyz[:, 1])


def test_exponent_values_are_read(fixtures_dir: Path) -> None:
    path = fixture(fixtures_dir, "S017C003P020R002A054")
    assert b"E-05" in path.read_bytes()
    oracle, _ = plain_reader(path)
    np.testing.assert_array_equal(read_skeleton(path).xyz, np.asarray(oracle, dtype=np.float32))


def test_line_endings_and_irregular_whitespace_give_the_same_arrays(fixtures_dir: Path, tmp_path: Path) -> None:
    src = fixture(fixtures_dir, TWO_BODY)
    expected = read_skeleton(src)
    raw = src.read_bytes()
    variants = {
        "lf": raw.replace(b"\r\n", b"\n"),
        "tabs_and_spaces": raw.replace(b" ", b" \t ").replace(b"\r\n", b"  \r\n"),
        "blank_lines": raw.replace(b"\r\n25\r\n", b"\r\n\r\n25\r\n\n"),
        "no_final_newline": raw.rstrip(),
    }
    for label, data in variants.items():
        path = tmp_path / label / f"{TWO_BODY}.skeleton"
        path.parent.mkdir()
        path.write_bytes(data)
        got = read_skeleton(path)
        np.testing.assert_array_equal(got.xyz, expected.xyz, err_msg=label)
        assert got.body_ids == expected.body_ids, label


def test_zero_body_frames_and_zero_frames(tmp_path: Path) -> None:
    xyz = np.random.default_rng(1).normal(size=(4, 2, 25, 3)).astype(np.float32)
    present = np.array([[True, True], [False, False], [True, False], [False, True]])
    path = tmp_path / "S001C001P001R001A001.skeleton"
    write_skeleton(path, xyz, [7, 9], present=present)
    skel = read_skeleton(path)
    assert skel.body_counts.tolist() == [2, 0, 1, 1]
    assert skel.body_ids == [[7, 9], [], [7], [9]]
    np.testing.assert_array_equal(skel.xyz[1], 0)
    np.testing.assert_array_equal(skel.xyz[3, 0], xyz[3, 1])  # packed to the front
    np.testing.assert_array_equal(skel.xyz[3, 1], 0)
    path.write_bytes(b"0\r\n")
    assert read_skeleton(path).xyz.shape == (0, 0, 25, 3)


# --------------------------------------------------------------------------- writer


def test_write_read_round_trip_is_exact_and_deterministic(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    xyz = (rng.normal(size=(30, 2, 25, 3)) * [0.5, 0.5, 1.0] + [0, 0, 3]).astype(np.float32)
    xyz[0, 0, 0, 0] = 7.2578e-05  # written with an exponent
    xyz[1, 1, 1] = 0.0  # a joint at the origin
    a, b = tmp_path / "a" / "S002C003P004R001A010.skeleton", tmp_path / "b" / "S002C003P004R001A010.skeleton"
    write_skeleton(a, xyz, [72057594037931101, 72057594037931102])
    write_skeleton(b, xyz.copy(), [72057594037931101, 72057594037931102])
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes().count(b"\r\n") == a.read_bytes().count(b"\n")
    skel = read_skeleton(a)
    np.testing.assert_array_equal(skel.xyz, xyz)  # 9 significant digits: float32 comes back bit for bit
    assert skel.body_ids == [[72057594037931101, 72057594037931102]] * 30
    assert (skel.setup, skel.camera, skel.performer, skel.replication, skel.action) == (2, 3, 4, 1, 10)
    # the real layout: 10-value info line, joint count 25, 12 values per joint
    lines = a.read_bytes().split(b"\r\n")
    assert len(lines[2].split()) == 10 and lines[3] == b"25" and all(len(ln.split()) == 12 for ln in lines[4:29])
    write_skeleton(b, xyz, [1, 2], crlf=False)
    assert b"\r" not in b.read_bytes()
    np.testing.assert_array_equal(read_skeleton(b).xyz, xyz)


def test_rewriting_a_real_file_keeps_its_skeleton(fixtures_dir: Path, tmp_path: Path) -> None:
    real = read_skeleton(fixture(fixtures_dir, TWO_BODY))
    out = tmp_path / f"{TWO_BODY}.skeleton"
    write_skeleton(out, real.xyz, real.body_ids[0])
    again = read_skeleton(out)
    np.testing.assert_array_equal(again.xyz, real.xyz)
    assert again.body_ids == real.body_ids

    # the projected depth/colour pixels land near the Kinect's own (intrinsics differ a little per camera)
    def pixels(path: Path) -> np.ndarray:
        return np.array([ln.split()[3:7] for ln in path.read_text().splitlines() if len(ln.split()) == 12], float)

    raw, new = pixels(fixture(fixtures_dir, TWO_BODY)), pixels(out)
    depth_err, color_err = np.median(np.abs(new - raw), axis=0).reshape(2, 2).max(axis=1)
    assert depth_err < 10 and color_err < 40


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "x.skeleton"
    with pytest.raises(ValueError, match="shape"):
        write_skeleton(path, np.zeros((2, 1, 24, 3)), [1])
    with pytest.raises(ValueError, match="body_ids"):
        write_skeleton(path, np.zeros((2, 2, 25, 3)), [1])
    bad = np.zeros((2, 1, 25, 3))
    bad[1, 0, 3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_skeleton(path, bad, [1])
    assert not path.exists()


# --------------------------------------------------------------------------- corrupted files


def corrupt(fixtures_copy: Path, name: str, edit) -> Path:
    path = fixtures_copy / "ntu" / f"{name}.skeleton"
    path.write_bytes(edit(path.read_bytes()))
    return path


def lines_edit(fn):
    def edit(raw: bytes) -> bytes:
        lines = raw.split(b"\n")
        return b"\n".join(fn(lines))

    return edit


CORRUPTIONS = {
    "truncated": (lambda raw: raw[: len(raw) // 2], r"truncated"),
    "truncated_mid_line": (lambda raw: raw[: raw.index(b"\n", 5000) - 4], r"truncated|values on a joint line"),
    "wrong_joint_count": (lines_edit(lambda ls: ls[:3] + [b"24"] + ls[4:28] + ls[29:]), r"wrong joint count 24"),
    "missing_joint_line": (
        lines_edit(lambda ls: ls[:10] + ls[11:]),
        r"line 29: expected 12 values on a joint line, found 1",
    ),
    "short_joint_line": (
        lines_edit(lambda ls: ls[:10] + [b" ".join(ls[10].split()[:11])] + ls[11:]),
        r"line 11: expected 12 values",
    ),
    "non_numeric": (lambda raw: raw.replace(b"3.785547", b"3.78x547", 1), r"line 5: non-numeric value '3.78x547'"),
    "bad_number_in_xyz": (
        lambda raw: raw.replace(b"3.785547", b"3.78.547", 1),
        r"line 5: non-numeric value '3.78.547'",
    ),
    "nan": (lambda raw: raw.replace(b"0.1725972", b"nan", 1), r"line 5: non-finite value 'nan' \(NaN/inf\)"),
    "overflow": (lambda raw: raw.replace(b"0.1725972", b"1e999", 1), r"non-finite value '1e999'"),
    "empty": (lambda raw: b"", r"empty file"),
    "whitespace_only": (lambda raw: b" \n\r\n", r"empty file"),
    "huge_frame_count": (lambda raw: b"1000000000" + raw[raw.index(b"\n") :], r"line 1: header says 1000000000 frames"),
    "huge_body_count": (lines_edit(lambda ls: ls[:1] + [b"999999"] + ls[2:]), r"line 2: frame 1 has 999999 bodies"),
    "negative_count": (
        lines_edit(lambda ls: ls[:1] + [b"-1"] + ls[2:]),
        r"line 2: the body count of frame 1 must be a non-negative integer",
    ),
    "trailing_data": (lambda raw: raw + b"1 2 3\n", r"unexpected data after the last of 103 frames"),
    "info_line_short": (
        lines_edit(lambda ls: ls[:2] + [b" ".join(ls[2].split()[:9])] + ls[3:]),
        r"line 3: expected the 10-value info line",
    ),
    "binary_junk": (lambda raw: raw[:100] + b"\x00\xff" + raw[100:], r"non-numeric value"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupted_copies_are_rejected_with_the_reason(fixtures_copy: Path, case: str) -> None:
    edit, reason = CORRUPTIONS[case]
    path = corrupt(fixtures_copy, "S001C001P001R001A001", edit)
    with pytest.raises(SkeletonFormatError, match=reason) as err:
        read_skeleton(path)
    assert str(err.value).startswith(f"{path}: ")


def test_corruptions_in_a_crlf_file_name_the_same_line(fixtures_copy: Path) -> None:
    path = corrupt(fixtures_copy, "S001C001P001R001A008", lambda raw: raw.replace(b"\r\n25\r\n", b"\r\n26\r\n", 1))
    with pytest.raises(SkeletonFormatError, match=r"line 4: wrong joint count 26"):
        read_skeleton(path)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_skeleton(tmp_path / "nope.skeleton")


# --------------------------------------------------------------------------- sample ids


def test_parse_sample_id() -> None:
    assert parse_sample_id("S001C002P003R002A013") == (1, 2, 3, 2, 13)
    assert parse_sample_id("S032C003P106R002A120.skeleton").action == 120
    for bad in ["S001C002P003R002A13", "s001c002p003r002a013", "S001C002P003R002A013x", "S000C001P001R001A001", ""]:
        with pytest.raises(ValueError):
            parse_sample_id(bad)
    skel = NtuSkeleton("not_an_ntu_name", np.zeros((0, 0, 25, 3), np.float32), np.zeros(0, np.int64), [])
    with pytest.raises(ValueError, match="not an NTU sample name"):
        _ = skel.action


# --------------------------------------------------------------------------- body selection


def _moving_body(frames: int, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    base = rng.normal(size=(1, 25, 3)) * 0.1 + [0, 0, 3]
    return base + amplitude * rng.normal(size=(frames, 25, 3))


def test_select_bodies_keeps_the_two_most_active_in_energy_order() -> None:
    rng = np.random.default_rng(0)
    xyz = np.stack([_moving_body(20, a, rng) for a in (0.01, 0.5, 0.2)], axis=1)  # (20, 3, 25, 3)
    out = select_bodies(xyz)
    assert out.shape == (20, 2, 25, 3)
    np.testing.assert_array_equal(out[:, 0], xyz[:, 1])
    np.testing.assert_array_equal(out[:, 1], xyz[:, 2])


def test_select_bodies_reads_only_max_read_slots_and_pads() -> None:
    rng = np.random.default_rng(1)
    xyz = np.stack([_moving_body(10, a, rng) for a in (0.1, 0.2, 0.3, 0.4, 5.0)], axis=1)  # slot 4 most active
    out = select_bodies(xyz, keep=2, max_read=4)
    np.testing.assert_array_equal(out[:, 0], xyz[:, 3])
    np.testing.assert_array_equal(out[:, 1], xyz[:, 2])
    single = select_bodies(xyz[:, :1], keep=2)
    np.testing.assert_array_equal(single[:, 0], xyz[:, 0])
    np.testing.assert_array_equal(single[:, 1], 0)


def test_select_bodies_ignores_absent_frames_and_breaks_ties_in_file_order() -> None:
    rng = np.random.default_rng(2)
    still = np.broadcast_to(_moving_body(1, 0.0, rng), (12, 25, 3)).copy()
    blinking = still.copy()
    blinking[::2] = 0  # the same pose, absent every other frame: zero energy, not a big jump
    moving = _moving_body(12, 0.05, rng)
    out = select_bodies(np.stack([blinking, still, moving], axis=1), keep=2)
    np.testing.assert_array_equal(out[:, 0], moving)
    np.testing.assert_array_equal(out[:, 1], blinking)  # tie with `still` (both 0): file order wins


# --------------------------------------------------------------------------- missing-sample lists


def test_missing_lists_both_variants(fixtures_dir: Path) -> None:
    lists = fixtures_dir / "lists"
    ntu60 = read_missing_list(lists / "NTU_RGBD_samples_with_missing_skeletons.txt")
    ntu120 = read_missing_list(lists / "NTU_RGBD120_samples_with_missing_skeletons.txt")
    assert len(ntu60) == 302 and len(ntu120) == 535
    assert read_missing_list(lists / "msg3d" / "NTU_RGBD_samples_with_missing_skeletons.txt") == ntu60
    assert read_missing_list(lists / "msg3d" / "NTU_RGBD120_samples_with_missing_skeletons.txt") == ntu120
    assert ntu60 <= ntu120
    assert "S001C002P005R002A008" in ntu60
    assert all(parse_sample_id(n).setup <= 17 for n in ntu60)


def test_missing_list_rejects_junk_after_the_names(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("Some header text.\n\nS001C002P005R002A008\nS001C002P006R001A008.skeleton\n\n")
    assert read_missing_list(path) == {"S001C002P005R002A008", "S001C002P006R001A008"}
    path.write_text("S001C002P005R002A008\noops\n")
    with pytest.raises(SkeletonFormatError, match=r"line 2: not an NTU sample name"):
        read_missing_list(path)
