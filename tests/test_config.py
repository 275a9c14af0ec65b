from pathlib import Path

import pytest
import yaml

from syn2real import config
from syn2real.config import (
    PRESETS_DIR,
    Config,
    OptimConfig,
    check_config,
    from_dict,
    load_config,
    preset_names,
    preset_parts,
    read_yaml,
    resolve_config_path,
    save_config,
)
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


# ---- `base:` composition and the preset layout ---------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_list_applies_in_order_then_the_files_own_keys(tmp_path):
    _write(tmp_path / "parts" / "model.yaml", "model: {backbone: resnet50, head: aspp, dropout: 0.3}\n")
    _write(tmp_path / "parts" / "small.yaml", "base: model.yaml\nmodel: {dropout: 0.2}\ntrain: {iters: 5}\n")
    _write(tmp_path / "parts" / "params.yaml", "method: {name: selftrain, params: {a: 1, b: 2}}\n")
    run = _write(tmp_path / "run.yaml", "base: [parts/small.yaml, parts/params.yaml]\n"
                                        "model: {head: daformer}\nmethod: {params: {b: 3}}\n")
    cfg = load_config(run)
    assert (cfg.model.backbone, cfg.model.head, cfg.model.dropout) == ("resnet50", "daformer", 0.2)
    assert cfg.train.iters == 5
    assert cfg.method.name == "selftrain" and cfg.method.params == {"a": 1, "b": 3}  # mappings merge key by key
    # A later base overrides an earlier one; one file may be reached twice (not a cycle).
    _write(tmp_path / "later.yaml", "base: [parts/small.yaml, parts/model.yaml, parts/small.yaml]\n")
    assert load_config(tmp_path / "later.yaml").model.dropout == 0.2
    _write(tmp_path / "flip.yaml", "base: [parts/small.yaml, parts/model.yaml]\n")
    assert load_config(tmp_path / "flip.yaml").model.dropout == 0.3
    # No base, an empty list, null: the file alone.
    for base in ("[]", "null", "''"):
        _write(tmp_path / "alone.yaml", f"base: {base}\ntrain: {{iters: 3}}\n")
        assert read_yaml(tmp_path / "alone.yaml") == {"train": {"iters": 3}}


@pytest.mark.parametrize("files, chain", [
    ({"a.yaml": "base: a.yaml\n"}, "a.yaml -> a.yaml"),
    ({"a.yaml": "base: [x/b.yaml]\n", "x/b.yaml": "base: [c.yaml]\n", "x/c.yaml": "base: ../a.yaml\n"},
     "a.yaml -> x/b.yaml -> x/c.yaml -> a.yaml"),
    ({"a.yaml": "base: [b.yaml]\n", "b.yaml": "base: [c.yaml]\n", "c.yaml": "base: b.yaml\n"},
     "b.yaml -> c.yaml -> b.yaml"),
])
def test_a_base_that_includes_itself_names_the_chain(tmp_path, files, chain):
    for name, text in files.items():
        _write(tmp_path / name, text)
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "a.yaml")
    assert "base" in str(e.value) and chain in str(e.value) and "\n" not in str(e.value)


