"""Atomic file writes: a temp file in the target's folder, fsync, then `os.replace`.

A killed job never leaves a half-written output that Snakemake or DVC would take as done,
and a failed write leaves the previous file intact. Every writer in the package goes
through `atomic_path`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
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
