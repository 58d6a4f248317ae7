"""Inference-time consistency of `pipeline.render`: --steady's settings, their parts, shot-cut
resets (library level, one random network per module); the `render` flags that set them and
their one-line errors (CLI).

The methods themselves (vstpipe.temporal) have module tests in test_temporal.py.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vstpipe import cli, model, ops, pipeline, temporal
from vstpipe.cli import app
from vstpipe.errors import OptionError
from vstpipe.keyframes import Timeline
from vstpipe.media import EncodeOptions
from vstpipe.sessions import Sessions
from vstpipe.spec import Compute, Job, Look
from vstpipe.temporal import TemporalOptions

runner = CliRunner()
# Shorter side the style image is encoded at: these tests' subject is how frames follow each
# other, and at the default 512 the encoder's pass over the style image is most of a render.
STYLE_SIZE = 64
SMOOTH, FLOW, STEADY = {"smooth_stats": 0.9}, {"flow_blend": 0.8}, temporal.with_steady({}, True)


def _write(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """A lossless clip of exactly these RGB frames."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], \
            "bgr0"
        stream.codec_context.time_base = Fraction(1, fps)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _scene(seed: int, frames: int, noise: float, tint=(1.0, 1.0, 1.0)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = (rng.random((48, 64, 3)) * 200 + 20) * np.array(tint)
    return [np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
            for _ in range(frames)]


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]


def _job(style: Path, settings: dict[str, float], style_size: int = STYLE_SIZE) -> Job:
    """The job of `render --style STYLE --precision fp32 --codec ffv1 --pix-fmt bgr0 --batch 3`
    with these temporal settings."""
    return Job(Look(Timeline.constant([style]), style_size=style_size),
               Compute(precision="fp32", batch=3), TemporalOptions.of(settings),
               encode=EncodeOptions(codec="ffv1", pix_fmt="bgr0"))


def _render(src: Path, out: Path, style: Path, net: model.StyleNet, settings: dict[str, float],
            overwrite: bool = False, style_size: int = STYLE_SIZE) -> list[np.ndarray]:
    job = _job(style, settings, style_size)
    pipeline.render(src, out, job, Sessions(nets={job.model: net}), overwrite=overwrite)
    return _frames(out)


# --- library: what the settings do to a render ------------------------------------------


@pytest.mark.parametrize("settings", [SMOOTH, FLOW, STEADY],
                         ids=["smooth-stats", "flow-blend", "steady"])
def test_a_cut_resets_the_state(tmp_path, net, style_png, settings):
    a, b = _scene(1, 5, 4.0, (1.0, 0.6, 0.3)), _scene(2, 5, 4.0, (0.3, 0.6, 1.0))
    both = _write(tmp_path / "both.mkv", a + b)
    second = _write(tmp_path / "second.mkv", b)
    full = _render(both, tmp_path / "full.mkv", style_png, net, settings)
    fresh = _render(second, tmp_path / "fresh.mkv", style_png, net, settings)
    for i in range(5):
        assert np.abs(full[5 + i] - fresh[i]).max() <= 1, i
    # Without cut detection the first shot's look leaks into the second (for the flow alone
    # only where the flow across the cut happens to pass the occlusion test).
    leaky = _render(both, tmp_path / "leaky.mkv", style_png, net,
                    {**settings, "cut_threshold": 1})
    assert np.abs(leaky[5] - fresh[0]).max() > 8