def test_bad_base_entries(tmp_path):
    _write(tmp_path / "num.yaml", "base: [other.yaml, 3]\n")
    with pytest.raises(ConfigError, match="base must be a file name or a list of file names"):
        load_config(tmp_path / "num.yaml")
    _write(tmp_path / "missing.yaml", "base: [nowhere.yaml]\n")
    with pytest.raises(ConfigError, match=r"missing.yaml: base: config file not found: .*nowhere.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_presets_are_the_top_level_files_and_building_blocks_are_listed_apart():
    names = preset_names()
    assert names == sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    assert {"dacs_cpu", "cpu_default", "demo", "camvid_supervised", "synstreets2camvid_uda"} <= set(names)
    parts = preset_parts()
    assert {"data/synstreets2camvid", "model/cpu", "method/dacs", "schedule/cpu_300"} <= set(parts)
    assert not set(names) & set(parts) and all("/" in p for p in parts)
    assert resolve_config_path("dacs_cpu") == PRESETS_DIR / "dacs_cpu.yaml"
    with pytest.raises(ConfigError, match="neither a config file nor a preset"):
        resolve_config_path("method_dacs")


def _bases(path: Path) -> list[Path]:
    base = yaml.safe_load(path.read_text()).get("base") or []
    return [(path.parent / b).resolve() for b in ([base] if isinstance(base, str) else base)]


def test_every_building_block_is_used_and_well_formed():
    used: set[Path] = set()
    todo = [p.resolve() for p in PRESETS_DIR.glob("*.yaml")]
    while todo:
        for base in _bases(todo.pop()):
            if base not in used:
                used.add(base)
                todo.append(base)
    for part in preset_parts():
        path = (PRESETS_DIR / f"{part}.yaml").resolve()
        assert path in used, f"{part} is used by no preset"
        assert path.read_text().startswith("#"), f"{part}: say what it is and where its values come from"
        from_dict(Config, read_yaml(path), part, check=False)  # known keys and types, though not runnable alone


def test_method_parameters_live_in_one_block():
    """A method's presets include its block instead of copying its parameters (DAFormer-style `_base_`)."""
    for preset, block in [("dacs", "method/dacs"), ("dacs_cpu", "method/dacs"), ("iast", "method/iast"),
                          ("iast_cpu", "method/iast"), ("daformer", "method/daformer"),
                          ("daformer_cpu", "method/daformer"), ("fda", "method/fda"), ("fda_cpu", "method/fda"),
                          ("adaptsegnet_cpu", "method/adaptsegnet"), ("advent_cpu", "method/advent")]:
        path = PRESETS_DIR / f"{preset}.yaml"
        assert (PRESETS_DIR / f"{block}.yaml").resolve() in _bases(path), preset
        assert "name" not in (yaml.safe_load(path.read_text()).get("method") or {}), preset
    assert load_config("dacs_cpu").method == load_config("dacs").method
    assert load_config("fda_cpu").method == load_config("fda").method


# ---- every value checked at load time -------------------------------------------------------------------------


def _tiny(*overrides: str, out_dir: Path | None = None) -> Config:
    return load_config("cpu_default", [f"out_dir={out_dir or '/nonexistent/runs'}", *overrides])


@pytest.mark.parametrize("override, message", [
    ("data.resize=[0,10]", "data.resize must be positive integers [H, W] or null; got [0, 10]"),
    ("data.val_resize=[10,-1]", "data.val_resize must be positive integers [H, W] or null; got [10, -1]"),
    ("data.scale_range=[0,1]", "data.scale_range must be [low, high] with 0 < low <= high; got [0.0, 1.0]"),
    ("optim.lr=.inf", "optim.lr must be a finite number; got inf"),
    ("optim.weight_decay=-0.1", "optim.weight_decay must be >= 0; got -0.1"),
    ("optim.warmup_ratio=2", "optim.warmup_ratio must lie in [0, 1]; got 2.0"),
    ("optim.head_lr_mult=-1", "optim.head_lr_mult must be >= 0; got -1.0"),
    ("model.output_stride=4", "model.output_stride must be one of 8, 16, 32; got 4"),
    ("model.aspp_dilations=[]", "model.aspp_dilations must be a non-empty list of positive rates; got []"),
    ("model.head_channels=0", "model.head_channels must be at least 1; got 0"),
    ("train.precision=fp16 | train.device=cpu", "train.precision must be fp32 or bf16 on train.device=cpu"),
    ("train.device=cuda:x", "train.device must be auto, cpu, cuda or cuda:N; got 'cuda:x'"),
    ("eval.mode=slide | eval.stride=[600,100]", "eval.stride must be at most eval.crop_size=[512, 512]"),
    ("eval.crop_size=[0,512]", "eval.crop_size must be positive integers [H, W]; got [0, 512]"),
    ("active.rounds=[]", "active.rounds must be increasing iterations >= 0; got []"),
    ("active.rounds=[-1,5]", "active.rounds must be increasing iterations >= 0; got [-1, 5]"),
    ("active.points=0", "active.points must be at least 1; got 0"),
    ("active.percent=150", "active.percent must lie in (0, 100]; got 150.0"),
    ("active.selector_iters=0", "active.selector_iters must be at least 1; got 0"),
    ("active.selector=entropy | active.points=3 | active.rounds=[0,1000]",
     "active.rounds must be increasing iterations in [0, train.iters=1000); got [0, 1000]"),
    ("active.selector=entropy | active.points=3", "data.target must be set when active.selector is"),
    ("active.selector=entropy | active.points=3 | active.percent=1 | data.target={kind: camvid}",
     "active.points / active.percent: a labelling budget is either points per image or a percent of pixels, not both"),
    ("name=", "name must be a folder name"),
])
def test_bad_values_are_one_line_errors_naming_key_and_value(override, message):
    with pytest.raises(ConfigError) as e:
        _tiny(*override.split(" | "))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_good_edge_values_pass():
    cfg = _tiny("train.device=cuda:1", "train.precision=fp16", "optim.grad_clip=null", "optim.grad_clip=1e-3",
                "train.checkpoint_every=0", "train.eval_every=0", "data.workers=0", "optim.momentum=0",
                "optim.poly_power=0", "data.color_jitter=0", "active.selector_pseudo_threshold=1",
                "eval.mode=slide", "eval.stride=[512,512]", "model.num_classes=11", "data.resize=null")
    assert cfg.train.device == "cuda:1" and cfg.optim.grad_clip == pytest.approx(1e-3)
    # Ignored while active labelling is off: a preset's rounds beyond a shortened run are fine.
    assert _tiny("active.rounds=[0,150]", "train.iters=100").active.rounds == (0, 150)


def test_output_folder_must_not_be_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"^out_dir must lead to a folder .* is an existing file"):
        _tiny(out_dir=tmp_path / "file")
    with pytest.raises(ConfigError, match=r"^out_dir must lead to a folder .*'.*file' is an existing file"):
        _tiny(out_dir=tmp_path / "file" / "deeper")
    with pytest.raises(ConfigError, match=r"^name must lead to a folder .* is an existing file; got 'file'"):
        _tiny("name=file", out_dir=tmp_path)
    (tmp_path / "runs" / "run").mkdir(parents=True)
    assert _tiny("name=run", out_dir=tmp_path / "runs").run_dir == tmp_path / "runs" / "run"


def test_configs_built_in_code_are_checked_too(tmp_path):
    good = {"out_dir": str(tmp_path), "train": {"iters": 3}}
    assert from_dict(Config, good).train.iters == 3
    with pytest.raises(ConfigError, match=r"^train.checkpoint_every must be at least 0; got -1$"):
        from_dict(Config, {**good, "train": {"checkpoint_every": -1}})
    cfg = from_dict(Config, {**good, "eval": {"protocol": "bogus"}}, check=False)  # e.g. a partial block
    with pytest.raises(ConfigError, match="eval.protocol must be one of"):
        cfg.validate()
    with pytest.raises(ConfigError, match=r"^optim.lr must be > 0; got 0.0$"):
        check_config(Config(optim=OptimConfig(lr=0.0)))
    assert Config().validate() == Config()


def test_every_protocol_has_its_label_map():
    """config.py lists the scoring protocols; syn2real.evaluate.protocols holds one label map for each."""
    from syn2real.evaluate import protocols
    from syn2real.labels import SPACES

    assert set(config.EVAL_PROTOCOLS) == set(protocols._FROM_CITYSCAPES19) <= set(SPACES)
