"""Self-training with an EMA teacher (DACS / IAST thresholds / DAFormer / MIC) on tiny 32x64 crops and a tiny
random-init Segmentor: teacher arithmetic, pseudo-label weights, masks, feature distance, checkpoints, presets."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors

from syn2real.config import Config, load_config
from syn2real.data import train_transform
from syn2real.labels import CITYSCAPES19, IGNORE
from syn2real.methods import build_method
from syn2real.methods.augment import blur_kernel_size, block_mask, strong_augment
from syn2real.methods.selftrain import SelfTraining, downscale_labels
from syn2real.models import build_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = ["method.name=selftrain", "model.pretrained=null", "model.head_channels=16", "model.channels_last=false"]


def tiny_method(seed: int = 0, **params) -> SelfTraining:
    cfg = load_config(None, TINY)
    cfg.method.params = params
    torch.manual_seed(seed)
    model = build_model(cfg.model).train()
    return build_method(cfg, model)


def batches(seed: int = 0) -> tuple[dict, dict]:
    """A labelled source batch and an unlabelled target batch (images only, as the trainer gives them)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 2, 13, 11])[torch.randint(0, 4, (2, 4, 8), generator=g)]
    labels = F.interpolate(labels[:, None].float(), size=(32, 64), mode="nearest")[:, 0].long()
    return ({"image": torch.rand(2, 3, 32, 64, generator=g), "mask": labels},
            {"image": torch.rand(2, 3, 32, 64, generator=g)})


# ---- EMA teacher -----------------------------------------------------------------------------------------


