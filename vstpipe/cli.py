"""The vstpipe command line: parses, builds typed options, calls the library. Nothing else."""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import (
    atomic,
    commands,
    effects,
    eval_report,
    evaluate,
    flow_estimators,
    jobs,
    keyframes,
    ofx,
    ofx_bundle,
    ofx_host,
    presets,
    preview,
    progress,
    rawio,
    serve,
    signals,
    temporal,
    weights,
)
from .batch import local as batch_local
from .batch import plan as batch_plan
from .batch import ray_pool as batch_ray
from .batch import segments as batch_segments
from .batch import run as batch_run
from .commands import plain_labels
from .errors import ModelError, OptionError, VstpipeError
from .media import (
    EncodeOptions,
    check_frame_count,
    open_source,
    parse_bitrate,
    parse_encoder_opt,
)
from .pipeline import FilterReport, check_job, filter_preflight, filter_raw, render_source
from .progress import downloads, frames
from .sessions import Sessions
from .spec import Job, parse_size

app = typer.Typer(add_completion=False, no_args_is_help=True, help=commands.HELP)
models_app = typer.Typer(no_args_is_help=True, help="List, download, import and verify weights.")
app.add_typer(models_app, name="models")
presets_app = typer.Typer(no_args_is_help=True, help="Named looks: list, show, preview.")
app.add_typer(presets_app, name="presets")
keyframes_app = typer.Typer(no_args_is_help=True, help="Keyframed style transitions.")
app.add_typer(keyframes_app, name="keyframes")
ofx_app = typer.Typer(no_args_is_help=True, help="OpenFX-style effects: list, describe, render, bundle.")
app.add_typer(ofx_app, name="ofx")

T = TypeVar("T")
MAX_ROWS = 5000  # keyframes check: more rows than anyone reads
_debug = {"on": False}  # set once by the root callback, read by _run


def _say(markup: str) -> None:
    """One message on stderr, never wrapped (logs and tests read whole lines)."""
    Console(stderr=True).print(markup, highlight=False, soft_wrap=True)


def _run(fn: Callable[[], T]) -> T:
    """Turn library errors into one line on stderr and exit 1 (tracebacks with --debug)."""
    try:
        return fn()
    except VstpipeError as exc:
        if _debug["on"]:
            traceback.print_exc()
        _say(f"[red]vstpipe: error:[/red] {escape(exc.named(flag))}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt as interrupt:
        _say(f"vstpipe: interrupted ({interrupt or 'SIGINT'}); no output was written")
        raise typer.Exit(signals.exit_code(interrupt)) from None


def flag(setting: str) -> str:
    """The flag that sets ``setting`` of the job spec: how every message names a setting."""
    return "--" + setting.replace("_", "-")


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=commands.print_version,
                                          is_eager=True, help=commands.VERSION_HELP)] = False,
    debug: Annotated[bool, typer.Option("--debug", help=commands.DEBUG_HELP)] = False,
) -> None:
    _debug["on"] = debug


def _floats(text: str | None) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a comma-separated list of numbers") from None


# The look and compute options of `render`, shared with `filter` so both spell them alike.
_StyleImages = Annotated[list[Path] | None, typer.Option(
    "--style", "-s", help="Style image; repeat to blend.")]
_Weights = Annotated[str | None, typer.Option(
    "--weights", help="Blend weights, one per --style, e.g. 2,1.")]
_Preset = Annotated[str | None, typer.Option(
    "--preset", help="A named look (see `vstpipe presets list`) or a preset .toml file.")]
_Keyframes = Annotated[Path | None, typer.Option(
    "--keyframes", help="A keyframes .toml file scripting styles over time.")]
_Alpha = Annotated[float | None, typer.Option(
    "--alpha", help="Style strength in [0, 1] (default 1, or the preset's).")]
_PreserveColor = Annotated[bool | None, typer.Option(
    "--preserve-color/--no-preserve-color",
    help="Keep the source colours (luminance-only transfer).")]
_StyleSize = Annotated[int | None, typer.Option(
    "--style-size", help="Shorter side of style images, 64..2048 (default 512).")]
_Model = Annotated[str | None, typer.Option(
    "--model", help=f"Registry name or a directory of weights (default {weights.DEFAULT_MODEL}).")]
_NoDownload = Annotated[bool, typer.Option(
    "--offline", help="Never download (also VSTPIPE_OFFLINE=1).")]
_DeviceName = Annotated[str, typer.Option("--device", help="auto | cpu | cuda")]
_Precision = Annotated[str, typer.Option("--precision", help="auto | fp32 | bf16 | fp16")]
_Batch = Annotated[int, typer.Option("--batch", help="Frames per forward pass.")]
_MaxSide = Annotated[int | None, typer.Option(
    "--max-side", help="Process at most this many pixels on the longer side, 16..16384.")]

# The output video stream (render and ofx render).
_Codec = Annotated[str | None, typer.Option(
    "--codec", help="Video encoder: libx264 (default), libx265, prores, dnxhd, ffv1, ...; an "
                    "image output is written by its own (png, tiff, exr, dpx, mjpeg).")]
_Crf = Annotated[int | None, typer.Option(
    "--crf", help="Constant quality for x264/x265, 0..51 (default 18 unless --bitrate).")]
_PixFmt = Annotated[str | None, typer.Option(
    "--pix-fmt", help="Output pixel format (default: from the input and --profile).")]
_EncoderPreset = Annotated[str | None, typer.Option(
    "--encoder-preset", help="x264/x265 speed preset: ultrafast .. veryslow (default medium).")]
