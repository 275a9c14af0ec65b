"""Predict a folder of images (or one image): a palette PNG mask per image and, optionally, a colour overlay JPEG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from syn2real.io import atomic_path
from syn2real.errors import ConfigError, DataError
from syn2real.evaluate.inference import eval_mode, infer_logits, model_device
from syn2real.labels import LabelSpace

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def find_images(in_dir: str | Path, recursive: bool = False) -> list[Path]:
    """Image files (png/jpg/jpeg/bmp, any case) in `in_dir`, sorted; with `recursive`, in subfolders too."""
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        raise DataError(f"input folder or image not found: {in_dir}")
    candidates = in_dir.rglob("*") if recursive else in_dir.iterdir()
    return sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _output_paths(path: Path, in_dir: Path, out_dir: Path) -> tuple[Path, Path]:
    """Mask PNG and overlay JPEG paths for an input, mirroring its place under `in_dir`."""
    relative = path.relative_to(in_dir)
    return out_dir / relative.with_suffix(".png"), out_dir / relative.with_name(f"{path.stem}_overlay.jpg")


def _check_inputs(images: list[Path], in_dir: Path, out_dir: Path) -> None:
    # Fail before any inference: files PIL cannot even identify, inputs that would write the same mask,
    # and outputs that would overwrite an input (out_dir == in_dir with PNG inputs).
    unreadable = []
    for path in images:
        try:
            with Image.open(path):
                pass
        except (OSError, ValueError, SyntaxError):
            unreadable.append(str(path))
    if unreadable:
        raise DataError(f"{len(unreadable)} unreadable image(s): {', '.join(unreadable)}")
    inputs = {p.resolve() for p in images}
    by_output: dict[Path, Path] = {}
    for path in images:
        mask_path = _output_paths(path, in_dir, out_dir)[0]
        if mask_path in by_output:
            raise DataError(f"{by_output[mask_path]} and {path} would both be written as {mask_path}; rename one")
        if mask_path.resolve() in inputs:
            raise DataError(f"writing {mask_path} would overwrite an input image; choose another output folder")
        by_output[mask_path] = path


def _load_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))  # a writable copy, as torch.from_numpy expects
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None


def _write_palette_png(mask: np.ndarray, space: LabelSpace, path: Path) -> None:
    image = Image.fromarray(mask)
    image.putpalette(space.palette_array().tobytes())  # turns the "L" image into "P" with our palette
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def _write_overlay(rgb: np.ndarray, mask: np.ndarray, space: LabelSpace, alpha: float, path: Path) -> None:
    blend = (1.0 - alpha) * rgb.astype(np.float32) + alpha * space.colorize(mask).astype(np.float32)
    with atomic_path(path) as tmp:
        Image.fromarray(np.rint(blend).astype(np.uint8)).save(tmp, format="JPEG", quality=90)


def predict_folder(model: nn.Module, images: str | Path, out_dir: str | Path, space: LabelSpace,
                   size: tuple[int, int] | None = None, mode: str = "whole",
                   crop_size: tuple[int, int] = (512, 512), stride: tuple[int, int] = (341, 341),
                   overlay: bool = False, alpha: float = 0.5, recursive: bool = False, progress: bool = True,
                   device: str | torch.device | None = None, precision: str = "fp32") -> list[Path]:
    """Segment every image in the folder `images` (or the one image file `images`); returns the written paths.

    Each image gives `<stem>.png` (palette PNG in `space`, at the image's own size) and, with `overlay`,
    `<stem>_overlay.jpg` (image blended with the colour mask, `alpha` = mask weight). `size` (H, W) resizes
    the input for inference only; logits are resized back to the image size. With `recursive`, subfolders
    are mirrored under `out_dir`. An empty folder or an unreadable image is a `DataError` naming the file(s).
    """
    out_dir = Path(out_dir)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"overlay alpha must be in [0, 1], got {alpha}")
    if Path(images).is_file():
        in_dir, images = Path(images).parent, [Path(images)]
        if images[0].suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{images[0]}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
    else:
        in_dir = Path(images)
        images = find_images(in_dir, recursive)
    if recursive:  # a previous run's outputs inside the input folder are not inputs
        images = [p for p in images if not p.resolve().is_relative_to(out_dir.resolve())]
    if not images:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {in_dir}")
    _check_inputs(images, in_dir, out_dir)
    device = torch.device(device) if device is not None else model_device(model)
    written: list[Path] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with eval_mode(model), Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("predict", total=len(images))
        for path in images:
            rgb = _load_rgb(path)
            x = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device).float().div_(255)
            if size is not None:
                x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
            logits = infer_logits(model, x, mode=mode, crop_size=crop_size, stride=stride,
                                  num_classes=space.num_classes, precision=precision)
            if logits.shape[-2:] != rgb.shape[:2]:
                logits = F.interpolate(logits, size=rgb.shape[:2], mode="bilinear", align_corners=False)
            mask = logits.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()
            mask_path, overlay_path = _output_paths(path, in_dir, out_dir)
            _write_palette_png(mask, space, mask_path)
            written.append(mask_path)
            if overlay:
                _write_overlay(rgb, mask, space, alpha, overlay_path)
                written.append(overlay_path)
            bar.advance(task)
    return written
