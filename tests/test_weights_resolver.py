"""weights.resolver: registry names (pulled when online) and directories of published
files, and what their errors list."""

from __future__ import annotations

from pathlib import Path

import pytest
from weightstools import unpublished

from vstpipe import model, weights
from vstpipe.errors import ModelError
from vstpipe.weights import fetch

pytestmark = pytest.mark.usefixtures("offline_home")  # conftest.py




def test_resolve_offline_not_installed_names_pull_and_import() -> None:
    with pytest.raises(ModelError) as info:
        weights.resolve("uvc-lab", offline=True)
    assert "`vstpipe models pull uvc-lab`" in str(info.value)
    assert "`vstpipe models import uvc-lab FILE...`" in str(info.value)


def test_resolve_pulls_when_online(monkeypatch: pytest.MonkeyPatch,
                                   uvc_random: dict[str, Path]) -> None:
    pulled: list[str] = []

    def fake_pull(name: str, **_: object) -> Path:
        pulled.append(name)
        weights.import_files(name, list(uvc_random.values()), model=unpublished(name))
        return weights.model_dir(name)

    monkeypatch.setattr(fetch, "pull", fake_pull)
    resolved = weights.resolve("uvc-lab", offline=False)
    assert pulled == ["uvc-lab"] and resolved.arch == "uvc-lab"
    assert resolved.paths["decoder"] == weights.model_dir("uvc-lab") / "decoder_single_gpu.pth"
    assert weights.resolve("uvc-lab", offline=True) == resolved  # now installed: no pull
    assert pulled == ["uvc-lab"]


def test_resolve_directory_detects_the_arch(uvc_random: dict[str, Path],
                                            adain_random: dict[str, Path]) -> None:
    uvc = weights.resolve(str(uvc_random["encoder"].parent), offline=True)
    assert (uvc.arch, uvc.paths) == ("uvc-lab", uvc_random)
    adain = weights.resolve(str(adain_random["encoder"].parent), offline=True)
    assert (adain.arch, adain.paths) == ("adain-vgg19", adain_random)
    net = weights.load(uvc)
    assert isinstance(net, model.StyleNet) and net.arch.name == "uvc-lab"


def test_resolve_directory_errors_list_what_was_expected(tmp_path: Path,
                                                         uvc_random: dict[str, Path]) -> None:
    with pytest.raises(ModelError, match=r"no model files; expected vgg_normalised.pth \+ "
                                         r"decoder.pth \(adain-vgg19\), encoder_single_gpu.pth"):
        weights.resolve(str(tmp_path), offline=True)
    (tmp_path / "decoder_single_gpu.pth").write_bytes(uvc_random["decoder"].read_bytes())
    with pytest.raises(ModelError, match=r"uvc-lab model lacks encoder_single_gpu.pth"):
        weights.resolve(str(tmp_path), offline=True)
