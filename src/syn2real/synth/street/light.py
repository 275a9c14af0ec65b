"""The light and the air: overcast or sunny sky, the sun's height and colour, ambient light, clouds, haze."""

from __future__ import annotations

import math

import numpy as np

from syn2real.synth.scene import Environment, uniform
from syn2real.synth.street.draws import draw_range
from syn2real.synth.street.knobs import Knobs


def sample_light(rng: np.random.Generator, knobs: Knobs) -> Environment:
    environment = _sky(rng, knobs)
    # (new knobs draw nothing when off, so the scenes drawn before them stay as they were)
    if knobs.wet_prob > 0 and rng.random() < knobs.wet_prob:
        environment.wet = float(uniform(rng, 0.4, 1.0))
    if knobs.contact_shadow[1] > 0:
        environment.contact_shadow = draw_range(rng, knobs.contact_shadow)
    if knobs.specular[1] > 0:
        environment.specular = draw_range(rng, knobs.specular)
    return environment


def _sky(rng: np.random.Generator, knobs: Knobs) -> Environment:
    haze = draw_range(rng, knobs.haze)
    haze_distance = float(3000 * (150 / 3000) ** haze)
    seed = int(rng.integers(2**31))
    if rng.random() < knobs.overcast_prob:
        grey = float(uniform(rng, 0.72, 0.92))
        tint = rng.uniform(-0.03, 0.03, 3)
        sky = tuple(float(v) for v in np.clip(grey + tint, 0, 1))
        return Environment(sun_direction=np.array([0.3, 0.8, 0.5]), sun_strength=0.0,
                           ambient=tuple(float(v) for v in np.clip(uniform(rng, 0.85, 1.05) + tint, 0, 1.2)),
                           sky_zenith=tuple(float(v) * 0.9 for v in sky), sky_horizon=sky,
                           cloud_cover=float(uniform(rng, 0.6, 1.0)),
                           cloud_colour=tuple(float(v) * uniform(rng, 0.85, 1.05) for v in sky),
                           haze_colour=sky, haze_distance=haze_distance, seed=seed)
    elevation = math.radians(draw_range(rng, knobs.sun_elevation_deg))
    azimuth = float(uniform(rng, 0, 2 * math.pi))
    sun = np.array([math.cos(elevation) * math.sin(azimuth), math.sin(elevation),
                    math.cos(elevation) * math.cos(azimuth)])
    warm = float(np.clip(1 - elevation / math.radians(35), 0, 1))  # low sun is warmer
    sun_colour = (1.0, 0.93 - 0.15 * warm, 0.82 - 0.3 * warm)
    zenith = (float(uniform(rng, 0.2, 0.45)), float(uniform(rng, 0.42, 0.62)), float(uniform(rng, 0.75, 0.95)))
    horizon = tuple(float(v) for v in
                    np.clip(np.asarray(zenith) * 0.4 + 0.55 + 0.05 * warm * np.array([1, 0, -1]), 0, 1))
    return Environment(sun_direction=sun, sun_colour=sun_colour, sun_strength=draw_range(rng, knobs.sun_strength),
                       ambient=tuple(float(v) for v in uniform(rng, 0.45, 0.6) * np.array([0.95, 0.98, 1.05])),
                       sky_zenith=zenith, sky_horizon=horizon, cloud_cover=float(uniform(rng, 0.0, 0.6)),
                       haze_colour=horizon, haze_distance=haze_distance, seed=seed)
