"""Choosing and configuring the video encoder: EncodeOptions, their checks, and what each
encoder family accepts (x264/x265 presets, tunes and profiles; ProRes and DNxHR/DNxHD
profiles and DNxHD's fixed sizes; rate control; any other encoder option by name).

Every check runs before a file is opened; what only the encoder can judge (a size or bit rate
it refuses) is found when the Sink opens it, before frame one, and :func:`explain_refusal`
turns FFmpeg's "Invalid argument" into what would be valid.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import av.error
from av.codec.codec import UnknownCodecError

from vstpipe.errors import OptionError

from .color import bit_depth_of
from .frames import MAX_FRAME_PIXELS, MAX_FRAME_SIDE
from .sequences import image_codec, image_pix_fmt

# Encoders we know to work end to end, shown when the user names one that does not
# exist; any other FFmpeg video encoder is accepted as well.
KNOWN_ENCODERS: Final = ("libx264", "libx265", "prores", "dnxhd", "ffv1", "mpeg4",
                         "libvpx-vp9", "libsvtav1")
# "prores" in FFmpeg is the fast prores_aw encoder; prores_ks is the one that honours
# profiles and quality settings, so the friendly name maps to it.
_ENCODER_ALIASES: Final = {"prores": "prores_ks", "dnxhr": "dnxhd"}
CRF_ENCODERS: Final = frozenset({"libx264", "libx265"})
DEFAULT_CODEC: Final = "libx264"
DEFAULT_CRF: Final = 18
# x264's and x265's own names (x264 --fullhelp, x265 --help): FFmpeg passes them through
# and would only fail at open time.
_SPEEDS: Final = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                  "slower", "veryslow", "placebo")
_TUNES: Final = {"libx264": ("film", "animation", "grain", "stillimage", "psnr", "ssim",
                             "fastdecode", "zerolatency"),
                 "libx265": ("psnr", "ssim", "grain", "zerolatency", "fastdecode", "animation")}
_X264_PROFILES: Final = ("baseline", "main", "high", "high10", "high422", "high444")
_X265_PROFILES: Final = ("main", "main10", "mainstillpicture", "main422-10", "main444-8",
                         "main444-10", "main12", "main422-12", "main444-12")
# The pixel formats each profile encodes, first preferred (the default picks among them).
_PROFILE_PIX_FMTS: Final = {
    ("libx264", "baseline"): ("yuv420p",), ("libx264", "main"): ("yuv420p",),
    ("libx264", "high"): ("yuv420p",), ("libx264", "high10"): ("yuv420p10le",),
    ("libx264", "high422"): ("yuv422p", "yuv422p10le"),
    ("libx264", "high444"): ("yuv444p", "yuv444p10le"),
    ("libx265", "main"): ("yuv420p",), ("libx265", "main10"): ("yuv420p10le",),
    ("libx265", "main12"): ("yuv420p12le",), ("libx265", "main422-10"): ("yuv422p10le",),
    ("libx265", "main444-8"): ("yuv444p",), ("libx265", "main444-10"): ("yuv444p10le",),
    ("prores_ks", "4444"): ("yuv444p10le",), ("prores_ks", "4444xq"): ("yuv444p10le",),
    ("dnxhd", "dnxhd"): ("yuv422p", "yuv422p10le"), ("dnxhd", "dnxhr_lb"): ("yuv422p",),
    ("dnxhd", "dnxhr_sq"): ("yuv422p",), ("dnxhd", "dnxhr_hq"): ("yuv422p",),
    ("dnxhd", "dnxhr_hqx"): ("yuv422p10le",), ("dnxhd", "dnxhr_444"): ("yuv444p10le",),
}
# DNxHR codes any size from 256x120 (FFmpeg's dnxhdenc); DNxHD only these, each at a few
# fixed bit rates per frame rate (FFmpeg's dnxhddata.c: the encoder is asked, see below).
DNXHR_MIN: Final = (256, 120)
DNXHD_SIZES: Final = ((1920, 1080), (1440, 1080), (1280, 720))
_DNXHD_MBPS: Final = (36, 45, 60, 63, 75, 80, 84, 90, 100, 110, 115, 120, 145, 175, 180, 185,
                      220, 240, 290, 350, 365, 390, 440)
DEFAULT_DNX_PROFILE: Final = "dnxhr_hq"  # any size, 8-bit 4:2:2, what editing hosts expect
_BITRATE: Final = re.compile(r"^(\d{1,9}(?:\.\d{1,6})?)([kKmMgG]?)$")
_UNITS: Final = {"": 1, "k": 1000, "m": 1000_000, "g": 1000_000_000}
MAX_BITRATE: Final = 10_000_000_000  # 10 Gbit/s, beyond any real video


@dataclass(frozen=True)
class EncodeOptions:
    """How the output video stream is encoded (checked by check_encode_options)."""

    # Any FFmpeg video encoder ("prores" means prores_ks); None: libx264 for a video file, the
    # image's own (png, tiff, exr, dpx, mjpeg) for a still or image-sequence output.
    codec: str | None = None
    crf: int | None = None  # x264/x265 quality; None: 18, unless a bitrate is set
    pix_fmt: str | None = None  # None: derived from the source and profile (pick_pix_fmt)
    size: tuple[int, int] | None = None  # output (W, H); None = same as input
    # Rate and flavour of the stream:
    encoder_preset: str | None = None  # x264/x265 speed preset (ultrafast .. placebo)
    tune: str | None = None  # x264/x265 tuning (film, animation, grain ...)
    profile: str | None = None  # x264/x265/ProRes/DNx profile; dnxhd's default dnxhr_hq
    bitrate: int | None = None  # bits per second: average for x264/x265, the rate for DNxHD
    encoder_opts: tuple[tuple[str, str], ...] = ()  # any further encoder option, given last


def parse_bitrate(text: str) -> int:
    """Bits per second from "8M", "2500k", "185M" or "12000000"; OptionError otherwise."""
    m = _BITRATE.match(text.strip())
    if m is None:
        raise OptionError.about("{bitrate} {value}: use bits per second like 8M, 2500k or "
                                "12000000", value=repr(text))
    return round(Fraction(m[1]) * _UNITS[m[2].lower()])


def parse_encoder_opt(text: str) -> tuple[str, str]:
    """("KEY", "VALUE") from "KEY=VALUE"; OptionError otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise OptionError.about("{encoder_opt} {value}: use KEY=VALUE, e.g. g=48",
                                value=repr(text))
    return key.strip(), value.strip()


