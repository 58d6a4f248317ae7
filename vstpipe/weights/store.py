"""The weight cache: where models live, their manifests, and the temp files that fill them.

The cache is ``home()/models/<name>/`` holding the published files under their published names
plus ``manifest.json`` (per file: role, sha256, size, source, date, and a stamp: mtime and a
digest of its ends). A file only ever reaches its final name through ``claim`` (``os.replace``)
after its size, sha256 and layout were checked, so an interrupted pull or import leaves no
partial file behind; every temp file and folder of the package is made here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs

from .. import atomic
from ..errors import ChecksumError, ModelError, OutputError
from .registry import REGISTRY, FileSpec, ModelSpec
from .safety import one_line

MANIFEST = "manifest.json"
CHUNK = 1 << 18  # 256 KiB: small enough for a live progress bar, large enough to be cheap
_EDGE = 1 << 20  # bytes hashed at each end of a cached file on every load (the "quick" digest)


@dataclass(frozen=True)
class ModelStatus:
    name: str
    arch: str
    installed: bool  # every published file is in the cache
    size: int  # bytes on disk of the cached published files, 0 if none
    licence: str


@dataclass(frozen=True)
class VerifyResult:
    name: str  # model name
    file: str  # published file name
    ok: bool
    message: str  # one line: what matched, or what is wrong and how to fix it


# --- places ---------------------------------------------------------------------------------


def home() -> Path:
    """The cache root: ``$VSTPIPE_HOME`` when set, else the user cache directory."""
    env = os.environ.get("VSTPIPE_HOME", "").strip()
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("vstpipe"))


def model_dir(name: str) -> Path:
    """Where a model's files are: the cache, or the package for an embedded model."""
    ms = REGISTRY.get(name)
    if ms is not None and ms.embedded:
        return embedded_dir(name)
    return home() / "models" / name


def embedded_dir(name: str) -> Path:
    """The folder of a model that ships inside the package (``models/<name>`` in a checkout)."""
    return Path(str(resources.files("vstpipe.models_data"))) / name


def check_embedded(ms: ModelSpec) -> dict[str, Path]:
    """role -> file of an embedded model, each matching the registry's sha256 (a damaged or
    replaced install is named, with the fix); hashed once per process."""
    paths = {f.role: embedded_dir(ms.name) / f.name for f in ms.files}
    for f in ms.files:
        path = paths[f.role]
        if not path.is_file():
            raise ModelError(f"{path}: the embedded {ms.name} model lacks {f.name}; reinstall "
                             "vstpipe")
        key = (str(path), path.stat().st_size, path.stat().st_mtime_ns)
        if key not in _EMBEDDED_OK:
            sha256, _ = _sha256_file(path)
            if sha256 != f.sha256:
                raise ChecksumError(f"{path}: sha256 {sha256[:16]}... differs from the "
                                    f"registry's {str(f.sha256)[:16]}... for the embedded "
                                    f"{ms.name} model; reinstall vstpipe")
            _EMBEDDED_OK.add(key)
    return paths


_EMBEDDED_OK: set[tuple[str, int, int]] = set()  # embedded files already hashed this process



def fix_hint(name: str) -> str:
    if name in REGISTRY and REGISTRY[name].embedded:
        return "reinstall vstpipe (the model ships inside it)"
    if name not in REGISTRY:  # a model directory installed under a name of its own
        return f"`vstpipe models import {name} DIR` again after removing {model_dir(name)}"
    return f"`vstpipe models pull {name}` or `vstpipe models import {name} FILE...`"


# --- manifest -------------------------------------------------------------------------------


def read_manifest(folder: Path, ms: ModelSpec) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        return {"model": ms.name, "arch": ms.arch, "files": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable manifest ({one_line(exc)}); delete it and run "
                         f"{fix_hint(ms.name)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise ModelError(f"{path}: not a vstpipe manifest (no 'files' object); delete it and "
                         f"run {fix_hint(ms.name)}")
    return data


def record(folder: Path, ms: ModelSpec, entries: dict[str, dict[str, Any]]) -> None:
    """Merge per-file entries into the manifest and write it atomically."""
    manifest = read_manifest(folder, ms)
    manifest.update(model=ms.name, arch=ms.arch)
    manifest["files"].update(entries)
    replace_file(folder, MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n")
                 .encode("utf-8"))


def manifest_entry(role: str, installed: Path, sha256: str, size: int, source: str,
                   published: bool = True) -> dict[str, Any]:
    """``published`` is False only for files imported with --unverified that differ from the
    registry's sha256; verify() then reports them as such instead of as damaged. ``installed``
    is the file in the cache, stamped so that loading it can tell cheaply that it is unchanged."""
    return {"role": role, "sha256": sha256, "size": size, "source": source,
            "published": published, "date": datetime.now(UTC).isoformat(timespec="seconds"),
            **_stamp(installed)}


def _stamp(path: Path) -> dict[str, Any]:
    """What a load compares instead of re-hashing the whole file: its mtime and a digest of its
    first and last MiB (the size is in the entry already)."""
    return {"mtime_ns": path.stat().st_mtime_ns, "quick": _quick_digest(path)}


