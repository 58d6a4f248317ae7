"""The vstpipe stylizer as an effect: the same looks, models and steadiness as `vstpipe render`.

Frames rendered in order through one instance give exactly what `vstpipe render --batch 1`
gives with the same settings: the instance keeps render's temporal state (smoothed statistics,
the previous frame for flow blending, cut detection) from frame to frame. A frame requested out
of order (backwards, or a jump of more than a couple of frames) starts that state afresh, as a
cut would, so scrubbing in a host never smears another part of the clip into the frame. AdaIN normalises by statistics of the whole frame, so every
render window needs the whole Source frame (regions_of_interest); the stylized frame is
computed once per time and each window copies its part, so tiles match the untiled render.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vstpipe import jobs, ofx, presets, temporal
from vstpipe.media import Frame
from vstpipe.ofx import OUTPUT, SOURCE
from vstpipe.pipeline import Session
from vstpipe.sessions import Sessions
from vstpipe.spec import DEVICES, PRECISIONS, Job, Look

_BITS = {"byte": 8, "short": 16, "half": 32, "float": 32}
_JUMP = 2.5  # frames: a step further than this (or backwards) is a scrub, not playback
_OPEN_END = 1e-3  # an effect parameter's range is closed: it stops this short of an open end


def _setup() -> tuple[str, ...]:
    """The parameters whose change builds a new session (all but alpha)."""
    return ("preset", "style", "preserve_color", "style_size", "max_side",
            *(o.name for o in temporal.options()), "steady", "model", "device", "precision")


def _temporal_params() -> list[ofx.ParamDef]:
    """`steady` and one parameter per temporal setting, from their declarations; 0 leaves a
    setting to the preset (or to `steady`)."""
    *most, last = (f"{name} {value}" for name, value in temporal.STEADY.items())
    steady = f"{', '.join(most)} and {last}" if most else last
    params = [ofx.boolean("steady", False, hint=f"{steady} where those are 0")]
    for o in temporal.options():
        make = ofx.double if o.type is float else ofx.integer
        high = o.range.high - (_OPEN_END if o.type is float else 1) if o.range.high_open \
            else o.range.high
        params.append(make(o.name, o.type(0), min(o.range.low, 0), high, animatable=False,
                           hint=f"{o.hint}; 0: the preset's"))
    return params


def _preset_names() -> tuple[str, ...]:
    names, _notices = presets.available()
    return tuple(sorted(names)) or ("vangogh",)


class Stylize(ofx.Effect):
    identifier = "org.vstpipe.stylize"
    icon = "stylize.png"  # beside this file; the OpenFX bundle's icon (tools/make_icons.py)

    @classmethod
    def describe(cls, desc: ofx.Descriptor) -> None:
        desc.label, desc.grouping, desc.version = "vstpipe Stylize", "vstpipe", (1, 0)
        desc.description = "Paint the clip in a style (AdaIN), steadily across frames"
        desc.sequential_render = "preferred"  # temporal state; out of order starts it afresh
        desc.thread_safety = "instance_safe"  # one model and one state per instance

    @classmethod
    def describe_in_context(cls, desc: ofx.Descriptor, context: str) -> None:
        super().describe_in_context(desc, context)
        names = _preset_names()
        for param in (
            ofx.choice("preset", names, "vangogh" if "vangogh" in names else None,
                       hint="a named look; ignored when a style image is given"),
            ofx.file_path("style", hint="a style image; overrides the preset"),
            ofx.double("alpha", 1.0, 0.0, 1.0, hint="style strength; with a preset, a share "
                       "of the preset's own strength"),
            ofx.choice("preserve_color", ("preset", "on", "off"),
                       hint="keep the source's colours"),
            ofx.integer("style_size", 0, 0, 4096, hint="shorter side of the style image when "
                        "its statistics are taken; 0: the preset's"),
            ofx.integer("max_side", 0, 0, 16384, hint="longest side the network sees; "
                        "0: the preset's, else full size"),
            *_temporal_params(),
            ofx.string("model", hint="model name or folder; empty: the preset's"),
            ofx.choice("device", DEVICES),
            ofx.choice("precision", PRECISIONS),
        ):
            desc.define_param(param)

    def __init__(self, instance: ofx.Instance) -> None:
        super().__init__(instance)
        self._setup: tuple[Any, ...] | None = None
        self._job: Job | None = None  # the job of the parameters in _setup
        self._sessions = Sessions()  # networks and style images, each loaded once
        self._session: Session | None = None
        self._last: float | None = None  # time of the frame the session saw last
        self._frame: tuple[tuple[Any, ...], np.ndarray] | None = None  # (key, stylized frame)

    def regions_of_interest(self, time: float, window: ofx.Rect) -> dict[str, ofx.Rect]:
        return {SOURCE: self.instance.clip(SOURCE).region_of_definition(time)}

    def begin_sequence_render(self, args: ofx.SequenceArgs) -> None:
        self._session = None  # a new sequence starts its temporal state afresh

    def end_sequence_render(self, args: ofx.SequenceArgs) -> None:
        self._frame = None

    def destroy(self) -> None:
        self._sessions.clear()
        self._session = self._frame = None

    def _request(self) -> jobs.Request:
        """The job the parameters ask for, named as the job spec names its settings."""
        p = self.instance.params.constant_values()
        return jobs.Request(
            styles=(Path(p["style"]),) if p["style"] else (),
            preset=None if p["style"] else p["preset"],
            preserve_color={"on": True, "off": False}.get(p["preserve_color"]),
            style_size=p["style_size"] or None,
            max_side=p["max_side"] or None,
            model=p["model"] or None,
            temporal=temporal.with_steady({o.name: p[o.name] or None
                                           for o in temporal.options()}, p["steady"]),
            device=p["device"], precision=p["precision"], batch=1)

    def _start(self, size: tuple[int, int]) -> Session:
        """A fresh session for the current parameters (network and styles loaded once)."""
        p = self.instance.params.constant_values()
        setup = tuple(p[k] for k in _setup())
        if setup != self._setup:
            self._job, self._setup = jobs.resolve(self._request()), setup
        return self._sessions.session(self._job, size)

    def _alpha_look(self, time: float) -> Look:
        """The look at ``time``: the host's (possibly animated) alpha on the look's strength."""
        look = self._job.look
        alpha = self.instance.params.value("alpha", time)
        if not self.instance.params.value("style", time):
            alpha *= look.timeline.keyframes[0].alpha
        timeline = replace(look.timeline, keyframes=tuple(
            replace(k, alpha=alpha) for k in look.timeline.keyframes))
        return replace(look, timeline=timeline)

    def _stylize(self, time: float, sequential: bool) -> np.ndarray:
        """The whole stylized frame at ``time``, (H, W, 4) bottom-up at the Output's depth."""
        source = self.instance.clip(SOURCE)
        image = source.image(time)
        rgba = image.top_down()
        depth = image.depth
        rgb = rgba[..., :3] if depth in ("byte", "short") else rgba[..., :3].astype(np.float32)
        size = (image.bounds.width, image.bounds.height)
        setup = tuple(self.instance.params.value(k, time) for k in _setup())
        playing = sequential and self._last is not None and 0 < time - self._last <= _JUMP
        if self._session is None or setup != self._setup or not playing:
            self._session = self._start(size)
        rate = Fraction(source.frame_rate or 1).limit_denominator(1001000)
        frame = Frame(np.ascontiguousarray(rgb), round(time), 1 / rate)
        out = self._session.process([frame], size, _BITS[depth], self._alpha_look(time))[0]
        self._last = time
        stylized = out.rgb.astype(ofx.DEPTH_DTYPES[depth], copy=False)
        return ofx.opaque(stylized, depth)

    def render(self, args: ofx.RenderArgs) -> None:
        params = self.instance.params
        key = (args.time, *(params.value(name, args.time) for name in params.defs))
        if self._frame is None or self._frame[0] != key:  # the first window of this frame
            self._frame = (key, self._stylize(args.time, args.sequential))
        out = self.instance.clip(OUTPUT).image(args.time)
        out.view(args.window)[...] = self._frame[1][
            args.window.y1 - out.bounds.y1:args.window.y2 - out.bounds.y1,
            args.window.x1 - out.bounds.x1:args.window.x2 - out.bounds.x1]


EFFECTS = [Stylize]
