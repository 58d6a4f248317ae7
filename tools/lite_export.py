"""Export a lite training run into the embedded model: models/lite/decoder.safetensors and
models/lite/model.json (how it was made), then print the registry's new sha256 and size.

    python tools/lite_export.py RUN [--before EARLIER_RUN ...] [--earlier MODEL_JSON] [--note TEXT]

RUN is the `--out` folder of `vstpipe train` / `vstpipe finetune` whose decoder ships (its
checkpoint.pt, log.jsonl and model.json, which names the family); ``--before`` names the runs it
grew from, in order (the image stage, the fine-path stage, the bold stage, the first video
stage and the edge stage for lite-edge), so model.json records every stage. A lite-edge run
ships as lite-palette (the same networks, then the palette stage). Paste the printed
FileSpec values into vstpipe/weights/registry.py (the test tests/test_weights_auto.py checks
that they match the files).
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


def wall_seconds(log: list[dict]) -> float:
    """Training time of a run over all its sessions: each resumed session restarts the clock."""
    total, previous = 0.0, 0.0
    for row in log:
        seconds = row.get("seconds")
        if seconds is None:
            continue
        if seconds < previous:
            total += previous
        previous = seconds
    return round(total + previous, 1)


def stage(run: Path) -> tuple[dict, dict]:
    """(checkpoint, its record for model.json) of one training run folder."""
    checkpoint = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    last = [row for row in log if "step" in row and "loss" in row][-1]
    options = checkpoint.get("options", {})
    return checkpoint, {
        "stage": options.get("stage"),
        "steps": checkpoint["step"],
        "seed": options.get("seed"),
        "loss_weights": options.get("weights"),
        "affinity": options.get("affinity") if options.get("stage") == "video" else None,
        "options": options,
        "final_terms": {k: last.get(k) for k in ("content", "style", "gram", "teacher",
                                                 "affinity", "temporal", "loss") if k in last},
        "wall_seconds": wall_seconds(log),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the training run folder whose decoder ships")
    parser.add_argument("--before", type=Path, nargs="+", default=[],
                        help="the runs RUN grew from, first first (image stage, fine path)")
    parser.add_argument("--earlier", type=Path, default=None,
                        help="a model.json whose stages come before the --before runs (the "
                             "shipped one, when its run folders are gone)")
    parser.add_argument("--note", default="", help="a sentence on the state of this decoder")
    args = parser.parse_args(argv)
    checkpoint, shipped = stage(args.run)
    earlier = json.loads(args.earlier.read_text(encoding="utf-8"))["training"]["stages"] \
        if args.earlier is not None else []
    stages = earlier + [stage(run)[1] for run in args.before] + [shipped]
    arch = json.loads((args.run / "model.json").read_text(encoding="utf-8"))["arch"]
    decoder = {k: v.contiguous() for k, v in checkpoint["decoder"].items()}
    path = LITE / "decoder.safetensors"
    save_file(decoder, str(path), metadata={"format": f"vstpipe decoder of {arch}",
                                            "step": str(checkpoint["step"])})
    commands = [
        "python tools/convert_magenta.py --out full.safetensors "
        "--lite-encoder base/encoder.safetensors",
        "python tools/lite_data.py data/lite",
        "vstpipe train --config tools/lite_train.toml",
    ]
    if arch in ("lite-skip", "lite-edge"):
        commands += ["python tools/lite_grow.py runs/lite-image runs/lite-skip-init",
                     "vstpipe train --config tools/lite_skip_train.toml"]
    if any(s["stage"] == "image" and (s["loss_weights"] or {}).get("gram") for s in stages):
        commands.append("vstpipe train --config tools/lite_bold_train.toml")
    if arch == "lite-edge":  # a video stage, the edge stage with its teacher, a video stage
        commands += ["vstpipe finetune --config tools/lite_finetune.toml",
                     "python tools/lite_teacher.py data/lite",
                     "python tools/lite_grow.py runs/lite-video runs/lite-edge-init",
                     "vstpipe train --config tools/lite_edge_train.toml",
                     ("vstpipe finetune --config tools/lite_finetune.toml --model runs/lite-edge "
                      "--out runs/lite-edge-video")]
    elif shipped["stage"] == "video":
        commands.append("vstpipe finetune --config tools/lite_finetune.toml")
    # lite-edge's networks ship with the palette stage after them: the same files, its own arch
    (LITE / "model.json").write_text(json.dumps({
        "arch": "lite-palette" if arch == "lite-edge" else arch,
        "files": {"encoder": "encoder.safetensors", "decoder": "decoder.safetensors"},
        "description": "vstpipe's embedded model: Magenta's MobileNetV2 trunk (Apache-2.0, "
                       "NOTICE) to expanded_conv_6's expansion, AdaIN there"
                       + (" and on expanded_conv_2's output (the 1/4 fine path)"
                          if arch in ("lite-skip", "lite-edge") else "")
                       + (" and on the frame's lightness at full resolution (for lines)"
                          if arch == "lite-edge" else "")
                       + ", a decoder trained by vstpipe"
                       + (", then the palette stage (vstpipe/palette.py: the frame's regional "
                          "colour, mapped to the style image's chroma mean and covariance)"
                          if arch == "lite-edge" else ""),
        "training": {
            "note": args.note,
            "commands": commands,
            "data": "TRAINING_DATA.md beside this file: every file tools/lite_data.py assembles, "
                    "where it comes from and its licence",
            "loss_network": "the encoder itself: style taps Conv, expanded_conv_1/3/6 "
                            "expansions; content at expanded_conv_6's expansion"
                            + (" and expanded_conv_2's output (x 1/4), also a style tap"
                               if arch in ("lite-skip", "lite-edge") else "")
                            + ("; the teacher term compares pixels and the style taps"
                               if arch == "lite-edge" else ""),
            "machine": "2-core x86-64 CPU, torch 2.13.0 (CPU), shared with other work",
            "stages": stages,
            "steps": sum(s["steps"] for s in stages),
            "seed": shipped["seed"],
            "loss_weights": shipped["loss_weights"],
            "wall_seconds": round(sum(s["wall_seconds"] for s in stages), 1),
        },
    }, indent=1, default=str) + "\n", encoding="utf-8")
    for name in ("encoder.safetensors", "decoder.safetensors"):
        data = (LITE / name).read_bytes()
        print(f"{name}: sha256 {hashlib.sha256(data).hexdigest()} size {len(data)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
