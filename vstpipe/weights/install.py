"""Importing local files into the cache: the published files of a registry model (each file's
role found by its layout), or a whole model directory under a name of its own.

Everything is checked on staged temp copies (store.staging, store.staging_dir) before anything
reaches its final name, so a refused or interrupted import leaves the cache as it was.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import ChecksumError, ModelError
from ..model import FAMILIES, check_layout, published_layout
from . import modeljson, resolver, store
from .registry import REGISTRY, ModelSpec, spec_for
from .safety import load_state


def import_files(name: str, files: Sequence[Path], *, model: ModelSpec | None = None,
                 unverified: bool = False) -> Path:
    """Copy local copies of the published files in; each file's role is found by its layout.

    All given files are checked before any is installed. ``model`` replaces the registry entry
    (as in ``pull``). ``unverified`` accepts files whose sha256 differs from the published one
    (a re-saved copy, or weights for testing); the manifest records them as not published.
    """
    ms = spec_for(name, model)
    if ms.embedded:
        raise ModelError(f"{ms.name} ships inside vstpipe and cannot be replaced; import the "
                         f"files under a name of your own with `vstpipe models import NAME DIR`")
    published = ", ".join(f.name for f in ms.files)
    if not files:
        raise ModelError(f"no files given to import for {ms.name}; expected {published}")
    for src in files:
        if not src.is_file():
            raise ModelError(f"{src}: no such file; expected the {ms.name} files {published}")
    by_role = {f.role: f for f in ms.files}
    with store.model_folder(ms.name) as folder, contextlib.ExitStack() as stack:
        # role -> (source, temp, sha256, size, is the published file)
        staged: dict[str, tuple[Path, Path, str, int, bool]] = {}
        for src in files:
            tmp = stack.enter_context(store.staging(folder, src.name))
            sha256, size = store.copy_hashing(src, tmp)
            state = load_state(tmp, str(src), safetensors=src.suffix == ".safetensors")
            role = _role_of(ms.arch, state, src)
            f = by_role[role]
            if role in staged:
                raise ModelError(f"{src} and {staged[role][0]} are both the {ms.name} {role}; "
                                 f"give one file per role ({published})")
            if (src.suffix == ".safetensors") != f.name.endswith(".safetensors"):
                raise ModelError(f"{src}: the cache holds the published {f.name}, not a "
                                 f"converted file; use `--model DIR` for converted weights")
            try:
                store.check_published(ms, f, sha256, size, str(src),
                                      "not the published file; use `--model DIR` for other "
                                      "weights, or `vstpipe models import --unverified` to "
                                      "install it anyway", tmp)
                is_published = True
            except ChecksumError:
                if not unverified:
                    raise
                is_published = False
            staged[role] = (src, tmp, sha256, size, is_published)
        for role, (_, tmp, *_) in staged.items():
            store.claim(tmp, folder / by_role[role].name)
        store.record(folder, ms, {
            by_role[role].name: store.manifest_entry(role, folder / by_role[role].name, sha256,
                                                     size, str(src.resolve()), published=ok)
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
    target = store.model_dir(name)
    if target.exists():
        raise ModelError(f"model '{name}' is already installed in {target}; choose another "
                         "name or remove that folder")
    resolved, spec = resolver.read_model_dir(source, offline=True, on_progress=None)
    resolver.load(resolved)  # every file readable and in its published layout
    with store.staging_dir(target) as staging:
        entries = {}
        for role, fname in spec.files.items():
            sha256, size = store.copy_hashing(source / fname, staging / fname)
            entries[fname] = store.manifest_entry(role, staging / fname, sha256, size,
                                                  str((source / fname).resolve()))
        modeljson.write(staging, spec.text)
        store.record(staging, ModelSpec(name, resolved.arch, (), "", "", ""), entries)
    return target


def _fits(arch: str, role: str, state: dict[str, torch.Tensor]) -> bool:
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    return shapes == published_layout(arch, role)


def _role_of(arch: str, state: dict[str, torch.Tensor], path: Path) -> str:
    """The role whose published layout ``state`` has; LayoutError naming the first mismatch
    against the role the file name claims (else the closest layout) when none fits."""
    roles = FAMILIES[arch].files
    for role in roles:
        if _fits(arch, role, state):
            check_layout(arch, role, state, str(path))  # the dtypes too
            return role
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    named = [r for r, fname in roles.items() if Path(fname).stem == path.stem]
    role = named[0] if named else max(
        roles, key=lambda r: len(shapes.items() & published_layout(arch, r).items()))
    check_layout(arch, role, state, str(path))  # raises: no role fitted
    return role
