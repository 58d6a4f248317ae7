"""The one way to a Session: loads each network and each look's style images once.

``render``, ``filter``, ``presets preview`` and the stylize effect (and through it ``serve`` and
``ofx render``) all make their sessions here, so a model is resolved, downloaded and loaded
the same way everywhere, and a style image is decoded once however many sessions use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from . import weights
from .images import load_style
from .model import StyleNet
from .pipeline import Session
from .spec import Job
from .weights import ProgressFn


class Sessions:
    """A cache of networks (by model name) and style images (by look) for making Sessions.

    ``offline`` (or VSTPIPE_OFFLINE) forbids downloads; a model that is not installed is then
    an error naming how to get it. ``nets`` are networks already in memory, by the model name
    a job gives (a benchmark's or a test's random weights).
    """

    def __init__(self, offline: bool = False, nets: Mapping[str, StyleNet] | None = None
                 ) -> None:
        self._offline = offline or weights.offline_from_env()
        self._nets: dict[str, StyleNet] = dict(nets or {})
        self._styles: dict[tuple[object, ...], list[torch.Tensor]] = {}
        self.notices: list[str] = []  # what the user should know (e.g. which model `auto` ran)

    def styles(self, job: Job) -> list[torch.Tensor]:
        """The look's style images, (1, 3, H, W) in [0, 1], each at its own style size; read
        once per look (call it before :meth:`net` so a bad image costs no download)."""
        timeline, size = job.look.timeline, job.look.style_size
        key = (timeline.styles, timeline.sizes, size)
        if key not in self._styles:
            self._styles[key] = [load_style(path, timeline.size_of(i, size))
                                 for i, path in enumerate(timeline.styles)]
        return self._styles[key]

    def net(self, model: str, on_progress: ProgressFn | None = None,
            on_load: Callable[[str], None] | None = None) -> StyleNet:
        """The network ``model`` names (registry name or directory), downloaded first unless
        offline, loaded once; ``on_load`` is told the name of what is being loaded, once it is
        known to exist."""
        if model not in self._nets:
            resolved = weights.resolve(model, offline=self._offline, on_progress=on_progress)
            if resolved.notice is not None:
                self.notices.append(resolved.notice)
            if on_load is not None:
                on_load(resolved.name)
            self._nets[model] = weights.load(resolved)
        return self._nets[model]

    def session(self, job: Job, frame_size: tuple[int, int]) -> Session:
        """A fresh Session (fresh temporal state) for frames of ``frame_size`` (W, H)."""
        return Session(self.net(job.model), job, self.styles(job), frame_size)

    def clear(self) -> None:
        """Forget the loaded networks and images (an effect instance being destroyed)."""
        self._nets.clear()
        self._styles.clear()
