"""Cross-domain mixing masks (ClassMix, CutMix) and rare-class sampling, on constructed labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from syn2real.data.mixing import classmix_masks, cutmix_masks, mix
from syn2real.data.sampling import RareClassDataset, image_class_counts, rcs_class_probabilities
from syn2real.labels import CITYSCAPES19, IGNORE


def striped_labels() -> torch.Tensor:
    """Two 8x16 labels: image 0 holds classes 0-3 (4 stripes), image 1 classes 5, 6, 7 and an ignored stripe."""
    labels = torch.empty(2, 8, 16, dtype=torch.int64)
    for i, classes in enumerate(([0, 1, 2, 3], [5, 6, 7, IGNORE])):
        for j, cls in enumerate(classes):
            labels[i, :, 4 * j:4 * (j + 1)] = cls
    return labels


# ---- ClassMix / CutMix -----------------------------------------------------------------------------------


def test_classmix_pastes_exactly_half_of_each_images_classes():
    labels = striped_labels()
    seen: set[int] = set()
    for seed in range(20):
        torch.manual_seed(seed)
        masks = classmix_masks(labels)
        for label, mask, n_classes in zip(labels, masks, (4, 3)):
            pasted = set(label[mask].tolist())
            assert len(pasted) == (n_classes + n_classes % 2) // 2  # 4 -> 2, 3 -> 2
            assert IGNORE not in pasted
            # Every pixel of a chosen class is pasted and nothing else is.
            assert torch.equal(mask, torch.isin(label, torch.tensor(sorted(pasted))))
            seen |= pasted
    assert seen == {0, 1, 2, 3, 5, 6, 7}  # the choice is random, not always the same classes


def test_mix_takes_source_where_pasted_and_target_elsewhere():
    labels = striped_labels()
    torch.manual_seed(0)
    masks = classmix_masks(labels)
    source_images, target_images = torch.rand(2, 3, 8, 16), torch.rand(2, 3, 8, 16)
    pseudo = torch.full_like(labels, 11)
    mixed_labels = mix(masks, labels, pseudo)
    mixed_images = mix(masks, source_images, target_images)
    assert torch.equal(mixed_labels[masks], labels[masks])
    assert (mixed_labels[~masks] == 11).all()
    m = masks.unsqueeze(1).expand_as(source_images)
    assert torch.equal(mixed_images[m], source_images[m]) and torch.equal(mixed_images[~m], target_images[~m])


def test_cutmix_pastes_one_box_of_half_the_image():
    torch.manual_seed(0)
    masks = cutmix_masks(6, 20, 30)
    for mask in masks:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        height, width = len(rows), len(cols)
        assert rows.max() - rows.min() + 1 == height and cols.max() - cols.min() + 1 == width  # contiguous
        assert mask.sum() == height * width  # a filled box
        assert 15 <= width < 30 and abs(height * width - 300) <= width / 2  # half of 600 px, up to rounding


# ---- rare-class sampling ---------------------------------------------------------------------------------


def test_rcs_probabilities_favour_the_rare_class_and_flatten_with_temperature():
    counts = np.zeros((3, 19), np.int64)
    counts[:, 0] = 50_000   # road: common
    counts[:, 2] = 20_000   # building
    counts[0, 12] = 4_000   # rider: rare, one frame over 3000 px
    counts[1, 17] = 2_000   # motorcycle: no frame over 3000 px, so never sampled
    probs = rcs_class_probabilities(counts, temperature=0.01, min_pixels=3000)
    assert probs.sum() == pytest.approx(1.0)
    assert int(probs.argmax()) == 12
    assert probs[12] > probs[2] > probs[0]
    assert probs[17] == 0 and probs[5] == 0
    flat = rcs_class_probabilities(counts, temperature=1e6, min_pixels=3000)
    assert flat[[0, 2, 12]] == pytest.approx([1 / 3] * 3)


class CornerScenes(torch.utils.data.Dataset):
    """32x64 frames of road; frame 0 also has a 16x16 rider patch in its bottom-right corner."""

    space = CITYSCAPES19

    def __init__(self, n: int = 4, transform=None):
        self.masks = torch.zeros(n, 32, 64, dtype=torch.uint8)
        self.masks[0, 16:, 48:] = 12
        self.names = [f"f{i}" for i in range(n)]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, i: int) -> dict:
        item = {"image": tv_tensors.Image(torch.zeros(3, 32, 64, dtype=torch.uint8)),
                "mask": tv_tensors.Mask(self.masks[i]), "name": self.names[i]}
        return self.transform(item) if self.transform else item


def test_rcs_recrops_until_the_crop_holds_the_rare_class(tmp_path):
    dataset = CornerScenes()
    counts = image_class_counts(dataset, cache=tmp_path / "counts.json")
    assert counts[0, 12] == 256 and counts[0, 0] == 32 * 64 - 256 and counts[1, 0] == 32 * 64
    crop = v2.RandomCrop((24, 48))
    # A low temperature makes the rider (256 of 8192 px) all but certain to be the sampled class.
    rcs = RareClassDataset(dataset, crop, counts, temperature=0.01, min_pixels=200, min_crop_ratio=0.5)
    assert rcs.class_probs[12] > 0.99
    torch.manual_seed(0)
    hits = [int((rcs[0]["mask"] == 12).sum()) > 100 for _ in range(30)]
    # One random 24x48 crop holds > 100 rider px with probability 68/153 = 0.44; one of ten tries, 0.997.
    assert sum(hits) >= 28
    torch.manual_seed(0)
    single = RareClassDataset(dataset, crop, counts, temperature=0.01, min_pixels=200, crop_attempts=1)
    assert sum(int((single[0]["mask"] == 12).sum()) > 100 for _ in range(30)) <= 22


def test_class_counts_are_cached_by_frame_names(tmp_path):
    cache = tmp_path / "counts.json"
    dataset = CornerScenes()
    first = image_class_counts(dataset, cache=cache)
    assert json.loads(cache.read_text())["names"] == dataset.names
    dataset.masks[:] = 5  # the labels change but the names do not: the cache answers
    assert np.array_equal(image_class_counts(dataset, cache=cache), first)
    dataset.names = [f"g{i}" for i in range(4)]  # other frames: counted again
    assert (image_class_counts(dataset, cache=cache)[:, 5] == 32 * 64).all()
