"""Fault suite, outputs: signals unwind like Ctrl-C, start-up interrupts are one line, and no
command writes onto one of its own inputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from clips import make_clip
from PIL import Image
from typer.testing import CliRunner

from vstpipe.cli import app
from vstpipe.errors import OptionError
from vstpipe.train import options

runner = CliRunner()


@pytest.fixture(autouse=True)
def _default_sighup():
    """A suite started under nohup passes SIGHUP on ignored to the vstpipe children, which
    rightly keep it so (a nohup'ed render must survive the hangup); these tests are about a
    terminal's hangup, so the children start with the default."""
    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGHUP, before)


def _vstpipe(*args: str, home: Path, **kwargs) -> subprocess.Popen[str]:
    env = dict(os.environ, VSTPIPE_HOME=str(home))
    return subprocess.Popen([sys.executable, "-m", "vstpipe", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_during_a_render_leave_nothing(tmp_path, adain_home, style_png,
                                                           signum, code):
    src = make_clip(tmp_path / "long.mp4", size=(320, 240), frames=200, audio="aac")
    before = src.read_bytes()
    out = tmp_path / "out.mp4"
    proc = _vstpipe("render", str(src), "--out", str(out), "--style", str(style_png),
                    "--offline", "--batch", "1", home=adain_home)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            p.name.startswith(".out") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "render finished before it could be stopped"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert lines[-1] == (f"vstpipe: interrupted ({signal.Signals(signum).name}); "
                         f"no output was written"), err
    assert "Traceback" not in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "long.mp4", "style.png"]
    assert src.read_bytes() == before


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_while_starting_is_one_line(tmp_path, signum, code):
    # `vstpipe render --help` spends its first second or more importing torch, PyAV and
    # OpenCV (`vstpipe --version` no longer does: commands.py answers it).
    proc = _vstpipe("render", "--help", home=tmp_path)
    time.sleep(0.4)
    assert proc.poll() is None, "started too fast to interrupt"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err == "vstpipe: interrupted while starting; nothing was written\n"


def test_preview_refuses_to_write_its_sheet_over_its_input(tmp_path, adain_home):
    src = tmp_path / "frame.png"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(src)
    before = src.read_bytes()
    for out in (src, tmp_path / "." / "frame.png"):
        result = runner.invoke(app, ["presets", "preview", str(src), "--out", str(out),
                                     "--overwrite", "--offline", "--model", "adain-vgg19",
                                     "--tile", "32"])
        assert result.exit_code == 1
        assert "is an input of this command" in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.png", "home"]


def test_filter_refuses_stdout_onto_its_stdin(tmp_path, style_png):
    raw = tmp_path / "in.raw"
    raw.write_bytes(bytes(range(256)) * 3)  # four 8x8 rgb24 frames
    before = raw.read_bytes()
    with open(raw, "rb") as stdin, open(raw, "r+b") as stdout:
        proc = subprocess.run([sys.executable, "-m", "vstpipe", "filter", "--size", "8x8",
                               "--style", str(style_png), "--offline"], stdin=stdin,
                              stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120,
                              env=dict(os.environ, VSTPIPE_HOME=str(tmp_path / "home")))
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("standard output is the same file as standard input, "
                                        "an input of this command; redirect it to another file")
    assert raw.read_bytes() == before


@pytest.mark.parametrize("flag", ["styles", "content"])
def test_a_training_run_folder_may_not_be_or_lie_in_an_input(tmp_path, flag):
    styles, content = tmp_path / "styles", tmp_path / "content"
    styles.mkdir()
    content.mkdir()
    base = {"stage": "image", "out": tmp_path / "run", "styles": styles, "content": content}
    options.merge(base, None)  # apart: fine
    for out in (base[flag], base[flag] / "run"):
        with pytest.raises(OptionError, match=f"the --{flag} folder"):
            options.merge({**base, "out": out}, None)


def test_finetune_may_not_overwrite_the_model_it_starts_from(tmp_path):
    model_dir, styles, davis = tmp_path / "mine", tmp_path / "styles", tmp_path / "davis"
    for folder in (model_dir, styles, davis):
        folder.mkdir()
    values = {"stage": "video", "styles": styles, "davis": davis, "model": str(model_dir),
              "out": model_dir}
    with pytest.raises(OptionError, match="is the --model folder"):
        options.merge(values, None)
