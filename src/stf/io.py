"""Atomic file writes: a temp file in the target's folder, fsync, then `os.replace`.

A killed job never leaves a half-written output that Snakemake or DVC would take as done,
and a failed write leaves the previous file intact. Every writer in the package goes
through `atomic_path`.

The temporary file is created like `open(path, "w")` creates a file (mode 0o666 less the
process umask, and a folder's default ACL applies), not owner-only as `tempfile.mkstemp`
would make it: outputs in a directory shared by a group stay readable to it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def remove_stale_temps(target: Path | str) -> list[Path]:
    """Delete the temporary files that `atomic_path(target)` left behind when its process was
    killed (SIGKILL, power loss: no `except` ran); returns the removed paths.

    Only for a target that no other running process writes, e.g. a job's own resume state
    when the job starts.
    """
    target = Path(target)
    stale = sorted(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _create_temp(target: Path, suffix: str) -> Path:
    """A new empty file `.<name>.<random><suffix>.tmp` beside `target`.

    `os.open` with mode 0o666 lets the kernel apply the umask (and a default ACL), exactly as
    for a plain `open(..., "w")`; O_EXCL makes the name ours alone.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}{suffix}.tmp")
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{target.parent}: cannot create a temporary file for {target.name}")


@contextlib.contextmanager
def atomic_path(target: Path | str, suffix: str = "", durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it onto `target`.

    On any exception the temporary file is removed and `target` is left as it was.
    `durable=False` skips the fsync: the rename is still atomic for a killed process, but
    not across a power loss. Bulk writers of small reproducible files (the synthetic raw
    files, one per sample) use it; one fsync per file costs more than the write itself.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(target, suffix)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(target: Path | str, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: Path | str, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: Path | str, obj: object) -> None:
    write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=True) + "\n")
