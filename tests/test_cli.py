"""The command line: version, errors as one line, --debug, progress lines, models commands."""

from __future__ import annotations

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
