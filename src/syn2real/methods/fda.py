"""FDA: Fourier Domain Adaptation (Yang and Soatto, "FDA: Fourier Domain Adaptation for Semantic Segmentation",
CVPR 2020), trained on the fly.

Each step translates every source image toward a randomly chosen target image of the batch
(`syn2real.translate.fda_source_to_target`, on [0, 1] images before the model's own normalisation, as the
authors translate before mean subtraction), trains cross-entropy on the translated images, and adds the authors'
robust target entropy: the per-pixel entropy normalised by log(C), through the Charbonnier penalty
(ent² + 1e-8)^ita, averaged at the head's resolution (before upsampling, as in their `deeplab.py`).
Defaults from the authors' README training command: β ("LB") 0.01, entW 0.005, ita 2.0 and
switch2entropy 0 (the entropy term from the first step).

MBT (multi-band transfer) is an evaluation-time ensemble: train one model per β (0.01, 0.05, 0.09; presets
`fda`, `fda_cpu` with `method.params.beta=...`) and average their softmax outputs with `mbt_predict`. The paper's
best number then self-trains on the ensemble's pseudo-labels: `noisy_student` with the three runs as its
`teacher` list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from syn2real.errors import ConfigError, TrainingError
from syn2real.methods.base import METHODS, Method
from syn2real.methods.losses import entropy_map
from syn2real.methods.teacher import ProbabilityEnsemble
from syn2real.translate.fda import fda_source_to_target


def charbonnier_entropy(logits: torch.Tensor, ita: float) -> torch.Tensor:
    """FDA's robust entropy loss: mean over pixels of (H² + 1e-8)^ita, H the entropy normalised by log(C)."""
    entropy = entropy_map(logits.float().softmax(1))
    return ((entropy**2 + 1e-8) ** ita).mean()


@torch.no_grad()
def mbt_predict(models: Sequence[nn.Module], images: torch.Tensor) -> torch.Tensor:
    """Multi-band transfer: the mean softmax (N, C, H, W) of `models` (one per β, in eval mode) on `images`."""
    if not models:
        raise ConfigError("mbt_predict: no models given")
    if len(models) == 1:
        return models[0](images).float().softmax(1)
    return ProbabilityEnsemble(list(models))(images).softmax(1)


@METHODS.register("fda")
class FDA(Method):
    """Fourier Domain Adaptation: source frames in target style, robust target entropy."""

    defaults: ClassVar[dict[str, Any]] = {
        "beta": 0.01,       # low-frequency window, a fraction of min(H, W); the paper also uses 0.05 and 0.09
        "lambda_ent": 0.005,  # entW
        "ita": 2.0,         # Charbonnier exponent
    }

    def train_step(self, src: dict, tgt: dict | None, step: int) -> dict[str, float]:
        if tgt is None:
            raise TrainingError(f"method {self.cfg.method.name!r} needs unlabelled target images: set data.target")
        o = self.options
        src_images, tgt_images = src["image"], tgt["image"]

        # Source in target style: CE on the translated images. Staged backward frees this graph first.
        partners = torch.randint(len(tgt_images), (len(src_images),), device=tgt_images.device)
        translated = fda_source_to_target(src_images, tgt_images[partners], o["beta"])
        loss_seg = self.source_loss(self.model(translated), src["mask"])
        self.backward(loss_seg)
        logs = {"loss_seg": loss_seg.item()}

        # Target: the robust entropy, and the sparse labels of active labelling when the batch has them.
        labelled = "mask" in tgt
        if o["lambda_ent"] > 0 or labelled:
            tgt_logits = self.model.decode(self.model.extract(tgt_images))
            loss_tgt = 0.0
            if o["lambda_ent"] > 0:
                loss_ent = charbonnier_entropy(tgt_logits, o["ita"])
                loss_tgt = o["lambda_ent"] * loss_ent
                logs["loss_ent"] = loss_ent.item()
            if labelled:
                loss_labelled = self.target_label_loss(tgt_logits, tgt)
                loss_tgt = loss_tgt + loss_labelled
                logs["loss_tgt_labelled"] = loss_labelled.item()
            self.backward(loss_tgt)
        return logs
