"""Adversarial and entropy-based adaptation in the output space: AdaptSegNet and ADVENT.

- AdaptSegNet (Tsai et al., "Learning to Adapt Structured Output Space for Semantic Segmentation", CVPR 2018):
  a discriminator D sees the softmax of the segmentation output and learns to tell source (label 0) from
  target (label 1); the segmentation net learns to make target outputs look like source ones.
- ADVENT (Vu et al., "ADVENT: Adversarial Entropy Minimization for Domain Adaptation in Semantic
  Segmentation", CVPR 2019): MinEnt minimises the entropy of target predictions directly; AdvEnt gives D the
  weighted self-information map -p·log2(p)/log2(C) instead of the softmax.

One class, `Adversarial`, with switches; `AdaptSegNet`, `AdvEnt` and `MinEnt` only change its defaults (the
papers' numbers, from the authors' code: wasidennis/AdaptSegNet, valeoai/ADVENT `domain_adaptation/config.py`).
ADVENT's variants are: AdvEnt (`d_input: self_information`), MinEnt (`d_input: none`, `lambda_ent: 0.001`) and
both losses in one model (`d_input: self_information` with `lambda_ent: 0.001`). The paper's "AdvEnt+MinEnt"
row instead averages the predictions of two separately trained models (`syn2real.methods.fda.mbt_predict`).

One training step back-propagates in three stages, so each graph is freed before the next is built and memory
stays close to one forward/backward pass:
  1. source: cross-entropy of the main output (+ `lambda_seg_aux` x the auxiliary output's);
  2. target: with D frozen (requires_grad False), `lambda_adv` x GAN loss of D(target) against the *source*
     label (fool D), plus `lambda_ent` x the entropy of the target prediction;
  3. D: GAN loss of D on the detached source outputs (label 0) and target outputs (label 1), each halved.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from syn2real.config import Config
from syn2real.errors import ConfigError, TrainingError
from syn2real.methods.base import METHODS, Method
from syn2real.methods.losses import (
    at_least_float32,
    entropy_loss,
    gan_loss,
    self_information,
)
from syn2real.models.discriminators import FCDiscriminator
from syn2real.models.heads import ASPPClassifier

# As in AdaptSegNet's and ADVENT's code.
SOURCE_LABEL = 0.0
TARGET_LABEL = 1.0

D_INPUTS = ("softmax", "self_information", "none")
GAN_LOSSES = ("bce", "ls")


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# ---- the method --------------------------------------------------------------------------------------------


class Adversarial(Method):
    """Output-space adversarial training and/or entropy minimisation on target images (see the module doc).

    The defaults are AdaptSegNet's single-level recipe.
    """

    defaults: ClassVar[dict[str, Any]] = {
        # What D sees: "softmax" (AdaptSegNet), "self_information" (AdvEnt), "none" (no D: MinEnt alone).
        "d_input": "softmax",
        # "bce" (BCEWithLogits, both papers) or "ls" (least-squares GAN; AdaptSegNet uses lambda_adv 0.01 with it).
        "gan": "bce",
        # Weight of the generator's adversarial loss on the main output (AdaptSegNet and ADVENT: 0.001).
        "lambda_adv": 0.001,
        # Weight of the target entropy loss on the main output (ADVENT MinEnt: 0.001; 0 turns it off).
        "lambda_ent": 0.0,
        # Active labelling (LabOR's segmentation model): cross-entropy on the target pixels labelled so far,
        # when the target batch carries the label store's sparse "mask". LabOR weighs it like the source CE.
        "lambda_target": 1.0,
        # A second, auxiliary classifier on an intermediate feature with its own discriminator (the papers'
        # conv4 output). The Segmentor has none, so the method adds a DeepLab-V2 ASPP classifier (the model's
        # `aspp_dilations`) on feature `aux_feature` (-2: the stage before the last) and trains it with the head.
        "multi_level": False,
        "aux_feature": -2,
        "lambda_seg_aux": 0.1,      # AdaptSegNet and ADVENT
        "lambda_adv_aux": 0.0002,   # AdaptSegNet and ADVENT
        "lambda_ent_aux": 0.0,      # ADVENT MinEnt: 0.0002
        # D's own optimiser (AdaptSegNet: Adam lr 1e-4, betas (0.9, 0.99)); the trainer applies the same
        # warm-up/poly schedule to it. `d_width` is the first conv's width (64 in the papers).
        "d_lr": 1e-4,
        "d_betas": [0.9, 0.99],
        "d_width": 64,
        # True: D and the entropy see the output upsampled to the input size, as both papers do. False: both
        # work at the head's resolution (stride 4 for DeepLabV3+, 8 for DeepLab-V2), ~16x cheaper for D on a
        # CPU; auxiliary outputs are resized to the main output's size. D needs at least 32x32 pixels.
        "full_resolution": True,
    }

    def __init__(self, cfg: Config, model: nn.Module):
        super().__init__(cfg, model)
        o = self.options
        if o["d_input"] not in D_INPUTS:
            raise ConfigError(f"method.params.d_input: {o['d_input']!r} is not one of {D_INPUTS}")
        if o["gan"] not in GAN_LOSSES:
            raise ConfigError(f"method.params.gan: {o['gan']!r} is not one of {GAN_LOSSES}")
        if o["d_input"] == "none" and o["lambda_ent"] <= 0:
            raise ConfigError(f"method {cfg.method.name!r}: d_input is 'none' and lambda_ent is 0, so nothing "
                              f"adapts to the target; set one of them (or use method source_only)")
        device = next(model.parameters()).device

        self.aux_classifier: nn.Module | None = None
        if o["multi_level"]:
            channels = model.backbone.feature_channels
            if not -len(channels) <= o["aux_feature"] < len(channels):
                raise ConfigError(f"method.params.aux_feature: {o['aux_feature']} is not a feature index of "
                                  f"{cfg.model.backbone} ({len(channels)} feature levels)")
            self.aux_classifier = ASPPClassifier(channels[o["aux_feature"]], model.num_classes,
                                                 tuple(cfg.model.aspp_dilations)).to(device)
        # Per output level (main, then aux): weights of the source CE, adversarial and entropy losses.
        # The suffix names the level's terms in the logs (loss_seg, loss_seg_aux, ...).
        self.levels = [("", 1.0, o["lambda_adv"], o["lambda_ent"])]
        if o["multi_level"]:
            self.levels.append(("_aux", o["lambda_seg_aux"], o["lambda_adv_aux"], o["lambda_ent_aux"]))

        self.discriminators = nn.ModuleList()
        self.d_optimizer: torch.optim.Optimizer | None = None
        if o["d_input"] != "none":
            self.discriminators.extend(FCDiscriminator(model.num_classes, o["d_width"]) for _ in self.levels)
            self.discriminators.to(device)
            # Its lr lives in its param group: the trainer's schedule scales each group's initial lr.
            self.d_optimizer = torch.optim.Adam(
                [{"name": "discriminator", "params": list(self.discriminators.parameters()), "lr": o["d_lr"]}],
                lr=o["d_lr"], betas=tuple(o["d_betas"]),
            )

    # ---- what the trainer optimises ----------------------------------------------------------------------

    def param_groups(self) -> list[dict]:
        groups = super().param_groups()
        if self.aux_classifier is not None:
            groups.append({"name": "aux_classifier", "params": list(self.aux_classifier.parameters()),
                           "lr_mult": self.cfg.optim.head_lr_mult})
        return groups

    def extra_optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.d_optimizer] if self.d_optimizer is not None else []

    # ---- one step ----------------------------------------------------------------------------------------

    def outputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Logits at head resolution, at least float32: [main] or [main, aux]."""
        feats = self.model.extract(images)
        outputs = [self.model.decode(feats)]
        if self.aux_classifier is not None:
            outputs.append(self.aux_classifier(feats[self.options["aux_feature"]]))
        return [at_least_float32(out) for out in outputs]

    def _d_size(self, images: torch.Tensor, outputs: list[torch.Tensor]) -> torch.Size:
        """Where D and the entropy look: the input size (published) or the main head's resolution."""
        size = images.shape[-2:] if self.options["full_resolution"] else outputs[0].shape[-2:]
        if len(self.discriminators) and min(size) < 32:
            raise ConfigError(f"method {self.cfg.method.name!r}: the discriminator needs at least 32x32 pixels, "
                              f"got {tuple(size)}; use larger crops or method.params.full_resolution=true")
        return size

    def discriminator_input(self, probs: torch.Tensor) -> torch.Tensor:
        """What D sees for softmax probabilities: themselves, or their self-information map (AdvEnt)."""
        return self_information(probs) if self.options["d_input"] == "self_information" else probs

    def train_step(self, src: dict, tgt: dict | None, step: int) -> dict[str, float]:
        if tgt is None:
            raise TrainingError(f"method {self.cfg.method.name!r} needs unlabelled target images: set data.target")
        o = self.options
        use_d = len(self.discriminators) > 0
        logs: dict[str, float] = {}

        # 1. Source segmentation.
        src_outputs = self.outputs(src["image"])
        mask = src["mask"]
        loss_seg = 0.0
        for (suffix, w_seg, _, _), out in zip(self.levels, src_outputs):
            ce = self.source_loss(_resize(out, mask.shape[-2:]), mask)
            loss_seg = loss_seg + w_seg * ce
            logs[f"loss_seg{suffix}"] = ce.item()
        self.backward(loss_seg)
        src_d_inputs = []
        if use_d:
            with torch.no_grad():
                size = self._d_size(src["image"], src_outputs)
                src_d_inputs = [self.discriminator_input(_resize(out, size).softmax(1)) for out in src_outputs]
        del src_outputs, loss_seg

        # 2. Target: fool D (toward the source label) and/or lower the entropy; D is fixed here.
        self.discriminators.requires_grad_(False)
        tgt_outputs = self.outputs(tgt["image"])
        size = self._d_size(tgt["image"], tgt_outputs)
        loss_tgt = 0.0
        tgt_d_inputs = []
        discriminators = list(self.discriminators) or [None] * len(self.levels)
        for (suffix, w_seg, w_adv, w_ent), out, disc in zip(self.levels, tgt_outputs, discriminators):
            probs = _resize(out, size).softmax(1)
            if disc is not None:
                d_input = self.discriminator_input(probs)
                adv = gan_loss(disc(d_input), SOURCE_LABEL, o["gan"])
                loss_tgt = loss_tgt + w_adv * adv
                logs[f"loss_adv{suffix}"] = adv.item()
                tgt_d_inputs.append(d_input.detach())
            if w_ent > 0:
                ent = entropy_loss(probs)
                loss_tgt = loss_tgt + w_ent * ent
                logs[f"loss_ent{suffix}"] = ent.item()
            ce = self.target_label_loss(out, tgt)  # sparse labels from active labelling, if any
            if ce is not None:
                loss_tgt = loss_tgt + o["lambda_target"] * w_seg * ce
                logs[f"loss_tgt_labelled{suffix}"] = ce.item()
        self.backward(loss_tgt)
        del tgt_outputs, loss_tgt

        # 3. Discriminator on detached predictions: source -> 0, target -> 1.
        if use_d:
            self.discriminators.requires_grad_(True)
            loss_d = 0.0
            levels = zip(self.levels, self.discriminators, src_d_inputs, tgt_d_inputs)
            for (suffix, *_), disc, src_in, tgt_in in levels:
                level_loss = 0.5 * (gan_loss(disc(src_in), SOURCE_LABEL, o["gan"])
                                    + gan_loss(disc(tgt_in), TARGET_LABEL, o["gan"]))
                loss_d = loss_d + level_loss
                logs[f"loss_d{suffix}"] = level_loss.item()
            self.backward(loss_d)
        return logs

    # ---- checkpoint state (D's optimiser state is saved by the trainer with the other optimisers) ---------

    def state_dict(self) -> dict:
        state = {"discriminators": self.discriminators.state_dict()}
        if self.aux_classifier is not None:
            state["aux_classifier"] = self.aux_classifier.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.discriminators.load_state_dict(state["discriminators"])
        if self.aux_classifier is not None:
            self.aux_classifier.load_state_dict(state["aux_classifier"])


