"""Golden renders: a fixed set of renders decodes to the very frames it gave before the
renovation of issue 12 (checksums in golden_frames.json, written by the code before it).

Regenerate only when a change of output is intended, and say so in the commit:
``python tests/test_golden.py --write``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from clips import make_10bit_clip, make_clip
from PIL import Image
from typer.testing import CliRunner

from vstpipe.cli import app

# The checksums were made in a fresh process with torch's default thread count; reductions differ
# in the last bits with another thread state, which moves some 8-bit levels, so each case
# renders in a process of its own.
GOLDEN = Path(__file__).with_name("golden_frames.json")
runner = CliRunner()
FP32 = ("--precision", "fp32", "--offline")


def _styles(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    paths = []
    for name in ("a.png", "b.png"):
        path = folder / name
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths[0], paths[1]


def _digest(rgb: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()[:16]


def _decoded(path: Path) -> dict[str, list]:
    """Per-frame checksums and pts of a video's first video stream."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    deep = frames[0].format.name not in ("yuv420p", "yuv444p", "bgr0", "gbrp", "rgb24")
    fmt = "rgb48le" if deep else "rgb24"
    return {"frames": [_digest(f.to_ndarray(format=fmt)) for f in frames],
            "pts": [f.pts for f in frames]}


def _render(*args: str) -> None:
    result = runner.invoke(app, [*args, *FP32])
    assert result.exit_code == 0, result.output


def _vfr_audio(tmp: Path, a: Path, b: Path) -> dict[str, list]:
    src = make_clip(tmp / "vfr.mp4", size=(64, 48), frames=12, vfr=True, audio="aac")
    _render("render", str(src), "--out", str(tmp / "o.mkv"), "--style", str(a), "--codec", "ffv1")
    return _decoded(tmp / "o.mkv")


def _ten_bit(tmp: Path, a: Path, b: Path) -> dict[str, list]:
    src = make_10bit_clip(tmp / "deep.mkv")
    _render("render", str(src), "--out", str(tmp / "o.mkv"), "--style", str(a), "--codec", "ffv1")
    return _decoded(tmp / "o.mkv")


def _keyframed_blend(tmp: Path, a: Path, b: Path) -> dict[str, list]:
    src = make_clip(tmp / "in.mp4", size=(64, 48), frames=12)
    show = tmp / "show.toml"
    show.write_text(f'[[keyframe]]\nat = "f0"\nstyle = "{a.name}"\nalpha = 0.4\n'
                    f'[[keyframe]]\nat = "f6"\nstyle = {{ "{a.name}" = 1, "{b.name}" = 3 }}\n'
                    f'[[keyframe]]\nat = "f11"\nstyle = "{b.name}"\nalpha = 1.0\n')
    _render("render", str(src), "--out", str(tmp / "o.mkv"), "--keyframes", str(show),
            "--codec", "ffv1")
    return _decoded(tmp / "o.mkv")


def _steady(tmp: Path, a: Path, b: Path) -> dict[str, list]:
    src = make_clip(tmp / "in.mp4", size=(64, 48), frames=12)
    _render("render", str(src), "--out", str(tmp / "o.mkv"), "--style", str(a), "--steady",
            "--batch", "3", "--codec", "ffv1")
    return _decoded(tmp / "o.mkv")


def _filter(tmp: Path, a: Path, b: Path) -> dict[str, list]:
    src = make_clip(tmp / "in.mp4", size=(64, 48), frames=12)
    with av.open(str(src)) as container:
        raw = b"".join(f.to_ndarray(format="rgb24").tobytes() for f in container.decode(video=0))
    done = subprocess.run([sys.executable, "-m", "vstpipe", "filter", "--size", "64x48",
                           "--fps", "25", "--style", str(a), "--steady", "--batch", "3",
                           "--quiet", *FP32], input=raw, capture_output=True, timeout=300,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr.decode()
    frames = np.frombuffer(done.stdout, np.uint8).reshape(-1, 48, 64, 3)
    return {"frames": [_digest(f) for f in frames], "pts": list(range(len(frames)))}


def _ofx_render(tmp: Path, a: Path, b: Path) -> dict[str, list]:
    src = make_clip(tmp / "in.mkv", size=(72, 56), frames=8, codec="ffv1", pix_fmt="bgr0",
                    audio="aac")
    result = runner.invoke(app, ["ofx", "render", "stylize", str(src), str(tmp / "o.mkv"),
                                 "--tiles", "2x2", "--param", f"style={a}", "--param",
                                 "steady=true", "--param", "precision=fp32", "--codec", "ffv1",
                                 "--pix-fmt", "bgr0", "--offline"])
    assert result.exit_code == 0, result.output
    return _decoded(tmp / "o.mkv")


CASES: dict[str, Callable[[Path, Path, Path], dict[str, list]]] = {
    "vfr_audio": _vfr_audio, "ten_bit": _ten_bit, "keyframed_blend": _keyframed_blend,
    "steady": _steady, "filter": _filter, "ofx_render": _ofx_render}


@pytest.mark.parametrize("case", list(CASES))
def test_renders_decode_to_the_frames_they_gave_before(case):
    """Each case renders in a fresh process, as the checksums were made: float results depend
    on the process's thread state, which other tests in this one may have changed."""
    expected = json.loads(GOLDEN.read_text())[case]
    done = subprocess.run([sys.executable, __file__, "--print", case], capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["pts"] == expected["pts"]
    differ = [i for i, (x, y) in enumerate(zip(got["frames"], expected["frames"])) if x != y]
    assert len(got["frames"]) == len(expected["frames"])
    assert differ == [], f"{case}: frames {differ} differ from the golden render"


def _render_all(only: str | None = None) -> dict[str, dict[str, list]]:
    """Render every case (or ``only``) with the code on sys.path: case -> checksums and pts."""
    import tempfile

    from fakes import save_random_weights

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["VSTPIPE_HOME"] = str(root / "home")
        files = save_random_weights("adain-vgg19", root / "weights")
        done = runner.invoke(app, ["models", "import", "adain-vgg19", "--unverified",
                                   *map(str, files.values())])
        assert done.exit_code == 0, done.output
        for name, case in CASES.items():
            if only is not None and name != only:
                continue
            folder = root / name
            folder.mkdir()
            a, b = _styles(folder)
            results[name] = case(folder, a, b)
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    if sys.argv[1:] == ["--write"]:
        GOLDEN.write_text(json.dumps(_render_all(), indent=1) + "\n")
    elif len(sys.argv) == 3 and sys.argv[1] == "--print" and sys.argv[2] in CASES:
        print(json.dumps(_render_all(sys.argv[2])[sys.argv[2]]))
    else:
        sys.exit("usage: python tests/test_golden.py --write | --print CASE")
