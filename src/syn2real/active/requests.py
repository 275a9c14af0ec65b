"""What a selector asks for and how much it may ask: labelling requests and budgets.

A request names pixels of one target image at its native resolution: a point (one pixel) or a region (a
boolean mask over a bounding box). Budgets are counted at native resolution too, per image and per round:
`points` requests per image, or `percent` of the image's pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from syn2real.errors import ConfigError

KINDS = ("point", "region")


@dataclass(frozen=True)
class Request:
    """Pixels of `image` to label: the `mask` (bool, h x w) placed with its top-left corner at (x, y)."""

    image: str
    kind: str
    x: int
    y: int
    mask: np.ndarray = field(repr=False)
    score: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"request kind must be one of {KINDS}, got {self.kind!r}")
        if self.mask.dtype != bool or self.mask.ndim != 2 or not self.mask.any():
            raise ValueError("a request's mask must be a non-empty 2-D bool array")
        if self.kind == "point" and self.mask.shape != (1, 1):
            raise ValueError("a point request covers exactly one pixel")

    @classmethod
    def point(cls, image: str, x: int, y: int, score: float = 0.0) -> Request:
        return cls(image, "point", int(x), int(y), np.ones((1, 1), bool), float(score))

    @classmethod
    def region(cls, image: str, full_mask: np.ndarray, score: float = 0.0) -> Request:
        """A region from an image-sized boolean mask, cropped to its bounding box."""
        ys, xs = np.nonzero(full_mask)
        if len(ys) == 0:
            raise ValueError("a region request needs at least one pixel")
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        return cls(image, "region", int(x0), int(y0), np.ascontiguousarray(full_mask[y0:y1, x0:x1], bool),
                   float(score))

    @property
    def n_pixels(self) -> int:
        return int(self.mask.sum())

    def full_mask(self, height: int, width: int) -> np.ndarray:
        """The request as an image-sized boolean mask."""
        out = np.zeros((height, width), bool)
        h, w = self.mask.shape
        out[self.y:self.y + h, self.x:self.x + w] = self.mask
        return out


@dataclass(frozen=True)
class Budget:
    """Per image and round: `points` point requests, or `percent` of the image's pixels (not both)."""

    points: int | None = None
    percent: float | None = None

    def __post_init__(self):
        if (self.points is None) == (self.percent is None):
            raise ConfigError("a labelling budget is either points per image or a percent of pixels, not both "
                              f"or neither (got points={self.points}, percent={self.percent})")
        if self.points is not None and self.points < 1:
            raise ConfigError(f"points per image must be at least 1, got {self.points}")
        if self.percent is not None and not 0 < self.percent <= 100:
            raise ConfigError(f"percent of pixels must be in (0, 100], got {self.percent}")

    def pixels(self, height: int, width: int) -> int:
        """Pixels one image may reveal under a percent budget (rounded down: never exceeded)."""
        if self.percent is None:
            raise ValueError("a points budget has no pixel count")
        return math.floor(self.percent / 100 * height * width)

    def split(self, rounds: int) -> Budget:
        """The per-round share when the budget is spread over `rounds` rounds (RIPU: 5)."""
        if self.points is not None:
            return Budget(points=max(1, self.points // rounds))
        return Budget(percent=self.percent / rounds)

    def describe(self) -> str:
        return f"{self.points} points/image" if self.points is not None else f"{self.percent:g} % of pixels"
