"""weights.store: the cache's places, git blob ids, status and verify, on random weights in
the published layouts (tests/fakes.py)."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest
from weightstools import unpublished

from vstpipe import weights
from vstpipe.errors import ModelError

pytestmark = pytest.mark.usefixtures("offline_home")  # conftest.py



def test_git_blob_id_matches_git_hash_object(tmp_path: Path) -> None:
    import shutil
    import subprocess

    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 1000)
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True,
                              text=True, check=True).stdout.strip()
    assert weights.git_blob_sha1(path) == expected


def test_home_honours_vstpipe_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSTPIPE_HOME", str(tmp_path / "cache"))
    assert weights.home() == tmp_path / "cache"
    assert weights.model_dir("uvc-lab") == tmp_path / "cache" / "models" / "uvc-lab"
    monkeypatch.delenv("VSTPIPE_HOME")
    assert weights.home() == Path(platformdirs.user_cache_dir("vstpipe"))


def test_status_of_an_empty_cache() -> None:
    statuses = weights.list_models()
    assert [(s.name, s.installed, s.size) for s in statuses] == \
        [("adain-vgg19", False, 0), ("uvc-lab", False, 0), ("lite", True, sum(f.size for f in weights.spec("lite").files)),
         ("uvc-tracker", False, 0)]


def test_verify_detects_changed_and_missing_files(uvc_random: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(weights.REGISTRY, "uvc-lab", unpublished("uvc-lab"))
    weights.import_files("uvc-lab", list(uvc_random.values()))
    assert [(r.file, r.ok) for r in weights.verify()] == \
        [("encoder_single_gpu.pth", True), ("decoder_single_gpu.pth", True)]

    encoder = weights.model_dir("uvc-lab") / "encoder_single_gpu.pth"
    data = bytearray(encoder.read_bytes())
    data[-100] ^= 0xFF
    encoder.write_bytes(bytes(data))
    (weights.model_dir("uvc-lab") / "decoder_single_gpu.pth").unlink()
    enc, dec = weights.verify("uvc-lab")
    assert not enc.ok and "changed since it was installed" in enc.message
    assert not dec.ok and "missing" in dec.message and "vstpipe models import" in dec.message


def test_a_model_imported_under_its_own_name_is_listed_and_verified(tmp_path: Path) -> None:
    import json

    from fakes import save_random_weights

    run = tmp_path / "run"
    files = save_random_weights("uvc-lab", run)
    (run / weights.MODEL_JSON).write_text(json.dumps(
        {"arch": "uvc-lab", "files": {r: p.name for r, p in files.items()}}))
    weights.import_model_dir("my-look", run)
    listed = {s.name: s for s in weights.list_models()}
    assert listed["my-look"].arch == "uvc-lab" and listed["my-look"].installed
    assert listed["my-look"].size == sum(p.stat().st_size for p in files.values())
    assert sorted((r.name, r.file, r.ok) for r in weights.verify()) == \
        [("my-look", "decoder_single_gpu.pth", True), ("my-look", "encoder_single_gpu.pth", True)]
    decoder = weights.model_dir("my-look") / "decoder_single_gpu.pth"
    decoder.write_bytes(decoder.read_bytes()[:-10])
    bad = {r.file: r for r in weights.verify("my-look")}
    assert not bad["decoder_single_gpu.pth"].ok
    assert "vstpipe models import my-look DIR" in bad["decoder_single_gpu.pth"].message
    with pytest.raises(ModelError, match=r"unknown model 'nosuch'; choose from "
                                                 r"adain-vgg19, .*, my-look$"):
        weights.verify("nosuch")
