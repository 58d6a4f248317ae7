"""Random weights saved in the published file layouts, so tests never need the real files."""

from __future__ import annotations

from pathlib import Path

import torch

from vstpipe import model


def random_state(arch: str, role: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the published keys/shapes of ``arch``'s ``role`` file.

    He-initialised (std sqrt(2 / fan_in), small biases) so that activations keep their scale
    through 16 layers: PyTorch's default init shrinks them until every output pixel is the same,
    which would let tests pass on a constant picture.
    """
    gen = torch.Generator().manual_seed(seed)
    module = model.published_module(arch, role)
    state = {}
    for key, value in module.state_dict().items():
        if key.endswith(("running_var", "normalize.std")):  # must stay positive
            state[key] = torch.ones(value.shape) * (0.25 if "normalize" in key else 1.0)
        elif key.endswith(("running_mean", "normalize.mean")):
            state[key] = torch.full(value.shape, 0.45 if "normalize" in key else 0.0)
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("weight"):
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        else:
            state[key] = torch.randn(value.shape, generator=gen) * 0.01
    if role == "decoder":
        _centre_output(arch, state, gen)
    return state


def random_net(arch: str = "adain-vgg19") -> model.StyleNet:
    """A StyleNet of ``arch`` from random weights in its published layout: the encoder with
    seed 0, the decoder with seed 1 (what `save_random_weights` writes and `adain_home`
    imports)."""
    return model.build(arch, {r: random_state(arch, r, i)
                              for i, r in enumerate(("encoder", "decoder"))})


def _centre_output(arch: str, state: dict[str, torch.Tensor], gen: torch.Generator) -> None:
    """Shift the last bias so typical features decode to mid-grey with visible detail, rather
    than to a picture clamped to black or white in some channel."""
    weight, bias = list(state)[-2:]
    state[weight] *= 0.4
    module = model.published_module(arch, "decoder")
    module.load_state_dict(state)
    channels = model.FAMILIES[arch].channels
    with torch.no_grad():
        out = module(torch.randn(2, channels, 8, 8, generator=gen).abs())
    target = 0.5 if arch == "adain-vgg19" else 0.0  # RGB [0, 1] or tanh Lab [-1, 1]
    if arch == "uvc-lab":
        out = torch.atanh(out.clamp(-0.99, 0.99))
    state[bias] += target - out.mean(dim=(0, 2, 3))


def save_random_tracker(path: Path, seed: int = 0) -> Path:
    """A random UVC tracker checkpoint as UVC's training script writes it: a dict with the
    DataParallel ("module."-prefixed) state dict, the epoch and the best loss."""
    state = random_state("uvc-tracker", "tracker", seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 30, "state_dict": {f"module.{k}": v for k, v in state.items()},
                "best_loss": 0.5}, path)
    return path


def save_random_weights(arch: str, folder: Path, seed: int = 0) -> dict[str, Path]:
    """Write both published files of ``arch`` into ``folder``; returns role -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, (role, name) in enumerate(model.FAMILIES[arch].files.items()):
        paths[role] = folder / name
        torch.save(random_state(arch, role, seed + i), paths[role])
    return paths
