"""Noisy Student rounds and distillation with temperature (syn2real.methods.noisy_student, .distill,
.losses.distillation_loss) on constructed logits, constructed probability maps and tiny runs of 32x64 frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from syn2real.config import Config, from_dict, load_config
from syn2real.data.base import read_index_png
from syn2real.engine.checkpoint import last_checkpoint, model_metadata
from syn2real.engine.trainer import Trainer
from syn2real.errors import ConfigError
from syn2real.labels import IGNORE
from syn2real.methods import build_method
from syn2real.methods.losses import distillation_loss
from syn2real.methods.noisy_student import (
    CONFIDENCE_LEVELS,
    NoisyStudent,
    class_balanced_pseudo_labels,
    class_balanced_thresholds,
    confidence_histogram,
    quantize_confidence,
)
from syn2real.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_MODEL = {"pretrained": None, "head_channels": 8, "channels_last": False, "dropout": 0.0}


@pytest.fixture(autouse=True)
def _restore_determinism():
    yield
    torch.use_deterministic_algorithms(False)


def _logits(seed: int = 0, shape=(2, 5, 4, 6), scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    student = (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_()
    teacher = torch.randn(*shape, generator=g, dtype=torch.float64) * scale
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    labels[0, 0, :3] = IGNORE
    return student, teacher, labels


# ---- distillation_loss: T² scaling and the alpha mix ------------------------------------------------------------


def test_alpha_zero_is_plain_cross_entropy():
    student, teacher, labels = _logits()
    loss = distillation_loss(student, teacher, labels, temperature=4.0, alpha=0.0)
    torch.testing.assert_close(loss, F.cross_entropy(student, labels, ignore_index=IGNORE), rtol=0, atol=1e-12)


def test_alpha_one_is_t_squared_kl_by_hand():
    student, teacher, labels = _logits()
    T = 4.0
    loss = distillation_loss(student, teacher, labels, temperature=T, alpha=1.0)
    s, t, y = student.detach().numpy(), teacher.numpy(), labels.numpy()

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p_s, p_t = softmax(s / T), softmax(t / T)
    kl = (p_t * (np.log(p_t) - np.log(p_s))).sum(axis=1)  # per pixel, KL(teacher || student)
    expected = T**2 * kl[y != IGNORE].mean()  # ignored pixels excluded
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_alpha_mixes_the_soft_and_hard_terms():
    student, teacher, labels = _logits(1)
    soft = distillation_loss(student, teacher, labels, 3.0, alpha=1.0)
    hard = distillation_loss(student, teacher, labels, 3.0, alpha=0.0)
    mixed = distillation_loss(student, teacher, labels, 3.0, alpha=0.3)
    torch.testing.assert_close(mixed, 0.3 * soft + 0.7 * hard, rtol=1e-12, atol=1e-12)


def test_kl_is_zero_for_the_teacher_itself_and_ignored_pixels_do_not_count():
    student, teacher, labels = _logits(2)
    assert distillation_loss(teacher, teacher, labels, 4.0, 1.0).abs().item() < 1e-12
    assert distillation_loss(student, teacher, labels, 4.0, 1.0).item() > 0
    changed = student.detach().clone()
    changed[labels[:, None].expand_as(changed) == IGNORE] += 100.0  # only where the label is IGNORE
    for alpha in (0.0, 0.5, 1.0):
        torch.testing.assert_close(distillation_loss(changed, teacher, labels, 4.0, alpha),
                                   distillation_loss(student.detach(), teacher, labels, 4.0, alpha))


def test_t_squared_keeps_the_gradient_size_across_temperatures():
    """d(T²·KL)/ds = T·(softmax(s/T) - softmax(t/T)) per pixel (divided by the pixel count): exact; and for
    zero-mean logits that is ≈ (s - t)/C whatever T, while the unscaled KL's gradient shrinks as 1/T²."""
    student, teacher, labels = _logits(3, scale=1.0)
    pixels = (labels != IGNORE).sum()
    norms = {}
    for T in (4.0, 8.0, 20.0):
        student.grad = None
        distillation_loss(student, teacher, labels, T, 1.0).backward()
        expected = T * (torch.softmax(student.detach() / T, 1) - torch.softmax(teacher / T, 1))
        expected = expected * (labels != IGNORE)[:, None] / pixels
        torch.testing.assert_close(student.grad, expected, rtol=1e-10, atol=1e-14)
        norms[T] = student.grad.norm().item()
    assert norms[20.0] / norms[4.0] == pytest.approx(1.0, abs=0.1)  # unscaled: (4/20)² = 0.04


