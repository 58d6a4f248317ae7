"""Shipped presets, user presets, and their errors; preview tiles and contact sheets through the
library (one random network per module), the `presets preview` command through the CLI."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vstpipe import jobs, presets, preview
from vstpipe.errors import ConfigError
from vstpipe.jobs import Request, resolve
from vstpipe.sessions import Sessions

# Shorter side the style images are encoded at in the renders (the smallest allowed): the
# encoder's pass over each shipped image at its own 512 would be most of these tests' cost,
# and random weights make the size irrelevant to what they assert. Each image is still read
# at the preset's own style size (test_every_shipped_preset_renders_a_small_frame).
STYLE_SIZE = 64


@pytest.fixture(autouse=True)
def user_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "user-presets"
    monkeypatch.setenv("VSTPIPE_PRESETS", str(folder))
    return folder


def _small(preset: presets.Preset) -> presets.Preset:
    """``preset`` with its style images encoded at STYLE_SIZE."""
    return replace(preset, style_size=STYLE_SIZE)


def test_at_least_six_shipped_presets_with_vangogh():
    found, notices = presets.available()
    assert len(found) >= 6 and "vangogh" in found and not notices
    assert all(p.shipped and p.description and p.styles for p in found.values())


def test_every_shipped_image_has_a_line_in_sources():
    folder = presets.shipped_dir()
    sources = (folder / "SOURCES.md").read_text()
    listed = set(re.findall(r"^\| *([\w.-]+\.(?:jpg|png)) *\|", sources, re.MULTILINE))
    images = {p.name for p in folder.iterdir() if p.suffix in (".jpg", ".png")}
    assert images, "no shipped images found"
    assert images <= listed, f"images without a line in presets/SOURCES.md: {images - listed}"
    used = {p.name for preset in presets.available()[0].values() for p, _ in preset.styles}
    assert used <= images


def test_every_shipped_preset_renders_a_small_frame(net):
    rgb = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    outputs = {}
    for preset in presets.available()[0].values():
        sessions = Sessions(nets={preset.model: net})
        # Its images read at its own style size (within the limits), then encoded smaller.
        job = jobs.for_preset(preset)
        assert job.look.style_size == preset.style_size
        assert all(s.shape[0] == 1 and preset.style_size - 8 < min(s.shape[2:]) <=
                   preset.style_size for s in sessions.styles(job)), preset.name  # floored to x8
        tile = preview.render_tile(sessions, rgb, _small(preset), 48)
        assert tile.shape == (32, 48, 3) and tile.dtype == np.uint8  # longer side 48, x8
        assert tile.std() > 1  # a picture, not a flat colour
        outputs[preset.name] = tile
    # Different looks give different pictures.
    assert np.abs(outputs["vangogh"].astype(int) - outputs["mosaic"].astype(int)).mean() > 1


def test_user_preset_overrides_a_shipped_one_with_a_notice(user_presets: Path):
    user_presets.mkdir()
    shipped = presets.shipped_dir() / "starry_night.jpg"
    (user_presets / "mine.toml").write_text(
        f'name = "vangogh"\nstyle = "{shipped}"\nalpha = 0.3\n')
    found, notices = presets.available()
    assert found["vangogh"].alpha == 0.3 and not found["vangogh"].shipped
    assert len(notices) == 1 and "overrides the shipped one" in notices[0]
    preset, notices = presets.find("vangogh")
    assert preset.alpha == 0.3 and notices


def test_preset_by_path_and_weighted_styles(tmp_path: Path):
    shipped = presets.shipped_dir()
    path = tmp_path / "blend.toml"
    path.write_text(f'style = {{ "{shipped / "mosaic.jpg"}" = 3, '
                    f'"{shipped / "ink.jpg"}" = 1 }}\npreserve_color = true\nmax_side = 640\n')
    preset, _ = presets.find(str(path))
    assert preset.name == "blend" and preset.preserve_color and preset.max_side == 640
    assert [w for _, w in preset.styles] == pytest.approx([0.75, 0.25])


@pytest.mark.parametrize("text, message", [
    ('style = "x.jpg"\nalhpa = 1\n', r"unknown key 'alhpa'; expected name, description, style"),
    ('alpha = 1\n', r"missing key 'style'"),
    ('style = "missing.jpg"\n', r"style image 'missing.jpg' not found"),
    ('style = "{img}"\nalpha = 2\n', r"alpha 2.0 is outside \[0, 1\]"),
    ('style = "{img}"\nalpha = "high"\n', r"key 'alpha' must be int or float"),
    ('style = "{img}"\npreserve_color = 1\n', r"key 'preserve_color' must be bool"),
    ('style = {{ "{img}" = 0 }}\n', r"weights of 'style' are all zero"),
    ('style = "{img}"\nmax_side = 4\n', r"max_side 4 is too small"),
    ('style = [\n', r"invalid TOML"),
])
def test_preset_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.toml"
    path.write_text(text.format(img=presets.shipped_dir() / "ink.jpg"))
    with pytest.raises(ConfigError, match=message) as err:
        presets.load(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_unknown_preset_lists_the_valid_names():
    with pytest.raises(ConfigError, match=r"unknown preset 'vangoh'; choose from .*vangogh"):
        presets.find("vangoh")


def test_contact_sheet_has_a_labelled_tile_per_preset(net):
    rgb = (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8)
    chosen = [_small(p) for p in presets.available()[0].values()][:3]
    sheet = preview.contact_sheet(rgb, chosen, Sessions(nets={net.name: net}), tile=64,
                                  model=net.name)
    # original + 3 tiles in one row of 4, each 64x48 with a caption strip under it
    assert sheet.size == (4 * 64, 48 + preview.LABEL_H)
    arr = np.asarray(sheet)
    caption = arr[48:, :64]
    assert (caption < 128).any(), "the caption text is missing"
    assert torch.tensor(arr[:48, 64:128].astype(float)).std() > 1


def test_a_broken_user_preset_is_skipped_not_fatal(user_presets: Path):
    user_presets.mkdir()
    (user_presets / "broken.toml").write_text('style = "missing.jpg"\n')
    found, notices = presets.available()
    assert "vangogh" in found and "broken" not in found
    assert any("skipping a broken preset" in n and "missing.jpg" in n for n in notices)
    with pytest.raises(ConfigError, match="missing.jpg"):
        presets.find("broken")


def test_two_user_presets_with_one_name_are_reported(user_presets: Path):
    user_presets.mkdir()
    image = presets.shipped_dir() / "ink.jpg"
    for stem, alpha in (("a", 0.2), ("b", 0.4)):
        (user_presets / f"{stem}.toml").write_text(
            f'name = "mine"\nstyle = "{image}"\nalpha = {alpha}\n')
    found, notices = presets.available()
    assert found["mine"].alpha == 0.4
    assert any("b.toml overrides" in n and "a.toml" in n for n in notices)


@pytest.mark.parametrize("name", ["none", "x.toml", "", "a b"])
def test_unusable_preset_names_are_refused(tmp_path: Path, name: str):
    path = tmp_path / "p.toml"
    path.write_text(f'name = "{name}"\nstyle = "{presets.shipped_dir() / "ink.jpg"}"\n')
    with pytest.raises(ConfigError, match="is not usable"):
        presets.load(path)


def test_preview_command_writes_a_contact_sheet(tmp_path: Path, adain_home: Path,
                                                user_presets: Path):
    from clips import make_clip
    from PIL import Image
    from typer.testing import CliRunner

    from vstpipe.cli import app

    # The command renders every available preset; user presets of the shipped names (same
    # images, encoded at STYLE_SIZE) keep that a sheet of the same count at a fraction of
    # the cost. The tiles themselves are the library tests' subject, above.
    user_presets.mkdir()
    for preset in presets.available()[0].values():
        styles = ", ".join(f'"{path}" = {weight}' for path, weight in preset.styles)
        (user_presets / f"{preset.name}.toml").write_text(
            f'name = "{preset.name}"\nstyle = {{ {styles} }}\nstyle_size = {STYLE_SIZE}\n')
    assert all(p.style_size == STYLE_SIZE for p in presets.available()[0].values())
    src = make_clip(tmp_path / "in.mp4", size=(96, 64), frames=3)
    out = tmp_path / "sheet.png"
    result = CliRunner().invoke(app, ["presets", "preview", str(src), "--out", str(out),
                                      "--tile", "64", "--offline"])
    assert result.exit_code == 0, result.output
    count = len(presets.available()[0])
    with Image.open(out) as sheet:
        rows = -(-(count + 1) // 4)
        assert sheet.size == (4 * 64, rows * (40 + preview.LABEL_H))
    again = CliRunner().invoke(app, ["presets", "preview", str(src), "--out", str(out),
                                     "--offline"])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_consistency_keys_come_from_the_preset_and_flags_override(tmp_path: Path):
    path = tmp_path / "steady.toml"
    path.write_text(f'style = "{presets.shipped_dir() / "ink.jpg"}"\nsmooth_stats = 0.8\n'
                    'cut_threshold = 0.3\nflow_blend = 1\n')
    look = resolve(Request(preset=str(path)), None)
    assert (look.temporal["smooth_stats"], look.temporal["cut_threshold"],
            look.temporal["flow_blend"]) == (0.8, 0.3, 1.0)
    look = resolve(Request(preset=str(path),
                           temporal={"smooth_stats": 0.0, "flow_blend": 0.25}), None)
    assert look.temporal["smooth_stats"] == 0.0 and look.temporal["cut_threshold"] == 0.3
    assert look.temporal["flow_blend"] == 0.25
    path.write_text(f'style = "{presets.shipped_dir() / "ink.jpg"}"\nflow_blend = 1.5\n')
    with pytest.raises(ConfigError, match=r"flow_blend 1.5 is outside \[0, 1\]"):
        presets.load(path)
    path.write_text(f'style = "{presets.shipped_dir() / "ink.jpg"}"\nsmooth_stats = 1.0\n')
    with pytest.raises(ConfigError, match=r"smooth_stats 1.0 is outside \[0, 1\)"):
        presets.load(path)
