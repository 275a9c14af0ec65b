"""`Knobs`: what varies between SynStreets frames, each read by the module whose part of the scene it shapes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from syn2real.errors import ConfigError


@dataclass
class Knobs:
    """What varies between frames, as (low, high) ranges sampled uniformly per frame, or plain factors.

    The camera's are read by `viewpoint`, the sky's by `light`, the road's shape by `plan` and the colour jitter
    by `palette`; `density`, `vehicles`, `people` and `max_distance` scale what the plan and the layers place.
    """

    camera_height: tuple[float, float] = (1.15, 1.7)
    pitch_deg: tuple[float, float] = (-3.0, 2.5)
    roll_deg: tuple[float, float] = (-1.5, 1.5)
    yaw_deg: tuple[float, float] = (-5.0, 5.0)
    fov_deg: tuple[float, float] = (52.0, 68.0)  # horizontal
    density: float = 1.0  # street furniture and trees
    vehicles: float = 1.0
    people: float = 1.0
    curve_prob: float = 0.4
    junction_prob: float = 0.6
    overcast_prob: float = 0.45
    sun_elevation_deg: tuple[float, float] = (8.0, 60.0)
    haze: tuple[float, float] = (0.0, 1.0)  # 0: clear air, 1: thick haze
    left_hand_traffic_prob: float = 0.7
    colour_jitter: float = 1.0  # domain randomisation of surface colours; 0 keeps the base palette
    max_distance: float = 160.0  # metres of detailed street; plain blocks continue beyond

    @classmethod
    def from_dict(cls, values: dict) -> Knobs:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown SynStreets knob(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        knobs = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        for f in dataclasses.fields(knobs):
            value = getattr(knobs, f.name)
            if isinstance(value, tuple) and (len(value) != 2 or value[0] > value[1]):
                raise ConfigError(f"SynStreets knob {f.name} must be a (low, high) pair with low <= high, got {value}")
        return knobs

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
