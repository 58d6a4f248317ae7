"""`vstpipe filter`: raw frames through :func:`pipeline.filter_raw` equal :func:`pipeline.render`'s
frames, and streams that end early or on a frame boundary (library level, one random network
per module); the command's exit status, messages and bad options (in-process); a closed stdout
through a real process and pipe; the README's ffmpeg pipeline when ffmpeg is installed."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from clips import frame_rgb, make_clip, video_frames
from PIL import Image
from typer.testing import CliRunner

from vstpipe import jobs, pipeline, rawio
from vstpipe.cli import app
from vstpipe.errors import MediaError
from vstpipe.media import EncodeOptions
from vstpipe.rawio import RawOptions
from vstpipe.sessions import Sessions
from vstpipe.temporal import STEADY

runner = CliRunner()
SIZE = (64, 48)
FRAME_BYTES = SIZE[0] * SIZE[1] * 3  # one rgb24 frame
FRAMES = 10
FPS = 25
# Shorter side the style images are encoded at (the smallest allowed): these tests are about
# frames and bytes, and at the default 512 the encoder's pass over each style image would be
# most of their cost. Both sides of every comparison use the same value.
STYLE_SIZE = 64
README = Path(__file__).resolve().parents[1] / "README.md"


def _rgb24_stream(frames: int = FRAMES) -> bytes:
    return b"".join(frame_rgb(i, SIZE).tobytes() for i in range(frames))


def _as_raw(pix_fmt: str, frames: list[np.ndarray]) -> bytes:
    """uint8 RGB frames in ``pix_fmt``'s bytes, each exactly the value to_tensor makes of them:
    v * 257 / 65535 and float32(v) / 255 are the same float32 as v / 255."""
    if pix_fmt == "rgb24":
        return b"".join(f.tobytes() for f in frames)
    if pix_fmt == "rgb48le":
        return b"".join((f.astype("<u2") * 257).tobytes() for f in frames)
    planes = [np.stack([f[..., 1], f[..., 2], f[..., 0]]).astype("<f4") / np.float32(255)
              for f in frames]  # G, B, R
    return b"".join(p.astype("<f4").tobytes() for p in planes)


def _from_raw(pix_fmt: str, data: bytes) -> np.ndarray:
    """Raw bytes -> (N, H, W, 3) RGB: uint8, uint16, or float32 in [0, 1]."""
    w, h = SIZE
    if pix_fmt == "rgb24":
        return np.frombuffer(data, np.uint8).reshape(-1, h, w, 3)
    if pix_fmt == "rgb48le":
        return np.frombuffer(data, "<u2").reshape(-1, h, w, 3).astype(np.uint16)
    g, b, r = np.moveaxis(np.frombuffer(data, "<f4").reshape(-1, 3, h, w), 1, 0)
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def _assert_close(got: np.ndarray, want: np.ndarray, atol: float) -> None:
    """Equal within ``atol``, else name the first frame and pixel that differ."""
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if diff.max() > atol:
        n, y, x, c = np.unravel_index(int(diff.argmax()), diff.shape)
        pytest.fail(f"frame {n} pixel ({x}, {y}) channel {c}: {got[n, y, x, c]} vs "
                    f"{want[n, y, x, c]} (max diff {diff.max()}, {int((diff > atol).sum())} "
                    "values differ)")


def _filter(sessions: Sessions, request: jobs.Request, raw: RawOptions, stream: bytes
            ) -> tuple[pipeline.FilterReport, bytes]:
    """What `vstpipe filter` does with its stdin and stdout, on bytes in memory."""
    job = jobs.resolve(request, 1 / raw.frame_time if raw.frame_time else None)
    pipeline.filter_preflight(job, raw)
    dst = io.BytesIO()
    report = pipeline.filter_raw(io.BytesIO(stream), dst, sessions.session(job, raw.size), raw)
    return report, dst.getvalue()


@pytest.fixture
def show(tmp_path: Path, style_png: Path) -> Path:
    """A keyframed look: one style, a switch to another at f3, a fade to the source by 0.32 s,
    so frame times must resolve from the frame time exactly as render takes them from pts."""
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    path = tmp_path / "show.toml"
    path.write_text(f"""
