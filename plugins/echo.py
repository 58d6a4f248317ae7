"""Echo: motion trails from the effect's own earlier output, or the difference from the previous
source frame. Small on purpose: it shows the effect API is general (temporal clip access on both
clips, an animated parameter, a choice, every pixel depth, tiles, full thread safety)."""

from __future__ import annotations

import numpy as np

from vstpipe import ofx
from vstpipe.ofx import OUTPUT, SOURCE


class Echo(ofx.Effect):
    identifier = "org.vstpipe.echo"
    icon = "echo.png"  # beside this file; the OpenFX bundle's icon (tools/make_icons.py)

    @classmethod
    def describe(cls, desc: ofx.Descriptor) -> None:
        desc.label, desc.grouping, desc.version = "Echo", "vstpipe/Time", (1, 0)
        desc.description = ("trails: out = (1 - decay) source + decay previous output; "
                            "difference: |source - previous source|")
        desc.temporal_clip_access = True
        desc.sequential_render = "always"  # trails feed back on the previous output
        desc.thread_safety = "fully_safe"  # per-pixel arithmetic, no instance state

    @classmethod
    def describe_in_context(cls, desc: ofx.Descriptor, context: str) -> None:
        super().describe_in_context(desc, context)
        desc.define_param(ofx.choice("mode", ("trails", "difference"),
                                     hint="trails or frame difference"))
        desc.define_param(ofx.double("decay", 0.6, 0.0, 0.99,
                                     hint="share of the previous output kept (trails)"))

    def frames_needed(self, time: float) -> dict[str, list[tuple[float, float]]]:
        if self.instance.params.value("mode", time) == "trails":
            return {SOURCE: [(time, time)], OUTPUT: [(time - 1, time - 1)]}
        return {SOURCE: [(time - 1, time)]}

    def render(self, args: ofx.RenderArgs) -> None:
        t, win = args.time, args.window
        source = self.instance.clip(SOURCE)
        now = ofx.to_unit(source.image(t, win).view(win))  # (h, w, 4)
        if self.instance.params.value("mode", t) == "trails":
            before = self.instance.clip(OUTPUT).image(t - 1)
            decay = self.instance.params.value("decay", t)
            rgb = now[..., :3] if before is None else \
                (1 - decay) * now[..., :3] + decay * ofx.to_unit(before.view(win))[..., :3]
        else:
            before = source.image(t - 1, win)
            rgb = np.zeros_like(now[..., :3]) if before is None else \
                np.abs(now[..., :3] - ofx.to_unit(before.view(win))[..., :3])
        out = self.instance.clip(OUTPUT).image(t)
        out.view(win)[...] = ofx.from_unit(np.concatenate([rgb, now[..., 3:]], axis=2),
                                           out.depth)


EFFECTS = [Echo]
