"""``--precision auto`` on the CPU: bf16 when it is accurate here and faster on this machine.

Accuracy depends on the weights and the look, so it is measured on every render: the first
frame stylized in both precisions, bf16 within BF16_TOLERANCE 8-bit levels of fp32. Speed
depends on the network's shape and the machine, and a timing taken while other work runs can
say anything ("bf16 was 0.2x as fast"), so it is measured once per model family, network size,
CPU, thread count and torch version, as the best of SPEED_RUNS timings of each, and kept in
``$VSTPIPE_HOME/precision.json``. The same command on the same machine therefore takes the same
precision, and gives the same pixels, however busy the machine is. Delete the file (or the
entry) to measure again.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import torch

from . import atomic
from .model import StyleNet
from .stylize import Stylizer, to_levels
from .weights.store import home

BF16_TOLERANCE: Final = 2  # 8-bit levels bf16 output may differ from fp32 for `auto` to take bf16
SPEED_RUNS: Final = 3  # timings of each precision; the best counts (load only slows a run)
CACHE_NAME: Final = "precision.json"


@dataclass(frozen=True)
class PrecisionTrial:
    diff: int  # max |bf16 - fp32| in 8-bit levels on the trial frame
    speedup: float | None  # fp32 time / bf16 time; None when bf16 was too far off to matter
    cached: bool = False  # the speed figure was measured by an earlier render


def cpu_name() -> str:
    """This machine's processor model, as the kernel names it (or the architecture)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def speed_key(family: str, size: tuple[int, int]) -> str:
    """What a speed figure holds for: the network's shape and the machine that ran it."""
    return (f"{family} {size[0]}x{size[1]} | {cpu_name()} | {torch.get_num_threads()} threads "
            f"| torch {torch.__version__}")


class SpeedCache:
    """bf16-over-fp32 speed figures by speed_key, in one small JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or home() / CACHE_NAME

    def _read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # absent or damaged: measured again and rewritten
        if not isinstance(data, dict):
            return {}
        return {k: float(v) for k, v in data.items()
                if isinstance(v, int | float) and math.isfinite(v) and v > 0}

    def get(self, key: str) -> float | None:
        return self._read().get(key)

    def put(self, key: str, speedup: float) -> None:
        data = {**self._read(), key: speedup}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n")
                           .encode(), overwrite=True)


def _measure(trial: Callable[[Stylizer], torch.Tensor], candidates: tuple[Stylizer, ...]
             ) -> float:
    """fp32 time / bf16 time, each the best of SPEED_RUNS, interleaved so that a burst of
    other work slows both alike."""
    best = [math.inf] * len(candidates)
    for _ in range(SPEED_RUNS):
        for i, candidate in enumerate(candidates):
            start = time.perf_counter()
            trial(candidate)
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0] / max(best[1], 1e-9)


def pick_cpu_precision(net: StyleNet, trial: Callable[[Stylizer], torch.Tensor],
                       key: str | None = None, cache: SpeedCache | None = None,
                       on_measure: Callable[[], None] | None = None
                       ) -> tuple[Stylizer, PrecisionTrial]:
    """bf16 when ``trial`` (one stylized frame) stays within BF16_TOLERANCE levels of fp32 and
    bf16 is faster: by ``cache``'s figure for ``key`` if it has one, else measured (after
    ``on_measure`` is called, for a progress line) and stored there."""
    cpu = torch.device("cpu")
    # The bf16 candidate gets the copy: Stylizer casts a network in place, and ``net`` may be a
    # session's, used again by the next render (which must find it in fp32, as it was).
    candidates = (Stylizer(net, cpu, torch.float32),
                  Stylizer(copy.deepcopy(net), cpu, torch.bfloat16))
    levels = [to_levels(trial(candidate)) for candidate in candidates]  # also the warm-up
    diff = int((levels[0] - levels[1]).abs().max())
    if diff > BF16_TOLERANCE:
        return candidates[0], PrecisionTrial(diff, None)
    speedup = cache.get(key) if cache is not None and key is not None else None
    if speedup is not None:
        return candidates[1] if speedup > 1.0 else candidates[0], \
            PrecisionTrial(diff, speedup, cached=True)
    if on_measure is not None:
        on_measure()
    speedup = _measure(trial, candidates)
    if cache is not None and key is not None:
        cache.put(key, speedup)
    return candidates[1] if speedup > 1.0 else candidates[0], PrecisionTrial(diff, speedup)


def describe(chosen: torch.dtype, trial: PrecisionTrial, key: str) -> str:
    """The closing line's account of an automatic choice."""
    name = "bf16" if chosen == torch.bfloat16 else "fp32"
    if trial.speedup is None:
        return (f"{name} (auto: bf16 differed from fp32 by {trial.diff}/255 on the first frame; "
                f"bf16 is used within {BF16_TOLERANCE}/255 when faster)")
    when = "measured earlier" if trial.cached else "measured now"
    shape = key.split(" | ")[0]
    return (f"{name} (auto: bf16 within {trial.diff}/255 of fp32 on the first frame, "
            f"{trial.speedup:.1f}x as fast for {shape} on this machine, {when})")
