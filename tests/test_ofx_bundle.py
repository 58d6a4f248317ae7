"""The native OpenFX bundle, loaded by a host of our own (tests/ofxhost.py) through its C API."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from ofxhost import FAILED, OK, Host, Instance

from vstpipe import ofx_bundle
from vstpipe.ofx_bundle import CompilerMissing

try:
    ofx_bundle.find_compiler()
    HAVE_CC = True
except CompilerMissing:
    HAVE_CC = False
pytestmark = pytest.mark.skipif(not HAVE_CC, reason="no C compiler (.ci/run installs gcc)")

SIZE = (64, 48)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ofx_bundle.build(tmp_path_factory.mktemp("bundle")).path


@pytest.fixture
def binary(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the bundle of this test's own: loaded at its own path, its globals (the link to
    the server) are this test's."""
    monkeypatch.setenv("VSTPIPE_OFFLINE", "1")
    copy = tmp_path / "plugins" / built.name
    shutil.copytree(built, copy)
    return copy / "Contents" / ofx_bundle.platform_folder() / "vstpipe.ofx"


def moving_frames(count: int, bits: int) -> list[np.ndarray]:
    """Top-down RGB frames: a gradient drifting right and a bright square moving down."""
    w, h = SIZE
    top = 255 if bits == 8 else 65535
    x = np.linspace(0, 1, w)[None, :]
    y = np.linspace(0, 1, h)[:, None]
    frames = []
    for t in range(count):
        rgb = np.stack([np.broadcast_to((x + 0.1 * t) % 1, (h, w)),
                        np.broadcast_to(y, (h, w)),
                        0.5 + 0.4 * np.sin(6 * x + 4 * y + t)], axis=2)
        rgb[6 + 4 * t:18 + 4 * t, 20:32] = (0.95, 0.9, 0.2)
        frames.append(np.round(rgb * top).astype(np.uint8 if bits == 8 else np.uint16))
    return frames


def rgba(rgb: np.ndarray, depth: str) -> np.ndarray:
    """An opaque RGBA image at ``depth``, as vstpipe's own host makes it from a video frame."""
    if depth == "byte":
        return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    if depth == "short":
        return np.dstack([rgb, np.full(rgb.shape[:2], 65535, np.uint16)])
    unit = rgb.astype(np.float32) / np.float32(65535)
    return np.dstack([unit, np.ones(rgb.shape[:2], np.float32)])


def write_sequence(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir()
    for i, rgb in enumerate(frames):
        cv2.imwrite(str(folder / f"f_{i:03d}.png"), rgb[..., ::-1])
    return folder / "f_%03d.png"


def read_png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]


def cli(*args: str):
    from typer.testing import CliRunner

    from vstpipe.cli import app

    return CliRunner().invoke(app, list(args))


