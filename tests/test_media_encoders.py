"""vstpipe.media.encoders: the encoder flags reach the stream (probed in the output), and what
an encoder cannot take is refused before frame one, naming what is valid."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import clips
import pytest
from mediatools import decoded_items, pass_through

from vstpipe.errors import OptionError
from vstpipe.media import (
    EncodeOptions,
    check_encode_options,
    open_sink,
    open_source,
    parse_bitrate,
    parse_encoder_opt,
)
from vstpipe.media.encoders import x264_params


def _x264_settings(path: Path) -> str:
    """The settings x264 writes into its stream (an SEI message in the first packet)."""
    with av.open(str(path)) as c:
        first = next(bytes(p) for p in c.demux(video=0) if p.size)
    start = first.index(b"x264 - core")
    return first[start:first.index(b"\x00", start)].decode()


def _stream(path: Path) -> tuple[str | None, str, int]:
    """(profile, pixel format, frames) of the output's video."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = sum(1 for _ in c.decode(stream))
        return stream.codec_context.profile, stream.codec_context.pix_fmt, frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return clips.make_clip(tmp_path_factory.mktemp("enc") / "in.mp4", size=(320, 136),
                           frames=6)


def test_x264_preset_tune_and_encoder_options_reach_the_stream(clip, tmp_path):
    out = tmp_path / "out.mp4"
    pass_through(clip, out, EncodeOptions(encoder_preset="ultrafast", tune="zerolatency",
                                          encoder_opts=(("g", "3"),)))
    settings = _x264_settings(out)
    # ultrafast: no CABAC, subme 0; zerolatency: no B-frames, no lookahead; g: the GOP.
    for needle in ("cabac=0", "subme=0", "bframes=0", "mbtree=0", "keyint=3", "rc=crf",
                   "crf=18.0"):
        assert needle in settings, needle
    defaults = tmp_path / "defaults.mp4"
    pass_through(clip, defaults)
    for needle in ("cabac=1", "subme=7", "bframes=3", "mbtree=1", "keyint=250"):
        assert needle in _x264_settings(defaults), needle


def test_a_bitrate_replaces_constant_quality(clip, tmp_path):
    out = tmp_path / "out.mp4"
    pass_through(clip, out, EncodeOptions(bitrate=parse_bitrate("300k")))
    settings = _x264_settings(out)
    assert "rc=abr" in settings and "bitrate=300" in settings and "crf=" not in settings


@pytest.mark.parametrize("options, profile, pix_fmt", [
    (EncodeOptions(profile="high10"), "High 10", "yuv420p10le"),
    (EncodeOptions(profile="high444"), "High 4:4:4 Predictive", "yuv444p"),
    # ProRes 4444 is coded at 10 bits and decoded at 12.
    (EncodeOptions(codec="prores", profile="4444"), "4444", "yuv444p12le"),
    (EncodeOptions(codec="prores", profile="proxy"), "Proxy", "yuv422p10le"),
    (EncodeOptions(codec="dnxhd"), "DNXHR HQ", "yuv422p"),  # DNxHR HQ: the default
    (EncodeOptions(codec="dnxhd", profile="dnxhr_hqx"), "DNXHR HQX", "yuv422p10le"),
])
def test_a_profile_picks_its_pixel_format_and_is_written(clip, tmp_path, options, profile,
                                                         pix_fmt):
    out = tmp_path / "out.mov"
    pass_through(clip, out, options)
    assert _stream(out) == (profile, pix_fmt, 6)


def test_dnxhd_at_its_sizes_and_rates(tmp_path):
    src = clips.make_clip(tmp_path / "hd.mp4", size=(1280, 720), frames=2)
    out = tmp_path / "out.mov"
    with open_source(src) as source, pytest.raises(
            OptionError, match=r"out\.mov: DNxHD at 1280x720 yuv422p 25 fps takes bitrate "
                               r"60M, 75M, 90M, 110M, 120M, 145M, 180M, 220M$"):
        open_sink(out, source.plan, EncodeOptions(codec="dnxhd", profile="dnxhd"))
    pass_through(src, out, EncodeOptions(codec="dnxhd", profile="dnxhd", bitrate=90_000_000))
    assert _stream(out) == ("DNXHD", "yuv422p", 2)


