"""Resolving a ``--model`` value into weight files, and loading them into a network.

A value is a registry name (pulled first unless offline), the name a model directory was
installed under, or a directory: one with a ``model.json``, or one holding the published files
of exactly one family.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..errors import DownloadError, ModelError
from ..model import FAMILIES, StyleNet, build, check_layout
from . import fetch, modeljson, store
from .fetch import ProgressFn
from .modeljson import MODEL_JSON, ModelJson
from .registry import AUTO, EMBEDDED_MODEL, FULL_MODEL, REGISTRY, ModelSpec, names
from .safety import load_state_file, one_line


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # registry name, or the directory it came from
    arch: str
    paths: dict[str, Path]  # role -> weight file
    # role -> the registry model whose file it is: every role of a registry model, the
    # "<role>_from" roles of a model.json, none for a directory of published files
    sources: dict[str, str] = field(default_factory=dict)
    notice: str | None = None  # what the user should know, e.g. why `auto` chose this model


def resolve(model: str, *, offline: bool, on_progress: ProgressFn | None = None
            ) -> ResolvedModel:
    """A registry name (pulled first unless ``offline``), ``auto``, or a directory of weight
    files.

    ``auto`` is FULL_MODEL when it is installed or can be downloaded, else the embedded model,
    with a notice saying why and how to get the full one; a model named explicitly never falls
    back. A registry name wins over a directory of the same name; write ``./NAME`` for the
    directory.
    """
    if model == AUTO:
        return _auto(offline, on_progress)
    if model in REGISTRY:
        ms = REGISTRY[model]
        if ms.embedded:
            return ResolvedModel(model, ms.arch, store.check_embedded(ms),
                                 {f.role: model for f in ms.files})
        if not store.status(model).installed:
            if offline:
                raise ModelError(f"model '{model}' is not installed and offline mode is on; "
                                 f"run {store.fix_hint(model)}")
            fetch.pull(model, on_progress=on_progress)
        folder = store.model_dir(model)
        store.check_cache(folder, ms, [f.name for f in ms.files])
        return ResolvedModel(model, ms.arch, {f.role: folder / f.name for f in ms.files},
                             {f.role: model for f in ms.files})
    installed = store.model_dir(model)
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*", model) and (installed / MODEL_JSON).is_file() \
            and not Path(model).is_dir():
        resolved, _ = read_model_dir(installed, offline=offline, on_progress=on_progress)
        if (installed / store.MANIFEST).is_file():  # installed by a vstpipe that records one
            own = ModelSpec(model, resolved.arch, (), "", "", "")
            store.check_cache(installed, own, [p.name for p in resolved.paths.values()
                                               if p.parent == installed])
        return resolved
    folder = Path(model).expanduser()
    if folder.is_dir():
        if (folder / MODEL_JSON).is_file():
            return read_model_dir(folder, offline=offline, on_progress=on_progress)[0]
        return _resolve_published_dir(folder)
    raise ModelError(f"unknown model '{model}'; choose from {names()}, or give a directory "
                     f"holding the published files of one of them")


def _auto(offline: bool, on_progress: ProgressFn | None) -> ResolvedModel:
    full = REGISTRY[FULL_MODEL]
    if store.status(FULL_MODEL).installed:
        return resolve(FULL_MODEL, offline=offline)
    why = "offline mode is on"
    if not offline:
        try:
            return resolve(FULL_MODEL, offline=False, on_progress=on_progress)
        except DownloadError as exc:
            why = f"it could not be downloaded ({one_line(exc)})"
    embedded = resolve(EMBEDDED_MODEL, offline=True)
    size = sum(f.size or 0 for f in full.files) // 1_000_000
    return replace(embedded, notice=(
        f"using the embedded {EMBEDDED_MODEL} model: {FULL_MODEL} is not installed and {why}; "
        f"for the full model run `vstpipe models pull {FULL_MODEL}` ({size}+ MB) or `vstpipe "
        f"models import {FULL_MODEL} FILE...`, or name another model"))


def read_model_dir(folder: Path, *, offline: bool, on_progress: ProgressFn | None
                   ) -> tuple[ResolvedModel, ModelJson]:
    """A directory with a ``model.json``, the registry files it uses resolved like ``--model``
    (pulled unless ``offline``); also the model.json as read."""

    def borrow(source: str, role: str) -> Path:
        return resolve(source, offline=offline, on_progress=on_progress).paths[role]

    spec = modeljson.read(folder, borrow)
    return ResolvedModel(str(folder), spec.arch, spec.paths, spec.sources), spec


def _published_in(folder: Path, arch: str) -> dict[str, Path]:
    """role -> file for the published files of ``arch`` in ``folder`` (or their .safetensors)."""
    found = {}
    for role, fname in FAMILIES[arch].files.items():
        for candidate in (folder / fname, folder / f"{Path(fname).stem}.safetensors"):
            if candidate.is_file():
                found[role] = candidate
                break
    return found


def _resolve_published_dir(folder: Path) -> ResolvedModel:
    found = {arch: _published_in(folder, arch) for arch in FAMILIES}
    complete = [a for a, paths in found.items() if len(paths) == len(FAMILIES[a].files)]
    if len(complete) == 1:
        return ResolvedModel(str(folder), complete[0], found[complete[0]])
    if complete:
        raise ModelError(f"{folder}: holds the files of {' and '.join(complete)}; add a "
                         f"{MODEL_JSON} naming the arch")
    expected = ", ".join(f"{' + '.join(a.files.values())} ({a.name})"
                         for a in FAMILIES.values())
    partial = [a for a, paths in found.items() if paths]
    if partial:
        arch = FAMILIES[partial[0]]
        missing = [fname for role, fname in arch.files.items() if role not in found[arch.name]]
        raise ModelError(f"{folder}: {arch.name} model lacks {', '.join(missing)}; expected "
                         f"{' + '.join(arch.files.values())} or a {MODEL_JSON}")
    raise ModelError(f"{folder}: no model files; expected {expected}, or a {MODEL_JSON} "
                     f"{modeljson.SHAPE}")


def load_states(resolved: ResolvedModel) -> dict[str, dict[str, torch.Tensor]]:
    """role -> state dict of every file of ``resolved``, each layout-checked."""
    states = {}
    for role, path in resolved.paths.items():
        state = load_state_file(path)
        check_layout(resolved.arch, role, state, str(path))
        states[role] = state
    return states


def load(resolved: ResolvedModel) -> StyleNet:
    """Read and layout-check every file of ``resolved`` and build its StyleNet (eval, no grad)."""
    if FAMILIES[resolved.arch].kind != "style":
        style = ", ".join(n for n, ms in REGISTRY.items() if FAMILIES[ms.arch].kind == "style")
        raise ModelError(f"model '{resolved.name}' is an affinity estimator for `vstpipe "
                         f"finetune --affinity uvc`, not a stylization model; use {style}")
    return build(resolved.arch, load_states(resolved), resolved.name)
