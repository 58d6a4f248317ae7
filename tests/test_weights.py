"""Registry, cache, download, import, verify and resolve, against a local HTTP server and
random weights in the published layouts (tests/fakes.py); the real UVC files when present."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest
import torch
from conftest import UVC_DIR, needs_uvc
from fakes import random_state, save_random_weights

from vstpipe import model, weights
from vstpipe.errors import ChecksumError, DownloadError, LayoutError, ModelError, OptionError
from vstpipe.weights import FileSpec, ModelSpec, fetch


@pytest.fixture(autouse=True)
def _isolated(vstpipe_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # a proxy from the environment would swallow requests meant for the local test server
    monkeypatch.setenv("no_proxy", "*")
    return vstpipe_home


@pytest.fixture(scope="module")
def uvc_random(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_random_weights("uvc-lab", tmp_path_factory.mktemp("uvc"))


@pytest.fixture(scope="module")
def adain_random(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_random_weights("adain-vgg19", tmp_path_factory.mktemp("adain"))


def _unpublished(name: str) -> ModelSpec:
    """The registry entry with no published sha256/size, so random weights are accepted."""
    ms = weights.REGISTRY[name]
    files = tuple(dataclasses.replace(f, sha256=None, size=None) for f in ms.files)
    return dataclasses.replace(ms, files=files)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cache_files(name: str) -> list[str]:
    folder = weights.model_dir(name)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- a local HTTP server ---------------------------------------------------------------------


class _Server:
    """Serves ``routes[path] = bytes``; paths under /drop/ announce the full length but send
    half and close, like a connection lost mid-file."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.hits: list[str] = []
        routes, hits = self.routes, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                body = routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path.startswith("/drop/")
                                 else body)
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                """Keep the test output quiet."""

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


def _served_spec(server: _Server, files: dict[str, Path], *, prefix: str = "/w/",
                 sha256: dict[str, str | None] | None = None) -> ModelSpec:
    """A uvc-lab spec whose files come from ``server`` with their true sha256/size (or the
    overrides in ``sha256``)."""
    specs = []
    for role, path in files.items():
        server.routes[prefix + path.name] = path.read_bytes()
        sha = (sha256 or {}).get(role, _sha(path))
        specs.append(FileSpec(role, path.name, server.url(prefix + path.name), sha,
                              path.stat().st_size if sha is not None else None))
    return dataclasses.replace(weights.REGISTRY["uvc-lab"], files=tuple(specs))


# --- registry and places ---------------------------------------------------------------------


def test_registry_names_urls_and_published_file_names() -> None:
    assert list(weights.REGISTRY) == ["adain-vgg19", "uvc-lab", "uvc-tracker"]
    for name, ms in weights.REGISTRY.items():
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


def test_home_honours_vstpipe_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSTPIPE_HOME", str(tmp_path / "cache"))
    assert weights.home() == tmp_path / "cache"
    assert weights.model_dir("uvc-lab") == tmp_path / "cache" / "models" / "uvc-lab"
    monkeypatch.delenv("VSTPIPE_HOME")
    assert weights.home() == Path(platformdirs.user_cache_dir("vstpipe"))


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'vgg'; choose from adain-vgg19, uvc-lab"):
        weights.spec("vgg")
    with pytest.raises(ModelError, match=r"choose from adain-vgg19, uvc-lab"):
        weights.resolve("no-such-model", offline=True)


def test_offline_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert weights.offline_from_env() is False
    monkeypatch.setenv("VSTPIPE_OFFLINE", "1")
    assert weights.offline_from_env() is True
    monkeypatch.setenv("VSTPIPE_OFFLINE", "0")
    assert weights.offline_from_env() is False
    monkeypatch.setenv("VSTPIPE_OFFLINE", "maybe")
    with pytest.raises(OptionError, match="VSTPIPE_OFFLINE='maybe'"):
        weights.offline_from_env()


def test_status_of_an_empty_cache() -> None:
    statuses = weights.list_models()
    assert [(s.name, s.installed, s.size) for s in statuses] == \
        [("adain-vgg19", False, 0), ("uvc-lab", False, 0), ("uvc-tracker", False, 0)]


