"""Looks: how a rendered frame becomes a picture. Both styles see the same scene, labels and light.

`synthetic` is the game-engine look: flat shading, saturated colours, hard edges, no sensor.
`photo` is the built-in stand-in for a real camera: photographed surface textures, softer and less saturated
light, haze, lens blur and vignetting, exposure and white-balance error, sensor noise and JPEG artefacts.
Each style draws its randomness from its own generator, so the look never changes the geometry.

Per pixel, a look is: texture factor and haze (scalars per pixel), then a colour transform (saturation,
contrast, exposure, white balance: one affine map of RGB), then vignetting (a scalar per pixel), folded into
a few one-channel OpenCV passes (`_compose`) instead of a chain of NumPy ones. Sensor noise is a cached noise
field scaled by a lookup on the pixel value (`_shot_noise`), then the tone curve is a second lookup.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from syn2real.errors import ConfigError
from syn2real.synth.raster import Frame
from syn2real.synth.scene import Scene
from syn2real.synth.textures import FADE_DISTANCE, Atlas, texture_factor

STYLES = ("synthetic", "photo")


def check_style(style: str) -> str:
    if style not in STYLES:
        raise ConfigError(f"unknown SynStreets style {style!r}; choose one of {', '.join(STYLES)}")
    return style


def _haze_keep(depth: np.ndarray, scene: Scene, scale: float) -> np.ndarray:
    """(H, W) float32 fraction of a surface's own colour left after haze (1 for the sky)."""
    keep = depth * np.float32(-1.0 / (scene.environment.haze_distance * scale))
    cv2.exp(keep, dst=keep)
    keep[np.isinf(depth)] = 1.0  # exp(-inf) = 0: the sky is its own haze
    return keep


def _saturation(amount: float) -> np.ndarray:
    """3x3 matrix of grey + (colour - grey) * amount, grey the channel mean."""
    return amount * np.eye(3) + (1 - amount) / 3 * np.ones((3, 3))


def _compose(colour: np.ndarray, matrix: np.ndarray, offset: np.ndarray, haze: np.ndarray, gain: np.ndarray,
             keep: np.ndarray, vignette: np.ndarray | None = None) -> np.ndarray:
    """uint8 picture of vignette * (M (gain * colour + (1 - keep) * haze) + offset), rounded and clipped.

    `gain` is the surface's own share (texture factor times `keep`, the part left after haze), all (H, W)
    float32; M is 3x3, `haze` and `offset` RGB. Each output channel c is computed on its own as
    (M_c . colour) * gain * vignette - keep * vignette * (M haze)_c + vignette * (M haze + offset)_c: one-channel
    OpenCV passes, with no per-pixel factor spread over three channels first, band by band (see `_bands`).
    """
    matrix = 255.0 * np.asarray(matrix, np.float64)
    hazed = matrix @ np.asarray(haze, np.float64)
    lifted = hazed + 255.0 * np.asarray(offset, np.float64)
    rows = [(row[None].astype(np.float32), haze_c, lift_c)
            for row, haze_c, lift_c in zip(matrix, hazed.tolist(), lifted.tolist())]
    bands = _bands(*gain.shape)
    picture = np.empty((*gain.shape, 3), np.uint8)
    buffer = np.empty((bands[0].stop, gain.shape[1]), np.float32)  # (one for all bands and channels)
    for band in bands:
        band_gain, band_keep = gain[band], keep[band]
        if vignette is not None:
            band_vignette = vignette[band]
            band_gain, band_keep = cv2.multiply(band_gain, band_vignette), cv2.multiply(band_keep, band_vignette)
        out = buffer[:len(band_gain)]
        channels = []
        for row, haze_c, lift_c in rows:
            cv2.transform(colour[band], row, dst=out)
            cv2.multiply(out, band_gain, dst=out)
            cv2.scaleAdd(band_keep, -haze_c, out, dst=out)
            if vignette is None:
                channels.append(cv2.addWeighted(out, 1.0, out, 0.0, lift_c, dtype=cv2.CV_8U))
            else:
                channels.append(cv2.addWeighted(out, 1.0, band_vignette, lift_c, 0.0, dtype=cv2.CV_8U))
        cv2.merge(channels, dst=picture[band])
    return picture


def _bands(height: int, width: int) -> list[slice]:
    """Row bands of about 32k pixels: a chain of per-pixel passes over one band finds its inputs and
    intermediates still in cache, where whole-picture passes would go out to memory for each."""
    rows = max(1, 32768 // width)
    return [slice(top, min(top + rows, height)) for top in range(0, height, rows)]


def synthetic(frame: Frame, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    keep = _haze_keep(frame.depth, scene, scale=2.0)  # game engines keep the distance clear
    matrix = _saturation(rng.uniform(1.05, 1.25))
    return _compose(frame.colour, matrix, np.zeros(3), scene.environment.haze_colour, keep, keep)


def _texture_coordinates(frame: Frame, scene: Scene, depth: np.ndarray, part: np.ndarray,
                         box: tuple[int, int, int, int], step: int) -> tuple[np.ndarray, np.ndarray]:
    """World metres across each surface at every `step`-th pixel of a box (x0, y0, x1, y1; `depth` and
    `part` are those pixels'): (x, z) on the ground and roofs, (along, -up) on walls.

    World points are camera origin + ray * depth, each ray component affine in the pixel coordinates.
    """
    cam = scene.camera
    world = []
    for axis, origin in zip(np.eye(3), cam.origin):
        component = cam.ray_dot_map(axis, *box, step=step)
        component *= depth
        component += np.float32(origin)
        world.append(component)
    x, y, z = world
    normals = frame.normals
    flat = np.abs(normals[:, 1]) > 0.7
    # along = x * n_z - z * n_x on walls; (x, z) on flat surfaces: per-entry weights gathered per pixel.
    weight_x = np.where(flat, 1.0, normals[:, 2]).astype(np.float32)
    weight_z = np.where(flat, 0.0, -normals[:, 0]).astype(np.float32)
    # (in place on the gathered weights and on y, all fresh arrays: no more temporaries than needed)
    tex_u = weight_x.take(part)
    tex_u *= x
    along_z = weight_z.take(part)
    along_z *= z
    tex_u += along_z
    tex_v = np.negative(y, out=y)
    np.copyto(tex_v, z, where=flat.take(part))
    return tex_u, tex_v


_HALVE = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])  # full-resolution pixel -> half-resolution sample