def _quick_digest(path: Path) -> str:
    with path.open("rb") as src:
        digest = hashlib.sha256(src.read(_EDGE))
        size = os.fstat(src.fileno()).st_size
        if size > _EDGE:
            src.seek(max(_EDGE, size - _EDGE))
            digest.update(src.read(_EDGE))
    return digest.hexdigest()


def _check_unchanged(path: Path, entry: object, fix: str) -> dict[str, Any] | None:
    """ModelError unless ``path`` is still the file its manifest ``entry`` recorded.

    Cheap while the file keeps its recorded mtime: the size and the quick digest. A new mtime
    (a copied cache, a manifest from before the stamps, a modified file) costs one full sha256;
    when that matches, the entry to record with the new stamp is returned.
    """
    if not isinstance(entry, dict):
        raise ModelError(f"{path}: not recorded in {MANIFEST}, so it cannot be trusted; {fix}")
    changed = f"{path}: changed since it was installed"
    stat = path.stat()
    if stat.st_size != entry.get("size"):
        raise ModelError(f"{changed} ({stat.st_size} bytes, {entry.get('size')} recorded); {fix}")
    if stat.st_mtime_ns == entry.get("mtime_ns"):
        if _quick_digest(path) != entry.get("quick"):
            raise ModelError(f"{changed} (its first or last MiB differs); {fix}")
        return None
    sha256, _ = _sha256_file(path)
    if sha256 != entry.get("sha256"):
        raise ModelError(f"{changed} (sha256 {sha256[:16]}..., recorded "
                         f"{str(entry.get('sha256'))[:16]}...); {fix}")
    return {**entry, **_stamp(path)}


def check_cache(folder: Path, ms: ModelSpec, names: Sequence[str]) -> None:
    """Every one of ``names`` in ``folder`` as its manifest recorded it: what render checks,
    so a truncated or overwritten cache file is refused before it is loaded."""
    manifest = read_manifest(folder, ms)
    fix = f"check with `vstpipe models verify`, then restore it with {fix_hint(ms.name)}"
    restamped = {}
    for name in names:
        entry = _check_unchanged(folder / name, manifest["files"].get(name), fix)
        if entry is not None:
            restamped[name] = entry
    if restamped:
        try:
            record(folder, ms, restamped)
        except (OSError, OutputError):
            pass  # a read-only cache: the files matched, the next load re-hashes them


# --- files on disk --------------------------------------------------------------------------


@contextlib.contextmanager
def staging(folder: Path, final_name: str) -> Iterator[Path]:
    """A hidden temp file next to ``final_name``; removed on exit unless ``claim`` moved it,
    so any exception (KeyboardInterrupt included) leaves nothing behind.

    An atomic.TempOutput: named within NAME_MAX however long ``final_name`` is, and locked, so
    a later run removes the temp file of one that was killed.
    """
    with atomic.TempOutput(folder / final_name, overwrite=True) as tmp:
        yield tmp.path


def claim(tmp: Path, target: Path) -> None:
    """Move a staged, checked file onto its final name (atomic within one file system)."""
    os.replace(tmp, target)


@contextlib.contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """A hidden temp folder beside ``target``, moved onto it when the block succeeds and
    removed when it fails, so a model folder appears whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield folder
        os.replace(folder, target)  # the files keep their mtimes, so the stamps hold
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def replace_file(folder: Path, name: str, data: bytes) -> None:
    """Write ``folder / name`` through a synced temp file, so readers see the old or the new
    file, never a part of one."""
    with atomic.TempOutput(folder / name, overwrite=True) as tmp:
        _write_synced(tmp.path, data)
        tmp.commit()


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def copy_hashing(src: Path, dst: Path) -> tuple[str, int]:
    """Copy and hash in one pass, so the hash is of the bytes that will be installed."""
    digest, size = hashlib.sha256(), 0
    with src.open("rb") as inp, dst.open("wb") as out:
        while chunk := inp.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def git_blob_sha1(path: Path) -> str:
    """The id git gives the file's bytes as a blob (what `git hash-object` prints)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_published(ms: ModelSpec, f: FileSpec, sha256: str, size: int, label: str,
                    hint: str, path: Path) -> None:
    what = f"the published {ms.name} {f.role} ({f.name})"
    if f.size is not None and size != f.size:
        raise ChecksumError(f"{label}: {size} bytes, {what} has {f.size}; {hint}")
    if f.sha256 is not None and sha256 != f.sha256:
        raise ChecksumError(f"{label}: sha256 {sha256[:16]}... differs from {what} "
                            f"{f.sha256[:16]}...; {hint}")
    if f.git_sha1 is not None and (blob := git_blob_sha1(path)) != f.git_sha1:
        raise ChecksumError(f"{label}: git blob id {blob[:12]}... differs from {what} "
                            f"{f.git_sha1[:12]}...; {hint}")


