"""weights.install: importing published files (roles found by their layouts, checksums,
--unverified), on random weights; the real UVC files when present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import UVC_DIR, needs_uvc
from fakes import random_state
from weightstools import cache_files, sha256_of, unpublished

from vstpipe import model, weights
from vstpipe.errors import ChecksumError, LayoutError, ModelError

pytestmark = pytest.mark.usefixtures("offline_home")  # conftest.py




def test_tracker_checkpoint_import_checks_the_git_blob_id(tmp_path: Path,
                                                          vstpipe_home: Path) -> None:
    from fakes import save_random_tracker

    ckpt = save_random_tracker(tmp_path / "checkpoint_latest.pth.tar")
    with pytest.raises(ChecksumError, match="git blob id"):
        weights.import_files("uvc-tracker", [ckpt])
    weights.import_files("uvc-tracker", [ckpt], unverified=True)
    manifest = json.loads((weights.model_dir("uvc-tracker") / weights.MANIFEST).read_text())
    assert manifest["files"]["checkpoint_latest.pth.tar"]["published"] is False
    state = weights.load_states(weights.resolve("uvc-tracker", offline=True))["tracker"]
    assert len(state) == 148 and not any(k.startswith("module.") for k in state)
    with pytest.raises(ModelError, match="not a stylization model"):
        weights.load(weights.resolve("uvc-tracker", offline=True))


def test_import_both_files_at_once(adain_random: dict[str, Path], tmp_path: Path) -> None:
    # names that say nothing: the roles come from the layouts
    enc, dec = tmp_path / "a.pth", tmp_path / "b.pth"
    enc.write_bytes(adain_random["encoder"].read_bytes())
    dec.write_bytes(adain_random["decoder"].read_bytes())
    folder = weights.import_files("adain-vgg19", [dec, enc], model=unpublished("adain-vgg19"))

    assert cache_files("adain-vgg19") == ["decoder.pth", weights.MANIFEST, "vgg_normalised.pth"]
    manifest = json.loads((folder / weights.MANIFEST).read_text())["files"]
    assert manifest["vgg_normalised.pth"]["role"] == "encoder"
    assert manifest["vgg_normalised.pth"]["sha256"] == sha256_of(enc)
    assert manifest["decoder.pth"]["source"] == str(dec.resolve())
    assert weights.status("adain-vgg19").installed
    assert weights.status("adain-vgg19").size == enc.stat().st_size + dec.stat().st_size


def test_import_one_file_at_a_time(uvc_random: dict[str, Path]) -> None:
    ms = unpublished("uvc-lab")
    weights.import_files("uvc-lab", [uvc_random["decoder"]], model=ms)
    assert not weights.status("uvc-lab").installed
    weights.import_files("uvc-lab", [uvc_random["encoder"]], model=ms)
    assert weights.status("uvc-lab").installed
    manifest = json.loads((weights.model_dir("uvc-lab") / weights.MANIFEST).read_text())
    assert sorted(manifest["files"]) == ["decoder_single_gpu.pth", "encoder_single_gpu.pth"]


def test_import_random_files_are_not_the_published_ones(uvc_random: dict[str, Path],
                                                        adain_random: dict[str, Path]) -> None:
    with pytest.raises(ChecksumError, match=r"not the published file; use `--model DIR`"):
        weights.import_files("uvc-lab", list(uvc_random.values()))
    assert cache_files("uvc-lab") == []
    if all(f.sha256 is None and f.size is None for f in weights.spec("adain-vgg19").files):
        pytest.skip("the registry has no published sha256 for adain-vgg19")
    with pytest.raises(ChecksumError, match=r"not the published file"):
        weights.import_files("adain-vgg19", list(adain_random.values()))
    assert cache_files("adain-vgg19") == []


def test_import_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nope.pth: no such file; expected the uvc-lab files "
                                         r"encoder_single_gpu.pth, decoder_single_gpu.pth"):
        weights.import_files("uvc-lab", [tmp_path / "nope.pth"])


@pytest.mark.parametrize(("change", "message"), [
    ("missing", r"missing key 'conv1.weight' for the uvc-lab encoder"),
    ("shape", r"key 'conv2.weight' has shape \[64, 3, 1, 1\], expected \[64, 3, 3, 3\]"),
    ("extra", r"unexpected key 'extra.weight' for the uvc-lab encoder"),
])
def test_layout_mismatch_names_the_first_bad_key(tmp_path: Path, change: str,
                                                 message: str) -> None:
    state = random_state("uvc-lab", "encoder")
    if change == "missing":
        del state["conv1.weight"]
    elif change == "shape":
        state["conv2.weight"] = torch.zeros(64, 3, 1, 1)
    else:
        state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "encoder_single_gpu.pth"  # the name says which role to compare against
    torch.save(state, path)
    with pytest.raises(LayoutError, match=message) as info:
        weights.import_files("uvc-lab", [path])
    assert str(info.value).startswith(str(path))
    assert cache_files("uvc-lab") == []


def test_layout_mismatch_without_a_telling_name_uses_the_closest_role(tmp_path: Path) -> None:
    state = random_state("uvc-lab", "decoder")
    del state["conv11.bias"]
    torch.save(state, tmp_path / "finetuned.pth")
    with pytest.raises(LayoutError, match=r"missing key 'conv11.bias' for the uvc-lab decoder"):
        weights.import_files("uvc-lab", [tmp_path / "finetuned.pth"])


@pytest.mark.shared
@needs_uvc
def test_real_uvc_weights_import_verify_and_load() -> None:
    files = [UVC_DIR / "encoder_single_gpu.pth", UVC_DIR / "decoder_single_gpu.pth"]
    weights.import_files("uvc-lab", files)
    results = weights.verify("uvc-lab")
    assert [r.ok for r in results] == [True, True], [r.message for r in results]
    net = weights.load(weights.resolve("uvc-lab", offline=True))
    assert isinstance(net, model.StyleNet)
    with torch.no_grad():
        out = net.decode(net.encode(torch.rand(1, 3, 32, 32)))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()
