"""Fault suite for damaged and oversized inputs (issue 11, points 3 and 4, non-media parts).

Each class of fault is generated here and the promise asserted: a one-line error naming the
file, key or value and the limit, raised before anything is allocated or written, and nothing
left behind (the directory listings are compared).
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from clips import make_clip
from fakes import random_state, save_random_weights
from PIL import Image
from typer.testing import CliRunner

from vstpipe import (
    images,
    keyframes,
    media,
    model,
    pipeline,
    presets,
    rawio,
    spec,
    tomlspec,
    weights,
)
from vstpipe.cli import app
from vstpipe.errors import ConfigError, LayoutError, MediaError, ModelError, OptionError
from vstpipe.keyframes import Timeline
from vstpipe.sessions import Sessions
from vstpipe.spec import Compute, Job, Look

runner = CliRunner()


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and len(text) < 400, text
    return text


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() \
        else []


@pytest.fixture
def png(tmp_path: Path):
    """Writes a small RGB PNG of the given (width, height)."""
    def write(name: str, size: tuple[int, int], value: int = 128) -> Path:
        path = tmp_path / name
        Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
        return path
    return write


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height over one tiny compressed row: a few hundred
    bytes that would decode to gigabytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                     chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


# --- 3a: non-finite, int and bool weights ----------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_import_refuses_non_finite_weights_naming_file_and_key(tmp_path, vstpipe_home, bad):
    files = save_random_weights("adain-vgg19", tmp_path / "w")
    state = random_state("adain-vgg19", "decoder")
    state["5.weight"][0, 0, 0, 0] = bad
    torch.save(state, files["decoder"])
    with pytest.raises(ModelError) as err:
        weights.import_files("adain-vgg19", list(files.values()), unverified=True)
    assert "decoder.pth" in _one_line(err) and "'5.weight'" in str(err.value)
    assert "NaN/Inf" in str(err.value)
    assert _listing(vstpipe_home) in ([], ["models"])  # nothing installed, no temp file


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_import_refuses_int_or_bool_tensors_where_float_is_expected(tmp_path, vstpipe_home,
                                                                   dtype):
    files = save_random_weights("adain-vgg19", tmp_path / "w")
    state = random_state("adain-vgg19", "decoder")
    state["1.bias"] = torch.ones(state["1.bias"].shape, dtype=dtype)
    torch.save(state, files["decoder"])
    with pytest.raises(LayoutError) as err:
        weights.import_files("adain-vgg19", list(files.values()), unverified=True)
    text = _one_line(err)
    assert "decoder.pth" in text and "'1.bias'" in text and str(dtype) in text
    assert _listing(vstpipe_home) in ([], ["models"])


def test_a_model_directory_with_nan_weights_is_refused_at_load(tmp_path):
    files = save_random_weights("adain-vgg19", tmp_path / "dir")
    state = random_state("adain-vgg19", "encoder")
    state["0.bias"][1] = float("nan")
    torch.save(state, files["encoder"])
    resolved = weights.resolve(str(tmp_path / "dir"), offline=True)
    with pytest.raises(ModelError, match=r"vgg_normalised\.pth: tensor '0\.bias' holds 1 NaN"):
        weights.load(resolved)


# --- 3b: blend weights that overflow ---------------------------------------------------------


@pytest.mark.parametrize("values", ["1e308, 1e308", "nan, 1", "inf, 1", "-1, 1", "0, 0",
                                    "2e6, 1"])
def test_preset_blend_weights_out_of_range_are_refused_naming_the_key(tmp_path, png, values):
    png("a.png", (32, 32))
    png("b.png", (32, 32), 30)
    first, second = values.split(", ")
    path = tmp_path / "look.toml"
    path.write_text(f'style = {{ "a.png" = {first}, "b.png" = {second} }}\n')
    with pytest.raises(ConfigError) as err:
        presets.load(path)
    text = _one_line(err)
    assert text.startswith(str(path)) and ("weight of" in text or "all zero" in text)


def test_keyframe_blend_weights_that_overflow_are_refused_naming_the_keyframe(tmp_path, png):
    png("a.png", (32, 32))
    png("b.png", (32, 32), 30)
    path = tmp_path / "show.toml"
    path.write_text('[[keyframe]]\nat = 0\nstyle = "a.png"\n'
                    '[[keyframe]]\nat = 1\nstyle = { "a.png" = 1e308, "b.png" = 1e308 }\n')
    with pytest.raises(ConfigError, match=r"#2: weight of 'a\.png' .* got 1e\+308") as err:
        keyframes.load(path)
    _one_line(err)


@pytest.mark.parametrize("values", [(1e308, 1e308), (float("nan"), 1.0), (float("inf"), 1.0),
                                    (-1.0, 1.0), (0.0, 0.0)])
def test_weights_flag_out_of_range_is_refused(values):
    with pytest.raises(OptionError, match=r"^weights .*at most 1e\+06") as err:
        Timeline.constant([Path("a.png"), Path("b.png")], values)
    _one_line(err)


# --- 3c: no render from bad numbers ----------------------------------------------------------


def test_a_model_that_outputs_nan_stops_the_render_before_anything_is_written(tmp_path,
                                                                              style_png):
    states = {r: random_state("adain-vgg19", r, i) for i, r in enumerate(("encoder", "decoder"))}
    # Finite weights whose sums overflow: inf after the first conv, inf - inf = NaN after the
    # next. Weight checks cannot see this; only the output can.
    states["decoder"]["1.weight"].fill_(1e38)
    net = model.build("adain-vgg19", states)
    src = make_clip(tmp_path / "in.mp4", frames=6)
    out = tmp_path / "out.mp4"
    before = _listing(tmp_path)
    job = Job(Look(Timeline.constant([style_png])),
              Compute(device="cpu", precision="fp32", batch=2))
    with pytest.raises(ModelError, match=r"model 'adain-vgg19' gave NaN/Inf pixels for frames "
                                         r"0\.\.1 in fp32") as err:
        pipeline.render(src, out, job, Sessions(nets={job.model: net}))
    _one_line(err)
    assert _listing(tmp_path) == before  # no output, no temp file


# --- 3d: a cache file damaged after it was installed -----------------------------------------


def _corrupt_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # a tensor byte: the file still loads, with a wrong weight
    path.write_bytes(bytes(data))


def test_render_refuses_a_cache_file_changed_after_import(tmp_path, adain_home, style_png):
    _corrupt_middle(adain_home / "models" / "adain-vgg19" / "decoder.pth")
    src = make_clip(tmp_path / "in.mp4", frames=3)
    out = tmp_path / "out.mp4"
    result = runner.invoke(app, ["render", str(src), "--out", str(out), "--style",
                                 str(style_png), "--offline", "--precision", "fp32"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "decoder.pth: changed since it was installed" in lines[0]
    assert "vstpipe models verify" in lines[0] and "vstpipe models import" in lines[0]
    assert not out.exists()


def test_a_truncated_cache_file_is_refused_by_its_size(adain_home):
    decoder = adain_home / "models" / "adain-vgg19" / "decoder.pth"
    with decoder.open("r+b") as f:
        f.truncate(decoder.stat().st_size - 100)
    with pytest.raises(ModelError, match=r"decoder\.pth: changed since it was installed "
                                         r"\(\d+ bytes, \d+ recorded\)") as err:
        weights.resolve("adain-vgg19", offline=True)
    _one_line(err)


def test_a_change_that_kept_size_and_mtime_is_found_by_the_quick_digest(adain_home):
    decoder = adain_home / "models" / "adain-vgg19" / "decoder.pth"
    stat = decoder.stat()
    data = bytearray(decoder.read_bytes())
    data[-200] ^= 0x01  # in the last MiB
    decoder.write_bytes(bytes(data))
    os.utime(decoder, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(ModelError, match=r"first or last MiB differs"):
        weights.resolve("adain-vgg19", offline=True)


def test_a_touched_but_unchanged_cache_file_is_rehashed_once_and_restamped(adain_home):
    decoder = adain_home / "models" / "adain-vgg19" / "decoder.pth"
    manifest = adain_home / "models" / "adain-vgg19" / weights.MANIFEST
    os.utime(decoder, ns=(0, 10**18))  # as a copy without -p leaves it: new mtime, same bytes
    weights.load(weights.resolve("adain-vgg19", offline=True))
    assert json.loads(manifest.read_text())["files"]["decoder.pth"]["mtime_ns"] == 10**18


def test_a_cache_file_missing_from_the_manifest_is_refused(adain_home):
    manifest = adain_home / "models" / "adain-vgg19" / weights.MANIFEST
    data = json.loads(manifest.read_text())
    del data["files"]["decoder.pth"]
    manifest.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"decoder\.pth: not recorded in manifest\.json"):
        weights.resolve("adain-vgg19", offline=True)


def test_an_installed_model_directory_is_checked_too(tmp_path, vstpipe_home):
    run = tmp_path / "run"
    files = save_random_weights("adain-vgg19", run)
    (run / weights.MODEL_JSON).write_text(json.dumps(
        {"arch": "adain-vgg19", "files": {r: p.name for r, p in files.items()}}))
    target = weights.import_model_dir("my-look", run)
    weights.resolve("my-look", offline=True)
    _corrupt_middle(target / "decoder.pth")
    with pytest.raises(ModelError, match=r"decoder\.pth: changed since it was installed.*"
                                         r"vstpipe models import my-look DIR"):
        weights.resolve("my-look", offline=True)


# --- 4e: style images ------------------------------------------------------------------------


def test_a_thin_strip_style_image_is_refused_before_it_is_scaled(png, monkeypatch):
    strip = png("strip.png", (1, 300))  # at style size 512: 512x153600, once 23 GB in VGG

    def no_resize(*args, **kwargs):
        raise AssertionError("the style image was scaled")
    monkeypatch.setattr(images, "resize", no_resize)
    with pytest.raises(MediaError) as err:
        images.load_style(strip, 512)
    text = _one_line(err)
    assert str(strip) in text and "1x300" in text and "512x153600" in text
    assert "limited to 4.2 megapixels" in text


@pytest.mark.parametrize("size", [(9000, 9000), (10000, 9000), (100000, 100000)])
def test_huge_declared_image_dimensions_are_refused_from_the_header(tmp_path, size):
    bomb = _png_header_only(tmp_path / "bomb.png", *size)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's bomb warning would add lines on stderr
        for load in (images.load_rgb, lambda p: images.load_style(p, 512)):
            with pytest.raises(MediaError, match="megapixels") as err:
                load(bomb)
            assert str(bomb) in _one_line(err)
        show = tmp_path / "show.toml"  # named by a keyframe: refused while the file is checked
        show.write_text('[[keyframe]]\nat = 0\nstyle = "bomb.png"\n')
        with pytest.raises(ConfigError, match=r"#1: style 'bomb\.png' is not a readable image "
                                              r"of at most 67\.1 megapixels$"):
            keyframes.load(show)
    assert time.perf_counter() - start < 2


# --- 4f: --style-size and max_side -----------------------------------------------------------


@pytest.mark.parametrize("style_size, max_side, message", [
    (10**6, None, "style_size 1000000 is too large; use 64..2048"),
    (8, None, "style_size 8 is too small; use 64..2048"),
    (512, 10**9, "max_side 1000000000 is too large; use 16..16384"),
])
def test_style_size_and_max_side_settings_are_bounded(style_size, max_side, message):
    """The job spec checks them when it is built, naming the setting; the CLI names its flag."""
    with pytest.raises(OptionError) as err:
        Job(Look(Timeline.constant([Path("s.png")]), style_size=style_size),
            Compute(max_side=max_side))
    assert _one_line(err) == message
    flag = "--" + message.split()[0].replace("_", "-")
    assert err.value.named(lambda s: "--" + s.replace("_", "-")) == \
        flag + message[message.index(" "):]


@pytest.mark.parametrize("key, value", [("style_size", 100000), ("max_side", 10**7)])
def test_preset_sizes_are_bounded_naming_file_and_key(tmp_path, png, key, value):
    png("a.png", (32, 32))
    path = tmp_path / "look.toml"
    path.write_text(f'style = "a.png"\n{key} = {value}\n')
    with pytest.raises(ConfigError, match=rf"look\.toml: {key} {value} is too large; use "
                                          r"\d+\.\.\d+$"):
        presets.load(path)


# --- 4g: filter --size -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [(16385, 16), (16, 16385), (8192, 8192), (10**6, 10**6)])
def test_raw_frame_size_is_bounded_before_any_buffer(size):
    raw = rawio.RawOptions(size=size)
    with pytest.raises(OptionError, match=r"^size \d+x\d+: frames are limited to 16384 pixels "
                                          r"a side and 35389440 pixels") as err:
        rawio.check(raw)
    _one_line(err)


def test_filter_refuses_a_huge_size_before_reading_stdin(style_png, vstpipe_home):
    result = runner.invoke(app, ["filter", "--size", "100000x100000", "--style", str(style_png),
                                 "--offline"], input=b"")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        ("vstpipe: error: --size 100000x100000: frames are limited to 16384 pixels a side and "
         "35389440 pixels in all (8192x4320)")]


def test_render_output_size_is_bounded_before_a_model_is_loaded(tmp_path, style_png,
                                                                 vstpipe_home):
    media.check_encode_options(media.EncodeOptions(size=(8192, 4320)))  # DCI 8K is fine
    for size in ((16385, 16), (8192, 8192)):
        with pytest.raises(OptionError, match=r"^size \d+x\d+: frames are limited to "
                                              r"16384 pixels a side and 35389440"):
            media.check_encode_options(media.EncodeOptions(size=size))
    src = make_clip(tmp_path / "in.mp4")
    result = runner.invoke(app, ["render", str(src), "--out",
                                 str(tmp_path / "o.mp4"), "--style", str(style_png),
                                 "--size", "100000x100000", "--offline"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "vstpipe: error: --size 100000x100000: frames are limited to 16384 pixels a side "
        "and 35389440 pixels in all (8192x4320)"]


# --- 4h: keyframe numbers and counts ---------------------------------------------------------


@pytest.mark.parametrize("at, needle", [
    ("1e999", r"#2 'at': time inf must be >= 0"),
    ("9" * 4000, r"#2 'at': time 9{24}\.\.\. \(4000 characters\) must be >= 0"),
    ('"f' + "9" * 5000 + '"', r"#2 'at': cannot read time 'f9{22}\.\.\. \(5003 characters\)"),
    ('"9999999:00:00"', r"#2 'at': time '9999999:00:00' is past 1000000 seconds"),
    ('"1:00:00.' + "5" * 5000 + '"', r"#2 'at': cannot read time"),
])
def test_keyframe_times_with_thousands_of_digits_are_refused_quickly(tmp_path, png, at,
                                                                      needle):
    png("a.png", (32, 32))
    path = tmp_path / "show.toml"
    path.write_text(f'[[keyframe]]\nat = 0\nstyle = "a.png"\n[[keyframe]]\nat = {at}\n'
                    'style = "a.png"\n')
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=needle) as err:
        keyframes.load(path, fps=Fraction(25))
    assert time.perf_counter() - start < 2
    assert _one_line(err).startswith(f"{path} [[keyframe]] #2")


def test_an_integer_too_long_for_python_names_the_line(tmp_path):
    path = tmp_path / "show.toml"
    path.write_text('[[keyframe]]\nat = 0\nstyle = "a.png"\n[[keyframe]]\nat = '
                    + "9" * 5000 + '\nstyle = "a.png"\n')
    with pytest.raises(ConfigError, match=r"show\.toml, line 5: a number of more than 4300 "
                                          r"digits") as err:
        keyframes.load(path)
    _one_line(err)


def _alarm(seconds: int):
    """Interrupts the test with TimeoutError after ``seconds`` (a quadratic step would take
    many minutes)."""
    def ring(signum, frame):
        raise TimeoutError(f"not done within {seconds} s")
    signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def test_a_hundred_thousand_keyframes_load_and_play_in_seconds(tmp_path, png):
    png("a.png", (32, 32))
    png("b.png", (32, 32), 30)
    styles = ['"a.png"', '{ "a.png" = 1, "b.png" = 2 }', '"none"']
    path = tmp_path / "long.toml"
    path.write_text("".join(f"[[keyframe]]\nat = {i / 2}\nstyle = {styles[i % 3]}\n"
                            for i in range(100_000)))
    _alarm(60)  # a few seconds here; the quadratic version took more than ten minutes
    try:
        timeline = keyframes.load(path)
        for i in range(10_000):  # a render looks up every frame
            timeline.at(Fraction(i * 5, 1))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    assert len(timeline.keyframes) == 100_000 and len(timeline.styles) == 2
    weights_, _ = timeline.at(Fraction(1, 2))  # #2: the a/b blend
    np.testing.assert_allclose(weights_, [1 / 3, 2 / 3])
    assert timeline.original_at(1) == 1.0  # #3: none keeps #2's look, shows the source


def test_keyframe_count_and_style_images_are_bounded(tmp_path, png, monkeypatch):
    for name, value in (("a.png", 0), ("b.png", 100), ("c.png", 200)):
        png(name, (32, 32), value)
    path = tmp_path / "show.toml"
    path.write_text('[[keyframe]]\nat = 0\nstyle = { "a.png" = 1, "b.png" = 1 }\n'
                    '[[keyframe]]\nat = 1\nstyle = "c.png"\n')
    monkeypatch.setattr(spec, "MAX_STYLES", 2)  # the shipped presets blend up to 2
    with pytest.raises(ConfigError, match=r"#2: more than 2 distinct style images"):
        keyframes.load(path)
    with pytest.raises(OptionError, match=r"^style given 3 times; a look blends at most 2"):
        Timeline.constant([tmp_path / n for n in ("a.png", "b.png", "c.png")])
    preset = tmp_path / "look.toml"
    preset.write_text('style = { "a.png" = 1, "b.png" = 1, "c.png" = 1 }\n')
    with pytest.raises(ConfigError, match=r"look\.toml: key 'style' names 3 images; a look "
                                          r"blends at most 2$"):
        presets.load(preset)
    monkeypatch.setattr(keyframes, "MAX_KEYFRAMES", 1)
    with pytest.raises(ConfigError, match=r"show\.toml: 2 keyframes; a file holds at most 1$"):
        keyframes.load(path)


def test_an_oversized_toml_file_is_refused_unread(tmp_path, monkeypatch):
    path = tmp_path / "big.toml"
    path.write_text("# padding\n" * 100)
    monkeypatch.setattr(tomlspec, "MAX_BYTES", 500)
    with pytest.raises(ConfigError, match=r"big\.toml: 1000 bytes; vstpipe reads TOML files of "
                                          r"up to 500 bytes"):
        tomlspec.load(path)


# --- 4i: zip bombs and oversized declarations in weight files --------------------------------


@pytest.fixture
def no_loader(monkeypatch):
    """Fails the test if a weight file reaches torch.load or the safetensors loader."""
    def refuse(*args, **kwargs):
        raise AssertionError("the file reached the loader")
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr("vstpipe.weights.safety._load_safetensors", refuse)


def test_a_zip_bomb_weight_file_is_refused_before_torch_reads_it(tmp_path, no_loader):
    bomb = tmp_path / "decoder.pth"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}))
        with archive.open("archive/data/0", "w") as member:
            for _ in range(64):
                member.write(bytes(1 << 20))  # 64 MiB of zeros: about 64 KB deflated
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ModelError, match=r"decoder\.pth: a \d+-byte archive declaring 67108\d+ "
                                         r"bytes uncompressed .* zip bomb") as err:
        weights.load_state_file(bomb)
    _one_line(err)


def test_a_legacy_pickle_declaring_huge_storages_is_refused_before_torch_reads_it(tmp_path,
                                                                                  no_loader):
    """The pre-zip torch.save format: torch allocates each declared storage before reading."""
    class Marker:
        pass

    class Saver(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", 10**12, None) \
                if isinstance(obj, Marker) else None

    path = tmp_path / "encoder.pth"
    with path.open("wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        Saver(f, protocol=2).dump({"0.weight": Marker()})
        pickle.dump(["0"], f, protocol=2)
        f.write(struct.pack("<q", 10**12) + bytes(64))
    with pytest.raises(ModelError, match=r"encoder\.pth: declares 4000000000000 bytes of "
                                         r"tensors but only \d+ bytes follow") as err:
        weights.load_state_file(path)
    _one_line(err)


@pytest.mark.parametrize("header, needle", [
    (b"", r"declares a 1152921504606846976-byte header"),
    (json.dumps({"w": {"dtype": "F32", "shape": [100000, 100000],
                       "data_offsets": [0, 40000000000]}}).encode(),
     r"tensor 'w' declares F32 \[100000, 100000\] at bytes 0\.\.40000000000 of 16"),
    (json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}).encode(),
     r"tensor 'w' declares F32 \[2, 2\] at bytes 0\.\.8 of 16"),
])
def test_safetensors_declarations_are_checked_against_the_file_size(tmp_path, no_loader,
                                                                    header, needle):
    path = tmp_path / "decoder.safetensors"
    length = len(header) if header else 1 << 60
    path.write_bytes(struct.pack("<Q", length) + header + bytes(16))
    with pytest.raises(ModelError, match=r"decoder\.safetensors: not a readable safetensors "
                                         r"file \(" + needle) as err:
        weights.load_state_file(path)
    _one_line(err)


def test_real_legacy_weights_pass_the_size_checks(tmp_path):
    """The size checks must not refuse honest files of either torch format."""
    state = random_state("uvc-lab", "encoder")
    torch.save(state, tmp_path / "zip.pth")
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    for name in ("zip.pth", "legacy.pth"):
        loaded = weights.load_state_file(tmp_path / name)
        assert all(torch.equal(loaded[k], v) for k, v in state.items())


# --- 4j: SIGTERM during models import --------------------------------------------------------


def test_sigterm_during_models_import_leaves_no_temp_file(tmp_path, vstpipe_home):
    files = save_random_weights("adain-vgg19", tmp_path / "w")
    ready = tmp_path / "ready"
    # The import is held just after its first temp file is written (a large copy, in effect),
    # then the process gets SIGTERM as a batch farm or `kill` sends it.
    script = textwrap.dedent(f"""
        import runpy, sys, time
        from pathlib import Path
        from vstpipe.weights import store
        copy = store.copy_hashing
        def held(src, dst):
            result = copy(src, dst)
            Path({str(ready)!r}).write_text(str(dst))
            time.sleep(60)
            return result
        store.copy_hashing = held
        sys.argv = ["vstpipe", "models", "import", "adain-vgg19", "--unverified",
                    {str(files["encoder"])!r}, {str(files["decoder"])!r}]
        runpy.run_module("vstpipe", run_name="__main__")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.communicate(timeout=5)
        assert Path(ready.read_text()).exists()  # the temp file is there, mid-import
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert _listing(vstpipe_home) in ([], ["models"])  # no .part, no half-made model folder
