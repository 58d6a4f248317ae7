"""Random weights saved in the published file layouts, so tests never need the real files."""

from __future__ import annotations

from pathlib import Path

import torch

from vstpipe import models


def random_state(arch: str, role: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the published keys/shapes of ``arch``'s ``role`` file."""
    torch.manual_seed(seed)
    module = models.published_module(arch, role)
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def save_random_weights(arch: str, folder: Path, seed: int = 0) -> dict[str, Path]:
    """Write both published files of ``arch`` into ``folder``; returns role -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, (role, name) in enumerate(models.ARCHS[arch].files.items()):
        paths[role] = folder / name
        torch.save(random_state(arch, role, seed + i), paths[role])
    return paths
