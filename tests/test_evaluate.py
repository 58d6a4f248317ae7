"""Temporal-consistency metric: masks, warping errors, file evaluation (one render or several
under one set of flows, each flow estimator) and style distance."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from clips import make_clip
from mediatools import smooth_texture, write_lossless

from vstpipe import model
from vstpipe.errors import MediaError, OptionError
from vstpipe.evaluate import (
    EvalOptions,
    EvalReport,
    check_eval_options,
    evaluate,
    evaluate_many,
    style_distance,
    warp_errors,
)
from vstpipe.flow import DisFlow, occlusion_mask
from vstpipe.flow_estimators import DEFAULT_FLOW, ESTIMATORS
from vstpipe.images import load_style
from vstpipe.media import Frame, open_source

cv2 = pytest.importorskip("cv2")

SIZE = (96, 64)  # (W, H)
STEP = (2, 1)  # (dx, dy) pixels the camera pans per frame in the shifted clip
# 4 frames = an (8, 4) pixel shift, well within DIS's reach. The metric's mechanics are tested
# with DIS (fast); the estimators themselves below and in test_flow_estimators.py.
OPTS = EvalOptions(long_gap=4, flow="dis")


def _texture(height: int, width: int, seed: int, blur: float = 1.5) -> np.ndarray:
    """smooth_texture as uint8 RGB."""
    return np.round(smooth_texture(height, width, seed, blur) * 255).astype(np.uint8)


def _shifted(frames: int = 12, seed: int = 0, blur: float = 1.5) -> list[np.ndarray]:
    """A pan over one texture: frame i is the window at offset i * STEP (new content enters)."""
    (w, h), (dx, dy) = SIZE, STEP
    canvas = _texture(h + dy * frames, w + dx * frames, seed, blur)
    return [np.ascontiguousarray(canvas[dy * i:dy * i + h, dx * i:dx * i + w])
            for i in range(frames)]


def _noisy(frames: list[np.ndarray], amplitude: int = 12) -> list[np.ndarray]:
    """Independent noise on every frame: the flicker the metric exists to catch."""
    rng = np.random.default_rng(7)
    return [np.clip(f.astype(np.int16) + rng.integers(-amplitude, amplitude + 1, f.shape),
                    0, 255).astype(np.uint8) for f in frames]


# --- occlusion_mask ---------------------------------------------------------------------------


def test_mask_flags_a_moving_square_and_keeps_the_static_background():
    # A 16x16 square moves 5 px right from r to t over a still background. Flow of t into
    # r is (-5, 0) on the square; flow of r into t is (+5, 0) where the square was.
    h, w, top, left, step = 64, 96, 20, 40, 5
    forward = np.zeros((h, w, 2), np.float32)
    forward[top:top + 16, left:left + 16] = (-step, 0)
    backward = np.zeros((h, w, 2), np.float32)
    backward[top:top + 16, left - step:left - step + 16] = (step, 0)
    valid = occlusion_mask(forward, backward)
    assert valid.dtype == bool and valid.shape == (h, w)
    # Background the square uncovered: visible in t, hidden in r.
    assert not valid[top:top + 16, left - step:left].any()
    # Motion boundaries: the flow jumps across the square's left and right edges.
    assert not valid[top:top + 16, left - 1].any()
    assert not valid[top:top + 16, left + 15].any()
    # The square's inside and the background away from it are valid.
    assert valid[top + 1:top + 15, left + 1:left + 14].all()
    assert valid[:top - 1].all() and valid[top + 17:].all()
    assert valid[:, :left - step - 1].all() and valid[:, left + 17:].all()


def test_mask_rejects_correspondences_outside_the_frame():
    # A pan: everything in t sits 3 px further right in r, so the last 3 columns of t
    # show content r never had.
    forward = np.zeros((32, 48, 2), np.float32)
    forward[..., 0] = 3.0
    backward = -forward
    valid = occlusion_mask(forward, backward)
    assert valid[:, :-3].all()
    assert not valid[:, -3:].any()


def test_mask_with_real_flow_marks_an_occluder_as_invalid():
    h, w = 64, 96
    background = _texture(h, w, seed=1)
    square = _texture(20, 20, seed=2)

    def frame(x: int) -> np.ndarray:
        out = background.copy()
        out[22:42, x:x + 20] = square
        return cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)

    prev, cur = frame(30), frame(34)  # the square moves 4 px right; the background stays
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    valid = occlusion_mask(dis.calc(cur, prev, None), dis.calc(prev, cur, None))
    # Real flow is not exact at the edges, hence fractions rather than all/none.
    assert valid[22:42, 30:34].mean() < 0.1  # uncovered background: not in the previous frame
    assert valid[24:40, 38:50].mean() > 0.9  # inside the square, which moved as one piece
    assert valid[:, :20].mean() > 0.85 and valid[:, 66:].mean() > 0.85  # static background


def test_mask_rejects_mismatched_flows():
    with pytest.raises(ValueError, match="flows must both be"):
        occlusion_mask(np.zeros((8, 8, 2)), np.zeros((8, 9, 2)))


# --- warp_errors on arrays --------------------------------------------------------------------


def test_a_pure_pan_has_no_warping_error():
    frames = _shifted()
    errors = warp_errors(frames, frames, OPTS)
    assert errors.short < 1e-4 and errors.long < 1e-4
    assert errors.short == errors.short_source and errors.long == errors.long_source
    assert (errors.frames, errors.short_pairs, errors.long_pairs) == (12, 11, 8)
    assert errors.short_skipped == errors.long_skipped == 0


def test_per_frame_noise_raises_the_error_but_not_the_floor():
    frames = _shifted()
    clean = warp_errors(frames, frames, OPTS)
    noisy = warp_errors(frames, _noisy(frames), OPTS)
    assert noisy.short_source == clean.short_source  # the masks come from the source alone
    assert noisy.short > 50 * clean.short and noisy.long > 5 * clean.long


def test_a_scene_cut_is_skipped():
    frames = _shifted(6, seed=0) + _shifted(6, seed=5)  # two unrelated shots
    errors = warp_errors(frames, frames, OPTS)
    assert errors.short_skipped == 1 and errors.short_pairs == 10
    assert errors.short < 1e-4  # the cut's nonsense does not leak into the mean


@pytest.mark.parametrize("flow", list(ESTIMATORS))
def test_a_cut_to_other_colours_is_skipped_under_every_estimator(flow: str):
    """The histogram test skips a cut whatever the estimator's mask says (DeepFlow's passes
    most pixels of a cut); long-term pairs across it are skipped too."""
    first = _shifted(6, seed=0, blur=3.0)
    second = [np.ascontiguousarray(f[..., ::-1] // 3) for f in _shifted(6, seed=5, blur=3.0)]
    frames = first + second  # a cut at frame 6 to a darker shot with swapped channels
    opts = EvalOptions(long_gap=3, flow=flow)
    errors = warp_errors(frames, _noisy(frames), opts)
    assert (errors.short_skipped, errors.short_pairs) == (1, 10)
    assert (errors.long_skipped, errors.long_pairs) == (3, 6)  # t = 6, 7, 8 reach across
    # With the cut threshold at its maximum only the mask decides, and DeepFlow's passes the
    # cut: the reason for the histogram test. (Sparse-to-dense's mask keeps close to the 25%
    # of the cut's pixels the skip needs: which side it falls on varied between CI runs, so
    # it is not held to either here.)
    loose = warp_errors(frames, frames, EvalOptions(long_gap=3, flow=flow, cut_threshold=1.0))
    if flow != "sparsetodense":
        assert loose.short_skipped == (0 if flow == "deepflow" else 1)


def test_warp_errors_needs_two_frames_and_equal_counts():
    frames = _shifted(3)
    with pytest.raises(ValueError, match="at least 2 frames"):
        warp_errors(frames[:1], frames[:1], OPTS)
    with pytest.raises(ValueError, match="source has 3 frames but stylized has 2"):
        warp_errors(frames, frames[:2], OPTS)


def test_float_and_16_bit_frames_give_the_same_error_as_8_bit():
    frames = _shifted(4)
    ref = warp_errors(frames, _noisy(frames), OPTS)
    as_float = [f.astype(np.float32) / 255 for f in _noisy(frames)]
    as_16 = [f.astype(np.uint16) * 257 for f in frames]
    # Equal up to float32 rounding of the conversions.
    assert warp_errors(frames, as_float, OPTS).short == pytest.approx(ref.short, rel=1e-4)
    assert warp_errors(as_16, _noisy(frames), OPTS).short == pytest.approx(ref.short, rel=1e-4)


# --- evaluate on files ------------------------------------------------------------------------


def test_evaluate_a_lossless_pan_against_itself(tmp_path: Path):
    video = write_lossless(tmp_path / "pan.mkv", _shifted())
    report = evaluate(video, video, OPTS)
    assert report.frames == 12
    assert report.warp_error < 1e-4 and report.long_term < 1e-4
    assert report.ratio == report.long_term_ratio == 1.0
    assert report.style_distance is None


def test_evaluate_a_video_against_itself_gives_ratio_one(tmp_path: Path):
    video = make_clip(tmp_path / "clip.mp4", size=SIZE, frames=12)
    report = evaluate(video, video, OPTS)
    assert report.ratio == 1.0 and report.long_term_ratio == 1.0
    assert report.warp_error == report.warp_error_source > 0.0


def test_evaluate_injected_noise_raises_the_ratio(tmp_path: Path):
    frames = _shifted()
    source = write_lossless(tmp_path / "source.mkv", frames)
    noisy = write_lossless(tmp_path / "noisy.mkv", _noisy(frames))
    report = evaluate(source, noisy, OPTS)
    assert report.ratio > 50 and report.long_term_ratio > 5


def test_evaluate_compares_at_the_stylized_size(tmp_path: Path):
    frames = _shifted()
    source = write_lossless(tmp_path / "source.mkv", frames)
    big = [cv2.resize(f, (144, 96), interpolation=cv2.INTER_LINEAR) for f in frames]
    stylized = write_lossless(tmp_path / "big.mkv", big)
    # Source upscaled to the stylized size, and both capped at max_side: either way the
    # two are the same pan, so the ratio stays near 1.
    for max_side in (None, 64):
        report = evaluate(source, stylized, EvalOptions(long_gap=4, max_side=max_side,
                                                        flow="dis"))
        assert report.frames == 12
        assert 0.5 < report.ratio < 2.0, max_side


def test_frame_count_mismatch_is_a_one_line_media_error(tmp_path: Path):
    twelve = make_clip(tmp_path / "twelve.mp4", size=SIZE, frames=12)
    nine = make_clip(tmp_path / "nine.mp4", size=SIZE, frames=9)
    with pytest.raises(MediaError) as info:
        evaluate(twelve, nine, OPTS)
    message = str(info.value)
    assert "\n" not in message
    assert f"{twelve} has 12 frames" in message and f"{nine} has 9" in message


def test_a_single_frame_video_is_a_media_error(tmp_path: Path):
    video = make_clip(tmp_path / "one.mp4", size=SIZE, frames=1)
    with pytest.raises(MediaError, match="only 1 frame"):
        evaluate(video, video, OPTS)


def test_report_json_has_the_documented_keys_and_no_nan(tmp_path: Path):
    video = make_clip(tmp_path / "short.mp4", size=SIZE, frames=4)
    report = evaluate(video, video, EvalOptions(long_gap=10, flow="dis"))  # too short for it
    assert math.isnan(report.long_term) and math.isnan(report.long_term_ratio)
    data = report.to_json()
    json.dumps(data, allow_nan=False)
    assert {"warp_error", "warp_error_source", "ratio", "long_term_ratio"} <= data.keys()
    assert data["long_term_ratio"] is None and data["ratio"] == 1.0
    assert data["flow"] == "dis" and report.flow == "dis"
    assert "style_distance" not in data
    with_style = EvalReport(**{**report.__dict__, "style_distance": 0.5}).to_json()
    assert with_style["style_distance"] == 0.5


# --- style distance ---------------------------------------------------------------------------


def test_style_distance_is_zero_for_the_style_itself(style_png: Path, net: model.StyleNet):
    opts = EvalOptions(style_size=64, max_side=None, style_every=1)
    style = load_style(style_png, 64)[0].permute(1, 2, 0).numpy()
    own = np.round(style * 255).astype(np.uint8)
    other = _shifted(2)
    assert style_distance([own, own], style_png, net, opts) < 0.01
    assert style_distance(other, style_png, net, opts) > 0.1


def test_evaluate_reports_the_style_distance(tmp_path: Path, style_png: Path,
                                             net: model.StyleNet):
    video = make_clip(tmp_path / "clip.mp4", size=SIZE, frames=12)
    opts = EvalOptions(long_gap=4, style_every=5, style_size=64, flow="dis")
    report = evaluate(video, video, opts, style=style_png, net=net)
    assert report.style_distance is not None and report.style_distance > 0
    expected = style_distance(_decoded(video), style_png, net, opts)
    assert report.style_distance == pytest.approx(expected)
    assert report.to_json()["style_distance"] == report.style_distance
    with pytest.raises(OptionError, match="pass net with style"):
        evaluate(video, video, opts, style=style_png)


def test_a_blend_is_measured_against_its_weighted_statistics(tmp_path: Path, style_png: Path,
                                                             net: model.StyleNet):
    from PIL import Image

    flat = tmp_path / "flat.png"
    Image.new("RGB", (64, 64), (30, 160, 90)).save(flat)
    opts = EvalOptions(style_size=64, max_side=None, style_every=1)
    frames = _shifted(2)
    alone = style_distance(frames, style_png, net, opts)
    assert style_distance(frames, [(style_png, 2.0)], net, opts) == pytest.approx(alone)
    assert style_distance(frames, [(style_png, 1.0), (flat, 0.0)], net, opts) == \
        pytest.approx(alone)
    blend = style_distance(frames, [(style_png, 1.0), (flat, 1.0)], net, opts)
    other = style_distance(frames, flat, net, opts)
    assert blend != pytest.approx(alone) and blend != pytest.approx(other)


def _decoded(path: Path) -> list[np.ndarray]:
    with open_source(path) as source:
        return [item.rgb for item in source.items() if isinstance(item, Frame)]


# --- options and dependencies -----------------------------------------------------------------


@pytest.mark.parametrize("opts, name", [
    (EvalOptions(long_gap=1), "long_gap"),
    (EvalOptions(style_every=0), "style_every"),
    (EvalOptions(max_side=8), "max_side"),
    (EvalOptions(min_valid=1.0), "min_valid"),
    (EvalOptions(long_gap=True), "long_gap"),  # type: ignore[arg-type]
    (EvalOptions(flow="raft"), "flow 'raft': unknown flow estimator; use one of dis, tvl1"),
])
def test_bad_options_name_the_value(opts: EvalOptions, name: str):
    with pytest.raises(OptionError, match=name):
        check_eval_options(opts)


def test_missing_opencv_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    frames = _shifted(2)
    with pytest.raises(OptionError, match="pip install opencv-contrib-python-headless"):
        warp_errors(frames, frames, OPTS)
    with pytest.raises(OptionError, match="opencv-contrib-python-headless"):
        evaluate(tmp_path / "missing.mp4", tmp_path / "missing.mp4", EvalOptions())


def test_style_stats_run_without_gradients(style_png: Path, net: model.StyleNet):
    # The meter must not build autograd graphs: that would grow memory per frame.
    opts = EvalOptions(style_size=64, max_side=None, style_every=1)
    with torch.enable_grad():
        assert math.isfinite(style_distance(_shifted(1), style_png, net, opts))


def test_eval_command_json_against_itself(tmp_path):
    import json

    from typer.testing import CliRunner

    from vstpipe.cli import app

    src = make_clip(tmp_path / "in.mp4", size=(96, 64), frames=12)
    result = CliRunner().invoke(app, ["eval", str(src), str(src), "--json", "--long-gap", "3",
                                      "--flow", "dis"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"warp_error", "warp_error_source", "ratio", "long_term_ratio"} <= set(report)
    assert report["ratio"] == 1.0 and report["long_term_ratio"] == 1.0


# --- every estimator, and several renders under one set of flows ------------------------------


def _pan_renders(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A lossless 6-frame pan (2 px right, 1 down per frame) and three renders of it: the pan
    itself, a consistent restyle (inverted colours: the same squared differences, so the same
    error) and a flickering one (independent noise on every frame)."""
    frames = _shifted(6, blur=3.0)  # smoother than DIS needs: DeepFlow on 96x64 needs it
    source = write_lossless(tmp_path / "pan.mkv", frames)
    renders = [source, write_lossless(tmp_path / "inverted.mkv", [255 - f for f in frames]),
               write_lossless(tmp_path / "flicker.mkv", _noisy(frames))]
    return source, renders