@METHODS.register("adaptsegnet")
class AdaptSegNet(Adversarial):
    """AdaptSegNet (CVPR 2018): D on the softmax output. Single-level λ_adv 0.001 (LS-GAN: 0.01); multi-level
    adds the conv4 output with λ_seg_aux 0.1 and λ_adv_aux 0.0002 (paper Sec. 4; AdaptSegNet README)."""


@METHODS.register("advent")
class AdvEnt(Adversarial):
    """ADVENT's AdvEnt (CVPR 2019): D on the self-information map, λ_adv 0.001 / aux 0.0002, multi-level as in
    the authors' config (MULTI_LEVEL: True). Add `lambda_ent: 0.001, lambda_ent_aux: 0.0002` for both losses."""

    defaults: ClassVar[dict[str, Any]] = {
        **Adversarial.defaults, "d_input": "self_information", "multi_level": True,
    }


@METHODS.register("minent")
class MinEnt(Adversarial):
    """ADVENT's MinEnt (CVPR 2019): no discriminator, target entropy with λ_ent 0.001 / aux 0.0002."""

    defaults: ClassVar[dict[str, Any]] = {
        **Adversarial.defaults, "d_input": "none", "multi_level": True,
        "lambda_ent": 0.001, "lambda_ent_aux": 0.0002,
    }
