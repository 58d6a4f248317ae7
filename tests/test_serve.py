"""`vstpipe serve` driven end to end by a small client, as a native plugin bridge would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from clips import make_clip

from vstpipe import effects, ofx, ofx_host
from vstpipe.media import EncodeOptions


class Client:
    """The protocol from the client's side, written from its description in serve.py."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "vstpipe", "serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.next_id = 0

    def call(self, op: str, payload: bytes = b"", **fields: Any) -> tuple[dict[str, Any], bytes]:
        self.next_id += 1
        header = {"op": op, "id": self.next_id, **fields}
        if payload:
            header["bytes"] = len(payload)
        self.proc.stdin.write(json.dumps(header).encode() + b"\n" + payload)
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        assert reply.get("id") == self.next_id
        data = self.proc.stdout.read(reply.get("bytes", 0)) if reply.get("bytes") else b""
        return reply, data

    def ok(self, op: str, payload: bytes = b"", **fields: Any) -> tuple[dict[str, Any], bytes]:
        reply, data = self.call(op, payload, **fields)
        assert reply["ok"], reply
        return reply, data

    def close(self) -> tuple[int, str]:
        self.proc.stdin.write(b'{"op": "quit"}\n')
        self.proc.stdin.close()
        code = self.proc.wait(timeout=60)
        return code, self.proc.stderr.read().decode()


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "crash.py").write_text(textwrap.dedent("""
        from vstpipe import ofx
        class Crash(ofx.Effect):
            identifier = "org.test.crash"
            def render(self, args):
                raise RuntimeError("GPU fell off the bus")
        EFFECTS = [Crash]
    """))
    (plugins / "broken.py").write_text("import not_a_module_anywhere\n")
    env = {**os.environ, effects.PATH_VARIABLE: str(plugins)}
    c = Client(env)
    yield c
    if c.proc.poll() is None:
        c.proc.kill()


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def rgba_bottom_up(rgb: np.ndarray) -> bytes:
    return ofx_host.frame_to_image(rgb, "byte").pixels.tobytes()


def test_hello_describe_and_broken_plugins_as_data(client: Client):
    hello, _ = client.ok("hello")
    assert hello["protocol"] == 1
    assert {"org.vstpipe.stylize", "org.vstpipe.echo", "org.test.crash"} <= set(hello["effects"])
    assert any("broken.py" in b["plugin"] and "not_a_module_anywhere" in b["error"]
               for b in hello["broken"])
    described, _ = client.ok("describe", effect="stylize", context="general")
    assert described["descriptor"]["identifier"] == "org.vstpipe.stylize"
    assert {p["name"] for p in described["descriptor"]["params"]} >= {"preset", "style", "alpha"}
    assert client.close()[0] == 0


def test_echo_over_the_protocol_equals_the_reference_host(client: Client, tmp_path: Path):
    clip = make_clip(tmp_path / "in.mkv", size=(40, 30), frames=5, codec="ffv1", pix_fmt="bgr0")
    echo = effects.load_catalog().get("echo")
    params = ofx.ParamSet(ofx.describe(echo, "filter").params)
    params.set_keyframe("decay", 0, 0.3)
    params.set_keyframe("decay", 4, 0.8)
    reference = tmp_path / "ref.mkv"
    ofx_host.render_video(echo, clip, reference, params, ofx_host.HostOptions(),
                          EncodeOptions(codec="ffv1", pix_fmt="bgr0"))
    expected = frames_of(reference)

    made, _ = client.ok("create", effect="echo", width=40, height=30, depth="byte",
                        frame_rate=25, frame_range=[0, 4])
    inst = made["instance"]
    client.ok("set", instance=inst, keyframes={"decay": [[0, 0.3], [4, 0.8]]})
    needed, _ = client.ok("frames_needed", instance=inst, time=2)
    assert needed["frames"] == {"Source": [[2, 2]], "Output": [[1, 1]]}
    client.ok("begin", instance=inst, frame_range=[0, 4])
    for t, rgb in enumerate(frames_of(clip)):
        got = np.zeros((30, 40, 4), np.uint8)
        for window in ([0, 0, 40, 15], [0, 15, 40, 30]):  # two render windows per frame
            reply, data = client.ok("render", rgba_bottom_up(rgb), instance=inst, time=t,
                                    window=window, images=[{"clip": "Source", "time": t}])
            x1, y1, x2, y2 = reply["window"]
            got[y1:y2, x1:x2] = np.frombuffer(data, np.uint8).reshape(y2 - y1, x2 - x1, 4)
        assert (got[::-1, :, :3] == expected[t]).all(), t
    client.ok("end", instance=inst)
    client.ok("destroy", instance=inst)
    assert client.close()[0] == 0


