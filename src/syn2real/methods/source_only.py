"""Source-only training: cross-entropy on labelled source batches. Also plain supervised training."""

from __future__ import annotations

import torch.nn.functional as F

from syn2real.labels import IGNORE
from syn2real.methods.base import Method


class SourceOnly(Method):
    def train_step(self, src: dict, tgt: dict | None, step: int) -> dict[str, float]:
        logits = self.model(src["image"])
        loss = F.cross_entropy(logits.float(), src["mask"], ignore_index=IGNORE)
        self.backward(loss)
        return {"loss_seg": loss.item()}
