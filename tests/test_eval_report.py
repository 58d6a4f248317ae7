"""`vstpipe eval --report`: the per-frame trace, the page, and the page in a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mediatools import smooth_texture, write_lossless
from PIL import Image
from typer.testing import CliRunner

from vstpipe.cli import app
from vstpipe.eval_report import Trace
from vstpipe.evaluate import EvalOptions, evaluate_many

SIZE, STEP, FRAMES, FLICKER = (96, 64), (2, 1), 12, 7  # FLICKER: the frame given noise
OPTS = EvalOptions(long_gap=3, flow="dis")


def _pan(frames: int, seed: int) -> list[np.ndarray]:
    (w, h), (dx, dy) = SIZE, STEP
    canvas = np.round(smooth_texture(h + dy * frames, w + dx * frames, seed, 3.0) * 255)
    canvas = canvas.astype(np.uint8)
    return [np.ascontiguousarray(canvas[dy * i:dy * i + h, dx * i:dx * i + w])
            for i in range(frames)]


def _clips(tmp_path: Path, cut: bool = False) -> tuple[Path, Path]:
    """A pan (with a scene cut to another texture at frame 6 when ``cut``), and a green
    "render" of it that is exact except for noise on frame FLICKER."""
    frames = _pan(FRAMES, 0)
    if cut:
        frames = frames[:6] + _pan(FRAMES - 6, 5)
    render = [np.stack([f[..., 0] // 4, f[..., 1] // 2 + 120, f[..., 2] // 4], axis=2)
              for f in frames]
    noise = np.random.default_rng(3).integers(-40, 41, render[FLICKER].shape)
    render[FLICKER] = np.clip(render[FLICKER].astype(int) + noise, 0, 255).astype(np.uint8)
    return (write_lossless(tmp_path / "src.mkv", frames),
            write_lossless(tmp_path / "green.mkv", render))


def test_the_trace_holds_every_pair_and_the_worst_frames_are_the_flickering_ones(
        tmp_path: Path):
    source, render = _clips(tmp_path)
    trace = Trace(2, worst=2)
    reports = evaluate_many(source, [source, render], OPTS, trace=trace)
    assert len(trace.source) == FRAMES - 1 and trace.cuts == []
    assert all(len(curve) == FRAMES - 1 for curve in trace.curves)
    # The mean of a curve is the report's short-term error.
    for curve, report in zip(trace.curves, reports, strict=True):
        assert np.mean(curve) == pytest.approx(report.warp_error, rel=1e-9)
    assert np.mean(trace.source) == pytest.approx(reports[0].warp_error_source, rel=1e-9)
    # The green render differs from its warped predecessor only into and out of frame 7.
    worst = trace.worst(1)
    assert sorted(w.index for w in worst) == [FLICKER, FLICKER + 1]
    assert worst[0].error >= worst[1].error > 10 * np.median(trace.curves[1])
    assert worst[0].frame.shape == worst[0].warped.shape == worst[0].difference.shape
    assert trace.size == SIZE


def test_a_scene_cut_is_a_gap_in_every_curve(tmp_path: Path):
    source, render = _clips(tmp_path, cut=True)
    trace = Trace(1)
    evaluate_many(source, [render], OPTS, trace=trace)
    assert trace.cuts == [6]
    assert trace.source[5] is None and trace.curves[0][5] is None
    assert all(v is not None for i, v in enumerate(trace.curves[0]) if i != 5)


def test_eval_report_writes_one_self_contained_page(tmp_path: Path):
    source, render = _clips(tmp_path, cut=True)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["eval", str(source), str(source), str(render),
                                      "--flow", "dis", "--long-gap", "3", "--report", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert '<b id="flow">dis</b>' in text and "Figures (dis)" in text
    assert text.count("<tr>") == 4  # header, source, two renders
    assert text.count('class="cut"') == 1 and "<polyline" in text
    assert text.count('src="data:image/png;base64,') == 2 * 3 * 3  # 2 renders x 3 worst x 3
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched
    # An existing report is not replaced without --overwrite, and stays as it was.
    again = CliRunner().invoke(app, ["eval", str(source), str(render), "--flow", "dis",
                                     "--report", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output
    assert out.read_text() == text
    again = CliRunner().invoke(app, ["eval", str(source), str(render), "--flow", "dis",
                                     "--report", str(out), "--overwrite"])
    assert again.exit_code == 0 and out.read_text() != text


def test_a_report_over_an_input_is_refused_before_any_work(tmp_path: Path):
    source, render = _clips(tmp_path)
    before = render.read_bytes()
    result = CliRunner().invoke(app, ["eval", str(source), str(render), "--flow", "dis",
                                      "--report", str(render), "--overwrite"])
    assert result.exit_code == 1 and "is an input" in result.output
    assert render.read_bytes() == before


def _chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


def _browse(page: Path, shot: Path) -> str:
    """Load ``page`` in headless Chromium, screenshot it; its log (console lines included)."""
    done = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--enable-logging=stderr", "--log-level=0", "--window-size=1100,2400",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    return done.stderr


def _console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed (.ci/run installs it)")
def test_the_report_draws_its_plot_and_thumbnails_in_a_real_browser(tmp_path: Path):
    source, render = _clips(tmp_path, cut=True)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["eval", str(source), str(render), "--flow", "dis",
                                      "--long-gap", "3", "--report", str(out)])
    assert result.exit_code == 0, result.output
    log = _browse(out, tmp_path / "shot.png")
    assert _console_errors(log) == []
    shot = np.asarray(Image.open(tmp_path / "shot.png").convert("RGB")).astype(int)
    r, g, b = shot[..., 0], shot[..., 1], shot[..., 2]
    # The render's curve is drawn in #d62728, the source's in #555555.
    red = (abs(r - 214) < 30) & (abs(g - 39) < 30) & (abs(b - 40) < 30)
    grey = (abs(r - 85) < 12) & (abs(g - 85) < 12) & (abs(b - 85) < 12)
    assert red.sum() > 200 and grey.sum() > 200
    # The thumbnails show the green render: strongly green pixels, nowhere else on the page.
    green = (g > 120) & (r < 90) & (b < 90)
    assert green.sum() > 3 * 60 * 40
    # The browser check can fail: a page that throws is caught.
    broken = tmp_path / "broken.html"
    broken.write_text("<!doctype html><script>undefinedFunction()</script>")
    assert _console_errors(_browse(broken, tmp_path / "broken.png"))
