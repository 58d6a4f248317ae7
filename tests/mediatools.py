"""Helpers for the media tests: run clips through Source and Sink, and inspect the results."""

from __future__ import annotations

import os
import threading
from fractions import Fraction
from pathlib import Path

import av
import clips
import cv2
import numpy as np
import pytest

from vstpipe.media import EncodeOptions, Frame, Sink, open_sink, open_source
from vstpipe.media.workers import _Worker


def decoded_items(path: Path) -> tuple[list[Frame], list[tuple[str, bytes]]]:
    """Decoded frames, and (stream type, payload) of every copied packet."""
    frames, packets = [], []
    with open_source(path) as source:
        for item in source.items():
            if isinstance(item, Frame):
                frames.append(item)
            else:
                # Read the stream now: a packet's stream dies with the input container.
                packets.append((item.stream.type, bytes(item)))
    return frames, packets


def pass_through(src: Path, out: Path, options: EncodeOptions | None = None,
                  overwrite: bool = False) -> tuple[list[Frame], Sink]:
    """Source -> Sink with frames unchanged; returns the frames written and the sink."""
    written = []
    options = options or EncodeOptions()
    with open_source(src) as source, open_sink(out, source.plan, options, overwrite) as sink:
        for item in source.items():
            if isinstance(item, Frame):
                sink.write(item)
                written.append(item)
            else:
                sink.copy(item)
    return written, sink


def smooth_texture(height: int, width: int, seed: int = 0, blur: float = 1.5) -> np.ndarray:
    """Smooth random colour texture (blurred noise stretched to [0, 1]), float32 RGB, that
    optical flow can follow; a larger ``blur`` for estimators with coarser pyramids."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((height, width, 3), dtype=np.float32), (0, 0), blur)
    return (tex - tex.min()) / (tex.max() - tex.min())


def nth_frame(path: Path, index: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB of video frame ``index`` of ``path`` (its last, if it is shorter)."""
    rgb = None
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb24")
            if i == index:
                break
    return rgb


def video_times(path: Path) -> list[Fraction]:
    pts, time_base = clips.video_pts(path)
    return [p * time_base for p in pts]


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def worst_diff(a: np.ndarray, b: np.ndarray) -> str:
    """Where two images differ most, for assertion messages."""
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    at = np.unravel_index(diff.argmax(), diff.shape)
    return f"max diff {diff.max()} at {at}: {a[at]} vs {b[at]}"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def one_line_naming(err: pytest.ExceptionInfo[BaseException], path: Path) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    assert path.name in message, message


def ctrl_c_during_next_join(monkeypatch: pytest.MonkeyPatch, worker: _Worker) -> None:
    """Make one join() of ``worker``'s thread raise KeyboardInterrupt, as a Ctrl-C arriving then.

    The thread is held before its last step until that join begins, so the Ctrl-C always
    lands while it is still running; otherwise a thread that ended first (a loaded machine
    can pause the caller that long) would never be joined and the test would prove nothing.
    """
    thread = worker.thread
    real_join, real_ended = thread.join, worker._ended
    joining = threading.Event()
    fired = []

    def ended() -> None:
        joining.wait(timeout=30)
        real_ended()

    def join(timeout: float | None = None) -> None:
        joining.set()
        real_join(timeout)
        if not fired:
            fired.append(True)
            raise KeyboardInterrupt

    monkeypatch.setattr(worker, "_ended", ended)
    monkeypatch.setattr(thread, "join", join)


def handles_on(path: Path) -> int:
    """How many of this process's file descriptors are open on ``path`` (Linux /proc)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc to see open files")
    target = str(path.resolve())
    count = 0
    for fd in fds.iterdir():
        try:
            if os.readlink(fd) == target:
                count += 1
        except OSError:  # the fd listdir itself used, already closed
            pass
    return count


def stream_sar(path: Path) -> Fraction | None:
    """The video stream's sample aspect ratio as plain PyAV reads it (None/0: unstated)."""
    with av.open(str(path)) as container:
        return container.streams.video[0].sample_aspect_ratio or None


def lower_tags(tags: dict[str, str]) -> dict[str, str]:
    # Matroska keeps tag names upper-case; the mov demuxer reports a track title as "name".
    lower = {k.lower(): v for k, v in tags.items()}
    if "name" in lower:
        lower.setdefault("title", lower.pop("name"))
    return lower


def head_clip(src: Path, dst: Path, frames: int) -> Path:
    """The first ``frames`` video frames of ``src`` and the audio that goes with them: a short
    stand-in for a long real clip, so a test renders a dozen frames instead of hundreds.

    The video is re-encoded with libx264 at the source's size, time base and pts; every audio
    packet that starts before the last kept frame ends is copied unchanged (a remux), so a
    render of ``dst`` can be checked against ``dst``'s own pts and packets.
    """
    dst = Path(dst)
    with av.open(str(src)) as source, av.open(str(dst), "w") as container:
        video_in = source.streams.video[0]
        time_base = video_in.time_base
        video = container.add_stream("libx264", rate=video_in.average_rate)
        video.width, video.height = video_in.codec_context.width, video_in.codec_context.height
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = video.time_base = time_base
        audio = {s.index: container.add_stream_from_template(s) for s in source.streams.audio}
        end = None  # where the last kept frame ends, in seconds
        for index, frame in enumerate(source.decode(video_in)):
            if index == frames:
                break
            end = (frame.pts + (frame.duration or 0)) * time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if end is None:
            raise ValueError(f"{src} has no video frames")
        if not audio:
            return dst
        source.seek(0)
        for packet in source.demux(*source.streams.audio):
            if packet.size and packet.pts is not None and packet.pts * packet.time_base < end:
                packet.stream = audio[packet.stream.index]
                container.mux(packet)
    return dst


def write_lossless(path: Path, frames: list[np.ndarray]) -> Path:
    """FFV1 in Matroska at 25 fps, stored as RGB (bgr0) so decoding gives back the exact
    pixels of ``frames`` ((H, W, 3) uint8)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "bgr0"
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="bgr0")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
