"""Reading weight files without trusting them.

Weights are read with safetensors or ``torch.load(weights_only=True)``; nothing else is
unpickled. Before either parser runs, what the file declares (zip entry sizes, legacy pickle
storages, safetensors header) is checked against its size, so a small file cannot ask for
gigabytes; after it, every tensor must be finite.
"""

from __future__ import annotations

import json
import math
import pickle
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as _load_safetensors

from ..errors import ModelError

# A torch.save archive stores its tensors uncompressed, so what it declares it holds is about
# its own size; twice that (plus room for small compressed records) is refused as a zip bomb.
_ZIP_INFLATION = 2
_ZIP_SLACK = 1 << 20
_SAFETENSORS_MAX_HEADER = 100 << 20  # the safetensors library's own limit on its JSON header
_SAFETENSORS_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2,
                         "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8,
                         "U64": 8, "F64": 8}



def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a ``torch.save``'d state dict; ModelError if not."""
    return load_state(path, str(path), safetensors=path.suffix == ".safetensors")


def load_state(path: Path, label: str, *, safetensors: bool) -> dict[str, torch.Tensor]:
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
            raise ModelError(f"{label}: not a readable safetensors file ({one_line(exc)}); "
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
                raise ModelError(f"{label}: damaged weights file ({one_line(exc)}); "
                                 f"expected {expected}") from None
            raise ModelError(f"{label}: holds objects other than tensors, which are not "
                             f"unpickled for safety; expected {expected}") from None
        # torch reports a damaged checkpoint with whatever its parser tripped on
        except (RuntimeError, EOFError, IndexError, KeyError, ValueError, TypeError,
                AttributeError, OSError, struct.error) as exc:
            raise ModelError(f"{label}: damaged weights file ({type(exc).__name__}: "
                             f"{one_line(exc)}); expected {expected}") from None
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
        raise _damaged(label, f"unreadable zip archive: {one_line(exc)}") from None
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
            raise _unreadable_safetensors(label, f"header is not JSON: {one_line(exc)}"
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
            raise _damaged(label, f"unreadable pickle: {one_line(exc)}") from None
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


def one_line(exc: BaseException | object) -> str:
    """The first sentence of an exception's text: torch and urllib reasons run to paragraphs."""
    if isinstance(exc, OSError) and exc.strerror:  # "Connection refused", not "[Errno 111] ..."
        return exc.strerror
    lines = str(exc).strip().splitlines()
    first = lines[0].split(". ")[0] if lines else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."
