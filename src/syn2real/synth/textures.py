"""Surface detail for the `photo` style: real texture photographs bundled with scikit-image.

Each photo becomes a seamless, mean-one detail map (high-passed so its own lighting does not show, mirrored
so it tiles without seams) that multiplies a surface's colour, sampled in world metres so it shrinks with
distance like a real surface. All maps sit in one atlas, so a frame's textures take a single remap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

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
}


@lru_cache(maxsize=None)
def detail_map(photo: str, size: int = _SIZE) -> np.ndarray:
    """(size, size) float32 seamless detail with mean 1 from a grayscale scikit-image photo.

    Small on purpose: sampling far surfaces jumps across the map, and a map that fits the cache samples fast.
    """
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
    photos = list(dict.fromkeys(tex.photo for tex in TEXTURES.values()))
    maps = [detail_map(photo) for photo in photos]
    image = np.concatenate([np.concatenate([m, m[:1]]) for m in maps])
    texels = np.zeros(256, np.float32)
    row = np.zeros(256, np.float32)
    strength = np.zeros(256, np.float32)
    for mat, tex in TEXTURES.items():
        texels[mat] = _SIZE / 2 / tex.metres  # a map holds two mirrored copies of the photo across
        row[mat] = photos.index(tex.photo) * (_SIZE + 1)
        strength[mat] = tex.strength
    for table in (image, texels, row, strength):
        table.setflags(write=False)
    return Atlas(image, texels, row, strength)


def texture_factor(material: np.ndarray, tex_u: np.ndarray, tex_v: np.ndarray, depth: np.ndarray,
                   strength: float = 1.0) -> np.ndarray:
    """(H, W) float32 factor that multiplies each pixel's colour by its material's detail map.

    Texture coordinates are in metres; detail fades out with distance (the factor is 1 from
    `FADE_DISTANCE` on, and on untextured materials).
    """
    maps = atlas()
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