def installed_ok(folder: Path, f: FileSpec, manifest: dict[str, Any]) -> bool:
    """True when the cached file is the one the manifest recorded (and the published one)."""
    path, entry = folder / f.name, manifest["files"].get(f.name)
    if not path.is_file() or not isinstance(entry, dict):
        return False
    sha256, _ = _sha256_file(path)
    return sha256 == entry.get("sha256") and f.sha256 in (None, sha256)


# --- status ---------------------------------------------------------------------------------


def imported_names() -> list[str]:
    """Models installed under names of their own (`models import NAME DIR`): the cache's
    folders that hold a manifest and that the registry does not name."""
    root = home() / "models"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and p.name not in REGISTRY and (p / MANIFEST).is_file())


def imported_spec(name: str) -> ModelSpec:
    """An imported model as a spec: its files as its manifest recorded them at import (the
    sha256 there is what verify holds them to); ModelError if ``name`` is not one."""
    folder = model_dir(name)
    if name in REGISTRY or not (folder / MANIFEST).is_file():
        known = ", ".join([*REGISTRY, *imported_names()])
        raise ModelError(f"unknown model '{name}'; choose from {known}")
    manifest = read_manifest(folder, ModelSpec(name, "", (), "", "", ""))
    files = tuple(FileSpec(str(entry.get("role", "")), fname, "", None, None)
                  for fname, entry in sorted(manifest["files"].items())
                  if isinstance(entry, dict))
    return ModelSpec(name, str(manifest.get("arch", "")), files,
                     "yours (see its model.json)", "", "imported with `vstpipe models import`")


def any_spec(name: str) -> ModelSpec:
    """The registry's entry, or an imported model's."""
    return REGISTRY[name] if name in REGISTRY else imported_spec(name)


def status(name: str) -> ModelStatus:
    ms = any_spec(name)
    paths = [model_dir(name) / f.name for f in ms.files]
    present = [p for p in paths if p.is_file()]
    return ModelStatus(ms.name, ms.arch, installed=bool(paths) and len(present) == len(paths),
                       size=sum(p.stat().st_size for p in present), licence=ms.licence)


def list_models() -> list[ModelStatus]:
    """The registry's models, then those imported under names of their own."""
    return [status(name) for name in [*REGISTRY, *imported_names()]]


@contextlib.contextmanager
def model_folder(name: str) -> Iterator[Path]:
    """The model's cache folder, created if needed and removed again if a failure leaves it
    empty, so a failed first pull or import does not look like a half-installed model."""
    folder = model_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        if not any(folder.iterdir()):
            folder.rmdir()
        raise


# --- verify ---------------------------------------------------------------------------------


def verify(name: str | None = None) -> list[VerifyResult]:
    """Re-hash cached files against the manifest and the registry; one result per file.

    With no ``name``, every model that has anything in the cache is checked, models imported
    under names of their own included (an embedded one only when named).
    """
    if name is not None:
        specs = [any_spec(name)]
    else:
        specs = [ms for ms in REGISTRY.values() if not ms.embedded and (
            (model_dir(ms.name) / MANIFEST).is_file() or status(ms.name).size)]
        specs += [imported_spec(n) for n in imported_names()]
    return [_verify_file(ms, f, read_manifest(model_dir(ms.name), ms))
            for ms in specs for f in ms.files]


def _verify_file(ms: ModelSpec, f: FileSpec, manifest: dict[str, Any]) -> VerifyResult:
    path = model_dir(ms.name) / f.name
    if ms.embedded:
        if not path.is_file():
            return VerifyResult(ms.name, f.name, False, f"missing; {fix_hint(ms.name)}")
        sha256, _ = _sha256_file(path)
        if sha256 != f.sha256:
            return VerifyResult(ms.name, f.name, False, f"changed (sha256 {sha256[:16]}...); "
                                                        f"{fix_hint(ms.name)}")
        return VerifyResult(ms.name, f.name, True, "ok, embedded, matches the registry's sha256")
    if not path.is_file():
        return VerifyResult(ms.name, f.name, False, f"missing; run {fix_hint(ms.name)}")
    sha256, size = _sha256_file(path)
    entry = manifest["files"].get(f.name)
    problems = []
    if not isinstance(entry, dict):
        problems.append("not recorded in manifest.json")
    elif entry.get("sha256") != sha256 or entry.get("size") != size:
        problems.append(f"changed since it was installed (sha256 {sha256[:16]}..., "
                        f"manifest {str(entry.get('sha256'))[:16]}...)")
    unverified = isinstance(entry, dict) and entry.get("published") is False
    if f.sha256 is not None and sha256 != f.sha256 and not unverified:
        problems.append(f"not the published file (published sha256 {f.sha256[:16]}...)")
    if problems:
        return VerifyResult(ms.name, f.name, False,
                            f"{'; '.join(problems)}; run {fix_hint(ms.name)} to restore it")
    if unverified:
        return VerifyResult(ms.name, f.name, True, "ok, matches manifest.json; imported with "
                            "--unverified: NOT the published file")
    matched = "the published sha256" if f.sha256 is not None else \
        "manifest.json (no published sha256 to compare)"
    return VerifyResult(ms.name, f.name, True, f"ok, matches {matched}")
