"""Noisy Student self-training (Xie, Luong, Hovy & Le, "Self-training with Noisy Student improves ImageNet
classification", CVPR 2020) for segmentation, with CBST's class-balanced pseudo-labels (Zou, Yu, Kumar & Wang,
"Unsupervised Domain Adaptation for Semantic Segmentation via Class-Balanced Self-Training", ECCV 2018).

One training run is one round:

1. The teacher is frozen (eval mode, so no dropout or drop path): `teacher`, a run folder or a `.safetensors`
   checkpoint carrying its model config (any architecture with the same classes), a list of them (their mean
   probability: FDA's MBT pseudo-labels from its three β models), or by default the run's initial weights
   (`train.init_from`).
2. Before the first step the teacher labels every frame of `data.target` once, offline, whole-frame at the
   student's input scale (`data.resize`), with no noise. Thresholds are class-balanced (CBST): for each class c,
   the confidence at the top `portion` of all target pixels predicted c, so every class keeps that share of its
   pixels, a class the teacher is unsure of included. Pixels below their class's threshold become IGNORE.
   The labels are PNGs in `RUN/pseudo_labels/labels/` (written atomically; `meta.json`, written last, records
   the teacher's weight fingerprint, the settings, the frames and the thresholds), reused on resume and by a
   re-run with the same teacher. The frames are read with `labels=False`: no target label is ever opened.
3. The student (the run's `model`: the same size as the teacher or larger, as the paper's) learns the source
   cross-entropy (`cfg.loss`) plus the cross-entropy on the pseudo-labels of the target frames the trainer's
   target loader draws (re-read by name with their pseudo-labels and cropped jointly), under noise: input noise
   (RandAugment's colour operations; ClassMix/CutMix of target frames with each other's pseudo-labels) and model
   noise (`model.dropout`, stochastic depth `model.drop_path`: the paper's 0.5 and 0.2 at the final layer).
   With `distill`, the target term is Hinton et al.'s temperature distillation toward the teacher's soft
   targets (computed on the clean crop; a frozen teacher gives what an offline pass would), mixed with the
   hard pseudo-labels by `alpha`.

The next round is a new run with `teacher: <this run>` and a larger `portion` (CBST: +0.05 a round, at most
0.5). A method used outside the trainer (no `data.target`, or a batch without frame names) labels each batch
on the fly with the same teacher and the batch's class-balanced thresholds.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import track
from torch import nn
from torch.utils.data import Dataset
from torchvision import tv_tensors

from syn2real.config import Config
from syn2real.data import build_dataset, train_transform
from syn2real.data.base import read_index_png
from syn2real.data.mixing import classmix_masks, cutmix_masks, mix
from syn2real.data.transforms import ColorRandAugment
from syn2real.errors import ConfigError, DataError, TrainingError
from syn2real.evaluate.inference import autocast, infer_logits
from syn2real.io import atomic_write_bytes, atomic_write_json, png_bytes, read_json
from syn2real.labels import IGNORE
from syn2real.methods.base import METHODS, Method
from syn2real.methods.distill import load_teacher, weights_fingerprint
from syn2real.methods.losses import distillation_loss, sparse_cross_entropy

MIXING_MODES = ("classmix", "cutmix", "none")
#: Confidences are stored as 16-bit PNGs, round(p · CONFIDENCE_LEVELS); thresholds are on the same scale.
CONFIDENCE_LEVELS = 65535
#: Bumped when the cache layout or the labelling changes, so an old cache is relabelled instead of reused.
CACHE_VERSION = 1


# ---- class-balanced pseudo-labels (CBST) ------------------------------------------------------------------


def quantize_confidence(confidence: torch.Tensor) -> torch.Tensor:
    """Confidences in [0, 1] as integer levels 0..CONFIDENCE_LEVELS (int64), the scale of the cached PNGs."""
    return (confidence.float().clamp(0, 1) * CONFIDENCE_LEVELS).round().long()


def confidence_histogram(labels: torch.Tensor, levels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, CONFIDENCE_LEVELS + 1) int64: pixels predicted as each class, per confidence level."""
    bins = CONFIDENCE_LEVELS + 1
    keys = labels.long().flatten() * bins + levels.flatten()
    return torch.bincount(keys, minlength=num_classes * bins).view(num_classes, bins)


