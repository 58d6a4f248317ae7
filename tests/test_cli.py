"""The command line: version, errors as one line, --debug, progress lines, models commands."""

from __future__ import annotations

import os
from pathlib import Path

from fakes import save_random_weights
from typer.testing import CliRunner

from vstpipe import __version__
from vstpipe.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"vstpipe {__version__}"


def test_error_keeps_brackets_in_file_names(tmp_path: Path, vstpipe_home: Path):
    src = tmp_path / "clip[final].mp4"
    src.write_text("not a video")
    result = runner.invoke(app, ["render", str(src), "--out", str(tmp_path / "o.mp4"),
                                 "--style", "s.png", "--offline"])
    assert result.exit_code == 1
    assert "clip[final].mp4" in result.output and len(result.output.strip().splitlines()) == 1


def test_debug_shows_the_traceback(tmp_path: Path, vstpipe_home: Path):
    src = tmp_path / "x.mp4"
    src.write_text("not a video")
    args = ["render", str(src), "--out", str(tmp_path / "o.mp4"), "--style", "s.png"]
    quiet = runner.invoke(app, args)
    loud = runner.invoke(app, ["--debug", *args])
    assert quiet.exit_code == loud.exit_code == 1
    assert "Traceback" not in quiet.output and "Traceback" in loud.output


