"""Source-only training: cross-entropy on labelled source batches. Also plain supervised training.

With active labelling the target batch carries the label store's sparse labels ("mask"); they add a
cross-entropy over the labelled target pixels, RIPU's supervised core (Xie et al., CVPR 2022: source CE +
target CE on the annotated pixels; its two regularisers are not included). Plain UDA target batches hold
images only and are ignored here.
"""

from __future__ import annotations

from syn2real.methods.base import METHODS, Method


@METHODS.register("source_only")
class SourceOnly(Method):
    """Cross-entropy on labelled source frames (plain supervised training too)."""

    def train_step(self, src: dict, tgt: dict | None, step: int) -> dict[str, float]:
        logits = self.model(src["image"])
        loss = self.source_loss(logits, src["mask"])
        self.backward(loss)
        logs = {"loss_seg": loss.item()}
        if tgt is not None and "mask" in tgt:
            loss_tgt = self.target_label_loss(self.model(tgt["image"]), tgt)
            self.backward(loss_tgt)
            logs["loss_tgt_labelled"] = loss_tgt.item()
        return logs
