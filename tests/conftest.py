"""Shared test fixtures: the repository root, the read-only real files in ../shared/fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
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

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = np.asarray(x, np.float32), np.asarray(y, np.int64)

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


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """`../shared/fixtures` (real NTU and Kinetics files written by others; read-only)."""
    if not FIXTURES.is_dir():
        pytest.fail(f"real fixtures not found at {FIXTURES}; set STF_SHARED to the shared/ folder")
    return FIXTURES


@pytest.fixture()
def fixtures_copy(fixtures_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the fixtures, for tests that corrupt files."""
    dst = tmp_path / "fixtures"
    shutil.copytree(fixtures_dir, dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process: the tensors here are tiny, and thread start-up and
    contention on a 2-core machine cost far more than they save."""
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests are skipped without CUDA."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
