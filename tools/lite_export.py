"""Export a lite training run into the embedded model: models/lite/decoder.safetensors and
models/lite/model.json (how it was made), then print the registry's new sha256 and size.

    python tools/lite_export.py RUN [--stage image|video] [--note TEXT]

RUN is the `--out` folder of `vstpipe train` / `vstpipe finetune` (its checkpoint.pt and
log.jsonl). Paste the printed FileSpec values into vstpipe/weights/registry.py (the test
tests/test_weights_auto.py checks that they match the files).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
LITE = ROOT / "models" / "lite"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the training run folder")
    parser.add_argument("--note", default="", help="a sentence on the state of this decoder")
    args = parser.parse_args(argv)
    checkpoint = torch.load(args.run / "checkpoint.pt", map_location="cpu", weights_only=False)
    log = [json.loads(line) for line in (args.run / "log.jsonl").read_text().splitlines()]
    steps = [row for row in log if "step" in row and "loss" in row]
    last = steps[-1] if steps else {}
    decoder = {k: v.contiguous() for k, v in checkpoint["decoder"].items()}
    path = LITE / "decoder.safetensors"
    save_file(decoder, str(path), metadata={"format": "vstpipe.model.lite_mobilenet LiteDecoder",
                                            "step": str(checkpoint["step"])})
    options = checkpoint.get("options", {})
    (LITE / "model.json").write_text(json.dumps({
        "arch": "lite-mobilenet",
        "files": {"encoder": "encoder.safetensors", "decoder": "decoder.safetensors"},
        "description": "vstpipe's embedded model: Magenta's MobileNetV2 trunk (Apache-2.0, "
                       "NOTICE) to expanded_conv_6's expansion, AdaIN there, a decoder trained "
                       "by vstpipe",
        "training": {
            "note": args.note,
            "commands": [
                "python tools/convert_magenta.py --out full.safetensors "
                "--lite-encoder base/encoder.safetensors",
                "python tools/lite_data.py data/lite",
                "vstpipe train --config tools/lite_train.toml",
            ],
            "data": "tools/lite_data.py (its SOURCES.md lists every file and licence)",
            "loss_network": "the encoder itself: style taps Conv, expanded_conv_1/3/6 "
                            "expansions; content at expanded_conv_6's expansion",
            "steps": checkpoint["step"],
            "seed": options.get("seed"),
            "loss_weights": options.get("weights"),
            "options": options,
            "final_terms": {k: last.get(k) for k in ("content", "style", "loss")},
            "wall_seconds": last.get("seconds"),
        },
    }, indent=1, default=str) + "\n", encoding="utf-8")
    for name in ("encoder.safetensors", "decoder.safetensors"):
        data = (LITE / name).read_bytes()
        print(f"{name}: sha256 {hashlib.sha256(data).hexdigest()} size {len(data)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
