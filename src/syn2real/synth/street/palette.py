"""Surface colours: base colours per surface, and the palette that jitters them per frame and per object.

Every layer takes its colours from here, so randomising surfaces has one place to live.
"""

from __future__ import annotations

import numpy as np

from syn2real.synth.scene import Colour


class Palette:
    """Jitters base colours (domain randomisation), drawing from the frame's generator."""

    def __init__(self, rng: np.random.Generator, jitter: float):
        self.rng, self.jitter = rng, jitter

    def vary(self, colour: Colour, amount: float = 0.08) -> Colour:
        a = amount * self.jitter
        r0, r1, r2, r3 = self.rng.random(4).tolist()
        scale = 1 + a * (2 * r0 - 1)
        red, green, blue = colour  # (spelled out: ~150 colours a frame, and a generator costs twice as much)
        red, green, blue = red * scale + a * (r1 - 0.5), green * scale + a * (r2 - 0.5), blue * scale + a * (r3 - 0.5)
        # (clipped to [0, 1] with comparisons: exactly min(max(...)), at a fraction of the builtins' cost)
        return (0.0 if red < 0.0 else 1.0 if red > 1.0 else red, 0.0 if green < 0.0 else 1.0 if green > 1.0 else green,
                0.0 if blue < 0.0 else 1.0 if blue > 1.0 else blue)

    def pick(self, colours: list[Colour], amount: float = 0.08) -> Colour:
        return self.vary(colours[self.rng.integers(len(colours))], amount)


ASPHALT = [(0.3, 0.3, 0.31), (0.36, 0.35, 0.35), (0.24, 0.24, 0.26), (0.42, 0.41, 0.4)]
PAVING = [(0.55, 0.54, 0.52), (0.62, 0.6, 0.56), (0.48, 0.47, 0.47), (0.58, 0.5, 0.45)]
GRASS = [(0.3, 0.42, 0.16), (0.38, 0.45, 0.2), (0.42, 0.4, 0.25), (0.25, 0.35, 0.15)]
FACADES = [(0.55, 0.3, 0.22), (0.62, 0.4, 0.3), (0.72, 0.66, 0.55), (0.82, 0.8, 0.74), (0.5, 0.5, 0.5),
           (0.65, 0.58, 0.45), (0.42, 0.3, 0.26), (0.85, 0.84, 0.8), (0.55, 0.52, 0.48), (0.7, 0.5, 0.35)]
ROOFS = [(0.25, 0.25, 0.28), (0.45, 0.25, 0.2), (0.35, 0.3, 0.3)]
FOLIAGE = [(0.18, 0.32, 0.1), (0.25, 0.38, 0.12), (0.3, 0.35, 0.15), (0.15, 0.28, 0.12), (0.35, 0.38, 0.18)]
WALLS = [(0.55, 0.35, 0.28), (0.6, 0.58, 0.55), (0.5, 0.48, 0.44), (0.7, 0.65, 0.55)]
FENCES = [(0.15, 0.15, 0.16), (0.4, 0.3, 0.2), (0.2, 0.3, 0.22), (0.55, 0.55, 0.55), (0.5, 0.38, 0.25)]
MARKING_WHITE = (0.9, 0.9, 0.88)
MARKING_YELLOW = (0.85, 0.7, 0.15)
KERB_STONE = (0.62, 0.61, 0.58)
#: Smooth render (plaster) in the pale paints of European town facades.
RENDERS = [(0.92, 0.88, 0.78), (0.88, 0.8, 0.62), (0.85, 0.7, 0.6), (0.75, 0.8, 0.82), (0.95, 0.94, 0.9),
           (0.8, 0.75, 0.55), (0.7, 0.72, 0.62), (0.9, 0.78, 0.7)]
#: Window frames: white, dark grey, brown wood.
FRAMES = [(0.92, 0.92, 0.9), (0.2, 0.2, 0.22), (0.4, 0.28, 0.18), (0.6, 0.6, 0.58)]
