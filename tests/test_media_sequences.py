"""Stills and image sequences in and out (media.sequences, the image2 paths of Source and Sink,
atomic.TempSequence): 16-bit frames bit-exact, frame numbers kept, nothing half-written."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from mediatools import pass_through

from vstpipe.errors import MediaError, OptionError, OutputError
from vstpipe.media import EncodeOptions, Frame, Trim, open_sink, open_source
from vstpipe.media import sequences

SIZE = (48, 32)


def _write_sequence(pattern: Path, frames: list[np.ndarray], first: int, codec: str = "png",
                    pix_fmt: str = "rgb48be") -> None:
    with av.open(str(pattern), "w", format="image2",
                 options={"start_number": str(first)}) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], pix_fmt
        for n, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le")
            frame.pts = n
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _read(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb48le")


@pytest.fixture
def deep_frames() -> list[np.ndarray]:
    rng = np.random.default_rng(7)  # every one of the 65536 levels is possible
    return [rng.integers(0, 65536, (SIZE[1], SIZE[0], 3), dtype=np.uint16) for _ in range(5)]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_16_bit_sequence_round_trips_bit_exact_with_its_numbers(tmp_path, deep_frames,
                                                                  suffix):
    _write_sequence(tmp_path / "in_%04d.png", deep_frames, first=1001)
    out = tmp_path / "out" / f"f_%04d{suffix}"
    out.parent.mkdir()
    written, sink = pass_through(tmp_path / "in_%04d.png", out)
    assert [f.pts for f in written] == [0, 1, 2, 3, 4]  # frame n at n / 25 s
    assert sink.bit_depth == 16
    assert sorted(p.name for p in out.parent.iterdir()) == \
        [f"f_{n}{suffix}" for n in range(1001, 1006)]  # numbered as the input, nothing else
    for n, rgb in enumerate(deep_frames):
        np.testing.assert_array_equal(_read(out.parent / f"f_{1001 + n}{suffix}"), rgb,
                                      err_msg=f"frame {1001 + n}")


def test_a_sequence_plays_at_the_rate_given(tmp_path, deep_frames):
    _write_sequence(tmp_path / "s_%03d.png", deep_frames, first=0)
    with open_source(tmp_path / "s_%03d.png", fps=Fraction(24000, 1001)) as source:
        assert source.info.average_rate == Fraction(24000, 1001)
        times = [f.pts * f.time_base for f in source.items() if isinstance(f, Frame)]
    assert times == [n * Fraction(1001, 24000) for n in range(5)]


def test_exr_is_written_in_float_and_reads_back_bit_exact(tmp_path, deep_frames):
    _write_sequence(tmp_path / "in_%02d.png", deep_frames[:2], first=1)
    out = tmp_path / "e_%02d.exr"
    _, sink = pass_through(tmp_path / "in_%02d.png", out)
    assert sink.pix_fmt == "gbrpf32le"
    with av.open(str(tmp_path / "e_01.exr")) as c:  # 32-bit float, v / 65535
        stored = next(c.decode(video=0)).to_ndarray()
    np.testing.assert_allclose(stored, deep_frames[0] / 65535, rtol=0, atol=1e-7)
    with open_source(out) as source:  # and back to the same 16-bit levels
        back = [f.rgb for f in source.items() if isinstance(f, Frame)]
    assert source.info.bit_depth == 32 and len(back) == 2
    for rgb, frame in zip(back, deep_frames[:2], strict=True):
        np.testing.assert_array_equal(rgb, frame)


def test_a_trimmed_sequence_keeps_the_numbers_of_its_frames(tmp_path, deep_frames):
    _write_sequence(tmp_path / "in_%04d.png", deep_frames, first=1001)
    out = tmp_path / "o_%04d.png"
    with open_source(tmp_path / "in_%04d.png") as source:
        source.trim(Trim(Fraction(2, 25), Fraction(4, 25)))
        with open_sink(out, source.plan, EncodeOptions()) as sink:
            for item in source.items():
                sink.write(item)
    assert sorted(p.name for p in tmp_path.glob("o_*")) == ["o_1003.png", "o_1004.png"]
    np.testing.assert_array_equal(_read(tmp_path / "o_1003.png"), deep_frames[2])


def test_a_still_is_a_one_frame_video_and_an_image_output_a_still(tmp_path, deep_frames):
    _write_sequence(tmp_path / "in_%d.png", deep_frames[:1], first=0)
    still = tmp_path / "in_0.png"
    written, _ = pass_through(still, tmp_path / "out.tif")
    assert len(written) == 1
    np.testing.assert_array_equal(_read(tmp_path / "out.tif"), deep_frames[0])


def test_existing_files_of_a_sequence_are_kept_unless_overwrite(tmp_path, deep_frames):
    _write_sequence(tmp_path / "in_%02d.png", deep_frames[:2], first=1)
    (tmp_path / "o_02.png").write_bytes(b"mine")
    with pytest.raises(OutputError, match=r"o_%02d\.png: 1 files of this sequence already "
                                          r"exist \(from o_02\.png\); pass overwrite"):
        pass_through(tmp_path / "in_%02d.png", tmp_path / "o_%02d.png")
    assert (tmp_path / "o_02.png").read_bytes() == b"mine"
    pass_through(tmp_path / "in_%02d.png", tmp_path / "o_%02d.png", overwrite=True)
    np.testing.assert_array_equal(_read(tmp_path / "o_02.png"), deep_frames[1])


def test_a_failed_sequence_leaves_no_file_and_no_temp_folder(tmp_path, deep_frames):
    _write_sequence(tmp_path / "in_%02d.png", deep_frames, first=1)
    before = sorted(p.name for p in tmp_path.iterdir())
    with open_source(tmp_path / "in_%02d.png") as source, \
            pytest.raises(RuntimeError, match="stop"):
        with open_sink(tmp_path / "o_%02d.png", source.plan, EncodeOptions()) as sink:
            for n, item in enumerate(source.items()):
                if n == 3:
                    raise RuntimeError("stop")
                sink.write(item)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("pattern, message", [
    ("none_%03d.png", r"none_%03d\.png: no file matches this sequence in"),
])
def test_a_pattern_without_files_is_named(tmp_path, pattern, message):
    with pytest.raises(MediaError, match=message):
        open_source(tmp_path / pattern)


def test_sequence_names_and_gaps(tmp_path):
    for n in (7, 8, 9, 11):
        (tmp_path / f"a_{n:03d}.png").write_bytes(b"")
    (tmp_path / "a_1000.png").write_bytes(b"")  # four digits: not this pattern
    found = sequences.find(tmp_path / "a_%03d.png")
    assert (found.first, found.count) == (7, 3)  # up to the first gap
    assert sequences.is_sequence(Path("x/%d.exr")) and not sequences.is_sequence(Path("x.png"))
    assert not sequences.is_sequence(Path("100%_%d.png"))
    assert sequences.name_of(Path("o/f_%05d.png"), 42) == Path("o/f_00042.png")


def test_fps_is_for_sequences_and_codec_follows_the_image(tmp_path, deep_frames):
    from clips import make_clip

    clip = make_clip(tmp_path / "c.mp4", frames=2)
    with pytest.raises(OptionError, match=r"^fps is the rate of an image-sequence input"):
        open_source(clip, fps=Fraction(24))
    _write_sequence(tmp_path / "in_%d.png", deep_frames[:1], first=0)
    with open_source(tmp_path / "in_0.png") as source, pytest.raises(
            OptionError, match=r"out\.png: a \.png file is written by png, not libx264; leave "
                               r"out codec"):
        open_sink(tmp_path / "out.png", source.plan, EncodeOptions(codec="libx264"))
