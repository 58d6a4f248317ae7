"""Module tests for stylize.py: device and precision resolution, the Stylizer on a tiny random
network (exact identities of strength, blends and the statistics hook)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from fakes import random_state

from vstpipe import model, ops
from vstpipe.errors import OptionError
from vstpipe.stylize import (
    StyleStats,
    Stylizer,
    resolve_device,
    resolve_precision,
)

CPU = torch.device("cpu")
CUDA = torch.device("cuda")
ARCH = "uvc-lab"  # the smaller family; its Lab edges make decode(encode(x)) non-trivial
CHANNELS = model.FAMILIES[ARCH].channels


def _flag(setting: str) -> str:
    return "--" + setting.replace("_", "-")


def _rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on these tiny tensors a second thread only adds synchronisation,
    which on a shared, loaded machine made each call about ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def net() -> model.StyleNet:
    return model.build(ARCH, {role: random_state(ARCH, role, i)
                              for i, role in enumerate(("encoder", "decoder"))})


@pytest.fixture(scope="module")
def stylizer(net: model.StyleNet) -> Stylizer:
    return Stylizer(net, CPU, torch.float32)


@pytest.fixture(scope="module")
def content() -> torch.Tensor:
    return _rand(3, 3, 32, 24, seed=1)  # (B, 3, H, W): H and W multiples of 8


@pytest.fixture(scope="module")
def styles(stylizer: Stylizer) -> tuple[StyleStats, StyleStats]:
    return (stylizer.style_stats(_rand(1, 3, 40, 48, seed=2)),
            stylizer.style_stats(_rand(1, 3, 32, 32, seed=3) ** 3))


# --- resolve_device ---------------------------------------------------------------------------


def test_auto_device_is_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == CUDA
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == CPU


def test_cpu_device_is_the_cpu():
    assert resolve_device("cpu") == CPU


def test_unknown_device_is_refused_naming_the_setting_and_the_choices():
    with pytest.raises(OptionError) as err:
        resolve_device("gpu")
    assert str(err.value) == "device 'gpu' is not valid; choose from auto, cpu, cuda"
    assert err.value.named(_flag).startswith("--device 'gpu' is not valid")


def test_cuda_without_a_cuda_device_says_so_and_offers_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(OptionError) as err:
        resolve_device("cuda")
    assert err.value.named(_flag) == ("--device cuda: no CUDA device is available here; use "
                                      "--device cpu")


# --- resolve_precision ------------------------------------------------------------------------


def test_auto_precision_is_measured_on_the_cpu_and_fp16_on_cuda():
    assert resolve_precision("auto", CPU) is None
    assert resolve_precision("auto", CUDA) is torch.float16


@pytest.mark.parametrize("name, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
@pytest.mark.parametrize("device", [CPU, CUDA])
def test_named_precisions_map_to_their_dtype(name: str, dtype: torch.dtype, device):
    assert resolve_precision(name, device) is dtype


def test_fp16_is_for_cuda_only():
    assert resolve_precision("fp16", CUDA) is torch.float16
    with pytest.raises(OptionError) as err:
        resolve_precision("fp16", CPU)
    assert err.value.named(_flag) == ("--precision fp16 needs --device cuda; use bf16 or fp32 "
                                      "on the CPU")


def test_unknown_precision_is_refused_naming_the_setting():
    with pytest.raises(OptionError) as err:
        resolve_precision("int8", CPU)
    assert err.value.named(_flag) == ("--precision 'int8' is not valid; choose from auto, fp32, "
                                      "bf16, fp16")


# --- Stylizer ---------------------------------------------------------------------------------


def test_fp32_stylizer_keeps_fp32_channels_last_weights(stylizer: Stylizer):
    params = list(stylizer.net.parameters())
    assert {p.dtype for p in params} == {torch.float32}
    convs = [p for p in params if p.dim() == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)


def test_style_stats_are_float32_channel_statistics_of_the_features(stylizer: Stylizer):
    images = _rand(2, 3, 40, 32, seed=4)
    stats = stylizer.style_stats(images)
    assert stats.mean.shape == stats.std.shape == (2, CHANNELS, 1, 1)
    assert stats.mean.dtype == stats.std.dtype == torch.float32
    feat = stylizer.encode(images)
    assert feat.shape == (2, CHANNELS, 5, 4) and feat.dtype == torch.float32
    mean, std = ops.mean_std(feat)
    torch.testing.assert_close(stats.mean, mean, rtol=0, atol=0)
    torch.testing.assert_close(stats.std, std, rtol=0, atol=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.mean = mean  # type: ignore[misc]


def test_output_keeps_the_content_shape_in_float32(stylizer, content, styles):
    out = stylizer(content, styles[0].mean, styles[0].std)
    assert out.shape == content.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.std() > 0.01  # a picture, not one colour
    assert not torch.allclose(out, stylizer(content, styles[1].mean, styles[1].std), atol=1e-3)


def test_alpha_zero_decodes_the_contents_own_features(net, stylizer, content, styles):
    out = stylizer(content, styles[0].mean, styles[0].std, alpha=0.0)
    with torch.no_grad():
        expected = net.decode(net.encode(content))
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_alpha_one_is_adain_with_the_target_statistics(net, stylizer, content, styles):
    mean, std = styles[0].mean, styles[0].std
    with torch.no_grad():
        expected = net.decode(ops.adain_stats(net.encode(content), mean, std))
    # Up to the rounding of C + 1 * (T - C), which is not exactly T in floating point.
    torch.testing.assert_close(stylizer(content, mean, std, alpha=1.0), expected)


def test_alpha_per_frame_equals_each_frames_float_alpha(stylizer, content, styles):
    alphas = (0.0, 0.4, 1.0)
    mean, std = styles[0].mean, styles[0].std
    per_frame = stylizer(content, mean, std, alpha=torch.tensor(alphas).view(3, 1, 1, 1))
    for i, alpha in enumerate(alphas):
        torch.testing.assert_close(per_frame[i], stylizer(content, mean, std, alpha=alpha)[i],
                                   rtol=0, atol=0)
    assert not torch.allclose(per_frame[0], per_frame[2], atol=1e-3)  # alpha reached the frames


def _stacked(styles: tuple[StyleStats, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([s.mean for s in styles]), torch.stack([s.std for s in styles])


def test_a_blend_weighted_one_and_zero_is_the_single_style(stylizer, content, styles):
    mean, std = ops.blend_stats(*_stacked(styles), torch.tensor([1.0, 0.0]))
    blended = stylizer(content, mean, std, alpha=0.7)
    single = stylizer(content, styles[0].mean, styles[0].std, alpha=0.7)
    torch.testing.assert_close(blended, single, rtol=0, atol=0)


def test_a_blend_per_frame_gives_each_frame_its_styles_statistics(stylizer, content, styles):
    weights = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 3.0]])  # (K, B): A, B, 1:3 of A and B
    mean, std = ops.blend_stats(*_stacked(styles), weights)
    assert mean.shape == (3, CHANNELS, 1, 1)
    out = stylizer(content, mean, std)
    for i, style in enumerate(styles):
        torch.testing.assert_close(out[i], stylizer(content, style.mean, style.std)[i],
                                   rtol=0, atol=0)
    quarter = (0.25 * styles[0].mean + 0.75 * styles[1].mean,
               0.25 * styles[0].std + 0.75 * styles[1].std)
    torch.testing.assert_close(out[2], stylizer(content, *quarter)[2])


def test_own_stats_hook_of_the_features_own_statistics_changes_nothing(stylizer, content, styles):
    seen = []

    def hook(feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(feat)
        return ops.mean_std(feat)

    mean, std = styles[0].mean, styles[0].std
    hooked = stylizer(content, mean, std, alpha=0.8, own_stats=hook)
    torch.testing.assert_close(hooked, stylizer(content, mean, std, alpha=0.8), rtol=0, atol=0)
    (feat,) = seen
    torch.testing.assert_close(feat, stylizer.encode(content), rtol=0, atol=0)


def test_own_stats_hook_replaces_the_contents_statistics(net, stylizer, content, styles):
    mean, std = styles[0].mean, styles[0].std

    def smoothed(feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        own_mean, own_std = ops.mean_std(feat)
        return own_mean.mean(0, keepdim=True), own_std * 2  # e.g. statistics shared over time

    out = stylizer(content, mean, std, own_stats=smoothed)
    with torch.no_grad():
        feat = net.encode(content)
        expected = net.decode(ops.adain_stats(feat, mean, std, smoothed(feat)))
    torch.testing.assert_close(out, expected)  # up to the rounding of C + 1 * (T - C)
    assert not torch.allclose(out, stylizer(content, mean, std), atol=1e-3)


def test_preserve_color_keeps_the_contents_chroma_and_the_stylized_luma(stylizer, content,
                                                                         styles):
    mean, std = styles[1].mean, styles[1].std
    plain = stylizer(content, mean, std)
    kept = stylizer(content, mean, std, preserve_color=True)
    assert kept.shape == content.shape and kept.dtype == torch.float32
    torch.testing.assert_close(ops.luma_chroma(kept)[1], ops.luma_chroma(content)[1],
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ops.luma_chroma(kept)[0], ops.luma_chroma(plain)[0],
                               rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ops.luma_chroma(plain)[1], ops.luma_chroma(content)[1], atol=1e-2)


def test_bf16_stylizer_stores_bf16_weights_and_answers_in_float32(net, content, styles):
    fast = Stylizer(copy.deepcopy(net), CPU, torch.bfloat16)
    assert {p.dtype for p in fast.net.parameters()} == {torch.bfloat16}
    out = fast(content[:1], styles[0].mean, styles[0].std)
    assert out.dtype == torch.float32 and fast.encode(content[:1]).dtype == torch.float32
    exact = Stylizer(net, CPU, torch.float32)(content[:1], styles[0].mean, styles[0].std)
    assert (out - exact).abs().max() < 0.25  # the same picture, in 8 bits of mantissa


@pytest.mark.requires_cuda
def test_fp16_on_cuda_runs_autocast_over_fp32_weights(net, content, styles):
    fast = Stylizer(copy.deepcopy(net), CUDA, torch.float16)
    assert {p.dtype for p in fast.net.parameters()} == {torch.float32}
    out = fast(content.to(CUDA), styles[0].mean.to(CUDA), styles[0].std.to(CUDA))
    assert out.dtype == torch.float32 and out.device.type == "cuda"
    exact = Stylizer(copy.deepcopy(net), CPU, torch.float32)(content, styles[0].mean,
                                                             styles[0].std)
    assert (out.cpu() - exact).abs().max() < 0.1