[timeline]
ease = "linear"
[[keyframe]]
at = 0.0
style = "{style_png}"
[[keyframe]]
at = "f3"
style = "b.png"
[[keyframe]]
at = 0.2
style = {{ "{style_png}" = 1, "b.png" = 1 }}
alpha = 0.7
[[keyframe]]
at = 0.32
style = "none"
""")
    return path


# (input pix-fmt, output pix-fmt, how render writes the same depth, timing as the filter command
# is given it (--fps or --timebase), tolerance)
CASES = [
    ("rgb24", "rgb24", "bgr0", ("fps", "25"), 0),
    ("rgb24", "rgb48le", "gbrp16le", ("timebase", "1/25"), 0),
    ("rgb48le", "rgb48le", "gbrp16le", ("fps", "25/1"), 0),
    # render has no float output: its 16-bit frames are round(y * 65535) of the same y.
    ("gbrpf32le", "gbrpf32le", "gbrp16le", ("fps", "25"), 0.5 / 65535 + 1e-7),
]


@pytest.mark.parametrize(("pix_fmt", "out_fmt", "render_fmt", "timing", "atol"), CASES,
                         ids=[f"{a}-{b}" for a, b, *_ in CASES])
def test_filter_equals_render(tmp_path, sessions, show, pix_fmt, out_fmt, render_fmt, timing,
                              atol):
    # ffv1 in bgr0 is lossless RGB: render decodes exactly frame_rgb(i), the filter's input.
    src = make_clip(tmp_path / "in.mkv", frames=FRAMES, fps=FPS, codec="ffv1", pix_fmt="bgr0")
    look = jobs.Request(keyframes=show, temporal=dict(STEADY), batch=3, precision="fp32",
                        style_size=STYLE_SIZE)
    out = tmp_path / "out.mkv"
    job = jobs.resolve(replace(look, encode=EncodeOptions(codec="ffv1", pix_fmt=render_fmt)),
                       Fraction(FPS))
    pipeline.render(src, out, job, sessions)
    want = np.stack(video_frames(out))
    if out_fmt == "gbrpf32le":
        want = want.astype(np.float32) / 65535

    setting, text = timing  # as the command reads --fps / --timebase
    rate = rawio.parse_rate(text, setting)
    raw = RawOptions(size=SIZE, pix_fmt=pix_fmt, out_pix_fmt=out_fmt,
                     frame_time=1 / rate if setting == "fps" else rate)
    stream = _as_raw(pix_fmt, [frame_rgb(i, SIZE) for i in range(FRAMES)])
    report, got = _filter(sessions, look, raw, stream)
    assert report.frames == FRAMES and not report.output_closed
    _assert_close(_from_raw(out_fmt, got), want, atol)


def test_short_final_frame_is_an_error_after_the_complete_frames(sessions, style_png):
    stream = _rgb24_stream(3)[:2 * FRAME_BYTES + 1000]
    request = jobs.Request(styles=(style_png,), precision="fp32", batch=4,
                           style_size=STYLE_SIZE)
    job = jobs.resolve(request)
    raw = RawOptions(size=SIZE)
    pipeline.filter_preflight(job, raw)
    dst = io.BytesIO()
    with pytest.raises(MediaError) as err:
        pipeline.filter_raw(io.BytesIO(stream), dst, sessions.session(job, raw.size), raw)
    assert "1000 bytes" in str(err.value) and f"{FRAME_BYTES} bytes" in str(err.value)
    assert len(dst.getvalue()) == 2 * FRAME_BYTES  # both complete frames were written


def test_end_at_a_frame_boundary_and_empty_input(sessions, style_png):
    request = jobs.Request(styles=(style_png,), precision="fp32", style_size=STYLE_SIZE)
    raw = RawOptions(size=SIZE)
    report, out = _filter(sessions, request, raw, b"")
    assert report.frames == 0 and out == b""
    report, out = _filter(sessions, request, raw, _rgb24_stream(1))
    assert report.frames == 1 and len(out) == FRAME_BYTES


# -- the command --------------------------------------------------------------------------------

def _filter_cmd(args: list[str], stdin: bytes):
    return runner.invoke(app, ["filter", "--size", "64x48", "--offline", "--precision", "fp32",
                               "--style-size", str(STYLE_SIZE), *args], input=stdin)


def test_the_command_reports_a_short_final_frame_in_one_line(adain_home, style_png):
    result = _filter_cmd(["--style", str(style_png), "--quiet", "--batch", "4"],
                         _rgb24_stream(3)[:2 * FRAME_BYTES + 1000])
    assert result.exit_code == 1
    assert "1000 bytes" in result.stderr and f"{FRAME_BYTES} bytes" in result.stderr, \
        result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, \
        result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.stdout_bytes) == 2 * FRAME_BYTES  # both complete frames were written


def test_the_command_exits_zero_at_a_frame_boundary_and_on_empty_input(adain_home, style_png):
    args = ["--style", str(style_png), "--quiet"]
    empty = _filter_cmd(args, b"")
    assert empty.exit_code == 0 and empty.stdout_bytes == b"" and empty.stderr == "", \
        empty.output
    one = _filter_cmd(args, _rgb24_stream(1))
    assert one.exit_code == 0 and len(one.stdout_bytes) == FRAME_BYTES, one.output


def test_closed_stdout_stops_quietly(tmp_path, adain_home, style_png):
    """The one test of the filter as its own process: a reader that closes the pipe early (like
    `| head -c 9216`) ends it with status 0 and a closing line, no BrokenPipeError at exit."""
    (tmp_path / "in.rgb").write_bytes(_rgb24_stream(16))
    with open(tmp_path / "in.rgb", "rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vstpipe", "filter", "--size", "64x48", "--style",
             str(style_png), "--offline", "--precision", "fp32", "--batch", "2",
             "--style-size", str(STYLE_SIZE)],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, VSTPIPE_HOME=str(adain_home)))
        first = proc.stdout.read(FRAME_BYTES)  # like `| head -c 9216`
        proc.stdout.close()
        _, err = proc.communicate(timeout=300)
    assert len(first) == FRAME_BYTES
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode() and "Error" not in err.decode(), err.decode()
    assert "stdout was closed by its reader" in err.decode()


@pytest.mark.parametrize(("args", "needle"), [
    (["--size", "0x10"], "--size 0x10"),
    (["--size", "64"], "not WxH"),
    (["--pix-fmt", "yuv420p"], "valid: rgb24, rgb48le, gbrpf32le"),
    (["--out-pix-fmt", "nv12"], "--out-pix-fmt nv12"),
    (["--fps", "25", "--timebase", "1/25"], "not both"),
    (["--fps", "0"], "--fps 0: use a positive value"),
    (["--timebase", "abc"], "30000/1001"),
    (["--batch", "0"], "--batch 0"),
    (["--alpha", "0.5", "--keyframes", "KEYS"], "--alpha does not apply"),
    (["--keyframes", "KEYS"], "--keyframes needs --fps or --timebase"),
])
def test_bad_options_are_one_line(tmp_path, vstpipe_home, style_png, args, needle):
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[keyframe]]\nat = 0\nstyle = "{style_png}"\n'
                    f'[[keyframe]]\nat = 1\nstyle = "none"\n')
    args = [str(keys) if a == "KEYS" else a for a in args]
    style = [] if "--keyframes" in args else ["--style", str(style_png)]
    base = ["filter", "--size", "64x48", *style, "--offline"]
    result = runner.invoke(app, [*base, *args], input=b"")
    assert result.exit_code == 1, result.output
    assert needle in result.output and len(result.output.strip().splitlines()) == 1, \
        result.output


def _readme_pipeline() -> str:
    """The shell block of the README's `vstpipe filter` section, as written."""
    section = README.read_text().split("## `vstpipe filter`", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)


@pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                    reason="ffmpeg not installed")
def test_readme_ffmpeg_pipeline_runs_as_written(tmp_path, adain_home):
    make_clip(tmp_path / "in.mp4", frames=FRAMES, fps=FPS, audio="aac")
    bin_dir = Path(sys.executable).parent  # where `vstpipe` is installed alongside python
    env = dict(os.environ, VSTPIPE_HOME=str(adain_home),
               PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    script = _readme_pipeline()
    assert "vstpipe filter" in script and "-map '1:a?'" in script
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "out.mp4")) as c:
        video = c.streams.video[0]
        assert (video.width, video.height) == SIZE
        assert len(c.streams.audio) == 1
        assert sum(1 for _ in c.decode(video=0)) == FRAMES
    files = lambda: sorted(p.name for p in tmp_path.iterdir() if p.suffix)  # noqa: E731
    assert files() == ["in.mp4", "out.mp4"]
    # vstpipe failing in the middle (a preset that does not exist): the script fails and
    # leaves no output, not a playable-looking stub.
    (tmp_path / "out.mp4").unlink()
    broken = script.replace("--preset vangogh", "--preset nosuchlook")
    failed = subprocess.run(["bash", "-c", broken], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert failed.returncode == 1 and "nosuchlook" in failed.stderr
    assert files() == ["in.mp4"]
