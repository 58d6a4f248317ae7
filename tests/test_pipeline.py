"""Renders of generated clips: what `pipeline.render` does to frames, time, streams, sizes and
depth (library level, one random network per module; the real UVC weights on heads of real
clips), and what `vstpipe render` adds (flags resolved to the job, one-line errors naming
flags and files, exit statuses, Ctrl-C of a real process)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import av
import numpy as np
import pytest
from clips import make_clip, truncate_file
from conftest import MEDIA, UVC_DIR, needs_media, needs_uvc
from mediatools import head_clip, one_line_naming
from PIL import Image
from typer.testing import CliRunner

from vstpipe import cli, model, pipeline, temporal, weights
from vstpipe.cli import app
from vstpipe.errors import MediaError, VstpipeError
from vstpipe.keyframes import Timeline
from vstpipe.media import EncodeOptions
from vstpipe.sessions import Sessions
from vstpipe.spec import Compute, Job, Look
from vstpipe.temporal import TemporalOptions

runner = CliRunner()
# Shorter side the style images are encoded at in the library-level renders: their subject is
# frames, time and streams, and at the default 512 the encoder's pass over a style image is
# most of a render's cost.
STYLE_SIZE = 64


def _job(*styles: Path, weights_: tuple[float, ...] = (), batch: int = 4,
         max_side: int | None = None, encode: EncodeOptions | None = None,
         style_size: int = STYLE_SIZE, settings: dict[str, float] | None = None) -> Job:
    """The job of `render --style ... --precision fp32` with these settings."""
    return Job(Look(Timeline.constant(styles, weights_), style_size=style_size),
               Compute(precision="fp32", batch=batch, max_side=max_side),
               TemporalOptions.of(settings or {}), encode=encode or EncodeOptions())


def _render(src: Path, out: Path, job: Job, net: model.StyleNet) -> pipeline.RenderReport:
    report = pipeline.render(src, out, job, Sessions(nets={job.model: net}))
    assert out.exists()
    return report


def _video_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


def _packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [bytes(p) for p in c.demux(streams) if p.size]


def _rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".out"))


# --- library: frames, time, streams, sizes, depth -------------------------------------------


def test_vfr_clip_with_aac_keeps_frames_pts_and_audio(tmp_path, net, style_png):
    src = make_clip(tmp_path / "vfr.mp4", frames=14, audio="aac", vfr=True)
    out = tmp_path / "out.mp4"
    _render(src, out, _job(style_png, batch=3), net)
    in_pts = _video_pts(src)
    assert len(set(np.diff(in_pts))) > 1, "the generated clip should have irregular frame gaps"
    assert _video_pts(out) == in_pts
    audio = _packets(src, "audio")
    assert audio and _packets(out, "audio") == audio


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_avi_mpeg4_ac3_renders_to_mp4_and_mov(tmp_path, net, style_png, suffix):
    src = make_clip(tmp_path / "in.avi", frames=10, codec="mpeg4", audio="ac3")
    out = tmp_path / f"out{suffix}"
    _render(src, out, _job(style_png), net)
    with av.open(str(src)) as c:
        tb_in = c.streams.video[0].time_base
    with av.open(str(out)) as c:
        tb_out = c.streams.video[0].time_base
    seconds_in = [p * tb_in for p in _video_pts(src)]
    seconds_out = [p * tb_out for p in _video_pts(out)]
    assert seconds_out == seconds_in
    assert _packets(out, "audio") == _packets(src, "audio")


def test_output_has_input_size_for_odd_sizes_and_size_option(tmp_path, net, style_png):
    src = make_clip(tmp_path / "odd.mkv", size=(65, 47), frames=5)
    out = tmp_path / "odd_out.mkv"
    _render(src, out, _job(style_png), net)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.width, s.codec_context.height) == (65, 47)
        assert sum(1 for _ in c.decode(video=0)) == 5
    resized = tmp_path / "resized.mp4"
    _render(src, resized, _job(style_png, encode=EncodeOptions(size=(96, 64))), net)
    with av.open(str(resized)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (96, 64)


def test_ten_bit_input_gives_ten_bit_output(tmp_path, net, style_png):
    src = make_clip(tmp_path / "deep.mkv", frames=4, bit_depth=10)
    out = tmp_path / "deep_out.mkv"
    _render(src, out, _job(style_png), net)
    with av.open(str(out)) as c:
        assert "10" in c.streams.video[0].codec_context.pix_fmt
        assert len(list(c.decode(video=0))) == 4


def test_max_side_processes_smaller_and_keeps_the_output_size(tmp_path, net, style_png):
    src = make_clip(tmp_path / "big.mp4", size=(160, 96), frames=4)
    small, full = tmp_path / "small.mp4", tmp_path / "full.mp4"
    _render(src, small, _job(style_png, max_side=32), net)
    _render(src, full, _job(style_png), net)
    a, b = _rgb_frames(small), _rgb_frames(full)
    assert len(a) == 4 and a[0].shape == b[0].shape == (96, 160, 3)
    assert np.abs(a[0] - b[0]).mean() > 1  # a different network resolution really was used


def test_rotation_is_kept(tmp_path, net, style_png):
    from vstpipe.media import probe

    src = make_clip(tmp_path / "rot.mp4", frames=4, rotation=90)
    out = tmp_path / "rot_out.mp4"
    _render(src, out, _job(style_png), net)
    assert probe(src).rotation != 0
    assert probe(out).rotation == probe(src).rotation


def test_style_weights_select_and_blend_styles(tmp_path, net, style_png):
    other = tmp_path / "other.png"
    ramp = np.linspace(0, 255, 120 * 100 * 3).reshape(120, 100, 3).astype(np.uint8)
    Image.fromarray(ramp).save(other)
    src = make_clip(tmp_path / "c.mkv", frames=3, codec="ffv1", pix_fmt="bgr0")
    ffv1 = EncodeOptions(codec="ffv1")
    renders = {}
    for name, job in {"a": _job(style_png, encode=ffv1), "b": _job(other, encode=ffv1),
                      "a_only": _job(style_png, other, weights_=(1.0, 0.0), encode=ffv1),
                      "mix": _job(style_png, other, weights_=(1.0, 1.0), encode=ffv1)}.items():
        out = tmp_path / f"{name}.mkv"
        _render(src, out, job, net)
        renders[name] = _rgb_frames(out)
    for fa, fo in zip(renders["a"], renders["a_only"]):
        diff = np.abs(fa - fo)
        assert diff.max() <= 1, np.unravel_index(diff.argmax(), diff.shape)
    for fa, fb, fm in zip(renders["a"], renders["b"], renders["mix"]):
        assert np.abs(fa - fb).mean() > 1  # the two styles really differ ...
        assert np.abs(fm - fa).mean() > 0.2 and np.abs(fm - fb).mean() > 0.2  # ... and blend


# --- library: bad inputs raise one line naming the file; no output, input untouched ----------


def _bad_input(tmp_path: Path, kind: str) -> Path:
    src = tmp_path / f"{kind}.mp4"
    if kind == "corrupt":
        src.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        good = make_clip(tmp_path / "good.mp4", frames=20)
        data = good.read_bytes()
        src.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        src.write_text("not a video\n")
    elif kind == "audio_only":
        src = make_clip(tmp_path / "audio.m4a", frames=10, audio="aac", video=False)
    return src


BAD_INPUTS = ["corrupt", "truncated", "text", "audio_only", "missing"]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_inputs_raise_one_line_naming_the_file_and_write_nothing(tmp_path, net, style_png,
                                                                      kind):
    src = _bad_input(tmp_path, kind)
    before = _sha(src) if src.exists() else None
    out = tmp_path / "out.mp4"
    with pytest.raises(VstpipeError) as err:
        _render(src, out, _job(style_png), net)
    one_line_naming(err, src)
    assert not out.exists()
    assert _temp_files(tmp_path) == []
    if before:
        assert _sha(src) == before


def _corrupt_packet(src: Path, dst: Path, index: int) -> Path:
    """Overwrite the middle of one video packet with noise (ffv1's slice CRCs catch it)."""
    with av.open(str(src)) as container:
        packet = [p for p in container.demux(video=0) if p.size][index]
        pos, size = packet.pos, packet.size
    data = bytearray(src.read_bytes())
    noise = np.random.default_rng(1).integers(0, 256, size - 12, dtype=np.uint8)
    data[pos + 8:pos + size - 4] = noise.tobytes()
    dst.write_bytes(bytes(data))
    return dst


def _fails_mid_render(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """An input that fails after the output file was opened, and a word its error contains."""
    if kind == "truncated_faststart":
        good = make_clip(tmp_path / "good.mp4", frames=30, faststart=True)
        return truncate_file(good, tmp_path / "cut.mp4", keep=0.6), "truncated"
    good = make_clip(tmp_path / "good.mkv", frames=12, codec="ffv1")
    return _corrupt_packet(good, tmp_path / "bad.mkv", 8), "decode error"


@pytest.mark.parametrize("kind", ["truncated_faststart", "corrupt_packet"])
def test_inputs_that_fail_mid_render_leave_no_output(tmp_path, net, style_png, kind):
    """These fail after the output file was opened: the temp file must go too."""
    src, needle = _fails_mid_render(tmp_path, kind)
    before = _sha(src)
    out = tmp_path / "out.mkv"
    with pytest.raises(MediaError, match=needle) as err:
        _render(src, out, _job(style_png, batch=2), net)
    one_line_naming(err, src)
    assert not out.exists()
    assert _temp_files(tmp_path) == []
    assert _sha(src) == before


# --- library: the real UVC weights on the head of real clips ---------------------------------


@needs_uvc
@needs_media
def test_real_uvc_model_restyles_big_buck_bunny_with_audio(tmp_path, vstpipe_home):
    """The acceptance render: real weights installed in the cache (their published sha256),
    the first 12 frames of the real clip and its audio, Starry Night."""
    weights.import_files("uvc-lab", [UVC_DIR / "encoder_single_gpu.pth",
                                     UVC_DIR / "decoder_single_gpu.pth"])
    src = head_clip(MEDIA / "bigbuckbunny.mp4", tmp_path / "bbb_head.mp4", 12)
    out = tmp_path / "bbb.mp4"
    job = Job(Look(Timeline.constant([MEDIA / "starry_night.jpg"])), Compute(max_side=480),
              model="uvc-lab")
    pipeline.render(src, out, job, Sessions(offline=True))
    assert _video_pts(out) == _video_pts(src)
    assert _packets(out, "audio") == _packets(src, "audio")
    with av.open(str(src)) as a, av.open(str(out)) as b:
        fa = next(a.decode(video=0)).to_ndarray(format="rgb24").astype(float)
        fb = next(b.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    assert fa.shape == fb.shape
    # Visibly restyled: far from the source, yet still following its structure.
    assert np.abs(fa - fb).mean() > 15
    gray_a, gray_b = fa.mean(-1).ravel(), fb.mean(-1).ravel()
    assert np.corrcoef(gray_a, gray_b)[0, 1] > 0.3


@needs_uvc
@needs_media
def test_real_uvc_preserve_color_keeps_the_source_chroma(tmp_path, vstpipe_home):
    from vstpipe import ops

    src = head_clip(MEDIA / "carphone_pristine.mp4", tmp_path / "carphone_head.mp4", 10)
    sessions = Sessions()  # the weights directory, loaded once for both renders
    outs = {}
    for name, keep in (("plain", False), ("keep", True)):
        outs[name] = tmp_path / f"{name}.mkv"
        job = Job(Look(Timeline.constant([MEDIA / "starry_night.jpg"]), preserve_color=keep),
                  model=str(UVC_DIR), encode=EncodeOptions(codec="ffv1", pix_fmt="bgr0"))
        pipeline.render(src, outs[name], job, sessions)

    def chroma(path: Path) -> np.ndarray:
        import torch

        rgb = np.stack(_rgb_frames(path)[:10]) / 255.0
        return ops.luma_chroma(torch.from_numpy(rgb).permute(0, 3, 1, 2))[1].numpy() * 255

    source, plain, keep = chroma(src), chroma(outs["plain"]), chroma(outs["keep"])
    assert np.abs(keep - source).mean() < 2.0  # source colours (up to clamping at the gamut)
    assert np.abs(plain - source).mean() > 3 * np.abs(keep - source).mean()


# --- CLI: flags to the job, one-line errors, exit statuses, Ctrl-C ---------------------------


def test_render_flags_resolve_to_the_job_the_library_renders(tmp_path, vstpipe_home, net,
                                                             style_png, monkeypatch):
    """What the library-level tests render is what these flags ask for, and the CLI hands it
    to the library with the closing line after."""
    other = tmp_path / "other.png"
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(other)
    src = make_clip(tmp_path / "in.mp4", frames=3)
    out = tmp_path / "out.mkv"
    handed = []

    def render_source(source, out, session, **options) -> pipeline.RenderReport:
        handed.append(session.job)
        return pipeline.RenderReport(3, 1.0, "fp32")

    monkeypatch.setattr(cli, "render_source", render_source)
    # The module's network instead of a cache: loading it is not what is tested here.
    monkeypatch.setattr(cli, "Sessions", partial(Sessions, nets={"adain-vgg19": net}))
    result = runner.invoke(app, [
        "render", str(src), "--out", str(out), "--style", str(style_png), "--style", str(other),
        "--weights", "1,1", "--offline", "--precision", "fp32", "--batch", "3", "--max-side",
        "32", "--size", "96x64", "--codec", "ffv1", "--pix-fmt", "bgr0", "--style-size", "64",
        "--steady", "--cut-threshold", "1"])
    assert result.exit_code == 0, result.output
    assert handed == [_job(style_png, other, weights_=(1.0, 1.0), batch=3, max_side=32,
                           encode=EncodeOptions(codec="ffv1", pix_fmt="bgr0", size=(96, 64)),
                           settings={**temporal.STEADY, "cut_threshold": 1})]
    assert result.output.strip().splitlines()[-1].startswith(f"wrote {out} (3 frames")


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_inputs_give_one_line_and_no_output(tmp_path, adain_home, style_png, kind):
    src = _bad_input(tmp_path, kind)
    before = _sha(src) if src.exists() else None
    out = tmp_path / "out.mp4"
    result = runner.invoke(app, ["render", str(src), "--out", str(out), "--style",
                                 str(style_png), "--offline"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and src.name in lines[0], result.output
    assert not out.exists()
    assert _temp_files(tmp_path) == []
    if before:
        assert _sha(src) == before


def test_an_input_that_fails_mid_render_is_one_error_line_after_the_progress(
        tmp_path, adain_home, style_png):
    src, needle = _fails_mid_render(tmp_path, "corrupt_packet")
    out = tmp_path / "out.mkv"
    result = runner.invoke(app, ["render", str(src), "--out", str(out), "--style",
                                 str(style_png), "--offline", "--batch", "2", "--style-size",
                                 "64", "--precision", "fp32"])
    assert result.exit_code == 1, result.output
    # Progress lines may come first; the error itself is exactly one line.
    errors = [line for line in result.output.splitlines() if line.startswith("vstpipe: error")]
    assert len(errors) == 1 and needle in errors[0] and src.name in errors[0], result.output
    assert not out.exists()


@pytest.mark.parametrize("args, needle", [
    (["--alpha", "1.5"], "--alpha 1.5"),
    (["--alpha", "nan"], "--alpha nan"),
    (["--weights", "nan,1", "--style", "x.png"], "weights must be >= 0"),
    (["--max-side", "8"], "--max-side 8"),
    (["--batch", "0"], "--batch 0"),
    (["--weights", "1,2"], "--weights has 2 values"),
    (["--device", "tpu"], "--device 'tpu'"),
    (["--codec", "nonesuch"], "nonesuch"),
    (["--model", "nonesuch"], "nonesuch"),
])
def test_bad_options_give_one_line_and_no_output(tmp_path, adain_home, style_png, args, needle):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    out = tmp_path / "out.mp4"
    result = runner.invoke(app, ["render", str(src), "--out", str(out), "--style",
                                 str(style_png), "--offline", *args])
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1 and needle in result.output
    assert not out.exists()


def test_missing_style_image_and_existing_output(tmp_path, adain_home, style_png):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    out = tmp_path / "out.mp4"
    result = runner.invoke(app, ["render", str(src), "--out", str(out), "--style",
                                 str(tmp_path / "nope.png"), "--offline"])
    assert result.exit_code == 1 and "nope.png" in result.output
    assert not out.exists()
    out.write_bytes(b"keep me")
    result = runner.invoke(app, ["render", str(src), "--out", str(out), "--style",
                                 str(style_png), "--offline"])
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert out.read_bytes() == b"keep me"
    before = _sha(src)
    result = runner.invoke(app, ["render", str(src), "--out", str(src), "--style",
                                 str(style_png), "--offline", "--overwrite"])
    assert result.exit_code == 1 and "input" in result.output
    assert _sha(src) == before


def test_usage_errors_exit_2(tmp_path):
    # A value the flag's type cannot parse; --size is parsed by spec.parse_size instead, an
    # exit-1 one-liner (test_spec).
    result = runner.invoke(app, ["render", "x.mp4", "--out", "y.mp4", "--style", "s.png",
                                 "--batch", "many"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["render", "x.mp4", "--style", "s.png"])  # no --out
    assert result.exit_code == 2


def test_ctrl_c_leaves_no_output(tmp_path, adain_home, style_png):
    src = make_clip(tmp_path / "long.mp4", size=(320, 240), frames=200)
    out = tmp_path / "out.mp4"
    env = dict(os.environ, VSTPIPE_HOME=str(adain_home))
    proc = subprocess.Popen([sys.executable, "-m", "vstpipe", "render", str(src), "--out",
                             str(out), "--style", str(style_png), "--offline", "--batch", "1"],
                            env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            p.name.startswith(".out") for p in tmp_path.iterdir()):
        time.sleep(0.1)
    assert any(p.name.startswith(".out") for p in tmp_path.iterdir()), "render never started"
    time.sleep(1.0)
    assert proc.poll() is None, "render finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_auto_precision_gives_the_same_pixels_twice_under_a_cpu_burning_neighbour(
        tmp_path, net, style_png, monkeypatch):
    # Any bf16 error passes, so the speed figure alone decides: the one that load would sway.
    from vstpipe import precision

    monkeypatch.setattr(precision, "BF16_TOLERANCE", 255)
    monkeypatch.setenv("VSTPIPE_HOME", str(tmp_path / "home"))
    src = make_clip(tmp_path / "in.mkv", frames=4)
    job = Job(Look(Timeline.constant([style_png]), style_size=STYLE_SIZE),
              Compute(precision="auto", batch=2), encode=EncodeOptions(codec="ffv1"))
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(os.cpu_count() or 2)]
    try:
        first = _render(src, tmp_path / "a.mkv", job, net)
        second = _render(src, tmp_path / "b.mkv", job, net)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert "measured now" in first.precision and "measured earlier" in second.precision
    assert first.precision.split(" ")[0] == second.precision.split(" ")[0]
    a, b = _rgb_frames(tmp_path / "a.mkv"), _rgb_frames(tmp_path / "b.mkv")
    assert len(a) == len(b) == 4
    for n, (x, y) in enumerate(zip(a, b, strict=True)):
        np.testing.assert_array_equal(x, y, err_msg=f"frame {n}")