@pytest.mark.parametrize("size, options, message", [
    ((176, 144), EncodeOptions(codec="dnxhd"),
     r"DNxHR \(dnxhr_hq\) codes frames of at least 256x120, got 176x144; choose a larger "
     r"size or codec prores or ffv1$"),
    ((320, 136), EncodeOptions(codec="dnxhd", profile="dnxhd"),
     r"DNxHD \(profile dnxhd\) codes only 1920x1080, 1440x1080, 1280x720, got 320x136; "
     r"profile dnxhr_hq \(DNxHR\) codes any size from 256x120$"),
])
def test_dnx_size_rules_are_named_before_frame_one(tmp_path, size, options, message):
    src = clips.make_clip(tmp_path / "in.mp4", size=size, frames=2)
    with open_source(src) as source, pytest.raises(OptionError, match=message) as err:
        open_sink(tmp_path / "out.mov", source.plan, options)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.parametrize("options, message", [
    (EncodeOptions(codec="prores", encoder_preset="slow"),
     r"^encoder_preset applies to libx264 and libx265, not prores_ks; use encoder_opt"),
    (EncodeOptions(encoder_preset="quick"), r"^encoder_preset 'quick' is not valid; choose "
                                            r"from ultrafast, superfast"),
    (EncodeOptions(codec="libx265", tune="film"), r"^tune 'film' is not valid for libx265; "
                                                  r"choose from psnr, ssim, grain"),
    (EncodeOptions(profile="main10"), r"^profile 'main10' is not valid for libx264; choose "
                                      r"from baseline, main, high, high10, high422, high444$"),
    (EncodeOptions(codec="prores", profile="hq422"), r"choose from auto, proxy, lt, standard, "
                                                     r"hq, 4444, 4444xq$"),
    (EncodeOptions(codec="ffv1", profile="x"), r"^profile applies to libx264, libx265, prores"),
    (EncodeOptions(crf=20, bitrate=1000), r"^give crf \(constant quality\) or bitrate"),
    (EncodeOptions(codec="prores", crf=20), r"^crf applies to libx264 and libx265, not "
                                            r"prores_ks"),
    (EncodeOptions(bitrate=0), r"^bitrate 0: use 1 to 10000000000 bits per second$"),
    (EncodeOptions(encoder_opts=(("keyframes", "5"),)),
     r"^encoder_opt 'keyframes': libx264 has no option 'keyframes'; its own are .*preset"),
    (EncodeOptions(codec="dnxhd", encoder_opts=(("profile", "dnxhr_ultra"),)),
     r"^encoder_opt profile=dnxhr_ultra: choose from dnxhd, dnxhr_444"),
])
def test_bad_encoder_settings_are_refused_naming_what_is_valid(options, message):
    with pytest.raises(OptionError, match=message):
        check_encode_options(options)


def test_bitrates_and_options_as_written():
    assert parse_bitrate("8M") == 8_000_000
    assert parse_bitrate("2500k") == 2_500_000
    assert parse_bitrate("1.5M") == 1_500_000
    assert parse_bitrate("12000000") == 12_000_000
    with pytest.raises(OptionError, match=r"^bitrate '8 Mbps': use bits per second like 8M"):
        parse_bitrate("8 Mbps")
    assert parse_encoder_opt("x264-params=keyint=48:min-keyint=48") == \
        ("x264-params", "keyint=48:min-keyint=48")
    with pytest.raises(OptionError, match=r"^encoder_opt 'g48': use KEY=VALUE"):
        parse_encoder_opt("g48")


def test_x264_params_cap_its_code_at_avx2_only_on_a_cpu_with_avx512():
    avx512 = frozenset({"sse4_2", "avx2", "avx512f"})
    assert x264_params("mastering-display=X", "keyint=48", cpu_flags=avx512) == \
        "asm=AVX2:mastering-display=X:keyint=48"  # the user's last: x264 lets the last win
    assert x264_params(None, None, cpu_flags=avx512) == "asm=AVX2"
    assert x264_params("mastering-display=X", None, cpu_flags=frozenset({"avx2"})) == \
        "mastering-display=X"
    assert x264_params(None, None, cpu_flags=frozenset()) is None


def test_the_same_frames_encode_to_the_same_h264_bytes_while_another_thread_decodes(tmp_path):
    # Before the cap, x264's AVX-512 code gave this 64x48 clip other bytes in about 1 run
    # in 4 to 1 in 20 on an AVX-512 machine (it reads memory it never wrote); 40 runs here
    # (12 missed it about half the time without the cap; 40 caught it in 5 of 5, in 3 s).
    src = clips.make_clip(tmp_path / "in.mp4", frames=5)
    with open_source(src) as source:
        plan = source.plan
    frames, _ = decoded_items(src)
    outputs = set()
    for n in range(40):
        busy = threading.Thread(target=decoded_items, args=(src,))
        busy.start()
        out = tmp_path / f"o{n}.mp4"
        with open_sink(out, plan, EncodeOptions()) as sink:
            for frame in frames:
                sink.write(frame)
        busy.join()
        outputs.add(out.read_bytes())
    assert len(outputs) == 1