def test_errors_are_messages_and_the_server_carries_on(client: Client):
    bad, _ = client.call("render", instance=7, time=0)
    assert not bad["ok"] and bad["error"] == "no instance 7; create one first"
    unknown, _ = client.call("dance")
    assert not unknown["ok"] and "unknown op 'dance'" in unknown["error"]
    crash, _ = client.ok("create", effect="crash", width=8, height=8)
    frame = np.zeros((8, 8, 3), np.uint8)
    failed, _ = client.call("render", rgba_bottom_up(frame), instance=crash["instance"], time=0)
    assert not failed["ok"] and failed["type"] == "EffectError"
    assert failed["error"] == ("effect org.test.crash failed in render at frame 0: "
                               "RuntimeError: GPU fell off the bus")
    short, _ = client.call("render", b"\0" * 10, instance=crash["instance"], time=0)
    assert "payload has 10 bytes; 1 frame(s) of 8x8 RGBA byte need 256" in short["error"]
    echo, _ = client.ok("create", effect="echo", width=8, height=8)
    client.ok("set", instance=echo["instance"], params={"mode": "difference"})
    reply, data = client.ok("render", rgba_bottom_up(frame + 9), instance=echo["instance"],
                            time=0)
    assert reply["window"] == [0, 0, 8, 8] and len(data) == 256
    rejected, _ = client.call("set", instance=echo["instance"], params={"decay": 5})
    assert "'decay': 5.0 is outside [0.0, 0.99]" in rejected["error"]
    assert client.close()[0] == 0


def test_malformed_header_is_answered_and_end_of_input_exits_cleanly(client: Client):
    client.proc.stdin.write(b"this is not json\n")
    client.proc.stdin.flush()
    reply = json.loads(client.proc.stdout.readline())
    assert not reply["ok"] and reply["error"].startswith("header is not JSON")
    client.ok("hello")
    client.proc.stdin.close()
    assert client.proc.wait(timeout=60) == 0
    assert "Traceback" not in client.proc.stderr.read().decode()


@pytest.mark.usefixtures("default_threads")  # the server process runs torch's default threads
def test_stylizer_over_the_protocol_equals_vstpipe_render(adain_home, style_png, client: Client,
                                                          tmp_path: Path):
    from typer.testing import CliRunner

    from vstpipe.cli import app

    clip = make_clip(tmp_path / "in.mkv", size=(48, 40), frames=4, codec="ffv1", pix_fmt="bgr0")
    out = tmp_path / "render.mkv"
    done = CliRunner().invoke(app, ["render", str(clip), "--out", str(out), "--style",
                                    str(style_png), "--steady", "--batch", "1", "--precision",
                                    "fp32", "--codec", "ffv1", "--pix-fmt", "bgr0", "--offline"])
    assert done.exit_code == 0, done.output
    made, _ = client.ok("create", effect="org.vstpipe.stylize", width=48, height=40,
                        depth="byte", frame_rate=25, frame_range=[0, 3])
    inst = made["instance"]
    client.ok("set", instance=inst, params={"style": str(style_png), "steady": True,
                                            "precision": "fp32", "device": "cpu"})
    rois, _ = client.ok("regions_of_interest", instance=inst, time=0, window=[0, 0, 24, 20])
    assert rois["regions"] == {"Source": [0, 0, 48, 40]}  # AdaIN needs the whole frame
    client.ok("begin", instance=inst, frame_range=[0, 3])
    for t, (rgb, want) in enumerate(zip(frames_of(clip), frames_of(out))):
        _, data = client.ok("render", rgba_bottom_up(rgb), instance=inst, time=t)
        got = np.frombuffer(data, np.uint8).reshape(40, 48, 4)[::-1, :, :3]
        assert (got == want).all(), t
    client.ok("end", instance=inst)
    assert client.close()[0] == 0


def test_serve_on_a_unix_socket_and_ctrl_c_removes_it(tmp_path: Path):
    import signal
    import socket
    import time

    path = tmp_path / "vstpipe.sock"
    proc = subprocess.Popen([sys.executable, "-m", "vstpipe", "serve", "--socket", str(path)],
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(2):  # one client after another
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(str(path))
                stream = conn.makefile("rwb")
                stream.write(b'{"op": "hello", "id": 1}\n')
                stream.flush()
                reply = json.loads(stream.readline())
                assert reply["ok"] and reply["id"] == 1 and "org.vstpipe.echo" in reply["effects"]
                stream.write(b'{"op": "quit"}\n')
                stream.flush()
        taken = subprocess.run([sys.executable, "-m", "vstpipe", "serve", "--socket", str(path)],
                               check=False, capture_output=True, text=True, timeout=60)
        assert taken.returncode == 1 and f"{path} exists" in taken.stderr
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert not path.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
