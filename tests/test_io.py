"""stf.io: atomic writes create files as a plain open() would, and stale temporaries can be swept."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import KILLED_WRITER
from stf.io import atomic_path, remove_stale_temps, write_bytes_atomic, write_json_atomic


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077, 0o027])
def test_atomic_writes_respect_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        write_bytes_atomic(tmp_path / "a.bin", b"x")
        write_json_atomic(tmp_path / "sub" / "m.json", {"a": 1})
        with atomic_path(tmp_path / "c.csv", suffix=".csv") as tmp, open(tmp, "w") as fh:
            fh.write("a\n1\n")
        with open(tmp_path / "plain.txt", "w") as fh:  # what a normal write gives
            fh.write("x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert mode(tmp_path / "plain.txt") == expected
    for name in ("a.bin", "sub/m.json", "c.csv"):
        assert mode(tmp_path / name) == expected, (name, oct(mode(tmp_path / name)), oct(expected))
    assert sorted(p.name for p in tmp_path.rglob("*.tmp")) == []


def test_sigkill_leftovers_are_swept_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    write_bytes_atomic(target, b"epoch 1")
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    stale = list(tmp_path.glob(".last.pt.*.tmp"))
    assert len(stale) == 1 and stale[0].read_bytes() == b"half a checkpoint"
    assert target.read_bytes() == b"epoch 1"  # the kill left the previous file intact
    others = [tmp_path / ".model.pt.1234.tmp", tmp_path / "last.pt.tmp", tmp_path / "notes.txt"]
    for p in others:
        p.write_text("keep")
    assert remove_stale_temps(target) == stale
    assert not stale[0].exists() and target.read_bytes() == b"epoch 1"
    assert all(p.read_text() == "keep" for p in others)
    assert remove_stale_temps(tmp_path / "missing" / "last.pt") == []
