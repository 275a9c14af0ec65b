"""The `Method` base class: what a training method gives the trainer.

The trainer owns the loop (data, autocast, gradient averaging across processes, clipping, optimiser steps,
schedule, checkpoints); a method owns its losses and any extra modules. Contract:

- `self.model` is the plain `Segmentor` (never a wrapper): call `self.model(x)`, `.extract(x)`, `.decode(f)`.
- `train_step` computes the losses and back-propagates them with `self.backward(loss)` (it applies the fp16
  loss scale when there is one); it never steps an optimiser. It may back-propagate in stages.
- `param_groups()` lists what the trainer's optimiser (`cfg.optim`) updates, each group with an `lr_mult`.
  Modules that need their own optimiser (a discriminator trained with Adam) return it from
  `extra_optimizers()`: the trainer steps it, gives it the same warm-up/poly schedule, averages its
  gradients across processes and saves its state.
- `state_dict()` / `load_state_dict()` hold everything beyond the model weights (teacher, discriminator).
- `prepare()` does once, before the loaders are built, what a method needs first (the noisy student's teacher
  labels the target frames offline); `wrap_source_dataset()` may then replace the source dataset (rare-class
  sampling).
- Options come from `cfg.method.params`, checked against the class's `defaults`.
- Under active labelling the target batch carries the label store's sparse labels ("mask", IGNORE where nobody
  labelled): every method learns them, through `target_label_loss` or (self-training) in place of its
  pseudo-labels. Plain UDA target batches hold images only. `tests/test_method_contract.py` checks both.
- A method registers its name with `@METHODS.register(name)`; `cfg.method.name` picks it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from syn2real.config import Config
from syn2real.errors import ConfigError
from syn2real.methods.losses import segmentation_loss, sparse_cross_entropy
from syn2real.registry import Registry

METHODS: Registry[type[Method]] = Registry("method", "method.name")


class Method:
    # Option names with their defaults (the paper's numbers); `cfg.method.params` overrides them.
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, cfg: Config, model: nn.Module):
        self.cfg = cfg
        self.model = model
        unknown = set(cfg.method.params) - set(self.defaults)
        if unknown:
            raise ConfigError(
                f"method.params: unknown option(s) {sorted(unknown)} for method {cfg.method.name!r}; "
                f"allowed: {sorted(self.defaults)}"
            )
        self.options: dict[str, Any] = {**self.defaults, **cfg.method.params}
        # Set by the trainer when training in fp16 on CUDA; `backward` scales losses with it.
        self.grad_scaler: torch.amp.GradScaler | None = None
        # Set by the trainer from the source labels when `loss.class_weight` asks for weights.
        self.class_weight: torch.Tensor | None = None
        if cfg.optim.freeze_backbone:
            model.backbone.requires_grad_(False)

    def param_groups(self) -> list[dict]:
        """Backbone at `backbone_lr_mult` (absent when frozen); everything else in the model (head, extra
        classifiers) at `head_lr_mult`."""
        optim = self.cfg.optim
        backbone = list(self.model.backbone.parameters())
        backbone_ids = {id(p) for p in backbone}
        rest = [p for p in self.model.parameters() if id(p) not in backbone_ids]
        groups = [{"name": "head", "params": rest, "lr_mult": optim.head_lr_mult}]
        if not optim.freeze_backbone:
            groups.insert(0, {"name": "backbone", "params": backbone, "lr_mult": optim.backbone_lr_mult})
        return groups

    def extra_optimizers(self) -> list[torch.optim.Optimizer]:
        return []

    def prepare(self, progress: bool = False) -> None:
        """Work done once before training (the trainer calls it on every process, before the loaders are
        built); `progress` shows a bar. The default has nothing to do."""

    def wrap_source_dataset(self, dataset: Dataset, progress: bool = False) -> Dataset:
        """How source frames are drawn (e.g. rare-class sampling); the default leaves `dataset` as it is.

        The trainer's sampler seeds every item, so random draws inside the wrapper resume exactly too.
        """
        return dataset

    def set_train_mode(self) -> None:
        """Training mode, except a frozen backbone keeps its BatchNorm statistics (eval mode)."""
        self.model.train()
        if self.cfg.optim.freeze_backbone:
            self.model.backbone.eval()

    def backward(self, loss: torch.Tensor) -> None:
        (self.grad_scaler.scale(loss) if self.grad_scaler is not None else loss).backward()

    def train_step(self, src: dict, tgt: dict | None, step: int) -> dict[str, float]:
        """Forward, losses, backward (no optimiser step); return the loss terms as floats."""
        raise NotImplementedError

    def source_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The supervised loss on labelled source pixels as `cfg.loss` sets it (cross-entropy, class weights,
        OHEM); logits at the labels' size."""
        loss = self.cfg.loss
        ohem = loss.name == "ohem"
        return segmentation_loss(logits, labels, self.class_weight, ohem_thresh=loss.ohem_thresh if ohem else None,
                                 min_kept=loss.ohem_min_kept)

    def target_label_loss(self, logits: torch.Tensor, tgt: dict | None) -> torch.Tensor | None:
        """Cross-entropy of target `logits` (any resolution) on the batch's sparse labels from active labelling,
        or None for a plain UDA batch (images only)."""
        if tgt is None or "mask" not in tgt:
            return None
        mask = tgt["mask"]
        if logits.shape[-2:] != mask.shape[-2:]:
            logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
        return sparse_cross_entropy(logits, mask)

    def after_step(self, step: int) -> None:
        """Called after the optimiser steps (EMA teacher update, schedules of the method's own)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
