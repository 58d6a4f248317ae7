"""Training options: one frozen dataclass, from a TOML file and/or the command line.

``--config train.toml`` holds any option by its long name with underscores (``steps = 2000``,
``lambda_affinity = 0``, ``affinity = "encoder"``); a flag given on the command line wins
over the file, the file over the defaults. Paths in the file are relative to the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import tomlspec
from ..errors import OptionError
from ..weights.registry import DEFAULT_MODEL
from . import affinity
from .affinity import AffinityChoice
from .data import MAX_GAP
from .losses import TEACHER_TERMS, LossWeights


@dataclass(frozen=True)
class TrainOptions:
    stage: str  # "image" (content + style images) or "video" (DAVIS pairs, the paper)
    out: Path  # run folder: checkpoint, log, and the model directory it produces
    styles: Path  # folder of style images (recursive)
    # Image stage: folder of content images; video stage: the teacher's content images (only
    # with a teacher).
    content: Path | None = None
    davis: Path | None = None  # video stage: DAVIS 2017 root
    # Folder of a teacher's paintings of the content images (data.py's layout), which the
    # teacher term (lambda_teacher) compares the decoder's paintings with. Image stage: the
    # teacher's samples are the batch; video stage: a batch of them beside the frame pairs.
    teacher: Path | None = None
    # How the teacher term compares: "features" (the values of the pixels and style layers,
    # where each stroke lies) or "stats" (their channel means and stds over the crop).
    teacher_match: str = "features"
    # Registry name or model directory to start from; `auto` as for render (adain-vgg19 when it
    # can be had, else lite), resolved once: the checkpoint records what it became.
    model: str = DEFAULT_MODEL
    affinity: AffinityChoice = field(default_factory=AffinityChoice)
    weights: LossWeights = field(default_factory=LossWeights)  # lambda_1..4 of eq. 9
    steps: int = 1000  # optimizer steps in total (a resumed run continues to this)
    batch: int = 4  # samples per step and rank (a video sample is a pair of frames)
    lr: float = 1e-4  # Adam learning rate
    seed: int = 0  # same seed, same data and the same CPU result
    crop: int = 256  # square training crop
    # Shorter side the style images are scaled to (at most) before their crop, which is then
    # min(crop, style_size); None: 2 * crop, AdaIN's 512 for 256 crops. A smaller size teaches
    # the decoder smaller strokes (the model's model.json records it as style_scale).
    style_size: int | None = None
    max_gap: int = 5  # frames between the two frames of a pair: 1..max_gap
    checkpoint_every: int = 200  # steps between checkpoints (0: only at the end)
    resume: bool = False  # continue from OUT/checkpoint.pt
    from_scratch: bool = False  # image stage: start from a randomly initialised decoder
    device: str = "auto"  # auto | cpu | cuda
    offline: bool = False  # never download weights


# TOML / flag name -> how to set it on TrainOptions
_LAMBDAS = {"lambda_content": "content", "lambda_style": "style",
            "lambda_affinity": "affinity", "lambda_temporal": "temporal",
            "lambda_gram": "gram", "lambda_teacher": "teacher", "lambda_swd": "swd"}
_AFFINITY = {"affinity": "backend", "affinity_layer": "layer", "eps": "eps", "sigma": "sigma",
             "normalize": "normalize", "temperature": "temperature",
             "affinity_chunk": "chunk"}
_PATHS = ("out", "styles", "content", "davis", "teacher")
_TOP = tuple(f.name for f in fields(TrainOptions) if f.name not in ("affinity", "weights"))
KEYS = (*_TOP, *_LAMBDAS, *_AFFINITY)
_KINDS: dict[str, type | tuple[type, ...]] = {
    "stage": str, "model": str, "device": str, "affinity": str, "resume": bool,
    "teacher_match": str,
    "from_scratch": bool,
    "offline": bool, "normalize": bool, "lr": (int, float), "eps": (int, float),
    "sigma": (int, float), "temperature": (int, float), **dict.fromkeys(_LAMBDAS, (int, float))}


def build(values: dict[str, Any]) -> TrainOptions:
    """TrainOptions from flat ``values`` (names in KEYS; None = not given)."""
    given = {k: v for k, v in values.items() if v is not None}
    lambdas = {_LAMBDAS[k]: float(given.pop(k)) for k in list(given) if k in _LAMBDAS}
    aff = {_AFFINITY[k]: given.pop(k) for k in list(given) if k in _AFFINITY}
    for name in ("stage", "out", "styles"):
        if name not in given:
            raise OptionError(f"--{name} is required (on the command line or in --config)")
    return TrainOptions(**given, weights=LossWeights(**lambdas), affinity=AffinityChoice(**aff))


def merge(cli: dict[str, Any], config: Path | None) -> TrainOptions:
    """Command-line values over the ``config`` file's over the defaults."""
    values = dict(load_config(config)) if config is not None else {}
    values.update({k: v for k, v in cli.items() if v is not None})
    opts = build(values)
    validate(opts)
    return opts