_Tune = Annotated[str | None, typer.Option(
    "--tune", help="x264/x265 tuning: film, animation, grain, ...")]
_Profile = Annotated[str | None, typer.Option(
    "--profile", help="Profile: x264 high, high10, ...; prores proxy .. 4444xq; dnxhd "
                      "dnxhr_lb .. dnxhr_444 (default dnxhr_hq) or dnxhd.")]
_Bitrate = Annotated[str | None, typer.Option(
    "--bitrate", help="Average bits per second, e.g. 8M or 2500k (x264/x265 instead of "
                      "--crf; DNxHD's rate).")]
_EncoderOpt = Annotated[list[str] | None, typer.Option(
    "--encoder-opt", help="Any further encoder option, KEY=VALUE (e.g. g=48); repeat.")]


def _encode(codec: str | None, crf: int | None, pix_fmt: str | None, size: str | None,
            encoder_preset: str | None, tune: str | None, profile: str | None,
            bitrate: str | None, encoder_opt: list[str] | None) -> EncodeOptions:
    """The encoder flags as the job's EncodeOptions (checked when the job is built)."""
    return EncodeOptions(
        codec=codec, crf=crf, pix_fmt=pix_fmt, size=parse_size(size) if size else None,
        encoder_preset=encoder_preset, tune=tune, profile=profile,
        bitrate=parse_bitrate(bitrate) if bitrate is not None else None,
        encoder_opts=tuple(parse_encoder_opt(o) for o in encoder_opt or ()))


class _TemporalFlags:
    """A look command plus --steady and one flag per temporal setting, generated from the
    declarations (vstpipe.temporal) whenever typer builds the command, so a method registered
    later has its flag too. The command gets them as ``temporal_flags``: the settings given,
    by name, --steady filling in the unset ones it names."""

    def __init__(self, command: Callable[..., None]) -> None:
        functools.update_wrapper(self, command)
        self._command = command

    @property
    def __signature__(self) -> inspect.Signature:
        own = inspect.signature(self._command, eval_str=True)
        kept = [p for p in own.parameters.values() if p.name != "temporal_flags"]
        steady = " ".join(f"{temporal.option(name).flag} {value}"
                          for name, value in temporal.STEADY.items())
        flags = [inspect.Parameter("steady", inspect.Parameter.KEYWORD_ONLY, default=False,
                                   annotation=Annotated[bool, typer.Option(
                                       "--steady", help=f"Recommended flicker reduction: "
                                                        f"{steady} (explicit flags win).")])]
        flags += [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                    annotation=Annotated[o.type | None,
                                                         typer.Option(o.flag, help=o.help)])
                  for o in temporal.options()]
        return own.replace(parameters=[*kept, *flags])

    def __call__(self, steady: bool, **values: Any) -> None:
        given = {o.name: values.pop(o.name) for o in temporal.options()}
        self._command(**values, temporal_flags=temporal.with_steady(given, steady))


def _request(style: list[Path] | None, weights_: str | None, preset: str | None,
             keyframes_file: Path | None, alpha: float | None, preserve_color: bool | None,
             style_size: int | None, max_side: int | None, model: str | None,
             temporal_flags: Mapping[str, float], device: str, precision: str, batch: int,
             encode: EncodeOptions | None = None) -> jobs.Request:
    """The look and compute flags of `render` and `filter` as one request (--steady
    expanded); jobs.resolve turns it into the job."""
    return jobs.Request(styles=tuple(style or ()), weights=_floats(weights_), preset=preset,
                        keyframes=keyframes_file, alpha=alpha, preserve_color=preserve_color,
                        style_size=style_size, max_side=max_side, model=model,
                        temporal=dict(temporal_flags), device=device, precision=precision,
                        batch=batch, encode=encode or EncodeOptions())


def _resolve(request: jobs.Request, fps: Fraction | None) -> Job:
    """The job (its notices go to stderr)."""
    job = jobs.resolve(request, fps)
    for notice in job.notices:
        _say(f"note: {escape(notice)}")
    return job


def _net(sessions: Sessions, model: str, label: str | None = None) -> str:
    """Load the job's model into ``sessions``, showing download progress and its notices
    (and, given a ``label``, a line saying what loads); returns the name of the model that
    runs."""
    def loading(name: str) -> None:
        if label is not None:
            _say(f"{escape(label)}: loading model {escape(name)}")

    with downloads() as on_download:
        net = sessions.net(model, on_download, loading)
    for notice in sessions.notices:
        _say(f"note: {escape(notice)}")
    sessions.notices.clear()
    return net.name


