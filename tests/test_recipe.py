"""`syn2real recipe` (syn2real.recipe): stages run in order on tiny `folder` data, finished stages are skipped,
a killed recipe resumes inside the stage it was in, the recipe is checked before any work, and the shipped
recipes load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from syn2real.engine.checkpoint import last_checkpoint
from syn2real.errors import ConfigError, Syn2RealError
from syn2real.recipe import load_recipe, plan, recipe_names, run_recipe, train_configs

pytestmark = pytest.mark.usefixtures("one_thread")


def _write_tiny(tmp_path: Path, folders) -> Path:
    """A tiny training config: a random-init EfficientNet-Lite0 with an 8-channel head on 32x48 crops."""
    source, target = folders
    base = {
        "data": {"source": source, "target": target, "val": {**source, "split": "train"}, "crop_size": [32, 48],
                 "scale_range": [0.75, 1.25], "batch_size": 2, "workers": 0},
        "model": {"pretrained": None, "head_channels": 8, "channels_last": False, "dropout": 0.0},
        "optim": {"lr": 0.01},
        "train": {"iters": 2, "checkpoint_every": 1, "keep_checkpoints": 50, "log_every": 1, "device": "cpu"},
        "eval": {"protocol": "cityscapes19"},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def _write_recipe(tmp_path: Path, stages: list[dict], name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"out": "out", "stages": stages}, sort_keys=False))
    return path


THREE_STAGES = [
    {"name": "source_only", "kind": "train", "config": "tiny.yaml", "set": {"data.target": None}},
    {"name": "adapt", "kind": "train", "config": "tiny.yaml",
     "set": {"method.name": "minent", "train.init_from": "${source_only@2}"}},
    {"name": "student", "kind": "train", "config": "tiny.yaml", "rounds": 2,
     "set": {"method.name": "noisy_student", "train.init_from": "${adapt}"}},
]


def _checkpoint_times(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.glob("*/checkpoints/*"))}


def test_three_stages_run_end_to_end_and_a_rerun_retrains_nothing(tmp_path, tiny_uda_folders):
    _write_tiny(tmp_path, tiny_uda_folders)
    recipe = load_recipe(_write_recipe(tmp_path, THREE_STAGES))
    out = tmp_path / "out"
    assert recipe.out == out
    rows = run_recipe(recipe, progress=False)
    assert [(r.stage, r.status) for r in rows] == [("source_only", "ran"), ("adapt", "ran"),
                                                  ("student_r1", "ran"), ("student_r2", "ran")]
    assert all(r.miou is not None and 0 <= r.miou <= 1 and r.minutes >= 0 for r in rows)
    for row in rows:
        assert last_checkpoint(out / row.stage / "checkpoints")["step"] == 2
    # The references became run folders and checkpoints; round 2 learns from round 1 with CBST's next portion.
    configs = {c.name: c for s in recipe.stages for c in train_configs(recipe, s)}
    assert configs["adapt"].train.init_from == str(out / "source_only" / "checkpoints" / "iter_000002.safetensors")
    assert configs["student_r1"].train.init_from == str(out / "adapt")
    r2 = configs["student_r2"]
    assert r2.train.init_from == r2.method.params["teacher"] == str(out / "student_r1")
    assert r2.method.params["portion"] == pytest.approx(0.25)
    saved = yaml.safe_load((out / "student_r2" / "config.yaml").read_text())
    assert saved["method"]["params"]["teacher"] == str(out / "student_r1")
    summary = json.loads((out / "summary.json").read_text())
    assert [r["stage"] for r in summary["rows"]] == ["source_only", "adapt", "student_r1", "student_r2"]
    table = (out / "summary.md").read_text()
    assert "| stage | kind | folder | mIoU % | minutes |" in table and "| student_r2 | train | `student_r2` |" in table

    before = _checkpoint_times(out)
    again = run_recipe(load_recipe(tmp_path / "recipe.yaml"), progress=False)
    assert [r.status for r in again] == ["skipped"] * 4
    assert [r.miou for r in again] == [r.miou for r in rows]
    assert [r.minutes for r in again] == [r.minutes for r in rows]  # the time of the runs, kept
    assert _checkpoint_times(out) == before  # nothing retrained


KILLABLE_RECIPE = """
import sys, time
from syn2real.methods import METHODS
from syn2real.recipe import load_recipe, run_recipe

