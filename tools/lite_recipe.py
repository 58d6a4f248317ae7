"""The embedded lite model's whole recipe in one command, stage after stage, resumable.

    python tools/lite_recipe.py                    # from the seeds, every stage
    python tools/lite_recipe.py --from-checkpoint  # the image stage from tools/lite_run (step 3000)
    python tools/lite_recipe.py --dry-run          # what it would run now, and why
    python tools/lite_recipe.py -- --device cuda   # arguments after -- go to every training stage

Run from the repository root, with the ``convert`` and ``peer`` extras installed (the edge
stage's teacher is the peer's network). It runs README "How it was made"'s commands in order
(``STAGES``), each training stage from its config in ``tools/`` with that config's seed and step
count, and ends with ``tools/lite_export.py``, which writes ``models/lite``. Interrupt it at any
point and run it again: a training stage whose run folder holds a checkpoint at its config's
step count and its model files is done and skipped; one with an earlier checkpoint goes on with
``--resume`` (training writes a checkpoint every few steps and on Ctrl-C); a data or grow step
whose output is complete is skipped; the teacher's paintings keep what is already painted.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("data/lite")
CHECKPOINT = "checkpoint.pt"  # vstpipe/train/loop.py's file names
DECODER = "decoder.safetensors"
IMAGE_RUN = Path("runs/lite-image")
COMMITTED = Path("tools/lite_run")  # the image stage's final checkpoint, in the repository


@dataclass(frozen=True)
class Stage:
    """One command of the recipe. ``config``: a training stage's TOML (its step count decides
    when the stage is done); ``out``: the folder it writes; ``done``: for other steps, the file
    whose presence says the step is complete (None: always run, it keeps its own progress)."""

    argv: tuple[str, ...]
    out: Path
    config: Path | None = None
    done: str | None = None

    @property
    def trains(self) -> bool:
        return self.config is not None


def _train(command: str, config: str, out: str, *extra: str) -> Stage:
    return Stage((sys.executable, "-m", "vstpipe", command, "--config", config, *extra), Path(out),
                 config=Path(config))


def _tool(script: str, *args: str, out: str, done: str | None) -> Stage:
    return Stage((sys.executable, f"tools/{script}", *args), Path(out), done=done)


STAGES: tuple[Stage, ...] = (
    _tool("lite_data.py", str(DATA), out=str(DATA), done="SOURCES.md"),
    _train("train", "tools/lite_train.toml", "runs/lite-image"),
    _tool("lite_grow.py", "runs/lite-image", "runs/lite-skip-init", out="runs/lite-skip-init",
          done="model.json"),
    _train("train", "tools/lite_skip_train.toml", "runs/lite-skip"),
    _train("train", "tools/lite_bold_train.toml", "runs/lite-bold"),
    _train("finetune", "tools/lite_finetune.toml", "runs/lite-video"),
    _tool("lite_teacher.py", str(DATA), out=str(DATA / "teacher"), done=None),
    _tool("lite_grow.py", "runs/lite-video", "runs/lite-edge-init", out="runs/lite-edge-init",
          done="model.json"),
    _train("train", "tools/lite_edge_train.toml", "runs/lite-edge"),
    _train("finetune", "tools/lite_finetune.toml", "runs/lite-edge-video",
           "--model", "runs/lite-edge", "--out", "runs/lite-edge-video"),
)
EXPORT = (sys.executable, "tools/lite_export.py", "runs/lite-edge-video", "--before",
          "runs/lite-image", "runs/lite-skip", "runs/lite-bold", "runs/lite-video",
          "runs/lite-edge")


def steps_of(config: Path) -> int:
    """The step count a training config asks for."""
    with (ROOT / config).open("rb") as f:
        return int(tomllib.load(f)["steps"])


def checkpoint_step(out: Path) -> int | None:
    """The step of ``out``'s training checkpoint, None without one."""
    path = out / CHECKPOINT
    if not path.is_file():
        return None
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def plan(root: Path, extra: tuple[str, ...] = (), seeded: bool = False
         ) -> list[tuple[tuple[str, ...] | None, str]]:
    """What to do now, stage by stage: (argv to run or None to skip, why), then the export.
    ``seeded``: as after :func:`seed_image_stage` (for --dry-run --from-checkpoint).

    Once a training stage runs, every later one runs from its start: a later checkpoint was
    trained from what the earlier stage gave before, so it is stale. A data or grow step makes
    the same files from the same inputs, so making it again leaves later stages as they are."""
    todo: list[tuple[tuple[str, ...] | None, str]] = []
    pending = False  # an earlier stage runs, so every later one must too
    for stage in STAGES:
        out = root / stage.out
        if stage.trains:
            assert stage.config is not None
            steps, step = steps_of(stage.config), checkpoint_step(out)
            if seeded and step is None and stage.out == IMAGE_RUN:
                step = checkpoint_step(root / COMMITTED)
            if pending or step is None:
                todo.append(((*stage.argv, *extra), f"{stage.out}: from the seed, {steps} steps"))
            elif step >= steps and (out / DECODER).is_file():
                todo.append((None, f"{stage.out}: done (step {step} of {steps})"))
            else:
                todo.append(((*stage.argv, "--resume", *extra),
                             f"{stage.out}: resume at step {step} of {steps}"))
            pending = pending or todo[-1][0] is not None
        elif stage.done is None:  # keeps its own progress: run it when a later stage runs
            todo.append((stage.argv, f"{stage.out}: complete"))
        elif not pending and (out / stage.done).is_file():
            todo.append((None, f"{stage.out}: done ({stage.done} is there)"))
        else:
            if stage.out == DATA and out.exists():
                raise SystemExit(f"{out}: exists without {stage.done} (an interrupted "
                                 f"tools/lite_data.py); remove it and run again")
            todo.append((stage.argv, f"{stage.out}: make"))  # the same files as before:
            # a data or grow step is deterministic, so the stages after it stay valid
    for i, stage in enumerate(STAGES):  # a step that completes what a later stage uses
        if not stage.trains and stage.done is None and all(c is None for c, _ in todo[i + 1:]):
            todo[i] = (None, f"{stage.out}: not needed (later stages are done)")
    todo.append((EXPORT, "models/lite: the last stage's decoder, as lite-palette"))
    return todo


