"""The OpenFX-shaped effect API, plugin discovery and the reference host (vstpipe ofx)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
from clips import make_clip

from vstpipe import effects, ofx, ofx_host
from vstpipe.errors import EffectError, OptionError, ParamError
from vstpipe.media import EncodeOptions

LOSSLESS = EncodeOptions(codec="ffv1", pix_fmt="bgr0")  # RGB in, RGB out: exact


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.size]


def params_for(effect: type[ofx.Effect], **values: object) -> ofx.ParamSet:
    params = ofx.ParamSet(ofx.describe(effect, "filter").params)
    for name, value in values.items():
        params.set(name, value)
    return params


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "in.mkv", size=(64, 48), frames=6, codec="ffv1", pix_fmt="bgr0",
                     audio="aac")


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on VSTPIPE_PLUGIN_PATH for the test's own plugins."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    monkeypatch.setenv(effects.PATH_VARIABLE, str(folder))
    return folder


def cli(*args: str):
    from typer.testing import CliRunner

    from vstpipe.cli import app

    return CliRunner().invoke(app, list(args))


def write_plugin(folder: Path, name: str, body: str) -> None:
    head = "from vstpipe import ofx\nfrom vstpipe.ofx import OUTPUT, SOURCE\n"
    (folder / f"{name}.py").write_text(head + textwrap.dedent(body))


# -- the API -----------------------------------------------------------------------------------

def test_tiles_cover_the_area_exactly_once():
    area = ofx.Rect(3, 5, 70, 41)
    covered = np.zeros((50, 80), dtype=int)
    for t in ofx.tiles(area, 3, 2):
        covered[t.y1:t.y2, t.x1:t.x2] += 1
    assert covered[5:41, 3:70].min() == covered.max() == 1 and covered.sum() == 67 * 36


def test_image_rows_are_bottom_up_and_views_are_windows():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)  # top-down, like a frame
    image = ofx_host.frame_to_image(rgb, "byte")
    assert image.bounds == ofx.Rect(0, 0, 3, 2)
    assert (image.pixels[0, :, :3] == rgb[1]).all()  # row 0 is the bottom row
    assert (image.view(ofx.Rect(1, 1, 3, 2))[..., :3] == rgb[0, 1:]).all()
    assert (image.top_down()[..., :3] == rgb).all() and (image.pixels[..., 3] == 255).all()
    with pytest.raises(EffectError, match="outside the image bounds"):
        image.view(ofx.Rect(0, 0, 4, 2))


@pytest.mark.parametrize("depth", ofx.DEPTHS)
def test_depth_conversions_round_trip_8_bit_values(depth):
    rgb = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    image = ofx_host.frame_to_image(rgb, depth)
    assert image.pixels.dtype == ofx.DEPTH_DTYPES[depth]
    assert (ofx_host.image_to_rgb(image, deep=False) == rgb).all()
    deep = ofx_host.image_to_rgb(image, deep=True).astype(int)
    # half keeps 11 significant bits: within 2^-11 of 1.0 is 32 levels of 16 bits
    assert np.abs(deep - rgb.astype(int) * 257).max() <= (32 if depth == "half" else 0)


def test_params_check_types_and_ranges_and_name_the_parameter():
    alpha = ofx.double("alpha", 1.0, 0.0, 1.0)
    assert alpha.parse("0.25") == 0.25
    with pytest.raises(ParamError, match=r"'alpha': 1.5 is outside \[0.0, 1.0\]"):
        alpha.parse("1.5")
    with pytest.raises(ParamError, match="'alpha': 'much' is not a number"):
        alpha.parse("much")
    mode = ofx.choice("mode", ("a", "b"))
    with pytest.raises(ParamError, match="'c' is not one of a, b"):
        mode.parse("c")
    assert ofx.boolean("on", False).parse("yes") is True
    with pytest.raises(ParamError, match="not true or false"):
        ofx.boolean("on", False).parse("maybe")
    with pytest.raises(ParamError, match="not a finite integer"):
        ofx.integer("n", 1).check(1.5)


def test_animated_params_interpolate_between_keyframes_and_hold_outside():
    params = ofx.ParamSet({"a": ofx.double("a", 0.0), "n": ofx.integer("n", 0, animatable=True),
                           "s": ofx.string("s")})
    params.set_keyframe("a", 10, 1.0)
    params.set_keyframe("a", 20, 0.0)
    params.set_keyframe("n", 0, 0)
    params.set_keyframe("n", 4, 10)
    assert [params.value("a", t) for t in (0, 10, 12.5, 20, 30)] == [1.0, 1.0, 0.75, 0.0, 0.0]
    assert params.value("n", 1) == 2 and params.value("n", 1.3) == 3
    with pytest.raises(ParamError, match="'s' does not animate"):
        params.set_keyframe("s", 1, "x")
    with pytest.raises(ParamError, match="unknown parameter 'b'; this effect has a, n, s"):
        params.value("b")


def test_descriptor_rules_name_the_effect():
    desc = ofx.Descriptor("org.test.x", thread_safety="sometimes")
    desc.define_clip(ofx.ClipDef(ofx.SOURCE))
    desc.define_clip(ofx.ClipDef(ofx.OUTPUT))
    with pytest.raises(EffectError, match="org.test.x: thread_safety 'sometimes' is not one of"):
        desc.validate()


# -- discovery ---------------------------------------------------------------------------------

def test_broken_plugins_are_reported_by_name_and_the_others_load(plugin_dir: Path):
    (plugin_dir / "boom.py").write_text("raise RuntimeError('no licence server')\n")
    (plugin_dir / "syntax.py").write_text("def (:\n")
    write_plugin(plugin_dir, "nolist", "X = 1\n")
    write_plugin(plugin_dir, "baddesc", """
        class Bad(ofx.Effect):
            identifier = "org.test.bad"
            @classmethod
            def describe(cls, desc):
                desc.depths = ("byte", "12-bit")
        EFFECTS = [Bad]
    """)
    write_plugin(plugin_dir, "fine", """
        class Fine(ofx.Effect):
            identifier = "org.test.fine"
        EFFECTS = [Fine]
    """)
    catalog = effects.load_catalog()
    failed = {Path(f.plugin).name: f.message for f in catalog.failures}
    assert failed["boom.py"] == "RuntimeError: no licence server"
    assert failed["syntax.py"].startswith("SyntaxError")
    assert "defines no EFFECTS" in failed["nolist.py"]
    assert "pixel depth '12-bit' is not one of" in failed["baddesc.py"]
    assert {"org.test.fine", "org.vstpipe.echo", "org.vstpipe.stylize"} <= set(catalog.effects)
    assert catalog.get("fine").identifier == "org.test.fine"
    with pytest.raises(EffectError, match="effect 'boom' did not load: .*no licence server"):
        catalog.get("boom")
    with pytest.raises(EffectError, match="no effect 'nothing'; available: "):
        catalog.get("nothing")


def test_effects_are_found_through_the_entry_point_group(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    site = tmp_path / "site"
    (site / "extra_fx-1.0.dist-info").mkdir(parents=True)
    (site / "extra_fx-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: extra-fx\nVersion: 1.0\n")
    (site / "extra_fx-1.0.dist-info" / "entry_points.txt").write_text(
        "[vstpipe.plugins]\ninvert = extra_fx:Invert\n")
    (site / "extra_fx.py").write_text(textwrap.dedent("""
        from vstpipe import ofx
        class Invert(ofx.Effect):
            identifier = "com.example.invert"
    """))
    monkeypatch.syspath_prepend(str(site))
    found = effects.load_catalog().effects["com.example.invert"]
    assert found.origin.startswith("entry point invert")


# -- the host ----------------------------------------------------------------------------------

def test_echo_trails_follow_the_formula_with_an_animated_decay(clip: Path, tmp_path: Path):
    echo = effects.load_catalog().get("echo")
    params = params_for(echo)
    params.set_keyframe("decay", 0, 0.2)
    params.set_keyframe("decay", 5, 0.7)
    out = tmp_path / "trails.mkv"
    ofx_host.render_video(echo, clip, out, params, ofx_host.HostOptions(), LOSSLESS)
    src, got = decode(clip), decode(out)
    assert len(got) == len(src) == 6
    expect = src[0].astype(np.float64) / 255
    assert (got[0] == src[0]).all()
    for t in range(1, 6):
        decay = 0.2 + 0.1 * t
        # the host feeds back the 8-bit output it stored, as a host's frame cache would
        expect = (1 - decay) * src[t] / 255 + decay * got[t - 1] / 255
        assert np.abs(got[t] - np.rint(expect * 255)).max() <= 1, t


def test_echo_difference_reads_the_previous_source_frame(clip: Path, tmp_path: Path):
    echo = effects.load_catalog().get("echo")
    out = tmp_path / "diff.mkv"
    ofx_host.render_video(echo, clip, out, params_for(echo, mode="difference"),
                          ofx_host.HostOptions(), LOSSLESS)
    src, got = decode(clip), decode(out)
    assert (got[0] == 0).all()
    for t in range(1, 6):
        assert (got[t] == np.abs(src[t].astype(int) - src[t - 1])).all()


@pytest.mark.parametrize("depth", ofx.DEPTHS)
def test_tiled_renders_equal_untiled_at_every_depth_and_keep_audio(clip: Path, tmp_path: Path,
                                                                     depth: str):
    echo = effects.load_catalog().get("echo")
    outs = []
    for tiles in ((1, 1), (2, 2), (3, 1)):
        out = tmp_path / f"{depth}-{tiles[0]}x{tiles[1]}.mkv"
        report = ofx_host.render_video(echo, clip, out, params_for(echo),
                                       ofx_host.HostOptions(depth=depth, tiles=tiles), LOSSLESS)
        assert report.frames == 6 and report.depth == depth
        outs.append(decode(out))
        assert audio_packets(out) == audio_packets(clip)
    for other in outs[1:]:
        assert all((a == b).all() for a, b in zip(outs[0], other))


def test_an_effect_writing_outside_its_window_is_caught(plugin_dir: Path, clip: Path,
                                                        tmp_path: Path):
    write_plugin(plugin_dir, "sloppy", """
        class Sloppy(ofx.Effect):
            identifier = "org.test.sloppy"
            def render(self, args):
                out = self.instance.clip(OUTPUT).image(args.time)
                out.pixels[...] = 0  # the whole image, not args.window
        EFFECTS = [Sloppy]
    """)
    sloppy = effects.load_catalog().get("sloppy")
    out = tmp_path / "o.mkv"
    with pytest.raises(EffectError, match=r"org.test.sloppy wrote outside its render window "
                                          r"\[0, 0, 32, 24\] at frame 0"):
        ofx_host.render_video(sloppy, clip, out, params_for(sloppy),
                              ofx_host.HostOptions(tiles=(2, 2)), LOSSLESS)
    assert not out.exists() and len(list(tmp_path.glob("o*"))) == 0
    # The same effect rendering the whole frame in one window breaks no rule.
    ofx_host.render_video(sloppy, clip, out, params_for(sloppy), ofx_host.HostOptions(),
                          LOSSLESS)
    assert len(decode(out)) == 6


def test_source_pixels_are_read_only_and_cropped_to_the_region_of_interest(
        plugin_dir: Path, clip: Path, tmp_path: Path):
    write_plugin(plugin_dir, "peek", """
        SEEN = []
        class Peek(ofx.Effect):
            identifier = "org.test.peek"
            def render(self, args):
                src = self.instance.clip(SOURCE).image(args.time)
                SEEN.append((args.window, src.bounds, src.pixels.flags.writeable))
                out = self.instance.clip(OUTPUT).image(args.time)
                out.view(args.window)[...] = src.view(args.window)
        EFFECTS = [Peek]
    """)
    peek = effects.load_catalog().get("peek")
    out = tmp_path / "o.mkv"
    ofx_host.render_video(peek, clip, out, params_for(peek), ofx_host.HostOptions(tiles=(2, 1)),
                          LOSSLESS)
    seen = __import__("sys").modules[peek.__module__].SEEN
    assert len(seen) == 12 and all(w == b and not writable for w, b, writable in seen)
    assert all((a == b).all() for a, b in zip(decode(out), decode(clip)))


def test_an_effect_that_raises_is_named_and_no_output_is_left(plugin_dir: Path, clip: Path,
                                                              tmp_path: Path):
    write_plugin(plugin_dir, "crash", """
        class Crash(ofx.Effect):
            identifier = "org.test.crash"
            def render(self, args):
                if args.time == 3:
                    raise ZeroDivisionError("division by zero")
        EFFECTS = [Crash]
    """)
    crash = effects.load_catalog().get("crash")
    out = tmp_path / "o.mkv"
    with pytest.raises(EffectError, match="effect org.test.crash failed in render at frame 3: "
                                          "ZeroDivisionError: division by zero"):
        ofx_host.render_video(crash, clip, out, params_for(crash), ofx_host.HostOptions(),
                              LOSSLESS)
    assert not out.exists()


def test_frames_needed_beyond_the_history_bound_is_an_error(plugin_dir: Path, clip: Path,
                                                            tmp_path: Path):
    write_plugin(plugin_dir, "greedy", """
        class Greedy(ofx.Effect):
            identifier = "org.test.greedy"
            def frames_needed(self, time):
                return {SOURCE: [(time - 500, time)]}
        EFFECTS = [Greedy]
    """)
    greedy = effects.load_catalog().get("greedy")
    with pytest.raises(EffectError, match="asks for frames 500 back; this host keeps at most 64"):
        ofx_host.render_video(greedy, clip, tmp_path / "o.mkv", params_for(greedy),
                              ofx_host.HostOptions(), LOSSLESS)


def test_host_options_are_checked():
    assert ofx_host.parse_tiles("2x3") == (2, 3)
    with pytest.raises(OptionError, match="--tiles 'two': use COLUMNSxROWS"):
        ofx_host.parse_tiles("two")
    with pytest.raises(OptionError, match="--depth half: this effect supports byte, float"):
        ofx_host.pick_depth(("byte", "float"), "half", 8)
    assert ofx_host.pick_depth(("byte", "float"), None, 10) == "float"


def test_descriptor_json_lists_clips_and_params():
    desc = ofx.describe(effects.load_catalog().get("echo"), "general")
    data = json.loads(ofx.descriptor_json(desc, "general"))
    assert data["identifier"] == "org.vstpipe.echo" and data["context"] == "general"
    assert data["pixel_depths"] == ["byte", "short", "half", "float"]
    assert [c["name"] for c in data["clips"]] == ["Source", "Output"]
    assert {p["name"]: p["type"] for p in data["params"]} == {"mode": "choice",
                                                               "decay": "double"}
    assert data["temporal_clip_access"] and data["render_thread_safety"] == "fully_safe"


# -- the stylizer effect -----------------------------------------------------------------------

def render_cli(src: Path, out: Path, *args: str) -> list[np.ndarray]:
    from typer.testing import CliRunner

    from vstpipe.cli import app

    result = CliRunner().invoke(app, ["render", str(src), "--out", str(out), "--offline",
                                      "--precision", "fp32", "--batch", "1", "--codec", "ffv1",
                                      "--pix-fmt", "bgr0", *args])
    assert result.exit_code == 0, result.output
    return decode(out)


def stylize_video(src: Path, out: Path, tiles: tuple[int, int] = (1, 1), depth: str | None = None,
                  **values: object) -> list[np.ndarray]:
    stylize = effects.load_catalog().get("stylize")
    params = params_for(stylize, precision="fp32", device="cpu", **values)
    ofx_host.render_video(stylize, src, out, params,
                          ofx_host.HostOptions(tiles=tiles, depth=depth), LOSSLESS)
    return decode(out)


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    assert len(a) == len(b)
    return max(int(np.abs(x.astype(int) - y).max()) for x, y in zip(a, b))


@pytest.fixture
def moving_clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "moving.mkv", size=(72, 56), frames=8, codec="ffv1",
                     pix_fmt="bgr0", audio="aac")


def test_stylizer_effect_equals_vstpipe_render(adain_home, style_png, moving_clip, tmp_path):
    via_render = render_cli(moving_clip, tmp_path / "render.mkv", "--style", str(style_png),
                            "--alpha", "0.7")
    via_effect = stylize_video(moving_clip, tmp_path / "effect.mkv", style=str(style_png),
                               alpha=0.7)
    assert max_diff(via_render, via_effect) == 0
    assert max_diff(via_render, decode(moving_clip)) > 20  # it did stylize


def test_stylizer_effect_with_steadiness_equals_render_steady(adain_home, style_png,
                                                              moving_clip, tmp_path):
    via_render = render_cli(moving_clip, tmp_path / "render.mkv", "--style", str(style_png),
                            "--steady")
    via_effect = stylize_video(moving_clip, tmp_path / "effect.mkv", style=str(style_png),
                               steady=True)
    assert max_diff(via_render, via_effect) == 0


def test_stylizer_tiles_match_the_untiled_render(adain_home, style_png, moving_clip, tmp_path):
    outs = {}
    for tiles in ("1x1", "2x2"):
        out = tmp_path / f"{tiles}.mkv"
        done = cli("ofx", "render", "stylize", str(moving_clip), str(out), "--tiles", tiles,
                   "--param", f"style={style_png}", "--param", "steady=true", "--param",
                   "precision=fp32", "--codec", "ffv1", "--pix-fmt", "bgr0", "--offline")
        assert done.exit_code == 0, done.output
        outs[tiles] = decode(out)
        assert audio_packets(out) == audio_packets(moving_clip)
    assert len(outs["2x2"]) == 8 and max_diff(outs["1x1"], outs["2x2"]) <= 1


def test_stylizer_at_float_depth_is_within_one_level_of_byte(adain_home, style_png, moving_clip,
                                                             tmp_path):
    byte = stylize_video(moving_clip, tmp_path / "byte.mkv", style=str(style_png))
    floats = stylize_video(moving_clip, tmp_path / "float.mkv", depth="float",
                           style=str(style_png))
    assert max_diff(byte, floats) <= 1


def test_stylizer_follows_the_hosts_alpha_keyframes(adain_home, style_png, moving_clip, tmp_path):
    stylize = effects.load_catalog().get("stylize")
    params = params_for(stylize, precision="fp32", device="cpu", style=str(style_png))
    params.set_keyframe("alpha", 0, 0.2)
    params.set_keyframe("alpha", 7, 0.9)  # frame 2 is at 0.4, frame 5 at 0.7
    out = tmp_path / "keyed.mkv"
    ofx_host.render_video(stylize, moving_clip, out, params, ofx_host.HostOptions(), LOSSLESS)
    keyed = decode(out)
    fixed = {alpha: render_cli(moving_clip, tmp_path / f"a{alpha}.mkv", "--style",
                               str(style_png), "--alpha", alpha) for alpha in ("0.4", "0.7")}
    assert max_diff(keyed[2:3], fixed["0.4"][2:3]) <= 1
    assert max_diff(keyed[5:6], fixed["0.7"][5:6]) <= 1
    assert max_diff(keyed[2:3], fixed["0.7"][2:3]) > 1  # the alpha did make a difference


def test_param_arguments_set_constants_and_keyframes():
    desc = ofx.describe(effects.load_catalog().get("echo"), "filter")
    params = ofx_host.params_from_args(desc, ["mode=difference", "decay@0=0.1", "decay@10=0.5"])
    assert params.value("mode", 3) == "difference"
    assert params.value("decay", 5) == pytest.approx(0.3)
    for bad, message in (("decay", "use NAME=VALUE"), ("speed=1", "unknown parameter 'speed'"),
                         ("mode@2=trails", "'mode' does not animate"),
                         ("decay@soon=0.2", "'soon' is not a frame number"),
                         ("decay=2", r"'decay': 2.0 is outside \[0.0, 0.99\]")):
        with pytest.raises(OptionError, match=message):
            ofx_host.params_from_args(desc, [bad])


# -- the command line --------------------------------------------------------------------------

def test_ofx_list_and_describe_both_shipped_effects(plugin_dir: Path):
    (plugin_dir / "boom.py").write_text("raise ImportError('needs libfoo.so')\n")
    listed = cli("ofx", "list")
    assert listed.exit_code == 0
    assert "org.vstpipe.stylize" in listed.stdout and "org.vstpipe.echo" in listed.stdout
    assert "broken plugin" in listed.stderr and "boom.py: ImportError: needs libfoo.so" in \
        listed.stderr
    for name in ("stylize", "org.vstpipe.echo"):
        described = cli("ofx", "describe", name, "--context", "general")
        assert described.exit_code == 0, described.output
        data = json.loads(described.stdout)
        assert data["context"] == "general" and data["pixel_depths"] == list(ofx.DEPTHS)
    stylize = json.loads(cli("ofx", "describe", "stylize").stdout)
    params = {p["name"]: p for p in stylize["params"]}
    assert params["alpha"]["animatable"] and params["alpha"]["max"] == 1.0
    assert params["style"]["type"] == "file_path" and "vangogh" in params["preset"]["options"]
    assert {"steady", "smooth_stats", "flow_blend", "model", "device"} <= set(params)


def test_ofx_render_command_tiles_params_and_a_plugin_that_raises(plugin_dir: Path, clip: Path,
                                                                  tmp_path: Path):
    write_plugin(plugin_dir, "crash", """
        class Crash(ofx.Effect):
            identifier = "org.test.crash"
            def render(self, args):
                raise MemoryError("out of tiles")
        EFFECTS = [Crash]
    """)
    bad = cli("ofx", "render", "crash", str(clip), str(tmp_path / "bad.mkv"))
    assert bad.exit_code == 1 and not (tmp_path / "bad.mkv").exists()
    assert bad.stderr.strip() == ("vstpipe: error: effect org.test.crash failed in render at frame 0: "
                                  "MemoryError: out of tiles")
    outs = []
    for tiles in ("1x1", "2x2"):
        out = tmp_path / f"echo{tiles}.mkv"
        done = cli("ofx", "render", "echo", str(clip), str(out), "--param", "decay@0=0.1",
                   "--param", "decay@5=0.9", "--tiles", tiles, "--codec", "ffv1",
                   "--pix-fmt", "bgr0")
        assert done.exit_code == 0, done.output
        outs.append(decode(out))
        assert audio_packets(out) == audio_packets(clip)
    assert len(outs[0]) == 6 and all((a == b).all() for a, b in zip(*outs))
    wrong = cli("ofx", "render", "echo", str(clip), str(tmp_path / "w.mkv"), "--tiles", "2by2")
    assert wrong.exit_code == 1 and "--tiles '2by2'" in wrong.stderr


def test_stylizer_scrubbing_starts_the_temporal_state_afresh(adain_home, style_png, moving_clip):
    stylize = effects.load_catalog().get("stylize")
    frames = [ofx_host.frame_to_image(rgb, "byte") for rgb in decode(moving_clip)]

    def host() -> ofx_host.Host:
        params = params_for(stylize, precision="fp32", device="cpu", style=str(style_png),
                            steady=True)
        return ofx_host.Host(stylize, params, ofx_host.HostOptions(), (72, 56), 25.0,
                             (0.0, 7.0), "byte")

    played, fresh = host(), host()
    for t in range(3):
        played.add_source(t, frames[t])
        played.render(t)
    played.add_source(6, frames[6])  # a jump from frame 2 to frame 6
    fresh.add_source(6, frames[6])
    assert (played.render(6).pixels == fresh.render(6).pixels).all()
    played.add_source(7, frames[7])  # and playback from there carries the state on
    fresh.add_source(7, frames[7])
    assert (played.render(7).pixels == fresh.render(7).pixels).all()
