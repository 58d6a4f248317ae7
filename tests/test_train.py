"""Training: DAVIS data, the loop (seeded, resumable, interruptible), outputs, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from clips import make_clip
from fakes import save_random_tracker, save_random_weights
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from vstpipe import ops, weights
from vstpipe.cli import app
from vstpipe.errors import OptionError
from vstpipe.train import loop, losses, options
from vstpipe.train.data import Sampler, davis_sequences, image_files, teacher_pairs

runner = CliRunner()


def _texture(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Smooth random RGB (H, W, 3) uint8."""
    small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((size[1], size[0]), Image.BICUBIC))


def make_davis(root: Path, sequences: int = 3, frames: int = 6, listed: list[str] | None = None
               ) -> Path:
    """A DAVIS-layout folder of panning textures (JPEGImages/480p/<seq>/%05d.jpg)."""
    rng = np.random.default_rng(0)
    for s in range(sequences):
        folder = root / "JPEGImages" / "480p" / f"seq{s}"
        folder.mkdir(parents=True)
        image = _texture(rng, (72, 120))
        for t in range(frames):
            Image.fromarray(np.roll(image, 2 * t, axis=1)).save(folder / f"{t:05d}.jpg")
    if listed is not None:
        (root / "ImageSets" / "2017").mkdir(parents=True)
        (root / "ImageSets" / "2017" / "train.txt").write_text("\n".join(listed) + "\n")
    return root


def make_styles(folder: Path, count: int = 2) -> Path:
    rng = np.random.default_rng(1)
    (folder / "nested").mkdir(parents=True)
    for i in range(count):
        where = folder / "nested" if i % 2 else folder
        Image.fromarray(rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)).save(where / f"{i}.png")
    return folder


@pytest.fixture
def uvc_dir(tmp_path: Path) -> Path:
    """Random uvc-lab weights in a model directory (small and fast to train)."""
    folder = tmp_path / "uvc"
    save_random_weights("uvc-lab", folder)
    return folder


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    return make_davis(tmp_path / "davis"), make_styles(tmp_path / "styles")


def _opts(tmp_path: Path, uvc_dir: Path, data: tuple[Path, Path], **kw) -> options.TrainOptions:
    values = {"stage": "video", "out": tmp_path / "run", "davis": data[0], "styles": data[1],
              "model": str(uvc_dir), "affinity": "encoder", "steps": 4, "batch": 2, "crop": 32,
              "checkpoint_every": 2, "device": "cpu", "offline": True} | kw
    return options.merge(values, None)


