"""Shared test fixtures: the repository root, the read-only real files in ../shared/fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
# `python -c KILLED_WRITER <target>`: killed by SIGKILL inside stf.io.atomic_path(target), so no
# `except` runs and the temporary file stays, as after a kill during a checkpoint write
KILLED_WRITER = """
import os, signal, sys
from stf.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a checkpoint")
    os.kill(os.getpid(), signal.SIGKILL)
"""
SHARED = Path(os.environ.get("STF_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"


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


BIN = Path(sys.executable).parent  # the venv's snakemake, dvc and stf


def tool_env() -> dict[str, str]:
    """The environment the workflow tools run in: the venv's bin first on PATH (the rules call `stf`)."""
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def sh(root: Path, *cmd: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run the venv's `cmd[0]` (snakemake, dvc) in `root`; a failure fails the test with its output
    and the tails of the last three job logs."""
    proc = subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=root, env=tool_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in sorted((root / "logs").rglob("*.log"))[-3:])
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}\n{logs}")
    return proc


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
