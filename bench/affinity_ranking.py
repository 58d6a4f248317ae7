"""Does the affinity loss (eq. 8) see flicker? The grid behind tests/test_affinity_ranking.py.

    python bench/affinity_ranking.py                  # lite before video tuning, three clips
    python bench/affinity_ranking.py --model runs/lite-image --layers 1,3 --eps 0,0.1

For a frame of each clip, a source pair with a known motion (two crops 5 px down and 3 px right
of each other) is stylized two ways: consistent (one stylized frame carried along the motion)
and flickering (each crop stylized on its own: the stride-8 encoder moves the painted texture
against the content). For every encoder layer, softmax temperature and eps floor given, the
affinity loss of both pairs, computed from the encoder's features as the finetune computes it,
and their ratio flickering / consistent: above 1 the loss ranks them right. Also printed: how
much the flickering second frame differs from the carried one (mean |difference|, 0..1), and
the size of the loss against the content term's usual ~0.5 at lambda = 10000. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_affinity_ranking as ranking  # noqa: E402  (the pairs, built as the test builds them)

from vstpipe import weights  # noqa: E402
from vstpipe.images import load_style  # noqa: E402
from vstpipe.train import affinity  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="image-stage",
                        help="image-stage (the decoder the finetune starts from), or a model")
    parser.add_argument("--layers", default="0,1,2,3")
    parser.add_argument("--temperatures", default="0.02,0.05,0.2")
    parser.add_argument("--eps", default="0,0.1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    net = ranking.image_stage_net() if args.model == "image-stage" else \
        weights.load(weights.resolve(args.model, offline=True)).eval()
    style = load_style(ranking.MEDIA / "starry_night.jpg", 256)
    print(f"{'clip':<24}{'layer':>6}{'T':>6}{'eps':>6}{'consistent':>12}{'flickering':>12}"
          f"{'ratio':>7}{'x 1e4':>9}")
    for clip, index in ranking.CLIPS:
        source, consistent, flickering = ranking._pairs(net, ranking._frame(clip, index), style)
        moved = float((flickering[1] - consistent[1]).abs().mean())
        print(f"{clip}: flickering second frame differs from the carried one by {moved:.3f}")
        for layer in (int(v) for v in args.layers.split(",")):
            for temperature in (float(v) for v in args.temperatures.split(",")):
                backend = affinity.build(affinity.AffinityChoice(
                    backend="encoder", layer=layer, temperature=temperature), net, offline=True)
                for eps in (float(v) for v in args.eps.split(",")):
                    settings = replace(backend.settings, eps=eps, chunk=4096)
                    c = ranking._loss(backend, settings, source, consistent)
                    f = ranking._loss(backend, settings, source, flickering)
                    print(f"{'':<24}{layer:>6}{temperature:>6}{eps:>6}{c:>12.3e}{f:>12.3e}"
                          f"{f / c:>7.2f}{c * 1e4:>9.2e}", flush=True)


if __name__ == "__main__":
    main()
