"""`Look`: how a rendered frame becomes a picture, as ranges drawn per frame from the frame's look generator.

The `synthetic` and `photo` styles (`styles.py`) are two points of this space: `Look.point("photo")` draws the
very numbers `styles.photo` draws, in the same order, so it gives the same bytes (and likewise `synthetic`).

A look knob is a number (pinned: nothing is drawn) or a [low, high] range (one uniform draw per frame). Off
values: `texture_strength` 0 (flat colours), `vignette` 0, `blur` 0, `noise` 0, `gamma` 1, `jpeg_quality` 0,
`motion_blur_prob` 0, `texture_variety` 0. The steps, in the order a camera applies them: surface texture and
haze, a wet road's sheen, colour (saturation, contrast, black lift, exposure, white balance), vignetting, lens
distortion (the scene camera's, which warps the label alike), lens blur, motion blur, sensor noise and tone
curve, JPEG. Nothing here moves a label, except the lens distortion, which warps picture and label together.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from syn2real.errors import ConfigError
from syn2real.synth.raster import Frame
from syn2real.synth.scene import Material, Scene
from syn2real.synth.styles import (_bands, _compose, _haze_keep, _radius2, _saturation, _sensor_noise, _shot_noise,
                                   _surface_detail, _tone_curve)
from syn2real.synth.textures import texture_tables

Value = float | tuple[float, float]


def _look(default, group: str, low: float, high: float, new: bool = False):
    return field(default=default, metadata={"kind": "look", "group": group, "low": low, "high": high, "new": new})


@dataclass
class Look:
    """The look's knobs; the defaults are the `photo` point. See the module docstring and docs/SYNSTREETS.md."""

    texture_strength: Value = _look((0.7, 1.2), "surfaces", 0.0, 2.0)  # detail of the texture maps; 0: none
    haze_scale: Value = _look((0.5, 1.0), "light", 0.2, 4.0)  # the haze's distance times this
    saturation: Value = _look((0.55, 0.9), "sensor", 0.0, 2.0)
    contrast: Value = _look((0.85, 1.0), "sensor", 0.3, 1.5)
    black_lift: Value = _look((0.0, 0.06), "sensor", 0.0, 0.3)
    exposure: Value = _look((0.8, 1.45), "sensor", 0.2, 3.0)
    white_balance: Value = _look((0.9, 1.1), "sensor", 0.5, 1.5)  # a gain per channel, each drawn
    vignette: Value = _look((0.05, 0.35), "sensor", 0.0, 0.9)
    blur: Value = _look((0.35, 1.1), "sensor", 0.0, 5.0)  # lens blur sigma, pixels at 512 wide
    noise: Value = _look((0.004, 0.025), "sensor", 0.0, 0.2)
    gamma: Value = _look((0.8, 1.1), "sensor", 0.3, 3.0)
    jpeg_quality: Value = _look((35.0, 89.0), "sensor", 0.0, 100.0)  # 0: no JPEG
    motion_blur_prob: float = _look(0.0, "sensor", 0.0, 1.0, new=True)
    motion_blur: Value = _look((2.0, 8.0), "sensor", 0.0, 40.0, new=True)  # streak length, pixels at 512 wide
    texture_variety: float = _look(0.0, "surfaces", 0.0, 1.0, new=True)  # share of materials on another map

    @classmethod
    def point(cls, name: str) -> Look:
        """The look of a named style: `photo` (the defaults) or `synthetic` (flat, saturated, no sensor)."""
        if name == "photo":
            return cls()
        if name == "synthetic":
            return cls(texture_strength=0.0, haze_scale=2.0, saturation=(1.05, 1.25), contrast=1.0, black_lift=0.0,
                       exposure=1.0, white_balance=1.0, vignette=0.0, blur=0.0, noise=0.0, gamma=1.0,
                       jpeg_quality=0.0)
        raise ConfigError(f"no look point {name!r}; choose synthetic or photo")

    @classmethod
    def from_dict(cls, values: dict, where: str = "SynStreets look") -> Look:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown SynStreets look knob(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(fields))}")
        return cls(**{name: check_look(fields[name], value, f"{where} {name}") for name, value in values.items()})

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, check_look(f, getattr(self, f.name), f"SynStreets look {f.name}"))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def check_look(f: dataclasses.Field, value, name: str) -> Value:
    """A look knob in canonical form: a float (pinned) or a (low, high) tuple; else a one-line ConfigError."""
    low, high = f.metadata["low"], f.metadata["high"]
    single = f.type in ("float", float)
    if isinstance(value, (list, tuple)) and not single:
        if len(value) != 2:
            raise ConfigError(f"{name} must be a number or a [low, high] pair, got {list(value)}")
        pair = [_finite(v, name) for v in value]
        if pair[0] > pair[1]:
            raise ConfigError(f"{name} must be a [low, high] pair with low <= high, got {list(value)}")
    else:
        pair = [_finite(value, name)] * 1
    for v in pair:
        if not low <= v <= high:
            raise ConfigError(f"{name} = {v} is outside [{low}, {high}]")
    return tuple(pair) if len(pair) == 2 else pair[0]


def _finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number or a [low, high] pair, got {value!r}")
    return float(value)


def _draw(rng: np.random.Generator, value: Value) -> float:
    """A range's draw (the very call of the styles: rng.uniform), or a pinned value without drawing."""
    return float(rng.uniform(*value)) if isinstance(value, tuple) else value


#: Materials a wet road's sheen lies on.
_WET = np.zeros(256, np.float32)
_WET[[Material.ASPHALT, Material.MARKING]] = 1.0


