"""Model registry and weight cache: name -> published files, download, import, verify, resolve.

The cache is ``home()/models/<name>/`` holding the published files under their published names
plus ``manifest.json`` (per file: role, sha256, size, source, date). A file only ever reaches
its final name through ``os.replace`` after its size, sha256 and layout were checked, so an
interrupted pull or import leaves no partial file behind.

Weights are read with safetensors or ``torch.load(weights_only=True)``; nothing else is
unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import math
import os
import pickle
import re
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import platformdirs
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as _load_safetensors

from .. import __version__
from .. import model as models
from ..errors import ChecksumError, DownloadError, ModelError, OptionError

ProgressFn = Callable[[str, int, int | None], None]  # (file name, bytes so far, total or None)

MANIFEST = "manifest.json"
MODEL_JSON = "model.json"
_CHUNK = 1 << 18  # 256 KiB: small enough for a live progress bar, large enough to be cheap
_EDGE = 1 << 20  # bytes hashed at each end of a cached file on every load (the "quick" digest)
# A torch.save archive stores its tensors uncompressed, so what it declares it holds is about
# its own size; twice that (plus room for small compressed records) is refused as a zip bomb.
_ZIP_INFLATION = 2
_ZIP_SLACK = 1 << 20
_SAFETENSORS_MAX_HEADER = 100 << 20  # the safetensors library's own limit on its JSON header
_SAFETENSORS_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2,
                         "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8,
                         "U64": 8, "F64": 8}


@dataclass(frozen=True)
class FileSpec:
    role: str  # "encoder" / "decoder", a key of models.ARCHS[arch].files
    name: str  # published file name, also the name in the cache
    url: str
    sha256: str | None  # None: not published anywhere we trust; the manifest pins first sight
    size: int | None  # bytes
    git_sha1: str | None = None  # git blob id in the upstream repository (`git hash-object`)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: str  # a key of models.ARCHS
    files: tuple[FileSpec, ...]
    licence: str
    homepage: str
    description: str


_ADAIN_RELEASE = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0"
_UVC_WEIGHTS = "https://github.com/Liusifei/UVC/raw/master/weights"

# The AdaIN sha256 values are not stated by the upstream repository; they are the values that
# several independent projects pin for these exact release URLs (and the VGG size comes from a
# Git LFS record of the same sha256). The decoder's size was not found, so it stays None.
REGISTRY: dict[str, ModelSpec] = {
    "adain-vgg19": ModelSpec(
        name="adain-vgg19",
        arch="adain-vgg19",
        files=(
            FileSpec("encoder", "vgg_normalised.pth", f"{_ADAIN_RELEASE}/vgg_normalised.pth",
                     "804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a",
                     80102481),
            FileSpec("decoder", "decoder.pth", f"{_ADAIN_RELEASE}/decoder.pth",
                     "379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472",
                     None),
        ),
        licence="MIT",
        homepage="https://github.com/naoto0804/pytorch-AdaIN",
        description="AdaIN (Huang & Belongie 2017): VGG19 to relu4_1 and its decoder, RGB",
    ),
    "uvc-lab": ModelSpec(
        name="uvc-lab",
        arch="uvc-lab",
        files=(
            FileSpec("encoder", "encoder_single_gpu.pth", f"{_UVC_WEIGHTS}/encoder_single_gpu.pth",
                     "8749f42703a3d1f6bfd8e639103254a4e528c03eb434a3ad73d3dc83c0895f5d",
                     2486942),
            FileSpec("decoder", "decoder_single_gpu.pth", f"{_UVC_WEIGHTS}/decoder_single_gpu.pth",
                     "7b255e36afabc7679413c76fb5eb602f95a0fbe1e55056b870c6d9b79e6e29f0",
                     2485612),
        ),
        licence="MIT",
        homepage="https://github.com/Liusifei/UVC",
        description="UVC colour autoencoder (Li, Liu et al. 2019), reduced relu3_1, OpenCV Lab",
    ),
    # Committed to the UVC repository as a plain git blob (no LFS); no sha256 or size is
    # published, so the blob id of that commit pins the bytes instead.
    "uvc-tracker": ModelSpec(
        name="uvc-tracker",
        arch="uvc-tracker",
        files=(
            FileSpec("tracker", "checkpoint_latest.pth.tar",
                     f"{_UVC_WEIGHTS}/checkpoint_latest.pth.tar", None, None,
                     git_sha1="8e2c3c43d05451f0008312dd84e8555b4d1a8eb0"),
        ),
        licence="MIT",
        homepage="https://github.com/Liusifei/UVC",
        description="UVC tracker (ResNet-18, stride 8): the affinity estimator of the paper, "
                    "for `vstpipe finetune --affinity uvc`",
    ),
}


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


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # registry name, or the directory it came from
    arch: str
    paths: dict[str, Path]  # role -> weight file


# --- places ---------------------------------------------------------------------------------


def home() -> Path:
    """The cache root: ``$VSTPIPE_HOME`` when set, else the user cache directory."""
    env = os.environ.get("VSTPIPE_HOME", "").strip()
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("vstpipe"))


def model_dir(name: str) -> Path:
    return home() / "models" / name


def spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model '{name}'; choose from {_names()}") from None


def offline_from_env() -> bool:
    """``VSTPIPE_OFFLINE``: 1/true/yes/on -> offline; unset, empty, 0/false/no/off -> online."""
    value = os.environ.get("VSTPIPE_OFFLINE", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise OptionError(f"VSTPIPE_OFFLINE='{value}' is not valid; use 1 (offline) or 0 (online)")


def _names() -> str:
    return ", ".join(REGISTRY)


def _fix_hint(name: str) -> str:
    if name not in REGISTRY:  # a model directory installed under a name of its own
        return f"`vstpipe models import {name} DIR` again after removing {model_dir(name)}"
    return f"`vstpipe models pull {name}` or `vstpipe models import {name} FILE...`"


# --- reading weight files -------------------------------------------------------------------


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a ``torch.save``'d state dict; ModelError if not."""
    return _load_state(path, str(path), safetensors=path.suffix == ".safetensors")


