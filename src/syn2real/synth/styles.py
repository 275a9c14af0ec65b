"""Looks: how a rendered frame becomes a picture. Both styles see the same scene, labels and light.

`synthetic` is the game-engine look: flat shading, saturated colours, hard edges, no sensor.
`photo` is the built-in stand-in for a real camera: photographed surface textures, softer and less saturated
light, haze, lens blur and vignetting, exposure and white-balance error, sensor noise and JPEG artefacts.
Each style draws its randomness from its own generator, so the look never changes the geometry.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from syn2real.errors import ConfigError
from syn2real.synth.raster import Frame
from syn2real.synth.scene import Scene
from syn2real.synth.textures import apply_textures

STYLES = ("synthetic", "photo")


def check_style(style: str) -> str:
    if style not in STYLES:
        raise ConfigError(f"unknown SynStreets style {style!r}; choose one of {', '.join(STYLES)}")
    return style


def _haze(colour: np.ndarray, depth: np.ndarray, scene: Scene, scale: float = 1.0) -> None:
    env = scene.environment
    keep = np.exp(-depth / (env.haze_distance * scale)).astype(np.float32)  # 0 for the sky (infinite depth)
    keep[~np.isfinite(depth)] = 1.0
    colour *= keep[..., None]
    colour += (1.0 - keep)[..., None] * np.asarray(env.haze_colour, np.float32)


def _saturate(colour: np.ndarray, amount: float) -> np.ndarray:
    grey = colour.mean(axis=2, keepdims=True)
    return grey + (colour - grey) * np.float32(amount)


def _to_uint8(colour: np.ndarray) -> np.ndarray:
    return (np.clip(colour, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def synthetic(frame: Frame, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    colour = frame.colour.copy()
    _haze(colour, frame.depth, scene, scale=2.0)  # game engines keep the distance clear
    return _to_uint8(_saturate(colour, rng.uniform(1.05, 1.25)))


def _texture_coordinates(frame: Frame, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """World metres across each surface: (x, z) on the ground and roofs, (along, up) on walls."""
    depth = np.where(np.isfinite(frame.depth), frame.depth, 0.0).astype(np.float32)
    world = frame.rays * depth[..., None] + scene.camera.origin.astype(np.float32)
    normal = frame.normal_map()
    flat = np.abs(normal[..., 1]) > 0.7
    along = world[..., 0] * normal[..., 2] - world[..., 2] * normal[..., 0]
    return np.where(flat, world[..., 0], along), np.where(flat, world[..., 2], -world[..., 1])


def photo(frame: Frame, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    colour = frame.colour.copy()
    tex_u, tex_v = _texture_coordinates(frame, scene)
    apply_textures(colour, frame.material, tex_u, tex_v, frame.depth, strength=rng.uniform(0.7, 1.2))
    _haze(colour, frame.depth, scene, scale=rng.uniform(0.5, 1.0))
    h, w = frame.label.shape
    # Lighting statistics of a real camera: washed-out colour, lifted blacks, a tone curve.
    colour = _saturate(colour, rng.uniform(0.55, 0.9))
    colour = colour * np.float32(rng.uniform(0.85, 1.0)) + np.float32(rng.uniform(0.0, 0.06))
    # Exposure and white balance.
    colour *= np.float32(rng.uniform(0.8, 1.45)) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    # Vignetting: darker corners.
    xx = ((np.arange(w, dtype=np.float32) - w / 2) / (w / 2)) ** 2
    yy = ((np.arange(h, dtype=np.float32) - h / 2) / (h / 2)) ** 2
    colour *= (1.0 - np.float32(rng.uniform(0.05, 0.35) / 2) * (xx[None, :] + yy[:, None]))[..., None]
    # Lens blur, then sensor noise (shot noise grows with brightness), then compression.
    sigma = rng.uniform(0.35, 1.1) * max(w / 512, 0.5)
    colour = cv2.GaussianBlur(colour, (0, 0), sigmaX=sigma)
    noise_level = rng.uniform(0.004, 0.025)
    noise = rng.standard_normal((h, w, 3), dtype=np.float32)
    noise += rng.standard_normal((h, w, 1), dtype=np.float32) * 1.5  # mostly luminance noise
    colour += noise * np.float32(noise_level) * np.sqrt(np.clip(colour, 0.02, 1.0))
    gamma = rng.uniform(0.8, 1.1)
    image = cv2.LUT(_to_uint8(colour), _gamma_table(round(gamma, 3)))
    quality = int(rng.integers(35, 90))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)


@lru_cache(maxsize=64)
def _gamma_table(gamma: float) -> np.ndarray:
    return (np.clip((np.arange(256) / 255.0) ** gamma, 0, 1) * 255 + 0.5).astype(np.uint8)


def apply_style(frame: Frame, scene: Scene, style: str, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of a rendered frame in the given style."""
    return {"synthetic": synthetic, "photo": photo}[check_style(style)](frame, scene, rng)