def apply_look(frame: Frame, scene: Scene, look: Look, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB picture and (H, W) uint8 label of a rendered frame under a look.

    Every number is drawn first, in the order `styles.photo` draws its own, then the new knobs' (only when
    they are on); then the picture is made.
    """
    h, w = frame.label.shape
    strength = _draw(rng, look.texture_strength)
    haze_scale = _draw(rng, look.haze_scale)
    saturation = _draw(rng, look.saturation)
    contrast, lift = _draw(rng, look.contrast), _draw(rng, look.black_lift)
    balance = look.white_balance
    exposure = _draw(rng, look.exposure) * (rng.uniform(*balance, 3) if isinstance(balance, tuple)
                                            else np.full(3, balance))
    vignette = _draw(rng, look.vignette)
    sigma = _draw(rng, look.blur) * max(w / 512, 0.5)
    noise_level = _draw(rng, look.noise)
    gamma = _draw(rng, look.gamma)
    start = 3 * int(rng.integers(h * w + 1)) if noise_level > 0 else 0
    jpeg = look.jpeg_quality
    quality = int(rng.integers(int(jpeg[0]), int(jpeg[1]) + 1)) if isinstance(jpeg, tuple) else int(jpeg)
    streak = None
    if look.motion_blur_prob > 0 and rng.random() < look.motion_blur_prob:
        streak = (_draw(rng, look.motion_blur) * max(w / 512, 0.5), float(rng.normal(0.0, 8.0)))
    tables = texture_tables(rng, look.texture_variety) if look.texture_variety > 0 and strength > 0 else None

    keep = _haze_keep(frame.depth, scene, scale=haze_scale)
    gain = _surface_detail(frame, scene, strength, tables) if strength > 0 else None
    wet = scene.environment.wet
    if wet > 0:  # a wet road is darker, and mirrors the sky (about the haze's colour) more at grazing angles
        on_road = cv2.LUT(frame.material, _WET)
        grazing = np.minimum(frame.depth, np.float32(1e4))
        grazing = grazing / (grazing + np.float32(12.0))
        sheen = on_road * grazing * np.float32(0.55 * wet)
        if gain is None:
            gain = np.ones((h, w), np.float32)
        gain *= 1 - on_road * np.float32(0.35 * wet)
        keep *= 1 - sheen
    matrix = exposure[:, None] * contrast * _saturation(saturation)
    offset = exposure * lift
    shade = None
    if vignette > 0:
        shade = _radius2(h, w) * np.float32(-vignette / 2)
        shade += 1.0
    if gain is None:
        gain = keep
    else:
        gain *= keep
    image = _compose(frame.colour, matrix, offset, scene.environment.haze_colour, gain, keep, shade)
    label = frame.label
    if scene.camera.distortion > 0:
        image, label = distort(image, label, scene.camera.distortion)
    if sigma > 0:
        cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, dst=image)
    if streak is not None:
        image = cv2.filter2D(image, -1, _streak_kernel(*streak), borderType=cv2.BORDER_REPLICATE)
    if noise_level > 0:
        shot, tone = _shot_noise(noise_level), _tone_curve(gamma)
        sensor = _sensor_noise(h, w)[start:start + h * w * 3].reshape(h, w, 3)
        bands = _bands(h, w)
        buffer = np.empty((bands[0].stop, w, 3), np.float32)
        for band in bands:
            pixels, noise = image[band], buffer[:band.stop - band.start]
            cv2.LUT(pixels, shot, dst=noise)
            cv2.multiply(noise, sensor[band], dst=noise)
            cv2.add(pixels, noise, dst=pixels, dtype=cv2.CV_8U)
            cv2.LUT(pixels, tone, dst=pixels)
    elif gamma != 1.0:
        cv2.LUT(image, _tone_curve(gamma), dst=image)
    if quality > 0:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    return image, label


def _streak_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised line kernel: the smear of a camera moving during the exposure."""
    size = max(3, int(math.ceil(length)) | 1)
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(math.radians(angle_deg)) * length / 2, math.sin(math.radians(angle_deg)) * length / 2
    cv2.line(kernel, (round((c - dx) * 16), round((c - dy) * 16)), (round((c + dx) * 16), round((c + dy) * 16)),
             1.0, 1, cv2.LINE_AA, 4)
    return kernel / kernel.sum()


@lru_cache(maxsize=8)
def _unit_radius(height: int, width: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Pixel offsets from the centre (x, y in units of the half-width) and the corner's squared radius."""
    half = width / 2
    x = (np.arange(width, dtype=np.float32) - (width - 1) / 2) / half
    y = (np.arange(height, dtype=np.float32) - (height - 1) / 2) / half
    corner = float(x[0] ** 2 + y[0] ** 2)
    return x, y, corner


def distortion_maps(height: int, width: int, k1: float) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of a barrel-distorted picture looks in the pinhole one (remap's maps).

    A pixel at radius r (in half-widths from the centre) shows the pinhole picture at r (1 + k1 r^2) / (1 + k1 rc^2),
    rc the corner's radius: the corners stay put, the middle is magnified and straight lines bow outwards.
    """
    x, y, corner = _unit_radius(height, width)
    r2 = x[None, :] ** 2 + y[:, None] ** 2
    scale = (1 + np.float32(k1) * r2) / np.float32(1 + k1 * corner)
    half = width / 2
    map_x = x[None, :] * scale * np.float32(half) + np.float32((width - 1) / 2)
    map_y = y[:, None] * scale * np.float32(half) + np.float32((height - 1) / 2)
    return map_x.astype(np.float32), map_y.astype(np.float32)


def distort(image: np.ndarray, label: np.ndarray, k1: float) -> tuple[np.ndarray, np.ndarray]:
    """Picture (bilinear) and label (nearest: every pixel keeps one rendered surface's class) through the lens."""
    map_x, map_y = distortion_maps(*label.shape, k1)
    return (cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
            cv2.remap(label, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE))
