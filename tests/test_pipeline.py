"""End-to-end renders of generated clips through the library and the CLI, with random weights."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from clips import make_clip, truncate_file
from conftest import MEDIA, UVC_DIR, needs_media, needs_uvc
from typer.testing import CliRunner

from vstpipe.cli import app

runner = CliRunner()


def _video_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


def _packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [bytes(p) for p in c.demux(streams) if p.size]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _render(src: Path, out: Path, style: Path, *extra: str) -> None:
    result = runner.invoke(app, ["render", str(src), "--out", str(out), "--style", str(style),
                                 "--offline", "--precision", "fp32", *extra])
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_vfr_clip_with_aac_keeps_frames_pts_and_audio(tmp_path, adain_home, style_png):
    src = make_clip(tmp_path / "vfr.mp4", frames=14, audio="aac", vfr=True)
    out = tmp_path / "out.mp4"
    _render(src, out, style_png, "--batch", "3")
    in_pts = _video_pts(src)
    assert len(set(np.diff(in_pts))) > 1, "the generated clip should have irregular frame gaps"
    assert _video_pts(out) == in_pts
    audio = _packets(src, "audio")
    assert audio and _packets(out, "audio") == audio


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_avi_mpeg4_ac3_renders_to_mp4_and_mov(tmp_path, adain_home, style_png, suffix):
    src = make_clip(tmp_path / "in.avi", frames=10, codec="mpeg4", audio="ac3")
    out = tmp_path / f"out{suffix}"
    _render(src, out, style_png)
    with av.open(str(src)) as c:
        tb_in = c.streams.video[0].time_base
    with av.open(str(out)) as c:
        tb_out = c.streams.video[0].time_base
    seconds_in = [p * tb_in for p in _video_pts(src)]
    seconds_out = [p * tb_out for p in _video_pts(out)]
    assert seconds_out == seconds_in
    assert _packets(out, "audio") == _packets(src, "audio")


def test_output_has_input_size_for_odd_sizes_and_size_option(tmp_path, adain_home, style_png):
    src = make_clip(tmp_path / "odd.mkv", size=(65, 47), frames=5)
    out = tmp_path / "odd_out.mkv"
    _render(src, out, style_png)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.width, s.codec_context.height) == (65, 47)
        assert sum(1 for _ in c.decode(video=0)) == 5
    resized = tmp_path / "resized.mp4"
    _render(src, resized, style_png, "--size", "96x64")
    with av.open(str(resized)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (96, 64)


def test_ten_bit_input_gives_ten_bit_output(tmp_path, adain_home, style_png):
    src = make_clip(tmp_path / "deep.mkv", frames=4, bit_depth=10)
    out = tmp_path / "deep_out.mkv"
    _render(src, out, style_png)
    with av.open(str(out)) as c:
        assert "10" in c.streams.video[0].codec_context.pix_fmt
        assert len(list(c.decode(video=0))) == 4


def test_max_side_processes_smaller_and_keeps_the_output_size(tmp_path, adain_home, style_png):
    src = make_clip(tmp_path / "big.mp4", size=(160, 96), frames=4)
    small, full = tmp_path / "small.mp4", tmp_path / "full.mp4"
    _render(src, small, style_png, "--max-side", "32")
    _render(src, full, style_png)
    a, b = _rgb_frames(small), _rgb_frames(full)
    assert len(a) == 4 and a[0].shape == b[0].shape == (96, 160, 3)
    assert np.abs(a[0] - b[0]).mean() > 1  # a different network resolution really was used


def test_rotation_is_kept(tmp_path, adain_home, style_png):
    from vstpipe.media import probe

    src = make_clip(tmp_path / "rot.mp4", frames=4, rotation=90)
    out = tmp_path / "rot_out.mp4"
    _render(src, out, style_png)
    assert probe(src).rotation != 0
    assert probe(out).rotation == probe(src).rotation


def _rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]


def test_style_weights_select_and_blend_styles(tmp_path, adain_home, style_png):
    from PIL import Image

    other = tmp_path / "other.png"
    ramp = np.linspace(0, 255, 120 * 100 * 3).reshape(120, 100, 3).astype(np.uint8)
    Image.fromarray(ramp).save(other)
    src = make_clip(tmp_path / "c.mkv", frames=3, codec="ffv1", pix_fmt="bgr0")
    renders = {}
    for name, args in {"a": [], "b": ["--style", str(other)],
                       "a_only": ["--style", str(other), "--weights", "1,0"],
                       "mix": ["--style", str(other), "--weights", "1,1"]}.items():
        out = tmp_path / f"{name}.mkv"
        if name == "b":
            _render(src, out, other, "--codec", "ffv1")
        else:
            _render(src, out, style_png, *args, "--codec", "ffv1")
        renders[name] = _rgb_frames(out)
    for fa, fo in zip(renders["a"], renders["a_only"]):
        diff = np.abs(fa - fo)
        assert diff.max() <= 1, np.unravel_index(diff.argmax(), diff.shape)
    for fa, fb, fm in zip(renders["a"], renders["b"], renders["mix"]):
        assert np.abs(fa - fb).mean() > 1  # the two styles really differ ...
        assert np.abs(fm - fa).mean() > 0.2 and np.abs(fm - fb).mean() > 0.2  # ... and blend


# --- bad inputs: one line, exit 1, no output, input untouched ---------------------------------


def _bad(tmp_path: Path, make) -> Path:
    path = tmp_path / "bad.mp4"
    make(path)
    return path


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "text", "audio_only", "missing"])
def test_bad_inputs_give_one_line_and_no_output(tmp_path, adain_home, style_png, kind):
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
    before = _sha(src) if src.exists() else None
    out = tmp_path / "out.mp4"
    result = runner.invoke(app, ["render", str(src), "--out", str(out), "--style",
                                 str(style_png), "--offline"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and src.name in lines[0], result.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []
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


@pytest.mark.parametrize("kind", ["truncated_faststart", "corrupt_packet"])
def test_inputs_that_fail_mid_render_leave_no_output(tmp_path, adain_home, style_png, kind):
    """These fail after the output file was opened: the temp file must go too."""
    if kind == "truncated_faststart":
        good = make_clip(tmp_path / "good.mp4", frames=30, faststart=True)
        src = truncate_file(good, tmp_path / "cut.mp4", keep=0.6)
        needle = "truncated"
    else:
        good = make_clip(tmp_path / "good.mkv", frames=12, codec="ffv1")
        src = _corrupt_packet(good, tmp_path / "bad.mkv", 8)
        needle = "decode error"
    before = _sha(src)
    out = tmp_path / "out.mkv"
    result = runner.invoke(app, ["render", str(src), "--out", str(out), "--style",
                                 str(style_png), "--offline", "--batch", "2"])
    assert result.exit_code == 1, result.output
    # Progress lines may come first; the error itself is exactly one line.
    errors = [line for line in result.output.splitlines() if line.startswith("vstpipe: error")]
    assert len(errors) == 1 and needle in errors[0] and src.name in errors[0], result.output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    assert _sha(src) == before


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
    result = runner.invoke(app, ["render", "x.mp4", "--out", "y.mp4", "--style", "s.png",
                                 "--size", "big"])
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


@needs_uvc
@needs_media
def test_real_uvc_model_restyles_big_buck_bunny_with_audio(tmp_path, vstpipe_home):
    """The acceptance render: real weights, real clip, Starry Night; output saved as PNGs."""
    files = [UVC_DIR / "encoder_single_gpu.pth", UVC_DIR / "decoder_single_gpu.pth"]
    assert runner.invoke(app, ["models", "import", "uvc-lab", *map(str, files)]).exit_code == 0
    src, out = MEDIA / "bigbuckbunny.mp4", tmp_path / "bbb.mp4"
    result = runner.invoke(app, ["render", str(src), "--out", str(out), "--style",
                                 str(MEDIA / "starry_night.jpg"), "--model", "uvc-lab",
                                 "--offline", "--max-side", "480"])
    assert result.exit_code == 0, result.output
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

    src = MEDIA / "carphone_pristine.mp4"
    outs = {}
    for name, extra in (("plain", []), ("keep", ["--preserve-color"])):
        outs[name] = tmp_path / f"{name}.mkv"
        result = runner.invoke(app, ["render", str(src), "--out", str(outs[name]), "--style",
                                     str(MEDIA / "starry_night.jpg"), "--model", str(UVC_DIR),
                                     "--codec", "ffv1", "--pix-fmt", "bgr0", *extra])
        assert result.exit_code == 0, result.output

    def chroma(path: Path) -> np.ndarray:
        import torch

        rgb = np.stack(_rgb_frames(path)[:10]) / 255.0
        return ops.luma_chroma(torch.from_numpy(rgb).permute(0, 3, 1, 2))[1].numpy() * 255

    source, plain, keep = chroma(src), chroma(outs["plain"]), chroma(outs["keep"])
    assert np.abs(keep - source).mean() < 2.0  # source colours (up to clamping at the gamut)
    assert np.abs(plain - source).mean() > 3 * np.abs(keep - source).mean()
