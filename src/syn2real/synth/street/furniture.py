"""The furniture layer: street lights, street trees, sign posts, bare poles and bollards along the pavements,
signals and signs at the junctions, and beacons at the crossings."""

from __future__ import annotations

import math

import numpy as np

from syn2real.synth import objects as obj
from syn2real.synth.scene import uniform
from syn2real.synth.street.context import Street
from syn2real.synth.street.plan import KERB_HEIGHT
from syn2real.synth.street.vegetation import plant_tree


def add_furniture(street: Street) -> None:
    rng, plan, view, k = street.rng, street.plan, street.view, street.knobs
    road, camera = plan.road, view.camera
    toward_camera = math.pi  # signs face back along the road, to oncoming drivers
    for sg, side in plan.sides.items():
        gaps = plan.clearances(sg)

        def free(s, gaps=gaps):
            return not any(a - 1 < s < b + 1 for a, b in gaps)

        if side.lights:
            spacing = float(uniform(rng, 22, 38))
            for s in np.arange(float(uniform(rng, -5, spacing)), k.max_distance, spacing):
                base = plan.on_pavement(side, s, 0.45)
                if free(s) and view.sees(base + [0, 4, 0], 5.0):
                    inward = road.xz(s, 0.0) - road.xz(s, float(sg))
                    street.objects.append(obj.street_light(camera, base, np.array([inward[0], 0, inward[1]]), rng))
        if side.trees:
            spacing = float(uniform(rng, 7, 15)) / max(k.density, 0.1)
            offset = side.verge / 2 if side.verge > 0 else 0.9
            for s in np.arange(float(uniform(rng, -5, spacing)), k.max_distance, spacing):
                if free(s) and rng.random() < 0.85:
                    plant_tree(street, float(s), sg * (side.kerb + offset), KERB_HEIGHT)
        for _ in range(rng.poisson(2.6 * k.density)):  # sign posts
            s = float(uniform(rng, 4, 80))
            base = plan.on_pavement(side, s, 0.35)
            if free(s) and view.sees(base + [0, 2, 0], 2.5):
                facing = float(road.heading_at(s)) + toward_camera + float(rng.normal(0, 0.2))
                street.objects += obj.traffic_sign(camera, base, facing, rng, plates=int(rng.integers(1, 3)))
        for _ in range(rng.poisson(0.8 * k.density)):  # bare poles, bollards
            s = float(uniform(rng, 3, 90))
            if free(s) and view.sees(plan.on_pavement(side, s, 0.3) + [0, 2, 0], 2.5):
                tall = rng.random() < 0.6
                street.objects.append(obj.pole(camera, plan.on_pavement(side, s, 0.3),
                                               float(uniform(rng, 2.5, 5.0)) if tall else 0.9,
                                               float(uniform(rng, 0.08, 0.16)) if tall else 0.16))
    for j in plan.junctions:  # signals at the junction, facing the camera's approach and the side road
        heading = float(road.heading_at(j.s))
        for sg in (-1, 1):
            side = plan.sides[sg]
            for z, facing in ((j.mouth[0] - 1.0, heading + math.pi), (j.mouth[1] + 1.0, heading)):
                if rng.random() < 0.75:
                    base = road.world(z, sg * (side.kerb + 0.5), KERB_HEIGHT)
                    arm = None
                    if sg == plan.traffic_side * -1 and rng.random() < 0.3:
                        inward = road.xz(z, 0.0) - road.xz(z, float(sg))
                        arm = inward * float(uniform(rng, 2, 4))
                    street.objects += obj.traffic_light(camera, base, facing, rng, arm)
            if sg in j.signs and rng.random() < 0.6:
                base = road.world(j.mouth[0] - 0.5, sg * (side.kerb + 1.5), KERB_HEIGHT)
                street.objects += obj.traffic_sign(camera, base, heading + math.pi, rng)
    for s0 in street.crossings:  # Belisha beacons and bollards at crossings
        for sg in (-1, 1):
            base = plan.on_pavement(plan.sides[sg], s0 + 1.5, 0.4)
            street.objects.append(obj.pole(camera, base, 2.8, 0.1, (0.1, 0.1, 0.1)))