@app.command("render")
@_TemporalFlags
def render_cmd(
    src: Annotated[Path, typer.Argument(
        help="Input video, still image, or image sequence such as shot/%05d.png.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output video, still (.png, .tif, .exr, .dpx, .jpg) or image "
                            "sequence (out/%05d.png); written on success.")],
    style: _StyleImages = None,
    weights_: _Weights = None,
    preset: _Preset = None,
    keyframes: _Keyframes = None,
    alpha: _Alpha = None,
    preserve_color: _PreserveColor = None,
    style_size: _StyleSize = None,
    model: _Model = None,
    offline: _NoDownload = False,
    device: _DeviceName = "auto",
    precision: _Precision = "auto",
    batch: _Batch = 4,
    max_side: _MaxSide = None,
    size: Annotated[str | None, typer.Option(help="Output size WxH (default: input's).")
                    ] = None,
    codec: _Codec = None,
    crf: _Crf = None,
    pix_fmt: _PixFmt = None,
    encoder_preset: _EncoderPreset = None,
    tune: _Tune = None,
    profile: _Profile = None,
    bitrate: _Bitrate = None,
    encoder_opt: _EncoderOpt = None,
    fps: Annotated[str | None, typer.Option(
        help="Frame rate of an image-sequence input, e.g. 24 or 24000/1001 (default 25).")
    ] = None,
    start: Annotated[str | None, typer.Option(
        help="Render from this time of SRC: seconds, HH:MM:SS[.fff], timecode HH:MM:SS:FF "
             "or a frame f120 (from SRC's first frame). Audio and subtitles are cut with it.")
    ] = None,
    duration: Annotated[str | None, typer.Option(
        help="Render this long (same forms as --start).")] = None,
    end: Annotated[str | None, typer.Option(
        help="Render up to, not including, this time of SRC (same forms as --start).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")
                         ] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No progress and no closing line on stderr (errors and notices "
                              "still).")] = False,
    allow_partial: Annotated[bool, typer.Option(
        "--allow-partial",
        help="For a truncated (cut) input: render the frames that decode and exit 0 with a "
             "notice naming how many were read of how many the header promised. Without "
             "it, such an input is an error and nothing is written.")] = False,
    *,
    temporal_flags: Mapping[str, float],
) -> None:
    """Stylize every frame of SRC into --out, keeping timestamps, audio and tags."""
    def go() -> None:
        request = _request(style, weights_, preset, keyframes, alpha, preserve_color,
                           style_size, max_side, model, temporal_flags, device, precision, batch,
                           _encode(codec, crf, pix_fmt, size, encoder_preset, tune, profile,
                                   bitrate, encoder_opt))
        request = replace(request, start=start, duration=duration, end=end)
        # Opened once: its description sets keyframe frame numbers, and it is then decoded.
        rate = rawio.parse_rate(fps, "fps") if fps is not None else None
        with open_source(src, allow_partial=allow_partial, fps=rate) as source:
            info = source.info
            job = _resolve(request, Fraction(info.average_rate) if info.average_rate else None)
            check_job(src, out, job, overwrite)  # a typo must not cost a 100 MB download
            source.trim(job.trim)
            check_frame_count(out, source.expected_frames)
            sessions = Sessions(offline)
            sessions.styles(job)  # a bad style image must not either
            ran = _net(sessions, job.model, None if quiet else src.name)
            with frames(src.name, quiet) as on_frames:
                session = sessions.session(job, (info.width, info.height))
                session.on_stage = on_frames.stage
                report = render_source(source, out, session, overwrite=overwrite,
                                       progress=on_frames)
        if not quiet:
            _say(f"wrote {escape(str(out))} ({report.frames} frames, "
                 f"{report.frames / max(report.seconds, 1e-9):.2f} fps, model {escape(ran)}, "
                 f"{report.precision})")

    _run(go)


@app.command("filter")
@_TemporalFlags
def filter_cmd(
    size: Annotated[str, typer.Option(
        help="Frame size WxH of the raw frames, in and out (at most 16384 a side and "
             "8192x4320 pixels).")],
    pix_fmt: Annotated[str, typer.Option(
        help=f"Raw layout of the input frames: {' | '.join(rawio.PIX_FMTS)}.")] = "rgb24",
    out_pix_fmt: Annotated[str | None, typer.Option(
        help="Raw layout of the output frames (default: --pix-fmt).")] = None,
    fps: Annotated[str | None, typer.Option(
        help="Frame rate, e.g. 25 or 30000/1001: frame n is at n/fps seconds "
             "(keyframes need it or --timebase).")] = None,
    timebase: Annotated[str | None, typer.Option(
        help="Seconds per frame instead of --fps, e.g. 1001/30000.")] = None,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No progress and no closing line on stderr.")] = False,
    style: _StyleImages = None,
    weights_: _Weights = None,
    preset: _Preset = None,
    keyframes: _Keyframes = None,
    alpha: _Alpha = None,
    preserve_color: _PreserveColor = None,
    style_size: _StyleSize = None,
    model: _Model = None,
    offline: _NoDownload = False,
    device: _DeviceName = "auto",
    precision: _Precision = "auto",
    batch: _Batch = 4,
    max_side: _MaxSide = None,
    *,
    temporal_flags: Mapping[str, float],
) -> None:
    """Stylize raw frames from stdin to stdout, for ffmpeg pipelines (see the README).

    Only frames go to stdout, messages to stderr; a closed stdout ends it with status 0.
    """
    def go() -> FilterReport:
        if fps is not None and timebase is not None:
            raise OptionError("give --fps or --timebase, not both")
        frame_time = 1 / rawio.parse_rate(fps, "fps") if fps is not None else \
            rawio.parse_rate(timebase, "timebase") if timebase is not None else None
        raw = rawio.RawOptions(size=parse_size(size), pix_fmt=pix_fmt,
                               out_pix_fmt=out_pix_fmt, frame_time=frame_time)
        request = _request(style, weights_, preset, keyframes, alpha, preserve_color,
                           style_size, max_side, model, temporal_flags, device, precision, batch)
        job = _resolve(request, 1 / frame_time if frame_time else None)
        filter_preflight(job, raw)  # a typo must not cost a 100 MB download
        sessions = Sessions(offline)
        sessions.styles(job)
        if sys.stdin.isatty() or sys.stdout.isatty():
            raise OptionError("stdin and stdout must be pipes or files of raw frames, not a "
                              "terminal (see the README for the ffmpeg pipeline)")
        atomic.check_stream_apart(
            sys.stdout, [sys.stdin, *request.styles, *([keyframes] if keyframes else [])],
            what="standard output")
        _net(sessions, job.model)
        session = sessions.session(job, raw.size)
        src, dst = sys.stdin.buffer, sys.stdout.buffer
        try:
            with frames("filter", quiet) as on_frames:
                session.on_stage = on_frames.stage
                return filter_raw(src, dst, session, raw, progress=on_frames)
        except KeyboardInterrupt as interrupt:  # unlike render's, this output is already out
            _say(f"vstpipe: interrupted ({interrupt or 'SIGINT'})")
            raise typer.Exit(signals.exit_code(interrupt)) from None

    report = _run(go)
    if report.output_closed:
        # Python flushes stdout at exit; with its reader gone that would print a
        # BrokenPipeError. Pointing fd 1 at /dev/null is Python's documented remedy.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if not quiet:
        closed = "; stdout was closed by its reader" if report.output_closed else ""
        _say(f"filter: {report.frames} frames, "
             f"{report.frames / max(report.seconds, 1e-9):.2f} fps, {report.precision}{closed}")


