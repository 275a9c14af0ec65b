"""`Knobs`: what varies between SynStreets frames, each read by the module whose part of the scene it shapes.

Every knob is one of four kinds, each checked on the way in (`check_value`):
- range: a (low, high) pair drawn uniformly per frame (a single number pins it: low = high);
- prob: a probability in [0, 1];
- factor: a non-negative scale;
- choices: a list of values, one picked per frame (repeat a value to make it likelier).

Knobs marked `new` (in their metadata) switch on parts added for structured domain randomisation. At their
defaults they draw nothing from the frame's generator, so `Knobs()` draws exactly the scenes the renderer drew
before them (the `synthetic` and `photo` points of `synth/randomize.py`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from syn2real.errors import ConfigError


def _knob(default, kind: str, group: str, low: float | None = None, high: float | None = None, new: bool = False):
    """A knob field: its kind, the YAML group it is written under, the realistic bounds its values keep to."""
    meta = {"kind": kind, "group": group, "low": low, "high": high, "new": new}
    if isinstance(default, (list, tuple)) and kind == "choices":
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Knobs:
    """What varies between frames (see the module docstring for the kinds; docs/SYNSTREETS.md for each knob).

    The camera's are read by `viewpoint`, the sky's by `light`, the road's shape by `plan` and the colour jitter
    by `palette`; `density`, `vehicles`, `people` and `max_distance` scale what the plan and the layers place.
    """

    # camera
    camera_height: tuple[float, float] = _knob((1.15, 1.7), "range", "camera", 0.5, 4.0)
    pitch_deg: tuple[float, float] = _knob((-3.0, 2.5), "range", "camera", -20.0, 20.0)
    roll_deg: tuple[float, float] = _knob((-1.5, 1.5), "range", "camera", -15.0, 15.0)
    yaw_deg: tuple[float, float] = _knob((-5.0, 5.0), "range", "camera", -30.0, 30.0)
    fov_deg: tuple[float, float] = _knob((52.0, 68.0), "range", "camera", 20.0, 120.0)  # horizontal
    lens_distortion: tuple[float, float] = _knob((0.0, 0.0), "range", "camera", 0.0, 0.4, new=True)  # barrel k1
    bonnet_prob: float = _knob(0.0, "prob", "camera", new=True)  # the ego car's bonnet in view (label 255)
    bonnet_reach: tuple[float, float] = _knob((0.1, 0.25), "range", "camera", 0.0, 0.5, new=True)  # of the frame
    # structure
    density: float = _knob(1.0, "factor", "structure", 0.0, 5.0)  # street furniture and trees
    vehicles: float = _knob(1.0, "factor", "structure", 0.0, 5.0)
    people: float = _knob(1.0, "factor", "structure", 0.0, 5.0)
    cyclists: float = _knob(1.0, "factor", "structure", 0.0, 5.0)  # riders in the road, times `people`
    parking_prob: float = _knob(0.55, "prob", "structure")
    curve_prob: float = _knob(0.4, "prob", "structure")
    junction_prob: float = _knob(0.6, "prob", "structure")
    left_hand_traffic_prob: float = _knob(0.7, "prob", "structure")
    lanes: tuple[int, ...] = _knob((2, 2, 2, 3, 4), "choices", "structure", 2, 8)  # both directions
    lane_width: tuple[float, float] = _knob((2.9, 3.6), "range", "structure", 2.2, 4.5)
    pavement_width: tuple[float, float] = _knob((2.0, 5.0), "range", "structure", 0.8, 10.0)
    setback_prob: float = _knob(0.5, "prob", "structure")  # front gardens: else the buildings meet the pavement
    setback: tuple[float, float] = _knob((1.0, 7.0), "range", "structure", 0.3, 20.0)
    district_height: tuple[float, float] = _knob((5.0, 15.0), "range", "structure", 3.0, 40.0)
    max_distance: float = _knob(160.0, "factor", "structure", 40.0, 400.0)  # metres of detailed street
    # a railing labelled over its whole extent, the background seen between its bars included
    railing_extent_prob: float = _knob(0.0, "prob", "structure", new=True)
    # light
    overcast_prob: float = _knob(0.45, "prob", "light")
    sun_elevation_deg: tuple[float, float] = _knob((8.0, 60.0), "range", "light", 1.0, 90.0)
    sun_strength: tuple[float, float] = _knob((0.45, 0.7), "range", "light", 0.0, 1.5)
    haze: tuple[float, float] = _knob((0.0, 1.0), "range", "light", 0.0, 1.0)  # 0: clear air, 1: thick haze
    wet_prob: float = _knob(0.0, "prob", "light", new=True)  # a wet road: darker, with a sheen of the sky
    contact_shadow: tuple[float, float] = _knob((0.0, 0.0), "range", "light", 0.0, 0.9, new=True)
    specular: tuple[float, float] = _knob((0.0, 0.0), "range", "light", 0.0, 1.0, new=True)  # vehicles' gloss
    # surfaces
    colour_jitter: float = _knob(1.0, "factor", "surfaces", 0.0, 4.0)  # 0 keeps the base palette
    render_prob: float = _knob(0.0, "prob", "surfaces", new=True)  # facades in smooth render, not brick/concrete
    window_frames_prob: float = _knob(0.0, "prob", "surfaces", new=True)  # facades with framed windows
    signage_prob: float = _knob(0.0, "prob", "surfaces", new=True)  # shop fascias with lettering
    road_patches: float = _knob(0.0, "factor", "surfaces", 0.0, 20.0, new=True)  # repair patches per frame (mean)
    marking_wear: tuple[float, float] = _knob((0.0, 0.0), "range", "surfaces", 0.0, 1.0, new=True)
    # vegetation
    bare_tree_prob: float = _knob(0.3, "prob", "vegetation")
    leafy_branches_prob: float = _knob(0.0, "prob", "vegetation", new=True)  # branches seen through a crown
    bare_crown_prob: float = _knob(0.0, "prob", "vegetation", new=True)  # a bare tree's crown of fine twigs
    tree_height: tuple[float, float] = _knob((5.0, 14.0), "range", "vegetation", 2.0, 30.0)
    street_trees_prob: float = _knob(0.6, "prob", "vegetation")  # a side lined with trees, times `density`
    verge_prob: float = _knob(0.2, "prob", "vegetation")  # a grass verge between kerb and pavement
    hedge_weight: float = _knob(0.2, "factor", "vegetation", 0.0, 10.0)  # hedges among lot boundaries

    @classmethod
    def from_dict(cls, values: dict, where: str = "SynStreets knob") -> Knobs:
        """Knobs from {name: value}; `where` prefixes errors (e.g. "randomize.yaml: scene")."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown SynStreets knob(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
        return cls(**{name: check_value(fields[name], value, f"{where} {name}") for name, value in values.items()})

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # (direct construction is checked too)
            setattr(self, f.name, check_value(f, getattr(self, f.name), f"SynStreets knob {f.name}"))


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return value


