"""tools/lite_recipe.py: the lite model's recipe as one resumable command. Its plan is checked
on run folders faked with the files training leaves (checkpoint.pt with its step, the decoder)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lite_recipe", ROOT / "tools" / "lite_recipe.py")
recipe = importlib.util.module_from_spec(_spec)
sys.modules["lite_recipe"] = recipe  # dataclasses look their module up there
_spec.loader.exec_module(recipe)  # type: ignore[union-attr]

STEPS = {"runs/lite-image": 3000, "runs/lite-skip": 1200, "runs/lite-bold": 400,
         "runs/lite-video": 200, "runs/lite-edge": 600, "runs/lite-edge-video": 200}


def _trained(root: Path, run: str, step: int, decoder: bool = True) -> None:
    out = root / run
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"step": step}, out / "checkpoint.pt")
    if decoder:
        (out / "decoder.safetensors").write_bytes(b"x")


def _made(root: Path, folder: str, marker: str) -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / marker).write_text("x")


def _why(todo: list) -> list[str]:
    return [why for _, why in todo]


def test_the_configs_step_counts_are_the_recorded_ones():
    trains = [s for s in recipe.STAGES if s.trains]
    assert {str(s.out): recipe.steps_of(s.config) for s in trains} == STEPS


def test_from_nothing_every_stage_runs_from_its_seed_in_the_readme_order(tmp_path):
    todo = recipe.plan(tmp_path, ("--device", "cuda"))
    assert all(command is not None for command, _ in todo)
    assert [c[c.index("--config") + 1] for c, _ in todo if "--config" in c] == [
        "tools/lite_train.toml", "tools/lite_skip_train.toml", "tools/lite_bold_train.toml",
        "tools/lite_finetune.toml", "tools/lite_edge_train.toml", "tools/lite_finetune.toml"]
    trains = [c for c, _ in todo if "--config" in c]
    assert all(c[-2:] == ("--device", "cuda") and "--resume" not in c for c in trains)
    assert todo[-1][0][1:3] == ("tools/lite_export.py", "runs/lite-edge-video")


def test_an_interrupted_stage_resumes_and_what_follows_starts_over(tmp_path):
    _made(tmp_path, "data/lite", "SOURCES.md")
    _trained(tmp_path, "runs/lite-image", 3000)
    _made(tmp_path, "runs/lite-skip-init", "model.json")
    _trained(tmp_path, "runs/lite-skip", 1200)
    _trained(tmp_path, "runs/lite-bold", 150, decoder=False)  # Ctrl-C at step 150
    _trained(tmp_path, "runs/lite-video", 200)  # stale: trained from an earlier bold stage
    todo = recipe.plan(tmp_path)
    assert _why(todo)[:6] == [
        "data/lite: done (SOURCES.md is there)", "runs/lite-image: done (step 3000 of 3000)",
        "runs/lite-skip-init: done (model.json is there)",
        "runs/lite-skip: done (step 1200 of 1200)", "runs/lite-bold: resume at step 150 of 400",
        "runs/lite-video: from the seed, 200 steps"]
    assert [c is None for c, _ in todo[:4]] == [True] * 4
    assert todo[4][0][-1] == "--resume" and "--resume" not in todo[5][0]
    assert all(command is not None for command, _ in todo[5:])


def test_remaking_the_data_or_a_grown_folder_keeps_the_stages_after_it(tmp_path):
    # A fresh clone with the committed checkpoint copied in: data/lite is made again (the same
    # files: tools/lite_data.py is deterministic) and the image stage still resumes.
    _trained(tmp_path, "runs/lite-image", 3000)
    _trained(tmp_path, "runs/lite-skip", 600, decoder=False)
    todo = recipe.plan(tmp_path)
    assert _why(todo)[:4] == [
        "data/lite: make", "runs/lite-image: done (step 3000 of 3000)",
        "runs/lite-skip-init: make", "runs/lite-skip: resume at step 600 of 1200"]


def test_a_finished_checkpoint_without_its_model_files_is_resumed_to_write_them(tmp_path):
    # --from-checkpoint copies tools/lite_run (checkpoint at step 3000, no decoder file):
    # resuming at the last step writes the model folder at once.
    _made(tmp_path, "data/lite", "SOURCES.md")
    _trained(tmp_path, "runs/lite-image", 3000, decoder=False)
    todo = recipe.plan(tmp_path)
    assert todo[1][1] == "runs/lite-image: resume at step 3000 of 3000"
    assert todo[1][0][-1] == "--resume"


def test_when_every_stage_is_done_only_the_export_runs(tmp_path):
    _made(tmp_path, "data/lite", "SOURCES.md")
    for run, steps in STEPS.items():
        _trained(tmp_path, run, steps)
    for grown in ("runs/lite-skip-init", "runs/lite-edge-init"):
        _made(tmp_path, grown, "model.json")
    todo = recipe.plan(tmp_path)
    assert [command is None for command, _ in todo] == [True] * len(recipe.STAGES) + [False]
    assert "data/lite/teacher: not needed (later stages are done)" in _why(todo)


def test_the_committed_checkpoint_seeds_the_image_stage_once(tmp_path, monkeypatch):
    committed = tmp_path / "tools" / "lite_run"
    committed.mkdir(parents=True)
    torch.save({"step": 3000}, committed / "checkpoint.pt")
    (committed / "log.jsonl").write_text("{}\n")
    assert "the committed checkpoint" in recipe.seed_image_stage(tmp_path)
    assert recipe.checkpoint_step(tmp_path / "runs" / "lite-image") == 3000
    torch.save({"step": 3100}, tmp_path / "runs" / "lite-image" / "checkpoint.pt")
    assert "has a checkpoint already" in recipe.seed_image_stage(tmp_path)
    assert recipe.checkpoint_step(tmp_path / "runs" / "lite-image") == 3100


def test_the_dry_run_of_from_checkpoint_plans_as_if_it_were_copied(tmp_path):
    _made(tmp_path, "data/lite", "SOURCES.md")
    (tmp_path / "tools" / "lite_run").mkdir(parents=True)
    torch.save({"step": 3000}, tmp_path / "tools" / "lite_run" / "checkpoint.pt")
    assert recipe.plan(tmp_path)[1][1] == "runs/lite-image: from the seed, 3000 steps"
    assert recipe.plan(tmp_path, seeded=True)[1][1] == "runs/lite-image: resume at step 3000 of 3000"
    assert not (tmp_path / "runs").exists()  # a plan copies nothing


def test_an_interrupted_data_folder_is_named_not_trained_on(tmp_path):
    (tmp_path / "data" / "lite" / "content").mkdir(parents=True)
    with pytest.raises(SystemExit, match=r"data/lite: exists without SOURCES\.md .* remove it"):
        recipe.plan(tmp_path)


def test_a_ctrl_c_waits_for_the_stage_to_save_its_checkpoint(tmp_path, monkeypatch):
    # The stage (here a child that sleeps, then exits 130 as training does after saving) gets
    # the Ctrl-C too; the recipe must wait for it, not kill it mid-save.
    monkeypatch.setattr(recipe, "ROOT", tmp_path)
    waits = []
    real_popen = recipe.subprocess.Popen

    class Interrupted(real_popen):  # type: ignore[misc, valid-type]
        def wait(self, timeout=None):
            waits.append(1)
            if len(waits) == 1:
                raise KeyboardInterrupt
            return super().wait(timeout)

    monkeypatch.setattr(recipe.subprocess, "Popen", Interrupted)
    child = "import time, sys; time.sleep(0.5); open('saved', 'w').write('x'); sys.exit(130)"
    try:
        code = recipe.run((sys.executable, "-c", child))
    except KeyboardInterrupt:  # would end the whole pytest session, not fail this test
        pytest.fail("the Ctrl-C left the recipe instead of waiting for the stage")
    assert code == 130 and (tmp_path / "saved").is_file() and len(waits) == 2


def test_a_failing_stage_stops_the_recipe_with_its_exit_code(tmp_path, monkeypatch, capsys):
    ran = []

    def run(command):
        ran.append(command)
        return 0 if len(ran) == 1 else 3

    monkeypatch.setattr(recipe, "ROOT", tmp_path)
    monkeypatch.setattr(recipe, "steps_of", lambda config: 10)
    monkeypatch.setattr(recipe, "run", run)
    assert recipe.main([]) == 3
    assert len(ran) == 2 and ran[0][:2] == (sys.executable, "tools/lite_data.py")
    assert "run tools/lite_recipe.py again to go on from there" in capsys.readouterr().err
