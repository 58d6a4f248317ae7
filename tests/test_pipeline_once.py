"""One render reads its input's description once and decodes each style image once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from clips import make_clip
from PIL import Image
from typer.testing import CliRunner

from vstpipe import images
from vstpipe.cli import app
from vstpipe.media import decode, probing


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, Counter]:
    """Counting wrappers: input files opened and probed (open_video, behind both probe() and
    Source), and style images decoded (images._rgb, behind load_style and load_rgb)."""
    counts: dict[str, Counter] = {"opened": Counter(), "decoded": Counter()}
    open_video, rgb = probing.open_video, images._rgb

    def opening(path: Path, *args: object) -> probing.Opened:
        counts["opened"][Path(path).name] += 1
        return open_video(path, *args)

    def decoding(im: Image.Image) -> np.ndarray:
        counts["decoded"][Path(im.filename).name] += 1
        return rgb(im)

    monkeypatch.setattr(probing, "open_video", opening)
    monkeypatch.setattr(decode, "open_video", opening)
    monkeypatch.setattr(images, "_rgb", decoding)
    return counts


def _styles(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    paths = []
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / name)
        paths.append(folder / name)
    return paths[0], paths[1]


def test_a_keyframed_render_opens_its_input_once_and_decodes_each_style_once(
        adain_home, tmp_path, counted):
    a, b = _styles(tmp_path)
    src = make_clip(tmp_path / "in.mp4", size=(32, 24), frames=6)
    show = tmp_path / "show.toml"
    show.write_text(f'[[keyframe]]\nat = "f0"\nstyle = "{a.name}"\n'
                    f'[[keyframe]]\nat = "f5"\nstyle = "{b.name}"\n')
    result = CliRunner().invoke(app, ["render", str(src), "--out", str(tmp_path / "o.mkv"),
                                      "--keyframes", str(show), "--codec", "ffv1",
                                      "--precision", "fp32", "--offline"])
    assert result.exit_code == 0, result.output
    assert counted["opened"] == Counter({"in.mp4": 1})
    assert counted["decoded"] == Counter({"a.png": 1, "b.png": 1})


def test_a_render_with_one_style_opens_its_input_once(adain_home, tmp_path, counted):
    a, _ = _styles(tmp_path)
    src = make_clip(tmp_path / "in.mp4", size=(32, 24), frames=3)
    result = CliRunner().invoke(app, ["render", str(src), "--out", str(tmp_path / "o.mkv"),
                                      "--style", str(a), "--precision", "fp32", "--offline"])
    assert result.exit_code == 0, result.output
    assert counted["opened"] == Counter({"in.mp4": 1})
    assert counted["decoded"] == Counter({"a.png": 1})
