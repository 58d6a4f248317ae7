import numpy as np
import pytest
import torch
from conftest import MEDIA, UVC_DIR, needs_media, needs_uvc
from fakes import random_state

from vstpipe import model, ops
from vstpipe.errors import LayoutError
from vstpipe.stylize import Stylizer


def _net(arch: str) -> model.StyleNet:
    return model.build(arch, {r: random_state(arch, r, i)
                              for i, r in enumerate(("encoder", "decoder"))})


def test_adain_layouts_match_the_published_files():
    enc = model.published_layout("adain-vgg19", "encoder")
    dec = model.published_layout("adain-vgg19", "decoder")
    assert next(iter(enc)) == "0.weight" and list(enc)[-1] == "51.bias" and len(enc) == 34  # 17 convs
    assert enc["0.weight"] == (3, 3, 1, 1) and enc["29.weight"] == (512, 256, 3, 3)
    assert next(iter(dec)) == "1.weight" and list(dec)[-1] == "28.bias" and len(dec) == 18
    assert dec["1.weight"] == (256, 512, 3, 3) and dec["28.weight"] == (3, 64, 3, 3)


def test_uvc_layouts_match_the_published_files():
    enc = model.published_layout("uvc-lab", "encoder")
    dec = model.published_layout("uvc-lab", "decoder")
    assert enc["downsample.1.weight"] == (256, 256, 1, 1) and enc["conv1.weight"] == (3, 3, 1, 1)
    assert dec["upsample.1.weight"] == (256, 256, 1, 1) and dec["conv11.weight"] == (3, 64, 3, 3)


@pytest.mark.parametrize("mutate, needle", [
    (lambda s: s.pop("5.weight"), "missing key '5.weight'"),
    (lambda s: s.__setitem__("5.weight", torch.zeros(1, 2)), "key '5.weight' has shape [1, 2]"),
    (lambda s: s.__setitem__("99.weight", torch.zeros(1)), "unexpected key '99.weight'"),
])
def test_layout_mismatch_names_the_first_difference(mutate, needle):
    state = random_state("adain-vgg19", "encoder")
    mutate(state)
    with pytest.raises(LayoutError, match=r"^w\.pth: " + ".*" + needle.replace("[", r"\[")
                       .replace("]", r"\]")):
        model.check_layout("adain-vgg19", "encoder", state, "w.pth")


@pytest.mark.parametrize("arch, channels", [("adain-vgg19", 512), ("uvc-lab", 256)])
def test_networks_keep_multiple_of_8_sizes(arch: str, channels: int):
    net = _net(arch)
    x = torch.rand(2, 3, 40, 56)
    feat = net.encode(x)
    assert feat.shape == (2, channels, 5, 7)
    assert net.decode(feat).shape == (2, 3, 40, 56)


@pytest.mark.parametrize("arch", ["adain-vgg19", "uvc-lab"])
def test_alpha_zero_is_decoder_of_encoder(arch: str):
    net = _net(arch)
    x = torch.rand(2, 3, 32, 48)
    stylizer = Stylizer(net, torch.device("cpu"), torch.float32)
    style = stylizer.style_stats(torch.rand(1, 3, 64, 64))
    out = stylizer(x, style.mean, style.std, alpha=0.0)
    with torch.no_grad():
        expected = net.decode(net.encode(x))
    torch.testing.assert_close(out, expected)
    full = stylizer(x, style.mean, style.std, alpha=1.0)
    with torch.no_grad():
        feat = net.encode(x)
        torch.testing.assert_close(full, net.decode(ops.adain_stats(feat, style.mean, style.std)))


def _real_uvc() -> model.StyleNet:
    states = {r: torch.load(UVC_DIR / f, map_location="cpu", weights_only=True)
              for r, f in model.FAMILIES["uvc-lab"].files.items()}
    return model.build("uvc-lab", states)


@needs_uvc
@needs_media
def test_real_uvc_autoencoder_reconstructs_a_photo():
    """The real weights only reconstruct well when layout, padding and Lab scaling are right."""
    from vstpipe.images import load_rgb

    img = load_rgb(MEDIA / "fruits.jpg")[:256, :256]
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        net = _real_uvc()
        y = net.decode(net.encode(x)).clamp(0, 1)
    mse = float(((y - x) ** 2).mean())
    psnr = 10 * np.log10(1 / mse)
    assert psnr > 20, psnr


@pytest.mark.requires_cuda
@pytest.mark.parametrize("arch", ["adain-vgg19", "uvc-lab"])
def test_cuda_fp16_autocast_follows_cpu_fp32(arch: str):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 96)
    style = torch.rand(1, 3, 64, 64)
    outs = []
    for device, dtype in ((torch.device("cpu"), torch.float32),
                          (torch.device("cuda"), torch.float16)):
        stylizer = Stylizer(_net(arch), device, dtype)
        st = stylizer.style_stats(style.to(device))
        outs.append(stylizer(x.to(device), st.mean, st.std).cpu())
    scale = outs[0].abs().max()
    assert ((outs[1] - outs[0]).abs().max() / scale).item() < 0.05