def test_bad_offline_env_value_is_one_line(tmp_path: Path, vstpipe_home: Path, monkeypatch):
    from clips import make_clip
    from PIL import Image

    monkeypatch.setenv("VSTPIPE_OFFLINE", "maybe")
    src = make_clip(tmp_path / "in.mp4", frames=2)
    Image.new("RGB", (64, 64)).save(tmp_path / "s.png")
    result = runner.invoke(app, ["render", str(src), "--out", str(tmp_path / "o.mp4"),
                                 "--style", str(tmp_path / "s.png")])
    assert result.exit_code == 1 and "VSTPIPE_OFFLINE" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_models_list_import_verify(tmp_path: Path, vstpipe_home: Path):
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0
    assert "adain-vgg19" in listed.output and "uvc-lab" in listed.output and "MIT" in listed.output
    files = save_random_weights("adain-vgg19", tmp_path / "w")
    refused = runner.invoke(app, ["models", "import", "adain-vgg19", *map(str, files.values())])
    assert refused.exit_code == 1 and "--unverified" in refused.output
    assert not (vstpipe_home / "models" / "adain-vgg19").exists()
    ok = runner.invoke(app, ["models", "import", "adain-vgg19", "--unverified",
                             *map(str, files.values())])
    assert ok.exit_code == 0
    assert "yes" in runner.invoke(app, ["models", "list"]).output
    verified = runner.invoke(app, ["models", "verify", "adain-vgg19"], env={"COLUMNS": "200"})
    assert verified.exit_code == 0 and "NOT the published file" in verified.output
    decoder = vstpipe_home / "models" / "adain-vgg19" / "decoder.pth"
    data = bytearray(decoder.read_bytes())
    data[len(data) // 2] ^= 0xFF
    decoder.write_bytes(bytes(data))
    assert runner.invoke(app, ["models", "verify", "adain-vgg19"]).exit_code == 1


def test_models_pull_offline_is_refused(vstpipe_home: Path, monkeypatch):
    result = runner.invoke(app, ["models", "pull", "uvc-lab", "--offline"])
    assert result.exit_code == 1 and "vstpipe models import uvc-lab" in result.output
    monkeypatch.setenv("VSTPIPE_OFFLINE", "1")
    assert runner.invoke(app, ["models", "pull", "uvc-lab"]).exit_code == 1


def test_render_prints_plain_progress_lines_off_a_terminal(tmp_path: Path, vstpipe_home: Path):
    from clips import make_clip
    from PIL import Image

    files = save_random_weights("adain-vgg19", tmp_path / "w")
    src = make_clip(tmp_path / "in.mp4", frames=6)
    Image.new("RGB", (64, 64), (200, 40, 40)).save(tmp_path / "s.png")
    result = runner.invoke(app, ["render", str(src), "--out", str(tmp_path / "o.mp4"), "--style",
                                 str(tmp_path / "s.png"), "--model", str(tmp_path / "w"),
                                 "--precision", "fp32", "--batch", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "in.mp4: 6/6 frames" in result.output  # the final progress line is always printed
    assert "\x1b[" not in result.output  # no terminal control codes in logs
    assert lines[-1].startswith("wrote ") and "6 frames" in lines[-1] and "fp32" in lines[-1]
    assert files  # the weights came from the directory, not the cache
    assert not (vstpipe_home / "models").exists()
    # Before frames flow, each start-up stage is a line of its own, in order.
    assert lines[:3] == [f"in.mp4: loading model {tmp_path / 'w'}",
                         "in.mp4: encoding 1 style image", "in.mp4: stylizing"]
    quiet = runner.invoke(app, ["render", str(src), "--out", str(tmp_path / "q.mp4"), "--style",
                                str(tmp_path / "s.png"), "--model", str(tmp_path / "w"),
                                "--precision", "fp32", "--quiet"])
    assert quiet.exit_code == 0 and quiet.output == ""
    assert (tmp_path / "q.mp4").stat().st_size > 0


def test_eval_compares_several_renders_one_row_each(tmp_path: Path, monkeypatch):
    import json

    from clips import make_clip

    monkeypatch.chdir(tmp_path)  # short relative names: table cells do not wrap
    make_clip(Path("src.mp4"), size=(96, 64), frames=8)
    make_clip(Path("lossy.mp4"), size=(96, 64), frames=8, video_options={"crf": "45"})
    args = ["eval", "src.mp4", "src.mp4", "lossy.mp4", "--flow", "dis", "--long-gap", "3"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "warping error under dis flow, 8 frames" in table.output
    rows = [line for line in table.output.splitlines() if ".mp4" in line]
    assert len(rows) == 3 and "src.mp4 (source)" in rows[0]  # the floor, then one per render
    assert "src.mp4" in rows[1] and "lossy.mp4" in rows[2]
    lines = runner.invoke(app, [*args, "--json"]).output.splitlines()
    reports = [json.loads(line) for line in lines]  # JSON Lines: one object per render
    assert [r["stylized"] for r in reports] == ["src.mp4", "lossy.mp4"]
    assert all(r["flow"] == "dis" and r["frames"] == 8 for r in reports)
    assert reports[0]["ratio"] == 1.0 and reports[1]["ratio"] != 1.0
    assert reports[0]["warp_error_source"] == reports[1]["warp_error_source"]  # one floor
    assert f"{reports[1]['ratio']:.3f}" in rows[2]


def test_eval_preset_measures_its_styles_with_the_render_default_model(tmp_path: Path,
                                                                      vstpipe_home: Path,
                                                                      monkeypatch):
    import json

    from clips import make_clip
    from PIL import Image

    monkeypatch.setenv("VSTPIPE_OFFLINE", "1")
    src = make_clip(tmp_path / "src.mp4", size=(96, 64), frames=4)
    Image.new("RGB", (64, 64), (200, 40, 40)).save(tmp_path / "red.png")
    (tmp_path / "red.toml").write_text('style = "red.png"\n')
    common = ["eval", str(src), str(src), "--flow", "dis", "--long-gap", "2", "--json"]
    by_preset = runner.invoke(app, [*common, "--preset", str(tmp_path / "red.toml")])
    assert by_preset.exit_code == 0, by_preset.output
    # auto, offline: the embedded lite, said once, as render says it.
    assert "note: using the embedded lite model" in by_preset.output
    preset_line = by_preset.output.strip().splitlines()[-1]
    by_image = runner.invoke(app, [*common, "--style", str(tmp_path / "red.png"),
                                   "--model", "lite"])
    assert by_image.exit_code == 0, by_image.output
    # The preset's one image at its (default) style size: the figure --style gives for it.
    got = json.loads(preset_line)["style_distance"]
    assert got > 0 and got == json.loads(by_image.output.strip().splitlines()[-1])["style_distance"]
    both = runner.invoke(app, [*common, "--preset", "vangogh", "--style", str(tmp_path / "red.png")])
    assert both.exit_code == 1 and "give --style or --preset, not both" in both.output


def test_eval_bad_flow_is_one_line_naming_the_valid_names(tmp_path: Path):
    from clips import make_clip

    src = make_clip(tmp_path / "in.mp4", size=(64, 48), frames=2)
    result = runner.invoke(app, ["eval", str(src), str(src), "--flow", "raft"])
    assert result.exit_code == 1
    assert result.output.strip() == ("vstpipe: error: --flow 'raft': unknown flow estimator; "
                                     "use one of dis, tvl1, deepflow, farneback, sparsetodense")


def test_render_encoder_flags_reach_the_stream_and_refusals_name_flags(tmp_path: Path,
                                                                       vstpipe_home: Path):
    import av
    from clips import make_clip
    from PIL import Image

    save_random_weights("adain-vgg19", tmp_path / "w")
    Image.new("RGB", (64, 64), (200, 40, 40)).save(tmp_path / "s.png")
    common = ["--style", str(tmp_path / "s.png"), "--model", str(tmp_path / "w"),
              "--precision", "fp32", "--style-size", "64"]
    src = make_clip(tmp_path / "in.mp4", frames=4, size=(96, 64))
    out = tmp_path / "o.mp4"
    result = runner.invoke(app, ["render", str(src), "--out", str(out), *common,
                                 "--encoder-preset", "ultrafast", "--profile", "high444",
                                 "--bitrate", "400k", "--encoder-opt", "g=2"])
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.profile, stream.codec_context.pix_fmt) == \
            ("High 4:4:4 Predictive", "yuv444p")
        first = next(bytes(p) for p in c.demux(stream) if p.size)
    for needle in (b"subme=0", b"keyint=2", b"rc=abr", b"bitrate=400"):
        assert needle in first, needle
    refused = runner.invoke(app, ["render", str(src), "--out", str(tmp_path / "o.mov"), *common,
                                  "--codec", "dnxhd"])
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines()[-1].endswith(
        "o.mov: DNxHR (dnxhr_hq) codes frames of at least 256x120, got 96x64; choose a larger "
        "--size or --codec prores or ffv1")
    assert not (tmp_path / "o.mov").exists()
    bad = runner.invoke(app, ["render", str(src), "--out", str(tmp_path / "o2.mp4"), *common,
                              "--tune", "cinema"])
    assert bad.exit_code == 1 and "--tune 'cinema' is not valid for libx264; choose from film" \
        in bad.output


def test_help_names_what_each_option_takes_without_python_type_labels():
    import subprocess
    import sys

    # The process is the subject: labels are set where `vstpipe` builds its commands.
    shown = subprocess.run([sys.executable, "-m", "vstpipe", "eval", "--help"], text=True,
                           capture_output=True, env={**os.environ, "COLUMNS": "200"},
                           check=True).stdout
    assert "<" not in shown and ">" not in shown.replace("->", "")
    assert "SOURCE        PATH" in shown and "--long-gap" in shown
    assert [line for line in shown.splitlines() if "--long-gap" in line][0].split()[2] == \
        "INTEGER"
    assert [line for line in shown.splitlines() if "--json" in line][0].split()[2] == "Print"


def test_render_a_still_through_a_look_and_a_sequence_to_a_video(tmp_path: Path,
                                                                  vstpipe_home: Path):
    import av
    import numpy as np
    from clips import make_still
    from PIL import Image

    save_random_weights("adain-vgg19", tmp_path / "w")
    Image.new("RGB", (64, 64), (200, 40, 40)).save(tmp_path / "s.png")
    common = ["--style", str(tmp_path / "s.png"), "--model", str(tmp_path / "w"),
              "--precision", "fp32", "--style-size", "64", "--quiet"]
    photo = make_still(tmp_path / "photo.jpg", size=(64, 48))
    painted = tmp_path / "painted.png"
    result = runner.invoke(app, ["render", str(photo), "--out", str(painted), *common])
    assert result.exit_code == 0, result.output
    before = np.asarray(Image.open(photo).convert("RGB"), dtype=int)
    after = np.asarray(Image.open(painted), dtype=int)
    assert after.shape == before.shape and np.abs(after - before).mean() > 10
    for n in range(3):
        make_still(tmp_path / f"seq_{n + 7:03d}.png", size=(64, 48))
    video = tmp_path / "seq.mp4"
    result = runner.invoke(app, ["render", str(tmp_path / "seq_%03d.png"), "--fps", "12",
                                 "--out", str(video), *common])
    assert result.exit_code == 0, result.output
    with av.open(str(video)) as c:
        times = [f.pts * f.time_base for f in c.decode(video=0)]
    assert [float(t) for t in times] == [0, 1 / 12, 2 / 12]


def test_the_quick_command_list_is_the_real_one():
    import typer.main

    from vstpipe import commands

    real = typer.main.get_command(app)
    quick = typer.main.get_command(commands.listing())
    assert list(quick.commands) == list(real.commands) == list(commands.COMMANDS)
    for name, command in real.commands.items():
        assert command.get_short_help_str(limit=200) == \
            quick.commands[name].get_short_help_str(limit=200), name
    assert [p.name for p in quick.params] == [p.name for p in real.params]
    version = runner.invoke(commands.listing(), ["--version"])
    assert version.output == f"vstpipe {__version__}\n"