@models_app.command("list")
def models_list() -> None:
    """Show the registry: name, installed, size, licence."""
    table = Table("name", "arch", "installed", "size", "licence")
    for st in _run(weights.list_models):
        table.add_row(st.name, st.arch, "yes" if st.installed else "no",
                      f"{st.size / 1e6:.1f} MB" if st.size else "-", st.licence)
    Console().print(table)


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Registry name.")],
    offline: Annotated[bool, typer.Option(
        "--offline", help="Refuse to download (also VSTPIPE_OFFLINE=1).")] = False,
) -> None:
    """Download a model's files (sha256-checked) into the cache."""
    def go() -> Path:
        if offline or weights.offline_from_env():
            raise ModelError(f"{name}: offline mode, nothing downloaded; copy the files in with "
                             f"`vstpipe models import {name} FILE...`")
        with downloads() as on_download:
            return weights.pull(name, on_progress=on_download)
    _say(f"{name}: installed in {escape(str(_run(go)))}")


@models_app.command("import")
def models_import(
    name: Annotated[str, typer.Argument(help="Registry name.")],
    files: Annotated[list[Path], typer.Argument(help="Weight files to copy in.")],
    unverified: Annotated[bool, typer.Option(
        "--unverified", help="Accept files whose sha256 differs from the published one.")
                          ] = False,
) -> None:
    """Copy local weight files into the cache after checking their layout (offline machines).

    Or install a model directory (one with model.json, e.g. a `vstpipe finetune` run) under a
    new NAME: `vstpipe models import my-look runs/steady`, then `render --model my-look`."""
    if len(files) == 1 and files[0].is_dir():
        folder = _run(lambda: weights.import_model_dir(name, files[0]))
    else:
        folder = _run(lambda: weights.import_files(name, files, unverified=unverified))
    _say(f"{name}: imported into {escape(str(folder))}")


@models_app.command("verify")
def models_verify(name: Annotated[str | None, typer.Argument(help="One model (default: all).")
                                  ] = None) -> None:
    """Re-hash installed files against their manifest and the registry."""
    results = _run(lambda: weights.verify(name))
    table = Table("model", "file", "ok", "detail")
    for r in results:
        table.add_row(r.name, r.file, "yes" if r.ok else "NO", r.message)
    Console().print(table)
    if any(not r.ok for r in results):
        raise typer.Exit(1)


@presets_app.command("list")
def presets_list() -> None:
    """All presets: shipped ones and the user's own."""
    found, notices = _run(presets.available)
    for notice in notices:
        _say(f"note: {escape(notice)}")
    table = Table("name", "description", "alpha", "model", "from")
    table.columns[0].no_wrap = table.columns[3].no_wrap = True
    for preset in sorted(found.values(), key=lambda p: p.name):
        table.add_row(preset.name, preset.description, f"{preset.alpha:g}", preset.model,
                      "shipped" if preset.shipped else "user")
    Console().print(table)


@presets_app.command("show")
def presets_show(name: Annotated[str, typer.Argument(help="Preset name or .toml file.")]
                 ) -> None:
    """Every setting of one preset."""
    preset, notices = _run(lambda: presets.find(name))
    for notice in notices:
        _say(f"note: {escape(notice)}")
    table = Table("key", "value", show_header=False)
    table.add_row("name", preset.name)
    table.add_row("description", preset.description)
    for path, weight in preset.styles:
        table.add_row("style", f"{path} (weight {weight:.3g})")
    table.add_row("alpha", f"{preset.alpha:g}")
    table.add_row("preserve_color", str(preset.preserve_color).lower())
    table.add_row("model", preset.model)
    table.add_row("max_side", str(preset.max_side or "full size"))
    table.add_row("style_size", str(preset.style_size))
    for key, value in preset.temporal.items():
        table.add_row(key, f"{value:g}")
    table.add_row("file", str(preset.source))
    Console().print(table)


@presets_app.command("preview")
def presets_preview(
    src: Annotated[Path, typer.Argument(help="A still image or a video (its frame --at).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Contact sheet PNG to write.")],
    at: Annotated[str | None, typer.Option(
        help="The video's frame at this time: seconds, HH:MM:SS[.fff], HH:MM:SS:FF or f120 "
             "(default: its first frame).")] = None,
    tile: Annotated[int, typer.Option(help="Longer side of each tile in pixels.")] = 320,
    model: Annotated[str | None, typer.Option(
        help="Render every preset with this model instead of its own.")] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", help="Never download (also VSTPIPE_OFFLINE=1).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file.")
                         ] = False,
) -> None:
    """One frame rendered under every preset, labelled, on one contact sheet."""
    def go() -> None:
        atomic.check_target(out, [src], overwrite=overwrite, what="contact sheet")
        found, notices = presets.available()
        for notice in notices:
            _say(f"note: {escape(notice)}")
        rgb = preview.first_frame(src, at)
        chosen = sorted(found.values(), key=lambda p: p.name)
        sessions = Sessions(offline)
        for name in sorted({model or p.model for p in chosen}):
            _net(sessions, name)
        sheet = preview.contact_sheet(rgb, chosen, sessions, tile, model)
        preview.save_png(sheet, out, overwrite, inputs=[src])
        _say(f"wrote {escape(str(out))} ({len(found)} presets)")

    _run(go)


