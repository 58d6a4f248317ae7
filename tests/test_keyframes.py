"""Keyframes: parsing, easing, per-frame looks, and the errors that name their place; renders
of keyframed looks through the library (jobs.resolve + pipeline.render, one random network per
module); `keyframes check` through the command line."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from clips import make_clip
from PIL import Image

from vstpipe import jobs, keyframes, pipeline, presets, timecode
from vstpipe.errors import ConfigError, OptionError
from vstpipe.keyframes import Timeline
from vstpipe.media import EncodeOptions
from vstpipe.sessions import Sessions


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        out[name] = tmp_path / f"{name}.png"
        Image.new("RGB", (64, 64), colour).save(out[name])
    return out


@pytest.fixture
def no_user_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSTPIPE_PRESETS", str(tmp_path / "no-user-presets"))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "show.toml"
    path.write_text(text)
    return path


SHOW = """
[timeline]
ease = "{ease}"
[[keyframe]]
at = "00:00:01"
style = "red.png"
[[keyframe]]
at = 3.0
style = {{ "red.png" = 1, "blue.png" = 3 }}
alpha = 0.5
[[keyframe]]
at = "f100"
style = "none"
"""


@pytest.mark.parametrize("ease", ["linear", "smooth", "hold"])
def test_weights_and_alpha_follow_the_easing(tmp_path, images, no_user_presets, ease):
    timeline = keyframes.load(_write(tmp_path, SHOW.format(ease=ease)), fps=25)
    assert [k.at for k in timeline.keyframes] == [1.0, 3.0, 4.0]
    assert [p.name for p in timeline.styles] == ["red.png", "blue.png"]
    # Before the first keyframe the look holds.
    w, a = timeline.at(0.0)
    np.testing.assert_allclose(w, [1, 0])
    assert a == pytest.approx(1.0)
    # At t = 1.5 the segment 1 s -> 3 s is a quarter done.
    s = {"linear": 0.25, "smooth": 0.25 * 0.25 * (3 - 2 * 0.25), "hold": 0.0}[ease]
    w, a = timeline.at(1.5)
    np.testing.assert_allclose(w, (1 - s) * np.array([1, 0]) + s * np.array([0.25, 0.75]))
    assert a == pytest.approx((1 - s) * 1.0 + s * 0.5)
    # Exactly at a keyframe its own look applies, whatever the easing.
    w, a = timeline.at(3.0)
    np.testing.assert_allclose(w, [0.25, 0.75])
    assert a == pytest.approx(0.5)
    assert timeline.original_at(3.0) == 0.0
    # Fading to `none`: the look holds and the source pixels come in (s = 0.625 for smooth).
    s = {"linear": 0.75, "smooth": 0.75 * 0.75 * (3 - 2 * 0.75), "hold": 0.0}[ease]
    w, a = timeline.at(3.75)
    np.testing.assert_allclose(w, [0.25, 0.75])
    assert a == pytest.approx(0.5)
    assert timeline.original_at(3.75) == pytest.approx(s)
    assert timeline.original_at(100.0) == 1.0 and timeline.original_at(0.0) == 0.0


def test_segment_easing_overrides_the_timeline_default(tmp_path, images, no_user_presets):
    text = SHOW.format(ease="hold").replace('alpha = 0.5', 'alpha = 0.5\nease = "linear"')
    timeline = keyframes.load(_write(tmp_path, text), fps=25)
    assert [k.ease for k in timeline.keyframes] == ["hold", "linear", "hold"]
    assert timeline.at(2.0)[1] == pytest.approx(0.75)


@pytest.mark.parametrize("value, seconds", [
    ("00:00:00", 0.0), ("01:02:03.5", 3723.5), (4, 4.0), (2.25, 2.25), ("f50", 2.0),
    ("00:00:02:10", 2.4), ("1.5", 1.5),
])
def test_time_formats(value, seconds):
    assert timecode.parse(value, Fraction(25), "x") == pytest.approx(seconds)


def test_constant_timeline_from_flags(images):
    timeline = Timeline.constant([images["red"], images["blue"]], [3, 1], 0.4)
    w, a = timeline.at(123.0)
    np.testing.assert_allclose(w, [0.75, 0.25])
    assert a == pytest.approx(0.4)
    with pytest.raises(OptionError, match=r"^alpha 2.0 is outside \[0, 1\]$") as err:
        Timeline.constant([images["red"]], (), 2.0)
    assert err.value.named(lambda s: f"--{s}") == "--alpha 2.0 is outside [0, 1]"


GOOD_ROW = 'at = {at}\nstyle = "red.png"'


@pytest.mark.parametrize("rows, message", [
    (['at = 0\nstyle = "red.png"', 'at = 1\nstyle = "red.png"', 'at = 2\nstyle = "red.png"\nalhpa = 1'],
     r"show\.toml \[\[keyframe\]\] #3: unknown key 'alhpa'; expected at, style, alpha, ease$"),
    (['at = 2\nstyle = "red.png"', 'at = 1\nstyle = "red.png"'],
     r"#2: time 1 \(1 s\) does not come after keyframe #1 \(2 s\)"),
    (['at = 2\nstyle = "red.png"', 'at = 2\nstyle = "red.png"'], r"#2: .*times must increase"),
    (['at = 0\nstyle = { "red.png" = -1 }'], r"#1: weight of 'red.png' must be a number >= 0"),
    (['at = 0\nstyle = { "red.png" = 0, "blue.png" = 0 }'], r"#1: the style weights are all zero"),
    (['at = 0\nstyle = "nosuchpreset"'], r"#1: unknown preset or missing image 'nosuchpreset'"),
    (['at = 0\nstyle = "missing.png"'], r"#1: unknown preset or missing image 'missing.png'"),
    (['at = 0\nstyle = "red.png"\nalpha = 1.5'], r"#1: alpha 1.5 is outside \[0, 1\]"),
    (['at = "1:2"\nstyle = "red.png"'], r"#1 'at': cannot read time '1:2'"),
    (['at = -1\nstyle = "red.png"'], r"#1 'at': time -1 must be >= 0"),
    (['at = 0\nstyle = "red.png"\nease = "bouncy"'], r"#1: ease 'bouncy' is not one of"),
    (['at = 0'], r"#1: missing key 'style'"),
])
def test_errors_name_file_keyframe_and_key(tmp_path, images, no_user_presets, rows, message):
    text = "".join(f"[[keyframe]]\n{row}\n" for row in rows)
    with pytest.raises(ConfigError, match=message) as err:
        keyframes.load(_write(tmp_path, text), fps=25)
    assert "\n" not in str(err.value) and str(err.value).startswith(str(tmp_path / "show.toml"))


def test_file_level_errors(tmp_path, images, no_user_presets):
    with pytest.raises(ConfigError, match="invalid TOML"):
        keyframes.load(_write(tmp_path, "[[keyframe]\n"))
    with pytest.raises(ConfigError, match=r"\[timeline\]: unknown key 'eas'"):
        keyframes.load(_write(tmp_path, '[timeline]\neas = "hold"\n'
                                        '[[keyframe]]\nat = 0\nstyle = "red.png"\n'))
    with pytest.raises(ConfigError, match="needs a frame rate"):
        keyframes.load(_write(tmp_path, '[[keyframe]]\nat = "f10"\nstyle = "red.png"\n'))
    with pytest.raises(ConfigError, match="file not found"):
        keyframes.load(tmp_path / "nope.toml")


def test_frame_numbers_are_exact_at_ntsc_rates(tmp_path, images, no_user_presets):
    """f3 at 30000/1001 fps is exactly frame 3's pts time: a hold switches on that frame."""
    from fractions import Fraction

    show = _write(tmp_path, '[timeline]\nease = "hold"\n[[keyframe]]\nat = 0\nstyle = "red.png"\n'
                            '[[keyframe]]\nat = "f3"\nstyle = "blue.png"\n')
    fps = Fraction(30000, 1001)
    timeline = keyframes.load(show, fps)
    time_base = Fraction(1, 30000)
    for frame in range(6):
        t = frame * 1001 * time_base  # pts * time_base, as the pipeline computes it
        weights, _ = timeline.at(t)
        assert weights[1] == (1.0 if frame >= 3 else 0.0), frame


