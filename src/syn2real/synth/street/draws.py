"""Helpers for the layers' random values: fast stand-ins for `Generator` calls (the very same draws), a clip."""

from __future__ import annotations

import bisect

import numpy as np

from syn2real.synth.scene import uniform


def draw_range(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """A value of a (low, high) knob, uniform between the two."""
    return float(uniform(rng, *bounds))


class Weighted:
    """`rng.choice(options, p=weights)` as one uniform draw looked up in the running sum of the weights
    (normalised as `choice` normalises them): the very same draw and pick, at a twentieth of the cost."""

    def __init__(self, options: list[str], weights: list[float]):
        cumulative = np.asarray(weights, np.float64).cumsum()
        cumulative /= cumulative[-1]
        self.options, self._cumulative = options, cumulative.tolist()

    def pick(self, rng: np.random.Generator) -> str:
        return self.options[bisect.bisect_right(self._cumulative, rng.random())]


def clip(value: float, low: float, high: float) -> float:
    return float(min(max(value, low), high))
