"""Target images with the label store's sparse labels: what training on actively gathered labels reads."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from syn2real.active.store import LabelStore
from syn2real.data.base import SegDataset, image_size


class SparseLabelDataset(Dataset):
    """Items of `images` (a target dataset built with labels=False) with "mask" = the store's labels for that
    image (IGNORE where nobody labelled), read at each access so a new round's answers are used at once.
    It never opens a label file: its labels come only from the store."""

    def __init__(self, images: SegDataset, store: LabelStore, transform: Callable | None = None):
        if images.labels:
            raise ValueError("build the target images with labels=False: labels come from the label store")
        self.images = images
        self.store = store
        self.transform = transform
        self.space = getattr(images, "space", None)
        self.names = images.names

    def register(self) -> None:
        """Enter every image (name, native size, file) into the store."""
        sizes = {}
        for name, (path, _) in zip(self.images.names, self.images.files):
            width, height = image_size(path)
            sizes[name] = (height, width, path)
        self.store.add_images(sizes)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        item = self.images[index]
        label = self.store.sparse_label(item["name"])
        if label.shape != tuple(item["image"].shape[-2:]):
            raise ValueError(f"{item['name']}: the store's labels are {label.shape}, the image "
                             f"{tuple(item['image'].shape[-2:])}; was the image replaced?")
        item["mask"] = tv_tensors.Mask(torch.from_numpy(label))
        return self.transform(item) if self.transform is not None else item
