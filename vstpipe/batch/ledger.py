"""What a batch has finished: per output, the hash of the settings it was made with.

Kept in the output folder (``.vstpipe-batch.json``), written by the batch's one coordinating
process after each finished task (atomically: a crash leaves the last complete version). A task
is done when its output exists and its recorded hash equals the task's; a changed setting,
style image or input changes the hash and the output is made again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import atomic
from ..errors import ConfigError

FILE_NAME = ".vstpipe-batch.json"
VERSION = 1


@dataclass
class Ledger:
    path: Path
    done: dict[str, dict[str, Any]]  # output file name -> {"hash", "frames", "seconds", "at"}

    @classmethod
    def open(cls, out_dir: Path) -> Ledger:
        path = out_dir / FILE_NAME
        if not path.exists():
            return cls(path, {})
        try:
            data = json.loads(path.read_text())
            if data.get("version") != VERSION or not isinstance(data.get("done"), dict):
                raise ValueError("not a ledger of this version")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the batch's record of finished outputs "
                              f"({exc}); move it away to render everything again") from None
        return cls(path, data["done"])

    def is_done(self, output: Path, settings: str) -> bool:
        entry = self.done.get(output.name)
        return entry is not None and entry.get("hash") == settings and output.exists()

    def knows(self, output: Path) -> bool:
        """Whether ``output`` was made by this batch (so a new version may replace it)."""
        return output.name in self.done

    def record(self, output: Path, settings: str, frames: int, seconds: float) -> None:
        self.done[output.name] = {"hash": settings, "frames": frames,
                                  "seconds": round(seconds, 3),
                                  "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"version": VERSION, "done": self.done}, indent=1, sort_keys=True)
        atomic.write_bytes(self.path, text.encode(), overwrite=True)
