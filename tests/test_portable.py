"""Run folders that work from anywhere: absolute paths in the saved config, files with the umask's mode, no stale
temporary files, one folder per evaluation, and the training run's own messages (progress, warm-up warning)."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from syn2real.cli import app
from syn2real.config import PRESETS_DIR, load_config, save_config
from syn2real.errors import ConfigError
from syn2real.io import atomic_write_text
from syn2real.run import evaluate_run

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# ---- where relative paths start -------------------------------------------------------------------------------


def test_preset_paths_start_at_the_data_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYN2REAL_DATA", raising=False)
    cfg = load_config("synstreets2camvid_active")
    # Default: the current directory, so the repository's commands, run from its root, read ../shared/data.
    assert cfg.data.val.root == str(tmp_path.parent / "shared" / "data" / "camvid")
    assert cfg.active.oracle_data.root == cfg.data.val.root
    assert cfg.train.init_from == str(tmp_path / "runs" / "bench_r" / "adaptsegnet_cpu_seed0" / "checkpoints" /
                                      "iter_000300.safetensors")
    assert cfg.out_dir == str(tmp_path / "runs") and cfg.model.pretrained == "imagenet-offline"
    monkeypatch.setenv("SYN2REAL_DATA", str(tmp_path / "data" / "here"))
    assert load_config("synstreets2camvid_active").data.val.root == str(tmp_path / "data" / "shared" / "data" /
                                                                         "camvid")
    # The same file named by its path (configs/ is a link to the presets) is still a preset.
    assert load_config(PRESETS_DIR / "camvid_supervised.yaml").data.source.root == str(
        tmp_path / "data" / "shared" / "data" / "camvid")
    assert load_config("camvid_supervised").out_dir == str(tmp_path / "runs")  # outputs stay where you are


def test_config_file_paths_start_at_the_files_folder_and_overrides_at_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "cfg" / "parts").mkdir(parents=True)
    (tmp_path / "cfg" / "parts" / "data.yaml").write_text(
        "data:\n  source: {kind: folder, root: frames, id_map: ../maps/ids.yaml}\n")
    (tmp_path / "cfg" / "run.yaml").write_text(
        "base: parts/data.yaml\nout_dir: ../out\nmodel: {pretrained: weights/backbone.safetensors}\n"
        "train: {init_from: ~/start.safetensors}\ndata: {val: {kind: camvid, root: /abs/camvid}}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(tmp_path / "cfg" / "run.yaml", ["data.target={kind: camvid, root: target}"])
    assert cfg.data.source.root == str(tmp_path / "cfg" / "parts" / "frames")  # the base file's own folder
    assert cfg.data.source.id_map == str(tmp_path / "cfg" / "maps" / "ids.yaml")
    assert cfg.out_dir == str(tmp_path / "out")
    assert cfg.model.pretrained == str(tmp_path / "cfg" / "weights" / "backbone.safetensors")
    assert cfg.train.init_from == str(Path.home() / "start.safetensors")
    assert cfg.data.val.root == "/abs/camvid"
    assert cfg.data.target.root == str(elsewhere / "target")  # command line: the current directory
    tag = load_config(tmp_path / "cfg" / "run.yaml", ["model.pretrained=timm:in1k", "out_dir=o"])
    assert tag.model.pretrained == "timm:in1k" and tag.out_dir == str(elsewhere / "o")
    # Saved absolute, the config reads the same from any directory.
    save_config(cfg, tmp_path / "saved.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_config(tmp_path / "saved.yaml") == cfg


def _folder_dataset(root: Path) -> None:
    """4 labelled 32x64 frames, mask ids 0/1/2 -> road/sidewalk/car."""
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, (32, 64), dtype=np.uint8)).save(root / "masks" / f"{i}.png")
    (root / "id_map.yaml").write_text(yaml.safe_dump({"ids": {0: 0, 1: 1, 2: 13}}))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run trained from its parent folder with relative paths only (data/, runs/)."""
    base = tmp_path_factory.mktemp("portable")
    _folder_dataset(base / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        invoke("train", "--config", "cpu_default", "--name", "run", "--out-dir", "runs", "model.pretrained=null",
               "model.head_channels=8", "data.source.kind=folder", "data.source.root=data",
               "data.source.id_map=data/id_map.yaml", "data.val.kind=folder", "data.val.root=data",
               "data.crop_size=[32,64]", "data.batch_size=2", "data.workers=0", "train.iters=2",
               "train.checkpoint_every=1", "optim.warmup_iters=0")
    return base / "runs" / "run"


def test_a_run_folder_evaluates_predicts_reports_and_resumes_from_any_directory(trained_run, tmp_path, monkeypatch):
    base = trained_run.parents[1]
    saved = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert saved["out_dir"] == str(base / "runs")
    assert saved["data"]["source"] == {**saved["data"]["source"], "root": str(base / "data"),
                                       "id_map": str(base / "data" / "id_map.yaml")}
    monkeypatch.chdir(tmp_path)
    result, _ = evaluate_run(trained_run)
    assert result.n_images == 4
    invoke("predict", trained_run, base / "data" / "images" / "0.png", "--out", "preds")
    assert (tmp_path / "preds" / "0.png").is_file()
    invoke("report", trained_run)
    invoke("train", "--config", trained_run / "config.yaml", "--resume", "train.iters=3")
    assert json.loads((trained_run / "checkpoints" / "last.json").read_text())["step"] == 3


# ---- files ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_get_the_umasks_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == mode


def test_stale_temporary_files_are_removed(tmp_path):
    from syn2real.io import remove_stale_temporaries

    stale = tmp_path / "checkpoints" / ".iter_000300.safetensors.k2j4_x9a.tmp"
    young = tmp_path / ".metrics.json.abcdefgh.tmp"
    other = tmp_path / ".notes.tmp"  # not one of ours
    stale.parent.mkdir()
    for path in (stale, young, other):
        path.write_bytes(b"x" * 10)
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and young.exists() and other.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_evaluate_removes_stale_temporaries_of_the_run(trained_run):
    stale = trained_run / "checkpoints" / ".iter_000001.safetensors.abcdefgh.tmp"
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 3600,) * 2)
    evaluate_run(trained_run, name="cleanup")
    assert not stale.exists()