def server_pids() -> list[int]:
    """The `vstpipe serve` processes this test process started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"serve" in cmdline and b"vstpipe" in cmdline:
            found.append(int(entry.name))
    return found


# -- the bundle --------------------------------------------------------------------------------

def test_the_bundle_has_the_openfx_layout_and_the_servers_catalog(built: Path) -> None:
    contents = built / "Contents"
    plist = plistlib.loads((contents / "Info.plist").read_bytes())
    assert plist["CFBundleExecutable"] == "vstpipe.ofx"
    assert plist["CFBundlePackageType"] == "BNDL"
    catalog = json.loads((contents / "Resources" / "effects.json").read_text())
    identifiers = [item["effect"] for item in catalog["effects"]]
    assert {"org.vstpipe.stylize", "org.vstpipe.echo"} <= set(identifiers)
    assert catalog["server"] == [sys.executable, "-m", "vstpipe", "serve"]
    assert catalog["protocol"] == 1
    for identifier in ("org.vstpipe.stylize", "org.vstpipe.echo"):  # their icons, as PNG
        assert (contents / "Resources" / f"{identifier}.png").read_bytes()[:4] == b"\x89PNG"
    host = Host(contents / ofx_bundle.platform_folder() / "vstpipe.ofx")
    assert list(host.plugins()) == identifiers


def test_the_host_sees_the_effects_descriptor(binary: Path) -> None:
    from vstpipe import effects, ofx

    host = Host(binary)
    frames = [rgba(f, "byte") for f in moving_frames(1, 8)]
    for name in ("org.vstpipe.stylize", "org.vstpipe.echo"):
        desc = ofx.describe(effects.load_catalog().get(name), "filter")
        inst = Instance(host, name, frames, "byte")
        props = inst.descriptor.props.values
        assert props["OfxPropLabel"] == [desc.label]
        assert props["OfxImageEffectPluginPropGrouping"] == [desc.grouping]
        assert props["OfxImageEffectPropSupportedContexts"] == [
            f"OfxImageEffectContext{c.capitalize()}" for c in desc.contexts]
        assert props["OfxImageEffectPropSupportedPixelDepths"] == [
            f"OfxBitDepth{d.capitalize()}" for d in desc.depths]
        assert props["OfxImageEffectPropTemporalClipAccess"] == [int(desc.temporal_clip_access)]
        assert props["OfxImageEffectPropSupportsTiles"] == [int(desc.supports_tiles)]
        assert set(inst.in_context.clips) == {"Source", "Output"}
        assert list(inst.in_context.params) == list(desc.params)
        for pname, pdef in desc.params.items():
            got = inst.in_context.params[pname].props.values
            assert got["OfxParamPropAnimates"] == [int(pdef.animatable)]
            if pdef.kind == "choice":
                assert got["OfxParamPropChoiceOption"] == list(pdef.options)
                assert got["OfxParamPropDefault"] == [list(pdef.options).index(pdef.default)]
            elif pdef.kind in ("double", "integer"):
                assert got["OfxParamPropDefault"] == [pdef.default]
                if pdef.minimum is not None:
                    assert got["OfxParamPropMin"] == [pdef.minimum]
                    assert got["OfxParamPropMax"] == [pdef.maximum]
            elif pdef.kind == "file_path":
                assert got["OfxParamPropStringMode"] == ["OfxParamStringIsFilePath"]
        inst.close()


# -- the life cycle against `vstpipe ofx render` ------------------------------------------------

CASES = {
    "stylize-byte-animated-alpha-2x2": ("stylize", "byte", 4, ("alpha", [(0, 0.3), (3, 1.0)]),
                                         {}, (2, 2)),
    "stylize-float-1x2": ("stylize", "float", 3, ("alpha", [(0, 1.0), (2, 0.5)]), {}, (1, 2)),
    "echo-short-trails-animated-decay-3x1": ("echo", "short", 5,
                                             ("decay", [(0, 0.2), (4, 0.9)]), {}, (3, 1)),
    "echo-float-difference-2x2": ("echo", "float", 4, ("decay", [(0, 0.5), (3, 0.7)]),
                                  {"mode": "difference"}, (2, 2)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_frame_equals_vstpipe_ofx_render(case: str, binary: Path, tmp_path: Path) -> None:
    effect, depth, count, (animated, keys), params, tiles = CASES[case]
    bits = 8 if depth == "byte" else 16
    frames = moving_frames(count, bits)
    pattern = write_sequence(tmp_path / "in", frames)
    (tmp_path / "out").mkdir()
    args = ["ofx", "render", effect, str(pattern), str(tmp_path / "out" / "o_%03d.png"),
            "--depth", depth, "--tiles", f"{tiles[0]}x{tiles[1]}", "--offline"]
    for time_, value in keys:
        args += ["--param", f"{animated}@{time_}={value}"]
    for name, value in params.items():
        args += ["--param", f"{name}={value}"]
    done = cli(*args)
    assert done.exit_code == 0, done.output

    host = Host(binary)
    inst = Instance(host, f"org.vstpipe.{effect}", [rgba(f, depth) for f in frames], depth)
    inst.animate(animated, keys)
    for name, value in params.items():
        inst.set(name, value)
    assert inst.sequence("Begin", 0, count - 1) == OK
    for t in range(count):
        assert inst.render(t, tiles) == OK, host.messages
    assert inst.sequence("End", 0, count - 1) == OK
    scale = {"byte": 255.0, "short": 65535.0, "float": 1.0}[depth]
    for t in range(count):
        ours = inst.output(t)[..., :3].astype(np.float64) / scale
        reference = read_png(tmp_path / "out" / f"o_{t:03d}.png").astype(np.float64)
        reference /= 255.0 if bits == 8 else 65535.0
        assert ours.shape == reference.shape
        assert np.abs(ours - reference).max() <= 1 / 255 + 1e-9, (case, t)
        assert inst.output(t)[..., 3].min() == (1.0 if depth == "float" else scale)
    source = [rgba(f, depth)[..., :3].astype(np.float64) / scale for f in frames]
    changed = np.abs(inst.output(count - 1)[..., :3] / scale - source[-1]).mean()
    assert changed > 0.02  # the effect did something the comparison could have missed
    assert host.images_out == 0  # every image the bridge fetched, it released
    inst.close()


def test_host_memory_layouts_premultiplied_alpha_and_offset_bounds(binary: Path) -> None:
    """Rows stored top first (negative rowBytes) or padded, a region of definition away from the
    origin, premultiplied colour: echo's first trails frame gives back its Source."""
    host = Host(binary)
    rng = np.random.default_rng(3)
    for layout, depth in (("negative", "byte"), ("padded", "short"), ("plain", "float")):
        scale = {"byte": 255, "short": 65535, "float": 1.0}[depth]
        colour = rng.uniform(0, 1, (*SIZE[::-1], 3))
        alpha = rng.uniform(0.2, 1, (*SIZE[::-1], 1))
        unit = np.concatenate([colour * alpha, alpha], axis=2)  # premultiplied
        dtype = {"byte": np.uint8, "short": np.uint16, "float": np.float32}[depth]
        image = (np.round(unit * scale) if depth != "float" else unit).astype(dtype)
        inst = Instance(host, "org.vstpipe.echo", [image], depth, origin=(7, 3), layout=layout,
                        premultiplied=True)
        assert inst.render(0, (2, 1)) == OK, host.messages
        out = inst.output(0).astype(np.float64)
        # unpremultiplied for the effect and premultiplied back: at most a level off per step
        assert np.abs(out - image).max() <= (2 if depth != "float" else 1e-5), layout
        inst.close()