def seed_image_stage(root: Path) -> str:
    """--from-checkpoint: put the committed image-stage checkpoint (step 3000) in its run
    folder, unless that folder already has one."""
    out = root / IMAGE_RUN
    if (out / CHECKPOINT).exists():
        return f"{out}: has a checkpoint already; --from-checkpoint leaves it"
    out.mkdir(parents=True, exist_ok=True)
    for path in (root / COMMITTED).iterdir():
        shutil.copyfile(path, out / path.name)
    return f"{out}: the committed checkpoint (tools/lite_run)"


def run(command: tuple[str, ...]) -> int:
    """Run one stage to its end and return its exit code. A Ctrl-C reaches the stage too (one
    process group), and training then writes its checkpoint: wait for that rather than kill it."""
    process = subprocess.Popen(command, cwd=ROOT)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            continue


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    extra = tuple(args[args.index("--") + 1:]) if "--" in args else ()
    args = args[:args.index("--")] if "--" in args else args
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-checkpoint", action="store_true",
                        help="start the image stage from tools/lite_run (about 90 minutes "
                             "remain on a 2-core CPU)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    opts = parser.parse_args(args)
    if opts.from_checkpoint and not opts.dry_run:
        print(seed_image_stage(ROOT), flush=True)
    for command, why in plan(ROOT, extra, seeded=opts.from_checkpoint):
        print(f"{why}{'' if command is None else ': ' + shlex.join(command)}", flush=True)
        if command is not None and not opts.dry_run:
            code = run(command)
            if code != 0:
                print(f"stopped: {shlex.join(command)} exited {code}; run "
                      f"tools/lite_recipe.py again to go on from there", file=sys.stderr)
                return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
