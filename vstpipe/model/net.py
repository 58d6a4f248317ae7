"""StyleNet: a style family's encoder + decoder, with colour-space conversion at the edges."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .base import Family


class StyleNet(nn.Module):
    """Encoder + decoder of one family, with colour-space conversion at the edges.

    ``encode`` takes RGB in [0, 1] and ``decode`` returns RGB in [0, 1] (unclamped), whatever
    space the published networks work in.
    """

    def __init__(self, arch: Family, encoder: nn.Module, decoder: nn.Module, name: str = ""
                 ) -> None:
        super().__init__()
        self.arch = arch  # the family (model.json and the registry call it the arch)
        self.name = name or arch.name  # the model as the user named it, for messages
        self.encoder = encoder
        self.decoder = decoder

    @classmethod
    def build(cls, family: Family, states: Mapping[str, Mapping[str, torch.Tensor]],
              name: str = "") -> StyleNet:
        """Rebuild ``family``'s networks from published state dicts (role -> state dict).

        The layouts must already have passed ``family.check_layout``. ``name``: the model's
        registry name or directory, for messages (default: the family).
        """
        if family.encoder is None or family.decoder is None:
            raise ValueError(f"{family.name} is an {family.kind} family, not a style family")
        enc, dec = family.encoder(), family.decoder()
        family.load("encoder", enc, states["encoder"])
        family.load("decoder", dec, states["decoder"])
        net = cls(family, enc, dec, name).eval()
        net.requires_grad_(False)
        return net

    def encode(self, rgb: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [0, 1]
        return self.encoder(self._to_net(rgb))

    def taps(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder.taps(self._to_net(rgb))

    def decode(self, feat: torch.Tensor) -> torch.Tensor:
        out = self.decoder(feat.to(self._dtype()).contiguous(memory_format=torch.channels_last))
        # Colour conversion stays in float32 whatever precision the convolutions run in.
        return self.arch.space.from_net(out.float())

    def decoder_state(self) -> dict[str, torch.Tensor]:
        """The decoder's weights keyed as in the published decoder file (inverse of ``build``)."""
        decoder = self.decoder.module if hasattr(self.decoder, "module") else self.decoder  # DDP
        return self.arch.unload("decoder", decoder)

    def _dtype(self) -> torch.dtype:
        return next(self.decoder.parameters()).dtype

    def _to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        x = self.arch.space.to_net(rgb.float())
        return x.to(self._dtype()).contiguous(memory_format=torch.channels_last)