# -- failures ----------------------------------------------------------------------------------

def _echo(host: Host, count: int = 3) -> Instance:
    return Instance(host, "org.vstpipe.echo", [rgba(f, "byte") for f in moving_frames(count, 8)],
                    "byte")


def test_a_killed_server_is_reported_and_the_next_render_starts_another(binary: Path) -> None:
    host = Host(binary)
    inst = _echo(host)
    assert inst.render(0) == OK
    (pid,) = server_pids()
    os.kill(pid, signal.SIGKILL)
    start = time.monotonic()
    assert inst.render(1) == FAILED
    assert time.monotonic() - start < 10
    kind, text = host.messages[-1]
    assert kind == "OfxMessageError"
    assert "vstpipe serve was killed by signal 9 (Killed) during '" in text
    assert host.persistent[inst.handle] == text
    assert inst.render(1) == OK  # a new server, the instance created on it again
    assert server_pids() and server_pids() != [pid]
    assert inst.handle not in host.persistent  # cleared by the render that worked
    inst.close()


def test_a_server_that_stops_answering_times_out(binary: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSTPIPE_OFX_TIMEOUT", "2")
    host = Host(binary)
    inst = _echo(host)
    assert inst.render(0) == OK
    (pid,) = server_pids()
    os.kill(pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        assert inst.render(1) == FAILED
        waited = time.monotonic() - start
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert 1.5 < waited < 10
    assert "within 2 s (VSTPIPE_OFX_TIMEOUT) and was stopped" in host.messages[-1][1]
    assert pid not in server_pids()  # stopped and reaped, not left behind
    assert inst.render(1) == OK
    inst.close()


def test_a_server_that_cannot_start_fails_the_render(binary: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSTPIPE_OFX_SERVER", "/nonexistent/python -m vstpipe serve")
    host = Host(binary)
    inst = _echo(host)
    assert inst.render(0) == FAILED
    assert "cannot start vstpipe serve as '/nonexistent/python'" in host.messages[-1][1]
    inst.close()


def test_a_server_that_exits_at_once_fails_the_render(binary: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSTPIPE_OFX_SERVER", f"{sys.executable} -c raise(SystemExit(3))")
    host = Host(binary)
    inst = _echo(host)
    assert inst.render(0) == FAILED
    text = host.messages[-1][1]
    assert "starting the server: vstpipe serve exited with status 3 during 'hello'" in text
    inst.close()


def test_the_servers_refusal_is_the_render_failure_and_the_session_goes_on(
        binary: Path, tmp_path: Path) -> None:
    host = Host(binary)
    inst = Instance(host, "org.vstpipe.stylize", [rgba(f, "byte") for f in moving_frames(2, 8)],
                    "byte")
    inst.set("style", str(tmp_path / "missing.png"))
    assert inst.render(0) == FAILED
    assert "missing.png" in host.messages[-1][1]
    (pid,) = server_pids()
    inst.set("style", "")
    assert inst.render(0) == OK
    assert server_pids() == [pid]  # the same server: a refused request ends nothing
    inst.close()


def test_a_shared_server_on_a_socket(binary: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "vstpipe.sock"
    server = subprocess.Popen([sys.executable, "-m", "vstpipe", "serve", "--socket", str(path)],
                              stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        monkeypatch.setenv("VSTPIPE_OFX_SOCKET", str(path))
        host = Host(binary)
        inst = _echo(host)
        assert inst.render(0) == OK, host.messages
        assert server_pids() == [server.pid]  # the farm's server, none of the bundle's own
        inst.close()
    finally:
        server.terminate()
        server.wait(30)


# -- the command -------------------------------------------------------------------------------

def test_the_bundle_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = cli("ofx", "bundle", "--out", str(tmp_path))
    assert done.exit_code == 0, done.output
    assert "vstpipe.ofx.bundle" in done.output and "/usr/OFX/Plugins" in done.output
    binary = tmp_path / "vstpipe.ofx.bundle" / "Contents" / ofx_bundle.platform_folder()
    assert (binary / "vstpipe.ofx").stat().st_size > 10_000
    again = cli("ofx", "bundle", "--out", str(tmp_path))
    assert again.exit_code == 1
    assert "exists; pass --overwrite" in again.output and len(again.output.splitlines()) == 1
    monkeypatch.setenv("CC", "no-such-compiler-here")
    missing = cli("ofx", "bundle", "--out", str(tmp_path / "other"), "--overwrite")
    assert missing.exit_code == 1
    assert "CC='no-such-compiler-here' is not a program on PATH" in missing.output
    assert not (tmp_path / "other").exists()


def test_no_compiler_names_what_to_install() -> None:
    with pytest.raises(CompilerMissing, match="apt-get install gcc"):
        ofx_bundle.find_compiler({"PATH": "/nonexistent"})