def _batchnorms(model: torch.nn.Module) -> list[torch.nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def _fill_student(method: SelfTraining, value: float, batches_seen: int) -> None:
    with torch.no_grad():
        for p in method.model.parameters():
            p.fill_(value)
        for bn in _batchnorms(method.model):
            bn.running_mean.fill_(value)
            bn.num_batches_tracked.fill_(batches_seen)


def _assert_teacher(method: SelfTraining, value: float, batches_seen: int) -> None:
    for p in method.teacher.parameters():
        assert torch.allclose(p, torch.full_like(p, value), atol=1e-6)
    for bn in _batchnorms(method.teacher):
        assert torch.allclose(bn.running_mean, torch.full_like(bn.running_mean, value), atol=1e-6)
        assert int(bn.num_batches_tracked) == batches_seen


def test_ema_update_alpha_t_is_min_of_warmup_and_alpha():
    method = tiny_method(ema_alpha=0.6)
    _fill_student(method, 2.0, 5)
    method.after_step(0)  # alpha_0 = min(1 - 1/1, 0.6) = 0: the teacher becomes the student
    _assert_teacher(method, 2.0, 5)
    _fill_student(method, 4.0, 7)
    method.after_step(1)  # alpha_1 = min(1 - 1/2, 0.6) = 0.5: 0.5 * 2 + 0.5 * 4
    _assert_teacher(method, 3.0, 7)
    _fill_student(method, 8.0, 9)
    method.after_step(2)  # alpha_2 = min(1 - 1/3, 0.6) = 0.6: 0.6 * 3 + 0.4 * 8
    _assert_teacher(method, 5.0, 9)
    assert not method.teacher.training


# ---- pseudo-labels ---------------------------------------------------------------------------------------


def test_threshold_weight_is_the_batch_share_of_confident_pixels_with_rows_cropped():
    method = tiny_method(pseudo_crop=True)
    images = torch.rand(2, 3, 32, 64)
    with torch.no_grad():
        confidence, argmax = torch.softmax(method.teacher(images), 1).max(1)
    method.options["pseudo_threshold"] = float(confidence.median())
    labels, weight, confident = method.pseudo_label(images)
    share = (confidence >= float(confidence.median())).float().mean()
    assert 0.3 < share < 0.7
    assert torch.equal(labels, argmax)
    # 15 / 120 rows of a 512-row crop are 1 / 8 rows of a 32-row crop.
    assert (weight[:, :1] == 0).all() and (weight[:, 24:] == 0).all()
    assert torch.allclose(weight[:, 1:24], share.expand_as(weight[:, 1:24]))  # one scalar, every pixel
    assert not confident[:, :1].any() and not confident[:, 24:].any()


def test_iast_thresholds_follow_the_instance_adaptive_update():
    method = tiny_method(pseudo_mode="iast")
    confidence = torch.stack([torch.linspace(0, 1, 1001), torch.full((1001,), 0.5)])
    labels = torch.stack([torch.zeros(1001, dtype=torch.long), torch.ones(1001, dtype=torch.long)])
    thresholds = method.update_iast_thresholds(confidence, labels).clone()
    # Class 0: the 100 (1 - 0.2 * 0.9^8) percentile of a uniform 0..1 grid is that fraction itself.
    new0 = 1 - 0.2 * 0.9 ** 8
    assert thresholds[0].item() == pytest.approx(0.9 * 0.9 + 0.1 * new0, abs=1e-5)
    assert thresholds[1].item() == pytest.approx(0.9 * 0.9 + 0.1 * 0.5, abs=1e-6)
    assert torch.allclose(thresholds[2:], torch.full((17,), 0.9))  # absent classes keep theirs
    # The next image's percentile uses the updated threshold in the exponent.
    again = method.update_iast_thresholds(confidence, labels)
    new0 = 1 - 0.2 * thresholds[0].item() ** 8
    assert again[0].item() == pytest.approx(0.9 * thresholds[0].item() + 0.1 * new0, abs=1e-5)
    method.iast_thresholds[3] = 1.0
    capped = method.update_iast_thresholds(torch.ones(5), torch.full((5,), 3))
    assert capped[3].item() == pytest.approx(0.999)


def test_iast_pseudo_labels_mask_each_pixel_below_its_class_threshold():
    method = tiny_method(pseudo_mode="iast")
    images = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        confidence, argmax = torch.softmax(method.teacher(images), 1).max(1)
    method.iast_thresholds.fill_(float(confidence.median()))  # a random-init teacher is far below 0.9
    labels, weight, confident = method.pseudo_label(images)
    expected = confidence >= method.iast_thresholds[argmax]
    assert torch.equal(confident, expected) and torch.equal(weight, expected.float())
    assert 0 < expected.float().mean() < 1


# ---- masks, augmentation, feature distance ---------------------------------------------------------------


def test_block_mask_masks_whole_blocks_at_the_ratio():
    torch.manual_seed(0)
    keep = block_mask(64, 64, 128, ratio=0.7, block=16)
    assert keep.shape == (64, 64, 128) and keep.dtype == torch.bool
    cells = keep.view(64, 4, 16, 8, 16)
    assert (cells == cells[:, :, :1, :, :1]).all()  # every 16x16 block is kept or masked as a whole
    assert 1 - keep.float().mean().item() == pytest.approx(0.7, abs=0.03)  # 2048 blocks


def test_strong_augment_changes_colours_within_range_and_blurs_with_a_tenth_of_the_side():
    assert [blur_kernel_size(s) for s in (32, 64, 512, 1024)] == [3, 7, 51, 103]
    torch.manual_seed(0)
    images = torch.rand(3, 3, 32, 64)
    assert torch.equal(strong_augment(images, jitter_prob=0.0, blur_prob=0.0), images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = strong_augment(images, jitter_prob=1.0, blur_prob=1.0)
    assert out.shape == images.shape and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1 and not torch.allclose(out, images, atol=0.05)
    # Blur smooths: neighbouring pixels differ less than in the (noise) input.
    blurred = strong_augment(images, jitter_prob=0.0, blur_prob=1.0)
    assert blurred.diff(dim=-1).abs().mean() < 0.9 * images.diff(dim=-1).abs().mean()


def test_downscaled_labels_keep_cells_that_are_mostly_one_class():
    labels = torch.full((1, 8, 8), 13)
    labels[0, :4, 4:][0] = 0            # top right: 12 of 16 car -> 0.75, kept
    labels[0, 4:, :4][:2, :2] = 0       # bottom left: 12 car ...
    labels[0, 4, 2] = 0                 # ... 11 car -> below 0.75, ignored
    labels[0, 4:, 4:] = IGNORE          # bottom right: unlabelled
    out = downscale_labels(labels, (2, 2), 19, 0.75)
    assert out.tolist() == [[[13, 13], [IGNORE, IGNORE]]]


def test_feature_distance_compares_with_the_initial_backbone_on_thing_pixels_only():
    method = tiny_method(feature_distance=True)
    method.model.eval()  # same BatchNorm statistics as the frozen copy
    images = torch.rand(2, 3, 64, 64)
    cars, roads = torch.full((2, 64, 64), 13), torch.zeros(2, 64, 64, dtype=torch.long)
    assert method.feature_distance(images, cars, method.model.extract(images)[-1]).item() == 0.0
    with torch.no_grad():
        next(method.model.backbone.parameters()).add_(0.5)
    feats = method.model.extract(images)[-1]
    assert method.feature_distance(images, cars, feats).item() > 0
    assert method.feature_distance(images, roads, feats).item() == 0.0  # road is stuff, not a thing


# ---- one training step, checkpoints ----------------------------------------------------------------------


def test_train_step_never_reads_target_labels_and_never_trains_the_teacher():
    method = tiny_method(mic=True, feature_distance=True, pseudo_crop=True, mic_block_size=8)
    src, tgt = batches()
    assert "mask" not in tgt
    torch.manual_seed(1)
    logs = method.train_step(src, tgt, 0)
    assert set(logs) == {"loss_src", "loss_fd", "pseudo_confident", "loss_mix", "loss_mic"}
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert all(not p.requires_grad and p.grad is None for p in method.teacher.parameters())
    assert all(p.grad is None for p in method.imagenet_model.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.model.parameters())
    # Target masks exist only with active labelling (the label store's sparse labels): pixels nobody labelled
    # (IGNORE) change nothing, labelled pixels replace the pseudo-labels.
    torch.manual_seed(1)
    unlabelled = method.train_step(src, {**tgt, "mask": torch.full((2, 32, 64), IGNORE)}, 0)
    assert unlabelled == logs
    torch.manual_seed(1)
    labelled = method.train_step(src, {**tgt, "mask": torch.full((2, 32, 64), 7)}, 0)
    assert labelled["loss_mix"] != logs["loss_mix"] and labelled["loss_src"] == logs["loss_src"]


def test_state_dict_round_trip_resumes_the_same_state(tmp_path):
    params = dict(pseudo_mode="iast", feature_distance=True, mic=True, mic_block_size=8)
    first = tiny_method(seed=0, **params)
    optimizer = torch.optim.SGD(first.model.parameters(), lr=0.01)
    src, tgt = batches()
    for step in range(2):
        optimizer.zero_grad()
        first.train_step(src, tgt, step)
        optimizer.step()
        first.after_step(step)
    torch.save({"method": first.state_dict(), "model": first.model.state_dict()}, tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)  # as the trainer reads checkpoints

    resumed = tiny_method(seed=1, **params)  # other initial weights, replaced by the checkpoint
    resumed.model.load_state_dict(state["model"])
    resumed.load_state_dict(state["method"])
    for name in ("teacher", "imagenet_model"):
        a, b = getattr(first, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert torch.equal(first.iast_thresholds, resumed.iast_thresholds)
    losses = []
    for method in (first, resumed):
        torch.manual_seed(2)
        losses.append(method.train_step(src, tgt, 2))
        method.after_step(2)
    assert losses[0] == losses[1]
    assert all(torch.equal(a, b) for a, b in zip(first.teacher.state_dict().values(),
                                                 resumed.teacher.state_dict().values()))


def test_unknown_modes_are_config_errors():
    from syn2real.errors import ConfigError

    with pytest.raises(ConfigError, match="mixing"):
        tiny_method(mixing="mosaic")
    with pytest.raises(ConfigError, match="pseudo_mode"):
        tiny_method(pseudo_mode="soft")


# ---- presets through the trainer -------------------------------------------------------------------------


class HalfScenes(torch.utils.data.Dataset):
    """32x64 frames made of two flat halves; each half's label is its brightest channel's class (road, car,
    person), so labels are learnable, hold things and fill whole 32x32 feature patches."""

    space = CITYSCAPES19

    def __init__(self, n: int, transform=None, labels: bool = True, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        colours = torch.randint(0, 256, (n, 3, 1, 2), generator=g, dtype=torch.uint8)
        self.images = colours.repeat_interleave(32, 2).repeat_interleave(32, 3)
        self.names = [f"frame{i:03d}" for i in range(n)]
        self.transform, self.labels = transform, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        item = {"image": tv_tensors.Image(self.images[i]), "name": self.names[i]}
        if self.labels:
            item["mask"] = tv_tensors.Mask(torch.tensor([0, 13, 11], dtype=torch.uint8)[self.images[i].argmax(0)])
        return self.transform(item) if self.transform else item


PRESETS = ["dacs", "iast", "daformer", "mic", "dacs_cpu", "iast_cpu", "daformer_cpu", "mic_cpu"]


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_method_trains_three_iterations(tmp_path, preset):
    from syn2real.engine.checkpoint import last_checkpoint, load_state
    from syn2real.engine.trainer import Trainer

    cfg: Config = load_config(None, [*TINY, f"out_dir={tmp_path}", "name=run", "data.crop_size=[32,64]",
                                     "data.scale_range=[1.0,1.0]", "data.batch_size=2", "data.workers=0",
                                     "train.iters=3", "train.checkpoint_every=0", "train.log_every=1",
                                     "train.device=cpu", "train.precision=bf16"])
    cfg.method = load_config(preset).method
    assert cfg.method.name == "selftrain"
    if cfg.method.params.get("rcs"):
        cfg.method.params["rcs_min_pixels"] = 200  # a 32x64 frame holds 2048 pixels
    torch.manual_seed(0)
    method = build_method(cfg, build_model(cfg.model))
    source = HalfScenes(8, train_transform(cfg.data))  # the trainer hands it to `wrap_source_dataset`
    target = HalfScenes(8, train_transform(cfg.data), labels=False, seed=1)
    result = Trainer(cfg, method=method, datasets={"source": source, "target": target, "val": None}).fit()

    assert result["step"] == 3 and "loss_mix" in result
    assert ("loss_mic" in result) == bool(cfg.method.params.get("mic"))
    assert ("loss_fd" in result) == bool(cfg.method.params.get("feature_distance"))
    if cfg.method.params.get("rcs"):
        counts = json.loads((cfg.run_dir / "rcs_class_counts.json").read_text())
        assert counts["names"] == source.names
    state = load_state(last_checkpoint(cfg.run_dir / "checkpoints")["state"])["method"]
    teacher = method.teacher.state_dict()
    assert all(torch.equal(state["teacher"][k], teacher[k]) for k in teacher)