def load_config(path: Path) -> dict[str, Any]:
    data = tomlspec.load(path)
    where = str(path)
    tomlspec.check_keys(data, [k for k in KEYS if k != "stage"], where)
    values: dict[str, Any] = {}
    for key in data:
        kind = _KINDS.get(key, Path if key in _PATHS else int)
        checked = tomlspec.get(data, key, str if kind is Path else kind, where)
        if kind is Path or (key == "model" and _is_path(checked)):
            resolved = path.parent / Path(checked).expanduser()  # relative to the config
            checked = resolved if kind is Path else str(resolved)
        values[key] = checked
    return values


def _is_path(model: str) -> bool:
    """A model given as a directory (it has a path separator or starts with ~ or .), which a
    config file names relative to itself, like its other paths; a plain word is a registry
    name."""
    return "/" in model or model.startswith(("~", "."))


def validate(opts: TrainOptions) -> None:
    if opts.stage not in ("image", "video"):
        raise OptionError(f"stage '{opts.stage}' is not valid; use image or video")
    if opts.stage == "image" and opts.content is None:
        raise OptionError("--content FOLDER is required for `vstpipe train`")
    if opts.stage == "video" and opts.davis is None:
        raise OptionError("--davis FOLDER is required for `vstpipe finetune`")
    for name in ("steps", "batch"):
        if getattr(opts, name) < 1:
            raise OptionError(f"--{name} {getattr(opts, name)}: use 1 or more")
    if opts.crop < 32 or opts.crop % 8:
        raise OptionError(f"--crop {opts.crop}: use a multiple of 8, 32 or more")
    if opts.style_size is not None and not 32 <= opts.style_size <= 2048:
        raise OptionError(f"--style-size {opts.style_size}: use 32..2048")
    if not 1 <= opts.max_gap <= MAX_GAP:
        raise OptionError(f"--max-gap {opts.max_gap}: use 1..{MAX_GAP}")
    if not (math.isfinite(opts.lr) and opts.lr > 0):
        raise OptionError(f"--lr {opts.lr}: use a positive number")
    if opts.checkpoint_every < 0:
        raise OptionError(f"--checkpoint-every {opts.checkpoint_every}: use 0 or more")
    for name in ("content", "style", "affinity", "temporal", "gram", "teacher", "swd"):
        value = getattr(opts.weights, name)
        if not (math.isfinite(value) and value >= 0):
            raise OptionError(f"--lambda-{name} {value}: use a number >= 0")
    if opts.teacher is not None or opts.weights.teacher > 0:
        if opts.teacher is None or opts.weights.teacher == 0:
            raise OptionError("--teacher FOLDER and --lambda-teacher > 0 go together; give "
                              "both")
        if opts.content is None:  # the video stage; the image stage asked above
            raise OptionError("--teacher needs --content FOLDER, the images the teacher "
                              "painted")
    elif opts.stage == "video" and opts.content is not None:
        raise OptionError("--content is for `vstpipe finetune` only with --teacher (the "
                          "images the teacher painted); the frames come from --davis")
    if opts.teacher_match not in TEACHER_TERMS:
        raise OptionError(f"--teacher-match '{opts.teacher_match}' is not valid; choose from "
                          f"{', '.join(TEACHER_TERMS)}")
    if opts.device not in ("auto", "cpu", "cuda"):
        raise OptionError(f"--device '{opts.device}' is not valid; choose from auto, cpu, cuda")
    if uses_affinity(opts):
        affinity.validate(opts.affinity)
    _check_out_apart(opts)


def _check_out_apart(opts: TrainOptions) -> None:
    """The run folder must not be, or lie inside, a folder the run reads: the model
    directory it starts from would be overwritten, and a data folder would take in checkpoints.
    """
    out = opts.out.resolve()
    model_dir = Path(opts.model).expanduser()
    inputs = {"--styles": opts.styles, "--content": opts.content, "--davis": opts.davis,
              "--teacher": opts.teacher,
              "--model": model_dir if model_dir.is_dir() else None}
    for flag, folder in inputs.items():
        if folder is None:
            continue
        folder = folder.resolve()
        if out == folder or folder in out.parents:
            raise OptionError(f"--out {opts.out}: is {'' if out == folder else 'inside '}the "
                              f"{flag} folder {folder}, which this run reads; choose a run "
                              f"folder outside it")


def uses_affinity(opts: TrainOptions) -> bool:
    return opts.stage == "video" and opts.weights.affinity > 0


def describe(opts: TrainOptions) -> dict[str, Any]:
    """JSON-ready description of a run's settings (stored in checkpoints and model.json)."""
    out: dict[str, Any] = {}
    for f in fields(opts):
        value = getattr(opts, f.name)
        if isinstance(value, Path):
            value = str(value)
        elif f.name in ("affinity", "weights"):
            value = {g.name: getattr(value, g.name) for g in fields(value)}
        out[f.name] = value
    return out
