"""weights.modeljson: model.json written and read back, one that reuses a registry
encoder, and the first problem of a bad one named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fakes import random_state
from weightstools import unpublished

from vstpipe import model, weights
from vstpipe.errors import ModelError
from vstpipe.weights import modeljson

pytestmark = pytest.mark.usefixtures("offline_home")  # conftest.py



def test_resolve_model_json_reuses_a_registry_encoder(tmp_path: Path,
                                                      uvc_random: dict[str, Path]) -> None:
    finetune = tmp_path / "finetune"
    finetune.mkdir()
    torch.save(random_state("uvc-lab", "decoder", seed=7), finetune / "decoder.pth")
    (finetune / "model.json").write_text(json.dumps(
        {"arch": "uvc-lab", "files": {"decoder": "decoder.pth"}, "encoder_from": "uvc-lab"}))
    with pytest.raises(ModelError, match=r"`vstpipe models pull uvc-lab`"):
        weights.resolve(str(finetune), offline=True)

    weights.import_files("uvc-lab", list(uvc_random.values()), model=unpublished("uvc-lab"))
    resolved = weights.resolve(str(finetune), offline=True)
    assert resolved.arch == "uvc-lab"
    assert resolved.paths == {
        "encoder": weights.model_dir("uvc-lab") / "encoder_single_gpu.pth",
        "decoder": finetune / "decoder.pth"}
    assert isinstance(weights.load(resolved), model.StyleNet)


@pytest.mark.parametrize(("content", "message"), [
    ('{"arch": "vgg", "files": {}}', r"arch \"vgg\" is not known; choose from adain-vgg19"),
    ('{"arch": "uvc-lab", "files": {}, "encoder": "x"}',
     (r"unknown key 'encoder'; expected arch, files, description, training, encoder_from, "
     "decoder_from")),
    ('{"arch": "uvc-lab", "files": {"encoder": "missing.pth"}}', r"files.encoder names"),
    ('{"arch": "uvc-lab", "files": {"decoder": "d.pth"}}', r"no encoder; give files.encoder"),
    ("{not json", r"model.json: unreadable"),
])
def test_resolve_model_json_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "d.pth").write_bytes(b"")
    (tmp_path / "model.json").write_text(content)
    with pytest.raises(ModelError, match=message):
        weights.resolve(str(tmp_path), offline=True)


def test_dump_write_and_read_round_trip(tmp_path: Path, uvc_random: dict[str, Path]) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "decoder.pth").write_bytes(uvc_random["decoder"].read_bytes())
    text = modeljson.dump(arch="uvc-lab", files={"decoder": "decoder.pth"},
                          sources={"encoder": "uvc-lab"}, description="a run",
                          training={"steps": 3})
    assert list(json.loads(text)) == ["arch", "encoder_from", "files", "description", "training"]
    modeljson.write(folder, text)
    assert sorted(p.name for p in folder.iterdir()) == ["decoder.pth", "model.json"]  # no temp
    borrowed: list[tuple[str, str]] = []

    def borrow(name: str, role: str) -> Path:
        borrowed.append((name, role))
        return uvc_random[role]

    spec = modeljson.read(folder, borrow)
    assert (spec.arch, spec.files, spec.sources, spec.text) == \
        ("uvc-lab", {"decoder": "decoder.pth"}, {"encoder": "uvc-lab"}, text)
    assert spec.paths == {"encoder": uvc_random["encoder"], "decoder": folder / "decoder.pth"}
    assert borrowed == [("uvc-lab", "encoder")]


def test_a_role_may_be_borrowed_from_a_registry_model_whose_file_has_that_layout(
        tmp_path: Path) -> None:
    """lite-mobilenet and lite-skip share their encoder file, so a lite-mobilenet folder (the
    image stage, tools/lite_base) borrows the embedded lite's; uvc-lab's does not fit."""
    torch.manual_seed(0)
    folder = tmp_path / "base"
    folder.mkdir()
    from safetensors.torch import save_file
    save_file(model.published_module("lite-mobilenet", "decoder").state_dict(),
              str(folder / "decoder.safetensors"))
    spec = {"arch": "lite-mobilenet", "files": {"decoder": "decoder.safetensors"},
            "encoder_from": "lite"}
    (folder / "model.json").write_text(json.dumps(spec))
    resolved = weights.resolve(str(folder), offline=True)
    assert (resolved.arch, resolved.sources) == ("lite-mobilenet", {"encoder": "lite"})
    assert weights.load(resolved).arch.name == "lite-mobilenet"
    (folder / "model.json").write_text(json.dumps({**spec, "encoder_from": "uvc-lab"}))
    with pytest.raises(ModelError, match=r"encoder_from \"uvc-lab\" is not a registry model "
                                         r"whose encoder fits arch lite-mobilenet; choose from "
                                         r"lite"):
        weights.resolve(str(folder), offline=True)