def _decoder(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "decoder.safetensors"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- data -----------------------------------------------------------------------------------


def test_davis_reader_uses_train_txt_when_present(tmp_path):
    root = make_davis(tmp_path / "d", sequences=3, listed=["seq2", "seq0"])
    assert [s.name for s in davis_sequences(root)] == ["seq2", "seq0"]
    everything = make_davis(tmp_path / "e", sequences=2)
    seqs = davis_sequences(everything)
    assert [s.name for s in seqs] == ["seq0", "seq1"] and len(seqs[0].frames) == 6


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_bad_folders_are_one_line_errors(tmp_path, case):
    root = tmp_path / "d"
    if case == "empty":
        (root / "JPEGImages" / "480p" / "seq0").mkdir(parents=True)
    with pytest.raises(OptionError, match=str(root)):
        davis_sequences(root)
    (tmp_path / "s").mkdir()
    with pytest.raises(OptionError, match="no images in the style folder"):
        image_files(tmp_path / "s", "style")


def test_pairs_are_one_sequence_within_max_gap_with_the_same_crop_and_flip(tmp_path):
    # Frame t of sequence s is a flat grey of level 20 t + 10 s: the difference of a pair's
    # levels is a multiple of 20 (the gap) only when both frames come from one sequence.
    root = tmp_path / "d"
    for s in range(2):
        folder = root / "JPEGImages" / "480p" / f"seq{s}"
        folder.mkdir(parents=True)
        for t in range(12):
            Image.fromarray(np.full((40, 48, 3), 20 * t + 10 * s, np.uint8)).save(
                folder / f"{t:05d}.jpg")
    seqs = davis_sequences(root)
    sampler = Sampler(seed=3, rank=0, crop=32)
    gaps = set()
    for _ in range(60):
        a, b = sampler.pair(seqs, max_gap=5)
        assert a.shape == b.shape == (3, 32, 32)
        steps = float(b.mean() - a.mean()) * 255 / 20
        gap = round(steps)
        assert abs(steps - gap) < 0.1 and 1 <= gap <= 5
        gaps.add(gap)
    assert gaps == {1, 2, 3, 4, 5}
    # Same crop and flip: a sequence whose frames are identical gives identical pairs.
    same = make_davis(tmp_path / "same", sequences=1, frames=4)
    for path in sorted((same / "JPEGImages" / "480p" / "seq0").glob("*.jpg"))[1:]:
        path.write_bytes((same / "JPEGImages" / "480p" / "seq0" / "00000.jpg").read_bytes())
    for _ in range(10):
        a, b = sampler.pair(davis_sequences(same), max_gap=3)
        assert torch.equal(a, b)


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    styles = make_styles(tmp_path / "s", count=1)
    (styles / "broken.jpg").write_bytes(b"not a jpeg")
    sampler = Sampler(seed=0, rank=0, crop=32)
    files = image_files(styles, "style")
    for _ in range(20):
        assert sampler.image(files).shape == (3, 32, 32)
    assert sampler.skipped and all(p.name == "broken.jpg" for p in sampler.skipped)


def test_style_size_scales_the_style_images_before_their_crop(tmp_path):
    """--style-size: the shorter side at most that, the crop min(crop, style_size); by default
    2 x crop (AdaIN's 512 for 256 crops)."""
    half = np.zeros((64, 64, 3), np.uint8)
    half[:, 32:] = 255  # left half black, right half white
    Image.fromarray(half).save(tmp_path / "half.png")
    files = [tmp_path / "half.png"]
    whole = Sampler(seed=0, rank=0, crop=32).image(files, 32)  # the whole image, halved
    assert whole.shape == (3, 32, 32)
    assert whole[:, :, :15].max() < 0.01 and whole[:, :, 17:].min() > 0.99
    smaller = Sampler(seed=0, rank=0, crop=32).image(files, 16)
    assert smaller.shape == (3, 16, 16)
    assert smaller[:, :, :7].max() < 0.01 and smaller[:, :, 9:].min() > 0.99
    sampler = Sampler(seed=0, rank=0, crop=32)  # default 64: a 32-pixel window of the original
    windows = [sampler.image(files) for _ in range(8)]
    assert all(w.shape == (3, 32, 32) for w in windows)
    assert any(float(w.mean()) not in (0.0, 1.0) and abs(float(w.mean()) - 0.5) > 0.05
               for w in windows)


def make_teacher(root: Path, size: tuple[int, int] = (48, 64)) -> tuple[Path, Path, Path]:
    """content/, styles/ (black.png, sub/white.png) and teacher/: for each content image
    (a random texture) the white style's painting is its negative; the black style has none."""
    rng = np.random.default_rng(2)
    content, styles, teacher = root / "content", root / "styles", root / "teacher"
    (content / "sub").mkdir(parents=True)
    (styles / "sub").mkdir(parents=True)
    (teacher / "sub" / "white" / "sub").mkdir(parents=True)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(styles / "black.png")
    Image.fromarray(np.full((40, 40, 3), 255, np.uint8)).save(styles / "sub" / "white.png")
    for name in ("a", "sub/b"):
        rgb = _texture(rng, size)
        Image.fromarray(rgb).save(content / f"{name}.jpg", quality=100)
        rgb = np.asarray(Image.open(content / f"{name}.jpg").convert("RGB"))
        Image.fromarray(255 - rgb).save(teacher / "sub" / "white" / f"{name}.png")
    return content, styles, teacher


def test_a_teacher_sample_is_a_content_crop_the_same_crop_of_its_painting_and_its_style(
        tmp_path):
    content, styles, teacher = make_teacher(tmp_path)
    pairs = teacher_pairs(teacher, content, styles)
    assert sorted((p.content.name, p.style.name) for p in pairs) == [("a.jpg", "white.png"),
                                                                   ("b.jpg", "white.png")]
    sampler = Sampler(seed=0, rank=0, crop=32)
    for _ in range(10):
        x, painting, style = sampler.teacher(pairs)
        assert x.shape == painting.shape == style.shape == (3, 32, 32)
        assert torch.allclose(painting, 1 - x, atol=1e-6)  # the same window
        assert float(x.std()) > 0.05 and float(style.min()) == 1.0  # the pair's style
    # A painting at another size is scaled to the content's training size first.
    big = teacher / "sub" / "white" / "a.png"
    Image.open(big).resize((128, 96), Image.BICUBIC).save(big)
    (teacher / "sub" / "white" / "sub" / "b.png").unlink()
    x, painting, _ = Sampler(seed=0, rank=0, crop=32).teacher(teacher_pairs(teacher, content,
                                                                            styles))
    assert float((painting - (1 - x)).abs().mean()) < 0.03


def test_teacher_folder_errors_name_it(tmp_path):
    content, styles, _ = make_teacher(tmp_path)
    with pytest.raises(OptionError, match=f"{tmp_path / 'nowhere'}: teacher folder not found"):
        teacher_pairs(tmp_path / "nowhere", content, styles)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OptionError, match="no teacher paintings; expected <style>/<content>"):
        teacher_pairs(tmp_path / "empty", content, styles)


