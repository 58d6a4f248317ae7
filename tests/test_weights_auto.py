"""The default model `auto`: adain-vgg19 when it can be had, else the embedded lite model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from clips import make_clip, video_frames
from typer.testing import CliRunner

from vstpipe import weights
from vstpipe.cli import app
from vstpipe.errors import DownloadError, ModelError
from vstpipe.weights import fetch, store
from vstpipe.weights.registry import AUTO, DEFAULT_MODEL, EMBEDDED_MODEL, FULL_MODEL, REGISTRY

runner = CliRunner()


def test_the_default_is_auto_and_the_embedded_files_are_the_registrys():
    assert DEFAULT_MODEL == AUTO and REGISTRY[EMBEDDED_MODEL].embedded
    for f in REGISTRY[EMBEDDED_MODEL].files:
        path = store.embedded_dir(EMBEDDED_MODEL) / f.name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == f.sha256, f.name
        assert path.stat().st_size == f.size
    folder = store.embedded_dir(EMBEDDED_MODEL)
    assert (folder / "NOTICE").is_file() and (folder / "LICENSE-Apache-2.0.txt").is_file()
    assert sum(p.stat().st_size for p in folder.glob("*.safetensors")) <= 12_000_000


def test_auto_takes_adain_vgg19_when_it_is_installed(adain_home):
    resolved = weights.resolve(AUTO, offline=True)
    assert (resolved.name, resolved.arch, resolved.notice) == (FULL_MODEL, "adain-vgg19", None)


def test_auto_offline_runs_the_embedded_model_with_a_notice(vstpipe_home):
    resolved = weights.resolve(AUTO, offline=True)
    assert (resolved.name, resolved.arch) == (EMBEDDED_MODEL, "lite-palette")
    assert resolved.notice == (
        "using the embedded lite model: adain-vgg19 is not installed and offline mode is on; "
        "for the full model run `vstpipe models pull adain-vgg19` (80+ MB) or `vstpipe models "
        "import adain-vgg19 FILE...`, or name another model")
    assert weights.load(resolved).name == EMBEDDED_MODEL


def test_auto_falls_back_when_the_download_fails_and_says_why(vstpipe_home, monkeypatch):
    def unreachable(name, **_):
        raise DownloadError(f"{name}: cannot reach github.com (Name or service not known)")

    monkeypatch.setattr(fetch, "pull", unreachable)
    resolved = weights.resolve(AUTO, offline=False)
    assert resolved.name == EMBEDDED_MODEL
    assert "adain-vgg19 is not installed and it could not be downloaded (adain-vgg19: cannot " \
           "reach github.com" in resolved.notice


def test_a_model_named_explicitly_never_falls_back(vstpipe_home, monkeypatch):
    with pytest.raises(ModelError, match=r"^model 'adain-vgg19' is not installed and offline"):
        weights.resolve(FULL_MODEL, offline=True)
    monkeypatch.setattr(fetch, "pull", lambda name, **_: (_ for _ in ()).throw(
        DownloadError("no network")))
    with pytest.raises(DownloadError):
        weights.resolve(FULL_MODEL, offline=False)


def test_a_damaged_embedded_file_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "lite"
    folder.mkdir()
    for f in REGISTRY[EMBEDDED_MODEL].files:
        data = (store.embedded_dir(EMBEDDED_MODEL) / f.name).read_bytes()
        (folder / f.name).write_bytes(data if f.role == "encoder" else data[:-1] + b"\x00")
    monkeypatch.setattr(store, "embedded_dir", lambda name: folder)
    with pytest.raises(ModelError, match=r"decoder\.safetensors: sha256 .* differs from the "
                                         r"registry's .* embedded lite model; reinstall"):
        weights.resolve(EMBEDDED_MODEL, offline=True)


def test_the_main_job_offline_on_an_empty_machine_paints_with_lite(tmp_path, vstpipe_home):
    """`render --preset vangogh` with no weights installed and no network: the embedded model
    runs, one notice says so, the closing line names it, and the frames are restyled."""
    src = make_clip(tmp_path / "in.mp4", size=(64, 48), frames=3)
    out = tmp_path / "out.mp4"
    result = runner.invoke(app, ["render", str(src), "--preset", "vangogh", "--out", str(out),
                                 "--offline", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert sum(line.startswith("note: using the embedded lite model") for line in lines) == 1
    assert ", model lite, " in lines[-1]
    before, after = video_frames(src), video_frames(out)
    assert len(after) == 3
    diff = after[0].astype(float) - before[0].astype(float)
    # More than a colour shift: what is left after removing each channel's mean change varies.
    assert np.abs(diff - diff.mean(axis=(0, 1))).mean() > 8
    explicit = runner.invoke(app, ["render", str(src), "--preset", "vangogh", "--model",
                                   FULL_MODEL, "--out", str(tmp_path / "x.mp4"), "--offline"])
    assert explicit.exit_code == 1 and "not installed and offline mode is on" in explicit.output
    assert not (tmp_path / "x.mp4").exists()


def test_models_list_and_verify_show_the_embedded_model(vstpipe_home):
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and EMBEDDED_MODEL in listed.output
    verified = runner.invoke(app, ["models", "verify", EMBEDDED_MODEL])
    assert verified.exit_code == 0, verified.output
    assert verified.output.count("embedded") == 2  # one row per file, each ok
    refused = runner.invoke(app, ["models", "import", EMBEDDED_MODEL, str(Path(__file__))])
    assert refused.exit_code == 1 and "ships inside vstpipe" in refused.output