def _load_state(path: Path, label: str, *, safetensors: bool) -> dict[str, torch.Tensor]:
    """Like ``load_state_file`` but the format and the name in messages are given: staged temp
    files carry neither the final suffix nor a name the user would recognise."""
    if not path.is_file():
        raise ModelError(f"{label}: no such weight file")
    expected = "a .safetensors file or a torch.save'd state dict of tensors"
    if safetensors:
        _check_safetensors_sizes(path, label)
        try:
            state: object = _load_safetensors(path, device="cpu")
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"{label}: not a readable safetensors file ({_one_line(exc)}); "
                             f"expected {expected}") from None
    else:
        with path.open("rb") as head:
            magic = head.read(4)
        # torch.save writes a zip archive (or, before torch 1.6, a pickle): anything else is
        # refused before torch's parser sees it, which keeps the error message plain.
        if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
            raise ModelError(f"{label}: not a weights file (neither a torch.save archive nor "
                             f"safetensors); expected {expected}")
        if magic.startswith(b"PK"):
            _check_zip_sizes(path, label)
        else:
            _check_legacy_sizes(path, label)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "weights only" not in str(exc).lower():
                raise ModelError(f"{label}: damaged weights file ({_one_line(exc)}); "
                                 f"expected {expected}") from None
            raise ModelError(f"{label}: holds objects other than tensors, which are not "
                             f"unpickled for safety; expected {expected}") from None
        # torch reports a damaged checkpoint with whatever its parser tripped on
        except (RuntimeError, EOFError, IndexError, KeyError, ValueError, TypeError,
                AttributeError, OSError, struct.error) as exc:
            raise ModelError(f"{label}: damaged weights file ({type(exc).__name__}: "
                             f"{_one_line(exc)}); expected {expected}") from None
    state = _unwrap_checkpoint(state)
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ModelError(f"{label}: holds a {type(state).__name__} that is not a flat state "
                         f"dict; expected {expected}")
    _check_finite(state, label)
    return state