def test_ranks_draw_different_samples(tmp_path, data):
    seqs = davis_sequences(data[0])
    a0, _ = Sampler(0, 0, 32).pair(seqs, 5)
    a1, _ = Sampler(0, 1, 32).pair(seqs, 5)
    again, _ = Sampler(0, 0, 32).pair(seqs, 5)
    assert torch.equal(a0, again) and not torch.equal(a0, a1)


# --- options --------------------------------------------------------------------------------


def test_config_file_then_flags(tmp_path, data):
    config = tmp_path / "train.toml"
    config.write_text('davis = "davis"\nstyles = "styles"\nout = "run"\nsteps = 7\n'
                      'lambda_affinity = 0\naffinity = "encoder"\neps = 0.2\n')
    opts = options.merge({"stage": "video", "steps": 3}, config)
    assert opts.steps == 3 and opts.weights.affinity == 0 and opts.affinity.eps == 0.2
    assert opts.davis == tmp_path / "davis" and opts.affinity.backend == "encoder"
    assert opts.weights.style == 3 and opts.weights.temporal == 10  # the paper's defaults
    config.write_text('davis = "davis"\nstyles = "styles"\nout = "run"\nstepz = 7\n')
    with pytest.raises(Exception, match=r"train.toml: unknown key 'stepz'"):
        options.merge({"stage": "video"}, config)


@pytest.mark.parametrize("model, expected", [("../runs/image", "{dir}/../runs/image"),
                                             ("./base", "{dir}/base"), ("lite", "lite")])
def test_a_config_names_a_model_directory_relative_to_itself_and_a_registry_name_as_is(
        tmp_path, model, expected):
    config = tmp_path / "cfg" / "train.toml"
    config.parent.mkdir()
    config.write_text(f'styles = "s"\ndavis = "d"\nout = "run"\nmodel = "{model}"\n')
    opts = options.merge({"stage": "video"}, config)
    assert opts.model == expected.format(dir=config.parent)


