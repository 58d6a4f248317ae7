"""atomic: locked temp outputs, a no-clobber claim at the end, inputs refused as outputs."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vstpipe import atomic
from vstpipe.errors import OutputError


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_commit_claims_the_target_and_leaves_no_temp(tmp_path):
    out = tmp_path / "o.bin"
    with atomic.TempOutput(out) as tmp:
        assert tmp.path.parent == tmp_path and tmp.path.name.startswith(".o.bin.")
        tmp.path.write_bytes(b"done")
        assert not out.exists()  # nothing under the real name until the end
        tmp.commit()
    assert out.read_bytes() == b"done"
    assert _leftovers(tmp_path) == []


def test_a_file_that_appears_during_the_work_is_never_replaced(tmp_path):
    out = tmp_path / "o.mp4"
    with pytest.raises(OutputError, match="appeared while this command ran"):
        with atomic.TempOutput(out) as tmp:
            tmp.path.write_bytes(b"ours")
            out.write_bytes(b"a user's file")  # another render, or the user, got there first
            tmp.commit()
    assert out.read_bytes() == b"a user's file"
    assert _leftovers(tmp_path) == []


def test_two_writers_to_one_target_cannot_both_succeed(tmp_path):
    out = tmp_path / "o.mp4"
    first, second = atomic.TempOutput(out), atomic.TempOutput(out)
    first.path.write_bytes(b"first")
    second.path.write_bytes(b"second")
    first.commit()
    with pytest.raises(OutputError):
        second.commit()
    second.discard()
    assert out.read_bytes() == b"first"
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces(tmp_path):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"old")
    atomic.write_bytes(out, b"new", overwrite=True)
    assert out.read_bytes() == b"new"
    with pytest.raises(OutputError, match="already exists"):
        atomic.check_target(out)


def test_an_error_leaves_the_target_untouched(tmp_path):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.TempOutput(out, overwrite=True) as tmp:
        tmp.path.write_bytes(b"half")
        raise RuntimeError("boom")
    assert out.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_a_254_character_name_works(tmp_path):
    out = tmp_path / (("x" * 250) + ".mp4")
    assert len(out.name) == 254
    with atomic.TempOutput(out) as tmp:
        assert len(tmp.path.name) <= 255
        tmp.path.write_bytes(b"ok")
        tmp.commit()
    assert out.read_bytes() == b"ok"
    # Multi-byte names are cut on a character boundary.
    wide = tmp_path / ("é" * 120 + ".mp4")
    atomic.write_bytes(wide, b"ok")
    assert wide.read_bytes() == b"ok"


def test_inputs_are_refused_as_outputs_also_through_links(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(b"picture")
    (tmp_path / "link.png").symlink_to(src)
    os.link(src, tmp_path / "hard.png")
    for out in (src, tmp_path / "link.png", tmp_path / "hard.png", tmp_path / "sub" / ".." / "in.png"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(OutputError, match="is an input of this command"):
            atomic.check_target(out, [src], overwrite=True)
    assert src.read_bytes() == b"picture"
    with pytest.raises(OutputError, match="is a directory"):
        atomic.check_target(tmp_path / "sub")
    with pytest.raises(OutputError, match="does not exist"):
        atomic.check_target(tmp_path / "nope" / "o.png")


def test_stdout_redirected_onto_an_input_is_refused(tmp_path):
    data = tmp_path / "in.raw"
    data.write_bytes(b"\0" * 12)
    with open(data, "rb") as src, open(data, "r+b") as dst:
        with pytest.raises(OutputError, match="same file as standard input"):
            atomic.check_stream_apart(dst.fileno(), [src.fileno()], what="standard output")
    style = tmp_path / "s.png"
    style.write_bytes(b"x")
    with open(style, "ab") as dst, pytest.raises(OutputError, match="s.png"):
        atomic.check_stream_apart(dst.fileno(), [style], what="standard output")
    atomic.check_stream_apart(io.BytesIO(), [io.BytesIO(), style], what="standard output")
    read_end, write_end = os.pipe()
    try:
        atomic.check_stream_apart(write_end, [read_end, style], what="standard output")
    finally:
        os.close(read_end)
        os.close(write_end)


def test_sweep_removes_only_a_dead_writers_temp(tmp_path):
    out = tmp_path / "o.mp4"
    live = atomic.TempOutput(out)  # holds its lock
    dead = tmp_path / f"{atomic._temp_prefix(out)}deadbeef.part"
    dead.write_bytes(b"stale")
    fresh = tmp_path / f"{atomic._temp_prefix(out)}0000beef.part"
    fresh.write_bytes(b"just created")
    other = tmp_path / ".other.mp4.deadbeef.part"  # another target's: not ours to judge
    other.write_bytes(b"x")
    old = time.time() - 60
    for path in (live.path, dead, other):
        os.utime(path, (old, old))
    assert atomic.sweep_stale(out) == [dead]
    assert live.path.exists() and fresh.exists() and other.exists()
    live.discard()


def test_a_sigkilled_writers_temp_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "o.mp4"
    code = ("import sys, time; from pathlib import Path; from vstpipe import atomic; "
            "t = atomic.TempOutput(Path(sys.argv[1])); print(t.path, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE,
                            text=True)
    stale = Path(proc.stdout.readline().strip())
    assert stale.exists()
    old = time.time() - 60
    os.utime(stale, (old, old))
    assert atomic.sweep_stale(out) == []  # its writer is alive: hands off
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    assert stale.exists()
    atomic.write_bytes(out, b"next run")
    assert out.read_bytes() == b"next run"
    assert _leftovers(tmp_path) == []
