"""Bad config values through the real command line: `syn2real train --config PRESET key=value` must stop at once
with exit status 1 and one `error:` line naming the key and the bad value, before writing anything.

The matrix runs `syn2real.cli.main` (the console script's function) in-process, so it costs no interpreter start
per case; `test_the_console_script_prints_one_line` runs the installed `syn2real` script itself for a few cases.
Every case starts from a command that trains (`test_the_base_command_trains`), so a value that slips through
shows up as a run, a late failure or a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image


SCRIPT = Path(sys.executable).with_name("syn2real")


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory) -> Path:
    """A labelled `folder` dataset: 4 frames of 32x64, mask ids 0/1/2 -> road/sidewalk/car."""
    root = tmp_path_factory.mktemp("folder_data")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, (32, 64), dtype=np.uint8)).save(root / "masks" / f"{i}.png")
    (root / "id_map.yaml").write_text(yaml.safe_dump({"ids": {0: 0, 1: 1, 2: 13}}))
    return root


def base_args(data: Path, out_dir: Path, config: str | Path = "cpu_default") -> list[str]:
    """A one-iteration CPU run of `config` on `data`, scored on it at the end: valid as it stands."""
    ds = f"{{kind: folder, root: {data}}}"
    return ["train", "--config", str(config), "--out-dir", str(out_dir), "--name", "run",
            f"data.source={ds}", f"data.val={ds}", "model.pretrained=null", "model.head_channels=8",
            "model.channels_last=false", "data.crop_size=[32,64]", "data.batch_size=2", "data.workers=0",
            "train.iters=1", "train.device=cpu", "train.log_every=1"]


def written(out_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*")) if out_dir.is_dir() else []


def test_the_base_command_trains(folder_data, tmp_path, run_cli):
    out_dir = tmp_path / "runs"
    code, output = run_cli(base_args(folder_data, out_dir))
    assert code == 0, output
    assert (out_dir / "run" / "config.yaml").is_file() and (out_dir / "run" / "eval" / "final").is_dir()


# (override, what the error line must name besides the key). The audit's cases come first.
BAD_VALUES = [
    ("eval.protocol=bogus", "'bogus'"),
    ("train.checkpoint_every=-1", "-1"),
    ("optim.lr=-0.001", "-0.001"),
    ("optim.lr=0", "0.0"),
    ("data.batch_size=0", "0"),
    ("data.batch_size=-2", "-2"),
    ("data.workers=-1", "-1"),
    ("eval.mode=sliding", "'sliding'"),
    ("optim.name=sgdd", "'sgdd'"),
    ("train.precision=fp64", "'fp64'"),
    ("train.device=gpu", "'gpu'"),
    ("train.iters=0", "0"),
    ("train.keep_checkpoints=0", "0"),
    ("train.log_every=0", "0"),
    ("train.eval_every=-5", "-5"),
    ("data.crop_size=[0,64]", "[0, 64]"),
    ("data.scale_range=[1.5,0.5]", "[1.5, 0.5]"),
    ("data.color_jitter=-0.5", "-0.5"),
    ("data.source.kind=gta6", "'gta6'"),
    ("data.source.limit=0", "0"),
    ("optim.momentum=1.0", "1.0"),
    ("optim.betas=[0.9,1.0]", "[0.9, 1.0]"),
    ("optim.warmup_iters=-1", "-1"),
    ("optim.poly_power=-1", "-1"),
    ("optim.grad_clip=0", "0.0"),
    ("model.dropout=1.5", "1.5"),
    ("model.num_classes=7", "7"),
    ("eval.batch_size=0", "0"),
    ("active.answers=robot", "'robot'"),
    # Names the registries hold, checked when the run starts (syn2real.run.check_names), still before any work.
    ("method.name=dacss", "'dacss'"),
    ("model.backbone=resnet9", "'resnet9'"),
    ("model.head=nohead", "'nohead'"),
]


@pytest.mark.parametrize("override, value", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_bad_value_stops_before_any_work(folder_data, tmp_path, run_cli, override, value):
    out_dir = tmp_path / "runs"
    code, output = run_cli([*base_args(folder_data, out_dir), override])
    key = override.split("=", 1)[0]
    lines = output.strip().splitlines()
    assert code == 1, output
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ") and key in lines[0] and value in lines[0], output
    assert written(out_dir) == []


@pytest.mark.parametrize("target", ["out_dir", "name"])
def test_output_path_that_is_a_file(folder_data, tmp_path, run_cli, target):
    out_dir = tmp_path / "runs"
    if target == "out_dir":
        out_dir.write_text("not a folder\n")
        before = []
    else:
        out_dir.mkdir()
        (out_dir / "run").write_text("not a folder\n")  # --name run
        before = written(out_dir)
    code, output = run_cli(base_args(folder_data, out_dir))
    lines = output.strip().splitlines()
    assert code == 1, output
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"{target} must" in lines[0], output
    assert "existing file" in lines[0]
    if target == "out_dir":
        assert out_dir.read_text() == "not a folder\n"
    else:
        assert written(out_dir) == before and (out_dir / "run").read_text() == "not a folder\n"


@pytest.mark.parametrize("layout", ["itself", "cycle"])
def test_config_whose_base_includes_itself(folder_data, tmp_path, run_cli, layout):
    configs = tmp_path / "configs"
    (configs / "parts").mkdir(parents=True)
    if layout == "itself":
        (configs / "run.yaml").write_text("base: run.yaml\n")
        chain = "run.yaml -> run.yaml"
    else:
        (configs / "run.yaml").write_text("base: [parts/a.yaml]\n")
        (configs / "parts" / "a.yaml").write_text("base: [b.yaml]\n")
        (configs / "parts" / "b.yaml").write_text("base: ../run.yaml\n")
        chain = "run.yaml -> parts/a.yaml -> parts/b.yaml -> run.yaml"
    out_dir = tmp_path / "runs"
    code, output = run_cli(base_args(folder_data, out_dir, configs / "run.yaml"))
    lines = output.strip().splitlines()
    assert code == 1, output
    assert len(lines) == 1 and lines[0].startswith("error: ") and "base" in lines[0] and chain in lines[0], output
    assert written(out_dir) == []


@pytest.mark.skipif(not SCRIPT.is_file(), reason=f"no console script at {SCRIPT}")
@pytest.mark.parametrize("override, key", [("eval.protocol=bogus", "eval.protocol"),
                                           ("train.checkpoint_every=-1", "train.checkpoint_every")])
def test_the_console_script_prints_one_line(tmp_path, override, key):
    out_dir = tmp_path / "runs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "1000"}
    result = subprocess.run([str(SCRIPT), "train", "--config", "dacs_cpu", "--out-dir", str(out_dir), override],
                            check=False, capture_output=True, text=True, env=env, timeout=120)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], lines
    assert written(out_dir) == []
