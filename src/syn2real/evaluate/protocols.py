"""Scoring protocols: the label space a result is reported in, and how predictions and ground truth get there.

A protocol maps both the model's prediction and the dataset's ground truth into its own space with
256-entry uint8 lookup tables (255 = ignore):

- ``cityscapes19``: the 19 Cityscapes train classes.
- ``synthia16`` / ``synthia13``: SYNTHIA-RAND-CITYSCAPES protocols, the 19 classes without terrain, truck,
  train (and for 13 also without wall, fence, pole). Ground truth of the dropped classes is ignored;
  a prediction of a dropped class is a miss for the pixel's true class (see `metrics`).
- ``camvid11``: the 11 CamVid classes; a 19-class prediction is merged many-to-one
  (`labels.CITYSCAPES19_TO_CAMVID11`: truck, bus, train -> car, ...).

A model or dataset whose space already *is* the protocol space maps by identity (e.g. an 11-class model
trained on CamVid masks, scored with ``camvid11``). Spaces that are subsets of Cityscapes-19 (SYNTHIA-16/13)
map through Cityscapes-19. Ground truth must be able to express every protocol class, so e.g. the
``cityscapes19`` protocol on CamVid-11 (merged classes) or on SYNTHIA-16 masks is a `ConfigError`.

Note on SYNTHIA numbers in papers: DAFormer and others evaluate SYNTHIA->Cityscapes in 19 classes and report
mIoU16 = mIoU19 * 19 / 16, which holds when the 3 absent classes score IoU 0 in the 19-class mean. That
19-class route also counts GT terrain/truck/train pixels as false positives of whatever was predicted
there, while ``synthia16`` here ignores them (the AdaptSegNet/CBST route), so the two can differ slightly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from syn2real.config import EVAL_PROTOCOLS
from syn2real.errors import ConfigError
from syn2real.labels import (
    CITYSCAPES19,
    CITYSCAPES19_TO_CAMVID11,
    SYNTHIA13_TRAIN_IDS,
    SYNTHIA16_TRAIN_IDS,
    LabelSpace,
    get_space,
    make_lut,
    subspace_lut,
)

#: Spaces whose classes are a subset of Cityscapes-19: class position -> Cityscapes train id.
_TO_CITYSCAPES19 = {
    "cityscapes19": make_lut({i: i for i in range(CITYSCAPES19.num_classes)}),
    "synthia16": make_lut(dict(enumerate(SYNTHIA16_TRAIN_IDS))),
    "synthia13": make_lut(dict(enumerate(SYNTHIA13_TRAIN_IDS))),
}

#: Cityscapes train id -> protocol class, for every protocol.
_FROM_CITYSCAPES19 = {
    "cityscapes19": make_lut({i: i for i in range(CITYSCAPES19.num_classes)}),
    "synthia16": subspace_lut(SYNTHIA16_TRAIN_IDS),
    "synthia13": subspace_lut(SYNTHIA13_TRAIN_IDS),
    "camvid11": make_lut(CITYSCAPES19_TO_CAMVID11),
}

PROTOCOLS = EVAL_PROTOCOLS


@dataclass(frozen=True)
class Protocol:
    name: str
    space: LabelSpace

    def pred_lut(self, model_space_name: str) -> np.ndarray:
        """LUT from a model's output classes to protocol classes (unscored classes -> 255)."""
        return self._lut(model_space_name, "model")

    def gt_lut(self, dataset_space_name: str) -> np.ndarray:
        """LUT from a dataset's mask ids to protocol classes; every protocol class must be reachable."""
        lut = self._lut(dataset_space_name, "dataset")
        missing = sorted(set(range(self.space.num_classes)) - set(lut.tolist()))
        if missing:
            names = ", ".join(self.space.classes[i] for i in missing)
            raise ConfigError(f"protocol {self.name!r} cannot score a dataset labelled in {dataset_space_name!r}: "
                              f"its masks have no {names}")
        return lut

    def _lut(self, space_name: str, role: str) -> np.ndarray:
        get_space(space_name)  # unknown names fail with the list of known spaces
        if space_name == self.name:
            return make_lut({i: i for i in range(self.space.num_classes)})
        if space_name not in _TO_CITYSCAPES19:
            raise ConfigError(f"protocol {self.name!r} cannot score a {role} in label space {space_name!r}: "
                              f"its classes do not map into {self.name} (use protocol {space_name!r})")
        # Both LUTs send unlisted ids to 255 and entry 255 of a make_lut table is 255, so ignore stays ignore.
        return _FROM_CITYSCAPES19[self.name][_TO_CITYSCAPES19[space_name]]


def get_protocol(name: str) -> Protocol:
    if name not in _FROM_CITYSCAPES19:
        raise ConfigError(f"unknown evaluation protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return Protocol(name, get_space(name))

