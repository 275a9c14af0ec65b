"""Self-training with an EMA teacher: DACS, DAFormer and MIC as presets of one class, IAST's thresholds as an
option.

One iteration (each loss back-propagated as soon as it is complete, so memory stays near one forward/backward,
as DAFormer does):

1. source: cross-entropy on the labelled source crop, plus DAFormer's thing-class feature distance to a frozen
   copy of the initial (ImageNet) backbone, through one shared forward;
2. the teacher (an exponential moving average of the student, in eval mode) labels the clean target crop;
3. mixed: source pixels pasted onto the target (ClassMix / CutMix), strongly augmented, trained on source labels
   where pasted and on pseudo-labels elsewhere, weighted by pseudo-label confidence (DACS);
4. MIC: the augmented target crop with random blocks masked out, trained on the same pseudo-labels.

Target labels are never read: `tgt` is used for its "image" only, plus, with active labelling, the sparse
labels of the label store (`mask`), which replace the pseudo-labels where a person or the oracle gave them.
Every option in `defaults` carries its paper's number; the booleans switch published ingredients on and off. Papers: DACS (Tranheden et al., WACV
2021), DAFormer (Hoyer et al., CVPR 2022), MIC (Hoyer et al., CVPR 2023), IAST (Mei et al., ECCV 2020).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from syn2real.config import Config
from syn2real.data.mixing import classmix_masks, cutmix_masks, mix
from syn2real.data.sampling import RareClassDataset, image_class_counts
from syn2real.errors import ConfigError, TrainingError
from syn2real.labels import IGNORE, THING_CLASSES
from syn2real.methods.augment import block_mask, strong_augment
from syn2real.methods.base import METHODS, Method
from syn2real.methods.teacher import ema_alpha, ema_update, frozen_copy

#: DAFormer's pseudo-label crop rows (`pseudo_crop_top/bottom`) are given for 512-row crops of Cityscapes at
#: 1024x512; they are scaled to the actual crop height.
CROP_REFERENCE_HEIGHT = 512

MIXING_MODES = ("classmix", "cutmix", "none")
PSEUDO_MODES = ("threshold", "iast")


@METHODS.register("selftrain")
class SelfTraining(Method):
    """EMA-teacher self-training: DACS, IAST thresholds, DAFormer and MIC as presets."""

    defaults: ClassVar[dict[str, Any]] = {
        # EMA teacher: alpha_t = min(1 - 1/(t+1), ema_alpha). 0.999 DAFormer/MIC; DACS uses 0.99.
        "ema_alpha": 0.999,
        # Pseudo-labels. `threshold` (DACS/DAFormer): the loss weight is the batch's share of pixels whose
        # teacher confidence is >= pseudo_threshold (0.968), applied to every pseudo-labelled pixel alike.
        # `iast` (IAST): class-wise thresholds adapted per image, pixels below them get weight 0.
        "pseudo_mode": "threshold",
        "pseudo_threshold": 0.968,
        "iast_alpha": 0.2,  # IAST run config (gtav2cityscapes): alpha 0.2, beta 0.9, gamma 8
        "iast_beta": 0.9,
        "iast_gamma": 8.0,
        "iast_init": 0.9,  # IAST: thresholds start at 0.9 and are capped at 0.999
        "iast_cap": 0.999,
        # DAFormer: no pseudo-label loss on the top 15 / bottom 120 rows of a 512-row crop (rectification
        # artefacts and the ego car of Cityscapes); scaled to the crop height.
        "pseudo_crop": False,
        "pseudo_crop_top": 15,
        "pseudo_crop_bottom": 120,
        # IAST's region-guided regularisation on target pixels: KL to uniform (weight 0.1) where pseudo-labelled,
        # entropy minimisation (weight 3.0) where not.
        "region_reg": False,
        "kld_weight": 0.1,
        "entropy_weight": 3.0,
        # DACS: ClassMix of source onto target, consistency weight 1; `cutmix` / `none` for ablations.
        "mixing": "classmix",
        "mix_weight": 1.0,
        # DACS strong augmentation of the mixed image (and of MIC's target before masking): colour jitter
        # s = 0.2 with probability 0.8, Gaussian blur sigma ~ U(0.15, 1.15) with probability 0.5.
        "strong_aug": True,
        "color_jitter": 0.2,
        "color_jitter_prob": 0.8,
        "blur_prob": 0.5,
        "blur_sigma": [0.15, 1.15],
        # DAFormer rare-class sampling: T 0.01, frames with > 3000 px of the class, crops with > 3000 * 0.5.
        "rcs": False,
        "rcs_temperature": 0.01,
        "rcs_min_pixels": 3000,
        "rcs_min_crop_ratio": 0.5,
        # DAFormer thing-class ImageNet feature distance: lambda 0.005 on the bottleneck features, on feature
        # pixels whose patch is >= 75 % one thing class.
        "feature_distance": False,
        "fd_weight": 0.005,
        "fd_min_ratio": 0.75,
        # MIC masked image consistency: 70 % of 64-px blocks masked, weight 1.
        "mic": False,
        "mic_weight": 1.0,
        "mic_mask_ratio": 0.7,
        "mic_block_size": 64,
    }

    def __init__(self, cfg: Config, model: nn.Module):
        super().__init__(cfg, model)
        opts = self.options
        if opts["mixing"] not in MIXING_MODES:
            raise ConfigError(f"method.params.mixing: {opts['mixing']!r}; choose one of {', '.join(MIXING_MODES)}")
        if opts["pseudo_mode"] not in PSEUDO_MODES:
            raise ConfigError(f"method.params.pseudo_mode: {opts['pseudo_mode']!r}; choose one of "
                              f"{', '.join(PSEUDO_MODES)}")
        self.num_classes = cfg.model.num_classes
        # The teacher starts as a copy of the student (DAFormer copies at iteration 0). Eval mode: no dropout
        # or drop path, and BatchNorm uses running statistics, which `after_step` averages like the weights.
        self.teacher = frozen_copy(model)
        # DAFormer's ImageNet model: the backbone as this method receives it (ImageNet weights in a fresh run).
        self.imagenet_model = frozen_copy(model) if opts["feature_distance"] else None
        self.iast_thresholds = (torch.full((self.num_classes,), float(opts["iast_init"]),
                                           device=_device(model)) if opts["pseudo_mode"] == "iast" else None)

    # ---- data ----------------------------------------------------------------------------------------

    def wrap_source_dataset(self, dataset: Dataset, progress: bool = False) -> Dataset:
        """With `rcs`, the source dataset drawn by rare-class sampling (its transform moves into the wrapper);
        otherwise `dataset` itself. Per-frame class counts are cached in the run folder."""
        if not self.options["rcs"] or isinstance(dataset, RareClassDataset):
            return dataset
        if not hasattr(dataset, "transform"):
            raise ConfigError(f"method.params.rcs: the source dataset ({type(dataset).__name__}) has no "
                              f"`transform` attribute for rare-class sampling to take over")
        transform, dataset.transform = dataset.transform, None
        counts = image_class_counts(dataset, cache=self.cfg.run_dir / "rcs_class_counts.json", progress=progress)
        return RareClassDataset(dataset, transform, counts, temperature=self.options["rcs_temperature"],
                                min_pixels=self.options["rcs_min_pixels"],
                                min_crop_ratio=self.options["rcs_min_crop_ratio"])

    # ---- one iteration -------------------------------------------------------------------------------

    def train_step(self, src: dict, tgt: dict | None, step: int) -> dict[str, float]:
        opts = self.options
        if tgt is None:
            raise ConfigError("self-training needs unlabelled target images: set data.target")
        src_images, src_labels = src["image"], src["mask"]
        tgt_images = tgt["image"]
        if src_images.shape != tgt_images.shape:
            raise TrainingError(f"source batch {tuple(src_images.shape)} and target batch "
                                f"{tuple(tgt_images.shape)} differ in shape; mixing needs equal crops")
        logs: dict[str, float] = {}

        # 1. Source cross-entropy (+ feature distance), one forward and one backward.
        feats = self.model.extract(src_images)
        logits = _upsample(self.model.decode(feats), src_images)
        loss = self.source_loss(logits, src_labels)
        logs["loss_src"] = loss.item()
        if opts["feature_distance"]:
            loss_fd = opts["fd_weight"] * self.feature_distance(src_images, src_labels, feats[-1])
            logs["loss_fd"] = loss_fd.item()
            loss = loss + loss_fd
        self.backward(loss)
        del feats, logits, loss

        # 2. Pseudo-labels from the teacher on the clean target crop.
        pseudo_labels, pseudo_weight, confident = self.pseudo_label(tgt_images)
        logs["pseudo_confident"] = confident.float().mean().item()

        # 3. Mixed crop: source labels (weight 1) where pasted, pseudo-labels (their weight) elsewhere.
        pasted = self.mix_masks(src_labels)
        mixed_images = mix(pasted, src_images, tgt_images)
        if opts["strong_aug"]:
            mixed_images = self.augment(mixed_images)
        if "mask" in tgt:
            # Active labelling: pixels labelled in the label store replace the pseudo-labels, at full weight.
            labelled = tgt["mask"] != IGNORE
            pseudo_labels = torch.where(labelled, tgt["mask"].long(), pseudo_labels)
            pseudo_weight = torch.where(labelled, torch.ones_like(pseudo_weight), pseudo_weight)
        mixed_labels = mix(pasted, src_labels, pseudo_labels)
        mixed_weight = mix(pasted, torch.ones_like(pseudo_weight), pseudo_weight)
        mixed_logits = self.model(mixed_images)
        loss = opts["mix_weight"] * weighted_cross_entropy(mixed_logits, mixed_labels, mixed_weight)
        logs["loss_mix"] = loss.item()
        if opts["region_reg"]:
            kld, entropy = region_regularisers(mixed_logits, confident & ~pasted,
                                               ~confident & ~pasted & self.valid_rows(confident))
            logs["loss_kld"], logs["loss_entropy"] = kld.item(), entropy.item()
            loss = loss + opts["kld_weight"] * kld + opts["entropy_weight"] * entropy
        self.backward(loss)
        del mixed_logits, loss

        # 4. MIC: augmented target, blocks masked out, same pseudo-labels and weights.
        if opts["mic"]:
            n, _, h, w = tgt_images.shape
            keep = block_mask(n, h, w, opts["mic_mask_ratio"], opts["mic_block_size"], tgt_images.device)
            masked = self.augment(tgt_images) * keep.unsqueeze(1)
            loss = opts["mic_weight"] * weighted_cross_entropy(self.model(masked), pseudo_labels, pseudo_weight)
            logs["loss_mic"] = loss.item()
            self.backward(loss)
        return logs

    def after_step(self, step: int) -> None:
        ema_update(self.teacher, self.model, ema_alpha(step, self.options["ema_alpha"]))

    # ---- ingredients ---------------------------------------------------------------------------------

    @torch.no_grad()
    def pseudo_label(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher labels (N, H, W) int64, their loss weights (N, H, W) float and the confident pixels (bool)."""
        probs = torch.softmax(self.teacher(images).float(), dim=1)
        confidence, labels = probs.max(dim=1)
        if self.options["pseudo_mode"] == "threshold":
            confident = confidence >= self.options["pseudo_threshold"]
            # One scalar for the whole batch, as DACS and DAFormer do: not a per-pixel mask.
            weight = torch.full_like(confidence, confident.float().mean().item())
        else:
            confident = torch.stack([conf >= self.update_iast_thresholds(conf, lbl)[lbl]
                                     for conf, lbl in zip(confidence, labels)])
            weight = confident.float()
        valid = self.valid_rows(confident)
        return labels, weight * valid, confident & valid

    def update_iast_thresholds(self, confidence: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """IAST's instance-adaptive selector for one image: for each class c it predicts,
        new_c = percentile(confidences of c, 100 (1 - alpha theta_c^gamma)) with theta_c the current threshold;
        then theta = beta theta + (1 - beta) new, and thresholds >= 1 become `iast_cap`. Classes absent from the
        image keep their threshold. Returns the updated thresholds (num_classes,)."""
        opts = self.options
        thresholds = self.iast_thresholds
        new = thresholds.clone()
        for cls in labels.unique():
            quantile = 1.0 - opts["iast_alpha"] * thresholds[cls] ** opts["iast_gamma"]
            new[cls] = torch.quantile(confidence[labels == cls], quantile)
        thresholds = opts["iast_beta"] * thresholds + (1.0 - opts["iast_beta"]) * new
        self.iast_thresholds = torch.where(thresholds >= 1.0, torch.full_like(thresholds, opts["iast_cap"]),
                                           thresholds)
        return self.iast_thresholds

    def valid_rows(self, like: torch.Tensor) -> torch.Tensor:
        """bool (1, H, 1): False on DAFormer's cropped top and bottom rows when `pseudo_crop` is on."""
        height = like.shape[-2]
        valid = torch.ones(1, height, 1, dtype=torch.bool, device=like.device)
        if self.options["pseudo_crop"]:
            top = round(self.options["pseudo_crop_top"] * height / CROP_REFERENCE_HEIGHT)
            bottom = round(self.options["pseudo_crop_bottom"] * height / CROP_REFERENCE_HEIGHT)
            valid[:, :top] = False
            if bottom > 0:
                valid[:, height - bottom:] = False
        return valid

    def mix_masks(self, source_labels: torch.Tensor) -> torch.Tensor:
        """bool (N, H, W): where source pixels are pasted onto the target."""
        mode = self.options["mixing"]
        if mode == "classmix":
            return classmix_masks(source_labels)
        if mode == "cutmix":
            return cutmix_masks(*source_labels.shape, device=source_labels.device)
        return torch.zeros_like(source_labels, dtype=torch.bool)

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        opts = self.options
        return strong_augment(images, opts["color_jitter"], opts["color_jitter_prob"], opts["blur_prob"],
                              tuple(opts["blur_sigma"]))

    def feature_distance(self, images: torch.Tensor, labels: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Mean L2 distance between the student's and the frozen ImageNet model's bottleneck features over the
        feature pixels whose patch is >= `fd_min_ratio` one thing class (0 when there is none)."""
        with torch.no_grad():
            reference = self.imagenet_model.extract(images)[-1]
        patch_labels = downscale_labels(labels, features.shape[-2:], self.num_classes, self.options["fd_min_ratio"])
        things = torch.isin(patch_labels, torch.tensor(THING_CLASSES, device=labels.device))
        distance = torch.linalg.vector_norm((features - reference).float(), dim=1)
        return (distance * things).sum() / things.sum().clamp(min=1)

    # ---- checkpoints ---------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        state = {"teacher": self.teacher.state_dict()}
        if self.imagenet_model is not None:
            state["imagenet_model"] = self.imagenet_model.state_dict()
        if self.iast_thresholds is not None:
            state["iast_thresholds"] = self.iast_thresholds.clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.teacher.load_state_dict(state["teacher"])
        if self.imagenet_model is not None:
            self.imagenet_model.load_state_dict(state["imagenet_model"])
        if self.iast_thresholds is not None:
            self.iast_thresholds = state["iast_thresholds"].to(self.iast_thresholds.device)


# ---- losses and helpers --------------------------------------------------------------------------------


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy times `weight`, averaged over all pixels (ignored ones count as 0), as mmseg
    averages DACS's weighted loss."""
    loss = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="none")
    return (loss * weight).mean()


def region_regularisers(logits: torch.Tensor, labelled: torch.Tensor,
                        unlabelled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IAST's region-guided regularisation: on pseudo-labelled pixels the KL divergence to the uniform
    distribution up to a constant, mean over classes of -log p (keeps them from over-fitting to the pseudo-label);
    on the other pixels the entropy -sum p log p (sharpens them). Each a mean over its pixels, 0 when empty."""
    log_probs = torch.log_softmax(logits.float(), dim=1)
    kld = -log_probs.mean(dim=1)
    entropy = -(log_probs.exp() * log_probs).sum(dim=1)
    return ((kld * labelled).sum() / labelled.sum().clamp(min=1),
            (entropy * unlabelled).sum() / unlabelled.sum().clamp(min=1))


def downscale_labels(labels: torch.Tensor, size: tuple[int, int], num_classes: int, min_ratio: float) -> torch.Tensor:
    """Labels (N, H, W) to (N, h, w): each cell's most frequent class, or IGNORE when it covers less than
    `min_ratio` of the cell or is IGNORE itself (DAFormer's `downscale_label_ratio`)."""
    classes = torch.where(labels == IGNORE, num_classes, labels)
    one_hot = F.one_hot(classes, num_classes + 1).permute(0, 3, 1, 2).float()
    share, cls = F.adaptive_avg_pool2d(one_hot, size).max(dim=1)
    return torch.where((share < min_ratio) | (cls == num_classes), IGNORE, cls)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _upsample(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Logits at the head's resolution to the input size, as `Segmentor.forward` does."""
    return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
