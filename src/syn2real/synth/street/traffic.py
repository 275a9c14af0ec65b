"""The traffic layer: cars, trucks and buses in the lanes (now and then a tram), cars parked along the kerbs,
and riders: bicycles near the kerb and a motorcycle in a lane."""

from __future__ import annotations

import math

import numpy as np

from syn2real.labels import C
from syn2real.synth import objects as obj
from syn2real.synth.scene import uniform
from syn2real.synth.street.context import Street
from syn2real.synth.street.draws import Weighted

_KINDS = Weighted(["car", "truck", "bus"], [0.92, 0.04, 0.04])
_LENGTHS = {"car": 4.6, "truck": 10.0, "bus": 12.0, "tram": 30.0}  # metres kept per vehicle in its lane
_FOOTPRINT = {"car": (4.4, 1.9), "truck": (9.5, 2.5), "bus": (12.0, 2.6), "tram": (26.0, 2.6)}  # contact shadow
_REACH = {"car": 3.0, "truck": 7.0, "bus": 7.0, "tram": 17.0}  # radius of the sphere the camera must see


def add_traffic(street: Street) -> None:
    rng, plan, view, k = street.rng, street.plan, street.view, street.knobs
    occupied: dict[float, list[tuple[float, float]]] = {}

    def place(d: float, s: float, length: float) -> bool:
        spans = occupied.setdefault(round(d, 1), [])
        if any(a - 1.0 < s + length / 2 and s - length / 2 < b + 1.0 for a, b in spans):
            return False
        spans.append((s - length / 2, s + length / 2))
        return True

    if rng.random() < 0.1 * k.vehicles:
        lane = int(rng.integers(plan.lanes // 2))
        forward = rng.random() < 0.5
        s = float(uniform(rng, 18, 70))
        d = plan.lane_centre(lane, forward)
        if place(d, s, _LENGTHS["tram"]):
            _vehicle(street, "tram", s, d, forward)
    for forward in (True, False):
        for lane in range(plan.lanes // 2):
            d = plan.lane_centre(lane, forward)
            own = forward and lane == view.lane
            s = float(uniform(rng, 10, 40)) if own else float(uniform(rng, 0, 30))
            while s < k.max_distance:
                if rng.random() < 0.4 * min(k.vehicles, 2.0):
                    kind = _KINDS.pick(rng)
                    if not (own and abs(s) < 6) and place(d, s, _LENGTHS[kind]):
                        _vehicle(street, kind, s, d + float(rng.normal(0, 0.15)), forward)
                s += float(uniform(rng, 12, 45)) / max(k.vehicles, 0.1)
    for sg, side in plan.sides.items():  # parked along the kerb
        if not side.parking:
            continue
        d = sg * (side.kerb - 1.1)
        gaps = plan.clearances(sg) + [(z - 3, z + 6) for z in street.crossings]
        s = float(uniform(rng, -8, 2))
        fill = uniform(rng, 0.15, 0.7)
        while s < min(k.max_distance, 130):
            kind = "car" if rng.random() < 0.96 else "truck"
            length = _LENGTHS[kind]
            if rng.random() < fill * min(k.vehicles, 1.5) and not any(a - 3 < s < b + 3 for a, b in gaps) \
                    and place(d, s, length):
                _vehicle(street, kind, s, d + float(rng.normal(0, 0.1)), forward=(sg == plan.traffic_side)
                         or rng.random() < 0.3)
            s += length + float(uniform(rng, 0.6, 3.0))
    # Riders: bicycles near the kerb in the traffic's direction, a motorcycle in a lane.
    near_side = plan.sides[plan.traffic_side]
    kerb_d = plan.traffic_side * (near_side.kerb - (2.4 if near_side.parking else 0.8))
    for _ in range(rng.poisson(0.9 * k.people * k.cyclists)):
        s = float(uniform(rng, 6, 60))
        forward = rng.random() < 0.8
        d = kerb_d if forward else -kerb_d
        if place(round(d, 1), s, 1.8):
            heading = float(plan.road.heading_at(s)) + (0.0 if forward else math.pi)
            street.objects += obj.rider(view.camera, plan.road.world(s, d), heading, rng)
    if rng.random() < 0.35 * k.vehicles:
        forward = rng.random() < 0.6
        d = plan.lane_centre(int(rng.integers(plan.lanes // 2)), forward) + float(rng.normal(0, 0.4))
        s = float(uniform(rng, 6, 50))
        if place(round(d, 1), s, 2.2):
            heading = float(plan.road.heading_at(s)) + (0.0 if forward else math.pi)
            street.objects += obj.rider(view.camera, plan.road.world(s, d), heading, rng, motor=True)


def footprint(centre: tuple[float, float], heading: float, length: float, width: float) -> np.ndarray:
    """(4, 3) world corners of a rectangle on the road, `length` along `heading`."""
    fx, fz = math.sin(heading), math.cos(heading)
    corners = [(-length / 2, -width / 2), (-length / 2, width / 2), (length / 2, width / 2), (length / 2, -width / 2)]
    return np.array([[centre[0] + a * fx + b * fz, 0.0, centre[1] + a * fz - b * fx] for a, b in corners])


def _vehicle(street: Street, kind: str, s: float, d: float, forward: bool) -> None:
    rng, road, view = street.rng, street.plan.road, street.view
    heading = float(road.heading_at(s)) + (0.0 if forward else math.pi) + float(rng.normal(0, 0.02))
    centre = road.point(s, d)
    if not view.sees((centre[0], 1.5, centre[1]), _REACH[kind]):
        return
    if street.knobs.contact_shadow[1] > 0:  # (no draws: the footprint of the nominal size)
        street.contacts.append(footprint(centre, heading, *_FOOTPRINT[kind]))
    if kind == "car":
        facets = obj.car(centre, heading, rng, eye=view.eye)
    elif kind == "truck":
        facets = obj.truck(centre, heading, rng, eye=view.eye)
    elif kind == "bus":
        facets = obj.bus(centre, heading, rng, eye=view.eye)
    else:  # a tram: a long bus, labelled as a train
        facets = obj.bus(centre, heading, rng, label=C["train"], length=float(uniform(rng, 18, 30)), eye=view.eye)
    street.objects += [f for f in facets if view.faces(f)]
