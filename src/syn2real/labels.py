"""Label spaces, palettes and id maps.

One canonical space per run: the 19 Cityscapes train classes, 255 = ignore. Readers map a dataset's raw ids
into it once, through a 256-entry lookup table (LUT); scoring maps the 19 classes many-to-one into a
dataset's own protocol (SYNTHIA-16/13, CamVid-11).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cityscapesscripts.helpers.labels import labels as _cityscapes_labels

IGNORE = 255


@dataclass(frozen=True)
class LabelSpace:
    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def palette_array(self) -> np.ndarray:
        """(256, 3) uint8 colours; ignore and unused ids are black."""
        colours = np.zeros((256, 3), np.uint8)
        colours[: self.num_classes] = np.asarray(self.palette, np.uint8)
        return colours

    def colorize(self, mask: np.ndarray) -> np.ndarray:
        """Index mask (H, W) -> RGB (H, W, 3) uint8."""
        return self.palette_array()[mask]


def _cityscapes_train_labels():
    train = [lb for lb in _cityscapes_labels if 0 <= lb.trainId < IGNORE]
    return sorted(train, key=lambda lb: lb.trainId)


CITYSCAPES19 = LabelSpace(
    name="cityscapes19",
    classes=tuple(lb.name for lb in _cityscapes_train_labels()),
    palette=tuple(tuple(lb.color) for lb in _cityscapes_train_labels()),
)
assert CITYSCAPES19.num_classes == 19

# Cityscapes train ids by name, for readable maps below.
C = {name: i for i, name in enumerate(CITYSCAPES19.classes)}
THING_CLASSES = tuple(C[n] for n in ("traffic light", "traffic sign", "person", "rider", "car", "truck",
                                     "bus", "train", "motorcycle", "bicycle"))

CAMVID11 = LabelSpace(
    name="camvid11",
    classes=("sky", "building", "pole", "road", "pavement", "tree", "signsymbol", "fence", "car",
             "pedestrian", "bicyclist"),
    palette=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
             (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)),
)

# SYNTHIA-RAND-CITYSCAPES has no terrain, truck or train; the 13-class protocol also drops wall, fence, pole.
SYNTHIA16_TRAIN_IDS = tuple(i for i in range(19) if CITYSCAPES19.classes[i] not in ("terrain", "truck", "train"))
SYNTHIA13_TRAIN_IDS = tuple(i for i in SYNTHIA16_TRAIN_IDS if CITYSCAPES19.classes[i] not in ("wall", "fence", "pole"))


def _subspace(name: str, train_ids: tuple[int, ...]) -> LabelSpace:
    return LabelSpace(name, tuple(CITYSCAPES19.classes[i] for i in train_ids),
                      tuple(CITYSCAPES19.palette[i] for i in train_ids))


SYNTHIA16 = _subspace("synthia16", SYNTHIA16_TRAIN_IDS)
SYNTHIA13 = _subspace("synthia13", SYNTHIA13_TRAIN_IDS)

# --- raw dataset ids -> Cityscapes train ids (everything not listed becomes ignore) ----------------------

#: Cityscapes label ids -> train ids, read from cityscapesscripts' table (GTA5 and KITTI use the same ids).
CITYSCAPES_ID_TO_TRAIN = {lb.id: lb.trainId for lb in _cityscapes_labels if lb.id >= 0 and 0 <= lb.trainId < IGNORE}

#: SYNTHIA-RAND-CITYSCAPES GT/LABELS class ids (channel 2 of the 16-bit PNG) -> train ids.
SYNTHIA_ID_TO_TRAIN = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 10, 10: 11, 17: 12, 8: 13,
                       19: 15, 12: 17, 11: 18}

#: CarlaScapes: 1..19 are the train ids shifted by one; 0 and 20..28 (static, water, road line, ...) ignore.
CARLA_ID_TO_TRAIN = {i + 1: i for i in range(19)}

#: CamVid (SegNet layout) ids are already the 11 protocol classes; 11 = unlabelled.
CAMVID_ID_TO_CAMVID11 = {i: i for i in range(11)}

#: Scoring a 19-class model on CamVid: many-to-one map of train ids into CamVid-11 (shared/data/README).
CITYSCAPES19_TO_CAMVID11 = {
    C["sky"]: 0, C["building"]: 1, C["wall"]: 1, C["pole"]: 2, C["road"]: 3, C["sidewalk"]: 4,
    C["vegetation"]: 5, C["terrain"]: 5, C["traffic sign"]: 6, C["traffic light"]: 6, C["fence"]: 7,
    C["car"]: 8, C["truck"]: 8, C["bus"]: 8, C["train"]: 8, C["person"]: 9,
    C["rider"]: 10, C["motorcycle"]: 10, C["bicycle"]: 10,
}

#: CamVid-11 -> train ids, for training a 19-class model on CamVid labels (one representative class each).
CAMVID11_TO_CITYSCAPES19 = {0: C["sky"], 1: C["building"], 2: C["pole"], 3: C["road"], 4: C["sidewalk"],
                            5: C["vegetation"], 6: C["traffic sign"], 7: C["fence"], 8: C["car"],
                            9: C["person"], 10: C["rider"]}


def make_lut(mapping: dict[int, int], size: int = 256) -> np.ndarray:
    """A lookup table sending each listed id to its target and every other id to IGNORE."""
    lut = np.full(size, IGNORE, np.uint8)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut


def subspace_lut(train_ids: tuple[int, ...]) -> np.ndarray:
    """Cityscapes train ids -> positions in a subset protocol (SYNTHIA-16/13); the rest is ignored."""
    return make_lut({tid: i for i, tid in enumerate(train_ids)})


#: The spaces a dataset or a model can be in, by name (configs and the CLI use these names).
SPACES = {s.name: s for s in (CITYSCAPES19, CAMVID11, SYNTHIA16, SYNTHIA13)}


def get_space(name: str) -> LabelSpace:
    from syn2real.errors import ConfigError

    if name not in SPACES:
        raise ConfigError(f"unknown label space {name!r}; known: {', '.join(SPACES)}")
    return SPACES[name]
