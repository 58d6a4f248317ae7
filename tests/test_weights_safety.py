"""weights.safety: nothing but tensors is unpickled; safetensors files load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from weightstools import cache_files

from vstpipe import weights
from vstpipe.errors import ModelError

pytestmark = pytest.mark.usefixtures("offline_home")  # conftest.py


_UNPICKLED: list[str] = []


def _side_effect() -> str:
    _UNPICKLED.append("ran")
    return "ran"


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[()]]:
        return _side_effect, ()


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch notes the unusual pickle protocol
def test_non_weights_files_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("not weights\n")
    with pytest.raises(ModelError, match=r"notes.pth: not a weights file"):
        weights.load_state_file(text)
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Payload()}, evil)
    with pytest.raises(ModelError, match=r"evil.pth: holds objects other than tensors"):
        weights.import_files("uvc-lab", [evil])
    assert _UNPICKLED == []
    assert cache_files("uvc-lab") == []


def test_safetensors_files_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"a": torch.ones(2, 3)}, tmp_path / "x.safetensors")
    assert weights.load_state_file(tmp_path / "x.safetensors")["a"].shape == (2, 3)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 32)
    with pytest.raises(ModelError, match=r"bad.safetensors: not a readable safetensors file"):
        weights.load_state_file(tmp_path / "bad.safetensors")
