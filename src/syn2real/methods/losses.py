"""Losses several methods (and the active selectors) share: entropies of softmax maps, the GAN loss against a
domain label, and cross-entropy over sparse labels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from syn2real.labels import IGNORE


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Losses in float32 under bf16/fp16 autocast; float64 (used by the tests' exact checks) stays float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def self_information(probs: torch.Tensor) -> torch.Tensor:
    """ADVENT's weighted self-information map -p·log2(p)/log2(C), per class: (N, C, H, W) -> (N, C, H, W).

    Summed over classes it is the entropy normalised to [0, 1]. p = 0 gives 0 (the limit of p·log p); the
    clamp keeps the gradient finite where the softmax underflows (ADVENT adds 1e-30 inside the log likewise).
    """
    num_classes = probs.shape[1]
    # log2 ratios equal natural-log ratios, so dividing by ln(C) is the paper's normalisation by log2(C).
    return -probs * probs.clamp_min(1e-30).log() / math.log(num_classes)


def entropy_map(probs: torch.Tensor) -> torch.Tensor:
    """Per-pixel entropy normalised by log(C): (N, C, H, W) -> (N, H, W); uniform -> 1, one-hot -> 0."""
    return self_information(probs).sum(1)


def entropy_loss(probs: torch.Tensor) -> torch.Tensor:
    """ADVENT's MinEnt loss: -Σ p·log2(p) / (n·h·w·log2(C)), the mean normalised entropy."""
    return entropy_map(probs).mean()


def gan_loss(d_logits: torch.Tensor, label: float, kind: str = "bce") -> torch.Tensor:
    """GAN loss of D's patch logits against a constant domain label: BCE on logits, or least squares (MSE on
    the raw output, AdaptSegNet's `--gan LS`)."""
    d_logits = at_least_float32(d_logits)
    target = torch.full_like(d_logits, label)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(d_logits, target)
    return F.mse_loss(d_logits, target)


def sparse_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the labelled pixels only (0 when a batch has none, not NaN): sparse target
    labels from active labelling cover a few percent of the pixels or a few points per image."""
    labels = labels.long()
    total = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="sum")
    return total / (labels != IGNORE).sum().clamp(min=1)


def median_frequency_weights(counts: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Median-frequency class weights (Eigen & Fergus, ICCV 2015) from per-frame pixel counts (frames, C):
    f_c = pixels of c / pixels of the frames that hold c, w_c = (median(f) / f_c) ** power over the classes that
    occur; classes that never occur get 1 (no pixel carries them, so the weight does not matter)."""
    counts = counts.double()
    totals = counts.sum(0)
    present = totals > 0
    if not present.any():
        raise ValueError("class weights: the labels hold no labelled pixel")
    frames_with = (counts > 0).double() * counts.sum(1, keepdim=True)
    frequency = totals[present] / frames_with.sum(0)[present]
    weights = torch.ones(counts.shape[1], dtype=torch.float64)
    weights[present] = (frequency.median() / frequency) ** power
    return weights.float()


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None,
                      ohem_thresh: float | None = None, min_kept: int = 0) -> torch.Tensor:
    """Cross-entropy over the labelled pixels, optionally class-weighted (a weighted mean, as
    `F.cross_entropy`), optionally over the hard pixels only (OHEM: true-class probability below
    `ohem_thresh`, and at least the `min_kept` hardest). 0 when no pixel is labelled."""
    logits = at_least_float32(logits)
    labels = labels.long()
    weight = None if weight is None else weight.to(logits)
    pixel = F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE, reduction="none")
    valid = labels != IGNORE
    pixel_weight = weight[labels.clamp(max=logits.shape[1] - 1)] if weight is not None else torch.ones_like(pixel)
    keep = valid
    if ohem_thresh is not None:
        with torch.no_grad():
            # -log p(true) is the unweighted loss; a pixel is hard when p(true) < thresh.
            true_prob = torch.exp(-F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="none"))
            true_prob = true_prob.masked_fill(~valid, 2.0)
            num_valid = int(valid.sum())
            threshold = ohem_thresh
            if 0 < min_kept < num_valid:
                # Raise the threshold until at least min_kept pixels are kept.
                kth = true_prob.flatten().kthvalue(min_kept).values.item()
                threshold = max(threshold, kth)
            keep = valid & (true_prob <= threshold)
    denominator = (pixel_weight * keep).sum()
    return (pixel * keep).sum() / denominator.clamp(min=1e-12) if keep.any() else pixel.sum() * 0.0


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None,
                      temperature: float = 4.0, alpha: float = 0.9,
                      valid: torch.Tensor | None = None) -> torch.Tensor:
    """Knowledge distillation with temperature (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
    Network", 2015), per pixel:

        l = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

    averaged over the `valid` pixels (default: those whose label is not IGNORE; every pixel when `labels` is
    None, and then the hard term is 0). A pixel labelled IGNORE inside `valid` gets the soft term only. The T^2
    keeps the soft term's gradients the size of the hard term's whatever T is (Hinton et al. §2: they scale
    as 1/T^2). Logits (N, C, H, W) at the same size; the teacher's carry no gradient. KL is computed from
    log-probabilities of both (not ProDA's softmax-into-kl_div bug, REFERENCE §3.10)."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"distillation_loss: student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    if temperature <= 0 or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distillation_loss: temperature must be > 0 and alpha in [0, 1]; got {temperature}, "
                         f"{alpha}")
    student = at_least_float32(student_logits)
    teacher = at_least_float32(teacher_logits.detach()).to(student.dtype)
    log_p_student = torch.log_softmax(student / temperature, dim=1)
    log_p_teacher = torch.log_softmax(teacher / temperature, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1)  # (N, H, W)
    pixel = alpha * temperature**2 * kl
    if labels is not None:
        labels = labels.long()
        if alpha < 1.0:
            hard = F.cross_entropy(student, labels, ignore_index=IGNORE, reduction="none")
            pixel = pixel + (1.0 - alpha) * hard
        if valid is None:
            valid = labels != IGNORE
    if valid is None:
        return pixel.mean()
    valid = valid.to(pixel.dtype)
    return (pixel * valid).sum() / valid.sum().clamp(min=1)
