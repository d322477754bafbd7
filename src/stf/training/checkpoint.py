"""Checkpoints: atomic saves of plain data, `weights_only` loads, and the resume helpers.

A checkpoint is a dict of plain data only: tensors, numbers, strings, booleans, `None`,
lists, tuples and dicts of those (what `torch.load(..., weights_only=True)` accepts), so
loading one never runs code. `save_checkpoint` writes through `stf.io.atomic_path`: a
kill or a full disk during the write leaves the previous file intact.

Resume state (`<workdir>/last.pt`, written after every epoch) holds the model, optimiser
and scheduler state, the number of finished epochs, the RNG states (as tensors), the
history rows and a fingerprint of the parameters and input files the run depends on (the
entry points delete it once the run's outputs are written: only an interrupted run resumes);
`fingerprint` and `file_digest` build that fingerprint, `rng_state` / `set_rng_state`
capture and restore the random generators.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stf.io import atomic_path

log = logging.getLogger(__name__)

_SCALARS = (bool, int, float, str, bytes, type(None))
_MAPPINGS = (dict, collections.OrderedDict, collections.Counter)
_DIGEST_FULL_LIMIT = 64 * 1024 * 1024  # files up to this size are hashed whole
_DIGEST_EDGE = 1024 * 1024  # larger files: size + first and last MiB


class CheckpointError(ValueError):
    """A checkpoint cannot be written or read as plain data; the message names the file."""


def _check_plain(obj: Any, where: str) -> None:
    """Raise `TypeError` naming the first value in `obj` that is not plain data."""
    if isinstance(obj, torch.Tensor):
        return
    if type(obj) in _SCALARS:
        return
    if type(obj) in _MAPPINGS:
        for key, value in obj.items():
            if type(key) not in (str, int):
                raise TypeError(f"{where}: key {key!r} of type {type(key).__name__} is not a str or int")
            _check_plain(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, not plain data")


def save_checkpoint(path: Path | str, state: Mapping[str, Any]) -> None:
    """Write `state` (a dict of plain data) to `path` atomically with `torch.save`.

    Raises `CheckpointError` (before touching the file) when `state` holds anything but
    tensors, numbers, strings, booleans, None, lists, tuples and dicts. On any failure
    during the write the previous file at `path` is left as it was.
    """
    path = Path(path)
    if type(state) not in _MAPPINGS:
        raise CheckpointError(f"{path}: checkpoint state must be a dict, got {type(state).__name__}")
    try:
        _check_plain(state, "state")
    except TypeError as err:
        raise CheckpointError(f"{path}: refusing to save non-plain data: {err}") from None
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; tensors are mapped to the CPU.

    Raises `FileNotFoundError` when `path` does not exist and `CheckpointError` when the
    file is not a plain-data torch checkpoint (truncated, foreign pickle, not a dict).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable plain-data checkpoint ({first})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: checkpoint must hold a dict, found {type(obj).__name__}")
    return obj


def default_workdir(out_dir: Path | str) -> Path:
    """`<out_dir>.work`: a sibling of `out_dir` (never inside it; pipelines delete outputs)."""
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + ".work")


def file_digest(path: Path | str) -> str:
    """SHA-256 of a file: whole content up to 64 MiB, else size + first and last MiB.

    Cheap enough to run on multi-GB training parquets at every start, and still changes
    when the file is regenerated with other content (its size or its footer changes).
    """
    path = Path(path)
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        if size <= _DIGEST_FULL_LIMIT:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        else:
            h.update(fh.read(_DIGEST_EDGE))
            fh.seek(size - _DIGEST_EDGE)
            h.update(fh.read(_DIGEST_EDGE))
    return h.hexdigest()


def fingerprint(obj: Any) -> str:
    """SHA-256 of `obj` as canonical JSON (sorted keys; non-JSON values via `str`)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def rng_state() -> dict[str, Any]:
    """The torch CPU and CUDA generator states as tensors (plain data)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what `rng_state` captured (CUDA states only when CUDA is in use)."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
