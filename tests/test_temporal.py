"""vstpipe.temporal: option declarations, cut detection, each method, the chain, the registry.

Synthetic tensors throughout; the one render (a toy method registered by the test) goes through
the library with a tiny clip and random weights; the command line only for what it generates
from the declarations (flags, `presets show`, `ofx describe`, flag-named errors).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from fakes import random_net
from typer.testing import CliRunner

from vstpipe import effects, jobs, ofx, ops, pipeline, presets, temporal
from vstpipe.cli import app
from vstpipe.errors import ConfigError, OptionError
from vstpipe.media import EncodeOptions
from vstpipe.sessions import Sessions
from vstpipe.temporal import STEADY, TemporalOptions
from vstpipe.temporal.base import Option, Range, Settings, TemporalMethod
from vstpipe.temporal.chain import Temporal
from vstpipe.temporal.cuts import CutDetector, colour_histograms
from vstpipe.temporal.flow_blend import FlowBlend
from vstpipe.temporal.smooth_stats import SmoothStats

runner = CliRunner()


# -- declarations and settings ------------------------------------------------------------------

def test_an_option_checks_its_range_and_names_the_setting():
    half_open = Option("x", float, Range(0.0, 1.0, high_open=True), 0.0, help="", hint="")
    assert half_open.flag == "--x" and str(half_open.range) == "[0, 1)"
    assert half_open.check(0) == 0.0 and isinstance(half_open.check(0), float)
    for bad, shown in ((1.0, "1.0"), (-0.5, "-0.5"), (float("nan"), "nan")):
        with pytest.raises(OptionError, match=rf"^x {shown} is outside \[0, 1\)$") as caught:
            half_open.check(bad)
        # each front end names the setting its own way: the CLI as its flag
        assert caught.value.named(lambda s: "--" + s) == f"--x {shown} is outside [0, 1)"
    with pytest.raises(ConfigError, match=r"^p.toml: x True is not a number; use a value in"):
        half_open.check(True, "p.toml", ConfigError)
    assert 0.0 not in Range(0.0, 1.0, low_open=True) and 1.0 in Range(0.0, 1.0)


def test_settings_fill_in_defaults_validate_and_name_unknown_ones():
    default = TemporalOptions()
    assert dict(default) == {"smooth_stats": 0.0, "flow_blend": 0.0, "flow_across_edges": 0,
                             "cut_threshold": 0.2}
    assert default == TemporalOptions.of({"cut_threshold": 0.2}) and hash(default)
    steady = TemporalOptions.of(STEADY)
    assert (steady["smooth_stats"], steady["flow_blend"], steady["flow_across_edges"]) == \
        (0.9, 0.9, 1)
    with pytest.raises(OptionError, match=r"^flow_blend 1.5 is outside \[0, 1\]$"):
        TemporalOptions.of({"flow_blend": 1.5})
    with pytest.raises(OptionError, match=r"^flow_across_edges 0.5 is not a whole number; use "
                                          r"one in \[0, 1\]$"):
        TemporalOptions.of({"flow_across_edges": 0.5})
    with pytest.raises(OptionError, match="unknown temporal setting 'smoth'; expected "
                                          "smooth_stats, flow_blend, flow_across_edges, "
                                          "cut_threshold"):
        TemporalOptions.of({"smoth": 0.5})


def test_steady_fills_in_only_the_unset_settings():
    assert temporal.with_steady({"smooth_stats": None, "cut_threshold": 0.3}, False) == \
        {"cut_threshold": 0.3}
    assert temporal.with_steady({"smooth_stats": 0.0, "flow_blend": None}, True) == \
        {"smooth_stats": 0.0, "flow_blend": STEADY["flow_blend"], "flow_across_edges": 1}


# -- cut detection ------------------------------------------------------------------------------

def test_histograms_and_distance():
    x = torch.rand(2, 3, 40, 50)
    h = colour_histograms(x)
    assert h.shape == (2, 48) and torch.allclose(h.sum(1), torch.ones(2))
    assert ops.histogram_distance(h[0], h[0]) == 0
    black, white = colour_histograms(torch.zeros(1, 3, 8, 8)), colour_histograms(
        torch.ones(1, 3, 8, 8))
    assert ops.histogram_distance(black[0], white[0]) == pytest.approx(1.0)


def test_the_first_frame_and_a_cut_start_shots():
    black, white = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    detector = CutDetector(0.2)
    assert detector.shot_starts(torch.cat([black, black]), 0) == [True, False]
    assert detector.shot_starts(torch.cat([black, white, white]), 2) == [False, True, False]
    assert detector.cuts == [3]  # the first frame starts a shot but is no cut
    deaf = CutDetector(1.0)  # a distance never exceeds 1
    assert deaf.shot_starts(torch.cat([black, white]), 0) == [True, False]


# -- smoothed statistics ------------------------------------------------------------------------

def test_smoothed_statistics_are_an_ema_in_frame_order():
    method, detector = SmoothStats(0.5), CutDetector(1.0)
    frames = torch.rand(1, 3, 16, 16).expand(4, -1, -1, -1)  # same picture: no cut
    own = ops.mean_std(torch.randn(4, 2, 5, 5))
    mean, _ = method.stats_hook((own[0][:3], own[1][:3]), detector.shot_starts(frames[:3], 0))
    m2, _ = method.stats_hook((own[0][3:], own[1][3:]), detector.shot_starts(frames[3:], 3))
    expected = own[0][0]
    for i in range(1, 4):
        expected = 0.5 * expected + 0.5 * own[0][i]
        got = mean[i] if i < 3 else m2[0]
        torch.testing.assert_close(got, expected)
    assert detector.cuts == []


def test_smoothing_constant_statistics_is_the_identity():
    mean, std = torch.randn(1, 4, 1, 1).expand(5, -1, -1, -1), torch.rand(5, 4, 1, 1) * 0 + 2
    got_mean, got_std = SmoothStats(0.9).stats_hook((mean, std), [True] + [False] * 4)
    torch.testing.assert_close(got_mean, mean)
    torch.testing.assert_close(got_std, std)


def test_smoothing_starts_afresh_at_a_shot_start():
    method = SmoothStats(0.9)
    mean, std = torch.randn(3, 2, 1, 1), torch.rand(3, 2, 1, 1) + 0.5
    out_mean, out_std = method.stats_hook((mean, std), [True, False, True])
    torch.testing.assert_close(out_mean[2], mean[2])  # nothing from frames 0 and 1
    torch.testing.assert_close(out_std[2], std[2])
    assert not torch.allclose(out_mean[1], mean[1])  # frame 1 was smoothed
    assert SmoothStats.create(TemporalOptions()) is None  # 0 = off


# -- flow-guided blending -----------------------------------------------------------------------

def _textured(seed: int, size: tuple[int, int]) -> np.ndarray:
    """Smooth random texture (H, W, 3) uint8 that optical flow can follow."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, size[0] // 8, size[1] // 8))).float()
    fine = torch.nn.functional.interpolate(coarse, size=size, mode="bicubic",
                                           align_corners=False)
    return (fine[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def _panning(frames: int, shift: int) -> torch.Tensor:
    """(frames, 3, 64, 80) in [0, 1]: a texture panning ``shift`` pixels left per frame."""
    image = _textured(1, (64, 112))
    return torch.stack([torch.from_numpy(image[:, t * shift:t * shift + 80]).permute(2, 0, 1)
                        for t in range(frames)]).float() / 255


def test_blending_carries_the_previous_output_along_the_source_flow():
    # The source pans 3 pixels left per frame; the "stylized" frames are unrelated noise.
    # With strength 1 every valid pixel must be the previous output moved with the pan.
    shift = 3
    frames = _panning(3, shift)
    stylized = torch.rand(3, 3, 64, 80)
    out = FlowBlend(1.0).blend(frames, stylized, CutDetector(1.0).shot_starts(frames, 0))
    torch.testing.assert_close(out[0], stylized[0])  # nothing to blend with yet
    inner = (slice(None), slice(4, -4), slice(4, -4 - shift))  # away from borders and entry
    moved = out[:-1][..., shift:]  # content at x + shift before is at x now
    err = (out[1:][..., :-shift] - moved)[(slice(None), *inner)].abs()
    assert float(err.mean()) < 0.02
    # Half strength: halfway between the current frame and the moved previous one.
    out_half = FlowBlend(0.5).blend(frames[:2], stylized[:2], [True, False])
    expected = 0.5 * stylized[1][..., :-shift] + 0.5 * stylized[0][..., shift:]
    assert float((out_half[1][..., :-shift] - expected)[inner].abs().mean()) < 0.02


def _occluded(frames: int, shift: int, step: int) -> tuple[torch.Tensor, list[int]]:
    """A texture panning ``shift`` px left per frame behind a textured 24x24 square that moves
    ``step`` px right per frame; (frames, 3, 64, 96) in [0, 1] and the square's x per frame."""
    background, square = _textured(1, (64, 96 + shift * frames)), _textured(9, (24, 24))
    xs, out = [8 + step * t for t in range(frames)], []
    for t, x in enumerate(xs):
        frame = background[:, t * shift:t * shift + 96].copy()
        frame[20:44, x:x + 24] = square
        out.append(torch.from_numpy(frame).permute(2, 0, 1))
    return torch.stack(out).float() / 255, xs


def test_blending_carries_the_background_and_refreshes_what_the_occluder_uncovers():
    """Where the flow is known (the panning background) the previous output is carried along
    it exactly; where the moving square uncovers background that was hidden in the previous
    frame, there is nothing to carry, so the fresh stylization is kept."""
    shift, step = 2, 6
    frames, xs = _occluded(2, shift, step)
    stylized = torch.rand(2, 3, 64, 96)
    out = FlowBlend(1.0).blend(frames, stylized, [True, False])
    # Uncovered: rows of the square, columns it covered before and not now (away from edges).
    # DIS smears the square's motion over a few of them (about 1 in 7), which pass the test.
    rows, cols = slice(23, 41), slice(xs[0] + 1, xs[1] - 1)
    fresh = (out[1][:, rows, cols] - stylized[1][:, rows, cols]).abs().amax(dim=0)
    assert float((fresh < 1e-6).float().mean()) > 0.8
    # Background well away from the square, before and after: the previous output, moved.
    rows, cols = slice(50, 60), slice(48, 80)
    carried = out[1][:, rows, cols] - out[0][:, rows, shift + 48:shift + 80]
    assert float(carried.abs().mean()) < 0.005


def test_blending_starts_afresh_at_a_shot_start():
    frames, stylized = _panning(3, 3), torch.rand(3, 3, 64, 80)
    method = FlowBlend(1.0)
    method.blend(frames[:2], stylized[:2], [True, False])
    out = method.blend(frames[2:], stylized[2:], [True])  # a cut: the previous output is gone
    torch.testing.assert_close(out[0], stylized[2])


# -- the chain ----------------------------------------------------------------------------------

def test_the_chain_runs_only_what_the_settings_turn_on():
    off = Temporal(TemporalOptions())
    assert not off.active and off.stats_hook([True]) is None
    steady = Temporal(TemporalOptions.of(STEADY))
    assert [type(m) for m in steady.methods] == [SmoothStats, FlowBlend]  # registry order
    feats = torch.randn(2, 4, 6, 6)
    mean, _ = steady.stats_hook([True, False])(feats)
    own_mean, _ = ops.mean_std(feats)
    torch.testing.assert_close(mean[0], own_mean[0])
    torch.testing.assert_close(mean[1], 0.9 * own_mean[0] + 0.1 * own_mean[1])
    flow_only = Temporal(TemporalOptions.of({"flow_blend": 0.5}))
    assert flow_only.stats_hook([True]) is None  # AdaIN takes the frames' own statistics


def test_a_method_that_cannot_run_fails_the_check(monkeypatch: pytest.MonkeyPatch):
    def missing() -> None:
        raise OptionError("optical flow needs OpenCV, which is not installed")

    monkeypatch.setattr("vstpipe.flow.cv2_module", missing)
    Temporal.check(TemporalOptions.of({"smooth_stats": 0.5}))  # no flow: fine
    with pytest.raises(OptionError, match="needs OpenCV"):
        Temporal.check(TemporalOptions.of({"flow_blend": 0.5}))


def test_effect_parameters_are_generated_from_the_declarations():
    params = ofx.describe(effects.load_catalog().get("stylize"), "filter").params
    assert (params["smooth_stats"].minimum, params["smooth_stats"].maximum) == (0.0, 0.999)
    assert (params["cut_threshold"].minimum, params["cut_threshold"].maximum) == (0.0, 1.0)
    assert params["flow_blend"].hint == "share of the flow-warped previous output; 0: the preset's"
    assert params["steady"].hint == ("smooth_stats 0.9, flow_blend 0.9 and flow_across_edges 1 "
                                     "where those are 0")
    assert (params["flow_across_edges"].kind, params["flow_across_edges"].minimum,
            params["flow_across_edges"].maximum) == ("integer", 0, 1)


# -- a new method: one class, one registry line ---------------------------------------------------

class Toy(TemporalMethod):
    """Mixes the source frames back into the stylized ones, a share ``toy_mix``."""

    name = "toy"
    options = (Option("toy_mix", float, Range(0.0, 1.0), 0.0,
                      help="Mix the source back in, share in [0, 1].", hint="share of source"),)

    def __init__(self, mix: float) -> None:
        self.mix = mix

    @classmethod
    def create(cls, settings: Settings) -> Toy | None:
        return cls(settings["toy_mix"]) if settings["toy_mix"] > 0 else None

    def reset(self) -> None:
        pass  # no state

    def blend(self, source: torch.Tensor, stylized: torch.Tensor, shot_starts: Sequence[bool]
              ) -> torch.Tensor:
        return stylized.clamp(0, 1) * (1 - self.mix) + source * self.mix


def _clip(path: Path) -> tuple[Path, list[np.ndarray]]:
    """A lossless 64x48 clip of three textured frames, and those frames."""
    frames = [_textured(seed, (48, 64)) for seed in range(3)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "bgr0"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path, frames


def test_a_registered_method_gets_a_preset_key_and_runs(tmp_path: Path, style_png: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(temporal.METHODS, Toy.name, Toy)  # the one registry line

    preset = tmp_path / "toy.toml"
    preset.write_text(f'style = "{style_png}"\ntoy_mix = 0.5\n')
    assert presets.load(preset).temporal["toy_mix"] == 0.5
    preset.write_text(f'style = "{style_png}"\ntoy_mix = 2\n')
    with pytest.raises(ConfigError, match=r"toy\.toml: toy_mix 2.0 is outside \[0, 1\]"):
        presets.load(preset)

    net = random_net()
    src, frames = _clip(tmp_path / "in.mkv")
    out = tmp_path / "out.mkv"
    # What `render --style S --toy-mix 1 --precision fp32 --codec ffv1 --pix-fmt bgr0` asks
    # for; the style image encoded at the smallest style size, as the full mix discards it.
    job = jobs.resolve(jobs.Request(styles=(style_png,), temporal={"toy_mix": 1.0},
                                    precision="fp32", style_size=64, model=net.name,
                                    encode=EncodeOptions(codec="ffv1", pix_fmt="bgr0")))
    pipeline.render(src, out, job, Sessions(nets={net.name: net}))
    with av.open(str(out)) as container:
        rendered = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(rendered) == 3
    for got, want in zip(rendered, frames):  # a full mix gives the source back
        assert np.abs(got.astype(int) - want).max() <= 1


def test_a_registered_method_gets_a_flag_and_an_effect_param(
        tmp_path: Path, vstpipe_home: Path, style_png: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(temporal.METHODS, Toy.name, Toy)  # the one registry line

    for command in ("render", "filter"):
        shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert "--toy-mix" in shown.output and "Mix the source back in" in shown.output

    preset = tmp_path / "toy.toml"
    preset.write_text(f'style = "{style_png}"\ntoy_mix = 0.5\n')
    listed = runner.invoke(app, ["presets", "show", str(preset)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "toy_mix" in listed.output

    described = json.loads(runner.invoke(app, ["ofx", "describe", "stylize"]).stdout)
    param = {p["name"]: p for p in described["params"]}["toy_mix"]
    assert (param["min"], param["max"]) == (0.0, 1.0)
    assert param["hint"] == "share of source; 0: the preset's"

    src, _ = _clip(tmp_path / "in.mkv")
    bad = runner.invoke(app, ["render", str(src), "--out", str(tmp_path / "bad.mkv"),
                              "--style", str(style_png), "--toy-mix", "1.5", "--offline"])
    assert bad.exit_code == 1 and "--toy-mix 1.5 is outside [0, 1]" in bad.output
