"""Fuzzing both raw-format parsers with mutated copies of real files.

Random truncations, byte changes, inserted / deleted / repeated lines and huge counts: every
input must either parse into consistent arrays or raise the format's typed error (no other
exception, no hang, no large allocation). For NTU the same mutated file with every space
doubled (which the vectorised reader leaves to the line-by-line one) must give the same
outcome, so both readers accept exactly the same files and return the same arrays.
"""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stf.data.formats.kinetics import ClipFormatError, read_clip
from stf.data.formats.ntu import SkeletonFormatError, read_skeleton

NTU_FILES = ["S017C003P020R002A054.skeleton", "S001C001P001R001A008.skeleton"]  # LF, CRLF
KINETICS_FILES = ["sAP-xS5P0Bw.json", "__NrybzYzUg.json"]
PEAK_LIMIT = 64 * 2**20  # bytes traced while parsing one mutated file

BYTE = st.one_of(st.sampled_from(list(b'0123456789.-+eE \n\r\tnaNIf{}[],:"x\x00\xff')), st.integers(0, 255))
LINE = st.one_of(
    st.lists(st.sampled_from(["0", "1", "25", "2", "-0.5", "3.785547", "1e999", "nan", "x", ""]), max_size=14).map(
        " ".join
    ),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)


NUMBER = st.sampled_from(["0", "7", "-0.5", "1.021", "-3", "12345", "1e-5", "1E+2", "1e999", "NaN", "-", "2.5.1"])
INTEGER = re.compile(rb"(?<![\d.])\d+(?![\d.])")
NUMERIC = re.compile(rb"-?[\d.]+(?:[eE][-+]?\d+)?")


@st.composite
def mutation(draw: st.DrawFn, size: int) -> tuple:
    kind = draw(st.sampled_from(["truncate", "byte", "insert", "delete", "repeat", "huge", "number", "number"]))
    where = draw(st.integers(0, max(size - 1, 0)))
    if kind == "byte":
        return (kind, where, draw(BYTE))
    if kind == "insert":
        return (kind, where, draw(LINE).encode("latin-1"))
    if kind == "huge":
        return (kind, where, str(10 ** draw(st.integers(5, 40))).encode())
    if kind == "number":
        return (kind, where, draw(NUMBER).encode())
    return (kind, where, None)


def apply(data: bytes, op: tuple, sep: bytes) -> bytes:
    """One mutation; `sep` is what counts as a line break (b"\\n" for NTU, b", " inside JSON)."""
    kind, where, arg = op
    where = min(where, len(data))
    if kind == "truncate":
        return data[:where]
    if kind == "byte":
        return data[:where] + bytes([arg]) + data[where + 1 :]
    start = data.rfind(sep, 0, where) + len(sep) if data.rfind(sep, 0, where) >= 0 else 0
    end = data.find(sep, where)
    end = len(data) if end < 0 else end + len(sep)
    if kind == "insert":
        return data[:start] + arg + sep + data[start:]
    if kind == "delete":
        return data[:start] + data[end:]
    if kind == "repeat":
        return data[:end] + data[start:end] + data[end:]
    # "huge": the next integer (a count, a frame_index) becomes huge; "number": the next number changes
    pattern = INTEGER if kind == "huge" else NUMERIC
    match = next((m for m in pattern.finditer(data, where)), None)
    return data if match is None else data[: match.start()] + arg + data[match.end() :]


def parse_traced(read, path: Path):
    """(result or the raised exception, peak bytes traced) for one call."""
    tracemalloc.start()
    try:
        try:
            outcome = read(path)
        except Exception as err:  # noqa: BLE001 - classified by the caller
            outcome = err
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def ntu_sources(fixtures_dir: Path) -> dict[str, bytes]:
    return {name: (fixtures_dir / "ntu" / name).read_bytes() for name in NTU_FILES}


@pytest.fixture(scope="module")
def kinetics_sources(fixtures_dir: Path) -> dict[str, bytes]:
    return {name: (fixtures_dir / "kinetics" / name).read_bytes() for name in KINETICS_FILES}


@settings(max_examples=120, deadline=None, derandomize=True)
@given(data=st.data())
def test_ntu_parser_survives_mutations(ntu_sources: dict[str, bytes], work: Path, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NTU_FILES))
    raw = ntu_sources[name]
    for op in data.draw(st.lists(mutation(len(raw)), min_size=1, max_size=3)):
        raw = apply(raw, op, b"\n")
    path = work / name
    path.write_bytes(raw)
    outcome, peak = parse_traced(read_skeleton, path)
    assert peak < PEAK_LIMIT
    if isinstance(outcome, Exception):
        assert isinstance(outcome, SkeletonFormatError), repr(outcome)
        assert str(outcome).startswith(f"{path}: ")
    else:
        frames = len(outcome.body_counts)
        assert outcome.xyz.shape == (frames, max(outcome.body_counts, default=0), 25, 3)
        assert np.isfinite(outcome.xyz).all()
        assert [len(ids) for ids in outcome.body_ids] == outcome.body_counts.tolist()
    # the same content with irregular whitespace takes the line-by-line reader: same outcome
    spaced = work / f"spaced_{name}"
    spaced.write_bytes(raw.replace(b" ", b"  "))
    other, _ = parse_traced(read_skeleton, spaced)
    if isinstance(outcome, Exception):
        assert isinstance(other, SkeletonFormatError), repr(other)
    else:
        assert not isinstance(other, Exception), repr(other)
        np.testing.assert_array_equal(other.xyz, outcome.xyz)
        assert other.body_ids == outcome.body_ids


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.data())
def test_kinetics_parser_survives_mutations(
    kinetics_sources: dict[str, bytes], work: Path, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(KINETICS_FILES))
    raw = kinetics_sources[name]
    for op in data.draw(st.lists(mutation(len(raw)), min_size=1, max_size=2)):
        raw = apply(raw, op, b", ")
    path = work / name
    path.write_bytes(raw)
    outcome, peak = parse_traced(read_clip, path)
    assert peak < PEAK_LIMIT
    if isinstance(outcome, Exception):
        assert isinstance(outcome, ClipFormatError), repr(outcome)
        assert str(outcome).startswith(f"{path}: ")
    else:
        assert outcome.pose.shape[2:] == (18, 2) and outcome.score.shape == outcome.pose.shape[:3]
        assert np.isfinite(outcome.pose).all() and np.isfinite(outcome.score).all()


@pytest.mark.parametrize("count", [10**6, 10**9, 10**12, 10**13])
def test_huge_header_counts_are_rejected_before_allocating(
    ntu_sources: dict[str, bytes], work: Path, count: int
) -> None:
    raw = ntu_sources[NTU_FILES[0]]
    path = work / "huge.skeleton"
    path.write_bytes(str(count).encode() + raw[raw.index(b"\n") :])
    outcome, peak = parse_traced(read_skeleton, path)
    assert isinstance(outcome, SkeletonFormatError)
    assert peak < PEAK_LIMIT
