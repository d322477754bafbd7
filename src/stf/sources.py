"""Which source files a module runs: the one rule of "what code change reruns what".

`code_files(*entries)` is the closure of `stf` imports of the entry modules. The pipeline
description (`stf.pipeline`) lists it per stage as Snakemake inputs and DVC deps, and
`stf.stages.runtime` hashes the training stages' list into the resume fingerprint. This module
imports nothing from `stf`, so editing the pipeline description reruns no job.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent  # the `stf` package: src/stf in a checkout
SOURCE_DIR = "src/stf"  # how the package's files are named in the workflow (repository root)
TRAINING_CODE = ("stf.stages.train",)  # entry module of the training stages (train, finetune_*, probe_*)


def _module_file(name: str) -> Path | None:
    """Source file of module `name` (`stf.x.y`), or None when no such module exists."""
    base = PACKAGE.joinpath(*name.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


_IMPORTS: dict[tuple[Path, int, bool], frozenset[str]] = {}


def _stf_imports(path: Path, top_level_only: bool) -> frozenset[str]:
    """Names of the `stf` modules `path` imports (inside functions too, unless `top_level_only`)."""
    key = (path, path.stat().st_mtime_ns, top_level_only)
    if key in _IMPORTS:
        return _IMPORTS[key]
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError:
        return frozenset()  # still listed: the job itself reports the error when it imports the file
    found: set[str] = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "stf")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "stf":
                found.add(node.module)
                # `from stf.data import dataset` imports the module stf.data.dataset
                found.update(f"{node.module}.{a.name}" for a in node.names)
    _IMPORTS[key] = frozenset(found)
    return _IMPORTS[key]


def code_files(*entries: str) -> tuple[str, ...]:
    """The one rule of "what code change reruns what": the source files (`src/stf/...`, sorted)
    of the `entries` modules, of every `stf` module they import at any depth (imports inside
    functions included) and of the CLI (its top-level imports only: it imports each stage's
    module lazily). Empty files (a bare `__init__.py`) run nothing and are left out.

    Snakemake lists these files as a job's inputs and DVC as its deps, so an edit of one of
    them reruns exactly the jobs that run it, in both tools.
    """
    top_level_only = {"stf.cli": True, **{e: False for e in entries}}
    files: set[str] = set()
    todo, seen = list(top_level_only), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        path = _module_file(name)
        if path is None:
            continue  # `from stf.x import name` where name is not a module
        if path.stat().st_size > 0:
            files.add(f"{SOURCE_DIR}/{path.relative_to(PACKAGE).as_posix()}")
            todo.extend(_stf_imports(path, top_level_only.get(name, False)))
    return tuple(sorted(files))
