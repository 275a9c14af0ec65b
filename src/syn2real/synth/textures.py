"""Surface detail for the `photo` style: real texture photographs bundled with scikit-image.

Each photo becomes a seamless, mean-one detail map (high-passed so its own lighting does not show, mirrored
so it tiles without seams) that multiplies a surface's colour, sampled in world metres so it shrinks with
distance like a real surface.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from skimage import data as skdata

from syn2real.synth.scene import Material


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
def detail_map(photo: str, size: int = 256) -> np.ndarray:
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


def apply_textures(colour: np.ndarray, material: np.ndarray, tex_u: np.ndarray, tex_v: np.ndarray,
                   depth: np.ndarray, strength: float = 1.0) -> None:
    """Multiply `colour` in place by each material's detail map at texture coordinates in metres.

    Detail fades out with distance, where it would only alias.
    """
    fade = np.clip(1.0 - depth / 50.0, 0.0, 1.0)
    for mat, tex in TEXTURES.items():
        region = material == mat
        rows = np.flatnonzero(region.any(axis=1))
        if len(rows) == 0:
            continue
        cols = np.flatnonzero(region.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        region = region[y0:y1, x0:x1]
        detail = detail_map(tex.photo)
        size = detail.shape[0]
        texels = size / 2 / tex.metres  # the map holds two mirrored copies of the photo across
        map_x = tex_u[y0:y1, x0:x1] * np.float32(texels)
        map_y = tex_v[y0:y1, x0:x1] * np.float32(texels)
        sample = cv2.remap(detail, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        factor = 1.0 + (sample - 1.0) * (tex.strength * strength * fade[y0:y1, x0:x1])
        view = colour[y0:y1, x0:x1]
        np.multiply(view, factor[..., None], out=view, where=region[..., None])
