"""Issue 26's training levers: the supervised loss options (class weights, OHEM) and torch.compile."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F

from syn2real.engine import runs as runs_module
from syn2real.engine.trainer import Trainer
from syn2real.errors import ConfigError
from syn2real.labels import IGNORE
from syn2real.methods.losses import median_frequency_weights, segmentation_loss
from test_trainer import TinySegmentor, tiny_config, tiny_datasets


def test_median_frequency_weights_on_constructed_counts():
    # Class 0 fills 20 of the 27 pixels of the two frames holding it, class 1 2 of 12, class 2 5 of 15.
    counts = torch.tensor([[10, 0, 5], [10, 2, 0]])
    f = torch.tensor([20 / 27, 2 / 12, 5 / 15], dtype=torch.float64)
    expected = f.median() / f
    assert torch.allclose(median_frequency_weights(counts), expected.float())
    assert torch.allclose(median_frequency_weights(counts, power=0.5), expected.sqrt().float())
    # A class no frame holds gets 1.
    assert median_frequency_weights(torch.tensor([[4, 0], [2, 0]]))[1] == 1.0


def test_segmentation_loss_is_cross_entropy_weighted_or_not():
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 5, 8, 8), torch.randint(0, 5, (2, 8, 8))
    labels[0, :2] = IGNORE
    weight = torch.rand(5) + 0.5
    assert torch.allclose(segmentation_loss(logits, labels), F.cross_entropy(logits, labels, ignore_index=IGNORE))
    assert torch.allclose(segmentation_loss(logits, labels, weight),
                          F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE))
    assert segmentation_loss(logits, torch.full_like(labels, IGNORE)).item() == 0.0


def test_ohem_keeps_the_hard_pixels_and_at_least_min_kept():
    # Four pixels with true-class probabilities 0.9, 0.6, 0.3, 0.1 (two classes).
    p = torch.tensor([0.9, 0.6, 0.3, 0.1])
    logits = torch.stack([p.log(), (1 - p).log()]).reshape(1, 2, 1, 4)
    labels = torch.zeros(1, 1, 4, dtype=torch.long)
    per_pixel = -p.log()
    # p < 0.7: the last three pixels.
    assert torch.isclose(segmentation_loss(logits, labels, ohem_thresh=0.7), per_pixel[1:].mean())
    # Two pixels lie below 0.5, so min_kept=2 changes nothing; below 0.2 lies one, so min_kept=3 raises the
    # threshold to the third smallest probability.
    assert torch.isclose(segmentation_loss(logits, labels, ohem_thresh=0.5, min_kept=2), per_pixel[2:].mean())
    assert torch.isclose(segmentation_loss(logits, labels, ohem_thresh=0.2, min_kept=3), per_pixel[1:].mean())


def test_class_weights_come_from_the_source_labels(tmp_path):
    cfg = tiny_config(tmp_path, "weighted", "loss.class_weight=median_frequency", "train.iters=3",
                      "optim.warmup_iters=1")
    trainer = Trainer(cfg, model=TinySegmentor(), datasets=tiny_datasets(cfg))
    weight = trainer.method.class_weight
    counts = json.loads((cfg.run_dir / "class_counts.json").read_text())["counts"]
    assert torch.allclose(weight, median_frequency_weights(torch.tensor(counts)))
    # Road, sidewalk and building occur (the tiny scenes' labels); their weights differ from 1 and the loss uses them.
    assert not torch.allclose(weight[:3], torch.ones(3))
    logits, labels = torch.randn(1, 19, 4, 4), torch.randint(0, 3, (1, 4, 4))
    assert torch.allclose(trainer.method.source_loss(logits, labels),
                          F.cross_entropy(logits, labels, weight=weight))
    trainer.fit()


def test_unknown_loss_names_fail_at_load(tmp_path):
    with pytest.raises(ConfigError, match="loss.class_weight"):
        tiny_config(tmp_path, "bad", "loss.class_weight=inverse")
    with pytest.raises(ConfigError, match="train.compile"):
        tiny_config(tmp_path, "bad", "train.compile=fast")


def test_compiled_and_eager_steps_give_the_same_losses(tmp_path):
    losses = {}
    for mode in (None, "default"):
        name = f"compile_{mode}"
        cfg = tiny_config(tmp_path, name, "train.iters=3", "train.log_every=1", "train.deterministic=false",
                          *([f"train.compile={mode}"] if mode else []))
        torch.manual_seed(0)
        trainer = Trainer(cfg, model=TinySegmentor(), datasets=tiny_datasets(cfg, val=False))
        assert (trainer.model._compiled_call_impl is not None) == (mode is not None)
        trainer.fit()
        records = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
        losses[mode] = torch.tensor([r["loss_seg"] for r in records if "loss_seg" in r])
    assert len(losses[None]) == 3
    assert torch.allclose(losses[None], losses["default"], rtol=1e-4, atol=1e-5), losses


def test_compile_without_a_cpp_compiler_warns_and_runs_eagerly(tmp_path, monkeypatch):
    monkeypatch.setattr(runs_module.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    cfg = tiny_config(tmp_path, "no_compiler", "train.compile=default", "train.iters=1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(cfg, model=TinySegmentor(), datasets=tiny_datasets(cfg, val=False))
    assert any("no C++ compiler" in str(w.message) for w in caught)
    assert trainer.model._compiled_call_impl is None


def test_frozen_compiled_inference_predicts_like_eager():
    from syn2real.engine.runs import compile_model

    torch.manual_seed(0)
    model = TinySegmentor().eval()
    images = torch.rand(2, 3, 32, 64)
    with torch.no_grad():
        eager = model(images)
        assert compile_model(model, freezing=True, what="test")
        compiled = model(images)
    assert model._compiled_call_impl is not None
    assert torch.allclose(eager, compiled, atol=1e-5)
