"""Export to ONNX and TorchScript: the files run in onnxruntime / torch.jit with PyTorch's outputs on rendered
SynStreets frames (at the traced size and others), carry the label space and input contract as metadata, and
serve `syn2real predict --backend onnxruntime` and `syn2real.load(...onnx)`."""

import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import syn2real
from syn2real.cli import app
from syn2real.config import load_config, to_dict
from syn2real.engine.checkpoint import last_checkpoint, load_weights, model_metadata, save_checkpoint
from syn2real.engine.runs import load_run
from syn2real.errors import ConfigError, WeightsError
from syn2real.export import METADATA_KEYS, OnnxModel, export_model, export_onnx
from syn2real.labels import CITYSCAPES19
from syn2real.run import train
from syn2real.synth import render_dataset

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run trained for 4 steps on SynStreets frames (64x128), and photo-style frames at two other sizes."""
    root = tmp_path_factory.mktemp("export")
    data = root / "synstreets"
    render_dataset(data, n=4, size=(128, 64), style="synthetic", seed=0, workers=1, split="train", progress=False)
    render_dataset(data, n=2, size=(128, 64), style="photo", seed=1, workers=1, split="val", progress=False)
    render_dataset(data, n=2, size=(160, 96), style="photo", seed=2, workers=1, split="big", progress=False)
    cfg = load_config("cpu_default", [
        f"out_dir={root}", "name=tiny", "model.pretrained=null", "model.head_channels=8",
        "model.channels_last=false", "data.source.kind=synstreets", f"data.source.root={data}",
        "data.crop_size=[64,128]", "data.batch_size=2", "data.workers=0", "train.iters=4",
        "train.checkpoint_every=4", "optim.warmup_iters=0", "optim.lr=0.01"])
    return train(cfg, progress=False), data / "images"


def batch(folder: Path) -> torch.Tensor:
    """The folder's frames as float [0, 1] (N, 3, H, W), as the exported graph takes them."""
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def test_onnx_matches_pytorch_at_any_size_and_says_what_it_is(tiny_run):
    run, images = tiny_run
    path = export_model(run, "onnx")
    assert path == run / "export" / "model.onnx"
    cfg, model = load_run(run, device="cpu")

    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert set(meta) == set(METADATA_KEYS)
    assert meta["syn2real.labels"] == "cityscapes19"
    assert json.loads(meta["syn2real.classes"]) == list(CITYSCAPES19.classes)
    assert json.loads(meta["syn2real.palette"]) == [list(c) for c in CITYSCAPES19.palette]
    assert json.loads(meta["syn2real.mean"]) == pytest.approx(model.mean.flatten().tolist())
    assert json.loads(meta["syn2real.std"]) == pytest.approx(model.std.flatten().tolist())
    assert json.loads(meta["syn2real.model"]) == to_dict(cfg.model)
    assert meta["syn2real.input_size"] == "dynamic"
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for split in ("val", "big", "train"):  # 64x128 photo, 96x160 (not the traced size), the training frames
        x = batch(images / split)
        with torch.no_grad():
            expected = model(x).numpy()
        logits = session.run(None, {"image": x.numpy()})[0]
        assert logits.shape == expected.shape
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
        assert (logits.argmax(1) == expected.argmax(1)).mean() >= 0.999


