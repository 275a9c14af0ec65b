"""Looks: how a rendered frame becomes a picture. Both styles see the same scene, labels and light.

`synthetic` is the game-engine look: flat shading, saturated colours, hard edges, no sensor.
`photo` is the built-in stand-in for a real camera: photographed surface textures, softer and less saturated
light, haze, lens blur and vignetting, exposure and white-balance error, sensor noise and JPEG artefacts.
Each style draws its randomness from its own generator, so the look never changes the geometry.

Per pixel, a look is: texture factor and haze (scalars per pixel), then a colour transform (saturation,
contrast, exposure, white balance: one affine map of RGB), then vignetting (a scalar per pixel), folded into
a few whole-picture OpenCV passes (`_compose`) instead of a chain of NumPy ones. Sensor noise and the tone
curve are one table lookup (`_sensor_table`).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from syn2real.errors import ConfigError
from syn2real.synth.raster import Frame
from syn2real.synth.scene import Scene
from syn2real.synth.textures import FADE_DISTANCE, texture_factor

STYLES = ("synthetic", "photo")
_NOISE_LEVELS = 128  # sensor noise is drawn from this many quantised levels (see _noise_codes)
_NOISE_RANGE = 4.0  # in standard deviations: the quantised noise spans +-_NOISE_RANGE sigma


def check_style(style: str) -> str:
    if style not in STYLES:
        raise ConfigError(f"unknown SynStreets style {style!r}; choose one of {', '.join(STYLES)}")
    return style


def _haze_keep(depth: np.ndarray, scene: Scene, scale: float) -> np.ndarray:
    """(H, W) float32 fraction of a surface's own colour left after haze (1 for the sky)."""
    keep = cv2.exp(depth * np.float32(-1.0 / (scene.environment.haze_distance * scale)))
    keep[np.isinf(depth)] = 1.0  # exp(-inf) = 0: the sky is its own haze
    return keep


def _saturation(amount: float) -> np.ndarray:
    """3x3 matrix of grey + (colour - grey) * amount, grey the channel mean."""
    return amount * np.eye(3) + (1 - amount) / 3 * np.ones((3, 3))


def _compose(colour: np.ndarray, matrix: np.ndarray, offset: np.ndarray, haze: np.ndarray, gain: np.ndarray,
             keep: np.ndarray, vignette: np.ndarray | None = None) -> np.ndarray:
    """uint8 picture of vignette * (M (gain * colour + (1 - keep) * haze) + offset), rounded and clipped.

    `gain` is the surface's own share (texture factor times `keep`, the part left after haze), all (H, W)
    float32; M is 3x3, `haze` and `offset` RGB. Computed as M (gain * colour - keep * haze) + (M haze +
    offset): only 3-channel OpenCV transforms, which are several times faster than any other channel count.
    """
    matrix = np.asarray(matrix, np.float64)
    haze = np.asarray(haze, np.float64)
    surface = colour * cv2.merge([gain, gain, gain])
    surface -= cv2.merge([keep * np.float32(c) for c in haze])
    affine = 255.0 * np.column_stack([matrix, matrix @ haze + offset])
    out = cv2.transform(surface, affine.astype(np.float32))
    if vignette is None:
        return cv2.addWeighted(out, 1.0, out, 0.0, 0.0, dtype=cv2.CV_8U)
    return cv2.multiply(out, cv2.merge([vignette, vignette, vignette]), dtype=cv2.CV_8U)