@keyframes_app.command("check")
def keyframes_check(
    file: Annotated[Path, typer.Argument(help="Keyframes .toml file.")],
    fps: Annotated[float | None, typer.Option(help="Frame rate for frame numbers like f120.")
                   ] = None,
    duration: Annotated[float | None, typer.Option(
        help="Seconds to show (default: one past the last keyframe).")] = None,
    step: Annotated[float, typer.Option(help="Seconds between rows between keyframes.")] = 0.5,
) -> None:
    """Validate a keyframes file and print its resolved schedule."""
    def go() -> tuple[keyframes.Timeline, list[Fraction]]:
        if fps is not None and not 0 < fps < math.inf:
            raise OptionError(f"--fps {fps}: use a positive frame rate")
        if not 0 < step < math.inf or (duration is not None and not 0 <= duration < math.inf):
            raise OptionError(f"--step {step} / --duration {duration}: use a positive step "
                              "and a duration >= 0")
        timeline = keyframes.load(file, Fraction(str(fps)) if fps else None)
        end = Fraction(str(duration)) if duration is not None else timeline.keyframes[-1].at + 1
        grid = Fraction(str(step))
        if end / grid > MAX_ROWS:
            raise OptionError(f"--duration {float(end):g} with --step {step} makes more than "
                              f"{MAX_ROWS} rows; use a larger --step")
        times = sorted({i * grid for i in range(int(end / grid) + 1)}
                       | {k.at for k in timeline.keyframes if k.at <= end})
        return timeline, times

    timeline, times = _run(go)
    for notice in timeline.notices:
        _say(f"note: {escape(notice)}")
    marks = {k.at: i for i, k in enumerate(timeline.keyframes, start=1)}
    table = Table("time (s)", "keyframe", "style", "alpha", "original", "images")
    for t in times[:MAX_ROWS]:
        weights, alpha = timeline.at(t)
        looks = timeline.looks_at(t)
        look = looks[0][0] if len(looks) == 1 else \
            " -> ".join(f"{label} ({share:.0%})" for label, share in looks)
        images = ", ".join(f"{p.name} {w:.3f}" for p, w in zip(timeline.styles, weights)
                           if w > 5e-4)
        table.add_row(f"{float(t):.3f}", f"#{marks[t]}" if t in marks else "", escape(look),
                      f"{alpha:.3f}", f"{timeline.original_at(t):.3f}", escape(images))
    Console().print(table)
    if len(times) > MAX_ROWS:
        _say(f"note: {len(times) - MAX_ROWS} more rows not shown; use --duration to see fewer")


@app.command("eval", short_help=commands.COMMANDS["eval"])
def eval_cmd(
    source: Annotated[Path, typer.Argument(help="The original video.")],
    stylized: Annotated[list[Path], typer.Argument(
        help="Its stylized renders: one or more, compared under the same flows.")],
    flow: Annotated[str, typer.Option(
        help=f"Optical flow estimator: {' | '.join(flow_estimators.ESTIMATORS)} "
             f"(dis is the render's own).")] = flow_estimators.DEFAULT_FLOW,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object per render, one per line.")] = False,
    long_gap: Annotated[int, typer.Option(help="Frames apart for the long-term error.")] = 10,
    max_side: Annotated[int | None, typer.Option(
        help="Evaluate at most this many pixels on the longer side.")] = 480,
    style: Annotated[Path | None, typer.Option(
        help="Style image: also report the style distance from it.")] = None,
    preset: Annotated[str | None, typer.Option(
        help="A preset's name or file: also report the style distance from its styles "
             "(a blend as its renders blend them), at its style size.")] = None,
    model: Annotated[str | None, typer.Option(
        help=f"Encoder for the style distance (default: the preset's, else "
             f"{weights.DEFAULT_MODEL}, as for render).")] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", help="Never download (also VSTPIPE_OFFLINE=1).")] = False,
    report: Annotated[Path | None, typer.Option(
        help="Also write a self-contained HTML page: curves per frame, worst frames, "
             "figures.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing --report file.")] = False,
) -> None:
    """Temporal consistency (Lai et al. 2018 warping error) of each STYLIZED against SOURCE."""
    trace = eval_report.Trace(len(stylized)) if report is not None else None
    ruler: list[str] = []  # the model whose encoder measured the style distance

    def go() -> list[evaluate.EvalReport]:
        opts = evaluate.EvalOptions(long_gap=long_gap, max_side=max_side, flow=flow)
        if style is not None and preset is not None:
            raise OptionError("give --style or --preset, not both")
        styles: evaluate.Styles | None = style
        chosen = model
        if preset is not None:
            found_preset, notices = presets.find(preset)
            for notice in notices:
                _say(f"note: {escape(notice)}")
            styles = list(found_preset.styles)
            opts = replace(opts, style_size=found_preset.style_size)
            chosen = model or found_preset.model
        evaluate.check_eval_options(opts)
        if report is not None:
            inputs = [source, *stylized, *([style] if style is not None else [])]
            atomic.check_target(report, inputs, overwrite=overwrite, what="report")
        net = None
        if styles is not None:
            sessions = Sessions(offline)
            net = sessions.net(chosen or weights.DEFAULT_MODEL)
            for notice in sessions.notices:
                _say(f"note: {escape(notice)}")
            ruler.append(net.name)
        found = evaluate.evaluate_many(source, stylized, opts, style=styles, net=net,
                                       trace=trace)
        if report is not None and trace is not None:
            eval_report.write(report, source, stylized, found, trace, long_gap,
                              overwrite=overwrite)
        return found

    reports = _run(go)
    if report is not None:
        _say(f"wrote report {escape(str(report))}")
    if json_out:
        for path, rep in zip(stylized, reports, strict=True):
            typer.echo(json.dumps({"stylized": str(path), **rep.to_json()}))
        return
    first = reports[0]
    skipped = (f"; {first.skipped_pairs} pairs skipped as cuts" if first.skipped_pairs
               else "")
    table = Table("video", "warping error", "ratio", f"long-term ({long_gap} frames)", "ratio",
                  title=f"warping error under {flow} flow, {first.frames} frames{skipped}")
    styled = first.style_distance is not None
    if styled:
        table.add_column(f"style distance ({escape(ruler[0])})")
    # The source's own error under the same flows: the floor every ratio divides by.
    table.add_row(f"{escape(str(source))} (source)", f"{first.warp_error_source:.6f}", "",
                  f"{first.long_term_source:.6f}", "", *([""] if styled else []))
    for path, rep in zip(stylized, reports, strict=True):
        row = [escape(str(path)), f"{rep.warp_error:.6f}", f"{rep.ratio:.3f}",
               f"{rep.long_term:.6f}", f"{rep.long_term_ratio:.3f}"]
        if rep.style_distance is not None:
            row.append(f"{rep.style_distance:.4f}")
        table.add_row(*row)
    Console().print(table)


