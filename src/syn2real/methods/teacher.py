"""The teachers that self-training and distillation learn from: a frozen copy of the student whose weights follow
an exponential moving average of the student's (Tarvainen & Valpola, NeurIPS 2017; DACS, DAFormer and MIC use it
as the pseudo-label source), and an ensemble of frozen models that averages their class probabilities (FDA's MBT,
Yang & Soatto, CVPR 2020, self-trains on such an ensemble's pseudo-labels)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def frozen_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` in eval mode with no gradients: no dropout or drop path, BatchNorm on running statistics."""
    copied = copy.deepcopy(model).eval()
    copied.requires_grad_(False)
    return copied


def ema_alpha(step: int, alpha: float) -> float:
    """alpha_t = min(1 - 1/(t+1), alpha): the teacher equals the student after step 0, then averages."""
    return min(1.0 - 1.0 / (step + 1), alpha)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float) -> None:
    """teacher = alpha·teacher + (1 - alpha)·student, weights and float buffers alike (so BatchNorm statistics
    match the averaged weights); integer buffers (batch counters) are copied."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        if t.is_floating_point():
            t.mul_(alpha).add_(s, alpha=1.0 - alpha)
        else:
            t.copy_(s)


class ProbabilityEnsemble(nn.Module):
    """Models that predict the same classes, as one: the log of their mean softmax, so `softmax` of its output is
    the mean probability (argmax and confidence of the ensemble) and it stands wherever a teacher's logits do."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two models; got {len(members)}")
        self.members = nn.ModuleList(members)
        self.num_classes = getattr(members[0], "num_classes", None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        total = None
        for member in self.members:
            probs = member(images).float().softmax(1)
            total = probs if total is None else total + probs
        # The floor keeps log finite where every member gives a class exactly 0 (float underflow).
        return (total / len(self.members)).clamp_min(torch.finfo(torch.float32).tiny).log()