@pytest.mark.parametrize("flow", list(ESTIMATORS))
def test_a_known_pan_scores_zero_and_flicker_scores_worse_under_every_estimator(
        tmp_path: Path, flow: str):
    source, renders = _pan_renders(tmp_path)
    itself, inverted, flicker = evaluate_many(source, renders, EvalOptions(long_gap=2, flow=flow))
    for report in (itself, inverted, flicker):
        assert report.flow == flow and report.frames == 6
        assert report.skipped_pairs == report.long_skipped_pairs == 0
    # The flow explains the pan: the source's own error (the floor) is ~0, and so are those
    # of the flicker-free renders, whose ratios are 1.
    assert itself.warp_error_source < 1e-5 and itself.long_term_source < 1e-4
    assert itself.warp_error == itself.warp_error_source and itself.ratio == 1.0
    assert inverted.warp_error < 1e-5 and inverted.long_term < 1e-4
    assert inverted.ratio == pytest.approx(1, abs=1e-3)
    assert inverted.long_term_ratio == pytest.approx(1, abs=1e-3)
    # Noise of +-12 levels: about 1.6e-3 whatever the flow, far above the floor.
    assert flicker.warp_error > 1e-3 and flicker.long_term > 1e-3
    assert flicker.ratio > 20 and flicker.long_term_ratio > 20


