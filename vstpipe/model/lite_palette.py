"""lite-palette: lite-edge's networks (the same published files) and the palette stage.

lite-edge's decoder paints the style's average colour over the whole frame with its strokes in
lightness: every region in one hue (README, "Why lite paints one hue"; its features hold the
regions' colour, its decoder drops it). This family runs the same encoder and decoder and then
``palette.paint``: the frame's regional colour carried into the painting at twice its weight, then
its chroma mapped to the style image's chroma mean and covariance, so regions take different
colours of the painting's palette. The lightness is left as the decoder painted it: matching it
too (``tones``) stretched lite's tonal range and with it its flicker, 1.65x-2.06x per frame in
a first version, where the chroma alone cost 1.03x-1.16x (README, "The palette stage"). A
lite-edge model folder paints as before; only ``arch`` differs.
"""

from __future__ import annotations

from dataclasses import replace

from ..palette import Palette
from . import lite_edge

# carry 2: the frame's regional chroma twice over, before the transfer scales the whole chroma to
# the style's. On frame 40 of the four clips, 1 brought the colour from region to region near
# the peer's, and 2 a little further, with the style distance (lite ruler) on graffiti and
# mosaic back to the decoder's own (within 1%) where 1 put it 4% above; 1 to 3 look alike.
FAMILY = replace(lite_edge.FAMILY, name="lite-palette", palette=Palette(carry=2.0, tones=False))
