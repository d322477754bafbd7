"""Shared test helpers (imported by test modules; conftest.py holds only fixtures and hooks):
the repository root, the read-only real files in ../shared/fixtures, a tiny model spec, and a
copier of the workflow into a temporary folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from stf.models.msg3d import ModelSpec

REPO = Path(__file__).resolve().parents[1]
# a 5-joint chain MS-G3D small enough for CPU unit tests of training and evaluation
TINY_SPEC = ModelSpec(
    num_class=3, num_point=5, num_person=2, in_channels=2, edges=((1, 0), (2, 1), (3, 2), (4, 3)),
    widths=(4, 4, 4), gcn_scales=2, g3d_scales=2, window_sizes=(3,), window_dilations=(1,),
)  # fmt: skip
# what a copy of the pipeline needs, besides src/stf (tests run Snakemake and DVC in tmp copies)
WORKFLOW_FILES = ["Snakefile", "workflow", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config",
                  ".dvc/.gitignore"]  # fmt: skip
SHARED = Path(os.environ.get("STF_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"


class ArrayPart(Dataset):
    """In-memory stand-in for `stf.data.dataset.SkeletonPart` (the protocol the training loop and
    `predict_logits` read): x (N, C, T, V, M), labels y (N,); an item is the batch at a list of positions."""

    def __init__(self, x: np.ndarray, y: np.ndarray, dtype: type = np.float32) -> None:
        self.x, self.y = np.asarray(x, dtype), np.asarray(y, np.int64)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, positions):
        pos = np.asarray(positions, dtype=np.int64)
        return torch.from_numpy(self.x[pos]), torch.from_numpy(self.y[pos]), torch.from_numpy(pos)


def write_interim(path: Path, info: dict, rows: list[dict], x: np.ndarray, dtype: str = "float32") -> Path:
    """An interim parquet of samples given at full length: x (N, C, T, V, M), rows with n_frames = T.

    `info` is the b"stf" metadata without pad/storage (repeat padding and `dtype` storage are added).
    """
    from stf.data.preprocess import STORAGE_AXES, InterimWriter

    info = {"pad": "repeat", "storage": {"dtype": dtype, "axes": STORAGE_AXES}, **info}
    with InterimWriter(path, info) as w:
        w.write(rows, [np.asarray(s).transpose(1, 0, 2, 3) for s in x])  # (T, C, V, M) per sample
    return path


def copy_workflow(dst: Path, git: bool = True) -> Path:
    """The workflow files, params.yaml and src/stf/**/*.py under `dst` (in a fresh git repo
    when `git`); returns `dst`."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name)
        else:
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    for py in (REPO / "src" / "stf").rglob("*.py"):
        target = dst / py.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(py, target)
    if git:
        subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    return dst


def save_model_dir(
    out: Path, spec: ModelSpec, setting: str, stream: str = "joint", seed: int = 0, variant: str = "msg3d"
) -> Path:
    """A model directory as `stf train` writes it (model.pt with spec, weights and meta), with the
    weights of a freshly initialised `MSG3D(spec)` (torch seed `seed`)."""
    import torch

    from stf.models.msg3d import MSG3D
    from stf.training.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model = MSG3D(spec)
    for m in model.modules():  # non-trivial BatchNorm statistics, so that eval mode is really tested
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    payload = {
        "spec": spec.to_dict(),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "meta": {"setting": setting, "stream": stream, "variant": variant, "fraction": 100, "epochs": 0, "seed": seed},
    }
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "model.pt", payload)
    return out


def ntu_spec(num_class: int = 60, in_channels: int = 4, stf: bool = False) -> ModelSpec:
    """The shared tiny sizes on the real NTU-25 skeleton (for tests that feed real fixture files)."""
    from stf.data.skeletons import NTU25
    from stf.models.stf import STFSpec

    return ModelSpec(
        num_class=num_class, num_point=25, num_person=2, in_channels=in_channels, edges=NTU25.edges,
        widths=TINY_SPEC.widths, gcn_scales=2, g3d_scales=2, window_sizes=(3,), window_dilations=(1,),
        stf=STFSpec(graph_scales=2, beta_hidden=4, alpha_hidden=4, time_bins=4) if stf else None,
    )  # fmt: skip


# `python -c KILLED_WRITER <target>`: killed by SIGKILL inside stf.io.atomic_path(target), so no
# `except` runs and the temporary file stays, as after a kill during a checkpoint write
KILLED_WRITER = """
import os, signal, sys
from stf.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a checkpoint")
    os.kill(os.getpid(), signal.SIGKILL)
"""

BIN = Path(sys.executable).parent  # the venv's snakemake, dvc and stf


def tool_env() -> dict[str, str]:
    """The environment the workflow tools run in: the venv's bin first on PATH (the rules call `stf`)."""
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def sh(root: Path, *cmd: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run the venv's `cmd[0]` (snakemake, dvc) in `root`; a failure fails the test with its
    stderr, the tails of the failed jobs' logs (those Snakemake names; else the three newest) and
    its stdout."""
    proc = subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=root, env=tool_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        named = [root / m for m in re.findall(r"log: (\S+) \(check log", proc.stderr)]
        newest = sorted((root / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)[-3:]
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in (named or newest) if p.is_file())
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}\n{logs}\n--- stdout\n{proc.stdout[-2000:]}")
    return proc
