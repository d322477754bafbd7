"""Load a pickle that may come from anyone, without letting it run code.

A pickle names the callables that rebuild its objects, and `pickle.load` calls them: a
hostile file can name `os.system`. `load_pickle(path)` unpickles with `SafeUnpickler`, whose
`find_class` admits only what numpy arrays, numpy scalars, dtypes and builtin containers
need (the content of MS-G3D label files and pyskl annotation files) and refuses everything
else before it is called, with `UnsafePickleError` naming the file and the callable.

Admitted, by (module, name) as the pickle spells it:
- numpy: `ndarray`, `dtype`; `_reconstruct` and `scalar` of `numpy.core.multiarray` /
  `numpy._core.multiarray` (protocols 0-4), `_frombuffer` of `numpy.core.numeric` /
  `numpy._core.numeric` (protocol 5); old and new module names both map to the installed numpy.
- builtins (`builtins` or Python 2's `__builtin__`): `set`, `frozenset`, `bytearray`,
  `complex`; `collections.OrderedDict`; `_codecs.encode` (protocol 2 writes bytes with it).
Lists, dicts, tuples, strings, numbers and booleans need no callable at all.
"""

from __future__ import annotations

import _codecs
import collections
import functools
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ALLOWED_TEXT", "PickleReadError", "SafeUnpickler", "UnsafePickleError", "load_pickle"]


class UnsafePickleError(ValueError):
    """The pickle names a callable outside the allow-list; nothing it names was called."""


class PickleReadError(ValueError):
    """The file is not a readable pickle (truncated, not a pickle, unreadable)."""


def _numpy_attr(submodule: str, name: str) -> Any:
    """`numpy._core.<submodule>.<name>` on numpy >= 2, `numpy.core.<submodule>.<name>` before."""
    import importlib

    for package in ("numpy._core", "numpy.core"):
        try:
            module = importlib.import_module(f"{package}.{submodule}")
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise ImportError(f"numpy has no {submodule}.{name}")  # pragma: no cover - every numpy >= 1.26 has them


@functools.cache
def _table() -> dict[tuple[str, str], Any]:
    """(module, name) as a pickle spells it -> the object it may resolve to."""
    table: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        table[(f"{package}.multiarray", "_reconstruct")] = _numpy_attr("multiarray", "_reconstruct")
        table[(f"{package}.multiarray", "scalar")] = _numpy_attr("multiarray", "scalar")
        table[(f"{package}.numeric", "_frombuffer")] = _numpy_attr("numeric", "_frombuffer")
    for module in ("builtins", "__builtin__"):
        for obj in (set, frozenset, bytearray, complex):
            table[(module, obj.__name__)] = obj
    table[("collections", "OrderedDict")] = collections.OrderedDict
    table[("_codecs", "encode")] = _codecs.encode
    return table


ALLOWED_TEXT = "numpy arrays, numpy scalars and dtypes, and builtin containers"


class SafeUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` admits only the allow-list of this module."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _table()[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {module}.{name}: only {ALLOWED_TEXT} are allowed in a pickle (it was not called)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a persistent id: only plain data is allowed in a pickle")


def load_pickle(path: Path | str) -> Any:
    """Unpickle `path` with `SafeUnpickler`.

    Python 2 pickles load with encoding "latin1" (numpy's convention for their array bytes).
    Raises `FileNotFoundError`, `UnsafePickleError` (a callable outside the allow-list) or
    `PickleReadError` (not a pickle, truncated), each message starting with the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with open(path, "rb") as fh:
            return SafeUnpickler(fh, encoding="latin1").load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError, MemoryError) as err:  # fmt: skip
        text = " ".join(str(err).split()) or type(err).__name__
        raise PickleReadError(f"{path}: not a readable pickle ({type(err).__name__}: {text[:200]})") from None
