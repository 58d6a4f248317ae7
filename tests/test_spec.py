"""The job spec (spec.py), its resolution (jobs.py) and the session factory (sessions.py)."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from fakes import random_net
from PIL import Image

from vstpipe import cli, effects, images, jobs, ofx, presets, temporal, weights
from vstpipe.errors import ConfigError, OptionError
from vstpipe.keyframes import Timeline
from vstpipe.media import EncodeOptions, Frame
from vstpipe.sessions import Sessions
from vstpipe.spec import Compute, Job, Look

FLAG = cli.flag  # how the CLI names a setting


@pytest.fixture
def look(style_png: Path) -> Look:
    return Look(Timeline.constant([style_png]))


# -- the spec validates itself, naming settings ---------------------------------------------------

@pytest.mark.parametrize("build, setting, text", [
    (lambda lk: Compute(device="tpu"), "device", "device 'tpu' is not valid; choose from "
                                                  "auto, cpu, cuda"),
    (lambda lk: Compute(precision="int4"), "precision", "precision 'int4' is not valid"),
    (lambda lk: Compute(batch=0), "batch", "batch 0: use 1..4096 frames"),
    (lambda lk: Compute(queue=True), "queue", "queue True: use 1..4096 frames"),
    (lambda lk: Compute(max_side=15), "max_side", "max_side 15 is too small; use 16..16384"),
    (lambda lk: Look(lk.timeline, style_size=4096), "style_size",
     "style_size 4096 is too large; use 64..2048"),
    (lambda lk: Look(lk.timeline, preserve_color="yes"), "preserve_color",
     "preserve_color 'yes' is not true or false"),
    (lambda lk: Job(lk, model=" "), "model", "model is empty"),
    (lambda lk: Job(lk, encode=EncodeOptions(crf=99)), "crf", "crf 99: use an integer from 0 "
                                                               "to 51"),
])
def test_every_part_checks_itself_and_names_the_setting(look, build, setting, text):
    with pytest.raises(OptionError) as err:
        build(look)
    message = str(err.value)
    assert message.startswith(text) and "\n" not in message
    assert "--" not in message  # the library never speaks in one front end's flags
    assert err.value.named(FLAG).startswith(text.replace(setting, FLAG(setting), 1))


def test_a_job_is_frozen_and_equal_settings_make_equal_jobs(look):
    job = Job(look, Compute(batch=2))
    assert job == Job(look, Compute(batch=2)) and hash(job) == hash(Job(look, Compute(batch=2)))
    with pytest.raises(AttributeError):
        job.model = "other"  # type: ignore[misc]


# -- resolution: one Job from any front end ----------------------------------------------------

def test_a_request_needs_exactly_one_source_of_styles(style_png):
    for request, text in (
        (jobs.Request(), "give exactly one of style, preset or keyframes"),
        (jobs.Request(styles=(style_png,), preset="vangogh"),
         "give exactly one of style, preset or keyframes (got style and preset)"),
        (jobs.Request(preset="vangogh", weights=(1.0,)), "weights goes with several style images"),
    ):
        with pytest.raises(OptionError) as err:
            jobs.resolve(request)
        assert str(err.value) == text
    with pytest.raises(OptionError) as err:
        jobs.resolve(jobs.Request(styles=(style_png,), preset="vangogh"))
    assert err.value.named(FLAG) == ("give exactly one of --style, --preset or --keyframes "
                                     "(got --style and --preset)")


def test_a_preset_fills_what_the_request_leaves_unset(tmp_path, style_png):
    path = tmp_path / "look.toml"
    path.write_text(f'style = "{style_png}"\nalpha = 0.5\nmax_side = 320\nstyle_size = 256\n'
                    'preserve_color = true\nmodel = "uvc-lab"\nsmooth_stats = 0.8\n')
    job = jobs.resolve(jobs.Request(preset=str(path), batch=3))
    assert job.look.timeline.at(0)[1] == 0.5 and job.look.preserve_color
    assert (job.look.style_size, job.compute.max_side, job.compute.batch) == (256, 320, 3)
    assert job.model == "uvc-lab" and job.temporal["smooth_stats"] == 0.8
    over = jobs.resolve(jobs.Request(preset=str(path), alpha=1.0, max_side=640, style_size=512,
                                     preserve_color=False, model="adain-vgg19",
                                     temporal={"smooth_stats": 0.0, "flow_blend": 0.5}))
    assert over.look.timeline.at(0)[1] == 1.0 and not over.look.preserve_color
    assert (over.look.style_size, over.compute.max_side, over.model) == (512, 640, "adain-vgg19")
    assert (over.temporal["smooth_stats"], over.temporal["flow_blend"]) == (0.0, 0.5)


def test_a_bad_override_is_named_once_whoever_set_it(tmp_path, style_png):
    """One rule per setting: a flag, a preset key and a keyframes-free style request all meet
    the same range, with the same words."""
    path = tmp_path / "look.toml"
    path.write_text(f'style = "{style_png}"\nmax_side = 20000\n')
    with pytest.raises(ConfigError, match=r"look\.toml: max_side 20000 is too large; use "
                                          r"16\.\.16384$"):
        presets.load(path)
    with pytest.raises(OptionError) as err:
        jobs.resolve(jobs.Request(styles=(style_png,), max_side=20000))
    assert str(err.value) == "max_side 20000 is too large; use 16..16384"
    with pytest.raises(OptionError) as err:
        jobs.resolve(jobs.Request(styles=(style_png,), temporal={"flow_blend": 2.0}))
    assert err.value.named(FLAG) == "--flow-blend 2.0 is outside [0, 1]"


def test_keyframes_resolve_with_frame_numbers_and_refuse_a_global_alpha(tmp_path, style_png):
    path = tmp_path / "show.toml"
    path.write_text(f'[[keyframe]]\nat = 0\nstyle = "{style_png}"\n'
                    f'[[keyframe]]\nat = "f50"\nstyle = "{style_png}"\nalpha = 0\n')
    job = jobs.resolve(jobs.Request(keyframes=path), Fraction(25))
    assert [k.at for k in job.look.timeline.keyframes] == [0, 2]
    with pytest.raises(OptionError) as err:
        jobs.resolve(jobs.Request(keyframes=path, alpha=0.5), Fraction(25))
    assert err.value.named(FLAG) == ("--alpha does not apply to --keyframes; set alpha per "
                                     "keyframe")
    with pytest.raises(ConfigError) as err:
        jobs.resolve(jobs.Request(keyframes=path))
    assert str(err.value).endswith("needs a frame rate; give fps")


def test_the_cli_and_the_stylize_effect_resolve_the_same_settings_to_the_same_job(style_png):
    request = cli._request([style_png], None, None, None, None, True, 256, 320, "uvc-lab",
                           temporal.with_steady({}, True), "cpu", "fp32", 1)
    from_cli = jobs.resolve(request)
    stylize = effects.load_catalog().get("stylize")

    class Host:  # the part of an effect host the effect reads its parameters from
        context = "filter"
        params = ofx.ParamSet(ofx.describe(stylize, "filter").params)

    for name, value in (("style", str(style_png)), ("preserve_color", "on"),
                        ("style_size", 256), ("max_side", 320), ("model", "uvc-lab"),
                        ("steady", True), ("device", "cpu"), ("precision", "fp32")):
        Host.params.set(name, value)
    from_effect = jobs.resolve(stylize(Host())._request())
    assert from_effect == from_cli


def test_for_preset_is_the_presets_own_job_with_overrides():
    vangogh = presets.find("vangogh")[0]
    job = jobs.for_preset(vangogh, jobs.Request(max_side=64, device="cpu"))
    assert job == jobs.resolve(jobs.Request(preset="vangogh", max_side=64, device="cpu"))
    assert job.look.timeline.styles == tuple(p for p, _ in vangogh.styles)


# -- the session factory -------------------------------------------------------------------------

def test_sessions_load_each_network_and_each_style_image_once(tmp_path, style_png,
                                                              monkeypatch):
    net = random_net()
    decoded, resolved = Counter(), Counter()
    rgb = images._rgb

    def decoding(im: Image.Image) -> np.ndarray:
        decoded[Path(im.filename).name] += 1
        return rgb(im)

    monkeypatch.setattr(images, "_rgb", decoding)
    monkeypatch.setattr(weights, "resolve", lambda name, **_: resolved.update([name]) or
                        weights.ResolvedModel(name, "adain-vgg19", {}))
    monkeypatch.setattr(weights, "load", lambda resolved: net)
    sessions = Sessions()
    job = Job(Look(Timeline.constant([style_png])), Compute(device="cpu", precision="fp32",
                                                            batch=1))
    frame = Frame(np.full((24, 32, 3), 128, np.uint8), 0, Fraction(1, 25))
    outs = [sessions.session(job, (32, 24)).process([frame], (32, 24), 8)[0] for _ in range(3)]
    assert decoded == Counter({"style.png": 1}) and resolved == Counter({job.model: 1})
    assert all(np.array_equal(o.rgb, outs[0].rgb) for o in outs)  # fresh state each time
    assert sessions.session(job, (32, 24)).job is job
    preloaded = Sessions(nets={"mine": net})
    assert preloaded.net("mine") is net and resolved == Counter({job.model: 1})


def test_one_size_parser_for_every_wxh_setting(tmp_path, style_png):
    from typer.testing import CliRunner

    from vstpipe.spec import parse_size

    assert parse_size("1280x720") == (1280, 720) and parse_size("64X48") == (64, 48)
    assert parse_size("640:480") == (640, 480)  # ffmpeg's form
    for bad in ("1280", "axb", "1x2x3", "1:2:3", "1:2x3", "9" * 5000 + "x1"):
        with pytest.raises(OptionError, match=r"^size .*: not WxH or W:H, e.g. 1280x720$") as err:
            parse_size(bad)
        assert len(str(err.value)) < 100
    # render --size and filter --size give the same one line and exit status
    for args in (["render", str(style_png), "--out", str(tmp_path / "o.mp4")],
                 ["filter"]):
        result = CliRunner().invoke(cli.app, [*args, "--size", "big", "--style", str(style_png),
                                              "--offline"], input=b"")
        assert result.exit_code == 1
        assert result.output.strip() == ("vstpipe: error: --size big: not WxH or W:H, e.g. "
                                         "1280x720")