@pytest.mark.parametrize("kw, needle", [({"max_gap": 11}, "--max-gap 11"),
                                        ({"crop": 30}, "--crop 30"),
                                        ({"style_size": 16}, "--style-size 16"),
                                        ({"lambda_style": -1.0}, "--lambda-style"),
                                        ({"affinity": "flow"}, "--affinity 'flow'")])
def test_bad_options_name_the_value(tmp_path, uvc_dir, data, kw, needle):
    with pytest.raises(OptionError, match=needle):
        _opts(tmp_path, uvc_dir, data, **kw)


# --- the loop -------------------------------------------------------------------------------


def test_same_seed_same_weights_and_a_resume_continues_exactly(tmp_path, uvc_dir, data):
    straight = loop.train(_opts(tmp_path / "a", uvc_dir, data))
    again = loop.train(_opts(tmp_path / "b", uvc_dir, data))
    assert straight.steps == again.steps == 4
    assert _same(_decoder(tmp_path / "a" / "run"), _decoder(tmp_path / "b" / "run"))
    other = loop.train(_opts(tmp_path / "c", uvc_dir, data, seed=1))
    assert other.steps == 4
    assert not _same(_decoder(tmp_path / "a" / "run"), _decoder(tmp_path / "c" / "run"))
    # Two steps, then --resume to four: the same weights as four steps in one go.
    loop.train(_opts(tmp_path / "d", uvc_dir, data, steps=2))
    resumed = loop.train(_opts(tmp_path / "d", uvc_dir, data, resume=True))
    assert resumed.steps == 4
    assert _same(_decoder(tmp_path / "a" / "run"), _decoder(tmp_path / "d" / "run"))
    lines = [json.loads(x) for x in (tmp_path / "d" / "run" / "log.jsonl").read_text()
             .splitlines()]
    assert [x["step"] for x in lines if "final" not in x] == [1, 2, 3, 4]


def test_ctrl_c_saves_a_checkpoint(tmp_path, uvc_dir, data):
    def interrupt(step: int, steps: int, terms: dict[str, float]) -> None:
        if step == 3:
            raise KeyboardInterrupt

    report = loop.train(_opts(tmp_path, uvc_dir, data, steps=10, checkpoint_every=0),
                        interrupt)
    assert report.interrupted and report.steps == 3
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3
    assert not list((tmp_path / "run").glob(".*tmp"))  # written atomically