_Opt = typer.Option  # the training flags below are many; this keeps them to one line each


def _train(stage: str, values: dict[str, object], config: Path | None) -> None:
    """Shared body of `train` and `finetune`: options, the loop, the closing line."""
    from .progress import training
    from .train import loop, options

    cli = dict(values, stage=stage)
    for flag in ("offline", "resume", "from_scratch"):  # an unset switch leaves the file's value
        cli[flag] = True if cli.get(flag) else None
    if weights.offline_from_env():
        cli["offline"] = True
    opts = _run(lambda: options.merge(cli, config))
    with training(f"{'finetune' if stage == 'video' else 'train'} {opts.out.name}") as bar:
        report = _run(lambda: loop.train(
            opts, bar, on_notice=lambda notice: _say(f"note: {escape(notice)}")))
    if not report.main:  # another rank of a torchrun job: rank 0 reports
        raise typer.Exit(130 if report.interrupted else 0)
    terms = ", ".join(f"{k} {v:.4g}" for k, v in report.terms.items())
    skipped = f"; {report.skipped} unreadable images skipped" if report.skipped else ""
    if report.interrupted:
        _say(f"interrupted at step {report.steps}; checkpoint saved in {escape(str(opts.out))}"
             f"; continue with --resume{skipped}")
        raise typer.Exit(130)
    terms = f", {terms}" if terms else ""  # a finished run resumed trains no step
    _say(f"wrote model {escape(str(opts.out))} ({report.steps} steps{terms}){skipped}; "
         f"render with --model {escape(str(opts.out))}")


# Options that `finetune` and `train` share.
_Styles = Annotated[Path | None, _Opt(help="Folder of style images (recursive).")]
_Out = Annotated[Path | None, _Opt(help="Run folder; becomes a model directory.")]
_Steps = Annotated[int | None, _Opt(help="Optimizer steps (default 1000).")]
_Lr = Annotated[float | None, _Opt(help="Adam learning rate (1e-4).")]
_Seed = Annotated[int | None, _Opt(help="Random seed (0).")]
_Crop = Annotated[int | None, _Opt(help="Square crop size (256).")]
_StyleSizeT = Annotated[int | None, _Opt(
    "--style-size", help="Shorter side of the style images before their crop (2 x crop).")]
_LambdaC = Annotated[float | None, _Opt(help="Weight of L_c (1).")]
_LambdaS = Annotated[float | None, _Opt(help="Weight of L_s (3).")]
_LambdaG = Annotated[float | None, _Opt(
    help="Weight of a Gram-matrix style term (0: off; not in the paper; bolder patterns).")]
_LambdaSW = Annotated[float | None, _Opt(
    help="Weight of a sliced Wasserstein style term (0: off; not in the paper; the style's "
         "whole palette).")]
_Every = Annotated[int | None, _Opt(help="Steps between checkpoints (200).")]
_Resume = Annotated[bool, _Opt("--resume", help="Continue from OUT/checkpoint.pt.")]
_Device = Annotated[str | None, _Opt(help="auto, cpu or cuda.")]
_Offline = Annotated[bool, _Opt("--offline", help="Never download weights.")]
_Config = Annotated[Path | None, _Opt(help="TOML file of these options (flags win).")]


_Teacher = Annotated[Path | None, _Opt(
    help="Folder of a teacher's paintings of the content: TEACHER/<style>/<content>.png.")]
_LambdaT = Annotated[float | None, _Opt(
    help="Weight of the distance to the teacher's paintings (0: off; not in the paper).")]
_TeacherMatch = Annotated[str | None, _Opt(
    help="features (where each stroke lies, default) | stats (channel means and stds) | "
         "regions (each 8x8 cell's colour).")]


