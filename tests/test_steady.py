"""Inference-time consistency: smoothed AdaIN statistics and shot-cut resets."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vstpipe import ops
from vstpipe.cli import app
from vstpipe.steady import Steadier, SteadyOptions, colour_histograms

runner = CliRunner()


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


def _render(src: Path, out: Path, style: Path, *extra: str) -> list[np.ndarray]:
    result = runner.invoke(app, ["render", str(src), "--out", str(out), "--style", str(style),
                                 "--offline", "--precision", "fp32", "--codec", "ffv1",
                                 "--pix-fmt", "bgr0", "--batch", "3", *extra])
    assert result.exit_code == 0, result.output
    return _frames(out)


def test_histograms_and_distance():
    x = torch.rand(2, 3, 40, 50)
    h = colour_histograms(x)
    assert h.shape == (2, 48) and torch.allclose(h.sum(1), torch.ones(2))
    assert ops.histogram_distance(h[0], h[0]) == 0
    black, white = colour_histograms(torch.zeros(1, 3, 8, 8)), colour_histograms(
        torch.ones(1, 3, 8, 8))
    assert ops.histogram_distance(black[0], white[0]) == pytest.approx(1.0)


def test_content_stats_are_an_ema_in_frame_order():
    steadier = Steadier(SteadyOptions(smoothing=0.5, cut_threshold=1.0))
    frames = torch.rand(1, 3, 16, 16).expand(4, -1, -1, -1)  # same picture: no cut
    feats = torch.randn(4, 2, 5, 5)
    mean, _ = steadier.content_stats(frames[:3], feats[:3], 0)
    m2, _ = steadier.content_stats(frames[3:], feats[3:], 3)
    own, _ = ops.mean_std(feats)
    expected = own[0]
    for i in range(1, 4):
        expected = 0.5 * expected + 0.5 * own[i]
        got = mean[i] if i < 3 else m2[0]
        torch.testing.assert_close(got, expected)
    assert steadier.cuts == []


def test_a_cut_resets_the_state(tmp_path, adain_home, style_png):
    a, b = _scene(1, 5, 4.0, (1.0, 0.6, 0.3)), _scene(2, 5, 4.0, (0.3, 0.6, 1.0))
    both = _write(tmp_path / "both.mkv", a + b)
    second = _write(tmp_path / "second.mkv", b)
    full = _render(both, tmp_path / "full.mkv", style_png, "--smooth-stats", "0.9")
    fresh = _render(second, tmp_path / "fresh.mkv", style_png, "--smooth-stats", "0.9")
    for i in range(5):
        assert np.abs(full[5 + i] - fresh[i]).max() <= 1, i
    # Without cut detection the first shot's statistics leak into the second.
    leaky = _render(both, tmp_path / "leaky.mkv", style_png, "--smooth-stats", "0.9",
                    "--cut-threshold", "1")
    assert np.abs(leaky[5] - fresh[0]).mean() > 1


@pytest.mark.parametrize("args, needle", [(["--smooth-stats", "1"], "--smooth-stats 1.0"),
                                          (["--cut-threshold", "0"], "--cut-threshold 0.0")])
def test_bad_values_are_one_line(tmp_path, adain_home, style_png, args, needle):
    src = _write(tmp_path / "s.mkv", _scene(1, 2, 1.0))
    result = runner.invoke(app, ["render", str(src), "--out", str(tmp_path / "o.mkv"),
                                 "--style", str(style_png), "--offline", *args])
    assert result.exit_code == 1 and needle in result.output
    assert len(result.output.strip().splitlines()) == 1