def test_loss_decreases_in_the_image_stage(tmp_path, uvc_dir, data):
    content = make_styles(tmp_path / "content", count=1)
    opts = options.merge({"stage": "image", "out": tmp_path / "img", "content": content,
                          "styles": data[1], "model": str(uvc_dir), "steps": 40, "batch": 2,
                          "crop": 32, "lr": 1e-3, "device": "cpu", "checkpoint_every": 0},
                         None)
    loop.train(opts)
    lines = [json.loads(x) for x in (tmp_path / "img" / "log.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "step" in x and "final" not in x]
    assert set(steps[0]) >= {"content", "style", "loss"} and "affinity" not in steps[0]
    first = np.mean([x["loss"] for x in steps[:5]])
    last = np.mean([x["loss"] for x in steps[-5:]])
    assert last < 0.7 * first


def test_auto_resolves_once_says_why_and_resume_keeps_the_model(tmp_path, data, offline_home):
    content = make_styles(tmp_path / "content", count=1)
    values = {"stage": "image", "out": tmp_path / "img", "content": content, "styles": data[1],
              "steps": 2, "batch": 1, "crop": 32, "device": "cpu", "checkpoint_every": 1,
              "offline": True}
    opts = options.merge(values, None)
    assert opts.model == "auto"  # the default, as for render
    notices: list[str] = []
    loop.train(opts, on_notice=notices.append)
    assert len(notices) == 1 and notices[0].startswith("using the embedded lite model")
    state = torch.load(tmp_path / "img" / "checkpoint.pt", weights_only=True)
    assert state["options"]["model"] == "lite"  # what auto became
    notices.clear()
    loop.train(options.merge({**values, "steps": 3, "resume": True}, None),
               on_notice=notices.append)
    state = torch.load(tmp_path / "img" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3 and state["options"]["model"] == "lite" and notices == []


def test_the_gram_term_is_trained_and_recorded_when_weighted(tmp_path, uvc_dir, data):
    content = make_styles(tmp_path / "content", count=1)
    opts = options.merge({"stage": "image", "out": tmp_path / "img", "content": content,
                          "styles": data[1], "model": str(uvc_dir), "steps": 30, "batch": 2,
                          "crop": 32, "lr": 1e-3, "device": "cpu", "checkpoint_every": 0,
                          "lambda_gram": 5.0}, None)
    loop.train(opts)
    lines = [json.loads(x) for x in (tmp_path / "img" / "log.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "step" in x and "final" not in x]
    assert all("gram" in x for x in steps)
    assert np.mean([x["gram"] for x in steps[-5:]]) < 0.7 * np.mean([x["gram"] for x in steps[:5]])
    made = json.loads((tmp_path / "img" / "model.json").read_text())
    assert made["training"]["options"]["weights"]["gram"] == 5.0


def test_the_sliced_wasserstein_term_is_trained_and_recorded_when_weighted(tmp_path, uvc_dir,
                                                                         data):
    content = make_styles(tmp_path / "content", count=1)
    opts = options.merge({"stage": "image", "out": tmp_path / "img", "content": content,
                          "styles": data[1], "model": str(uvc_dir), "steps": 60, "batch": 2,
                          "crop": 32, "lr": 1e-3, "device": "cpu", "checkpoint_every": 0,
                          "lambda_style": 0.0, "lambda_swd": 5.0}, None)
    loop.train(opts)
    lines = [json.loads(x) for x in (tmp_path / "img" / "log.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "step" in x and "final" not in x]
    assert all("swd" in x for x in steps)
    made = json.loads((tmp_path / "img" / "model.json").read_text())
    assert made["training"]["options"]["weights"]["swd"] == 5.0
    # On the same 8 samples and directions, the trained decoder's paintings are nearer the
    # style's distributions than the starting decoder's.
    sampler = Sampler(seed=9, rank=0, crop=32)
    x = torch.stack([sampler.image(image_files(content, "content")) for _ in range(8)])
    style = torch.stack([sampler.image(image_files(data[1], "style")) for _ in range(8)])

    def distance(folder: Path) -> float:
        net = weights.load(weights.resolve(str(folder), offline=True))
        with torch.no_grad():
            out = net.decode(ops.adain(net.encode(x), net.taps(style)[-1]))
            return float(losses.sliced_wasserstein_loss(
                [out, *net.taps(out)], [style, *net.taps(style)],
                torch.Generator().manual_seed(0)))

    assert distance(tmp_path / "img") < 0.8 * distance(uvc_dir)  # 0.61 when written
    # In the video stage too (the style's pixels doubled for the pairs like its features).
    video = _opts(tmp_path, uvc_dir, data, out=tmp_path / "vid", lambda_swd=1.0, steps=2)
    loop.train(video)
    lines = (tmp_path / "vid" / "log.jsonl").read_text().splitlines()
    assert all("swd" in json.loads(x) for x in lines[:2])


@pytest.mark.parametrize("stage, match, term", [("image", "features", losses.teacher_loss),
                                                 ("image", "stats", losses.teacher_stats_loss),
                                                 ("video", "stats", losses.teacher_stats_loss),
                                                 ("video", "regions",
                                                  losses.teacher_regions_loss)])
def test_the_teacher_term_brings_the_paintings_closer_to_the_teachers(tmp_path, uvc_dir,
                                                                       stage, match, term):
    """In the image stage the teacher's samples are the batch; in the video stage a batch of
    them comes beside the frame pairs (the other terms are off here, so only the teacher's
    batch can move the decoder)."""
    content, styles, teacher = make_teacher(tmp_path)
    values = {"stage": stage, "out": tmp_path / "img", "content": content, "styles": styles,
              "teacher": teacher, "teacher_match": match, "lambda_teacher": 1.0,
              "lambda_style": 0.0,
              "lambda_content": 0.0, "model": str(uvc_dir), "steps": 40, "batch": 2,
              "crop": 32, "lr": 3e-4, "device": "cpu", "checkpoint_every": 0}
    if stage == "video":
        values |= {"davis": make_davis(tmp_path / "davis"), "lambda_affinity": 0.0,
                   "lambda_temporal": 0.0}
    loop.train(options.merge(values, None))
    lines = [json.loads(x) for x in (tmp_path / "img" / "log.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "step" in x and "final" not in x]
    assert len(steps) == 40 and all("teacher" in x for x in steps)
    assert all(("temporal" in x) == (stage == "video") for x in steps)  # frame pairs too
    made = json.loads((tmp_path / "img" / "model.json").read_text())
    assert made["training"]["stage"] == stage
    assert made["training"]["options"]["weights"]["teacher"] == 1.0
    assert made["training"]["options"]["teacher"] == str(teacher)
    assert made["training"]["options"]["teacher_match"] == match
    # On the same 8 samples, the trained decoder's paintings are nearer the teacher's.
    sampler = Sampler(seed=9, rank=0, crop=32)
    x, paintings, style = (torch.stack(t) for t in zip(
        *[sampler.teacher(teacher_pairs(teacher, content, styles)) for _ in range(8)],
        strict=True))

    def distance(folder: Path) -> float:
        net = weights.load(weights.resolve(str(folder), offline=True))
        with torch.no_grad():
            out = net.decode(ops.adain(net.encode(x), net.taps(style)[-1]))
            return float(term([out, *net.taps(out)], [paintings, *net.taps(paintings)]))

    assert distance(tmp_path / "img") < 0.85 * distance(uvc_dir)  # 0.73 either way when written


@pytest.mark.parametrize("stage, kw, needle", [
    ("image", {"lambda_teacher": 1.0}, "--teacher FOLDER and --lambda-teacher > 0 go together"),
    ("image", {"teacher": "t"}, "--teacher FOLDER and --lambda-teacher > 0 go together"),
    ("image", {"teacher": "t", "lambda_teacher": -1.0}, "--lambda-teacher -1.0: use a number"),
    ("video", {"teacher": "t", "lambda_teacher": 1.0},
     "--teacher needs --content FOLDER, the images the teacher painted"),
    ("video", {"content": "c"}, "--content is for `vstpipe finetune` only with --teacher"),
    ("image", {"teacher": "t", "lambda_teacher": 1.0, "teacher_match": "strokes"},
     "--teacher-match 'strokes' is not valid; choose from features, stats, regions")])
def test_teacher_options_go_together(tmp_path, stage, kw, needle):
    values = {"stage": stage, "out": tmp_path / "run", "davis": tmp_path / "d",
              "styles": tmp_path / "s", "model": "lite"}
    if stage == "image":
        values["content"] = tmp_path / "c"
    values |= {k: tmp_path / v if k in ("teacher", "content") else v for k, v in kw.items()}
    with pytest.raises(OptionError, match=needle):
        options.merge(values, None)
    if stage == "video" and "teacher" in kw:  # with the content folder, the options hold
        opts = options.merge(values | {"content": tmp_path / "c"}, None)
        assert opts.teacher == tmp_path / "t" and opts.content == tmp_path / "c"


def test_train_takes_the_teacher_from_the_command_line_and_config(tmp_path):
    config = tmp_path / "train.toml"
    config.write_text('content = "c"\nstyles = "s"\nout = "run"\nteacher = "t"\n'
                      'lambda_teacher = 2\nteacher_match = "stats"\n')
    result = runner.invoke(app, ["train", "--config", str(config), "--lambda-teacher", "-1"])
    assert result.exit_code == 1
    assert "--lambda-teacher -1.0: use a number >= 0" in result.output
    opts = options.merge({"stage": "image"}, config)
    assert opts.teacher == tmp_path / "t" and opts.weights.teacher == 2.0
    assert opts.teacher_match == "stats"
    result = runner.invoke(app, ["train", "--config", str(config), "--teacher-match", "pixels"])
    assert result.exit_code == 1
    assert "--teacher-match 'pixels' is not valid; choose from features, stats" in result.output
    # `vstpipe finetune` takes the same flags, and the teacher's content folder.
    result = runner.invoke(app, ["finetune", "--davis", str(tmp_path / "d"), "--styles",
                                 str(tmp_path / "s"), "--out", str(tmp_path / "run"),
                                 "--teacher", str(tmp_path / "t"), "--lambda-teacher", "1"])
    assert result.exit_code == 1
    assert "--teacher needs --content FOLDER" in result.output
    result = runner.invoke(app, ["finetune", "--davis", str(tmp_path / "d"), "--styles",
                                 str(tmp_path / "s"), "--out", str(tmp_path / "run"),
                                 "--content", str(tmp_path / "c"), "--teacher",
                                 str(tmp_path / "t"), "--lambda-teacher", "1",
                                 "--teacher-match", "pixels"])
    assert result.exit_code == 1
    assert "--teacher-match 'pixels' is not valid" in result.output


def test_uvc_backend_loads_the_published_checkpoint_layout(tmp_path, uvc_dir, data,
                                                           vstpipe_home):
    checkpoint = save_random_tracker(tmp_path / "ckpt" / "checkpoint_latest.pth.tar")
    imported = runner.invoke(app, ["models", "import", "uvc-tracker", "--unverified",
                                   str(checkpoint)])
    assert imported.exit_code == 0, imported.output
    report = loop.train(_opts(tmp_path, uvc_dir, data, affinity="uvc", steps=2, crop=64))
    assert report.terms["affinity"] > 0
    spec = json.loads((tmp_path / "run" / "model.json").read_text())
    assert spec["training"]["affinity_backend"] == "uvc"


def test_uvc_backend_without_weights_says_how_to_get_them(tmp_path, uvc_dir, data,
                                                          vstpipe_home):
    result = runner.invoke(app, ["finetune", "--davis", str(data[0]), "--styles", str(data[1]),
                                 "--out", str(tmp_path / "run"), "--model", str(uvc_dir),
                                 "--offline", "--steps", "1"])
    assert result.exit_code == 1
    line = result.output.strip()
    assert len(line.splitlines()) == 1
    for needle in ("vstpipe models pull", "vstpipe models import", "--affinity encoder"):
        assert needle in line


# --- the command line, end to end -----------------------------------------------------------


def test_finetune_20_steps_writes_a_model_that_render_uses(tmp_path, adain_home, data):
    out = tmp_path / "steady"
    result = runner.invoke(app, ["finetune", "--davis", str(data[0]), "--styles", str(data[1]),
                                 "--out", str(out), "--affinity", "encoder", "--steps", "20",
                                 "--batch", "1", "--crop", "64", "--checkpoint-every", "10",
                                 "--offline"])
    assert result.exit_code == 0, result.output
    spec = json.loads((out / "model.json").read_text())
    assert spec["arch"] == "adain-vgg19" and spec["encoder_from"] == "adain-vgg19"
    training = spec["training"]
    assert training["steps"] == 20 and training["affinity_backend"] == "encoder"
    assert training["options"]["weights"] == {"content": 1.0, "style": 3.0,
                                              "affinity": 10000.0, "temporal": 10.0,
                                              "gram": 0.0, "teacher": 0.0, "swd": 0.0}
    assert set(training["final_terms"]) == {"content", "style", "affinity", "temporal", "loss"}
    lines = (out / "log.jsonl").read_text().splitlines()
    assert len(lines) == 21  # 20 steps and the final summary
    clip = make_clip(tmp_path / "in.mp4", frames=5)

    def render(model: str, name: str) -> list[np.ndarray]:
        # Lossless, so the frames are the network's: this machine's H.264 encoder gave
        # different bytes for the same frames in 4 of 40 runs while another thread decoded.
        done = runner.invoke(app, ["render", str(clip), "--model", model, "--style",
                                   str(next(data[1].glob("*.png"))), "--out",
                                   str(tmp_path / name), "--offline", "--precision", "fp32",
                                   "--codec", "ffv1"])
        assert done.exit_code == 0, done.output
        with av.open(str(tmp_path / name)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    first = render(str(out), "o.mkv")
    assert len(first) == 5
    # Installed under a name of its own, it renders by that name, bit for bit the same.
    imported = runner.invoke(app, ["models", "import", "my-steady", str(out)])
    assert imported.exit_code == 0, imported.output
    again = render("my-steady", "o2.mkv")
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    twice = runner.invoke(app, ["models", "import", "my-steady", str(out)])
    assert twice.exit_code == 1 and "already installed" in twice.output


def test_two_processes_end_with_identical_weights(tmp_path, uvc_dir, data):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "vstpipe", "finetune", "--davis", str(data[0]),
           "--styles", str(data[1]), "--out", str(out), "--model", str(uvc_dir),
           "--affinity", "encoder", "--steps", "3", "--batch", "1", "--crop", "32",
           "--device", "cpu", "--offline"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("wrote model") == 1  # rank 0 alone reports
    spec = json.loads((out / "model.json").read_text())
    assert spec["training"]["ranks"] == 2 and spec["training"]["ranks_identical"] is True
    steps = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in steps if "final" not in x] == [1, 2, 3]  # rank 0 alone logs


def test_train_command_takes_a_config_file_and_flags_win(tmp_path, uvc_dir, data):
    content = make_styles(tmp_path / "content", count=2)
    config = tmp_path / "train.toml"
    config.write_text(f'content = "content"\nstyles = "{data[1]}"\nout = "image-run"\n'
                      f'model = "{uvc_dir}"\nsteps = 9\nbatch = 1\ncrop = 32\n'
                      'device = "cpu"\nlambda_style = 5\n')
    result = runner.invoke(app, ["train", "--config", str(config), "--steps", "3"])
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "image-run" / "model.json").read_text())
    assert spec["training"]["steps"] == 3 and spec["training"]["stage"] == "image"
    assert spec["training"]["options"]["weights"]["style"] == 5.0
    assert spec["training"]["options"]["content"] == str(content)


def test_tracker_features_follow_uvc_preprocessing():
    import cv2

    from vstpipe import model

    tracker = model.UVCTracker().eval()
    seen = {}
    tracker.gray_encoder.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        feats = tracker(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)
    assert feats.shape == (1, 512, 6, 8)  # 512 channels at stride 8
    # UVC: OpenCV 8-bit Lab, L / 256 in all three channels, then ImageNet mean/std.
    lightness = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32) / 256
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = (lightness[None] - mean[:, None, None]) / std[:, None, None]
    assert np.abs(seen["x"][0].numpy() - expected).max() < 1.5 / 256 / 0.224


@pytest.mark.requires_cuda
def test_finetune_runs_in_mixed_precision_on_cuda(tmp_path, uvc_dir, data):
    report = loop.train(_opts(tmp_path, uvc_dir, data, device="cuda", steps=2))
    assert report.steps == 2 and all(np.isfinite(v) for v in report.terms.values())
