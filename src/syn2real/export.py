"""Models outside the training stack: open a trained model from a run folder or a bare `.safetensors` file,
export it to ONNX or TorchScript with its label space and input contract as metadata, and run an exported ONNX
file with onnxruntime behind the `Segmentor` calling convention.

Every exported graph is `Segmentor.forward`: float32 RGB images (N, 3, H, W) in [0, 1] (uint8 / 255) in,
float32 logits (N, C, H, W) at the input size out; the backbone's mean/std normalisation is inside the graph
(recorded in the metadata for reference, not to be applied again).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from syn2real.config import Config, ModelConfig, to_dict
from syn2real.engine.checkpoint import LABELS_KEY, MODEL_KEY, load_weights, model_config_of
from syn2real.engine.runs import load_run, model_space, resolve_device
from syn2real.errors import ConfigError, WeightsError
from syn2real.evaluate.predict import predict_folder
from syn2real.io import atomic_path
from syn2real.labels import LabelSpace, get_space

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
#: Opset 17 has every op the heads use (Resize, GlobalAveragePool, LayerNormalization) and runs on
#: onnxruntime releases of the last years.
OPSET = 17
#: The example input traced when no --size fixes one; batch and spatial axes stay dynamic.
TRACE_SIZE = (256, 512)
CLASSES_KEY, PALETTE_KEY = "syn2real.classes", "syn2real.palette"
MEAN_KEY, STD_KEY = "syn2real.mean", "syn2real.std"
SIZE_KEY = "syn2real.input_size"
INPUT_KEY, OUTPUT_KEY, VERSION_KEY = "syn2real.input", "syn2real.output", "syn2real.version"
METADATA_KEYS = (VERSION_KEY, INPUT_KEY, OUTPUT_KEY, MEAN_KEY, STD_KEY, SIZE_KEY, LABELS_KEY, CLASSES_KEY,
                 PALETTE_KEY, MODEL_KEY)


@dataclass
class LoadedModel:
    model: nn.Module          # eval mode, on the requested device
    space: LabelSpace         # the label space it predicts in
    model_cfg: ModelConfig
    run_cfg: Config | None    # the run's resolved config when opened from a run folder


def open_model(source: str | Path, checkpoint: str | Path | None = None, device: str = "auto") -> LoadedModel:
    """A run folder (its last checkpoint, or `checkpoint`) or a `.safetensors` file whose metadata holds its
    model config (checkpoints written since the metadata was added)."""
    path = Path(source)
    if path.is_dir():
        cfg, model = load_run(path, checkpoint, device)
        return LoadedModel(model, model_space(cfg), cfg.model, cfg)
    if not path.is_file():
        raise WeightsError(f"{path}: not found (expected a run folder or a .safetensors file)")
    if path.suffix != ".safetensors":
        raise WeightsError(f"{path}: expected a run folder or a .safetensors file")
    if checkpoint is not None:
        raise ConfigError(f"{path} is a weights file already: a checkpoint is only chosen for a run folder")
    model_cfg, labels = model_config_of(path)
    try:
        space = get_space(labels)
    except ConfigError as e:
        raise WeightsError(f"{path}: {e}") from None
    if space.num_classes != model_cfg.num_classes:
        raise WeightsError(f"{path}: label space {labels} has {space.num_classes} classes but the model "
                           f"{model_cfg.num_classes}")
    from syn2real.models import build_model

    # The file holds every weight: skip reading or downloading the backbone's initial weights.
    model = build_model(dataclasses.replace(model_cfg, pretrained=None))
    try:
        model.load_state_dict(load_weights(path))
    except RuntimeError as e:
        raise WeightsError(f"{path}: weights do not fit the model config in its metadata "
                           f"({str(e).splitlines()[0]})") from None
    return LoadedModel(model.to(resolve_device(device)).eval(), space, model_cfg, None)


def export_metadata(loaded: LoadedModel, size: tuple[int, int] | None) -> dict[str, str]:
    """String key/values describing an exported model: ONNX metadata_props, TorchScript extra files."""
    space, model = loaded.space, loaded.model
    return {
        VERSION_KEY: version("syn2real"),  # not syn2real.__version__: the root package sits above the layers
        INPUT_KEY: "image: float32 RGB (N, 3, H, W) in [0, 1], i.e. uint8 / 255; the graph normalises with "
                   f"{MEAN_KEY} / {STD_KEY} itself",
        OUTPUT_KEY: "logits: float32 (N, C, H, W) at the input size; argmax over C is the class id in "
                    f"{CLASSES_KEY}",
        MEAN_KEY: json.dumps(model.mean.flatten().tolist()),
        STD_KEY: json.dumps(model.std.flatten().tolist()),
        SIZE_KEY: json.dumps(list(size)) if size else "dynamic",
        LABELS_KEY: space.name,
        CLASSES_KEY: json.dumps(list(space.classes)),
        PALETTE_KEY: json.dumps([list(c) for c in space.palette]),
        MODEL_KEY: json.dumps(to_dict(loaded.model_cfg), sort_keys=True),
    }


def _require(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"this needs the {package} package: pip install {package}") from None


def export_onnx(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None,
                size: tuple[int, int] | None = None) -> Path:
    """Write `model` to an ONNX file: batch axis dynamic, spatial axes too unless `size` (H, W) fixes them."""
    onnx = _require("onnx", "onnx")
    example = torch.rand(1, 3, *(size or TRACE_SIZE), generator=torch.Generator().manual_seed(0))
    axes = {0: "batch"} if size else {0: "batch", 2: "height", 3: "width"}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The TorchScript-based exporter says it is deprecated; the dynamo one needs onnxscript, which we skip.
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        torch.onnx.export(model.eval(), (example,), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": axes})
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, metadata or {})
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return Path(path)


def export_torchscript(model: nn.Module, path: str | Path, metadata: dict[str, str],
                       size: tuple[int, int] | None = None) -> Path:
    """Write `model` traced to TorchScript, `metadata` as extra files (read back with
    `torch.jit.load(path, _extra_files={key: "" for key in METADATA_KEYS})`, values as bytes)."""
    example = torch.rand(1, 3, *(size or TRACE_SIZE), generator=torch.Generator().manual_seed(0))
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        traced = torch.jit.trace(model.eval(), example)
        torch.jit.save(traced, str(tmp), _extra_files=metadata)
    return Path(path)


def export_model(source: str | Path, fmt: str = "onnx", out: str | Path | None = None,
                 size: tuple[int, int] | None = None, checkpoint: str | Path | None = None) -> Path:
    """Export a run folder's model (or a `.safetensors` file's) to `fmt` (onnx | torchscript); `size` (H, W)
    fixes the input size. Writes `out`, by default RUN_DIR/export/model.onnx|.pt or the weights file's name
    with the format's suffix; returns the path."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use {' or '.join(FORMATS)}")
    loaded = open_model(source, checkpoint, device="cpu")
    if out is None:
        source = Path(source)
        out = (source / "export" / "model" if source.is_dir() else source).with_suffix(FORMATS[fmt])
    metadata = export_metadata(loaded, size)
    if fmt == "onnx":
        return export_onnx(loaded.model, out, metadata, size)
    return export_torchscript(loaded.model, out, metadata, size)


