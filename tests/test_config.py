from pathlib import Path

import pytest

from syn2real.config import Config, load_config, save_config
from syn2real.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.iters=7", "data.crop_size=[64,128]", "model.pretrained=null",
                             "data.val.kind=camvid", "optim.lr=1e-3", "method.params.lambda_adv=0.01"])
    assert cfg.train.iters == 7
    assert cfg.data.crop_size == (64, 128)
    assert cfg.model.pretrained is None
    assert cfg.data.val.kind == "camvid" and cfg.data.val.split == "train"
    assert cfg.optim.lr == pytest.approx(1e-3)
    assert cfg.method.params == {"lambda_adv": 0.01}


def test_base_inheritance_and_round_trip(tmp_path):
    cfg = load_config(CONFIGS / "camvid_supervised.yaml")
    # From the base file, overridden where the preset says so.
    assert cfg.model.backbone == "efficientnet_lite0"
    assert cfg.data.crop_size == (256, 384)
    assert cfg.eval.protocol == "camvid11"
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    assert isinstance(load_config(path), Config)


@pytest.mark.parametrize("override, message", [
    ("train.itres=5", "unknown key"),
    ("train.iters=five", "expected int"),
    ("data.crop_size=[1,2,3]", "expected 2 values"),
    ("train", "section.key=value"),
    ("data.source=3", "expected a mapping"),
    ("train.iters.x=1", "expected int"),
])
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)
