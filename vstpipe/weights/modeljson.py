"""``model.json``: a model directory's description of itself, read and written here alone.

``{"arch": family, "files": {role: file in the folder}, "<role>_from": registry model whose file
it uses, "description": text, "training": the run that made it}``. ``vstpipe finetune`` writes
one beside its decoder; ``--model DIR`` and ``vstpipe models import NAME DIR`` read it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..model import FAMILIES
from . import store
from .registry import REGISTRY
from .safety import one_line

MODEL_JSON = "model.json"
SHAPE = '{"arch": ..., "files": {"encoder": ..., "decoder": ...}}'  # the gist, for messages

Borrow = Callable[[str, str], Path]  # (registry model, role) -> that model's file for the role


@dataclass(frozen=True)
class ModelJson:
    arch: str  # the model family
    paths: dict[str, Path]  # role -> weight file, the folder's own or a registry model's
    files: dict[str, str]  # role -> file name in the folder, for the folder's own files
    sources: dict[str, str]  # role -> registry model whose file it uses ("<role>_from")
    text: str  # the file as read, so that an install copies it unchanged


def read(folder: Path, borrow: Borrow) -> ModelJson:
    """``folder / model.json``, checked key by key; ModelError naming the first problem.

    ``borrow`` finds a registry model's file for each ``<role>_from``, in role order as the
    checks reach it (it may download the model).
    """
    path = folder / MODEL_JSON
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable ({one_line(exc)}); expected {SHAPE}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object with arch and files")
    arch_name = data.get("arch")
    style_archs = [a.name for a in FAMILIES.values() if a.kind == "style"]
    if arch_name not in style_archs:
        raise ModelError(f"{path}: arch {json.dumps(arch_name)} is not known; choose from "
                         f"{', '.join(style_archs)}")
    roles = list(FAMILIES[arch_name].files)
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
    sources: dict[str, str] = {}
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
            # A registry model of this family, or of one whose file for the role has the same
            # layout (lite-mobilenet and lite-skip share their encoder file).
            if not _fits(source, arch_name, role):
                fits = [n for n in REGISTRY if _fits(n, arch_name, role)]
                raise ModelError(f"{path}: {role}_from {json.dumps(source)} is not a registry "
                                 f"model whose {role} fits arch {arch_name}; choose from "
                                 f"{', '.join(fits)}")
            paths[role] = borrow(source, role)
            sources[role] = source
        else:
            raise ModelError(f"{path}: no {role}; give files.{role} or {role}_from")
    return ModelJson(arch_name, paths, files, sources, text)


def _fits(name: str, arch: str, role: str) -> bool:
    """Whether registry model ``name``'s file for ``role`` loads into family ``arch``."""
    spec = REGISTRY.get(name)
    if spec is None:
        return False
    if spec.arch == arch:
        return True
    other = FAMILIES[spec.arch]
    return role in other.files and other.kind == "style" and \
        other.published_layout(role) == FAMILIES[arch].published_layout(role)


def dump(*, arch: str, files: Mapping[str, str], sources: Mapping[str, str], description: str,
         training: Mapping[str, Any]) -> str:
    """The text of a model.json: ``files`` the folder's own, ``sources`` registry models whose
    files it uses (role -> name), ``training`` the record of the run that made it."""
    spec = {"arch": arch, **{f"{role}_from": name for role, name in sources.items()},
            "files": dict(files), "description": description, "training": dict(training)}
    return json.dumps(spec, indent=2) + "\n"


def write(folder: Path, text: str) -> None:
    """``folder / model.json`` replaced whole by ``text`` (a ``dump``, or a ``read``'s text)."""
    store.replace_file(folder, MODEL_JSON, text.encode("utf-8"))
