"""Knowledge distillation with temperature (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
Network", NIPS 2014 Deep Learning Workshop, arXiv 1503.02531): compress a trained segmenter (the teacher) into
a smaller or faster student, any model config (e.g. `model.backbone=mobilenetv3_large_100` or a narrower
`model.head_channels`).

Per iteration, with the frozen teacher (eval mode, no gradients) run on the student's own input at the same
resolution:

- source: alpha·T²·KL(teacher_T || student_T) + (1 - alpha)·CE(student, source labels), per pixel
  (`losses.distillation_loss`);
- target (when `data.target` is set): T²·KL to the teacher's soft targets on every pixel of the unlabelled
  target frame, times `target_weight` — no target label is read;
- under active labelling, the cross-entropy on the label store's sparse target labels as every method adds.

The teacher is `teacher` (a run folder or a `.safetensors` checkpoint carrying its model config, so its
architecture need not be the student's) or, by default, the run's initial weights (`train.init_from`), which
is self-distillation into the same architecture ("born-again" networks).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from syn2real.config import Config
from syn2real.errors import ConfigError, TrainingError
from syn2real.methods.base import METHODS, Method
from syn2real.methods.losses import distillation_loss
from syn2real.methods.teacher import ProbabilityEnsemble, frozen_copy


def load_teacher(spec: str | Path | list | None, student: nn.Module, num_classes: int, what: str) -> nn.Module:
    """A frozen teacher (eval mode: no dropout or drop path; no gradients) on the student's device: the model
    of run folder / `.safetensors` checkpoint `spec` (its own model config, from the run's config.yaml or the
    file's metadata), the mean-probability ensemble of a list of them, or a copy of `student` as it is now (its
    initial weights) when `spec` is None."""
    if spec is None:
        return frozen_copy(student)
    if isinstance(spec, (list, tuple)):
        if not spec or any(s is None for s in spec):
            raise ConfigError(f"{what}: a list of teachers must name each one (a run folder or .safetensors); "
                              f"got {spec}")
        members = [load_teacher(s, student, num_classes, what) for s in spec]
        return members[0] if len(members) == 1 else ProbabilityEnsemble(members)
    from syn2real.translate.cycada import load_segmenter

    teacher = load_segmenter(spec)
    classes = getattr(teacher, "num_classes", None)
    if classes is not None and classes != num_classes:
        raise ConfigError(f"{what}: the teacher {spec} predicts {classes} classes but the student "
                          f"(model.num_classes) {num_classes}")
    device = next(student.parameters()).device
    return teacher.to(device)


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 of a model's weights and buffers (names, shapes, bytes): which teacher made a cache."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        if tensor.numel():
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@METHODS.register("distill")
class Distillation(Method):
    """Knowledge distillation with temperature T and the T² scaling (Hinton et al., 2015) into any student."""

    defaults: ClassVar[dict[str, Any]] = {
        # A run folder or .safetensors checkpoint (carrying its model config); null: the run's initial weights.
        "teacher": None,
        # Hinton et al. 2015 §3: T from 1 to 20 were tried; for a much smaller student, intermediate temperatures
        # (2.5-4) worked best. 4 is the common default of KD implementations.
        "temperature": 4.0,
        # Weight of the soft term; the hard term gets 1 - alpha. Hinton et al.: best results with "a
        # considerably lower weight on the second [hard-label] objective"; 0.9 is the usual choice.
        "alpha": 0.9,
        # Weight of the soft-target term on the unlabelled target frames (no labels there, so alpha does not
        # apply: the term is T²·KL).
        "target_weight": 1.0,
    }

    def __init__(self, cfg: Config, model: nn.Module):
        super().__init__(cfg, model)
        opts = self.options
        if not opts["temperature"] > 0:
            raise ConfigError(f"method.params.temperature must be > 0; got {opts['temperature']}")
        if not 0.0 <= opts["alpha"] <= 1.0:
            raise ConfigError(f"method.params.alpha must lie in [0, 1]; got {opts['alpha']}")
        self.teacher = load_teacher(opts["teacher"], model, cfg.model.num_classes, "method.params.teacher")

    @torch.no_grad()
    def teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen teacher's logits at the student's input resolution."""
        return self.teacher(images)

    def train_step(self, src: dict, tgt: dict | None, step: int) -> dict[str, float]:
        opts = self.options
        temperature, alpha = opts["temperature"], opts["alpha"]
        images = src["image"]
        loss = distillation_loss(self.model(images), self.teacher_logits(images), src["mask"], temperature, alpha)
        logs = {"loss_src": loss.item()}
        self.backward(loss)
        if tgt is not None:
            target_images = tgt["image"]
            if target_images.shape[1:] != images.shape[1:]:
                raise TrainingError(f"source batch {tuple(images.shape)} and target batch "
                                    f"{tuple(target_images.shape)} differ in image size")
            logits = self.model(target_images)
            loss = opts["target_weight"] * distillation_loss(logits, self.teacher_logits(target_images), None,
                                                             temperature, alpha=1.0)
            logs["loss_tgt"] = loss.item()
            if "mask" in tgt:  # active labelling: the label store's sparse target labels
                labelled = self.target_label_loss(logits, tgt)
                logs["loss_labelled"] = labelled.item()
                loss = loss + labelled
            self.backward(loss)
        return logs