def test_soft_targets_only_without_labels():
    student, teacher, _ = _logits(4)
    everywhere = distillation_loss(student, teacher, None, 2.0, alpha=1.0)
    log_s, log_t = torch.log_softmax(student / 2, 1), torch.log_softmax(teacher / 2, 1)
    torch.testing.assert_close(everywhere, 4.0 * (log_t.exp() * (log_t - log_s)).sum(1).mean())


# ---- class-balanced thresholds (CBST) ------------------------------------------------------------------------------


def test_class_balanced_thresholds_keep_the_top_portion_of_every_class():
    """Class 0 is predicted with confidence 0.9..0.99, class 1 only with 0.35..0.45: a single global threshold
    at 20 % would keep no pixel of class 1; CBST keeps the most confident 20 % of each."""
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(1, 20, 30, dtype=torch.long)
    labels[:, :, 20:] = 1  # 200 pixels of class 1, 400 of class 0
    confidence = torch.where(labels == 0, 0.9 + 0.09 * torch.rand(labels.shape, generator=g),
                             0.35 + 0.1 * torch.rand(labels.shape, generator=g))
    probs = torch.zeros(1, 3, 20, 30)
    probs.scatter_(1, labels[:, None], confidence[:, None])
    probs[:, 2] = (1 - confidence) / 2  # a runner-up class, never the argmax
    pseudo, thresholds = class_balanced_pseudo_labels(probs, portion=0.2)

    levels = quantize_confidence(confidence)
    for cls, pixels in ((0, 400), (1, 200)):
        kept = (pseudo == cls).sum().item()
        assert kept == int(pixels * 0.2), (cls, kept)  # distinct confidences: exactly the top 20 %
        kth = levels[labels == cls].sort(descending=True).values[int(pixels * 0.2) - 1]
        assert thresholds[cls].item() == pytest.approx(kth.item() / CONFIDENCE_LEVELS)
        # The kept pixels are the most confident ones of their class.
        assert levels[pseudo == cls].min() >= levels[(labels == cls) & (pseudo == IGNORE)].max()
    assert thresholds[1] < 0.5 < thresholds[0]  # the unsure class has its own, lower threshold
    assert (pseudo[labels == 2] == IGNORE).all() and thresholds[2] > 1  # a class never predicted keeps nothing
    assert set(pseudo.unique().tolist()) == {0, 1, IGNORE}


def test_thresholds_with_ties_keep_at_least_one_pixel_per_class():
    labels = torch.tensor([[0, 0, 0, 1]])
    levels = torch.tensor([[100, 100, 100, 7]])
    thresholds = class_balanced_thresholds(confidence_histogram(labels, levels, 2), portion=0.2)
    assert thresholds.tolist() == [100, 7]  # k = max(floor(n·p), 1): class 1's single pixel is kept


# ---- the student's noise -------------------------------------------------------------------------------------


def _online_method(**params) -> NoisyStudent:
    cfg = from_dict(Config, {"model": TINY_MODEL, "method": {"name": "noisy_student", "params": params}})
    torch.manual_seed(0)
    return build_method(cfg, build_model(cfg.model).train())


def _record_inputs(method: NoisyStudent) -> tuple[list, list]:
    teacher_inputs, student_inputs = [], []
    method.teacher.register_forward_pre_hook(lambda m, args: teacher_inputs.append(args[0].clone()))
    method.model.register_forward_pre_hook(lambda m, args: student_inputs.append(args[0].clone()))
    return teacher_inputs, student_inputs