def _check_finite(state: Mapping[str, torch.Tensor], label: str) -> None:
    """NaN or Inf in a weight spreads to every pixel it touches: the render would come out
    black. A damaged file or a diverged training run, refused before anything runs."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelError(f"{label}: tensor '{key}' holds {bad} NaN/Inf values of "
                             f"{tensor.numel()}; the file is damaged or its training diverged; "
                             "expected finite weights")


def _damaged(label: str, why: str) -> ModelError:
    return ModelError(f"{label}: damaged weights file ({why}); refused before loading")


def _unreadable_safetensors(label: str, why: str) -> ModelError:
    return ModelError(f"{label}: not a readable safetensors file ({why}); refused before "
                      "loading")


def _check_zip_sizes(path: Path, label: str) -> None:
    """A torch.save archive's declared uncompressed sizes against its size on disk, before
    torch reads it: a few KB can declare gigabytes (a zip bomb)."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _damaged(label, f"unreadable zip archive: {_one_line(exc)}") from None
    if declared > _ZIP_INFLATION * size + _ZIP_SLACK:
        raise ModelError(f"{label}: a {size}-byte archive declaring {declared} bytes "
                         f"uncompressed (more than {_ZIP_INFLATION}x its size); refused unread "
                         "as a zip bomb or a damaged file")