def codec_name(options: EncodeOptions, out: Path | None = None) -> str:
    """The encoder that writes ``out``: the one asked for, else the image's own for an image
    output, else libx264."""
    if options.codec is not None:
        return options.codec
    return (image_codec(out) if out is not None else None) or DEFAULT_CODEC


def check_encode_options(options: EncodeOptions, out: Path | None = None) -> None:
    """OptionError naming the bad value and the valid ones; open_sink calls it first (with
    ``out``, whose suffix picks the default encoder of an image output).

    A plain function rather than __post_init__ so building options never raises: the
    CLI constructs them before it starts turning library errors into one-line messages.
    """
    codec = find(codec_name(options, out))
    wanted = image_codec(out) if out is not None else None
    if wanted is not None and codec.name != wanted:
        raise OptionError.about("{out}: a {suffix} file is written by {wanted}, not {name}; "
                                "leave out {codec}", out=out, suffix=out.suffix.lower(),
                                wanted=wanted, name=codec.name)
    crf = options.crf
    if crf is not None and (isinstance(crf, bool) or not isinstance(crf, int)
                            or not 0 <= crf <= 51):
        raise OptionError.about("{crf} {value}: use an integer from 0 to 51", value=repr(crf))
    if crf is not None and options.bitrate is not None:
        raise OptionError.about("give {crf} (constant quality) or {bitrate} (average rate), "
                                "not both")
    if crf is not None and codec.name not in CRF_ENCODERS:
        raise OptionError.about("{crf} applies to libx264 and libx265, not {name}; use "
                                "{bitrate} or {encoder_opt}", name=codec.name)
    bitrate = options.bitrate
    if bitrate is not None and (isinstance(bitrate, bool) or not isinstance(bitrate, int)
                                or not 0 < bitrate <= MAX_BITRATE):
        raise OptionError.about("{bitrate} {value}: use 1 to {top} bits per second",
                                value=repr(bitrate), top=MAX_BITRATE)
    _check_flavour(options, codec)
    _check_opts(options.encoder_opts, codec)
    if options.pix_fmt is not None:
        try:
            av.VideoFormat(options.pix_fmt)
        except ValueError:
            raise OptionError.about("{pix_fmt} {value}: unknown pixel format",
                                    value=repr(options.pix_fmt)) from None
        supported = pix_fmts(codec)
        if supported and options.pix_fmt not in supported:
            raise OptionError.about("{pix_fmt} {value}: encoder {codec_name} cannot encode "
                                    "it; valid: {valid}", value=repr(options.pix_fmt),
                                    codec_name=codec.name, valid=", ".join(supported))
    size = options.size
    if size is not None and not (
        isinstance(size, tuple) and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise OptionError.about("{size} {value}: use (width, height) in positive pixels",
                                value=repr(size))
    if size is not None and (max(size) > MAX_FRAME_SIDE or size[0] * size[1] > MAX_FRAME_PIXELS):
        raise OptionError.about("{size} {w}x{h}: frames are limited to {side} pixels a side "
                                "and {pixels} pixels in all (8192x4320)", w=size[0], h=size[1],
                                side=MAX_FRAME_SIDE, pixels=MAX_FRAME_PIXELS)


def _profiles(codec: av.Codec) -> tuple[str, ...]:
    if codec.name == "libx264":
        return _X264_PROFILES
    if codec.name == "libx265":
        return _X265_PROFILES
    for option in codec.create().supported_options.private:
        if option.name == "profile" and option.choices:
            return tuple(c.name for c in option.choices)
    return ()


def _check_flavour(options: EncodeOptions, codec: av.Codec) -> None:
    """The speed preset, tune and profile against what ``codec`` takes."""
    x26x = codec.name in _TUNES
    if options.encoder_preset is not None:
        if not x26x:
            raise OptionError.about("{encoder_preset} applies to libx264 and libx265, not "
                                    "{name}; use {encoder_opt} for its own options",
                                    name=codec.name)
        if options.encoder_preset not in _SPEEDS:
            raise OptionError.about("{encoder_preset} {value} is not valid; choose from "
                                    "{valid}", value=repr(options.encoder_preset),
                                    valid=", ".join(_SPEEDS))
    if options.tune is not None:
        if not x26x:
            raise OptionError.about("{tune} applies to libx264 and libx265, not {name}; use "
                                    "{encoder_opt} for its own options", name=codec.name)
        if options.tune not in _TUNES[codec.name]:
            raise OptionError.about("{tune} {value} is not valid for {name}; choose from "
                                    "{valid}", value=repr(options.tune), name=codec.name,
                                    valid=", ".join(_TUNES[codec.name]))
    if options.profile is not None:
        valid = _profiles(codec)
        if not valid:
            raise OptionError.about("{profile} applies to libx264, libx265, prores and dnxhd, "
                                    "not {name}; use {encoder_opt}", name=codec.name)
        if options.profile not in valid:
            raise OptionError.about("{profile} {value} is not valid for {name}; choose from "
                                    "{valid}", value=repr(options.profile), name=codec.name,
                                    valid=", ".join(valid))


def _check_opts(opts: tuple[tuple[str, str], ...], codec: av.Codec) -> None:
    """Each --encoder-opt names an option of ``codec`` (its own or FFmpeg's generic ones),
    and where the option has named choices, one of them."""
    if not opts:
        return
    known = codec.create().supported_options
    by_name = {o.name: o for o in (*known.generic, *known.private)}  # the codec's own win
    for key, value in opts:
        option = by_name.get(key)
        if option is None:
            own = ", ".join(sorted(o.name for o in known.private)) or "none"
            raise OptionError.about("{encoder_opt} {key}: {name} has no option {key}; its own "
                                    "are {own} (and FFmpeg's generic ones, e.g. g, bf, "
                                    "maxrate, bufsize)", key=repr(key), name=codec.name, own=own)
        names = [c.name for c in option.choices or ()]
        if names and option.type.name not in ("FLAGS",) and value not in names \
                and not re.fullmatch(r"-?\d+", value):
            raise OptionError.about("{encoder_opt} {key}={value}: choose from {valid}",
                                    key=key, value=value, valid=", ".join(names))


def find(name: str) -> av.Codec:
    """The FFmpeg video encoder for a user-facing codec name, or OptionError."""
    codec = _find_encoder(name)
    if codec is not None and codec.type == "video":
        return codec
    # Built only on failure: it instantiates every known encoder.
    choices = ", ".join(n for n in KNOWN_ENCODERS if _find_encoder(n) is not None)
    if codec is None:
        raise OptionError.about("{codec} {name}: unknown video codec; valid choices: {choices} "
                                "(or any FFmpeg video encoder)", name=repr(name), choices=choices)
    raise OptionError.about("{codec} {name} is not a video encoder; valid choices: {choices}",
                            name=repr(name), choices=choices)


def _find_encoder(name: str) -> av.Codec | None:
    """The FFmpeg encoder behind a user-facing codec name; None if this FFmpeg lacks it."""
    try:
        return av.Codec(_ENCODER_ALIASES.get(name, name), "w")
    except UnknownCodecError:
        return None


def pix_fmts(codec: av.Codec) -> list[str]:
    # Some encoders (e.g. wrappers negotiating at open time) list no formats. Hardware
    # surface formats (cuda, vaapi ...) have no components and cannot take our frames.
    return [f.name for f in codec.video_formats or () if f.components]


def profile_of(options: EncodeOptions, codec: av.Codec) -> str | None:
    """The profile that will be asked for: the user's, or DNx's default."""
    if options.profile is None and codec.name == "dnxhd":
        return DEFAULT_DNX_PROFILE
    return options.profile


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux names them (/proc/cpuinfo, read once); empty where
    unknown."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def x264_params(*parts: str | None, cpu_flags: frozenset[str] | None = None) -> str | None:
    """libx264's x264-params: ``parts`` (the stream's own, then the user's, which win)
    joined, after ``asm=AVX2`` on a CPU with AVX-512. x264's AVX-512 code reads memory it never
    wrote: the same frames encoded twice gave different bytes (1 run in 4 to 1 in 20 while
    another thread decoded; up to 12 levels apart once decoded), where its AVX2 and plain C
    code give one output whatever the memory holds (tests/test_media_encoders.py). Capped only
    where AVX-512 exists, so a CPU without AVX2 is never told it has it."""
    flags = _cpu_flags() if cpu_flags is None else cpu_flags
    cap = "asm=AVX2" if "avx512f" in flags else None
    return ":".join(p for p in (cap, *parts) if p) or None


def encoder_settings(options: EncodeOptions, codec: av.Codec) -> tuple[dict[str, str],
                                                                       int | None]:
    """The options dict for avcodec_open2 and the bit rate (or None) the encoder is given;
    --encoder-opt entries come last, so they win."""
    opts: dict[str, str] = {}
    if codec.name in CRF_ENCODERS and options.bitrate is None:
        opts["crf"] = str(DEFAULT_CRF if options.crf is None else options.crf)
    for key, value in (("preset", options.encoder_preset), ("tune", options.tune),
                       ("profile", profile_of(options, codec))):
        if value is not None:
            opts[key] = value
    opts.update(options.encoder_opts)
    return opts, options.bitrate


def pick_pix_fmt(codec: av.Codec, bit_depth: int, width: int, height: int,
                 profile: str | None = None) -> str:
    """Default output pixel format: an image encoder's RGB at the source depth; the profile's;
    else the source depth, subsampled as far as the size allows.

    Our preferences come first, then anything else the encoder takes, closest depth
    first; the first whose chroma subsampling fits ``width`` x ``height`` wins.
    """
    deep = bit_depth > 8
    rgb = image_pix_fmt(codec.name, deep)
    if rgb is not None:
        return rgb
    by_profile = _PROFILE_PIX_FMTS.get((codec.name, profile or ""))
    if by_profile:
        preferred = sorted(by_profile, key=lambda n: (bit_depth_of(n) > 8) != deep)
    elif codec.name == "prores_ks":
        preferred = ["yuv422p10le", "yuv444p10le"]  # ProRes is 10-bit 4:2:2 or 4:4:4
    elif deep:
        preferred = ["yuv420p10le", "yuv444p10le", "yuv422p10le", "gbrp10le", "yuv420p16le"]
    else:
        preferred = ["yuv420p", "yuv444p"]
    if not by_profile:
        preferred = list(dict.fromkeys([*preferred, "yuv420p", "yuv444p"]))
    supported = pix_fmts(codec)
    if supported:
        depth = 10 if deep else 8
        others = [] if by_profile else sorted((n for n in supported if n not in preferred),
                                              key=lambda n: abs(bit_depth_of(n) - depth))
        candidates = [n for n in preferred if n in supported] + others
    else:
        candidates = list(preferred)  # the encoder negotiates at open time; try the usual
    for name in candidates:
        if fits_size(name, width, height):
            return name
    return candidates[0]  # nothing fits: Sink's size check names the way out


def _needs_even_size(pix_fmt: str) -> tuple[bool, bool]:
    """Whether chroma subsampling requires an even (width, height)."""
    fmt = av.VideoFormat(pix_fmt, 16, 16)
    chroma = [c for c in fmt.components if c.is_chroma]
    if not chroma:
        return False, False
    return chroma[0].width < 16, chroma[0].height < 16


def fits_size(pix_fmt: str, width: int, height: int) -> bool:
    even_w, even_h = _needs_even_size(pix_fmt)
    return not (even_w and width % 2) and not (even_h and height % 2)


def size_hint(codec: av.Codec, width: int, height: int) -> str:
    """What to do instead when the pixel format cannot hold an odd size, for ``codec``."""
    supported = pix_fmts(codec)
    fits = [n for n in supported if fits_size(n, width, height)]
    if fits:
        return codec.name + " accepts " + ", ".join(fits) + " at that size"
    if supported:
        return codec.name + " has no pixel format for it; choose an even {size} or {codec} ffv1"
    return "choose an even {size} or a 4:4:4 pixel format"


def _opens(codec: av.Codec, width: int, height: int, pix_fmt: str, rate: Fraction,
           bitrate: int | None, profile: str) -> bool:
    """Whether ``codec`` opens with these settings (a rehearsal: nothing is encoded)."""
    ctx = codec.create()
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base, ctx.framerate = 1 / rate, rate
    if bitrate:
        ctx.bit_rate = bitrate
    ctx.options = {"profile": profile}
    try:
        ctx.open()
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def explain_refusal(options: EncodeOptions, codec: av.Codec, width: int, height: int,
                    pix_fmt: str, rate: Fraction) -> str | None:
    """What would be valid when ``codec`` refused to open, for encoders whose rules FFmpeg
    only reports as "Invalid argument" (DNxHR's least size; DNxHD's sizes and rates);
    None for others. A template: ``{setting}`` fields name the flags."""
    if codec.name != "dnxhd":
        return None
    profile = profile_of(options, codec)
    if profile != "dnxhd":  # DNxHR
        if width < DNXHR_MIN[0] or height < DNXHR_MIN[1]:
            return (f"DNxHR ({profile}) codes frames of at least {DNXHR_MIN[0]}x{DNXHR_MIN[1]}, "
                    f"got {width}x{height}; choose a larger {{size}} or {{codec}} prores "
                    f"or ffv1")
        return None
    if (width, height) not in DNXHD_SIZES:
        sizes = ", ".join(f"{w}x{h}" for w, h in DNXHD_SIZES)
        return (f"DNxHD ({{profile}} dnxhd) codes only {sizes}, got {width}x{height}; "
                f"{{profile}} {DEFAULT_DNX_PROFILE} (DNxHR) codes any size from "
                f"{DNXHR_MIN[0]}x{DNXHR_MIN[1]}")
    rates = [m for m in _DNXHD_MBPS
             if _opens(codec, width, height, pix_fmt, rate, m * 1_000_000, "dnxhd")]
    if not rates:
        return (f"DNxHD codes no bit rate at {width}x{height} {pix_fmt} {float(rate):g} fps; "
                f"{{profile}} {DEFAULT_DNX_PROFILE} (DNxHR) codes any rate")
    return (f"DNxHD at {width}x{height} {pix_fmt} {float(rate):g} fps takes {{bitrate}} "
            + ", ".join(f"{m}M" for m in rates))