def _surface_detail(frame: Frame, scene: Scene, strength: float, tables: Atlas | None = None) -> np.ndarray:
    """(H, W) float32 texture factor of every pixel (1 where detail has faded out, and on the sky).

    Computed at every second pixel of the box of pixels nearer than the fade distance and resized up: the
    detail is mean-one noise that the lens blur softens anyway, and this quarters the work of the remap.
    """
    h, w = frame.label.shape
    texture = np.ones((h, w), np.float32)
    depth = frame.depth[::2, ::2]
    c0, r0, cols, rows = cv2.boundingRect((depth < FADE_DISTANCE).view(np.uint8))
    if not rows:
        return texture
    r1, c1 = r0 + rows, c0 + cols
    box = (2 * c0, 2 * r0, 2 * c1, 2 * r1)  # (full-resolution pixels; may reach one past the picture)
    depth = np.minimum(depth[r0:r1, c0:c1], np.float32(FADE_DISTANCE))  # (finite)
    part = frame.part[2 * r0:2 * r1:2, 2 * c0:2 * c1:2]
    tex_u, tex_v = _texture_coordinates(frame, scene, depth, part, box, step=2)
    material = np.ascontiguousarray(frame.material[2 * r0:2 * r1:2, 2 * c0:2 * c1:2])  # (once, not per LUT)
    factor = texture_factor(material, tex_u, tex_v, depth, strength, tables)
    # Back to full resolution: pixel 2i takes sample i, pixel 2i + 1 the mean of samples i and i + 1.
    x0, y0, x1, y1 = box[0], box[1], min(box[2], w), min(box[3], h)
    cv2.warpAffine(factor, _HALVE, (x1 - x0, y1 - y0), texture[y0:y1, x0:x1],
                   cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, cv2.BORDER_REPLICATE)
    return texture


@lru_cache(maxsize=4)
def _sensor_noise(height: int, width: int) -> np.ndarray:
    """Flat float32 unit-variance sensor noise (fixed seed) for two pictures: colour noise plus stronger
    luminance noise. A frame reads one picture's worth from any whole pixel on, so no frame draws its own."""
    rng = np.random.default_rng(20240611)
    noise = rng.standard_normal((2 * height * width, 3), dtype=np.float32)
    noise += rng.standard_normal((2 * height * width, 1), dtype=np.float32) * 1.5  # mostly luminance noise
    noise *= np.float32(1 / np.sqrt(1 + 1.5**2))
    noise = noise.ravel()
    noise.setflags(write=False)
    return noise


def _shot_noise(noise_level: float) -> np.ndarray:
    """(256,) float32 standard deviation of the noise, in pixel values, at each pixel value: shot noise grows
    with brightness."""
    value = np.arange(256) / 255.0
    return (noise_level * np.sqrt(np.clip(value, 0.02, 1.0)) * 255.0).astype(np.float32)


def _tone_curve(gamma: float) -> np.ndarray:
    """(256,) uint8 gamma curve."""
    return np.clip(np.rint((np.arange(256) / 255.0) ** gamma * 255.0), 0, 255).astype(np.uint8)


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
    texture = _surface_detail(frame, scene, strength=rng.uniform(0.7, 1.2))
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
    texture *= keep  # (the surface's own share of the colour)
    image = _compose(frame.colour, matrix, offset, scene.environment.haze_colour, texture, keep, vignette)
    # Lens blur, then sensor noise (shot noise grows with brightness) and the tone curve, then compression.
    sigma = rng.uniform(0.35, 1.1) * max(w / 512, 0.5)
    cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, dst=image)
    noise_level = rng.uniform(0.004, 0.025)
    gamma = rng.uniform(0.8, 1.1)
    start = 3 * int(rng.integers(h * w + 1))  # any whole pixel of the noise field
    shot, tone = _shot_noise(noise_level), _tone_curve(gamma)
    sensor = _sensor_noise(h, w)[start:start + h * w * 3].reshape(h, w, 3)
    bands = _bands(h, w)
    buffer = np.empty((bands[0].stop, w, 3), np.float32)
    for band in bands:  # (in place, band by band: see `_bands`)
        pixels, noise = image[band], buffer[:band.stop - band.start]
        cv2.LUT(pixels, shot, dst=noise)
        cv2.multiply(noise, sensor[band], dst=noise)
        cv2.add(pixels, noise, dst=pixels, dtype=cv2.CV_8U)
        cv2.LUT(pixels, tone, dst=pixels)
    quality = int(rng.integers(35, 90))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)


def apply_style(frame: Frame, scene: Scene, style: str, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of a rendered frame in the given style."""
    return {"synthetic": synthetic, "photo": photo}[check_style(style)](frame, scene, rng)