def _uda_batches(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = {"image": torch.randint(0, 256, (2, 3, 32, 64), generator=g).float() / 255,
           "mask": torch.randint(0, 3, (2, 32, 64), generator=g)}
    return src, {"image": torch.randint(0, 256, (2, 3, 32, 64), generator=g).float() / 255}


@pytest.mark.parametrize("noise", [False, True])
def test_student_noise_changes_the_target_batch(noise):
    method = _online_method(randaugment=noise, mixing="cutmix" if noise else "none")
    teacher_inputs, student_inputs = _record_inputs(method)
    src, tgt = _uda_batches()
    torch.manual_seed(1)
    losses = method.train_step(src, tgt, 0)
    assert all(math.isfinite(v) for v in losses.values())
    assert len(teacher_inputs) == 1 and len(student_inputs) == 2  # source, then the target batch
    assert torch.equal(teacher_inputs[0], tgt["image"])  # the teacher sees the clean frames
    same = torch.equal(student_inputs[1], teacher_inputs[0])
    assert same != noise, "with noise off the student's target batch is the teacher's input, with noise on not"


def test_mixing_moves_labels_with_their_pixels():
    method = _online_method(randaugment=False, mixing="classmix")
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 16, 16, generator=g)
    labels = torch.randint(0, 4, (3, 16, 16), generator=g)
    soft = torch.randn(3, 19, 16, 16, generator=g)
    inside = torch.ones(3, 16, 16, dtype=torch.bool)
    torch.manual_seed(0)
    mixed, mixed_labels, _, mixed_soft = method.add_noise(images, labels, inside, soft)
    pasted = (mixed != images).any(1)  # pixels that came from the previous frame
    assert pasted.any() and not pasted.all()
    previous = labels.roll(1, 0)
    assert torch.equal(mixed_labels[pasted], previous[pasted]) and torch.equal(mixed_labels[~pasted], labels[~pasted])
    assert torch.equal(mixed_soft.permute(0, 2, 3, 1)[pasted], soft.roll(1, 0).permute(0, 2, 3, 1)[pasted])
    # ClassMix pastes whole classes of the other frame's pseudo-labels.
    for i in range(3):
        for cls in previous[i].unique():
            region = pasted[i][previous[i] == cls]
            assert region.all() or not region.any()


def test_distill_option_and_model_noise():
    method = _online_method(distill=True, mixing="none")
    src, tgt = _uda_batches(1)
    losses = method.train_step(src, tgt, 0)
    assert set(losses) >= {"loss_src", "loss_tgt"} and all(math.isfinite(v) for v in losses.values())
    # Stochastic depth (model.drop_path -> timm's drop_path_rate): on in the student, off in the frozen teacher.
    cfg = load_config(None, ["model.pretrained=null", "model.head_channels=8", "model.drop_path=0.2",
                             "model.channels_last=false", "method.name=noisy_student"])
    torch.manual_seed(0)
    method = build_method(cfg, build_model(cfg.model).train())
    rates = [m.drop_prob for m in method.model.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.2, abs=0.02) and not method.teacher.training
    x = tgt["image"]
    with torch.no_grad():
        assert torch.equal(method.teacher(x), method.teacher(x))
        torch.manual_seed(0)
        first = method.model(x)
        assert not torch.equal(first, method.model(x))


# ---- offline pseudo-labels through the trainer: cached, reused on resume, no target label read -----------------


def _config(tmp_path, folders, name: str, method: str = "noisy_student", params=None, model=None, iters: int = 6):
    source, target = folders
    return from_dict(Config, {
        "name": name, "out_dir": str(tmp_path / "runs"),
        "model": model or TINY_MODEL,
        "data": {"source": source, "target": target, "crop_size": [32, 48], "scale_range": [0.75, 1.25],
                 "batch_size": 2, "workers": 0},
        "optim": {"lr": 0.01},
        "train": {"iters": iters, "checkpoint_every": 3, "log_every": 1, "device": "cpu", "deterministic": True},
        "method": {"name": method, "params": params or {}},
    })


