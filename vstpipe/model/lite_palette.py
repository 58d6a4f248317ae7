"""lite-palette: lite-edge's networks (the same published files) and the palette stage.

lite-edge's decoder paints the style's average colour over the whole frame with its strokes in
lightness: every region in one hue (README, "Why lite paints one hue"; its features hold the
regions' colour, its decoder drops it). This family runs the same encoder and decoder and then
``palette.paint``: the frame's regional colour carried into the painting at full weight, then
its a*b* mapped to the style image's chroma mean and covariance, so regions take different
colours of the painting's palette. The lightness is left as the decoder painted it: matching it
too (``tones``) stretched lite's tonal range and with it its flicker, 1.7x-2.1x per frame, where
the chroma alone costs 1.03x-1.16x (README, "The palette stage"). A lite-edge model folder paints
as before; only ``arch`` differs.
"""

from __future__ import annotations

from dataclasses import replace

from ..palette import Palette
from . import lite_edge

# carry 1: the frame's regional chroma as it is; on frame 40 of the four clips it brought the
# colour spread across regions near the peer's, and 1.5 or 2 added little (README).
FAMILY = replace(lite_edge.FAMILY, name="lite-palette", palette=Palette(carry=1.0, tones=False))
