"""`syn2real demo` end to end at toy size: renders, trains source-only, adapts, scores, summarises."""

import json

import pytest

from syn2real import demo
from syn2real.config import DatasetConfig
from syn2real.data.synstreets import SynStreetsDataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def toy_demo(monkeypatch):
    monkeypatch.setattr(demo, "SOURCE_FRAMES", 6)
    monkeypatch.setattr(demo, "TARGET_TRAIN_FRAMES", 4)
    monkeypatch.setattr(demo, "TARGET_VAL_FRAMES", 3)
    monkeypatch.setattr(demo, "FRAME_SIZE", (96, 64))


def test_demo_adapts_the_source_only_model_and_reports_the_gain(toy_demo, tmp_path, monkeypatch):
    real_load = demo.load_config

    def small(name, overrides=()):
        return real_load(name, [*overrides, "data.crop_size=[64,96]", "model.pretrained=null",
                                "model.head_channels=16", "data.workers=0"])

    monkeypatch.setattr(demo, "load_config", small)
    run = demo.run_demo(tmp_path, iters=2, workers=1, method="dacs_cpu", adapt_iters=2, rounds=1)
    assert run == tmp_path / "noisy_student_r1"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"source-only", "dacs_cpu", "noisy_student_r1", "gain_miou_points"}
    assert summary["gain_miou_points"] == pytest.approx(
        100 * (summary["noisy_student_r1"]["miou"] - summary["source-only"]["miou"]))
    for name in ("source_only", "dacs_cpu", "noisy_student_r1"):
        assert (tmp_path / name / "report.html").is_file()
    # The adapted run trained on the unlabelled photo train split and started from the source-only weights.
    cfg = (tmp_path / "dacs_cpu" / "config.yaml").read_text()
    assert "init_from: " + str(tmp_path / "source_only" / "checkpoints") in cfg
    assert "selftrain" in cfg
    # The Noisy Student round: the adapted model is its teacher and its start.
    student = (run / "config.yaml").read_text()
    assert "init_from: " + str(tmp_path / "dacs_cpu" / "checkpoints") in student
    assert "teacher: " + str(tmp_path / "dacs_cpu") in student and "noisy_student" in student
    target = SynStreetsDataset(DatasetConfig(kind="synstreets", root=str(tmp_path / "data" / "target"),
                                             split="train"), labels=False)
    assert len(target) == 4
    # A second call re-uses both finished runs instead of training again.
    mtime = (run / "eval" / "final" / "metrics.json").stat().st_mtime
    demo.run_demo(tmp_path, iters=2, workers=1, method="dacs_cpu", adapt_iters=2, rounds=1)
    assert (run / "eval" / "final" / "metrics.json").stat().st_mtime == mtime


def test_adaptation_config_takes_the_method_and_keeps_the_demo_data(tmp_path):
    roots = {"source": tmp_path / "s", "target": tmp_path / "t"}
    cfg = demo.adaptation_config("daformer_cpu", tmp_path, roots, tmp_path / "so" / "checkpoints")
    assert cfg.method.name == "selftrain" and cfg.method.params["ema_alpha"] == 0.99
    assert cfg.data.target.kind == "synstreets" and cfg.data.target.split == "train"
    assert cfg.data.val.root == str(roots["target"]) and cfg.eval.protocol == "cityscapes19"
    assert cfg.train.iters == demo.ADAPT_ITERS and cfg.data.batch_size == demo.ADAPT_BATCH
    plain = demo.adaptation_config("synstreets2camvid_uda", tmp_path, roots, tmp_path / "so")
    assert plain.method.name == "source_only"


def test_self_training_rounds_chain_teachers_and_grow_the_portion(tmp_path):
    roots = {"source": tmp_path / "s", "target": tmp_path / "t"}
    first = demo.self_training_config(tmp_path, roots, tmp_path / "fda_cpu", 1)
    second = demo.self_training_config(tmp_path, roots, tmp_path / "noisy_student_r1", 2)
    assert first.method.name == second.method.name == "noisy_student"
    assert first.method.params["teacher"] == str(tmp_path / "fda_cpu")
    assert second.train.init_from == str(tmp_path / "noisy_student_r1" / "checkpoints")
    assert (first.method.params["portion"], second.method.params["portion"]) == (0.2, 0.25)
    # The student's model noise comes with the preset (Noisy Student: dropout 0.5, stochastic depth 0.2).
    assert (first.model.dropout, first.model.drop_path) == (0.5, 0.2)
    assert first.data.target.root == str(roots["target"]) and second.name == "noisy_student_r2"