class _Crashing(NoisyStudent):
    """Asserts that no target label is read (the batch's "mask" key) and crashes at `crash_at`."""

    crash_at: int | None = None

    def train_step(self, src, tgt, step):
        if step == self.crash_at:
            raise RuntimeError("simulated crash")
        read = set()

        class Recording(dict):
            def __getitem__(self, key):
                read.add(key)
                return super().__getitem__(key)

        assert "mask" not in tgt
        logs = super().train_step(src, Recording(tgt), step)
        assert read <= {"image", "name"}, read
        return logs


def _run(cfg, crash_at=None, resume=False):
    torch.manual_seed(0)
    method = _Crashing(cfg, build_model(cfg.model))
    method.crash_at = crash_at
    trainer = Trainer(cfg, method=method, resume=resume)
    trainer.fit()
    return trainer


def test_pseudo_labels_are_cached_and_a_resumed_run_is_bit_identical(tmp_path, tiny_uda_folders):
    reference = _run(_config(tmp_path, tiny_uda_folders, "uninterrupted"))
    cache = reference.cfg.run_dir / "pseudo_labels"
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["names"] == ["0", "1", "2", "3"] and len(meta["thresholds"]) == 19
    assert reference.method.labelled == 4 and reference.method.frames.frames.labels is False
    for name in meta["names"]:
        pseudo = read_index_png(cache / "labels" / f"{name}.png")
        teacher = read_index_png(cache / "teacher" / f"{name}.png")
        assert pseudo.shape == (32, 64)  # the frame's own size, cropped with it
        kept = pseudo != IGNORE
        assert kept.any() and (~kept).any() and (pseudo[kept] == teacher[kept]).all()

    cfg = _config(tmp_path, tiny_uda_folders, "crashed")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(cfg, crash_at=4)
    assert last_checkpoint(cfg.run_dir / "checkpoints")["step"] == 3
    labels = sorted((cfg.run_dir / "pseudo_labels" / "labels").glob("*.png"))
    written = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in labels}
    # The same teacher and frames give the same labels in both runs.
    assert all(data == (cache / "labels" / name).read_bytes() for name, (_, data) in written.items())

    resumed = _run(cfg, resume=True)
    assert resumed.step == 6 and resumed.method.labelled == 0 and resumed.method.reused == 4
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in labels} == written  # not rewritten
    final, expected = resumed.model.state_dict(), reference.model.state_dict()
    assert final.keys() == expected.keys() and all(torch.equal(final[k], expected[k]) for k in final)


def test_another_portion_rethresholds_and_another_teacher_relabels(tmp_path, tiny_uda_folders):
    cfg = _config(tmp_path, tiny_uda_folders, "r1", iters=1)
    torch.manual_seed(0)
    method = NoisyStudent(cfg, build_model(cfg.model))
    method.prepare()
    first = json.loads((cfg.run_dir / "pseudo_labels" / "meta.json").read_text())
    torch.manual_seed(0)
    again = NoisyStudent(_config(tmp_path, tiny_uda_folders, "r1", params={"portion": 0.5}, iters=1),
                         build_model(cfg.model))
    again.prepare()
    second = json.loads((cfg.run_dir / "pseudo_labels" / "meta.json").read_text())
    # The same teacher's predictions are reused; only the thresholds and labels change.
    assert again.labelled == 0 and again.reused == 4 and second["teacher"] == first["teacher"]
    assert second["portion"] == 0.5 and first["portion"] == 0.2
    assert first["teacher_pixels"] == second["teacher_pixels"]
    assert sum(1 for a, b in zip(first["thresholds"], second["thresholds"]) if a is not None and b < a) > 0
    torch.manual_seed(1)  # another teacher (other initial weights)
    other = NoisyStudent(_config(tmp_path, tiny_uda_folders, "r1", params={"portion": 0.5}, iters=1),
                         build_model(cfg.model))
    other.prepare()
    third = json.loads((cfg.run_dir / "pseudo_labels" / "meta.json").read_text())
    assert other.labelled == 4 and third["teacher"] != second["teacher"]
    assert sum((read_index_png(p) != IGNORE).sum() for p in (cfg.run_dir / "pseudo_labels" / "labels").glob("*")) > 0


