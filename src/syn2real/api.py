"""The Python API: `syn2real.load(source)` gives a `Predictor` that segments one image at a time.

    predictor = syn2real.load("runs/camvid_supervised")   # or a .safetensors checkpoint, or an exported .onnx
    mask = predictor.predict("street.png")                # (H, W) uint8 class ids in predictor.space

The model's input contract (float RGB in [0, 1]) is met here: images come in as uint8 RGB and are scaled once;
anything else (float arrays, grey or RGBA arrays, channels-first arrays) is refused with a `DataError` rather
than silently giving wrong masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from syn2real.errors import ConfigError, DataError
from syn2real.evaluate.inference import infer_logits, model_device
from syn2real.export import OnnxModel, open_model
from syn2real.labels import LabelSpace

ImageInput = str | Path | Image.Image | np.ndarray


def as_rgb(image: ImageInput) -> np.ndarray:
    """An image file path, PIL image or uint8 (H, W, 3) array as a uint8 (H, W, 3) RGB array."""
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as opened:
                return _pil_rgb(opened, str(image))
        except (OSError, ValueError, SyntaxError) as e:
            raise DataError(f"cannot read image {image}: {e}") from None
    if isinstance(image, Image.Image):
        return _pil_rgb(image, "PIL image")
    if isinstance(image, np.ndarray):
        return _check_array(image)
    raise DataError(f"predict takes an image path, a PIL image or a uint8 (H, W, 3) numpy array, "
                    f"got {type(image).__name__}")


def _pil_rgb(image: Image.Image, name: str) -> np.ndarray:
    # 16- and 32-bit modes would be clipped to 8 bits by convert("RGB"): their scale is the caller's to choose.
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        raise DataError(f"{name}: mode {image.mode} is not 8-bit; convert it to 8-bit RGB first")
    return _check_array(np.array(image.convert("RGB")))


def _check_array(image: np.ndarray) -> np.ndarray:
    shape = tuple(image.shape)
    if image.dtype.kind == "f":
        raise DataError(f"float image array ({image.dtype}) refused: pass uint8 RGB 0-255 (the model scales and "
                        "normalises itself); from floats in [0, 1]: (image * 255).round().astype(np.uint8)")
    if image.dtype != np.uint8:
        raise DataError(f"image array of dtype {image.dtype} refused: pass uint8 RGB (H, W, 3), values 0-255")
    if image.ndim == 3 and shape[0] == 3 and shape[2] != 3:
        raise DataError(f"image array of shape {shape} looks channels-first: pass (H, W, 3), "
                        "e.g. image.transpose(1, 2, 0)")
    if image.ndim != 3 or shape[2] != 3:
        raise DataError(f"image array of shape {shape} refused: pass one RGB image (H, W, 3) "
                        "(grey: np.stack([a] * 3, -1); RGBA: a[..., :3])")
    if 0 in shape:
        raise DataError(f"image array of shape {shape} is empty")
    return image


class Predictor:
    """A trained model for single images: `predict(image)` -> (H, W) uint8 class ids in `space`
    (`classes[i]` names id i, `palette[i]` is its RGB colour, `space.colorize(mask)` an RGB picture).

    `size` (H, W) resizes each image for inference (logits are resized back to the image); `mode`, `crop_size`
    and `stride` are `infer_logits`' whole-image or sliding-window inference."""

    def __init__(self, model: nn.Module, space: LabelSpace, *, size: tuple[int, int] | None = None,
                 mode: str = "whole", crop_size: tuple[int, int] = (512, 512), stride: tuple[int, int] = (341, 341)):
        self.model, self.space, self.size = model, space, size
        self.mode, self.crop_size, self.stride = mode, crop_size, stride

    @property
    def classes(self) -> tuple[str, ...]:
        return self.space.classes

    @property
    def palette(self) -> tuple[tuple[int, int, int], ...]:
        return self.space.palette

    def predict(self, image: ImageInput, probabilities: bool = False):
        """Class ids (H, W) uint8 for an image path, PIL image or uint8 (H, W, 3) RGB array; with
        `probabilities`, (ids, (C, H, W) float32 softmax probabilities)."""
        rgb = as_rgb(image)
        x = torch.tensor(rgb, device=model_device(self.model)).permute(2, 0, 1)[None].float().div_(255)
        if self.size is not None and tuple(x.shape[-2:]) != tuple(self.size):
            x = F.interpolate(x, size=tuple(self.size), mode="bilinear", align_corners=False, antialias=True)
        logits = infer_logits(self.model, x, mode=self.mode, crop_size=self.crop_size, stride=self.stride,
                              num_classes=self.space.num_classes)
        if logits.shape[-2:] != rgb.shape[:2]:
            logits = F.interpolate(logits, size=rgb.shape[:2], mode="bilinear", align_corners=False)
        mask = logits.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()
        if not probabilities:
            return mask
        return mask, logits.softmax(dim=1)[0].cpu().numpy()

    def __repr__(self) -> str:
        return f"Predictor({type(self.model).__name__}, {self.space.name}: {self.space.num_classes} classes)"


def load(source: str | Path, *, checkpoint: str | Path | None = None, device: str = "auto") -> Predictor:
    """A `Predictor` for a run folder (its last checkpoint, or `checkpoint`; inference as its `eval` section
    says), a `.safetensors` checkpoint (which carries its model config) or an ONNX file from `syn2real export`
    (run by onnxruntime). `device`: auto | cpu | cuda."""
    if Path(source).suffix == ".onnx":
        if checkpoint is not None:
            raise ConfigError(f"{source} is an exported model: a checkpoint is only chosen for a run folder")
        onnx_model = OnnxModel(source, device)
        return Predictor(onnx_model, onnx_model.space, size=onnx_model.input_size)
    loaded = open_model(source, checkpoint, device)
    if loaded.run_cfg is None:
        return Predictor(loaded.model, loaded.space)
    ev = loaded.run_cfg.eval
    return Predictor(loaded.model, loaded.space, mode=ev.mode, crop_size=ev.crop_size, stride=ev.stride)
