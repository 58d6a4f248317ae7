"""The training loop: image stage and affinity finetune, one process or several (torchrun).

Each step: B samples per rank (content images, or DAVIS frame pairs) and one style image per
sample; AdaIN targets from the frozen encoder; the decoder (the only trained part) decodes them;
the losses of losses.py; Adam. Under ``torchrun`` the decoder is wrapped in
DistributedDataParallel (gloo on the CPU, NCCL on CUDA), every rank draws its own sample stream
(seeded by seed and rank), and rank 0 alone logs and writes files.

Files in the run folder OUT: ``checkpoint.pt`` (decoder, optimizer, step, every rank's sampler
state; written atomically every ``checkpoint_every`` steps, at the end and on Ctrl-C),
``log.jsonl`` (one line per step: every loss term), and the model directory itself
(``decoder.safetensors`` + ``model.json``), so ``vstpipe render --model OUT`` works at once.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel

from .. import atomic, model, ops, weights
from ..errors import OptionError
from ..stylize import resolve_device
from ..weights import modeljson
from ..weights.registry import AUTO
from . import affinity, losses
from .data import Sampler, davis_sequences, image_files, teacher_pairs
from .options import TrainOptions, describe, uses_affinity

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
DECODER = "decoder.safetensors"
_FINAL_WINDOW = 20  # the final loss terms are the mean over this many last steps

Progress = Callable[[int, int, dict[str, float]], None]  # (step, steps, terms)


@dataclass(frozen=True)
class TrainReport:
    steps: int  # the step the run stopped at
    terms: dict[str, float]  # mean loss terms over the last steps
    skipped: int  # image files that did not decode
    interrupted: bool  # stopped by Ctrl-C (a checkpoint was saved)
    seconds: float
    main: bool = True  # this process is rank 0 (the one that reports)


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _distributed(device: torch.device) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size())


@dataclass(frozen=True)
class _Batch:
    content: torch.Tensor  # (B, 3, c, c): images, or the first frames of the pairs
    second: torch.Tensor | None  # video: the second frames
    style: torch.Tensor  # (B, 3, c, c), one per sample
    # The teacher's samples (content, its paintings, styles), each (B, 3, c, c): the image
    # stage's batch itself (content and style above are the same images), the video stage's
    # a batch of its own.
    teacher: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def to(self, device: torch.device) -> _Batch:
        return _Batch(self.content.to(device),
                      self.second.to(device) if self.second is not None else None,
                      self.style.to(device),
                      tuple(t.to(device) for t in self.teacher)  # type: ignore[arg-type]
                      if self.teacher is not None else None)


class _Data:
    """Draws one step's batch for this rank."""

    def __init__(self, opts: TrainOptions, rank: int) -> None:
        self.opts = opts
        self.sampler = Sampler(opts.seed, rank, opts.crop)
        self.styles = image_files(opts.styles, "style")
        if opts.stage == "video":
            self.sequences = davis_sequences(opts.davis)
        else:
            self.content = image_files(opts.content, "content")
        self.pairs = teacher_pairs(opts.teacher, opts.content, opts.styles) \
            if opts.teacher is not None else None

    def _teacher(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        samples = [self.sampler.teacher(self.pairs, self.opts.style_size)
                   for _ in range(self.opts.batch)]
        return tuple(torch.stack(t) for t in zip(*samples, strict=True))  # type: ignore

    def batch(self) -> _Batch:
        if self.pairs is not None and self.opts.stage == "image":
            content, paintings, styles = self._teacher()
            return _Batch(content, None, styles, (content, paintings, styles))
        firsts, seconds = [], []
        for _ in range(self.opts.batch):
            if self.opts.stage == "video":
                a, b = self.sampler.pair(self.sequences, self.opts.max_gap)
                firsts.append(a)
                seconds.append(b)
            else:
                firsts.append(self.sampler.image(self.content))
        styles = [self.sampler.image(self.styles, self.opts.style_size)
                  for _ in range(self.opts.batch)]
        return _Batch(torch.stack(firsts), torch.stack(seconds) if seconds else None,
                      torch.stack(styles),
                      self._teacher() if self.pairs is not None else None)


def _terms(net: model.StyleNet, backend: affinity.Backend | None, opts: TrainOptions,
           batch: _Batch) -> dict[str, torch.Tensor]:
    """The loss terms of one batch (eq. 1, 7, 8, temporal; Gram, sliced Wasserstein and
    teacher when asked)."""
    content, second = batch.content, batch.second
    frames = content if second is None else torch.cat([content, second])
    with torch.no_grad():
        style_taps = net.taps(batch.style)
        if second is not None:
            style_taps = [torch.cat([t, t]) for t in style_taps]  # one style per pair
        target = ops.adain(net.encode(frames), style_taps[-1]).float()
    out = net.decode(target)  # (2B or B, 3, c, c) RGB
    out_taps = net.taps(out)
    out_taps, style_taps = [t.float() for t in out_taps], [t.float() for t in style_taps]
    terms = {"content": losses.content_loss(out_taps[-1], target),
             "style": losses.style_loss(out_taps, style_taps)}
    if opts.weights.gram > 0:
        terms["gram"] = losses.gram_loss(out_taps, style_taps)
    if opts.weights.swd > 0:
        style_pixels = batch.style if second is None else torch.cat([batch.style, batch.style])
        # The pixels also averaged over 8x8 cells: the spread of colour from region to region
        # (README, "Why lite paints one hue"), not only from pixel to pixel.
        terms["swd"] = losses.sliced_wasserstein_loss(
            [out.float(), F.avg_pool2d(out.float(), 8), *out_taps],
            [style_pixels.float(), F.avg_pool2d(style_pixels.float(), 8), *style_taps])
    if batch.teacher is not None:
        if second is None:  # the image stage: the teacher painted this batch
            terms["teacher"] = _teacher_term(net, opts, out, out_taps, batch.teacher[1])
        else:
            t_content, paintings, t_style = batch.teacher
            with torch.no_grad():
                t_target = ops.adain(net.encode(t_content), net.taps(t_style)[-1])
            t_out = net.decode(t_target)
            terms["teacher"] = _teacher_term(net, opts, t_out,
                                             [t.float() for t in net.taps(t_out)], paintings)
    if second is not None:
        first_out, second_out = out.chunk(2)
        if backend is not None:
            with torch.no_grad():
                src = backend(frames).float()
            sty = backend(out).float()
            src_a, src_b = src.chunk(2)
            sty_a, sty_b = sty.chunk(2)
            terms["affinity"] = losses.pair_affinity_loss(src_a, src_b, sty_a, sty_b,
                                                          backend.settings)
        terms["temporal"] = losses.temporal_loss(first_out, second_out)
    return terms


def _teacher_term(net: model.StyleNet, opts: TrainOptions, out: torch.Tensor,
                  out_taps: list[torch.Tensor], paintings: torch.Tensor) -> torch.Tensor:
    """The distance of the decoder's paintings ``out`` (with their style taps) to the
    teacher's ``paintings`` of the same content, as --teacher-match says."""
    with torch.no_grad():
        teacher_taps = [t.float() for t in net.taps(paintings)]
    return losses.TEACHER_TERMS[opts.teacher_match](
        [out.float(), *out_taps], [paintings.float(), *teacher_taps])


def _save_atomic(obj: Any, path: Path) -> None:
    # Replaces the previous checkpoint only once the new one is whole.
    with atomic.TempOutput(path, overwrite=True) as tmp:
        torch.save(obj, tmp.path)
        tmp.commit()


def _rng_states(data: _Data, ranks: _Dist) -> list[dict[str, Any]]:
    mine = data.sampler.rng.bit_generator.state
    if ranks.world == 1:
        return [mine]
    states: list[Any] = [None] * ranks.world
    dist.all_gather_object(states, mine)
    return states


def _write_model(opts: TrainOptions, resolved: weights.ResolvedModel, net: model.StyleNet,
                 step: int, terms: dict[str, float], run: dict[str, Any]) -> None:
    """OUT as a model directory: decoder.safetensors + model.json (encoder by reference)."""
    out = opts.out
    with atomic.TempOutput(out / DECODER, overwrite=True) as tmp:
        save_file({k: v.float().cpu().contiguous() for k, v in net.decoder_state().items()},
                  str(tmp.path))
        tmp.commit()
    files: dict[str, str] = {"decoder": DECODER}
    sources: dict[str, str] = {}
    if "encoder" in resolved.sources:  # a registry model's encoder: referenced by name
        sources["encoder"] = resolved.sources["encoder"]
    else:  # a directory: carry the encoder file along so OUT stands on its own
        encoder = resolved.paths["encoder"]
        if encoder.resolve().parent != out.resolve():
            shutil.copyfile(encoder, out / encoder.name)
        files["encoder"] = encoder.name
    description = (f"{resolved.arch} decoder trained by vstpipe "
                   f"{'finetune' if opts.stage == 'video' else 'train'} from {resolved.name}")
    training = {"stage": opts.stage, "base_model": resolved.name,
                "base_encoder": str(resolved.paths["encoder"]),
                "steps": step, "final_terms": terms, **run, "options": describe(opts)}
    modeljson.write(out, modeljson.dump(arch=resolved.arch, files=files, sources=sources,
                                        description=description, training=training))


def _reinit(decoder: torch.nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    for module in decoder.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.reset_parameters()


def train(opts: TrainOptions, progress: Progress | None = None,
          on_notice: Callable[[str], None] | None = None) -> TrainReport:
    """Run (or resume) training as ``opts`` says; see the module docstring for the files.
    ``on_notice`` is told, at the start, what the user should know (why `auto` chose its
    model)."""
    device = resolve_device(opts.device)
    ranks = _distributed(device)
    if ranks.world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.manual_seed(opts.seed)
    data = _Data(opts, ranks.rank)
    if opts.model == AUTO and opts.resume:  # resumes on the model it began with
        opts = replace(opts, model=_saved_options(opts).get("model", opts.model))
    resolved = weights.resolve(opts.model, offline=opts.offline)
    if resolved.notice is not None and on_notice is not None and ranks.main:
        on_notice(resolved.notice)
    if opts.model == AUTO:
        opts = replace(opts, model=resolved.name)  # what the checkpoint records
    net = weights.load(resolved).to(device)
    backend = affinity.build(opts.affinity, net, offline=opts.offline).to(device) \
        if uses_affinity(opts) else None
    decoder = net.decoder
    if opts.from_scratch:
        _reinit(decoder, opts.seed)
    decoder.train().requires_grad_(True)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=opts.lr)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    opts.out.mkdir(parents=True, exist_ok=True)
    step = _resume(opts, decoder, optimizer, scaler, data, ranks) if opts.resume else 0
    if ranks.world > 1:
        net.decoder = DistributedDataParallel(decoder)
    log = (opts.out / LOG).open("a" if opts.resume else "w", encoding="utf-8") \
        if ranks.main else None
    recent: list[dict[str, float]] = []
    start, interrupted = time.perf_counter(), False

    def checkpoint() -> None:
        states = _rng_states(data, ranks)
        if ranks.main:
            _save_atomic({"decoder": decoder.state_dict(), "optimizer": optimizer.state_dict(),
                          "scaler": scaler.state_dict(), "step": step, "rng": states,
                          "options": describe(opts)}, opts.out / CHECKPOINT)

    try:
        while step < opts.steps:
            batch = data.batch().to(device)
            with torch.autocast("cuda", torch.float16) if amp else nullcontext():
                terms = _terms(net, backend, opts, batch)
            total = losses.total_loss(terms, opts.weights)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            values = {k: float(v.detach()) for k, v in terms.items()}
            values["loss"] = float(total.detach())
            recent = [*recent[-(_FINAL_WINDOW - 1):], values]
            if log is not None:
                log.write(json.dumps({"step": step, **values,
                                      "skipped": len(data.sampler.skipped),
                                      "seconds": round(time.perf_counter() - start, 3)}) + "\n")
                log.flush()
            if progress is not None and ranks.main:
                progress(step, opts.steps, values)
            if opts.checkpoint_every and step % opts.checkpoint_every == 0 and step < opts.steps:
                checkpoint()
    except KeyboardInterrupt:
        interrupted = True
    checkpoint()
    final = {k: float(np.mean([r[k] for r in recent])) for k in recent[0]} if recent else {}
    identical = _ranks_identical(decoder) if ranks.world > 1 else None
    if ranks.main:
        _write_model(opts, resolved, net, step, final,
                     {"affinity_backend": backend.name if backend is not None else None,
                      "ranks": ranks.world, "ranks_identical": identical})
        if log is not None:
            log.write(json.dumps({"final": final, "step": step}) + "\n")
            log.close()
    if ranks.world > 1:
        dist.barrier()
        # Leaving with the group alive aborts the process ("terminate called without an
        # active exception") when gloo's threads are torn down at interpreter exit; so can
        # freeing the DDP wrapper (its reducer) after the group is gone, so it goes first.
        net.decoder = decoder
        gc.collect()
        dist.destroy_process_group()
    return TrainReport(step, final, len(data.sampler.skipped), interrupted,
                       time.perf_counter() - start, ranks.main)


def _ranks_identical(decoder: torch.nn.Module) -> bool:
    """Whether every rank holds exactly the same decoder weights (bitwise)."""
    flat = torch.cat([p.detach().float().flatten().cpu() for p in decoder.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])


def _saved_options(opts: TrainOptions) -> dict[str, Any]:
    """The options a run's checkpoint was written with ({} when there is none yet)."""
    path = opts.out / CHECKPOINT
    if not path.is_file():
        return {}
    return torch.load(path, map_location="cpu", weights_only=True)["options"]


def _resume(opts: TrainOptions, decoder: torch.nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler, data: _Data, ranks: _Dist) -> int:
    path = opts.out / CHECKPOINT
    if not path.is_file():
        raise OptionError(f"--resume: {path} not found; start without --resume")
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = state["options"]
    for key in ("stage", "model", "crop"):
        if saved.get(key) != describe(opts)[key]:
            raise OptionError(f"--resume: {path} was trained with {key} {saved.get(key)!r}, "
                              f"not {describe(opts)[key]!r}")
    if len(state["rng"]) != ranks.world:
        raise OptionError(f"--resume: {path} was written by {len(state['rng'])} processes, "
                          f"this run has {ranks.world}")
    decoder.load_state_dict(state["decoder"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    data.sampler.rng.bit_generator.state = state["rng"][ranks.rank]
    return int(state["step"])
