"""Model weights: name -> published files, download, import, verify, resolve and load.

* ``registry.py``: the models vstpipe can download (URLs, checksums, licences), DEFAULT_MODEL.
* ``safety.py``: reading a weight file without trusting it (sizes first, no pickled code).
* ``store.py``: the cache (``home()/models/<name>/``), its manifests and stamps, verify, and
  every temp file the package writes.
* ``fetch.py``: HTTP download of registry models (``pull``).
* ``install.py``: importing local files or a model directory into the cache.
* ``modeljson.py``: ``model.json``, read and written here alone.
* ``resolver.py``: a ``--model`` value -> files -> a StyleNet.
"""

from __future__ import annotations

from .fetch import ProgressFn, offline_from_env, pull
from .install import import_files, import_model_dir
from .modeljson import MODEL_JSON
from .registry import DEFAULT_MODEL, REGISTRY, FileSpec, ModelSpec, spec
from .resolver import ResolvedModel, load, load_states, resolve
from .safety import load_state_file
from .store import (
    MANIFEST,
    ModelStatus,
    VerifyResult,
    git_blob_sha1,
    home,
    list_models,
    model_dir,
    status,
    verify,
)

__all__ = ["DEFAULT_MODEL", "MANIFEST", "MODEL_JSON", "REGISTRY", "FileSpec", "ModelSpec",
           "ModelStatus", "ProgressFn", "ResolvedModel", "VerifyResult", "git_blob_sha1", "home",
           "import_files", "import_model_dir", "list_models", "load", "load_state_file",
           "load_states", "model_dir", "offline_from_env", "pull", "resolve", "spec", "status",
           "verify"]
