"""Shared fixtures and hooks: the read-only real files in ../shared/fixtures, one torch thread per
test process, GPU tests skipped without CUDA. Shared helpers (REPO, TINY_SPEC, copy_workflow)
live in helpers.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import FIXTURES


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
