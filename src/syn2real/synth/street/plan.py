"""The street's plan, drawn first: road shape, lanes, both sides' cross-sections, junctions and the district.

The camera and every layer build on it; it adds no facets itself. A knob of the street's structure (widths,
lanes, junctions, building heights) lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from syn2real.synth.scene import Colour, uniform
from syn2real.synth.street.draws import Weighted, draw_range
from syn2real.synth.street.knobs import Knobs
from syn2real.synth.street.palette import FACADES, Palette
from syn2real.synth.street.road import Road

KERB_HEIGHT = 0.12

_BOUNDARIES = Weighted(["none", "railing", "panel", "wall", "hedge"], [0.2, 0.3, 0.15, 0.15, 0.2])


@dataclass
class Side:
    sign: int  # -1 left of the centreline, +1 right
    kerb: float  # |d| of the kerb
    verge: float  # grass strip between kerb and pavement
    pavement: float
    setback: float  # front gardens or forecourts before the building line
    front: str  # grass | paving
    boundary: str  # none | railing | panel | wall | hedge
    parking: bool
    trees: bool
    lights: bool

    @property
    def pavement_out(self) -> float:
        return self.kerb + self.verge + self.pavement

    @property
    def building_line(self) -> float:
        return self.pavement_out + self.setback


@dataclass
class Junction:
    s: float
    width: float  # carriageway of the side road
    pavement: float
    signs: tuple[int, ...]  # which sides it leaves to (-1, +1)

    @property
    def mouth(self) -> tuple[float, float]:
        """s range of the side road's carriageway."""
        return self.s - self.width / 2, self.s + self.width / 2

    @property
    def clear(self) -> tuple[float, float]:
        """s range kept free of main-street lots: carriageway and its pavements."""
        return self.s - self.width / 2 - self.pavement, self.s + self.width / 2 + self.pavement


@dataclass
class StreetPlan:
    """Where everything goes, in road coordinates; read, never changed, by the camera and the layers."""

    road: Road
    lanes: int  # both directions together
    lane_width: float
    traffic_side: int  # the side of the centreline traffic keeps to: -1 left, +1 right
    sides: dict[int, Side]  # by sign, left first (the layers walk them in this order)
    junctions: list[Junction]
    district_height: float  # typical building height
    facades: list[Colour]  # the district's shared facade colours

    def mouths(self, sign: int) -> list[tuple[float, float]]:
        """s ranges of the side roads leaving to one side."""
        return [j.mouth for j in self.junctions if sign in j.signs]

    def clearances(self, sign: int) -> list[tuple[float, float]]:
        """s ranges kept clear for the side roads leaving to one side (see `Junction.clear`)."""
        return [j.clear for j in self.junctions if sign in j.signs]

    def lane_centre(self, lane: int, forward: bool) -> float:
        """Lateral centre of a lane counted from the centreline on the forward or oncoming side."""
        sg = self.traffic_side if forward else -self.traffic_side
        return sg * self.lane_width * (lane + 0.5)

    def on_pavement(self, side: Side, s: float, offset: float) -> np.ndarray:
        """World point at `offset` metres beyond the kerb, on top of the pavement."""
        return self.road.world(s, side.sign * (side.kerb + offset), KERB_HEIGHT)


def plan_street(rng: np.random.Generator, knobs: Knobs, palette: Palette) -> StreetPlan:
    bend = rng.random() < knobs.curve_prob
    bend_start = float(uniform(rng, 20, 90)) if bend else 1e9
    curvature = float(rng.choice([-1, 1]) * uniform(rng, 1 / 220, 1 / 45)) if bend else 0.0
    lanes = int(rng.choice(knobs.lanes))
    lane_width = draw_range(rng, knobs.lane_width)
    traffic_side = -1 if rng.random() < knobs.left_hand_traffic_prob else 1
    sides = {sign: _side(rng, knobs, sign, lanes * lane_width / 2) for sign in (-1, 1)}
    junctions = _junctions(rng, knobs, bend_start)
    # The district's look, drawn here (before the camera) to keep the seed's order of draws.
    district_height = draw_range(rng, knobs.district_height)
    facades = [palette.pick(FACADES, 0.12) for _ in range(3)]
    return StreetPlan(Road(bend_start, curvature), lanes, lane_width, traffic_side, sides, junctions,
                      district_height, facades)


def _side(rng: np.random.Generator, knobs: Knobs, sign: int, lane_edge: float) -> Side:
    """One side of the street; `lane_edge` is |d| of its outer lane line."""
    parking = rng.random() < knobs.parking_prob
    carriage = lane_edge + (uniform(rng, 1.9, 2.4) if parking else 0.0)
    setback = 0.0 if rng.random() < 1.0 - knobs.setback_prob else draw_range(rng, knobs.setback)
    verge = float(uniform(rng, 1.0, 3.0)) if rng.random() < knobs.verge_prob else 0.0
    boundaries = _BOUNDARIES if knobs.hedge_weight == 0.2 else Weighted(
        ["none", "railing", "panel", "wall", "hedge"], [0.2, 0.3, 0.15, 0.15, knobs.hedge_weight])
    return Side(sign=sign, kerb=carriage, verge=verge,
                pavement=draw_range(rng, knobs.pavement_width), setback=setback,
                front="grass" if rng.random() < 0.5 else "paving",
                boundary=boundaries.pick(rng) if setback > 0 else ("railing" if rng.random() < 0.3 * knobs.density
                                                                    else "none"),
                parking=parking, trees=rng.random() < knobs.street_trees_prob * knobs.density,
                lights=rng.random() < 0.7)


def _junctions(rng: np.random.Generator, knobs: Knobs, bend_start: float) -> list[Junction]:
    out: list[Junction] = []
    if rng.random() >= knobs.junction_prob:
        return out
    last = min(bend_start - 15, 140.0)
    s = float(uniform(rng, 12, 45))
    while s < last and len(out) < 2:
        r = rng.random()
        signs = (-1,) if r < 0.35 else (1,) if r < 0.7 else (-1, 1)
        out.append(Junction(s, float(uniform(rng, 6.0, 10.0)), float(uniform(rng, 1.8, 3.5)), signs))
        s += float(uniform(rng, 40, 90))
    return out
