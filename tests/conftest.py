"""Shared fixtures and hooks: the read-only real files in ../shared/fixtures, one torch thread per
test process, slow tests first, GPU tests skipped without CUDA. Shared helpers (REPO, TINY_SPEC, copy_workflow)
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


def _expected_cost(item: pytest.Item) -> float:
    """How long a test is expected to take, for ordering: a `slow` test by its own timeout mark
    (the end-to-end test has the largest), every other test 0."""
    if item.get_closest_marker("slow") is None:
        return 0.0
    timeout = item.get_closest_marker("timeout")
    return 1.0 + (float(timeout.args[0]) if timeout is not None and timeout.args else 0.0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests first, longest first (a stable sort, so the rest keep their order): with two
    processes (pytest-xdist, a file per process) the end-to-end test then starts at once
    instead of finishing last alone. GPU tests are skipped without CUDA."""
    items.sort(key=_expected_cost, reverse=True)
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
