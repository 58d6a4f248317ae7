"""Grow a lite decoder into the next family, one that paints the same picture.

    python tools/lite_grow.py RUN OUT

RUN is a model folder with a lite-mobilenet decoder (the image stage, runs/lite-image) or a
lite-skip one (the bold stage, runs/lite-bold); OUT becomes a lite-skip or lite-edge model
folder (the same encoder file, models/lite's, copied in; the decoder grown by
``vstpipe.model.lite_skip.grow`` or ``lite_edge.grow``: the new path's weights start at zero),
from which ``vstpipe train --config tools/lite_skip_train.toml`` (or the edge stage's
``tools/lite_edge_train.toml``) goes on.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from vstpipe.model import lite_edge, lite_skip
from vstpipe.weights import modeljson

ENCODER = Path(__file__).resolve().parents[1] / "models" / "lite" / "encoder.safetensors"
GROWS = {"lite-mobilenet": ("lite-skip", lite_skip.grow, "fine path"),
         "lite-skip": ("lite-edge", lite_edge.grow, "lightness path")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a lite-mobilenet or lite-skip model folder")
    parser.add_argument("out", type=Path, help="the lite-skip or lite-edge model folder to write")
    args = parser.parse_args(argv)
    spec = json.loads((args.run / modeljson.MODEL_JSON).read_text(encoding="utf-8"))
    if spec.get("arch") not in GROWS:
        parser.error(f"{args.run / modeljson.MODEL_JSON}: arch {spec.get('arch')!r}, "
                     f"expected one of {', '.join(GROWS)}")
    arch, grow, path = GROWS[spec["arch"]]
    state = load_file(str(args.run / spec["files"]["decoder"]))
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(grow(state), str(args.out / "decoder.safetensors"))
    shutil.copyfile(ENCODER, args.out / ENCODER.name)
    modeljson.write(args.out, modeljson.dump(
        arch=arch, files={"encoder": ENCODER.name, "decoder": "decoder.safetensors"},
        sources={}, description=f"{arch} decoder grown from {args.run} ({path} at zero)",
        training={"stage": "grow", "from": str(args.run), "from_training": spec.get("training")}))
    print(f"wrote {args.out} ({arch}, paints as {args.run})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