def test_presets_in_keyframes_bring_style_size_and_weighted_alpha(tmp_path, no_user_presets):
    ink, vangogh, pointillism = (presets.find(n)[0] for n in ("ink", "vangogh", "pointillism"))
    show = _write(tmp_path, '[[keyframe]]\nat = 0\nstyle = { ink = 1, vangogh = 1 }\n'
                            '[[keyframe]]\nat = 1\nstyle = "pointillism"\n')
    timeline = keyframes.load(show)
    assert timeline.keyframes[0].alpha == pytest.approx((ink.alpha + vangogh.alpha) / 2)
    sizes = dict(zip(timeline.styles, timeline.sizes))
    assert sizes[pointillism.styles[0][0]] == pointillism.style_size == 384


def test_none_keyframe_takes_no_alpha(tmp_path, images, no_user_presets):
    show = _write(tmp_path, '[[keyframe]]\nat = 0\nstyle = "red.png"\n'
                            '[[keyframe]]\nat = 1\nstyle = "none"\nalpha = 0.5\n')
    with pytest.raises(ConfigError, match=r"#2: style none takes no alpha"):
        keyframes.load(show)


def test_a_style_that_is_not_an_image_is_caught_at_load(tmp_path, images, no_user_presets):
    (tmp_path / "notes.txt").write_text("hello")
    show = _write(tmp_path, '[[keyframe]]\nat = 0\nstyle = "notes.txt"\n')
    with pytest.raises(ConfigError, match=r"#1: style 'notes.txt' is not a readable image"):
        keyframes.load(show)