# --- pull ------------------------------------------------------------------------------------


def test_pull_installs_checks_and_records(server: _Server, uvc_random: dict[str, Path]) -> None:
    ms = _served_spec(server, uvc_random)
    progress: list[tuple[str, int, int | None]] = []
    folder = weights.pull("uvc-lab", model=ms, on_progress=lambda *a: progress.append(a))

    assert _cache_files("uvc-lab") == sorted([weights.MANIFEST, *(p.name for p in
                                                                   uvc_random.values())])
    manifest = json.loads((folder / weights.MANIFEST).read_text())
    for role, src in uvc_random.items():
        entry = manifest["files"][src.name]
        assert entry["sha256"] == _sha(folder / src.name) == _sha(src)
        assert (entry["role"], entry["size"]) == (role, src.stat().st_size)
        assert entry["source"] == server.url("/w/" + src.name)
        counts = [done for name, done, _ in progress if name == src.name]
        assert len(counts) > 1 and counts == sorted(set(counts))
        assert counts[-1] == src.stat().st_size
        assert {total for name, _, total in progress if name == src.name} == \
            {src.stat().st_size}
    assert weights.status("uvc-lab").installed

    hits = len(server.hits)
    weights.pull("uvc-lab", model=ms)  # everything verified in place: nothing downloaded again
    assert len(server.hits) == hits


def test_pull_checks_the_layout(server: _Server, uvc_random: dict[str, Path]) -> None:
    # the decoder's bytes served under the encoder's name, no sha256 to catch it
    server.routes["/x/encoder_single_gpu.pth"] = uvc_random["decoder"].read_bytes()
    ms = dataclasses.replace(weights.REGISTRY["uvc-lab"], files=(FileSpec(
        "encoder", "encoder_single_gpu.pth", server.url("/x/encoder_single_gpu.pth"), None,
        None),))
    with pytest.raises(LayoutError, match=r"missing key 'conv1.weight' for the uvc-lab encoder"):
        weights.pull("uvc-lab", model=ms)
    assert _cache_files("uvc-lab") == []


def test_pull_wrong_sha256_leaves_nothing(server: _Server, uvc_random: dict[str, Path]) -> None:
    ms = _served_spec(server, uvc_random, sha256={"encoder": "0" * 64})
    with pytest.raises(ChecksumError, match=r"sha256 .* differs from the published uvc-lab "
                                            r"encoder \(encoder_single_gpu.pth\)"):
        weights.pull("uvc-lab", model=ms)
    assert _cache_files("uvc-lab") == []


def test_pull_detects_a_dropped_connection(server: _Server,
                                           uvc_random: dict[str, Path]) -> None:
    # no size or sha256 in the spec: only the Content-Length can reveal the short body
    ms = _served_spec(server, uvc_random, prefix="/drop/",
                      sha256={"encoder": None, "decoder": None})
    with pytest.raises(DownloadError, match=r"dropped after \d+ of \d+ bytes.*vstpipe models "
                                            r"import uvc-lab FILE"):
        weights.pull("uvc-lab", model=ms)
    assert _cache_files("uvc-lab") == []


