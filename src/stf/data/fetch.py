"""Locate, verify and unpack the real dataset archives named in `params.yaml` (`data.<dataset>`).

`fetch(dataset, archives, out_dir)` takes each configured archive (a local `.zip` or
`.tar[.gz|.bz2|.xz]`, a folder, or a URL downloaded into `<out_dir>.downloads/` beside the
output and reused while it matches the configured size/sha256), checks its size and sha256
when given, and unpacks everything into `out_dir` together with `MANIFEST.json` (archives
with their sha256, the unpacked files, counts). Sources are only read. A second call with the
same archives finds the manifest and does nothing. An archive whose members all sit in one
top-level folder is unpacked without that folder, so `out_dir` gets the raw layout the
preprocessing expects:

- NTU RGB+D: `*.skeleton` files (any depth);
- Kinetics-skeleton: `kinetics_train/`, `kinetics_val/`, `kinetics_{train,val}_label.json`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, TypeVar

from tqdm import tqdm

from stf.config import Archive
from stf.io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

__all__ = ["ArchiveError", "MissingDataError", "fetch"]

MANIFEST = "MANIFEST.json"
_CHUNK = 1 << 20
_URL_SCHEMES = ("http", "https", "ftp", "file")
_REGISTRATION = "https://rose1.ntu.edu.sg/dataset/actionRecognition/"
_WHERE = {
    "ntu60": (
        "NTU RGB+D 60 skeletons: register at "
        f"{_REGISTRATION} and download nturgbd_skeletons_s001_to_s017.zip; then set data.ntu60 in "
        "params.yaml to [{path: /path/to/nturgbd_skeletons_s001_to_s017.zip}] (sha256 and size optional)"
    ),
    "ntu120": (
        "NTU RGB+D 120 skeletons: register at "
        f"{_REGISTRATION} and download nturgbd_skeletons_s001_to_s017.zip and "
        "nturgbd_skeletons_s018_to_s032.zip; then set data.ntu120 in params.yaml to both "
        "([{path: ...s001_to_s017.zip}, {path: ...s018_to_s032.zip}])"
    ),
    "kinetics": (
        "Kinetics-skeleton (the ST-GCN release, OpenPose on Kinetics-400): download kinetics-skeleton.zip, "
        "which holds kinetics_train/, kinetics_val/, kinetics_train_label.json and kinetics_val_label.json; "
        "then set data.kinetics in params.yaml to [{path: /path/to/kinetics-skeleton.zip}]"
    ),
}
T = TypeVar("T")
_SYNTHETIC_HINT = " (or choose a profile with source: synthetic, e.g. `profile: tiny`, to run on generated data)"


class MissingDataError(ValueError):
    """No archive is configured, or a configured one cannot be found or downloaded; the
    message says where to get the data and which params key to set."""


class ArchiveError(ValueError):
    """An archive does not match its checksum, cannot be unpacked safely, or lacks the expected files."""


def _help(dataset: str) -> str:
    return _WHERE[dataset] + _SYNTHETIC_HINT


# --------------------------------------------------------------------------- sources


def _is_url(text: str) -> bool:
    return urllib.parse.urlparse(text).scheme in _URL_SCHEMES


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with (
        open(path, "rb") as fh,
        tqdm(
            total=path.stat().st_size, unit="B", unit_scale=True, desc=f"sha256 {path.name}", disable=None, leave=False
        ) as bar,
    ):
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _matches(path: Path, archive: Archive) -> bool:
    """Whether a cached download agrees with the configured size and sha256 (when given)."""
    if archive.size is not None and path.stat().st_size != archive.size:
        return False
    return archive.sha256 is None or _sha256(path) == archive.sha256.lower()


def _download(url: str, cache: Path, archive: Archive, dataset: str) -> Path:
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "download"
    target = cache / name
    if target.is_file() and _matches(target, archive):
        log.info("using cached download %s", target)
        return target
    log.info("downloading %s -> %s", url, target)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(target) as tmp, open(tmp, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=None) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as err:
        raise MissingDataError(f"{url}: download failed ({err}). {_help(dataset)}") from None
    return target


def _locate(archive: Archive, dataset: str, cache: Path) -> Path:
    if _is_url(archive.path):
        return _download(archive.path, cache, archive, dataset)
    path = Path(archive.path).expanduser()
    if not path.exists():
        raise MissingDataError(f"{path}: configured in params data.{dataset} but not found. {_help(dataset)}")
    return path


def _record(archive: Archive, source: Path, dataset: str) -> dict:
    """Verify one source; the manifest entry {path, kind, size, sha256}."""
    if source.is_dir():
        if archive.sha256 is not None or archive.size is not None:
            raise ArchiveError(f"{source}: sha256/size are given in params data.{dataset} but the source is a folder")
        return {"path": archive.path, "kind": "folder", "size": None, "sha256": _tree_fingerprint(source)}
    size = source.stat().st_size
    if archive.size is not None and size != archive.size:
        raise ArchiveError(f"{source}: size is {size} bytes but params data.{dataset} expects {archive.size}")
    digest = _sha256(source)
    if archive.sha256 is not None and digest != archive.sha256.lower():
        raise ArchiveError(f"{source}: sha256 is {digest} but params data.{dataset} expects {archive.sha256.lower()}")
    return {"path": archive.path, "kind": _kind(source), "size": size, "sha256": digest}


def _tree_fingerprint(root: Path) -> str:
    """sha256 of a folder's listing (relative path and size of every file), not of its content."""
    digest = hashlib.sha256()
    for rel, path in sorted(_walk_files(root)):
        digest.update(f"{rel}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def _kind(path: Path) -> str:
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise ArchiveError(f"{path}: neither a zip nor a tar archive (nor a folder)")


# --------------------------------------------------------------------------- unpacking


def _safe_parts(name: str, source: Path) -> tuple[str, ...]:
    """The path components of an archive member; ArchiveError for absolute or escaping paths."""
    posix = PurePosixPath(name.replace("\\", "/"))
    parts = tuple(p for p in posix.parts if p not in ("", "."))
    if posix.is_absolute() or ".." in parts or (parts and ":" in parts[0]):
        raise ArchiveError(f"{source}: member {name!r} would be written outside the output folder")
    return parts


def _strip_common_folder(members: list[tuple[tuple[str, ...], T]]) -> list[tuple[tuple[str, ...], T]]:
    """Drop a single top-level folder that holds every member."""
    tops = {parts[0] for parts, _ in members}
    if len(tops) == 1 and all(len(parts) > 1 for parts, _ in members):
        return [(parts[1:], member) for parts, member in members]
    return members


def _walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            yield path.relative_to(root).as_posix(), path


def _write_member(
    dest: Path, parts: tuple[str, ...], stream: IO[bytes], source: Path, written: dict[str, Path]
) -> None:
    rel = "/".join(parts)
    if rel in written:
        raise ArchiveError(f"{source}: {rel} is also in {written[rel]}; the archives overlap")
    written[rel] = source
    target = dest.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        shutil.copyfileobj(stream, out, _CHUNK)


def _unpack(source: Path, kind: str, dest: Path, written: dict[str, Path]) -> None:
    """Unpack one source into `dest` (regular files only; the source is only read)."""
    if kind == "folder":
        members = [(tuple(rel.split("/")), path) for rel, path in _walk_files(source)]
        for parts, path in tqdm(_strip_common_folder(members), desc=source.name, unit="file", disable=None):
            with open(path, "rb") as fh:
                _write_member(dest, parts, fh, source, written)
    elif kind == "zip":
        with zipfile.ZipFile(source) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            members = [(_safe_parts(i.filename, source), i) for i in infos]
            for parts, info in tqdm(_strip_common_folder(members), desc=source.name, unit="file", disable=None):
                with zf.open(info) as fh:
                    _write_member(dest, parts, fh, source, written)
    else:
        with tarfile.open(source, "r:*") as tf:
            members = []
            for info in tf.getmembers():
                if info.isdir():
                    continue
                if not info.isfile():
                    raise ArchiveError(f"{source}: member {info.name!r} is a link or device, not a regular file")
                members.append((_safe_parts(info.name, source), info))
            for parts, info in tqdm(_strip_common_folder(members), desc=source.name, unit="file", disable=None):
                fh = tf.extractfile(info)
                assert fh is not None
                with fh:
                    _write_member(dest, parts, fh, source, written)


def _check_layout(dataset: str, root: Path, sources: list[Path]) -> None:
    names = ", ".join(s.name for s in sources)
    if dataset.startswith("ntu"):
        if next(root.rglob("*.skeleton"), None) is None:
            raise ArchiveError(f"no .skeleton files in {names}. {_WHERE[dataset]}")
        return
    needed = ["kinetics_train", "kinetics_val", "kinetics_train_label.json", "kinetics_val_label.json"]
    missing = [n for n in needed if not (root / n).exists()]
    if missing:
        raise ArchiveError(f"{names} lacks {', '.join(missing)} at its top level. {_WHERE[dataset]}")


def _counts(files: list[str]) -> dict[str, int]:
    return {
        "files": len(files),
        "skeleton": sum(f.endswith(".skeleton") for f in files),
        "json": sum(f.endswith(".json") for f in files),
    }


# --------------------------------------------------------------------------- entry point


def _up_to_date(out_dir: Path, dataset: str, records: list[dict]) -> dict | None:
    """The existing manifest when it lists the same archives and all its files are present."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("dataset") != dataset or manifest.get("archives") != records:
        return None
    files = manifest.get("files")
    if not isinstance(files, list) or not all((out_dir / f).is_file() for f in files):
        return None
    return manifest


def _clear(out_dir: Path, sources: list[Path]) -> None:
    """Remove a previous fetch output; refuse folders that are not one or that hold a source."""
    resolved = out_dir.resolve()
    for source in sources:
        if source.resolve() == resolved or resolved in source.resolve().parents:
            raise ArchiveError(f"{source}: the source lies inside the output folder {out_dir}; choose another --out")
    if not out_dir.exists():
        return
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    elif (out_dir / MANIFEST).is_file():
        shutil.rmtree(out_dir)
    else:
        raise ArchiveError(
            f"{out_dir} exists and was not written by `stf fetch` (no {MANIFEST}); remove it or choose another --out"
        )


def fetch(dataset: str, archives: list[Archive], out_dir: Path | str) -> dict:
    """Verify and unpack the archives of `dataset` into `out_dir`; return a summary.

    dataset: "ntu60", "ntu120" or "kinetics"; archives: `params.data.<dataset>`.
    Returns {"dataset", "out_dir", "archives": [{path, kind, size, sha256}], "counts":
    {"files", "skeleton", "json"}, "unpacked": False when the manifest was already current}.
    Raises MissingDataError (nothing configured, a path that does not exist, a failed
    download) and ArchiveError (size/sha256 mismatch, unsafe or overlapping members, a
    layout without the dataset's files).
    """
    if dataset not in _WHERE:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(_WHERE)}")
    out_dir = Path(out_dir)
    if not archives:
        raise MissingDataError(f"params data.{dataset} lists no archives. {_help(dataset)}")
    cache = out_dir.parent / f"{out_dir.name}.downloads"
    sources = [_locate(a, dataset, cache) for a in archives]
    records = [_record(a, s, dataset) for a, s in zip(archives, sources, strict=True)]
    summary = {"dataset": dataset, "out_dir": str(out_dir), "archives": records}

    manifest = _up_to_date(out_dir, dataset, records)
    if manifest is not None:
        log.info("%s is up to date with its archives (%s)", out_dir, MANIFEST)
        return {**summary, "counts": manifest.get("counts", {}), "unpacked": False}

    _clear(out_dir, sources)
    staging = out_dir.parent / f".{out_dir.name}.unpacking"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        written: dict[str, Path] = {}
        for source, record in zip(sources, records, strict=True):
            _unpack(source, record["kind"], staging, written)
        _check_layout(dataset, staging, sources)
        files = sorted(written)
        counts = _counts(files)
        # the manifest goes in before the rename, so `out_dir` never exists without it
        manifest = {"dataset": dataset, "archives": records, "counts": counts, "files": files}
        write_json_atomic(staging / MANIFEST, manifest)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("unpacked %d files into %s", counts["files"], out_dir)
    return {**summary, "counts": counts, "unpacked": True}