def class_balanced_thresholds(histogram: torch.Tensor, portion: float) -> torch.Tensor:
    """CBST's thresholds (Zou et al., ECCV 2018) as confidence levels, (num_classes,) int64: for each class, the
    confidence of its k-th most confident pixel, k = max(floor(n_c · portion), 1) of its n_c pixels, so that the
    top `portion` of every class's pixels is kept whatever its confidences. A class with no pixel gets
    CONFIDENCE_LEVELS + 1 (nothing to keep)."""
    counts = histogram.sum(1)
    k = (counts.double() * portion).floor().long().clamp(min=1)
    from_top = histogram.flip(1).cumsum(1)  # pixels at or above each level, most confident first
    first = (from_top >= k[:, None]).long().argmax(1)  # first level (from the top) that reaches k pixels
    thresholds = CONFIDENCE_LEVELS - first
    return torch.where(counts > 0, thresholds, torch.full_like(thresholds, CONFIDENCE_LEVELS + 1))


def apply_thresholds(labels: torch.Tensor, levels: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """`labels` with IGNORE where the confidence level is below the pixel's class threshold (int64)."""
    labels = labels.long()
    return torch.where(levels >= thresholds.to(labels.device)[labels], labels, IGNORE)


def class_balanced_pseudo_labels(probs: torch.Tensor, portion: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-labels (N, H, W) int64 from softmax maps (N, C, H, W) with thresholds balanced over all their
    pixels, and the thresholds as confidences (C,) float."""
    confidence, labels = probs.float().max(dim=1)
    levels = quantize_confidence(confidence)
    thresholds = class_balanced_thresholds(confidence_histogram(labels, levels, probs.shape[1]), portion)
    return apply_thresholds(labels, levels, thresholds), thresholds.double() / CONFIDENCE_LEVELS


# ---- input noise -----------------------------------------------------------------------------------------


def color_randaugment(images: torch.Tensor, num_ops: int, magnitude: int) -> torch.Tensor:
    """RandAugment's colour operations (`data.transforms.ColorRandAugment`), drawn per image, on float images in
    [0, 1] that came from uint8 (they go through uint8 and back, so an identity draw changes nothing)."""
    augment = ColorRandAugment(num_ops=num_ops, magnitude=magnitude)
    out = []
    with torch.autocast(images.device.type, enabled=False):
        for image in images.float():
            as_uint8 = tv_tensors.Image(image.mul(255).round().clamp(0, 255).to(torch.uint8))
            out.append(augment(as_uint8).as_subclass(torch.Tensor).float().div(255))
    channels_last = images.is_contiguous(memory_format=torch.channels_last)
    return torch.stack(out).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


# ---- the target frames with their cached pseudo-labels -----------------------------------------------------


class PseudoLabelledFrames(Dataset):
    """Target frames (a `labels=False` dataset without transform) with their pseudo-label PNG as "mask", through
    the training transform jointly (the same random scale, crop and flip). "inside" is a Mask of ones that the
    crop's padding turns IGNORE, so padding is told apart from unconfident pixels."""

    def __init__(self, frames: Dataset, label_dir: Path, transform):
        self.frames, self.label_dir, self.transform = frames, Path(label_dir), transform
        self.names = list(frames.names)
        self.index = {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict:
        item = self.frames[i]
        path = self.label_dir / f"{self.names[i]}.png"
        mask = torch.from_numpy(read_index_png(path).astype(np.uint8))
        if mask.shape != item["image"].shape[-2:]:
            raise DataError(f"{path}: pseudo-label {tuple(mask.shape)} does not fit its frame "
                            f"{tuple(item['image'].shape[-2:])}; delete {self.label_dir.parent} to relabel")
        item["mask"] = tv_tensors.Mask(mask)
        item["inside"] = tv_tensors.Mask(torch.ones_like(mask))
        return self.transform(item) if self.transform is not None else item

    def batch(self, names: list[str], device: torch.device, channels_last: bool = False):
        """(images float (N, 3, H, W) in [0, 1], pseudo-labels int64 (N, H, W), inside bool (N, H, W))."""
        missing = [n for n in names if n not in self.index]
        if missing:
            raise TrainingError(f"target frames {missing[:3]} have no pseudo-label: the trainer's target dataset "
                                f"is not data.target ({self.label_dir.parent})")
        items = [self[self.index[n]] for n in names]
        images = torch.stack([it["image"].as_subclass(torch.Tensor) for it in items]).to(device).float().div(255)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = torch.stack([it["mask"].as_subclass(torch.Tensor) for it in items]).to(device).long()
        inside = torch.stack([it["inside"].as_subclass(torch.Tensor) for it in items]).to(device) == 1
        return images, labels, inside


# ---- the method -------------------------------------------------------------------------------------------


@METHODS.register("noisy_student")
class NoisyStudent(Method):
    """Noisy Student (Xie et al., CVPR 2020): one round, CBST class-balanced offline pseudo-labels, noised student."""

    defaults: ClassVar[dict[str, Any]] = {
        # A run folder or .safetensors checkpoint (carrying its model config); null: the run's initial weights.
        "teacher": None,
        # CBST (Zou et al., ECCV 2018): each class keeps its most confident `portion` of pixels; 0.2 in the first
        # round, +0.05 each round up to 0.5 (the recipe raises it round by round).
        "portion": 0.2,
        # Weight of the target (pseudo-label) term against the source cross-entropy.
        "target_weight": 1.0,
        # Input noise. RandAugment as Noisy Student: 2 operations at magnitude 27 (of 30), colour operations
        # only (geometric ones would move the image off its labels; scale/crop/flip come from the data transform).
        "randaugment": True,
        "randaugment_ops": 2,
        "randaugment_magnitude": 27,
        # Target-target mixing with the pseudo-labels: ClassMix (Olsson et al., WACV 2021: half of the other
        # frame's classes pasted) | cutmix (Yun et al., ICCV 2019: a box of half the area) | none.
        "mixing": "classmix",
        # Distillation toward the teacher's soft targets (Hinton et al., 2015) on target frames, mixed with the
        # hard pseudo-labels: alpha·T²·KL + (1 - alpha)·CE; T 4 and alpha 0.9 as `distill` (see distill.py).
        "distill": False,
        "temperature": 4.0,
        "alpha": 0.9,
    }

    def __init__(self, cfg: Config, model: nn.Module):
        super().__init__(cfg, model)
        opts = self.options
        if opts["mixing"] not in MIXING_MODES:
            raise ConfigError(f"method.params.mixing: {opts['mixing']!r}; choose one of {', '.join(MIXING_MODES)}")
        if not 0.0 < opts["portion"] <= 1.0:
            raise ConfigError(f"method.params.portion must lie in (0, 1]; got {opts['portion']}")
        if not opts["temperature"] > 0 or not 0.0 <= opts["alpha"] <= 1.0:
            raise ConfigError(f"method.params: temperature must be > 0 and alpha in [0, 1]; got "
                              f"{opts['temperature']}, {opts['alpha']}")
        ColorRandAugment(opts["randaugment_ops"], opts["randaugment_magnitude"])  # checks the magnitude
        self.num_classes = cfg.model.num_classes
        self.teacher = load_teacher(opts["teacher"], model, self.num_classes, "method.params.teacher")
        self.frames: PseudoLabelledFrames | None = None
        self.thresholds: torch.Tensor | None = None  # the offline thresholds, as confidences
        self.prepared = False
        # Frames the teacher labelled in this process, and cached labels reused (for logs and tests).
        self.labelled = 0
        self.reused = 0

    @property
    def cache_dir(self) -> Path:
        return self.cfg.run_dir / "pseudo_labels"

    # ---- offline pseudo-labels ---------------------------------------------------------------------------

    def prepare(self, progress: bool = False) -> None:
        """Label `data.target` with the teacher (or reuse the cache): the trainer calls this once before
        training. Without `data.target`, nothing to do (the batches are labelled on the fly)."""
        if self.prepared:
            return
        self.prepared = True
        if self.cfg.data.target is None:
            return
        frames = build_dataset(self.cfg.data.target, None, labels=False)
        settings = self._settings(frames)
        meta_path = self.cache_dir / "meta.json"
        meta = read_json(meta_path, "pseudo-label index") if meta_path.is_file() else None
        if meta is None or {k: meta.get(k) for k in settings} != settings:
            meta = self._label_frames(frames, settings, progress)
        else:
            self.reused = len(frames)
        self.thresholds = torch.tensor([math.nan if t is None else t for t in meta["thresholds"]],
                                       dtype=torch.float64)
        self.frames = PseudoLabelledFrames(frames, self.cache_dir / "labels", train_transform(self.cfg.data))

    def _settings(self, frames) -> dict:
        resize = self.cfg.data.resize
        return {"version": CACHE_VERSION, "teacher": weights_fingerprint(self.teacher),
                "portion": float(self.options["portion"]), "num_classes": self.num_classes,
                "resize": list(resize) if resize else None, "eval_mode": self.cfg.eval.mode,
                "frames": [str(path) for path, _ in frames.files], "names": list(frames.names)}

    def _label_frames(self, frames, settings: dict, progress: bool) -> dict:
        """Teacher predictions (argmax and 16-bit confidence PNGs) for every frame, thresholds from their
        per-class histogram over the whole set, then the thresholded labels; `meta.json` last. Predictions made
        with the same teacher and frames (before an interruption, or for another `portion`) are read back, not
        predicted again."""
        folder = self.cache_dir
        rank, world = _rank_and_world()
        pending, meta_path = folder / "pending.json", folder / "meta.json"
        prediction = {k: v for k, v in settings.items() if k != "portion"}  # what the raw predictions depend on
        if rank == 0:
            before = pending if pending.is_file() else meta_path if meta_path.is_file() else None
            old = read_json(before, "pseudo-label settings") if before is not None else None
            if folder.exists() and (old is None or {k: old.get(k) for k in prediction} != prediction):
                shutil.rmtree(folder)  # another teacher or other frames: nothing to reuse
            meta_path.unlink(missing_ok=True)
            if not pending.is_file():
                atomic_write_json(pending, prediction)
        _barrier()
        device = next(self.model.parameters()).device
        histogram = torch.zeros(self.num_classes, CONFIDENCE_LEVELS + 1, dtype=torch.long, device=device)
        mine = range(rank, len(frames), world)
        for i in track(mine, description="Pseudo-labelling target frames", disable=not progress):
            name = frames.names[i]
            label_path, conf_path = folder / "teacher" / f"{name}.png", folder / "confidence" / f"{name}.png"
            if label_path.is_file() and conf_path.is_file():
                labels = torch.from_numpy(read_index_png(label_path).astype(np.int64)).to(device)
                levels = torch.from_numpy(read_index_png(conf_path).astype(np.int64)).to(device)
                self.reused += 1
            else:
                labels, levels = self._predict_frame(frames[i]["image"], device)
                atomic_write_bytes(conf_path, png_bytes(levels.cpu().numpy().astype(np.uint16)))
                atomic_write_bytes(label_path, png_bytes(labels.cpu().numpy().astype(np.uint8)))
                self.labelled += 1
            histogram += confidence_histogram(labels, levels, self.num_classes)
        if world > 1:
            torch.distributed.all_reduce(histogram)
        thresholds = class_balanced_thresholds(histogram, settings["portion"])
        for i in mine:
            name = frames.names[i]
            labels = torch.from_numpy(read_index_png(folder / "teacher" / f"{name}.png").astype(np.int64))
            levels = torch.from_numpy(read_index_png(folder / "confidence" / f"{name}.png").astype(np.int64))
            kept = apply_thresholds(labels, levels, thresholds.cpu())
            atomic_write_bytes(folder / "labels" / f"{name}.png", png_bytes(kept.numpy().astype(np.uint8)))
        _barrier()
        counts = histogram.sum(1)
        # Thresholds as confidences; null for a class the teacher never predicted.
        meta = {**settings, "thresholds": [t / CONFIDENCE_LEVELS if n else None
                                           for t, n in zip(thresholds.tolist(), counts.tolist())],
                "teacher_pixels": counts.tolist()}
        if rank == 0:
            atomic_write_json(folder / "meta.json", meta)
            pending.unlink(missing_ok=True)
        _barrier()
        return meta

    @torch.no_grad()
    def _predict_frame(self, image: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's argmax and confidence level (H, W) for one uint8 frame (3, H, W), predicted whole at
        the training scale (`data.resize`) and resized back to the frame."""
        height, width = image.shape[-2:]
        x = image.as_subclass(torch.Tensor)[None].to(device).float().div(255)
        if self.cfg.data.resize:
            x = F.interpolate(x, size=tuple(self.cfg.data.resize), mode="bilinear", align_corners=False,
                              antialias=True)
        ev = self.cfg.eval
        with autocast(device.type, self.cfg.train.precision):
            logits = infer_logits(self.teacher, x, mode=ev.mode, crop_size=ev.crop_size, stride=ev.stride,
                                  num_classes=self.num_classes)
        logits = F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)
        confidence, labels = logits.softmax(dim=1).max(dim=1)
        return labels[0], quantize_confidence(confidence[0])

    # ---- one iteration -----------------------------------------------------------------------------------

    def target_batch(self, tgt: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clean target crops, their pseudo-labels (IGNORE below the class threshold) and where the crop holds
        image (not padding): the trainer's frames re-read with their cached labels, or, without a cache, the
        batch's own images labelled now by the teacher with the batch's class-balanced thresholds."""
        if self.frames is not None and "name" in tgt:
            return self.frames.batch(list(tgt["name"]), tgt["image"].device, self.cfg.model.channels_last)
        images = tgt["image"]
        with torch.no_grad():
            probs = self.teacher(images).float().softmax(dim=1)
        labels, _ = class_balanced_pseudo_labels(probs, self.options["portion"])
        return images, labels, torch.ones_like(labels, dtype=torch.bool)

    def add_noise(self, images: torch.Tensor, labels: torch.Tensor, inside: torch.Tensor,
                  soft: torch.Tensor | None = None):
        """The student's input noise: RandAugment colour operations per image, then each frame mixed with the
        previous one of the batch (ClassMix: half of that frame's pseudo-labelled classes pasted; CutMix: a box),
        labels, padding and soft targets alike. Returns (images, labels, inside, soft)."""
        opts = self.options
        if opts["randaugment"]:
            images = color_randaugment(images, opts["randaugment_ops"], opts["randaugment_magnitude"])
        if opts["mixing"] != "none" and len(images) > 1:
            def other(t):
                return t.roll(1, dims=0)

            if opts["mixing"] == "classmix":
                pasted = classmix_masks(other(labels))
            else:
                pasted = cutmix_masks(*labels.shape, device=labels.device)
            images = mix(pasted, other(images), images)
            labels = mix(pasted, other(labels), labels)
            inside = mix(pasted, other(inside), inside)
            soft = mix(pasted, other(soft), soft) if soft is not None else None
        return images, labels, inside, soft

    def train_step(self, src: dict, tgt: dict | None, step: int) -> dict[str, float]:
        if tgt is None:
            raise ConfigError("noisy_student needs unlabelled target images: set data.target")
        if not self.prepared:
            self.prepare()
        opts = self.options
        # 1. Source cross-entropy (cfg.loss).
        loss = self.source_loss(self.model(src["image"]), src["mask"])
        logs = {"loss_src": loss.item()}
        self.backward(loss)
        del loss

        # 2. The teacher's pseudo-labels (offline), the teacher's soft targets on the clean crop (distill), noise.
        images, labels, inside = self.target_batch(tgt)
        if images.shape[1:] != src["image"].shape[1:]:
            raise TrainingError(f"source batch {tuple(src['image'].shape)} and target batch "
                                f"{tuple(images.shape)} differ in image size")
        soft = None
        if opts["distill"]:
            with torch.no_grad():
                soft = self.teacher(images)
        labels = torch.where(inside, labels, IGNORE)
        logs["pseudo_labelled"] = ((labels != IGNORE).sum() / inside.sum().clamp(min=1)).item()
        noisy, labels, inside, soft = self.add_noise(images, labels, inside, soft)

        # 3. The noised student on the pseudo-labels (or the teacher's soft targets).
        logits = self.model(noisy)
        if opts["distill"]:
            loss = distillation_loss(logits, soft, labels, opts["temperature"], opts["alpha"], valid=inside)
        else:
            loss = sparse_cross_entropy(logits, labels)
        loss = opts["target_weight"] * loss
        logs["loss_tgt"] = loss.item()
        self.backward(loss)
        del logits, loss

        # 4. Active labelling: the label store's sparse labels, on the trainer's own target crop.
        if "mask" in tgt:
            loss = self.target_label_loss(self.model(tgt["image"]), tgt)
            logs["loss_labelled"] = loss.item()
            self.backward(loss)
        return logs


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