def test_pull_interrupted_leaves_nothing(server: _Server, uvc_random: dict[str, Path]) -> None:
    def interrupt(name: str, done: int, total: int | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        weights.pull("uvc-lab", model=_served_spec(server, uvc_random), on_progress=interrupt)
    assert _cache_files("uvc-lab") == []


def test_pull_http_error(server: _Server, uvc_random: dict[str, Path]) -> None:
    ms = _served_spec(server, uvc_random)
    server.routes.clear()
    with pytest.raises(DownloadError, match=r"HTTP 404"):
        weights.pull("uvc-lab", model=ms)
    assert _cache_files("uvc-lab") == []


def test_pull_unreachable_names_host_and_import(uvc_random: dict[str, Path]) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ms = dataclasses.replace(weights.REGISTRY["uvc-lab"], files=tuple(
        dataclasses.replace(f, url=f"http://127.0.0.1:{port}/{f.name}")
        for f in weights.REGISTRY["uvc-lab"].files))
    with pytest.raises(DownloadError) as info:
        weights.pull("uvc-lab", model=ms, timeout=5)
    message = str(info.value)
    assert "\n" not in message and "uvc-lab" in message and "127.0.0.1" in message
    assert "`vstpipe models import uvc-lab FILE...`" in message
    assert _cache_files("uvc-lab") == []


# --- import ----------------------------------------------------------------------------------


def test_import_both_files_at_once(adain_random: dict[str, Path], tmp_path: Path) -> None:
    # names that say nothing: the roles come from the layouts
    enc, dec = tmp_path / "a.pth", tmp_path / "b.pth"
    enc.write_bytes(adain_random["encoder"].read_bytes())
    dec.write_bytes(adain_random["decoder"].read_bytes())
    folder = weights.import_files("adain-vgg19", [dec, enc], model=_unpublished("adain-vgg19"))

    assert _cache_files("adain-vgg19") == ["decoder.pth", weights.MANIFEST, "vgg_normalised.pth"]
    manifest = json.loads((folder / weights.MANIFEST).read_text())["files"]
    assert manifest["vgg_normalised.pth"]["role"] == "encoder"
    assert manifest["vgg_normalised.pth"]["sha256"] == _sha(enc)
    assert manifest["decoder.pth"]["source"] == str(dec.resolve())
    assert weights.status("adain-vgg19").installed
    assert weights.status("adain-vgg19").size == enc.stat().st_size + dec.stat().st_size


def test_import_one_file_at_a_time(uvc_random: dict[str, Path]) -> None:
    ms = _unpublished("uvc-lab")
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
    assert _cache_files("uvc-lab") == []
    if all(f.sha256 is None and f.size is None for f in weights.spec("adain-vgg19").files):
        pytest.skip("the registry has no published sha256 for adain-vgg19")
    with pytest.raises(ChecksumError, match=r"not the published file"):
        weights.import_files("adain-vgg19", list(adain_random.values()))
    assert _cache_files("adain-vgg19") == []


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
    assert _cache_files("uvc-lab") == []


def test_layout_mismatch_without_a_telling_name_uses_the_closest_role(tmp_path: Path) -> None:
    state = random_state("uvc-lab", "decoder")
    del state["conv11.bias"]
    torch.save(state, tmp_path / "finetuned.pth")
    with pytest.raises(LayoutError, match=r"missing key 'conv11.bias' for the uvc-lab decoder"):
        weights.import_files("uvc-lab", [tmp_path / "finetuned.pth"])


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
    assert _cache_files("uvc-lab") == []


def test_safetensors_files_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"a": torch.ones(2, 3)}, tmp_path / "x.safetensors")
    assert weights.load_state_file(tmp_path / "x.safetensors")["a"].shape == (2, 3)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 32)
    with pytest.raises(ModelError, match=r"bad.safetensors: not a readable safetensors file"):
        weights.load_state_file(tmp_path / "bad.safetensors")


# --- verify ----------------------------------------------------------------------------------


def test_verify_detects_changed_and_missing_files(uvc_random: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(weights.REGISTRY, "uvc-lab", _unpublished("uvc-lab"))
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


# --- resolve and load ------------------------------------------------------------------------


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
        weights.import_files(name, list(uvc_random.values()), model=_unpublished(name))
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


def test_resolve_model_json_reuses_a_registry_encoder(tmp_path: Path,
                                                      uvc_random: dict[str, Path]) -> None:
    finetune = tmp_path / "finetune"
    finetune.mkdir()
    torch.save(random_state("uvc-lab", "decoder", seed=7), finetune / "decoder.pth")
    (finetune / "model.json").write_text(json.dumps(
        {"arch": "uvc-lab", "files": {"decoder": "decoder.pth"}, "encoder_from": "uvc-lab"}))
    with pytest.raises(ModelError, match=r"`vstpipe models pull uvc-lab`"):
        weights.resolve(str(finetune), offline=True)

    weights.import_files("uvc-lab", list(uvc_random.values()), model=_unpublished("uvc-lab"))
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


# --- the real UVC files ----------------------------------------------------------------------


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
