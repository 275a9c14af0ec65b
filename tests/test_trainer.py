"""The training engine on tiny models and 32x64 images: schedule, checkpoints, exact resume, NaN stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from torchvision import tv_tensors

from syn2real.config import Config, load_config
from syn2real.data import train_transform
from syn2real.engine.checkpoint import last_checkpoint, load_weights, save_checkpoint
from syn2real.engine.distributed import ResumableSampler
from syn2real.engine.optim import build_optimizer, lr_factor
from syn2real.engine.trainer import Trainer
from syn2real.run import train
from syn2real.errors import ConfigError, TrainingError, WeightsError
from syn2real.labels import CITYSCAPES19
from syn2real.methods import METHODS, Method, build_method
from syn2real.methods.source_only import SourceOnly

TESTS = Path(__file__).parent


class TinySegmentor(nn.Module):
    """A real, small conv net with the Segmentor's shape: backbone (with BatchNorm) and head (with dropout)."""

    def __init__(self, num_classes: int = 19):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout2d(0.2), nn.Conv2d(8, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.head(self.backbone(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)


class TinyScenes(torch.utils.data.Dataset):
    """Random 32x64 frames whose label is the brightest channel (road, sidewalk or building): learnable."""

    space = CITYSCAPES19

    def __init__(self, n: int = 12, transform=None, labels: bool = True, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, 3, 32, 64), generator=g, dtype=torch.uint8)
        self.transform, self.labels = transform, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        item = {"image": tv_tensors.Image(self.images[i]), "name": f"frame{i:03d}"}
        if self.labels:
            item["mask"] = tv_tensors.Mask(self.images[i].argmax(0).to(torch.uint8))
        return self.transform(item) if self.transform else item


def tiny_config(tmp_path: Path, name: str = "run", *overrides: str) -> Config:
    return load_config(None, [
        f"out_dir={tmp_path}", f"name={name}", "data.crop_size=[32,48]", "data.scale_range=[0.75,1.25]",
        "data.batch_size=2", "data.workers=0", "model.channels_last=false", "optim.lr=0.05",
        "optim.warmup_iters=2", "train.iters=8", "train.checkpoint_every=4", "train.log_every=2",
        "train.deterministic=true", "train.device=cpu", "eval.protocol=cityscapes19", *overrides,
    ])


def tiny_datasets(cfg: Config, val: bool = True, target: bool = False) -> dict:
    return {"source": TinyScenes(12, train_transform(cfg.data)),
            "target": TinyScenes(10, train_transform(cfg.data), labels=False, seed=1) if target else None,
            "val": TinyScenes(4, seed=2) if val else None}


def run_tiny(cfg: Config, resume: bool = False, method=None, **kwargs) -> Trainer:
    torch.manual_seed(0)  # the same initial weights for every run of a test
    trainer = Trainer(cfg, model=None if method else TinySegmentor(), method=method,
                      datasets=tiny_datasets(cfg), resume=resume, **kwargs)
    trainer.fit()
    return trainer


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture(autouse=True)
def _restore_determinism():
    yield
    torch.use_deterministic_algorithms(False)


# ---- schedule and optimiser ----------------------------------------------------------------------------


def test_poly_schedule_with_linear_warmup(tmp_path):
    optim = tiny_config(tmp_path, "x", "optim.warmup_iters=10", "optim.warmup_ratio=0.1",
                        "optim.poly_power=1.0").optim
    assert lr_factor(0, 100, optim) == pytest.approx(0.1)
    assert lr_factor(5, 100, optim) == pytest.approx(0.95 * 0.55)
    assert lr_factor(10, 100, optim) == pytest.approx(0.9)
    assert lr_factor(100, 100, optim) == 0.0


def test_param_groups_lr_mult_and_frozen_backbone(tmp_path):
    cfg = tiny_config(tmp_path, "x", "optim.backbone_lr_mult=0.1", "optim.head_lr_mult=10")
    model = TinySegmentor()
    opt = build_optimizer(cfg.optim, build_method(cfg, model).param_groups())
    assert [(g["name"], g["lr"]) for g in opt.param_groups] == [("backbone", pytest.approx(0.005)),
                                                                ("head", pytest.approx(0.5))]
    frozen_cfg = tiny_config(tmp_path, "x", "optim.freeze_backbone=true")
    method = build_method(frozen_cfg, model)
    opt = build_optimizer(frozen_cfg.optim, method.param_groups())
    optimised = {id(p) for g in opt.param_groups for p in g["params"]}
    assert optimised == {id(p) for p in model.head.parameters()}
    method.set_train_mode()
    assert model.head.training and not model.backbone.training  # BatchNorm statistics stay put


def test_every_registered_method_is_a_method():
    for name in METHODS:
        assert issubclass(METHODS.get(name), Method), name


def test_method_can_replace_the_source_dataset(tmp_path):
    cfg = tiny_config(tmp_path, "wrapped", "train.iters=2")
    seen = []

    class FirstFrameOnly(SourceOnly):
        def wrap_source_dataset(self, dataset, progress=False):
            return torch.utils.data.Subset(dataset, [0] * len(dataset))

        def train_step(self, src, tgt, step):
            seen.extend(src["name"])
            return super().train_step(src, tgt, step)

    Trainer(cfg, method=FirstFrameOnly(cfg, TinySegmentor()), datasets=tiny_datasets(cfg, val=False)).fit()
    assert seen == ["frame000"] * 4


# ---- data order ----------------------------------------------------------------------------------------


def test_sampler_shards_ranks_and_resumes_mid_epoch():
    full = list(ResumableSampler(10, batch_size=2, seed=3))
    assert len(full) == 10 and sorted(i for i, _ in full) == list(range(10))
    shards = [list(ResumableSampler(10, batch_size=2, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 4  # whole batches only
    assert not {i for i, _ in shards[0]} & {i for i, _ in shards[1]}
    sampler = ResumableSampler(10, batch_size=2, seed=3)
    sampler.set_position(epoch=0, batch=2)
    assert list(sampler) == full[4:]
    sampler.set_position(epoch=1)
    assert [i for i, _ in sampler] != [i for i, _ in full]  # a new order every epoch


# ---- a whole run ---------------------------------------------------------------------------------------


def test_fit_writes_run_folder(tmp_path):
    cfg = tiny_config(tmp_path, "run", "train.eval_every=4", "train.checkpoint_every=2")
    torch.manual_seed(0)
    init = {k: v.clone() for k, v in TinySegmentor().state_dict().items()}
    trainer = run_tiny(cfg)
    run = cfg.run_dir

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "loss_seg" in r]
    assert [r["step"] for r in train_records] == [2, 4, 6, 8]
    assert {"lr/backbone", "lr/head", "images_per_s"} <= train_records[0].keys()
    assert [r["step"] for r in records if "val/mIoU" in r] == [4, 8]
    assert "val/IoU/road" in records[-1]
    assert list((run / "events").iterdir())
    assert load_config(run / "config.yaml") == cfg
    assert json.loads((run / "eval" / "final" / "metrics.json").read_text())["n_images"] == 4

    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["iter_000006.safetensors", "iter_000006.state.pt", "iter_000008.safetensors",
                     "iter_000008.state.pt", "last.json"]
    weights = load_weights(run)
    assert_same_weights(weights, trainer.model.state_dict())
    assert not torch.equal(weights["head.1.weight"], init["head.1.weight"])


def test_keep_checkpoints(tmp_path):
    cfg = tiny_config(tmp_path, "keep1", "train.checkpoint_every=2", "train.keep_checkpoints=1")
    run_tiny(cfg)
    assert sorted(p.name for p in (cfg.run_dir / "checkpoints").iterdir()) == [
        "iter_000008.safetensors", "iter_000008.state.pt", "last.json"]
    with pytest.raises(ConfigError, match="keep_checkpoints must be at least 1"):
        Trainer(tiny_config(tmp_path, "keep0", "train.keep_checkpoints=0"), model=TinySegmentor(),
                datasets=tiny_datasets(cfg))


def test_resume_after_crash_is_bit_identical(tmp_path):
    reference = run_tiny(tiny_config(tmp_path, "uninterrupted")).model.state_dict()

    class CrashAtStep6(SourceOnly):
        def train_step(self, src, tgt, step):
            if step == 6:
                raise RuntimeError("simulated crash")
            return super().train_step(src, tgt, step)

    cfg = tiny_config(tmp_path, "crashed")
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(cfg, method=CrashAtStep6(cfg, TinySegmentor()), datasets=tiny_datasets(cfg)).fit()
    assert last_checkpoint(cfg.run_dir / "checkpoints")["step"] == 4
    resumed = run_tiny(cfg, resume=True)
    assert resumed.step == 8
    assert_same_weights(resumed.model.state_dict(), reference)
    steps = [json.loads(line)["step"] for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps.count(6) == 1  # nothing logged twice after the resume


def test_resume_with_target_loader_and_adamw(tmp_path):
    """A second (unlabelled) loader, AdamW state, bf16 autocast and channels_last also resume exactly."""
    extra = ("optim.name=adamw", "optim.lr=0.01", "train.precision=bf16", "model.channels_last=true",
             "train.iters=6", "train.checkpoint_every=3")

    def run(name, resume=False, crash=None):
        cfg = tiny_config(tmp_path, name, *extra)
        torch.manual_seed(0)

        class SeesTarget(SourceOnly):
            def train_step(self, src, tgt, step):
                assert "mask" not in tgt  # UDA never reads target labels
                if step == crash:
                    raise RuntimeError("simulated crash")
                logits = self.model(tgt["image"])  # entropy on the target: depends on the target order
                entropy = -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()
                self.backward(0.1 * entropy)
                return {"entropy": entropy.item(), **super().train_step(src, tgt, step)}

        trainer = Trainer(cfg, method=SeesTarget(cfg, TinySegmentor()),
                          datasets=tiny_datasets(cfg, val=False, target=True), resume=resume)
        trainer.fit()
        return trainer

    reference = run("a").model.state_dict()
    with pytest.raises(RuntimeError):
        run("b", crash=4)
    assert_same_weights(run("b", resume=True).model.state_dict(), reference)


def test_resume_needs_a_checkpoint_and_a_new_run_refuses_one(tmp_path):
    cfg = tiny_config(tmp_path, "empty")
    with pytest.raises(TrainingError, match="nothing to resume"):
        Trainer(cfg, model=TinySegmentor(), datasets=tiny_datasets(cfg), resume=True)
    cfg = tiny_config(tmp_path, "done", "train.iters=2")
    run_tiny(cfg)
    with pytest.raises(TrainingError, match="already holds checkpoints"):
        Trainer(cfg, model=TinySegmentor(), datasets=tiny_datasets(cfg))


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, "nan", "optim.lr=1e30", "optim.warmup_iters=0", "train.checkpoint_every=1")
    with pytest.raises(TrainingError, match=r"step \d+: non-finite loss \(loss_seg=") as err:
        run_tiny(cfg)
    last = last_checkpoint(cfg.run_dir / "checkpoints")
    assert last is not None and f"step {last['step']}:" in str(err.value)
    assert str(last["weights"]) in str(err.value)
    assert all(torch.isfinite(t).all() for t in load_file(last["weights"]).values())


def test_head_only_then_finetune_from_its_weights(tmp_path):
    head_cfg = tiny_config(tmp_path, "head_only", "optim.freeze_backbone=true", "train.iters=4")
    torch.manual_seed(0)
    init = {k: v.clone() for k, v in TinySegmentor().state_dict().items()}
    head_run = run_tiny(head_cfg)
    head_weights = head_run.model.state_dict()
    for name in init:
        assert torch.equal(head_weights[name], init[name]) == name.startswith("backbone"), name

    ft_cfg = tiny_config(tmp_path, "finetune", "optim.backbone_lr_mult=0.1", "train.iters=2")
    torch.manual_seed(0)
    trainer = Trainer(ft_cfg, model=TinySegmentor(), datasets=tiny_datasets(ft_cfg), init_from=head_cfg.run_dir)
    assert_same_weights(trainer.model.state_dict(), head_weights)
    trainer.fit()
    assert not torch.equal(trainer.model.state_dict()["backbone.0.weight"], head_weights["backbone.0.weight"])

    # The config's train.init_from does the same; the explicit argument wins over it.
    from_cfg = tiny_config(tmp_path, "from_cfg", f"train.init_from={head_cfg.run_dir}")
    trainer = Trainer(from_cfg, model=TinySegmentor(), datasets=tiny_datasets(from_cfg))
    assert_same_weights(trainer.model.state_dict(), head_weights)
    explicit = tiny_config(tmp_path, "explicit", f"train.init_from={tmp_path / 'nowhere'}")
    trainer = Trainer(explicit, model=TinySegmentor(), datasets=tiny_datasets(explicit), init_from=head_cfg.run_dir)
    assert_same_weights(trainer.model.state_dict(), head_weights)

    with pytest.raises(WeightsError, match="missing_run: weights file not found"):
        Trainer(tiny_config(tmp_path, "x"), model=TinySegmentor(), datasets=tiny_datasets(ft_cfg),
                init_from=tmp_path / "missing_run")


# ---- checkpoint files ----------------------------------------------------------------------------------


def test_checkpoint_handles_shared_and_strided_tensors_and_prunes(tmp_path):
    shared = torch.arange(12.0).reshape(3, 4)
    weights = {"a": shared, "tied": shared, "t": shared.t(), "row": shared[1]}
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, weights, {"step": step}, keep=2)
    (tmp_path / "iter_000009.safetensors").write_bytes(b"left by a killed run")
    save_checkpoint(tmp_path, 4, weights, {"step": 4}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "iter_000003.safetensors", "iter_000003.state.pt", "iter_000004.safetensors", "iter_000004.state.pt",
        "last.json"]
    loaded = load_weights(tmp_path)
    assert_same_weights(loaded, {k: v.contiguous() for k, v in weights.items()})
    with pytest.raises(WeightsError, match="weights file not found"):
        load_weights(tmp_path / "iter_000001.safetensors")


# ---- real pieces and a real kill -----------------------------------------------------------------------


def write_folder_dataset(root: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "id_map.yaml").write_text("ids: {0: 0, 1: 1, 2: 2, 3: 255}\n")
    for i in range(n):
        image = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
        mask = image.argmax(2).astype(np.uint8)
        mask[:2] = 3
        Image.fromarray(image).save(root / "images" / f"f{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"f{i:02d}.png")


def test_train_end_to_end_with_real_model_and_reader(tmp_path):
    write_folder_dataset(tmp_path / "src", 6, seed=0)
    write_folder_dataset(tmp_path / "val", 2, seed=1)
    cfg = tiny_config(
        tmp_path, "e2e", "model.backbone=efficientnet_lite0", "model.pretrained=null",
        "model.head_channels=16", "model.channels_last=true", "train.precision=fp32",
        "train.iters=3", "train.checkpoint_every=2", "train.deterministic=false", "data.workers=1",
        f"data.source={{kind: folder, root: {tmp_path / 'src'}}}",
        f"data.target={{kind: folder, root: {tmp_path / 'src'}}}",
        f"data.val={{kind: folder, root: {tmp_path / 'val'}}}")
    run = train(cfg, progress=False)
    assert last_checkpoint(run / "checkpoints")["step"] == 3
    metrics = json.loads((run / "eval" / "final" / "metrics.json").read_text())
    assert metrics["n_images"] == 2 and metrics["protocol"] == "cityscapes19"


def test_supervised_camvid_run_scored_on_camvid11(tmp_path, shared_data):
    """The CamVid "oracle" recipe on real frames: 19-class model, scored through the CamVid-11 protocol."""
    camvid = shared_data / "camvid"
    cfg = tiny_config(
        tmp_path, "camvid", "model.backbone=efficientnet_lite0", "model.pretrained=null", "model.head_channels=16",
        "train.iters=2", "train.deterministic=false", "eval.protocol=camvid11", "data.resize=[72,96]",
        "data.val_resize=[72,96]", f"data.source={{kind: camvid19, root: {camvid}, split: train, limit: 4}}",
        f"data.val={{kind: camvid, root: {camvid}, split: val, limit: 2}}")
    result = Trainer(cfg).fit()
    metrics = json.loads((cfg.run_dir / "eval" / "final" / "metrics.json").read_text())
    assert metrics["protocol"] == "camvid11" and len(metrics["iou"]) == 11
    assert result["val/mIoU"] == pytest.approx(metrics["miou"])


KILLABLE_RUN = """
import sys, time, torch
sys.path.insert(0, {tests!r})
from test_trainer import TinySegmentor, tiny_config, tiny_datasets
from syn2real.engine.trainer import Trainer
from syn2real.methods.source_only import SourceOnly

class Slow(SourceOnly):  # stands in for a real model's step time, so the kill lands mid-run
    def train_step(self, src, tgt, step):
        time.sleep(0.1)
        return super().train_step(src, tgt, step)

from pathlib import Path
cfg = tiny_config(Path({tmp!r}), "killed", "train.iters=16", "train.checkpoint_every=4")
torch.manual_seed(0)
Trainer(cfg, method=Slow(cfg, TinySegmentor()), datasets=tiny_datasets(cfg)).fit()
"""


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    script = KILLABLE_RUN.format(tests=str(TESTS), tmp=str(tmp_path))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    last_json = tmp_path / "killed" / "checkpoints" / "last.json"
    deadline = time.monotonic() + 60
    while not last_json.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.02)
    time.sleep(0.25)  # land somewhere after the checkpoint, mid-way to the next one
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    killed_at = last_checkpoint(tmp_path / "killed" / "checkpoints")["step"]
    assert killed_at < 16

    resumed = run_tiny(tiny_config(tmp_path, "killed", "train.iters=16", "train.checkpoint_every=4"), resume=True)
    reference = run_tiny(tiny_config(tmp_path, "reference", "train.iters=16", "train.checkpoint_every=4"))
    assert_same_weights(resumed.model.state_dict(), reference.model.state_dict())