def test_fixed_size_export_resizes_inputs_to_its_size(tiny_run, tmp_path):
    run, images = tiny_run
    path = export_model(run, "onnx", tmp_path / "fixed.onnx", size=(48, 96))
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 48, 96]
    onnx_predictor = syn2real.load(path)
    assert onnx_predictor.size == (48, 96) and onnx_predictor.space == CITYSCAPES19
    torch_predictor = syn2real.load(run, device="cpu")
    torch_predictor.size = (48, 96)
    for frame in sorted((images / "big").glob("*.png")):
        mask = onnx_predictor.predict(frame)
        assert mask.shape == (96, 160)
        assert (mask == torch_predictor.predict(frame)).mean() >= 0.999


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_carries_the_metadata_and_the_model(tiny_run, tmp_path):
    run, images = tiny_run
    path = export_model(run, "torchscript", tmp_path / "model.pt")
    extra = {key: "" for key in METADATA_KEYS}
    scripted = torch.jit.load(str(path), _extra_files=extra)
    assert extra["syn2real.labels"] == b"cityscapes19"  # extra files come back as bytes
    assert json.loads(extra["syn2real.classes"]) == list(CITYSCAPES19.classes)
    _, model = load_run(run, device="cpu")
    x = batch(images / "big")
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


def test_cli_exports_and_predicts_with_onnxruntime_as_with_torch(tiny_run, tmp_path):
    run, images = tiny_run
    onnx_file = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", str(run), "--format", "onnx", "--out", str(onnx_file)])
    assert result.exit_code == 0, result.output
    assert f"wrote {onnx_file}" in result.output.replace("\n", "")
    for args, out in (([str(onnx_file), "--backend", "onnxruntime"], "ort"), ([str(run)], "torch")):
        result = runner.invoke(app, ["predict", *args, str(images / "val"), "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "ort").glob("*.png"))
    assert names == ["000000.png", "000001.png"]
    for name in names:
        ort_mask, torch_mask = (np.asarray(Image.open(tmp_path / out / name)) for out in ("ort", "torch"))
        assert (ort_mask == torch_mask).mean() >= 0.999


@pytest.mark.parametrize("args, error, message", [
    (["export", "{run}", "--format", "tflite"], ConfigError, "unknown export format 'tflite'; use onnx or torchscript"),
    (["predict", "{onnx}", "{images}", "--backend", "onnxruntime", "--checkpoint", "x.safetensors"], ConfigError,
     "--checkpoint picks a run folder's weights"),
    (["predict", "{run}", "{images}", "--backend", "tensorrt"], ConfigError, "--backend must be torch or onnxruntime"),
    (["predict", "{onnx}", "{images}", "--backend", "onnxruntime", "--size", "64x32"], ConfigError,
     "was exported for 96x48 inputs; --size 64x32 does not fit it"),
    (["predict", "{run}/config.yaml", "{images}", "--backend", "onnxruntime"], WeightsError,
     "not a loadable ONNX file"),
])
def test_cli_errors_name_the_problem(tiny_run, tmp_path, args, error, message):
    run, images = tiny_run
    onnx_file = export_model(run, "onnx", tmp_path / "fixed.onnx", size=(48, 96))
    args = [a.format(run=run, onnx=onnx_file, images=images / "val") for a in args]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, error), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)


def test_a_safetensors_file_exports_beside_itself(tiny_run, tmp_path):
    run, images = tiny_run
    cfg = load_config(run / "config.yaml")
    save_checkpoint(tmp_path, 4, load_weights(run), {}, metadata=model_metadata(cfg.model, "cityscapes19"))
    weights = last_checkpoint(tmp_path)["weights"]
    path = export_model(weights, "onnx")
    assert path == weights.with_suffix(".onnx")
    frame = sorted((images / "val").glob("*.png"))[0]
    assert (syn2real.load(path).predict(frame) == syn2real.load(run, device="cpu").predict(frame)).mean() >= 0.999
    for source in (path, weights):
        with pytest.raises(ConfigError, match="a checkpoint is only chosen for a run folder"):
            syn2real.load(source, checkpoint=weights)


def test_an_onnx_file_without_syn2real_metadata_is_refused(tiny_run, tmp_path):
    _, model = load_run(tiny_run[0], device="cpu")
    path = export_onnx(model, tmp_path / "bare.onnx")
    with pytest.raises(WeightsError, match=re.escape(f"{path}: metadata syn2real.labels, syn2real.classes")):
        OnnxModel(path)
