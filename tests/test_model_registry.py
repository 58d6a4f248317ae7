"""Adding a model family is one file plus one registry line: the toy family of
tests/toy_family.py, entered in FAMILIES the way vstpipe/model/__init__.py enters the real ones,
builds, stylizes, round-trips its decoder state and resolves from a weights directory or a
model.json, with no other edit anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import toy_family
from fakes import random_state, save_random_weights

from vstpipe import model, weights
from vstpipe.errors import LayoutError
from vstpipe.model import Family
from vstpipe.stylize import Stylizer


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Family:
    # The one registry line: FAMILIES[name] = the family's FAMILY.
    monkeypatch.setitem(model.FAMILIES, toy_family.FAMILY.name, toy_family.FAMILY)
    return toy_family.FAMILY


def _states(name: str) -> dict[str, dict[str, torch.Tensor]]:
    return {r: random_state(name, r, i) for i, r in enumerate(("encoder", "decoder"))}


def test_the_real_families_are_registered_by_name() -> None:
    assert list(model.FAMILIES) == ["adain-vgg19", "uvc-lab", "uvc-tracker", "lite-mobilenet",
                                   "lite-skip", "lite-edge", "lite-palette"]
    assert all(name == family.name for name, family in model.FAMILIES.items())
    assert [f.kind for f in model.FAMILIES.values()] == ["style", "style", "affinity", "style",
                                                        "style", "style", "style"]


def test_a_toy_family_builds_and_stylizes_from_random_weights(toy: Family) -> None:
    net = model.build(toy.name, _states(toy.name))
    assert isinstance(net, model.StyleNet) and net.arch is toy and net.name == toy.name
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        feat = net.encode(x)
        assert feat.shape == (2, toy.channels, 4, 6)
        assert net.decode(feat).shape == (2, 3, 32, 48)
    stylizer = Stylizer(net, torch.device("cpu"), torch.float32)
    style = stylizer.style_stats(torch.rand(1, 3, 64, 64))
    out = stylizer(x, style.mean, style.std, alpha=1.0)
    assert out.shape == (2, 3, 32, 48) and torch.isfinite(out).all()


def test_a_toy_family_maps_its_state_dicts_both_ways(toy: Family) -> None:
    states = _states(toy.name)
    net = model.build(toy.name, states)
    assert list(net.decoder.state_dict()) == ["net.1.weight", "net.1.bias"]  # running keys
    saved = net.decoder_state()  # published keys again, as a trained decoder is saved
    assert list(saved) == list(model.published_layout(toy.name, "decoder"))
    assert all(torch.equal(saved[k], v) for k, v in states["decoder"].items())


def test_a_toy_family_checks_its_layout(toy: Family) -> None:
    state = random_state(toy.name, "encoder")
    state["0.weight"] = torch.zeros(8, 3, 3, 3)
    with pytest.raises(LayoutError, match=r"w\.pth: key '0\.weight' has shape \[8, 3, 3, 3\], "
                                          r"expected \[8, 3, 8, 8\] for the toy-rgb encoder"):
        model.check_layout(toy.name, "encoder", state, "w.pth")


def test_a_toy_family_resolves_from_a_directory_and_a_model_json(toy: Family,
                                                                 tmp_path: Path) -> None:
    files = save_random_weights(toy.name, tmp_path / "published")
    resolved = weights.resolve(str(tmp_path / "published"), offline=True)
    assert (resolved.arch, resolved.paths) == (toy.name, files)
    assert weights.load(resolved).arch is toy

    run = tmp_path / "run"
    run.mkdir()
    (run / "d.pth").write_bytes(files["decoder"].read_bytes())
    (run / "e.pth").write_bytes(files["encoder"].read_bytes())
    (run / weights.MODEL_JSON).write_text(json.dumps(
        {"arch": toy.name, "files": {"encoder": "e.pth", "decoder": "d.pth"}}))
    net = weights.load(weights.resolve(str(run), offline=True))
    assert net.arch is toy and net.name == str(run)