def check_value(f: dataclasses.Field, value, name: str):
    """A knob's value in its canonical form (ranges as tuples), or a one-line ConfigError naming it."""
    meta = f.metadata
    kind, low, high = meta.get("kind", "factor"), meta.get("low"), meta.get("high")
    if kind == "prob":
        low, high = 0.0, 1.0
    bounds = f" (realistic bounds [{low}, {high}])" if low is not None else ""

    def inside(v) -> None:
        if (low is not None and v < low) or (high is not None and v > high):
            raise ConfigError(f"{name} = {v} is outside [{low}, {high}]")

    if kind == "range":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (value, value)  # a point
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ConfigError(f"{name} must be a number or a [low, high] pair{bounds}, got {value!r}")
        lo, hi = (float(_number(v, name)) for v in value)
        if lo > hi:
            raise ConfigError(f"{name} must be a [low, high] pair with low <= high, got {list(value)}")
        inside(lo), inside(hi)
        return (lo, hi)
    if kind == "choices":
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"{name} must be a non-empty list of values{bounds}, got {value!r}")
        out = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"{name} must list whole numbers, got {v!r}")
            inside(v)
            out.append(v)
        return tuple(out)
    if isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a single number{bounds}, got {list(value)}")
    value = _number(value, name)
    inside(value)
    return float(value) if kind in ("prob", "factor") else value
