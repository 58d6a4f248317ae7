"""weights.registry: the registry's names, URLs, checksums and published file names;
unknown names list the valid ones."""

from __future__ import annotations

import pytest

from vstpipe import model, weights
from vstpipe.errors import ModelError

pytestmark = pytest.mark.usefixtures("offline_home")  # conftest.py


def test_registry_names_urls_and_published_file_names() -> None:
    assert list(weights.REGISTRY) == ["adain-vgg19", "uvc-lab", "lite", "uvc-tracker"]
    for name, ms in weights.REGISTRY.items():
        if ms.embedded:  # ships inside the package: tests/test_weights_auto.py
            continue
        assert ms.name == name and ms.arch in model.FAMILIES and ms.licence == "MIT"
        assert {f.role: f.name for f in ms.files} == dict(model.FAMILIES[ms.arch].files)
        for f in ms.files:
            assert f.url.startswith("https://") and f.url.endswith("/" + f.name)
            assert f.sha256 is None or len(f.sha256) == 64
    adain = {f.role: f.url for f in weights.spec("adain-vgg19").files}
    assert adain["decoder"] == \
        "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/decoder.pth"
    uvc = {f.role: f for f in weights.spec("uvc-lab").files}
    assert uvc["encoder"].url == \
        "https://github.com/Liusifei/UVC/raw/master/weights/encoder_single_gpu.pth"
    assert (uvc["encoder"].size, uvc["decoder"].size) == (2486942, 2485612)
    assert uvc["decoder"].sha256 == \
        "7b255e36afabc7679413c76fb5eb602f95a0fbe1e55056b870c6d9b79e6e29f0"
    (tracker,) = weights.spec("uvc-tracker").files
    assert tracker.url == \
        "https://github.com/Liusifei/UVC/raw/master/weights/checkpoint_latest.pth.tar"
    assert tracker.git_sha1 == "8e2c3c43d05451f0008312dd84e8555b4d1a8eb0"


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'vgg'; choose from adain-vgg19, uvc-lab"):
        weights.spec("vgg")
    with pytest.raises(ModelError, match=r"choose from adain-vgg19, uvc-lab"):
        weights.resolve("no-such-model", offline=True)