@app.command("finetune")
def finetune_cmd(
    davis: Annotated[Path | None, _Opt(help="DAVIS 2017 root (JPEGImages/480p/<seq>/).")] = None,
    styles: _Styles = None,
    out: _Out = None,
    model: Annotated[str | None, _Opt(
        help="Model to start from: name or DIR (default auto, as for render).")] = None,
    affinity: Annotated[str | None, _Opt(help="Affinity estimator: uvc (paper) or encoder.")
                        ] = None,
    affinity_layer: Annotated[int | None, _Opt(help="encoder backend: style layer 0..3/-1.")
                              ] = None,
    steps: _Steps = None,
    batch: Annotated[int | None, _Opt(help="Frame pairs per step and process (4).")] = None,
    lr: _Lr = None,
    seed: _Seed = None,
    crop: _Crop = None,
    style_size: _StyleSizeT = None,
    max_gap: Annotated[int | None, _Opt(help="Frames apart within a pair: 1..N (5, max 10).")
                       ] = None,
    lambda_content: _LambdaC = None,
    lambda_style: _LambdaS = None,
    lambda_gram: _LambdaG = None,
    lambda_swd: _LambdaSW = None,
    lambda_affinity: Annotated[float | None, _Opt(help="Weight of L_a (10000).")] = None,
    lambda_temporal: Annotated[float | None, _Opt(help="Weight of L_temp (10).")] = None,
    content: Annotated[Path | None, _Opt(
        help="With --teacher: the folder of the images the teacher painted.")] = None,
    teacher: _Teacher = None,
    lambda_teacher: _LambdaT = None,
    teacher_match: _TeacherMatch = None,
    eps: Annotated[float | None, _Opt(help="Diagonal added to the target affinity (0.1).")
                   ] = None,
    sigma: Annotated[float | None, _Opt(help="Width of the centre weighting G (0.5).")] = None,
    temperature: Annotated[float | None, _Opt(help="Affinity softmax temperature.")] = None,
    normalize: Annotated[bool | None, _Opt(help="L2-normalise affinity features.")] = None,
    affinity_chunk: Annotated[int | None, _Opt(help="Affinity columns per chunk (1024).")
                              ] = None,
    checkpoint_every: _Every = None,
    resume: _Resume = False,
    device: _Device = None,
    offline: _Offline = False,
    config: _Config = None,
) -> None:
    """Finetune a decoder on DAVIS frame pairs with the paper's inter-frame affinity loss."""
    values = dict(locals())
    values.pop("config")
    _train("video", values, config)


@app.command("train")
def train_cmd(
    content: Annotated[Path | None, _Opt(help="Folder of content images (recursive).")] = None,
    styles: _Styles = None,
    out: _Out = None,
    model: Annotated[str | None, _Opt(
        help="Encoder (and starting decoder): name or DIR (default auto, as for render).")
    ] = None,
    from_scratch: Annotated[bool, _Opt("--from-scratch",
                                       help="Start from a random decoder.")] = False,
    steps: _Steps = None,
    batch: Annotated[int | None, _Opt(help="Images per step and process (4).")] = None,
    lr: _Lr = None,
    seed: _Seed = None,
    crop: _Crop = None,
    style_size: _StyleSizeT = None,
    lambda_content: _LambdaC = None,
    lambda_style: _LambdaS = None,
    lambda_gram: _LambdaG = None,
    lambda_swd: _LambdaSW = None,
    teacher: _Teacher = None,
    lambda_teacher: _LambdaT = None,
    teacher_match: _TeacherMatch = None,
    checkpoint_every: _Every = None,
    resume: _Resume = False,
    device: _Device = None,
    offline: _Offline = False,
    config: _Config = None,
) -> None:
    """The image stage: train a decoder on content and style images (L_c + L_s)."""
    values = dict(locals())
    values.pop("config")
    _train("image", values, config)


@ofx_app.command("list")
def ofx_list() -> None:
    """Effects in plugins/, on VSTPIPE_PLUGIN_PATH and from `vstpipe.plugins` entry points."""
    catalog = _run(effects.load_catalog)
    for ident, found in catalog.effects.items():
        desc = ofx.Descriptor(ident)
        found.effect.describe(desc)
        version = ".".join(map(str, desc.version))
        typer.echo(f"{ident:<28} {desc.label or ident:<20} {version:<6} "
                   f"{','.join(desc.contexts):<16} {found.origin}")
    for failure in catalog.failures:
        _say(f"[yellow]broken plugin[/] {escape(failure.plugin)}: {escape(failure.message)}")


_Context = Annotated[str, typer.Option("--context", help="filter | general")]


@ofx_app.command("describe")
def ofx_describe(effect: Annotated[str, typer.Argument(help="Identifier or its last part.")],
                 context: _Context = "filter") -> None:
    """Print an effect's descriptor (clips, parameters, flags) as JSON."""
    desc = _run(lambda: ofx.describe(effects.load_catalog().get(effect), context))
    typer.echo(ofx.descriptor_json(desc, context))


