"""Media I/O: probe, threaded decode to RGB, threaded encode from RGB, and stream copy.

Data flow: ``open_source`` demuxes and decodes on a background thread and yields RGB
:class:`Frame` objects interleaved with the raw packets of every other stream;
``open_sink`` encodes frames on another background thread, remuxes those packets
unchanged, and claims the target with its temporary file only when everything
succeeded (atomic.TempOutput: never over a file that appeared there meanwhile).

One responsibility per module:

* ``frames``: Frame, VideoInfo and Trim, the frame-size limits (no PyAV);
* ``color``: the swscale matrix and range of each conversion, RGB both ways;
* ``probing``: open an input, pick its streams, decode its first frame (``probe``);
* ``truncation``: what the header promises and how far decoding got;
* ``decode``: Source, the decode thread, display-order timestamps;
* ``streams``: StreamPlan, what an output needs of its input (a Sink takes it, not a Source);
* ``carry``: what the output keeps besides the video (streams, chapters, HDR ...);
* ``encoders``: EncodeOptions, their checks, what each encoder accepts;
* ``encode``: the output rules and the Sink;
* ``workers``: the worker thread and bounded queue that decode, encode and rawio share.
"""

from .decode import Source, open_source
from .encode import Sink, check_frame_count, check_output_path, open_sink
from .encoders import EncodeOptions, check_encode_options, parse_bitrate, parse_encoder_opt
from .frames import MAX_FRAME_PIXELS, MAX_FRAME_SIDE, Frame, Trim, VideoInfo
from .probing import probe
from .streams import StreamPlan

__all__ = [
    "MAX_FRAME_PIXELS",
    "MAX_FRAME_SIDE",
    "EncodeOptions",
    "Frame",
    "Sink",
    "Source",
    "StreamPlan",
    "Trim",
    "VideoInfo",
    "check_encode_options",
    "check_frame_count",
    "check_output_path",
    "open_sink",
    "open_source",
    "parse_bitrate",
    "parse_encoder_opt",
    "probe",
]