# ---- one folder per evaluation ----------------------------------------------------------------------------------


def test_each_evaluation_keeps_its_own_folder_and_the_report_lists_them_all(trained_run):
    data = trained_run.parents[1] / "data"
    spec = f"folder:{data}:train"
    invoke("evaluate", trained_run, "--data", spec)
    invoke("evaluate", trained_run, "--data", spec, "--size", "32x16")
    invoke("evaluate", trained_run, "--data", spec, "--mode", "slide")
    invoke("evaluate", trained_run, "--data", spec, "--name", "mine")
    folders = {p.name for p in (trained_run / "eval").iterdir()}
    digest = hashlib.sha1(str(data).encode()).hexdigest()[:6]
    new = {f"folder-{digest}_train_cityscapes19_{setting}" for setting in ("whole_native", "whole_32x16",
                                                                          "slide_native")} | {"mine"}
    assert new | {"final"} <= folders
    about = json.loads((trained_run / "eval" / "mine" / "metrics.json").read_text())
    assert about["data"] == {"kind": "folder", "root": str(data), "split": "train"} and about["mode"] == "whole"
    invoke("report", trained_run)
    page = (trained_run / "report.html").read_text()
    for name in folders:
        assert f"<td>{name}</td>" in page
    assert page.count('alt="confusion matrix"') == len(folders)
    with pytest.raises(ConfigError, match="--name must be a folder name other than 'final'"):
        evaluate_run(trained_run, name="final")


def test_confusion_colour_bar_is_in_percent_like_the_cells():
    import torch

    from syn2real.evaluate.evaluator import EvalResult
    from syn2real.evaluate.metrics import ConfusionMatrix

    matrix = ConfusionMatrix(3)
    matrix.update(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
    fig = EvalResult.from_matrix("x", ("a", "b", "c"), matrix, 1)._confusion_figure()
    image = fig.axes[0].images[0]
    assert image.get_clim() == (0.0, 100.0)
    assert np.isclose(image.get_array().max(), 100.0)
    assert {t.get_text() for t in fig.axes[0].texts} == {"100", "50"}


# ---- the training run's messages ---------------------------------------------------------------------------------


def test_a_warm_up_longer_than_most_of_the_run_warns(tmp_path):
    from test_trainer import run_tiny, tiny_config

    with pytest.warns(UserWarning, match=r"optim.warmup_iters=8 for train.iters=8: the learning rate never reaches"):
        run_tiny(tiny_config(tmp_path, "long", "optim.warmup_iters=8", "train.eval_every=0"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_tiny(tiny_config(tmp_path, "short", "optim.warmup_iters=2"))


def test_progress_is_plain_lines_when_stdout_is_not_a_terminal(tmp_path, capsys):
    from test_trainer import run_tiny, tiny_config

    run_tiny(tiny_config(tmp_path, "plain", "train.iters=40", "train.checkpoint_every=0"), progress=True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("train ")]
    assert [ln.split()[1] for ln in lines] == [f"{s}/40" for s in range(2, 41, 2)]  # every 5 %
    assert "(50%) loss_seg" in lines[9] and "eta" in lines[9]


def test_the_demo_says_when_its_budget_is_too_small():
    from syn2real.demo import ADAPT_ITERS, short_budget_note

    warmup = load_config("demo").optim.warmup_iters
    assert short_budget_note(load_config("demo").train.iters, ADAPT_ITERS, warmup) is None
    assert "too little training" in short_budget_note(20, ADAPT_ITERS, warmup)
    assert "too little training" in short_budget_note(load_config("demo").train.iters, 50, warmup)
    assert "adaptation" not in short_budget_note(20, None, warmup)