class OnnxModel(nn.Module):
    """An ONNX file from `export_model` behind the `Segmentor` calling convention (float [0, 1] NCHW in, logits
    out) and run by onnxruntime, so `infer_logits`, `predict_folder` and the API's `Predictor` use it as is.
    `space` is rebuilt from the file's metadata; `input_size` (H, W) is set when the export fixed it."""

    def __init__(self, path: str | Path, device: str = "auto"):
        super().__init__()
        ort = _require("onnxruntime", "onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"{path}: ONNX file not found")
        cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        if device.startswith("cuda") and not cuda:
            raise ConfigError(f"device {device!r}: this onnxruntime has no CUDA provider; use --device cpu")
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") or (device == "auto" and cuda):
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as e:  # onnxruntime's errors share no base class beyond Exception
            raise WeightsError(f"{path}: not a loadable ONNX file ({str(e).splitlines()[0]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = [k for k in (LABELS_KEY, CLASSES_KEY, PALETTE_KEY, SIZE_KEY) if k not in meta]
        if missing:
            raise WeightsError(f"{path}: metadata {', '.join(missing)} missing; export it with `syn2real export`")
        self.metadata = dict(meta)
        self.space = LabelSpace(meta[LABELS_KEY], tuple(json.loads(meta[CLASSES_KEY])),
                                tuple(tuple(c) for c in json.loads(meta[PALETTE_KEY])))
        self.input_size = None if meta[SIZE_KEY] == "dynamic" else tuple(json.loads(meta[SIZE_KEY]))
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.session.run(None, {self.input_name: x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(logits)


def predict_onnx(path: str | Path, images: Path, out_dir: Path, size: tuple[int, int] | None = None,
                 overlay: bool = False, device: str = "auto", progress: bool = False) -> list[Path]:
    """`predict_run` for an exported ONNX file: palette PNG masks (and overlays) for a folder of images, run by
    onnxruntime; a file exported at a fixed size gets its inputs resized to it."""
    model = OnnxModel(path, device)
    if size is not None and model.input_size is not None and tuple(size) != model.input_size:
        raise ConfigError(f"{path} was exported for {_wxh(model.input_size)} inputs; --size {_wxh(size)} "
                          "does not fit it")
    return predict_folder(model, images, out_dir, model.space, size=size or model.input_size, overlay=overlay,
                          progress=progress)


def _wxh(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"