@ofx_app.command("render")
def ofx_render(
    effect: Annotated[str, typer.Argument(help="Identifier or its last part.")],
    src: Annotated[Path, typer.Argument(help="Input video.")],
    out: Annotated[Path, typer.Argument(help="Output video.")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="NAME=VALUE, or NAME@FRAME=VALUE for a keyframe; repeat.")] = None,
    tiles: Annotated[str, typer.Option(help="Render windows per frame, COLUMNSxROWS.")] = "1x1",
    depth: Annotated[str | None, typer.Option(
        help="byte | short | half | float (default: the source's, if supported).")] = None,
    context: _Context = "filter",
    codec: _Codec = None,
    crf: _Crf = None,
    pix_fmt: _PixFmt = None,
    encoder_preset: _EncoderPreset = None,
    tune: _Tune = None,
    profile: _Profile = None,
    bitrate: _Bitrate = None,
    encoder_opt: _EncoderOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT.")] = False,
    offline: _NoDownload = False,
) -> None:
    """Run an effect over a video through the OpenFX-style life cycle; audio is kept."""
    def go() -> None:
        encode = _encode(codec, crf, pix_fmt, None, encoder_preset, tune, profile, bitrate,
                         encoder_opt)
        if offline:
            os.environ["VSTPIPE_OFFLINE"] = "1"  # effects load their models themselves
        found = effects.load_catalog().get(effect)
        opts = ofx_host.HostOptions(context=context, depth=depth,
                                    tiles=ofx_host.parse_tiles(tiles))
        params = ofx_host.params_from_args(ofx.describe(found, context), param or [])
        with frames(src.name) as on_frames:
            report = ofx_host.render_video(found, src, out, params, opts, encode, overwrite,
                                           on_frames)
        _say(f"wrote {escape(str(out))} ({report.frames} frames, {report.depth}, "
             f"{report.frames / max(report.seconds, 1e-9):.2f} fps)")

    _run(go)


@ofx_app.command("bundle")
def ofx_bundle_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder to put vstpipe.ofx.bundle in.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a bundle there.")] = False,
) -> None:
    """Compile the native OpenFX plugin (a bridge to `vstpipe serve`) into a bundle hosts load."""
    bundle = _run(lambda: ofx_bundle.build(out, overwrite=overwrite))
    _say(f"wrote {escape(str(bundle.path))} ({len(bundle.effects)} effects: "
         f"{escape(', '.join(bundle.effects))})")
    _say(escape(bundle.install_hint))


class BatchFailed(VstpipeError):
    """Some of a batch's jobs failed (the others were rendered)."""


@app.command("batch")
def batch_cmd(
    job_file: Annotated[Path | None, typer.Argument(
        help="Job file (TOML): inputs, looks, output names (README: Batches).")] = None,
    inputs: Annotated[list[str] | None, typer.Option(
        "--inputs", help="Without a job file: input files or quoted globs; repeat.")] = None,
    preset: Annotated[list[str] | None, typer.Option(
        "--preset", help="Without a job file: one look per preset; repeat.")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out-dir", help="Without a job file: the output folder (default: here).")] = None,
    name: Annotated[str, typer.Option(
        help="Without a job file: output names, from {stem}, {look} and {ext}.")
    ] = batch_plan.DEFAULT_NAME,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Worker processes on this machine (default: one per GPU, else one per "
                    "two CPU cores); with --ray, CPU actors.")] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", help="Run on Ray: auto (this machine's cluster), ray://HOST:PORT, or local; "
                      "needs vstpipe[ray] and shared storage.")] = None,
    segments: Annotated[int, typer.Option(
        min=1, help="Split each input into this many parts at keyframes, render them in "
                    "parallel and join them.")] = 1,
    warmup: Annotated[int, typer.Option(
        min=0, help="Frames before each part rendered only to carry the temporal state "
                    "across the seam.")] = batch_segments.WARMUP,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace outputs this batch did not make.")] = False,
    offline: _NoDownload = False,
    json_summary: Annotated[bool, typer.Option(
        "--json", help="Print the summary as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Render many inputs with many looks; re-runs skip what is done with the same settings."""
    def go() -> batch_run.Summary:
        if job_file is not None and (inputs or preset or out_dir):
            raise OptionError(f"{job_file}: with a job file, set inputs, looks and out_dir in "
                              f"it, not --inputs/--preset/--out-dir")
        plan = batch_plan.load(job_file) if job_file is not None else \
            batch_plan.from_options(inputs or [], preset or [], out_dir or Path("."), name)
        pool = batch_local.LocalPool(batch_local.slots(workers), offline) if ray is None \
            else batch_ray.RayPool(ray, offline, workers)
        with progress.batch(len(plan.tasks), quiet) as listener:
            return batch_run.run(plan, pool, overwrite=overwrite, listener=listener,
                                 segments=segments, warmup=warmup)

    summary = _run(go)
    if json_summary:
        typer.echo(json.dumps(summary.as_json(), indent=1))
    else:
        for line in batch_run.table(summary):
            typer.echo(line)
    if summary.interrupted is not None:
        _run(lambda: _raise(summary.interrupted))
    failed = summary.failed
    if failed:
        names = ", ".join(f"{t.input.name} ({t.look.name})" for t, _ in failed[:5])
        rest = "the others were rendered" if len(failed) < len(summary.outcomes) else "none was"
        _run(lambda: _raise(BatchFailed(
            f"{len(failed)} of {len(summary.outcomes)} jobs failed: {names}"
            f"{', ...' if len(failed) > 5 else ''}; {rest}")))


def _raise(exc: BaseException) -> None:
    """Raise ``exc`` inside _run, which reports it as every command's errors are."""
    raise exc


@app.command("serve")
def serve_cmd(socket: Annotated[Path | None, typer.Option(
        help="Listen on this UNIX socket instead of stdin/stdout.")] = None) -> None:
    """Frame server for native plugin bridges (protocol: plugins/README.md)."""
    code = _run(serve.serve_stdio if socket is None else lambda: serve.serve_socket(socket))
    raise typer.Exit(code)


def main() -> None:
    command = typer.main.get_command(app)
    plain_labels(command)
    command(prog_name="vstpipe")


if __name__ == "__main__":
    sys.exit(main())
