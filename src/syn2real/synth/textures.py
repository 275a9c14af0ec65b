"""Surface detail for the `photo` style: real texture photographs bundled with scikit-image.

Each photo becomes a seamless, mean-one detail map (high-passed so its own lighting does not show, mirrored
so it tiles without seams) that multiplies a surface's colour, sampled in world metres so it shrinks with
distance like a real surface. All maps sit in one atlas, so a frame's textures take a single remap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
import zlib

import cv2
import numpy as np
from skimage import data as skdata

from syn2real.synth.scene import Material

#: Detail beyond this many metres would only alias: it fades out towards it.
FADE_DISTANCE = 50.0
_SIZE = 256  # side of one detail map, in texels


@dataclass(frozen=True)
class Texture:
    photo: str  # scikit-image sample name
    metres: float  # world size of one (unmirrored) photo
    strength: float  # contrast of the detail (0: flat)


#: Which photo dresses which material in the photo style.
TEXTURES = {
    Material.ASPHALT: Texture("gravel", 1.2, 0.55),
    Material.PAVING: Texture("brick", 2.4, 0.35),
    Material.GRASS: Texture("grass", 1.0, 0.7),
    Material.BRICK: Texture("brick", 3.0, 0.55),
    Material.CONCRETE: Texture("gravel", 4.0, 0.3),
    Material.FOLIAGE: Texture("grass", 1.5, 0.8),
    Material.MARKING: Texture("gravel", 1.2, 0.3),
    Material.FABRIC: Texture("gravel", 0.8, 0.15),
    Material.RENDER: Texture("procedural:plaster", 2.5, 0.3),
}

#: Maps no frame varies (`texture_tables` leaves them as `atlas` has them): a bare crown's twigs are its shape.
FIXED_TEXTURES = {Material.TWIGS: Texture("procedural:twigs", 1.5, 1.0)}

#: Other maps a material may take in a frame (`texture_tables` with variety > 0): scikit-image photos and
#: procedural patterns ("procedural:NAME", made by `procedural_map`), each at its own scale and strength.
VARIANTS = {
    Material.ASPHALT: [Texture("moon", 1.5, 0.35), Texture("procedural:grain", 0.8, 0.5)],
    Material.PAVING: [Texture("procedural:slabs", 1.2, 0.5), Texture("procedural:setts", 0.5, 0.55),
                      Texture("gravel", 1.0, 0.4)],
    Material.GRASS: [Texture("procedural:grain", 2.0, 0.6), Texture("moon", 2.0, 0.5)],
    Material.BRICK: [Texture("procedural:bricks", 0.6, 0.45), Texture("brick", 1.5, 0.6)],
    Material.CONCRETE: [Texture("moon", 6.0, 0.35), Texture("procedural:plaster", 3.0, 0.35),
                        Texture("procedural:slabs", 2.5, 0.3)],
    Material.RENDER: [Texture("procedural:grain", 4.0, 0.15), Texture("moon", 8.0, 0.2)],
    Material.FOLIAGE: [Texture("procedural:grain", 1.0, 0.7), Texture("moon", 1.2, 0.6)],
}


@lru_cache(maxsize=None)
def detail_map(photo: str, size: int = _SIZE) -> np.ndarray:
    """(size, size) float32 seamless detail with mean 1 from a grayscale scikit-image photo.

    Small on purpose: sampling far surfaces jumps across the map, and a map that fits the cache samples fast.
    """
    if photo.startswith("procedural:"):
        return procedural_map(photo.split(":", 1)[1], size)
    img = getattr(skdata, photo)().astype(np.float32)
    if img.ndim == 3:
        img = img.mean(axis=2)
    low = cv2.GaussianBlur(img, (0, 0), sigmaX=img.shape[0] / 16)
    detail = img / np.maximum(low, 1.0)
    tiled = np.block([[detail, detail[:, ::-1]], [detail[::-1], detail[::-1, ::-1]]])
    small = cv2.resize(tiled, (size, size), interpolation=cv2.INTER_AREA)
    small = (small / small.mean()).astype(np.float32)
    small.setflags(write=False)
    return small


def _fractal(rng: np.random.Generator, size: int, octaves: range, falloff: float = 0.5) -> np.ndarray:
    """Tileable fractal noise with mean 0: octaves of wrapped, upsampled white noise."""
    out = np.zeros((size, size), np.float32)
    for octave in octaves:
        cells = 2 ** octave
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        up = cv2.resize(np.tile(grid, (3, 3)), (3 * size, 3 * size), interpolation=cv2.INTER_CUBIC)
        out += up[size:2 * size, size:2 * size] * falloff ** (octave - octaves.start)
    return out - out.mean()


def _twigs(rng: np.random.Generator, size: int) -> np.ndarray:
    """Twigs as random walks that fork and thin out, drawn dark (0.3) on a bright ground, wrapped at the edges."""
    canvas = np.ones((size, size), np.float32)
    tips = [(*rng.uniform(0, size, 2), rng.uniform(0, 2 * np.pi), 2) for _ in range(size // 3)]
    offsets = [(dx, dy) for dx in (-size, 0, size) for dy in (-size, 0, size)]
    while tips:
        x, y, angle, width = tips.pop()
        for _ in range(int(rng.integers(4, 9))):
            angle += rng.normal(0, 0.35)
            step = rng.uniform(5, 12)
            nx, ny = x + step * np.cos(angle), y + step * np.sin(angle)
            for dx, dy in offsets:  # the segment and its wrapped copies: the map tiles without seams
                cv2.line(canvas, (int(x + dx), int(y + dy)), (int(nx + dx), int(ny + dy)), 0.3, width, cv2.LINE_AA)
            x, y = nx, ny
            if width > 1 and rng.random() < 0.35:  # a fork: a thinner twig leaves at an angle
                tips.append((x, y, angle + rng.choice([-1, 1]) * rng.uniform(0.4, 0.9), width - 1))
    return canvas * (1 + 0.15 * _fractal(rng, size, range(2, 5)))


@lru_cache(maxsize=None)
def procedural_map(name: str, size: int = _SIZE) -> np.ndarray:
    """(size, size) float32 seamless mean-one pattern, made from a fixed seed: `grain` (fine fractal noise, for
    asphalt and grass), `plaster` (soft blotches, for render and concrete), `slabs` (paving slabs with joints),
    `setts` (small square stones), `bricks` (stretcher bond with mortar) and `twigs` (a bare crown: dark
    branching twigs over the bright sky seen through them)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    ys, xs = np.mgrid[0:size, 0:size]
    if name == "grain":
        pattern = 1 + 0.35 * _fractal(rng, size, range(4, 8), 0.8)
    elif name == "plaster":
        pattern = 1 + 0.25 * _fractal(rng, size, range(2, 7), 0.6)
    elif name in ("slabs", "setts"):
        cell = 64 if name == "slabs" else 16
        shade = 1 + rng.uniform(-0.12, 0.12, (size // cell, size // cell)).astype(np.float32)
        pattern = shade[ys // cell, xs // cell] * (1 + 0.08 * _fractal(rng, size, range(5, 8)))
        joint = (ys % cell < 2) | (xs % cell < 2)
        pattern[joint] *= 0.55
    elif name == "bricks":
        course, length = 16, 32
        shift = (ys // course % 2) * (length // 2)
        brick_id = (ys // course) * (size // length) + (xs + shift) % size // length
        shade = 1 + rng.uniform(-0.15, 0.15, brick_id.max() + 1).astype(np.float32)
        pattern = shade[brick_id] * (1 + 0.06 * _fractal(rng, size, range(5, 8)))
        mortar = (ys % course < 2) | ((xs + shift) % length < 2)
        pattern[mortar] = 1.35
    elif name == "twigs":
        pattern = _twigs(rng, size)
    else:
        raise ValueError(f"no procedural texture {name!r}")
    pattern = np.clip(pattern, 0.2, 2.0).astype(np.float32)
    pattern /= pattern.mean()
    pattern.setflags(write=False)
    return pattern


@dataclass(frozen=True)
class Atlas:
    """The detail maps stacked vertically, each followed by a copy of its first row.

    Horizontally a map wraps by itself (remap's BORDER_WRAP over the atlas width); vertically the texture
    coordinate is wrapped into its map's rows, and the extra row lets bilinear sampling wrap at the seam.
    Per material (256-entry tables for `cv2.LUT` on the material picture): texels per metre, the first
    atlas row of its map, and the detail's strength (0 for untextured materials).
    """

    image: np.ndarray
    texels: np.ndarray
    row: np.ndarray
    strength: np.ndarray


@lru_cache(maxsize=1)
def atlas() -> Atlas:
    # (the default maps first, in their order, then the variants': a map's rows never move)
    photos = _atlas_photos()
    maps = [detail_map(photo) for photo in photos]
    image = np.concatenate([np.concatenate([m, m[:1]]) for m in maps])
    texels = np.zeros(256, np.float32)
    row = np.zeros(256, np.float32)
    strength = np.zeros(256, np.float32)
    for mat, tex in {**TEXTURES, **FIXED_TEXTURES}.items():
        texels[mat] = _SIZE / 2 / tex.metres  # a map holds two mirrored copies of the photo across
        row[mat] = photos.index(tex.photo) * (_SIZE + 1)
        strength[mat] = tex.strength
    for table in (image, texels, row, strength):
        table.setflags(write=False)
    return Atlas(image, texels, row, strength)


def texture_tables(rng: np.random.Generator, variety: float) -> Atlas:
    """The atlas with per-frame tables: each material takes one of its `VARIANTS` with probability `variety`
    (else its default map), at 0.6-1.6 times its scale and 0.7-1.3 times its strength."""
    maps = atlas()
    texels, row, strength = maps.texels.copy(), maps.row.copy(), maps.strength.copy()
    photos = _atlas_photos()
    for mat, default in TEXTURES.items():
        options = VARIANTS.get(mat, [])
        pick, which, scale, gain = rng.random(4).tolist()
        tex = options[int(which * len(options))] if options and pick < variety else default
        texels[mat] = _SIZE / 2 / tex.metres / (0.6 + scale)
        row[mat] = photos.index(tex.photo) * (_SIZE + 1)
        strength[mat] = tex.strength * (0.7 + 0.6 * gain)
    return Atlas(maps.image, texels, row, strength)


@lru_cache(maxsize=1)
def _atlas_photos() -> list[str]:
    return list(dict.fromkeys([tex.photo for tex in TEXTURES.values()]
                              + [tex.photo for options in VARIANTS.values() for tex in options]
                              + [tex.photo for tex in FIXED_TEXTURES.values()]))


def texture_factor(material: np.ndarray, tex_u: np.ndarray, tex_v: np.ndarray, depth: np.ndarray,
                   strength: float = 1.0, tables: Atlas | None = None) -> np.ndarray:
    """(H, W) float32 factor that multiplies each pixel's colour by its material's detail map.

    Texture coordinates are in metres; detail fades out with distance (the factor is 1 from
    `FADE_DISTANCE` on, and on untextured materials).
    """
    maps = tables or atlas()
    scratch = cv2.LUT(material, maps.texels)  # texels per metre; then reused for each step's temporary
    map_x = tex_u * scratch
    map_y = tex_v * scratch
    # Whole map widths taken off (towards zero, which is exact: the remainder needs no more bits than the
    # coordinate) leave the wrapped sample as it was, but far fewer coordinates need remap's slow border path.
    np.multiply(map_x, np.float32(1 / _SIZE), out=scratch)
    np.trunc(scratch, out=scratch)
    scratch *= np.float32(_SIZE)
    map_x -= scratch
    map_y *= np.float32(1 / _SIZE)
    map_y -= np.floor(map_y, out=scratch)
    map_y *= np.float32(_SIZE)
    map_y += cv2.LUT(material, maps.row, dst=scratch)
    sample = cv2.remap(maps.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    # factor = 1 + (sample - 1) * material strength * fade, fade = 1 - depth / FADE_DISTANCE clipped to [0, 1]
    weight = np.minimum(depth, np.float32(FADE_DISTANCE))
    weight *= np.float32(-strength / FADE_DISTANCE)
    weight += np.float32(strength)
    weight *= cv2.LUT(material, maps.strength, dst=scratch)
    sample -= 1.0
    sample *= weight
    sample += 1.0
    return sample
