"""The people layer: pedestrians on the pavements (alone or in small groups), people on the crossings, and
bicycles and motorcycles parked on the pavement. Riders in the traffic belong to the traffic layer."""

from __future__ import annotations

import math

import numpy as np

from syn2real.synth import objects as obj
from syn2real.synth.scene import ellipse_uv, uniform
from syn2real.synth.street.context import Street
from syn2real.synth.street.draws import clip


def add_people(street: Street) -> None:
    rng, plan, view, k = street.rng, street.plan, street.view, street.knobs
    road, camera = plan.road, view.camera
    for _ in range(rng.poisson(5.0 * k.people)):
        side = plan.sides[int(rng.choice([-1, 1]))]
        s = float(10 + rng.exponential(25))
        offset = float(uniform(rng, side.verge + 0.5, side.verge + side.pavement - 0.3))
        heading = float(road.heading_at(s)) + (0.0 if rng.random() < 0.5 else math.pi) + float(rng.normal(0, 0.3))
        for _ in range(1 if rng.random() < 0.7 else int(rng.integers(2, 4))):
            base = plan.on_pavement(side, s, offset)
            if view.sees(base + [0, 1, 0], 1.2):
                street.objects.append(obj.person(camera, base, heading, rng))
                _contact(street, base)
            s += float(uniform(rng, 0.6, 1.2))
            offset = clip(offset + rng.normal(0, 0.4), side.verge + 0.3, side.verge + side.pavement - 0.2)
    for s0 in street.crossings:
        for _ in range(rng.poisson(1.2 * k.people)):
            d = float(uniform(rng, -plan.sides[-1].kerb, plan.sides[1].kerb))
            heading = float(road.heading_at(s0)) + rng.choice([-1, 1]) * math.pi / 2
            base = road.world(s0 + uniform(rng, 0.5, 2.5), d)
            street.objects.append(obj.person(camera, base, heading, rng))
            _contact(street, base)
    for _ in range(rng.poisson(0.4 * k.people)):  # parked bicycles and motorcycles on the pavement
        side = plan.sides[int(rng.choice([-1, 1]))]
        s = float(uniform(rng, 5, 60))
        base = plan.on_pavement(side, s, side.verge + side.pavement - 0.5)
        heading = float(road.heading_at(s)) + math.pi / 2
        street.objects += obj.rider(camera, base, heading, rng, motor=rng.random() < 0.3, with_rider=False)


def _contact(street: Street, base) -> None:
    """A person's contact shadow: a small disc under the feet (no draws; only with contact shadows on)."""
    if street.knobs.contact_shadow[1] > 0:
        disc = ellipse_uv(float(base[0]), float(base[2]), 0.3, 0.3, 8)
        street.contacts.append(np.column_stack([disc[:, 0], np.full(8, float(base[1])), disc[:, 1]]))