# --- renders of keyframed looks (library level) -----------------------------------------------

LOSSLESS = EncodeOptions(codec="ffv1", pix_fmt="bgr0")  # decodes to exactly what was encoded
# Shorter side the style images are encoded at in the renders (the smallest allowed): these
# tests are about which look applies when, and at the default 512 the encoder's pass over each
# style image would be most of their cost. Every render compared with another uses the same.
STYLE_SIZE = 64


def _render(sessions: Sessions, src: Path, out: Path, request: jobs.Request, fps: int) -> Path:
    """What `vstpipe render SRC --out OUT --precision fp32 --codec ffv1 --pix-fmt bgr0` does
    with the look ``request`` names (the clip's ``fps`` sets keyframe frame numbers)."""
    job = jobs.resolve(replace(request, precision="fp32", encode=LOSSLESS,
                               style_size=STYLE_SIZE), Fraction(fps))
    pipeline.render(src, out, job, sessions)
    return out


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]


def _noise(path: Path, tint: tuple[int, int, int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    arr = (rng.random((96, 96, 3)) * 0.5 + 0.5) * np.array(tint)
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return path


def test_vfr_render_switches_style_at_the_scripted_pts(tmp_path, sessions, no_user_presets):
    """A hold segment switches looks exactly at the keyframe, judged by each frame's pts."""
    src = make_clip(tmp_path / "vfr.mkv", frames=12, vfr=True, codec="ffv1", pix_fmt="bgr0")
    with av.open(str(src)) as c:
        stream = c.streams.video[0]
        times = [float((f.pts - stream.start_time) * stream.time_base)
                 for f in c.decode(stream)]
    gaps = np.diff(times)
    assert len(set(np.round(gaps, 6))) > 1, "the clip should have irregular frame gaps"
    switch = (times[6] + times[7]) / 2  # between two frames, not on a nominal frame grid
    warm, cool = _noise(tmp_path / "warm.png", (255, 120, 40), 1), \
        _noise(tmp_path / "cool.png", (40, 120, 255), 2)
    show = _write(tmp_path, f'[timeline]\nease = "hold"\n[[keyframe]]\nat = 0\n'
                            f'style = "warm.png"\n[[keyframe]]\nat = {switch}\n'
                            f'style = "cool.png"\n')
    outs = {name: _render(sessions, src, tmp_path / f"{name}.mkv",
                          replace(request, batch=5), fps=25)
            for name, request in (("warm", jobs.Request(styles=(warm,))),
                                  ("cool", jobs.Request(styles=(cool,))),
                                  ("show", jobs.Request(keyframes=show)))}
    warm_f, cool_f, show_f = _frames(outs["warm"]), _frames(outs["cool"]), _frames(outs["show"])
    assert len(show_f) == len(times) == 12
    for i, t in enumerate(times):
        expected = warm_f[i] if t < switch else cool_f[i]
        other = cool_f[i] if t < switch else warm_f[i]
        assert np.abs(show_f[i] - expected).max() <= 1, (i, t, switch)
        assert np.abs(show_f[i] - other).mean() > 2, (i, "the two looks should differ")


def test_render_with_a_preset_equals_its_style_flags(tmp_path, sessions, no_user_presets):
    src = make_clip(tmp_path / "in.mkv", frames=3, codec="ffv1", pix_fmt="bgr0")
    ink = presets.find("ink")[0]
    requests = {"preset": jobs.Request(preset="ink"),
                "flags": jobs.Request(styles=(ink.styles[0][0],), alpha=ink.alpha),
                "override": jobs.Request(preset="ink", alpha=0)}
    # The preset's own style size is part of what must equal the flags' (their default); the
    # renders then take a smaller one, all three the same.
    sizes = {name: jobs.resolve(r).look.style_size for name, r in requests.items()}
    assert sizes["preset"] == sizes["flags"] == sizes["override"]
    outs = {name: _render(sessions, src, tmp_path / f"{name}.mkv", request, fps=25)
            for name, request in requests.items()}
    for pa, pb, pc in zip(_frames(outs["preset"]), _frames(outs["flags"]),
                          _frames(outs["override"])):
        assert np.abs(pa - pb).max() <= 1
        assert np.abs(pa - pc).mean() > 1  # --alpha overrides the preset's


def test_crossfade_midpoint_equals_the_constant_blend(tmp_path, sessions, no_user_presets):
    """Halfway through a linear crossfade a frame is the 1:1 blend of the two styles."""
    src = make_clip(tmp_path / "in.mkv", frames=5, fps=4, codec="ffv1", pix_fmt="bgr0")
    with av.open(str(src)) as c:
        stream = c.streams.video[0]
        times = [(f.pts - stream.start_time) * stream.time_base for f in c.decode(stream)]
    assert times[2] == 0.5  # frame 2 sits at the middle of a 0 s -> 1 s fade
    warm, cool = _noise(tmp_path / "warm.png", (255, 120, 40), 1), \
        _noise(tmp_path / "cool.png", (40, 120, 255), 2)
    show = _write(tmp_path, '[[keyframe]]\nat = 0\nstyle = "warm.png"\n'
                            '[[keyframe]]\nat = 1\nstyle = "cool.png"\nease = "linear"\n')
    blend = _frames(_render(sessions, src, tmp_path / "blend.mkv",
                            jobs.Request(styles=(warm, cool)), fps=4))
    show_f = _frames(_render(sessions, src, tmp_path / "show.mkv",
                             jobs.Request(keyframes=show), fps=4))
    assert np.abs(show_f[2] - blend[2]).max() <= 1
    assert np.abs(show_f[0] - blend[0]).mean() > 1 and np.abs(show_f[4] - blend[4]).mean() > 1


def test_none_gives_back_the_source_pixels(tmp_path, sessions, no_user_presets):
    """After a `none` keyframe the output is the original footage, not a decoded copy."""
    src = make_clip(tmp_path / "in.mkv", frames=6, fps=4, codec="ffv1", pix_fmt="bgr0")
    _noise(tmp_path / "warm.png", (255, 120, 40), 1)
    show = _write(tmp_path, '[[keyframe]]\nat = 0\nstyle = "warm.png"\n'
                            '[[keyframe]]\nat = 1\nstyle = "none"\nease = "linear"\n')
    out = _render(sessions, src, tmp_path / "out.mkv", jobs.Request(keyframes=show), fps=4)
    source, styled = _frames(src), _frames(out)
    assert np.abs(styled[0] - source[0]).mean() > 5  # stylized at the start
    for i in (4, 5):  # 1.0 s and 1.25 s: after the keyframe
        assert np.abs(styled[i] - source[i]).max() == 0, i
    midway = np.abs(styled[2] - source[2]).mean()  # 0.5 s: half faded
    assert 0 < midway < np.abs(styled[0] - source[0]).mean()


# --- `keyframes check` through the command line -----------------------------------------------

EXAMPLE = """
[timeline]
ease = "smooth"
[[keyframe]]
at = "00:00:00"
style = "vangogh"
[[keyframe]]
at = 4.0
style = "vangogh"
[[keyframe]]
at = 6.0
style = { graffiti = 0.5, vangogh = 0.5 }
alpha = 0.5
ease = "linear"
"""


def test_check_prints_the_schedule_of_the_documented_example(tmp_path, no_user_presets):
    from typer.testing import CliRunner

    from vstpipe.cli import app

    path = _write(tmp_path, EXAMPLE)
    result = CliRunner().invoke(app, ["keyframes", "check", str(path), "--fps", "25",
                                      "--duration", "7"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:7]]
            for line in result.output.splitlines() if line.startswith("│")}
    # The style as the file wrote it (preset names, the blend), then the images it resolves to.
    assert rows["0.000"] == ["#1", "vangogh", "1.000", "0.000", "starry_night.jpg 1.000"]
    assert rows["4.000"] == ["#2", "vangogh", "1.000", "0.000", "starry_night.jpg 1.000"]
    assert rows["5.000"] == ["", "vangogh (50%) -> { graffiti = 0.5, vangogh = 0.5 } (50%)",
                             "0.750", "0.000", "starry_night.jpg 0.750, graffiti.jpg 0.250"]
    assert rows["6.000"] == ["#3", "{ graffiti = 0.5, vangogh = 0.5 }", "0.500", "0.000",
                             "starry_night.jpg 0.500, graffiti.jpg 0.500"]
    assert rows["7.000"][1:] == rows["6.000"][1:]  # the last look holds


def test_check_reports_errors_in_one_line(tmp_path, images, no_user_presets):
    from typer.testing import CliRunner

    from vstpipe.cli import app

    path = _write(tmp_path, '[[keyframe]]\nat = 0\nstyle = "red.png"\nalhpa = 1\n')
    result = CliRunner().invoke(app, ["keyframes", "check", str(path)])
    assert result.exit_code == 1 and "unknown key 'alhpa'" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["--step", "0"], ["--duration", "-1"],
                                  ["--duration", "1e9", "--step", "1e-6"]])
def test_check_rejects_bad_ranges_in_one_line(tmp_path, images, no_user_presets, args):
    from typer.testing import CliRunner

    from vstpipe.cli import app

    path = _write(tmp_path, '[[keyframe]]\nat = 0\nstyle = "red.png"\n')
    result = CliRunner().invoke(app, ["keyframes", "check", str(path), *args])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
