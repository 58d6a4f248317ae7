"""precision.py: bf16 only when within tolerance of fp32 on the first frame and faster by a
speed figure measured once per network shape and machine, then cached (fake clocks and tiny
networks; one real trial)."""

from __future__ import annotations

import json
import types

import pytest
import torch
from fakes import random_state

from vstpipe import model, precision
from vstpipe.precision import (
    BF16_TOLERANCE,
    PrecisionTrial,
    SpeedCache,
    describe,
    pick_cpu_precision,
    speed_key,
)
from vstpipe.stylize import Stylizer, to_levels

CPU = torch.device("cpu")


def test_to_levels_clamps_then_rounds_to_8_bit_levels():
    rgb = torch.tensor([-0.5, 0.0, 0.001, 0.002, 0.25, 1.0, 3.0])
    torch.testing.assert_close(to_levels(rgb), torch.tensor([0.0, 0.0, 0.0, 1.0, 64.0, 255.0,
                                                             255.0]))


def _tiny_net() -> torch.nn.Module:
    """What pick_cpu_precision builds its candidates from; the fake trials never run it."""
    return torch.nn.Conv2d(3, 3, 3)


def _fake_trial(monkeypatch, diff: int, fp32_seconds: float, bf16_seconds: float,
                calls: list[str] | None = None):
    """A trial whose bf16 answer is ``diff`` levels off fp32 and which takes the given times on
    a clock that only the trial advances."""
    clock = [100.0]
    monkeypatch.setattr(precision, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    def trial(candidate: Stylizer) -> torch.Tensor:
        bf16 = candidate.dtype == torch.bfloat16
        if calls is not None:
            calls.append("bf16" if bf16 else "fp32")
        clock[0] += bf16_seconds if bf16 else fp32_seconds
        frame = torch.full((1, 3, 4, 4), 0.2)  # level 51, away from rounding ties
        frame[0, 1, 2, 3] += diff / 255 if bf16 else 0.0
        return frame

    return trial


@pytest.mark.parametrize("diff, fp32_s, bf16_s, picked, speedup", [
    (0, 2.0, 1.0, torch.bfloat16, 2.0),  # exact and twice as fast
    (BF16_TOLERANCE, 2.0, 1.0, torch.bfloat16, 2.0),  # the tolerance itself is still fine
    (BF16_TOLERANCE + 1, 2.0, 1.0, torch.float32, None),  # too far from fp32: not timed
    (0, 1.0, 2.0, torch.float32, 0.5),  # a CPU without native bf16: slower
    (0, 1.0, 1.0, torch.float32, 1.0),  # no faster: keep the exact one
])
def test_bf16_only_when_close_and_faster(monkeypatch, diff, fp32_s, bf16_s, picked, speedup):
    chosen, result = pick_cpu_precision(_tiny_net(),
                                        _fake_trial(monkeypatch, diff, fp32_s, bf16_s))
    assert result == PrecisionTrial(diff, speedup)
    assert chosen.dtype is picked and chosen.device == CPU
    assert {p.dtype for p in chosen.net.parameters()} == {picked}


def test_the_callers_network_stays_fp32_and_untouched_whatever_is_chosen(monkeypatch):
    """The bf16 candidate casts a copy: the network passed in may be a session's, and the next
    render must find its weights as they were (they were rounded to bf16 in place once, and a
    second render that chose fp32 then painted other pixels)."""
    net = _tiny_net()
    weight = net.weight.detach().clone()
    chosen, _ = pick_cpu_precision(net, _fake_trial(monkeypatch, BF16_TOLERANCE + 5, 2.0, 1.0))
    assert chosen.dtype is torch.float32  # too far off: fp32
    torch.testing.assert_close(chosen.net.weight, weight, rtol=0, atol=0)
    chosen, _ = pick_cpu_precision(net, _fake_trial(monkeypatch, 1, 2.0, 1.0))
    assert chosen.dtype is torch.bfloat16 and chosen.net is not net
    assert net.weight.dtype is torch.float32
    torch.testing.assert_close(net.weight, weight, rtol=0, atol=0)


def test_the_speed_is_measured_once_then_read_whatever_the_load(monkeypatch, tmp_path):
    cache = SpeedCache(tmp_path / "precision.json")
    key = speed_key("lite-skip", (320, 136))
    calls: list[str] = []
    chosen, first = pick_cpu_precision(_tiny_net(), _fake_trial(monkeypatch, 1, 2.0, 1.0, calls),
                                       key, cache)
    # The accuracy pair, then SPEED_RUNS timed pairs, interleaved.
    assert calls == ["fp32", "bf16"] * (1 + precision.SPEED_RUNS)
    assert chosen.dtype is torch.bfloat16 and first == PrecisionTrial(1, 2.0, cached=False)
    assert json.loads(cache.path.read_text()) == {key: 2.0}
    # Later, a busy machine makes bf16 look 5x slower: the stored figure decides, untimed.
    calls.clear()
    chosen, again = pick_cpu_precision(_tiny_net(), _fake_trial(monkeypatch, 1, 1.0, 5.0, calls),
                                       key, cache)
    assert calls == ["fp32", "bf16"]
    assert chosen.dtype is torch.bfloat16 and again == PrecisionTrial(1, 2.0, cached=True)
    # Another size is another entry.
    other = speed_key("lite-skip", (640, 272))
    pick_cpu_precision(_tiny_net(), _fake_trial(monkeypatch, 0, 1.0, 3.0), other, cache)
    assert json.loads(cache.path.read_text()) == {key: 2.0, other: pytest.approx(1 / 3)}


def test_a_damaged_cache_is_measured_again_and_rewritten(monkeypatch, tmp_path):
    cache = SpeedCache(tmp_path / "precision.json")
    cache.path.write_text("{not json")
    key = speed_key("uvc-lab", (64, 48))
    _, result = pick_cpu_precision(_tiny_net(), _fake_trial(monkeypatch, 0, 3.0, 1.0), key, cache)
    assert result == PrecisionTrial(0, 3.0)
    assert json.loads(cache.path.read_text()) == {key: 3.0}


def test_the_key_names_the_network_shape_and_the_machine():
    key = speed_key("lite-skip", (320, 136))
    assert key.startswith("lite-skip 320x136 | ")
    assert f"| {torch.get_num_threads()} threads | torch {torch.__version__}" in key


def test_the_closing_line_says_why():
    key = speed_key("lite-skip", (320, 136))
    assert describe(torch.bfloat16, PrecisionTrial(1, 2.84, True), key) == \
        "bf16 (auto: bf16 within 1/255 of fp32 on the first frame, 2.8x as fast for lite-skip " \
        "320x136 on this machine, measured earlier)"
    assert describe(torch.float32, PrecisionTrial(37, None), key).startswith(
        "fp32 (auto: bf16 differed from fp32 by 37/255 on the first frame")


def test_a_real_trial_follows_its_own_measurement(tmp_path):
    net = model.build("uvc-lab", {role: random_state("uvc-lab", role, i)
                                  for i, role in enumerate(model.FAMILIES["uvc-lab"].files)})
    frame = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    stats = Stylizer(net, CPU, torch.float32).style_stats(frame)
    chosen, result = pick_cpu_precision(net, lambda s: s(frame, stats.mean, stats.std),
                                        speed_key("uvc-lab", (16, 16)),
                                        SpeedCache(tmp_path / "p.json"))
    assert result.diff >= 0
    takes_bf16 = result.diff <= BF16_TOLERANCE and (result.speedup or 0) > 1.0
    assert chosen.dtype is (torch.bfloat16 if takes_bf16 else torch.float32)
