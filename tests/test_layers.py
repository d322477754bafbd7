"""The package's layers (docs/architecture.md, "The layers above the models"), read from the
source with `ast`: no module is imported, so nothing runs at import time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

PACKAGE = REPO / "src" / "stf"


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Absolute names of every module `path` (or `source`, read as that file) imports, at top
    level or inside a function; relative imports resolved against the file's package."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            else:
                names.add(node.module or "")
    return names


def modules_of(folder: str) -> list[Path]:
    files = sorted((PACKAGE / folder).rglob("*.py"))
    assert files, f"no modules under {PACKAGE / folder}"
    return files


def _top(name: str) -> str:
    return name.partition(".")[0]


@pytest.mark.parametrize("path", modules_of("models"), ids=lambda p: p.name)
def test_models_import_only_torch_numpy_and_the_standard_library(path: Path) -> None:
    allowed_top = {"torch", "numpy", "__future__"}
    bad = sorted(
        name
        for name in imported_modules(path)
        if not (name == "stf.models" or name.startswith("stf.models."))
        and _top(name) not in allowed_top
        and _top(name) not in sys.stdlib_module_names
    )
    assert not bad, f"{path.relative_to(REPO)} imports {bad}"


@pytest.mark.parametrize("path", modules_of("training"), ids=lambda p: p.name)
def test_training_imports_no_stage_report_or_glue(path: Path) -> None:
    above = ("stf.stages", "stf.report", "stf.cli", "stf.pipeline")
    bad = sorted(n for n in imported_modules(path) if any(n == a or n.startswith(a + ".") for a in above))
    assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_imported_modules_sees_lazy_and_relative_imports() -> None:
    """The reader itself: a function-level import and relative imports are all found."""
    source = "def f():\n    from stf.config import Params\n\nfrom .graph import adjacency\nfrom . import blocks\n"
    names = imported_modules(PACKAGE / "models" / "example.py", source)
    assert names == {"stf.config", "stf.models.graph", "stf.models"}


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("stf.stages.fuse", ("torch", "sklearn", "scipy")),
        ("stf.stages.scores", ("torch", "sklearn", "scipy")),
        ("stf.stages.train", ("sklearn", "scipy")),
        ("stf.stages.evaluate", ("sklearn", "scipy")),
    ],
)
def test_job_modules_do_not_load_heavy_libraries(module: str, absent: tuple[str, ...]) -> None:
    """What a pipeline job imports is paid once per job (139 jobs in `make run`): fusion reads
    score files without torch, and no job loads scikit-learn/scipy (about 1.3 s) to score."""
    code = f"import sys, {module}; print(','.join(m for m in {absent!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert not out, f"importing {module} loads {out}"
