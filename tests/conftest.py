"""Shared fixtures and markers: tiny generated media, random weights, optional real assets."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"
UVC_DIR = SHARED / "models" / "uvc-ae"
MEDIA = SHARED / "media"


# The tests' tensors are tiny: with several intra-op threads, thread start-up and (when the
# machine is busy) contention cost more than the work; a preset tile took 1.4 s with 1 thread
# and 3.5-8 s with 2 under load. Subprocesses choose their own. DEFAULT_THREADS is torch's own
# choice, for tests whose numbers depend on it (test_golden's checksums were made with it).
DEFAULT_THREADS = torch.get_num_threads()
torch.set_num_threads(1)
# Nothing a test does lands in the user's cache (models, precision.json): a test that needs a
# cache of its own says so (vstpipe_home); the rest share this one.
os.environ.setdefault("VSTPIPE_HOME", tempfile.mkdtemp(prefix="vstpipe-tests-"))


@pytest.fixture
def default_threads() -> Iterator[None]:
    """Run one test with torch's default thread count (reductions differ in the last bits)."""
    torch.set_num_threads(DEFAULT_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "requires_cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def vstpipe_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model cache for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("VSTPIPE_HOME", str(home))
    monkeypatch.delenv("VSTPIPE_OFFLINE", raising=False)
    return home


needs_uvc = pytest.mark.skipif(not (UVC_DIR / "encoder_single_gpu.pth").exists(),
                               reason="real UVC weights (../shared/models/uvc-ae) not present")
needs_media = pytest.mark.skipif(not MEDIA.is_dir(),
                                 reason="real media (../shared/media) not present")


@pytest.fixture
def style_png(tmp_path: Path) -> Path:
    """A noisy 96x80 style picture."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    path = tmp_path / "style.png"
    Image.fromarray(rng.integers(0, 256, (96, 80, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="session")
def _adain_home_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache with random adain-vgg19 weights imported through the CLI, made once."""
    from fakes import save_random_weights
    from typer.testing import CliRunner

    from vstpipe.cli import app

    folder = tmp_path_factory.mktemp("adain-home")
    files = save_random_weights("adain-vgg19", folder / "weights")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VSTPIPE_HOME", str(folder / "home"))
        patch.delenv("VSTPIPE_OFFLINE", raising=False)
        result = CliRunner().invoke(app, ["models", "import", "adain-vgg19", "--unverified",
                                          *map(str, files.values())])
    assert result.exit_code == 0, result.output
    return folder / "home"


@pytest.fixture
def adain_home(vstpipe_home: Path, _adain_home_once: Path) -> Path:
    """Random weights in the published layout, imported as adain-vgg19 through the CLI: a
    copy of one import per session (tests may damage their copy's files)."""
    import shutil

    shutil.copytree(_adain_home_once, vstpipe_home, copy_function=shutil.copy2)
    return vstpipe_home


@pytest.fixture(scope="module")
def net():
    """Random adain-vgg19 weights (those `adain_home` imports), built once per test module for
    its library-level renders; a module may define its own ``net``."""
    from fakes import random_net

    return random_net("adain-vgg19")


@pytest.fixture
def sessions(net):
    """A session factory that has the module's ``net`` under its model name, no cache."""
    from vstpipe.sessions import Sessions

    return Sessions(nets={net.name: net})


@pytest.fixture
def offline_home(vstpipe_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model cache, and no proxy to swallow requests meant for a local test server."""
    monkeypatch.setenv("no_proxy", "*")
    return vstpipe_home


@pytest.fixture(scope="module")
def uvc_random(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random uvc-lab weights in the published layout, once per test module."""
    from fakes import save_random_weights

    return save_random_weights("uvc-lab", tmp_path_factory.mktemp("uvc"))


@pytest.fixture(scope="module")
def adain_random(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random adain-vgg19 weights in the published layout, once per test module."""
    from fakes import save_random_weights

    return save_random_weights("adain-vgg19", tmp_path_factory.mktemp("adain"))