def _textured(seed: int, size: tuple[int, int]) -> np.ndarray:
    """Smooth random texture (H, W, 3) uint8 that optical flow can follow."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, size[0] // 8, size[1] // 8))).float()
    fine = torch.nn.functional.interpolate(coarse, size=size, mode="bicubic",
                                           align_corners=False)
    return (fine[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def test_static_scene_renders_to_near_identical_frames(tmp_path, net, style_png):
    rng = np.random.default_rng(3)
    base = _textured(0, (48, 64)).astype(float)
    frames = [np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
              for _ in range(8)]
    src = _write(tmp_path / "still.mkv", frames)

    def jitter(settings: dict[str, float]) -> float:
        # At the default style size: with the style statistics of a 64-pixel image, too little
        # of the source's noise reaches the output for per_frame's floor below.
        out = _render(src, tmp_path / "o.mkv", style_png, net, settings, overwrite=True,
                      style_size=Look.style_size)
        return float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(out)]))

    per_frame, steady = jitter({}), jitter(STEADY)
    steadiest = jitter({"smooth_stats": 0.9, "flow_blend": 1})
    assert per_frame > 2  # the noise does reach the output: the test can fail
    assert steady < 0.5 * per_frame
    # A still shot stays still: every frame repeats the first, but around the few pixels that
    # fail the occlusion test, which the feathered mask widens by 2 px (0.56 levels here).
    assert steadiest < 0.8


def test_guided_blend_is_the_documented_formula():
    current, warped = torch.tensor([0.2, 0.2, 0.2]), torch.tensor([1.0, 1.0, 1.0])
    valid = torch.tensor([1.0, 0.0, 1.0])
    torch.testing.assert_close(ops.guided_blend(current, warped, valid, 0.25),
                               torch.tensor([0.4, 0.2, 0.4]))


@pytest.mark.parametrize("settings, needle", [({"smooth_stats": 1}, "smooth_stats 1.0"),
                                              ({"flow_blend": 1.5}, "flow_blend 1.5"),
                                              ({"cut_threshold": 0}, "cut_threshold 0.0")])
def test_bad_values_are_one_line_naming_the_setting(style_png, settings, needle):
    with pytest.raises(OptionError, match=needle) as err:
        _job(style_png, settings)
    assert "\n" not in str(err.value)


# --- CLI: the flags that set them ------------------------------------------------------------


def test_the_temporal_flags_resolve_to_the_settings_the_library_tests_render(
        tmp_path, vstpipe_home, net, style_png, monkeypatch):
    src = _write(tmp_path / "s.mkv", _scene(1, 2, 1.0))
    handed = []

    def render_source(source, out, session, **options) -> pipeline.RenderReport:
        handed.append(session.job)
        return pipeline.RenderReport(2, 1.0, "fp32")

    monkeypatch.setattr(cli, "render_source", render_source)
    # The module's network instead of a cache: loading it is not what is tested here.
    monkeypatch.setattr(cli, "Sessions", partial(Sessions, nets={"adain-vgg19": net}))
    flags = {"smooth-stats": (["--smooth-stats", "0.9"], SMOOTH),
             "flow-blend": (["--flow-blend", "0.8"], FLOW),
             "steady": (["--steady"], STEADY),
             "steady, no cuts": (["--steady", "--cut-threshold", "1"],
                                 {**STEADY, "cut_threshold": 1}),
             "steadiest": (["--smooth-stats", "0.9", "--flow-blend", "1"],
                           {"smooth_stats": 0.9, "flow_blend": 1})}
    for name, (args, settings) in flags.items():
        result = runner.invoke(app, ["render", str(src), "--out", str(tmp_path / "o.mkv"),
                                     "--style", str(style_png), "--offline", "--precision",
                                     "fp32", "--codec", "ffv1", "--pix-fmt", "bgr0", "--batch",
                                     "3", "--style-size", str(STYLE_SIZE), *args])
        assert result.exit_code == 0, (name, result.output)
        assert handed.pop() == _job(style_png, settings), name


@pytest.mark.parametrize("args, needle", [(["--smooth-stats", "1"], "--smooth-stats 1.0"),
                                          (["--flow-blend", "1.5"], "--flow-blend 1.5"),
                                          (["--cut-threshold", "0"], "--cut-threshold 0.0")])
def test_bad_values_are_one_line(tmp_path, adain_home, style_png, args, needle):
    src = _write(tmp_path / "s.mkv", _scene(1, 2, 1.0))
    result = runner.invoke(app, ["render", str(src), "--out", str(tmp_path / "o.mkv"),
                                 "--style", str(style_png), "--offline", *args])
    assert result.exit_code == 1 and needle in result.output
    assert len(result.output.strip().splitlines()) == 1