MinEnt = METHODS.get("minent")
step = MinEnt.train_step
def slow(self, src, tgt, i):  # stands in for a real model's step time, so the kill lands mid-stage
    time.sleep(0.15)
    return step(self, src, tgt, i)
MinEnt.train_step = slow
run_recipe(load_recipe({recipe!r}), progress=False)
"""


def test_a_killed_recipe_resumes_in_the_stage_and_iteration_it_was_in(tmp_path, tiny_uda_folders):
    _write_tiny(tmp_path, tiny_uda_folders)
    stages = [THREE_STAGES[0], {**THREE_STAGES[1], "set": {**THREE_STAGES[1]["set"], "train.iters": 30,
                                                           "train.checkpoint_every": 2}}]
    path = _write_recipe(tmp_path, stages)
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE_RECIPE.format(recipe=str(path))], env=env,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    last_json = out / "adapt" / "checkpoints" / "last.json"
    deadline = time.monotonic() + 60
    while not last_json.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint of the second stage within 60 s"
        time.sleep(0.02)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    killed_at = last_checkpoint(out / "adapt" / "checkpoints")["step"]
    assert 2 <= killed_at < 30
    before = _checkpoint_times(out)
    kept = {k: v for k, v in before.items() if k.startswith("adapt/") and f"iter_{killed_at:06d}" in k}
    assert kept

    rows = run_recipe(load_recipe(path), progress=False)
    assert [(r.stage, r.status) for r in rows] == [("source_only", "skipped"), ("adapt", "resumed")]
    after = _checkpoint_times(out)
    assert {k: v for k, v in after.items() if k.startswith("source_only/")} == \
        {k: v for k, v in before.items() if k.startswith("source_only/")}  # the finished stage: not retrained
    assert {k: after[k] for k in kept} == kept  # resumed from its checkpoint, not restarted
    assert last_checkpoint(out / "adapt" / "checkpoints")["step"] == 30 and rows[1].miou is not None
    records = [json.loads(line) for line in (out / "adapt" / "metrics.jsonl").read_text().splitlines()]
    logged = [r["step"] for r in records if "loss_seg" in r]
    assert logged == list(range(1, 31))  # one training line per step: no step run twice


@pytest.mark.parametrize("stages, stage, message", [
    ([{"name": "a", "kind": "paint"}], "a", "kind must be one of render, translate, train, evaluate, report"),
    ([{"name": "a", "kind": "train", "config": "tiny.yaml", "set": {"train.init_from": "${b}"}},
      {"name": "b", "kind": "train", "config": "tiny.yaml"}], "a", "names a stage that runs later"),
    ([{"name": "a", "kind": "train", "config": "tiny.yaml", "set": {"train.init_from": "${nowhere}"}}], "a",
     "${nowhere} names no stage"),
    ([{"name": "a", "kind": "train", "config": "no_such_preset"}], "a", "neither a config file nor a preset"),
    ([{"name": "a", "kind": "train", "config": "tiny.yaml", "set": {"train.itres": 3}}], "a", "unknown key"),
    ([{"name": "a", "kind": "train", "config": "tiny.yaml", "rounds": 2}], "a", "needs method.name noisy_student"),
    ([{"name": "a", "kind": "train", "config": "tiny.yaml", "set": {"method.name": "no_such_method"}}], "a",
     "no_such_method"),
    ([{"name": "a", "kind": "train", "config": "tiny.yaml"},
      {"name": "b", "kind": "train", "config": "tiny.yaml", "set": {"train.init_from": "${a@5}"}}], "b",
     "will have no such checkpoint"),
    ([{"name": "a", "kind": "evaluate", "run": "x", "colour": 1}], "a", "unknown option(s) ['colour']"),
    ([{"name": "a", "kind": "render", "n": 4}], "a", "a render stage needs size"),
])
def test_a_bad_recipe_is_one_line_naming_the_file_and_stage(tmp_path, tiny_uda_folders, stages, stage, message):
    _write_tiny(tmp_path, tiny_uda_folders)
    path = _write_recipe(tmp_path, stages)
    with pytest.raises(ConfigError) as error:
        load_recipe(path)
    text = str(error.value)
    assert "\n" not in text and text.startswith(f"{path}: stage {stage!r}: ") and message in text, text
    assert not (tmp_path / "out").exists()  # no work done


def test_the_command_line_reports_a_bad_recipe_in_one_line(tmp_path, tiny_uda_folders, run_cli):
    _write_tiny(tmp_path, tiny_uda_folders)
    path = _write_recipe(tmp_path, [{"name": "a", "kind": "train", "config": "tiny.yaml",
                                     "set": {"train.init_from": "${later}"}},
                                    {"name": "later", "kind": "train", "config": "tiny.yaml"}])
    code, output = run_cli(["recipe", path])
    lines = output.strip().splitlines()
    assert code == 1 and len(lines) == 1 and f"{path}: stage 'a': " in lines[0], output


def test_overrides_set_stage_options_and_training_keys(tmp_path, tiny_uda_folders):
    _write_tiny(tmp_path, tiny_uda_folders)
    path = _write_recipe(tmp_path, THREE_STAGES)
    recipe = load_recipe(path, ["stages.source_only.train.iters=4", "*.train.seed=3", "student.rounds=3",
                                "adapt.set.optim.lr=0.5"], out=tmp_path / "elsewhere")
    configs = {c.name: c for s in recipe.stages for c in train_configs(recipe, s)}
    assert list(configs) == ["source_only", "adapt", "student_r1", "student_r2", "student_r3"]
    assert configs["source_only"].train.iters == 4 and configs["adapt"].train.iters == 2
    assert {c.train.seed for c in configs.values()} == {3}
    assert configs["adapt"].optim.lr == 0.5
    assert configs["student_r3"].method.params["portion"] == pytest.approx(0.3)
    assert all(c.out_dir == str(tmp_path / "elsewhere") for c in configs.values())
    with pytest.raises(ConfigError, match="no stage 'nope'"):
        load_recipe(path, ["nope.train.iters=3"])
    # A reference to a checkpoint the shortened stage no longer writes is caught before any work.
    with pytest.raises(ConfigError, match="stage 'adapt'.*will have no such checkpoint"):
        load_recipe(path, ["source_only.train.checkpoint_every=0", "source_only.train.iters=5"])


@pytest.mark.parametrize("name", ["synstreets2camvid_best", "gta2cs_best"])
def test_the_shipped_recipes_load_and_validate(name):
    recipe = load_recipe(name, ["noisy_student.rounds=2"])  # checked, nothing run
    runs = [run for run, _, _ in plan(recipe)]
    assert runs[-2:] == ["evaluate", "report"] and "noisy_student_r2" in runs and "distill" in runs
    configs = {c.name: c for s in recipe.stages if s.kind == "train" for c in train_configs(recipe, s)}
    assert configs["noisy_student_r2"].method.params["teacher"] == str(recipe.out / "noisy_student_r1")
    assert configs["distill"].method.params["teacher"] == str(recipe.out / "noisy_student_r2")
    student, teacher = configs["distill"].model, configs["noisy_student_r2"].model
    assert (student.head_channels, student.input_scale) < (teacher.head_channels, teacher.input_scale)
    if name == "synstreets2camvid_best":
        assert runs[0] == "render" and recipe.stage("render").options["n"] == 2000
        assert configs["adapt"].train.init_from.endswith("source_only/checkpoints/iter_001000.safetensors")
        assert configs["source_only"].data.source.root == configs["distill"].data.source.root
        # FDA at its three betas from one start; their mean probability (MBT) teaches the first round only.
        betas = [configs[n].method.params["beta"] for n in ("adapt", "adapt_b005", "adapt_b009")]
        assert configs["adapt"].method.name == "fda" and betas == [0.01, 0.05, 0.09]
        assert {configs[n].train.init_from for n in ("adapt", "adapt_b005", "adapt_b009")} == {
            configs["adapt"].train.init_from}
        assert configs["noisy_student_r1"].method.params["teacher"] == [
            str(recipe.out / n) for n in ("adapt", "adapt_b005", "adapt_b009")]
        # The smaller-input student starts from its teacher's weights.
        assert configs["distill"].train.init_from == str(recipe.out / "noisy_student_r2")


def test_recipe_list_shows_the_shipped_recipes(run_cli):
    code, output = run_cli(["recipe", "--list"])
    assert code == 0 and all(name in output for name in recipe_names())
    assert set(recipe_names()) >= {"synstreets2camvid_best", "gta2cs_best"}


def test_render_train_evaluate_report(tmp_path, tiny_uda_folders):
    _write_tiny(tmp_path, tiny_uda_folders)
    rendered = {"kind": "synstreets", "root": "${render}", "split": "train"}
    stages = [
        {"name": "render", "kind": "render", "n": 3, "size": "64x48", "seed": 1},
        {"name": "train", "kind": "train", "config": "tiny.yaml",
         "set": {"data.source": rendered, "data.val": rendered, "data.target": None}},
        {"name": "score", "kind": "evaluate", "run": "${train}", "data": tiny_uda_folders[0]},
        {"name": "report", "kind": "report"},
    ]
    recipe = load_recipe(_write_recipe(tmp_path, stages))
    out = tmp_path / "out"
    rows = run_recipe(recipe, progress=False)
    assert [(r.stage, r.kind, r.status) for r in rows] == [("render", "render", "ran"), ("train", "train", "ran"),
                                                          ("score", "evaluate", "ran"), ("report", "report", "ran")]
    assert len(list((out / "render").rglob("*.png"))) >= 6
    assert train_configs(recipe, recipe.stage("train"))[0].data.source.root == str(out / "render")
    scored = json.loads((out / "score" / "metrics.json").read_text())
    assert scored["run"] == str(out / "train") and rows[2].miou == scored["miou"] and scored["n_images"] == 4
    assert (out / "train" / "report.html").is_file()
    assert [r.status for r in run_recipe(load_recipe(tmp_path / "recipe.yaml"), progress=False)] == ["skipped"] * 4


def test_a_translate_stage_feeds_a_train_stage(tmp_path, tiny_uda_folders):
    _write_tiny(tmp_path, tiny_uda_folders)
    source, target = tiny_uda_folders
    stages = [
        {"name": "translate", "kind": "translate", "config": "cyclegan_cpu", "source": source, "target": target,
         "set": {"iters": 2, "crop": [32, 32]}},
        {"name": "train", "kind": "train", "config": "tiny.yaml", "set": {"data.source.translator": "${translate}"}},
    ]
    recipe = load_recipe(_write_recipe(tmp_path, stages))
    assert plan(recipe)[0] == ("translate", "translate", str(tmp_path / "out" / "translate"))
    assert train_configs(recipe, recipe.stage("train"))[0].data.source.translator == str(tmp_path / "out" / "translate")
    with pytest.raises(ConfigError, match=r"stage 'translate': a translate stage needs target"):
        load_recipe(_write_recipe(tmp_path, [{**stages[0], "target": None}], "bad.yaml"))
    rows = run_recipe(recipe, progress=False)
    assert [(r.stage, r.status) for r in rows] == [("translate", "ran"), ("train", "ran")]
    assert (tmp_path / "out" / "translate" / "checkpoints" / "iter_000002.safetensors").is_file()
    assert [r.status for r in run_recipe(recipe, progress=False)] == ["skipped", "skipped"]


def test_an_error_inside_a_stage_names_the_stage(tmp_path, tiny_uda_folders):
    _write_tiny(tmp_path, tiny_uda_folders)
    path = _write_recipe(tmp_path, [{"name": "a", "kind": "train", "config": "tiny.yaml",
                                     "set": {"data.source.root": str(tmp_path / "missing")}}])
    with pytest.raises(Syn2RealError) as error:
        run_recipe(load_recipe(path), progress=False)
    assert str(error.value).startswith(f"{path}: stage 'a': ") and "\n" not in str(error.value)
