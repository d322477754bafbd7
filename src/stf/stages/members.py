"""Which trained models a model directory stands for, loaded and checked to agree.

A model directory is either one trained model (`model.pt`: spec, weights, meta with setting and
stream) or an ensemble made by `stf evaluate` (scores of the softmax average of its members, no
`model.pt`). An ensemble directory lists its members in `ensemble.json` (paths relative to it);
one written before that file existed is resolved by the pipeline's layout: `<dir>-<variant>`
beside it for each variant of params `stf.ensemble` (`models/X/joint/stf` ->
`models/X/joint/stf-dcg`, `models/X/joint/stf-e`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from stf.stages.evaluate import load_model, write_ensemble_file
from stf.stages.scores import ENSEMBLE as ENSEMBLE_FILE
from stf.stages.scores import MODEL

__all__ = ["ENSEMBLE_FILE", "Member", "ModelDirError", "load_members", "member_dirs", "write_ensemble_file"]


class ModelDirError(ValueError):
    """A model directory is neither a model nor a resolvable ensemble, or its members disagree."""


@dataclass
class Member:
    """One loaded model: its directory, the network (eval mode), its spec dict and meta dict."""

    path: Path
    model: torch.nn.Module
    spec: dict
    meta: dict

    @property
    def stream(self) -> str:
        return str(self.meta.get("stream", "joint"))


def member_dirs(model_dir: Path | str, ensemble: Sequence[str]) -> list[Path]:
    """The model directories `model_dir` stands for (itself, when it holds `model.pt`)."""
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelDirError(f"{d}: model directory not found")
    if (d / MODEL).is_file():
        return [d]
    manifest = d / ENSEMBLE_FILE
    if manifest.is_file():
        try:
            members = [d / str(m) for m in json.loads(manifest.read_text())["members"]]
        except (ValueError, KeyError, TypeError) as err:
            raise ModelDirError(f"{manifest}: not a list of member directories ({err})") from None
        how = manifest.name
    else:
        members = [d.with_name(f"{d.name}-{v}") for v in ensemble]
        how = f"params stf.ensemble {list(ensemble)} beside it"
    if not members:
        raise ModelDirError(f"{d}: holds no model.pt and names no ensemble members")
    absent = [m for m in members if not (m / MODEL).is_file()]
    if absent:
        raise ModelDirError(
            f"{d}: not a model directory (no {MODEL}); as an ensemble ({how}) it needs "
            f"{', '.join(str(m / MODEL) for m in absent)}, which do not exist"
        )
    return [m.resolve() for m in members]


def load_members(model_dir: Path | str, ensemble: Sequence[str], device: str = "cpu") -> list[Member]:
    """Load every member of `model_dir`; they must share setting, stream and (C, V, M, classes)."""
    members = []
    for path in member_dirs(model_dir, ensemble):
        model, payload = load_model(path, device)
        members.append(Member(path, model, dict(payload["spec"]), dict(payload.get("meta") or {})))
    first = members[0]
    for m in members[1:]:
        for key in ("in_channels", "num_point", "num_person", "num_class"):
            if m.spec.get(key) != first.spec.get(key):
                raise ModelDirError(
                    f"{model_dir}: members disagree on {key}: {first.path} has {first.spec.get(key)}, "
                    f"{m.path} has {m.spec.get(key)}"
                )
        for key in ("setting", "stream"):
            if m.meta.get(key) != first.meta.get(key):
                raise ModelDirError(
                    f"{model_dir}: members disagree on {key}: {first.path} has {first.meta.get(key)!r}, "
                    f"{m.path} has {m.meta.get(key)!r}"
                )
    return members