def synthetic(frame: Frame, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    keep = _haze_keep(frame.depth, scene, scale=2.0)  # game engines keep the distance clear
    matrix = _saturation(rng.uniform(1.05, 1.25))
    return _compose(frame.colour, matrix, np.zeros(3), scene.environment.haze_colour, keep, keep)


def _texture_coordinates(frame: Frame, scene: Scene, depth: np.ndarray,
                         box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """World metres across each surface in a pixel box (x0, y0, x1, y1; `depth` is the box's): (x, z) on
    the ground and roofs, (along, -up) on walls.

    World points are camera origin + ray * depth, each ray component affine in the pixel coordinates.
    """
    cam = scene.camera
    x0, y0, x1, y1 = box
    world = []
    for axis, origin in zip(np.eye(3), cam.origin):
        component = cam.ray_dot_map(axis, x0, y0, x1, y1)
        component *= depth
        component += np.float32(origin)
        world.append(component)
    x, y, z = world
    normals = frame.normals
    flat = np.abs(normals[:, 1]) > 0.7
    part = frame.part[y0:y1, x0:x1]
    # along = x * n_z - z * n_x on walls; (x, z) on flat surfaces: per-entry weights gathered per pixel.
    weight_x = np.where(flat, 1.0, normals[:, 2]).astype(np.float32)
    weight_z = np.where(flat, 0.0, -normals[:, 0]).astype(np.float32)
    tex_u = x * weight_x.take(part)
    tex_u += z * weight_z.take(part)
    tex_v = np.where(flat.take(part), z, -y)
    return tex_u, tex_v


@lru_cache(maxsize=4)
def _noise_codes(height: int, width: int) -> np.ndarray:
    """Flat uint8 quantised sensor noise (fixed seed) for two pictures: colour noise plus stronger luminance.

    A frame reads one picture's worth from any whole pixel on, so no frame draws a million normals. Codes run
    0.._NOISE_LEVELS-1 for -+_NOISE_RANGE standard deviations of the total noise.
    """
    rng = np.random.default_rng(20240611)
    noise = rng.standard_normal((2 * height * width, 3), dtype=np.float32)
    noise += rng.standard_normal((2 * height * width, 1), dtype=np.float32) * 1.5  # mostly luminance noise
    sigma = np.sqrt(1 + 1.5**2)
    step = 2 * _NOISE_RANGE / (_NOISE_LEVELS - 1)
    codes = np.clip(np.rint(noise / sigma / step + (_NOISE_LEVELS - 1) / 2), 0, _NOISE_LEVELS - 1).astype(np.uint8)
    codes = codes.ravel()
    codes.setflags(write=False)
    return codes


#: A pixel value's first code in `_sensor_table`: codes are value * _NOISE_LEVELS + noise code.
_CODE_BASE = (np.arange(256) * _NOISE_LEVELS).astype(np.uint16)


def _sensor_table(noise_level: float, gamma: float) -> np.ndarray:
    """(256 * _NOISE_LEVELS,) uint8: output of (value, noise code) after shot noise and the tone curve.

    Shot noise grows with brightness: value + n * level * sqrt(value), then the gamma curve, in one lookup.
    """
    value = np.arange(256, dtype=np.float64)[:, None] / 255.0
    step = 2 * _NOISE_RANGE / (_NOISE_LEVELS - 1)
    noise = (np.arange(_NOISE_LEVELS) - (_NOISE_LEVELS - 1) / 2) * step * np.sqrt(1 + 1.5**2)
    noisy = value + noise[None, :] * noise_level * np.sqrt(np.clip(value, 0.02, 1.0))
    out = np.clip(np.clip(noisy, 0.0, 1.0) ** gamma * 255.0 + 0.5, 0, 255)
    return out.astype(np.uint8).ravel()


@lru_cache(maxsize=4)
def _radius2(height: int, width: int) -> np.ndarray:
    """(H, W) float32 squared distance from the picture's centre, 1 at the middle of each edge."""
    xx = ((np.arange(width, dtype=np.float32) - width / 2) / (width / 2)) ** 2
    yy = ((np.arange(height, dtype=np.float32) - height / 2) / (height / 2)) ** 2
    out = xx[None, :] + yy[:, None]
    out.setflags(write=False)
    return out


def photo(frame: Frame, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    h, w = frame.label.shape
    # Surface detail, within the box of pixels nearer than the distance where it has faded out.
    strength = rng.uniform(0.7, 1.2)
    texture = np.ones((h, w), np.float32)
    near = frame.depth < FADE_DISTANCE
    rows, cols = np.flatnonzero(near.any(axis=1)), np.flatnonzero(near.any(axis=0))
    if len(rows):
        box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        x0, y0, x1, y1 = box
        depth = np.minimum(frame.depth[y0:y1, x0:x1], np.float32(FADE_DISTANCE))  # (finite)
        tex_u, tex_v = _texture_coordinates(frame, scene, depth, box)
        texture[y0:y1, x0:x1] = texture_factor(frame.material[y0:y1, x0:x1], tex_u, tex_v, depth, strength)
    keep = _haze_keep(frame.depth, scene, scale=rng.uniform(0.5, 1.0))
    # Lighting statistics of a real camera: washed-out colour, lifted blacks, a tone curve; then exposure and
    # white balance. All affine in RGB: matrix @ colour + offset.
    saturation = _saturation(rng.uniform(0.55, 0.9))
    contrast, lift = rng.uniform(0.85, 1.0), rng.uniform(0.0, 0.06)
    exposure = rng.uniform(0.8, 1.45) * rng.uniform(0.9, 1.1, 3)
    matrix = exposure[:, None] * contrast * saturation
    offset = exposure * lift
    # Vignetting: darker corners.
    vignette = _radius2(h, w) * np.float32(-rng.uniform(0.05, 0.35) / 2)
    vignette += 1.0
    image = _compose(frame.colour, matrix, offset, scene.environment.haze_colour, texture * keep, keep, vignette)
    # Lens blur, then sensor noise (shot noise grows with brightness) and the tone curve, then compression.
    sigma = rng.uniform(0.35, 1.1) * max(w / 512, 0.5)
    image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    noise_level = rng.uniform(0.004, 0.025)
    gamma = rng.uniform(0.8, 1.1)
    start = 3 * int(rng.integers(h * w + 1))  # any whole pixel of the noise table
    codes = cv2.add(cv2.LUT(image, _CODE_BASE), _noise_codes(h, w)[start:start + h * w * 3].reshape(h, w, 3),
                    dtype=cv2.CV_16U)
    image = _sensor_table(noise_level, gamma).take(codes)
    quality = int(rng.integers(35, 90))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)


def apply_style(frame: Frame, scene: Scene, style: str, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of a rendered frame in the given style."""
    return {"synthetic": synthetic, "photo": photo}[check_style(style)](frame, scene, rng)