def _check_safetensors_sizes(path: Path, label: str) -> None:
    """The header length and every tensor's declared dtype, shape and byte range against the
    file's size, before the library allocates anything."""
    size = path.stat().st_size
    with path.open("rb") as src:
        head = src.read(8)
        if len(head) < 8:
            raise _unreadable_safetensors(label, f"{size} bytes, shorter than its header")
        (length,) = struct.unpack("<Q", head)
        if length > min(size - 8, _SAFETENSORS_MAX_HEADER):
            raise _unreadable_safetensors(label, f"declares a {length}-byte header in a "
                                                 f"{size}-byte file")
        try:
            header = json.loads(src.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _unreadable_safetensors(label, f"header is not JSON: {_one_line(exc)}"
                                          ) from None
    if not isinstance(header, dict):
        raise _unreadable_safetensors(label, "header is not a JSON object")
    data = size - 8 - length
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            shape, (begin, end) = list(info["shape"]), info["data_offsets"]
            nbytes = math.prod(shape) * _SAFETENSORS_ITEMSIZE[info["dtype"]]
            ok = all(isinstance(n, int) and n >= 0 for n in (*shape, begin, end)) and \
                begin <= end <= data and end - begin == nbytes
        except (TypeError, KeyError, ValueError):
            raise _unreadable_safetensors(label, f"tensor '{key}' has no valid dtype, shape "
                                                 "and data_offsets") from None
        if not ok:
            raise _unreadable_safetensors(label, f"tensor '{key}' declares {info['dtype']} "
                                                 f"{shape} at bytes {begin}..{end} of {data}")


class _Inert:
    """Stands in for every class a legacy pickle names while it is probed: accepts any
    arguments, state and items, and runs nothing."""

    def __new__(cls, *args: object, **kwargs: object) -> Self:
        return super().__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def append(self, value: object) -> None:
        pass

    def extend(self, values: object) -> None:
        pass


# Legacy torch storage classes by name, with the bytes of one element.
_LEGACY_STORAGES: dict[str, type] = {
    f"{name}Storage": type(f"{name}Storage", (_Inert,), {"itemsize": itemsize})
    for name, itemsize in (("Double", 8), ("Float", 4), ("Half", 2), ("BFloat16", 2),
                           ("Long", 8), ("Int", 4), ("Short", 2), ("Char", 1), ("Byte", 1),
                           ("Bool", 1), ("ComplexFloat", 8), ("ComplexDouble", 16))}


class _StorageProbe(pickle.Unpickler):
    """Reads a legacy (pre-zip) torch.save pickle with every global replaced by ``_Inert``,
    only to add up the storage sizes it declares: torch allocates each one before reading its
    bytes, so a small file could otherwise ask for terabytes."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.declared: dict[object, int] = {}  # storage key -> bytes

    def find_class(self, module: str, name: str) -> type:
        return _LEGACY_STORAGES.get(name, _Inert) if module == "torch" else _Inert

    def persistent_load(self, pid: Any) -> _Inert:
        # ("storage", storage class, key, location, number of elements, view)
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            numel = pid[4]
            if not isinstance(numel, int) or numel < 0:
                raise pickle.UnpicklingError(f"storage with {numel!r} elements")
            self.declared[pid[2]] = numel * getattr(pid[1], "itemsize", 8)
        return _Inert()


def _check_legacy_sizes(path: Path, label: str) -> None:
    """A legacy torch.save file (magic, protocol, system info, then the pickled object, then
    the raw storages): its declared storage bytes must fit in what follows the pickle."""
    size = path.stat().st_size
    with path.open("rb") as src:
        probe = _StorageProbe(src)
        try:
            for _ in range(4):  # magic number, protocol version, system info, the object
                probe.load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, struct.error, MemoryError, RecursionError) as exc:
            raise _damaged(label, f"unreadable pickle: {_one_line(exc)}") from None
        rest = size - src.tell()
    declared = sum(probe.declared.values())
    if declared > rest:
        raise ModelError(f"{label}: declares {declared} bytes of tensors but only {rest} bytes "
                         "follow; refused unread (damaged, or built to exhaust memory)")


def _unwrap_checkpoint(state: object) -> object:
    """A training checkpoint {"state_dict": {...}, "epoch": ...} -> its state dict, without the
    "module." prefix nn.DataParallel adds to every key (UVC's tracker is saved that way)."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
        if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
            state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _one_line(exc: BaseException | object) -> str:
    """The first sentence of an exception's text: torch and urllib reasons run to paragraphs."""
    if isinstance(exc, OSError) and exc.strerror:  # "Connection refused", not "[Errno 111] ..."
        return exc.strerror
    lines = str(exc).strip().splitlines()
    first = lines[0].split(". ")[0] if lines else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def _fits(arch: str, role: str, state: dict[str, torch.Tensor]) -> bool:
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    return shapes == models.published_layout(arch, role)


def _role_of(arch: str, state: dict[str, torch.Tensor], path: Path) -> str:
    """The role whose published layout ``state`` has; LayoutError naming the first mismatch
    against the role the file name claims (else the closest layout) when none fits."""
    roles = models.ARCHS[arch].files
    for role in roles:
        if _fits(arch, role, state):
            models.check_layout(arch, role, state, str(path))  # the dtypes too
            return role
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    named = [r for r, fname in roles.items() if Path(fname).stem == path.stem]
    role = named[0] if named else max(
        roles, key=lambda r: len(shapes.items() & models.published_layout(arch, r).items()))
    models.check_layout(arch, role, state, str(path))  # raises: no role fitted
    return role


# --- manifest -------------------------------------------------------------------------------


def _read_manifest(folder: Path, ms: ModelSpec) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        return {"model": ms.name, "arch": ms.arch, "files": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable manifest ({_one_line(exc)}); delete it and run "
                         f"{_fix_hint(ms.name)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise ModelError(f"{path}: not a vstpipe manifest (no 'files' object); delete it and "
                         f"run {_fix_hint(ms.name)}")
    return data


def _record(folder: Path, ms: ModelSpec, entries: dict[str, dict[str, Any]]) -> None:
    """Merge per-file entries into the manifest and write it atomically."""
    manifest = _read_manifest(folder, ms)
    manifest.update(model=ms.name, arch=ms.arch)
    manifest["files"].update(entries)
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    with _staging(folder, MANIFEST) as tmp:
        _write_synced(tmp, text.encode("utf-8"))
        os.replace(tmp, folder / MANIFEST)


def _entry(role: str, installed: Path, sha256: str, size: int, source: str,
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


def _check_cache(folder: Path, ms: ModelSpec, names: Sequence[str]) -> None:
    """Every one of ``names`` in ``folder`` as its manifest recorded it: what render checks,
    so a truncated or overwritten cache file is refused before it is loaded."""
    manifest = _read_manifest(folder, ms)
    fix = f"check with `vstpipe models verify`, then restore it with {_fix_hint(ms.name)}"
    restamped = {}
    for name in names:
        entry = _check_unchanged(folder / name, manifest["files"].get(name), fix)
        if entry is not None:
            restamped[name] = entry
    if restamped:
        try:
            _record(folder, ms, restamped)
        except OSError:  # a read-only cache: the files matched, the next load re-hashes them
            pass


# --- files on disk --------------------------------------------------------------------------


@contextlib.contextmanager
def _staging(folder: Path, final_name: str) -> Iterator[Path]:
    """A hidden temp file next to ``final_name``; removed on exit unless ``os.replace`` moved it,
    so any exception (KeyboardInterrupt included) leaves nothing behind."""
    # The name is cut so that a long source name cannot push the temp name past NAME_MAX.
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{final_name[:64]}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _copy_hashing(src: Path, dst: Path) -> tuple[str, int]:
    """Copy and hash in one pass, so the hash is of the bytes that will be installed."""
    digest, size = hashlib.sha256(), 0
    with src.open("rb") as inp, dst.open("wb") as out:
        while chunk := inp.read(_CHUNK):
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
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_published(ms: ModelSpec, f: FileSpec, sha256: str, size: int, label: str,
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


def _installed_ok(folder: Path, f: FileSpec, manifest: dict[str, Any]) -> bool:
    """True when the cached file is the one the manifest recorded (and the published one)."""
    path, entry = folder / f.name, manifest["files"].get(f.name)
    if not path.is_file() or not isinstance(entry, dict):
        return False
    sha256, _ = _sha256_file(path)
    return sha256 == entry.get("sha256") and f.sha256 in (None, sha256)


# --- status ---------------------------------------------------------------------------------


def status(name: str) -> ModelStatus:
    ms = spec(name)
    paths = [model_dir(name) / f.name for f in ms.files]
    present = [p for p in paths if p.is_file()]
    return ModelStatus(ms.name, ms.arch, installed=len(present) == len(paths),
                       size=sum(p.stat().st_size for p in present), licence=ms.licence)


def list_models() -> list[ModelStatus]:
    return [status(name) for name in REGISTRY]


# --- pull -----------------------------------------------------------------------------------


def pull(name: str, *, on_progress: ProgressFn | None = None, model: ModelSpec | None = None,
         timeout: float = 30) -> Path:
    """Download the files of ``name`` that are missing or changed; returns the model dir.

    ``model`` replaces the registry entry (tests point it at a local server); its name must be
    ``name``. ``timeout`` is per connect and per read, in seconds.
    """
    ms = _spec_for(name, model)
    with _model_folder(ms.name) as folder:
        manifest = _read_manifest(folder, ms)
        for f in ms.files:
            if not _installed_ok(folder, f, manifest):
                sha256, size = _download(ms, f, folder, on_progress, timeout)
                entry = _entry(f.role, folder / f.name, sha256, size, f.url)
                _record(folder, ms, {f.name: entry})
    return folder


@contextlib.contextmanager
def _model_folder(name: str) -> Iterator[Path]:
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


def _spec_for(name: str, model: ModelSpec | None) -> ModelSpec:
    if model is None:
        return spec(name)
    if model.name != name:
        raise ValueError(f"model spec '{model.name}' passed for '{name}'")
    return model


def _download(ms: ModelSpec, f: FileSpec, folder: Path, on_progress: ProgressFn | None,
              timeout: float) -> tuple[str, int]:
    """Stream ``f.url`` into a temp file, check it, and move it onto ``folder / f.name``."""
    host = urlsplit(f.url).hostname or f.url

    def failed(reason: str) -> DownloadError:
        return DownloadError(f"cannot download {ms.name} {f.name} from {host}: {reason}; check "
                             f"the network, or copy the files in with "
                             f"`vstpipe models import {ms.name} FILE...`")

    with _staging(folder, f.name) as tmp:
        try:
            request = urllib.request.Request(f.url, headers={"User-Agent": f"vstpipe/{__version__}"})
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise failed(f"HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:  # DNS failure, refused, unreachable, TLS
            raise failed(_one_line(exc.reason)) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:  # timeouts, bad replies
            raise failed(_one_line(exc)) from None
        with response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and f.size is not None and total != f.size:
                raise ChecksumError(f"{f.url}: the server offers {total} bytes, the published "
                                    f"{ms.name} {f.role} has {f.size}; not the published file (replaced "
                                    f"upstream?); import a verified copy with "
                                    f"`vstpipe models import {ms.name} FILE...`")
            digest, done = hashlib.sha256(), 0
            with tmp.open("wb") as out:
                try:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(f.name, done, total if total is not None else f.size)
                except (OSError, http.client.HTTPException) as exc:
                    raise failed(f"connection lost after {done} bytes ({_one_line(exc)})"
                                 ) from None
                out.flush()
                os.fsync(out.fileno())
        # http.client returns a short body without raising when the peer closes early, so the
        # byte count is the only reliable sign of a dropped connection.
        if total is not None and done != total:
            raise failed(f"connection dropped after {done} of {total} bytes")
        sha256 = digest.hexdigest()
        _check_published(ms, f, sha256, done, f.url,
                         "not the published file (download cut short or replaced upstream)", tmp)
        state = _load_state(tmp, f.url, safetensors=f.name.endswith(".safetensors"))
        models.check_layout(ms.arch, f.role, state, f.url)
        os.replace(tmp, folder / f.name)
    return sha256, done


# --- import ---------------------------------------------------------------------------------


def import_files(name: str, files: Sequence[Path], *, model: ModelSpec | None = None,
                 unverified: bool = False) -> Path:
    """Copy local copies of the published files in; each file's role is found by its layout.

    All given files are checked before any is installed. ``model`` replaces the registry entry
    (as in ``pull``). ``unverified`` accepts files whose sha256 differs from the published one
    (a re-saved copy, or weights for testing); the manifest records them as not published.
    """
    ms = _spec_for(name, model)
    published = ", ".join(f.name for f in ms.files)
    if not files:
        raise ModelError(f"no files given to import for {ms.name}; expected {published}")
    for src in files:
        if not src.is_file():
            raise ModelError(f"{src}: no such file; expected the {ms.name} files {published}")
    by_role = {f.role: f for f in ms.files}
    with _model_folder(ms.name) as folder, contextlib.ExitStack() as stack:
        # role -> (source, temp, sha256, size, is the published file)
        staged: dict[str, tuple[Path, Path, str, int, bool]] = {}
        for src in files:
            tmp = stack.enter_context(_staging(folder, src.name))
            sha256, size = _copy_hashing(src, tmp)
            state = _load_state(tmp, str(src), safetensors=src.suffix == ".safetensors")
            role = _role_of(ms.arch, state, src)
            f = by_role[role]
            if role in staged:
                raise ModelError(f"{src} and {staged[role][0]} are both the {ms.name} {role}; "
                                 f"give one file per role ({published})")
            if (src.suffix == ".safetensors") != f.name.endswith(".safetensors"):
                raise ModelError(f"{src}: the cache holds the published {f.name}, not a "
                                 f"converted file; use `--model DIR` for converted weights")
            try:
                _check_published(ms, f, sha256, size, str(src),
                                 "not the published file; use `--model DIR` for other weights, "
                                 "or `vstpipe models import --unverified` to install it anyway",
                                 tmp)
                is_published = True
            except ChecksumError:
                if not unverified:
                    raise
                is_published = False
            staged[role] = (src, tmp, sha256, size, is_published)
        for role, (_, tmp, *_) in staged.items():
            os.replace(tmp, folder / by_role[role].name)
        _record(folder, ms, {by_role[role].name: _entry(role, folder / by_role[role].name,
                                                        sha256, size, str(src.resolve()),
                                                        published=ok)
                             for role, (src, _, sha256, size, ok) in staged.items()})
    return folder


def import_model_dir(name: str, source: Path) -> Path:
    """Install a model directory (``model.json`` + its files, e.g. a ``vstpipe finetune`` run)
    under a new ``name``, so ``--model NAME`` finds it. Checked (layouts included) before
    anything is copied; installed atomically; an existing name is refused."""
    if name in REGISTRY:
        raise ModelError(f"'{name}' is a registry model; give your model another name")
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", name):
        raise ModelError(f"model name '{name}' is not usable; use letters, digits, '-', '_', '.'")
    target = model_dir(name)
    if target.exists():
        raise ModelError(f"model '{name}' is already installed in {target}; choose another "
                         "name or remove that folder")
    resolved = _resolve_model_json(source, offline=True, on_progress=None)
    load(resolved)  # every file readable and in its published layout
    spec_text = (source / MODEL_JSON).read_text(encoding="utf-8")
    own = json.loads(spec_text).get("files", {})
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        entries = {}
        for role, fname in own.items():
            sha256, size = _copy_hashing(source / fname, staging / fname)
            entries[fname] = _entry(role, staging / fname, sha256, size,
                                    str((source / fname).resolve()))
        (staging / MODEL_JSON).write_text(spec_text, encoding="utf-8")
        manifest = {"model": name, "arch": resolved.arch, "files": entries}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                                        encoding="utf-8")
        os.replace(staging, target)  # the files keep their mtimes, so the stamps hold
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# --- verify ---------------------------------------------------------------------------------


def verify(name: str | None = None) -> list[VerifyResult]:
    """Re-hash cached files against the manifest and the registry; one result per file.

    With no ``name``, every model that has anything in the cache is checked.
    """
    if name is not None:
        specs = [spec(name)]
    else:
        specs = [ms for ms in REGISTRY.values()
                 if (model_dir(ms.name) / MANIFEST).is_file() or status(ms.name).size]
    return [_verify_file(ms, f, _read_manifest(model_dir(ms.name), ms))
            for ms in specs for f in ms.files]


def _verify_file(ms: ModelSpec, f: FileSpec, manifest: dict[str, Any]) -> VerifyResult:
    path = model_dir(ms.name) / f.name
    if not path.is_file():
        return VerifyResult(ms.name, f.name, False, f"missing; run {_fix_hint(ms.name)}")
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
                            f"{'; '.join(problems)}; run {_fix_hint(ms.name)} to restore it")
    if unverified:
        return VerifyResult(ms.name, f.name, True, "ok, matches manifest.json; imported with "
                            "--unverified: NOT the published file")
    matched = "the published sha256" if f.sha256 is not None else \
        "manifest.json (no published sha256 to compare)"
    return VerifyResult(ms.name, f.name, True, f"ok, matches {matched}")


# --- resolve and load -----------------------------------------------------------------------


def resolve(model: str, *, offline: bool, on_progress: ProgressFn | None = None
            ) -> ResolvedModel:
    """A registry name (pulled first unless ``offline``) or a directory of weight files.

    A registry name wins over a directory of the same name; write ``./NAME`` for the directory.
    """
    if model in REGISTRY:
        ms = REGISTRY[model]
        if not status(model).installed:
            if offline:
                raise ModelError(f"model '{model}' is not installed and offline mode is on; "
                                 f"run {_fix_hint(model)}")
            pull(model, on_progress=on_progress)
        folder = model_dir(model)
        _check_cache(folder, ms, [f.name for f in ms.files])
        return ResolvedModel(model, ms.arch, {f.role: folder / f.name for f in ms.files})
    installed = model_dir(model)
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*", model) and (installed / MODEL_JSON).is_file() \
            and not Path(model).is_dir():
        resolved = _resolve_model_json(installed, offline=offline, on_progress=on_progress)
        if (installed / MANIFEST).is_file():  # installed by a vstpipe that records one
            own = ModelSpec(model, resolved.arch, (), "", "", "")
            _check_cache(installed, own, [p.name for p in resolved.paths.values()
                                          if p.parent == installed])
        return resolved
    folder = Path(model).expanduser()
    if folder.is_dir():
        if (folder / MODEL_JSON).is_file():
            return _resolve_model_json(folder, offline=offline, on_progress=on_progress)
        return _resolve_published_dir(folder)
    raise ModelError(f"unknown model '{model}'; choose from {_names()}, or give a directory "
                     f"holding the published files of one of them")


def _published_in(folder: Path, arch: str) -> dict[str, Path]:
    """role -> file for the published files of ``arch`` in ``folder`` (or their .safetensors)."""
    found = {}
    for role, fname in models.ARCHS[arch].files.items():
        for candidate in (folder / fname, folder / f"{Path(fname).stem}.safetensors"):
            if candidate.is_file():
                found[role] = candidate
                break
    return found


def _resolve_published_dir(folder: Path) -> ResolvedModel:
    found = {arch: _published_in(folder, arch) for arch in models.ARCHS}
    complete = [a for a, paths in found.items() if len(paths) == len(models.ARCHS[a].files)]
    if len(complete) == 1:
        return ResolvedModel(str(folder), complete[0], found[complete[0]])
    if complete:
        raise ModelError(f"{folder}: holds the files of {' and '.join(complete)}; add a "
                         f"{MODEL_JSON} naming the arch")
    expected = ", ".join(f"{' + '.join(a.files.values())} ({a.name})"
                         for a in models.ARCHS.values())
    partial = [a for a, paths in found.items() if paths]
    if partial:
        arch = models.ARCHS[partial[0]]
        missing = [fname for role, fname in arch.files.items() if role not in found[arch.name]]
        raise ModelError(f"{folder}: {arch.name} model lacks {', '.join(missing)}; expected "
                         f"{' + '.join(arch.files.values())} or a {MODEL_JSON}")
    raise ModelError(f"{folder}: no model files; expected {expected}, or a {MODEL_JSON} "
                     '{"arch": ..., "files": {"encoder": ..., "decoder": ...}}')


def _resolve_model_json(folder: Path, *, offline: bool, on_progress: ProgressFn | None
                        ) -> ResolvedModel:
    """``model.json``: {"arch", "files": {role: file}, "<role>_from": registry name, ...}."""
    path = folder / MODEL_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable ({_one_line(exc)}); expected "
                         '{"arch": ..., "files": {"encoder": ..., "decoder": ...}}') from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object with arch and files")
    arch_name = data.get("arch")
    style_archs = [a.name for a in models.ARCHS.values() if a.kind == "style"]
    if arch_name not in style_archs:
        raise ModelError(f"{path}: arch {json.dumps(arch_name)} is not known; choose from "
                         f"{', '.join(style_archs)}")
    roles = list(models.ARCHS[arch_name].files)
    allowed = ["arch", "files", "description", "training", *(f"{r}_from" for r in roles)]
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise ModelError(f"{path}: unknown key '{unknown[0]}'; expected {', '.join(allowed)}")
    files = data.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ModelError(f"{path}: files must map roles ({', '.join(roles)}) to file names")
    bad_role = [r for r in files if r not in roles]
    if bad_role:
        raise ModelError(f"{path}: files has unknown role '{bad_role[0]}'; expected "
                         f"{', '.join(roles)}")
    paths: dict[str, Path] = {}
    for role in roles:
        source = data.get(f"{role}_from")
        if role in files and source is not None:
            raise ModelError(f"{path}: gives both files.{role} and {role}_from; keep one")
        if role in files:
            paths[role] = folder / files[role]
            if not paths[role].is_file():
                raise ModelError(f"{path}: files.{role} names {paths[role]}, which does not "
                                 "exist")
        elif source is not None:
            same_arch = [n for n, ms in REGISTRY.items() if ms.arch == arch_name]
            if source not in same_arch:
                raise ModelError(f"{path}: {role}_from {json.dumps(source)} is not a registry "
                                 f"model of arch {arch_name}; choose from {', '.join(same_arch)}")
            paths[role] = resolve(source, offline=offline, on_progress=on_progress).paths[role]
        else:
            raise ModelError(f"{path}: no {role}; give files.{role} or {role}_from")
    return ResolvedModel(str(folder), arch_name, paths)


def load_states(resolved: ResolvedModel) -> dict[str, dict[str, torch.Tensor]]:
    """role -> state dict of every file of ``resolved``, each layout-checked."""
    states = {}
    for role, path in resolved.paths.items():
        state = load_state_file(path)
        models.check_layout(resolved.arch, role, state, str(path))
        states[role] = state
    return states


def load(resolved: ResolvedModel) -> models.StyleNet:
    """Read and layout-check every file of ``resolved`` and build its StyleNet (eval, no grad)."""
    if models.ARCHS[resolved.arch].kind != "style":
        style = ", ".join(n for n, ms in REGISTRY.items()
                          if models.ARCHS[ms.arch].kind == "style")
        raise ModelError(f"model '{resolved.name}' is an affinity estimator for `vstpipe "
                         f"finetune --affinity uvc`, not a stylization model; use {style}")
    return models.build(resolved.arch, load_states(resolved), resolved.name)

