"""The command line end to end: render -> train -> evaluate -> predict -> report, and clear errors."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from syn2real.cli import app
from syn2real.errors import DataError
from syn2real.synth import render_dataset

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def synstreets(tmp_path_factory):
    root = tmp_path_factory.mktemp("synstreets")
    render_dataset(root, n=6, size=(128, 64), style="synthetic", seed=0, workers=1, split="train", progress=False)
    render_dataset(root, n=3, size=(128, 64), style="photo", seed=1, workers=1, split="val", progress=False)
    return root


def test_train_evaluate_predict_report(synstreets, tmp_path):
    invoke("train", "--config", "cpu_default", "--name", "tiny", "--out-dir", tmp_path,
           "data.source.kind=synstreets", f"data.source.root={synstreets}",
           "data.val.kind=synstreets", f"data.val.root={synstreets}", "data.val.split=val",
           "data.crop_size=[64,128]", "data.batch_size=2", "data.workers=0",
           "train.iters=3", "train.checkpoint_every=2", "train.log_every=1")
    run = tmp_path / "tiny"
    assert (run / "config.yaml").is_file()
    final = json.loads((run / "eval" / "final" / "metrics.json").read_text())
    assert final["n_images"] == 3 and 0.0 <= final["miou"] <= 1.0
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
            if "loss_seg" in line] == [1, 2, 3]

    out = invoke("evaluate", run, "--data", f"synstreets:{synstreets}:val", "--mode", "slide")
    assert "mIoU" in out
    [scored_dir] = (run / "eval").glob("synstreets-*_val_cityscapes19_slide_native")
    scored = json.loads((scored_dir / "metrics.json").read_text())
    assert scored["n_images"] == 3 and len(scored["iou"]) == 19

    preds = tmp_path / "preds"
    invoke("predict", run, synstreets / "images" / "val", "--out", preds, "--overlay")
    masks = sorted(p.name for p in preds.glob("*.png"))
    assert masks == ["000000.png", "000001.png", "000002.png"]
    with Image.open(preds / "000000.png") as mask:
        assert mask.mode == "P" and mask.size == (128, 64)
    assert len(list(preds.glob("*_overlay.jpg"))) == 3

    invoke("report", run)
    page = (run / "report.html").read_text()
    # Both evaluations' confusion matrices, curves, 3 rows of image | prediction | truth.
    assert "mIoU" in page and page.count("<img") == 3 + 3 * 3


def test_train_resume_continues_to_the_end(synstreets, tmp_path):
    args = ["train", "--config", "cpu_default", "--name", "r", "--out-dir", tmp_path, "model.pretrained=null",
            "data.source.kind=synstreets", f"data.source.root={synstreets}", "data.crop_size=[64,128]",
            "data.batch_size=2", "data.workers=0", "train.checkpoint_every=2"]
    invoke(*args, "train.iters=2")
    invoke(*args, "train.iters=4", "--resume")
    assert json.loads((tmp_path / "r" / "checkpoints" / "last.json").read_text())["step"] == 4


def test_select_label_export_for_a_trained_run(synstreets, tmp_path):
    invoke("train", "--config", "cpu_default", "--name", "m", "--out-dir", tmp_path, "model.pretrained=null",
           "model.head_channels=8", "data.source.kind=synstreets", f"data.source.root={synstreets}",
           "data.crop_size=[64,128]", "data.batch_size=2", "data.workers=0", "train.iters=1")
    run = tmp_path / "m"
    target = f"synstreets:{synstreets}:val"
    out = invoke("select", run, "--method", "entropy", "--points", "5", "--data", target)
    assert "round 0:" in out
    requests = json.loads((run / "active" / "round_000" / "requests.json").read_text())
    assert len(requests) == 15 and all(r["kind"] == "point" for r in requests)
    assert len(list((run / "active" / "round_000" / "previews").glob("*.png"))) == 3
    # The same selection again (a re-run after a kill, say) would double the budget: refused, nothing added.
    again = runner.invoke(app, ["select", str(run), "--method", "entropy", "--points", "5", "--data", target])
    assert isinstance(again.exception, DataError) and "round 0 (entropy, 5 points/image) was selected already" in str(
        again.exception)
    assert not (run / "active" / "round_001").exists()
    invoke("select", run, "--method", "labor-spl", "--percent", "1", "--data", target, "--selector-iters", "1")
    assert (run / "active" / "round_001" / "requests.json").is_file()
    out = invoke("label", run / "active", "--oracle", target, "--export", tmp_path / "export")
    assert "oracle answered" in out and "% of pixels" in out
    answers = json.loads((tmp_path / "export" / "answers.json").read_text())
    assert len(answers) == len(requests) + len(json.loads((run / "active" / "round_001" / "requests.json").read_text()))
    assert len(list((tmp_path / "export" / "masks").glob("*.png"))) == 3


@pytest.mark.parametrize("argv, message", [
    (["datasets", "check", "cityscapes", "/nonexistent/cityscapes"], "root not found"),
    (["train", "--config", "no_such_preset"], "neither a config file nor a preset"),
    (["train", "--config", "cpu_default", "train.itres=3"], "unknown key"),
    (["evaluate", "/nonexistent/run"], "not a run folder"),
    (["synth", "--size", "big"], "width x height"),
    (["label", "/nonexistent/requests", "--export", "x"], "not a request folder"),
])
def test_errors_are_one_line_without_traceback(argv, message):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "300"}
    proc = subprocess.run([sys.executable, "-m", "syn2real.cli", *argv], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_errors_stay_on_one_line_when_piped_into_a_narrow_terminal():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "40"}
    proc = subprocess.run([sys.executable, "-m", "syn2real.cli", "evaluate", "/nonexistent/run/with/a/long/name"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "/nonexistent/run/with/a/long/name/config.yaml is missing" in proc.stderr


def test_version():
    from importlib.metadata import version

    assert invoke("--version").strip() == f"syn2real {version('syn2real')}"


def test_every_commands_help_has_examples():
    for command in ("train", "evaluate", "predict", "synth", "select", "label", "report", "list", "demo"):
        text = invoke(command, "--help")
        assert text.count(f"syn2real {command} ") >= 2, command  # the usage line and an example


def test_only_rank_0_prints_under_torchrun():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    printed = [subprocess.run([sys.executable, "-m", "syn2real.cli", "list", "heads"], capture_output=True,
                              text=True, env={**env, "RANK": rank}).stdout for rank in ("0", "1")]
    assert "deeplabv3plus" in printed[0] and printed[1] == ""


@pytest.mark.parametrize("what, expected", [("methods", "fda"), ("datasets", "camvid19"), ("selectors", "labor-ppl"),
                                            ("backbones", "efficientnet_lite0"), ("heads", "deeplabv3plus"),
                                            ("presets", "dacs_cpu")])
def test_list_shows_each_registry(what, expected):
    out = invoke("list", what)
    assert expected in out


def test_list_names_what_it_lists():
    result = runner.invoke(app, ["list", "models"])
    assert "nothing to list called 'models'" in str(result.exception)
