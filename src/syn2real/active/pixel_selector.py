"""LabOR's pixel selector (Shin et al., "LabOR: Labeling Only if Required for Domain Adaptive Semantic
Segmentation", ICCV 2021): a shared feature extractor with two classifiers whose disagreement on a target image
marks the pixels worth a person's time.

The selector starts as a copy of the segmentation model (backbone and head features) with its classifier as C1
and a freshly initialised second classifier C2. Each round it trains for a few iterations with
    CE(source labels) on both classifiers
  + CE(pseudo-labels of the segmentation model on target) on both classifiers, on the pixels where its
    confidence reaches `pseudo_threshold` (0: all); where a person (or the oracle) labelled a target pixel in
    an earlier round, that label replaces the pseudo-label
  - lambda_discrepancy x mean |softmax(C1) - softmax(C2)| on target, through the classifiers only,
i.e. MCD's discrepancy maximisation (Saito et al., CVPR 2018, step B) run together with the supervised terms:
the classifiers agree where the labels (true or pseudo) are clear and are pushed apart where the features
leave them free. The paper gives no loss weights or iteration counts (see docs); ours are
`ActiveConfig.lambda_discrepancy` (1.0, MCD's weight), `selector_iters` and `selector_pseudo_threshold`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from rich.progress import track
from torch import nn
from torch.utils.data import Dataset

from syn2real.engine.loader import InfiniteLoader
from syn2real.labels import IGNORE


def discrepancy(probs1: torch.Tensor, probs2: torch.Tensor) -> torch.Tensor:
    """MCD's classifier discrepancy: mean absolute difference of the two softmax outputs."""
    return (probs1 - probs2).abs().mean()


class TwoClassifierSelector(nn.Module):
    """The segmentation model's features with two classifiers; forward gives both logits at input size."""

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = copy.deepcopy(segmentor)
        head = self.segmentor.head
        if not hasattr(head, "forward_features") or not hasattr(head, "classifier"):
            raise TypeError("LabOR's pixel selector needs a head with `forward_features` and `classifier`")
        self.classifier2 = copy.deepcopy(head.classifier)
        for module in self.classifier2.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        head = self.segmentor.head
        return head.dropout(head.forward_features(self.segmentor.extract(images)))

    def classify(self, features: torch.Tensor, size) -> tuple[torch.Tensor, torch.Tensor]:
        up = [F.interpolate(c(features), size=size, mode="bilinear", align_corners=False)
              for c in (self.segmentor.head.classifier, self.classifier2)]
        return up[0], up[1]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classify(self.features(images), images.shape[-2:])


def train_selector(segmentor: nn.Module, source: Dataset, target: Dataset, iters: int, lr: float,
                   lambda_discrepancy: float = 1.0, batch_size: int = 2, workers: int = 0, seed: int = 0,
                   pseudo_threshold: float = 0.0,
                   progress: bool = False) -> tuple[TwoClassifierSelector, dict[str, float]]:
    """Train a pixel selector from the current segmentation model; returns it (eval mode) and its last losses.

    `source` yields labelled crops, `target` image crops with the labels gathered so far as "mask" (IGNORE
    where nobody labelled; a target without "mask" counts as unlabelled). Elsewhere the pseudo-labels come from
    `segmentor`; pixels where its confidence is below `pseudo_threshold` get none, which leaves the
    classifiers free to disagree there."""
    device = next(segmentor.parameters()).device
    selector = TwoClassifierSelector(segmentor).to(device).train()
    teacher = segmentor
    was_training = teacher.training
    teacher.eval()
    optimizer = torch.optim.AdamW(selector.parameters(), lr=lr, weight_decay=0.01)
    sources = InfiniteLoader(source, batch_size, workers, seed, name="selector_source")
    targets = InfiniteLoader(target, batch_size, workers, seed + 1, name="selector_target")
    logs: dict[str, float] = {}
    for _ in track(range(iters), description="Training LabOR's pixel selector", disable=not progress):
        src, tgt = next(sources), next(targets)
        src_images, src_labels = src["image"].to(device), src["mask"].to(device)
        tgt_images = tgt["image"].to(device)
        with torch.no_grad():
            confidence, pseudo = teacher(tgt_images).softmax(1).max(1)
            pseudo[confidence < pseudo_threshold] = IGNORE
            if "mask" in tgt:  # a true label beats a pseudo-label
                given = tgt["mask"].to(device)
                pseudo = torch.where(given != IGNORE, given, pseudo)
        optimizer.zero_grad(set_to_none=True)
        s1, s2 = selector(src_images)
        loss_src = (F.cross_entropy(s1, src_labels, ignore_index=IGNORE)
                    + F.cross_entropy(s2, src_labels, ignore_index=IGNORE))
        features = selector.features(tgt_images)
        t1, t2 = selector.classify(features, tgt_images.shape[-2:])
        # (summed over the labelled pixels, divided by all: no NaN when none is confident enough)
        loss_pseudo = (F.cross_entropy(t1, pseudo, ignore_index=IGNORE, reduction="sum")
                       + F.cross_entropy(t2, pseudo, ignore_index=IGNORE, reduction="sum")) / pseudo.numel()
        # Discrepancy on detached features: it moves the classifiers apart, not the features.
        d1, d2 = selector.classify(features.detach(), tgt_images.shape[-2:])
        loss_dis = discrepancy(d1.softmax(1), d2.softmax(1))
        (loss_src + loss_pseudo - lambda_discrepancy * loss_dis).backward()
        optimizer.step()
        logs = {"selector/loss_src": loss_src.item(), "selector/loss_pseudo": loss_pseudo.item(),
                "selector/discrepancy": loss_dis.item(),
                "selector/target_labelled": (pseudo != IGNORE).float().mean().item()}
    teacher.train(was_training)
    return selector.eval(), logs
