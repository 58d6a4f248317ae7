"""vstpipe: video style transfer without the flicker."""

__version__ = "0.1.0"
