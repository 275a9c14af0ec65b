"""Any labelled image folder: `images/*.{png,jpg,jpeg}` with `masks/{stem}.png` index masks and a YAML id map
(`DatasetConfig.id_map`, default `root/id_map.yaml`):

    space: cityscapes19        # optional, the default
    ids: {0: 255, 1: 0, 2: 13} # raw mask id -> id in the space, or 255 to ignore

Split selection works as for GTA5 (`root/{split}.txt` or the whole folder).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from syn2real.config import DatasetConfig
from syn2real.data.base import DATASETS, SegDataset
from syn2real.errors import ConfigError
from syn2real.labels import IGNORE, LabelSpace, get_space

IMAGE_EXTS = (".png", ".jpg", ".jpeg")


def read_id_map(path: Path) -> tuple[dict[int, int], LabelSpace]:
    """Parse and check an id-map YAML file: (raw id -> space id or IGNORE, space)."""
    if not path.is_file():
        raise ConfigError(f"id map not found: {path} (set the dataset's id_map or write root/id_map.yaml)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("ids"), dict) or not data["ids"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty 'ids' mapping (raw id: train id)")
    unknown_keys = set(data) - {"ids", "space"}
    if unknown_keys:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown_keys)}; allowed: ids, space")
    space_name = data.get("space", "cityscapes19")
    if not isinstance(space_name, str):
        raise ConfigError(f"{path}: space must be a name, got {space_name!r}")
    space = get_space(space_name)
    ids = {}
    for raw, target in data["ids"].items():
        if type(raw) is not int or not 0 <= raw <= 0xFFFF:
            raise ConfigError(f"{path}: raw ids must be integers in 0..65535, got {raw!r}")
        if type(target) is not int or not (0 <= target < space.num_classes or target == IGNORE):
            raise ConfigError(f"{path}: id {raw} maps to {target!r}, which is neither a {space.name} class "
                              f"(0..{space.num_classes - 1}) nor {IGNORE} (ignore)")
        ids[raw] = target
    return ids, space


@DATASETS.register("folder")
class FolderDataset(SegDataset):
    kind = "folder"
    layout = "root/images/*.{png,jpg} + root/masks/{stem}.png + an id map YAML [+ root/{split}.txt]"
    # 255 is "unlabelled" in masks of any space (our exports write it), so it needs no line of its own in the map.
    void_ids = frozenset({IGNORE})

    def __init__(self, cfg: DatasetConfig, transform: Callable | None = None, labels: bool = True):
        root = Path(cfg.root).expanduser()
        if labels and root.is_dir():
            self.id_map, self.space = read_id_map(Path(cfg.id_map) if cfg.id_map else root / "id_map.yaml")
            self.lut_size = 256 if max(self.id_map) < 256 else 1 << 16
        super().__init__(cfg, transform, labels)

    def _scan(self):
        self._stems = self._split_stems()
        return self._same_stem_pairs(self.root / "images", self.root / "masks", IMAGE_EXTS, self._stems)

    def _scan_labels(self):
        return None if self._stems is not None else sorted((self.root / "masks").glob("*.png"))