def test_several_renders_give_the_numbers_of_separate_runs_from_flows_computed_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, style_png: Path, net: model.StyleNet):
    source, renders = _pan_renders(tmp_path)
    calls = []
    pair = DisFlow.pair

    def counted(self: DisFlow, current: np.ndarray, reference: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        calls.append(current.shape)
        return pair(self, current, reference)

    monkeypatch.setattr(DisFlow, "pair", counted)
    opts = EvalOptions(long_gap=2, flow="dis", style_every=2, style_size=64)
    alone = [evaluate(source, render, opts, style=style_png, net=net) for render in renders]
    assert len(calls) == 3 * (5 + 4)  # per run: 5 short pairs and 4 long ones
    calls.clear()
    together = evaluate_many(source, renders, opts, style=style_png, net=net)
    assert len(calls) == 5 + 4  # once for all three renders
    assert together == alone  # every figure, the style distance included
    assert together[2].ratio > 20 and together[2].style_distance != together[0].style_distance


def test_renders_of_different_evaluation_sizes_are_one_line_error(tmp_path: Path):
    frames = _shifted(4)
    source = write_lossless(tmp_path / "source.mkv", frames)
    big = write_lossless(tmp_path / "big.mkv", [cv2.resize(f, (144, 96)) for f in frames])
    opts = EvalOptions(long_gap=2, flow="dis", max_side=None)
    with pytest.raises(MediaError) as info:
        evaluate_many(source, [source, big], opts)
    assert str(info.value) == (
        f"{big}: evaluated at 144x96, the first render at 96x64; renders compared in one run "
        f"need one evaluation size: set max_side to at most 96 if they share an aspect ratio, "
        f"or evaluate them one at a time")
    assert "--max-side" in info.value.named(lambda s: "--" + s.replace("_", "-"))
    # As suggested: both scaled to 96x64, where the enlarged copy is the pan again, up to the
    # resampling (the floor of an exact pan is ~1e-6, so compare errors, not ratios).
    small, large = evaluate_many(source, [source, big], EvalOptions(long_gap=2, flow="dis",
                                                                   max_side=96))
    assert small.ratio == 1.0 and large.frames == 4
    assert large.warp_error < 1e-4 and large.long_term < 1e-4


def test_a_render_of_another_length_is_named(tmp_path: Path):
    twelve = make_clip(tmp_path / "twelve.mp4", size=SIZE, frames=12)
    nine = make_clip(tmp_path / "nine.mp4", size=SIZE, frames=9)
    with pytest.raises(MediaError) as info:
        evaluate_many(twelve, [twelve, nine], OPTS)
    assert str(info.value) == (f"frame counts differ: {twelve} has 12 frames, {nine} has 9; "
                               f"compare a video with the source it was made from")
    with pytest.raises(OptionError, match="give at least one stylized video"):
        evaluate_many(twelve, [], OPTS)


def test_the_default_flow_is_tvl1_and_the_report_names_it(tmp_path: Path):
    assert EvalOptions().flow == DEFAULT_FLOW == "tvl1"
    video = make_clip(tmp_path / "clip.mp4", size=(64, 48), frames=3)
    report = evaluate(video, video, EvalOptions(long_gap=2))
    assert report.flow == "tvl1" and report.to_json()["flow"] == "tvl1"