def _saved_teacher(tmp_path, seed: int, model=None):
    cfg = from_dict(Config, {"model": model or TINY_MODEL})
    torch.manual_seed(seed)
    teacher = build_model(cfg.model).eval()
    path = tmp_path / f"teacher{seed}.safetensors"
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items()}, str(path),
              metadata=model_metadata(cfg.model, "cityscapes19"))
    return teacher, path


def test_an_ensemble_of_teachers_labels_with_their_mean_probability(tmp_path, tiny_uda_folders):
    # FDA's MBT pseudo-labels: two teachers of other sizes, one list; the cached argmax and confidence are those
    # of the mean softmax, not of either teacher.
    first, first_path = _saved_teacher(tmp_path, 1, {**TINY_MODEL, "head_channels": 16})
    second, second_path = _saved_teacher(tmp_path, 2)
    cfg = _config(tmp_path, tiny_uda_folders, "mbt", params={"teacher": [str(first_path), str(second_path)]},
                  iters=1)
    method = NoisyStudent(cfg, build_model(cfg.model))
    method.prepare()
    frames = method.frames.frames
    with torch.no_grad():
        image = frames[0]["image"].as_subclass(torch.Tensor)[None].float().div(255)
        probs = (first(image).softmax(1) + second(image).softmax(1)) / 2
        alone = first(image).argmax(1)[0]
    confidence, labels = probs.max(1)
    cache = cfg.run_dir / "pseudo_labels"
    cached = torch.from_numpy(read_index_png(cache / "teacher" / "0.png").astype(np.int64))
    levels = torch.from_numpy(read_index_png(cache / "confidence" / "0.png").astype(np.int64))
    assert torch.equal(cached, labels[0]) and not torch.equal(cached, alone)
    assert (levels - quantize_confidence(confidence[0])).abs().max() <= 1
    meta = json.loads((cache / "meta.json").read_text())
    single = NoisyStudent(_config(tmp_path, tiny_uda_folders, "one", params={"teacher": str(first_path)}),
                          build_model(cfg.model))
    assert meta["teacher"] != NoisyStudent._settings(single, frames)["teacher"]
    with pytest.raises(ConfigError, match="teacher"):
        NoisyStudent(_config(tmp_path, tiny_uda_folders, "bad", params={"teacher": [str(first_path), None]}),
                     build_model(cfg.model))


# ---- distill: compress a teacher into a smaller student -----------------------------------------------------


def test_distill_trains_a_smaller_student_from_a_teacher_checkpoint(tmp_path, tiny_uda_folders):
    teacher, path = _saved_teacher(tmp_path, 1, {**TINY_MODEL, "head_channels": 32})
    cfg = _config(tmp_path, tiny_uda_folders, "distilled", method="distill", params={"teacher": str(path)},
                  model={**TINY_MODEL, "head_channels": 8}, iters=3)
    torch.manual_seed(0)
    trainer = Trainer(cfg)
    result = trainer.fit()
    assert result["step"] == 3 and math.isfinite(result["loss_src"]) and math.isfinite(result["loss_tgt"])
    method = trainer.method
    size = lambda m: sum(p.numel() for p in m.parameters())
    assert size(trainer.model) < size(method.teacher)
    assert not method.teacher.training and not any(p.requires_grad for p in method.teacher.parameters())
    assert all(torch.equal(a, b) for a, b in zip(method.teacher.state_dict().values(),
                                                 teacher.state_dict().values()))
