"""The Python API: `syn2real.load(...)` -> Predictor, the README's snippet as written, the input contract
(uint8 RGB in; floats, wrong shapes and dtypes refused) and weights files that carry their model config."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import syn2real
from syn2real.config import load_config
from syn2real.engine.checkpoint import (LABELS_KEY, MODEL_KEY, last_checkpoint, load_weights, model_config_of,
                                        model_metadata, save_checkpoint, weights_metadata)
from syn2real.errors import DataError, WeightsError
from syn2real.evaluate.inference import infer_logits
from syn2real.labels import CITYSCAPES19
from syn2real.run import train
from syn2real.synth import render_dataset

pytestmark = pytest.mark.usefixtures("one_thread")
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run trained for 2 steps on 4 SynStreets frames (64x128), and the frames' image folder."""
    root = tmp_path_factory.mktemp("api")
    render_dataset(root / "synstreets", n=4, size=(128, 64), style="synthetic", seed=0, workers=1, split="train",
                   progress=False)
    cfg = load_config("cpu_default", [
        f"out_dir={root}", "name=tiny", "model.pretrained=null", "model.head_channels=8",
        "model.channels_last=false", "data.source.kind=synstreets", f"data.source.root={root / 'synstreets'}",
        "data.crop_size=[64,128]", "data.batch_size=2", "data.workers=0", "train.iters=2",
        "train.checkpoint_every=2", "optim.warmup_iters=0"])
    return train(cfg, progress=False), root / "synstreets" / "images" / "train"


def frames(images: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(images.glob("*.png"))]


def test_readme_snippet_runs_as_written(tiny_run, tmp_path, monkeypatch):
    section = README.read_text().split("## Python API", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    run, images = tiny_run
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "camvid_supervised").symlink_to(run)
    Image.open(sorted(images.glob("*.png"))[0]).save(tmp_path / "street.png")
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    mask, probs = scope["mask"], scope["probs"]
    assert mask.shape == (64, 128) and mask.dtype == np.uint8
    assert probs.shape == (19, 64, 128) and probs.dtype == np.float32
    with Image.open(tmp_path / "street_mask.png") as coloured:
        assert coloured.size == (128, 64) and coloured.mode == "RGB"


def test_path_pil_and_uint8_array_give_the_model_s_prediction(tiny_run):
    run, images = tiny_run
    predictor = syn2real.load(run, device="cpu")
    assert predictor.space is CITYSCAPES19
    assert predictor.classes == CITYSCAPES19.classes and predictor.palette == CITYSCAPES19.palette
    path = sorted(images.glob("*.png"))[0]
    rgb = np.asarray(Image.open(path).convert("RGB"))
    # The contract: uint8 scaled to [0, 1] once, exactly what the trainer and evaluator feed the model.
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
    expected = infer_logits(predictor.model, x)
    mask, probs = predictor.predict(rgb, probabilities=True)
    np.testing.assert_array_equal(mask, expected.argmax(1)[0].numpy())
    np.testing.assert_allclose(probs, expected.softmax(1)[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(predictor.predict(path), mask)
    np.testing.assert_array_equal(predictor.predict(str(path)), mask)
    np.testing.assert_array_equal(predictor.predict(Image.open(path)), mask)
    np.testing.assert_array_equal(predictor.predict(Image.open(path).convert("RGBA")), mask)


@pytest.mark.parametrize("image, message", [
    (np.zeros((64, 128, 3), np.float32), "float image array"),
    (np.zeros((64, 128, 3), np.float64) + 0.5, "float image array"),
    (np.zeros((64, 128, 3), np.uint16), "dtype uint16"),
    (np.zeros((64, 128, 3), np.int64), "dtype int64"),
    (np.zeros((3, 64, 128), np.uint8), "channels-first"),
    (np.zeros((64, 128), np.uint8), "shape (64, 128) refused"),
    (np.zeros((64, 128, 4), np.uint8), "shape (64, 128, 4) refused"),
    (np.zeros((2, 64, 128, 3), np.uint8), "shape (2, 64, 128, 3) refused"),
    (np.zeros((0, 128, 3), np.uint8), "is empty"),
    (torch.zeros(64, 128, 3, dtype=torch.uint8), "got Tensor"),
    (Image.fromarray(np.zeros((64, 128), np.uint16)), "not 8-bit"),
    ("no/such/image.png", "cannot read image no/such/image.png"),
])
def test_inputs_outside_the_contract_are_refused(tiny_run, image, message):
    predictor = syn2real.load(tiny_run[0], device="cpu")
    with pytest.raises(DataError, match=re.escape(message)) as error:
        predictor.predict(image)
    assert "\n" not in str(error.value)


def test_a_safetensors_checkpoint_alone_rebuilds_the_model(tiny_run, tmp_path):
    run, images = tiny_run
    cfg = load_config(run / "config.yaml")
    save_checkpoint(tmp_path, 2, load_weights(run), {}, metadata=model_metadata(cfg.model, CITYSCAPES19.name))
    weights = last_checkpoint(tmp_path)["weights"]
    metadata = weights_metadata(weights)
    assert metadata["step"] == "2" and metadata[LABELS_KEY] == "cityscapes19" and MODEL_KEY in metadata
    assert model_config_of(weights) == (cfg.model, "cityscapes19")

    from_run, from_file = syn2real.load(run, device="cpu"), syn2real.load(weights, device="cpu")
    assert from_file.space is CITYSCAPES19
    for rgb in frames(images):
        np.testing.assert_array_equal(from_file.predict(rgb), from_run.predict(rgb))


def test_a_trained_run_s_last_checkpoint_loads_on_its_own(tiny_run, tmp_path):
    """The trainer writes the model config into every checkpoint, so the weights file can leave the run."""
    run, images = tiny_run
    alone = tmp_path / "model.safetensors"
    alone.write_bytes(last_checkpoint(run / "checkpoints")["weights"].read_bytes())
    from_run, from_file = syn2real.load(run, device="cpu"), syn2real.load(alone, device="cpu")
    for rgb in frames(images):
        np.testing.assert_array_equal(from_file.predict(rgb), from_run.predict(rgb))


def test_weights_without_model_metadata_still_load_from_their_run_only(tiny_run, tmp_path):
    run, _ = tiny_run
    save_checkpoint(tmp_path, 1, load_weights(run), {})  # as checkpoints were written before the metadata
    old = last_checkpoint(tmp_path)["weights"]
    assert weights_metadata(old) == {"step": "1"}
    assert load_weights(old).keys() == load_weights(run).keys()
    syn2real.load(run, checkpoint=old, device="cpu")
    with pytest.raises(WeightsError, match=re.escape(f"{old}: no model config in its metadata")):
        syn2real.load(old)
    with pytest.raises(WeightsError, match="expected a run folder or a .safetensors file"):
        syn2real.load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("model, labels, message", [
    ("[1, 2]", "cityscapes19", "unreadable syn2real.model metadata (expected a JSON object, got [1, 2])"),
    ('{"heads": "aspp"}', "cityscapes19", "unreadable syn2real.model metadata (syn2real.model: unknown key(s)"),
    ("{}", "kitti7", "unknown label space 'kitti7'"),
    ('{"num_classes": 11}', "cityscapes19", "label space cityscapes19 has 19 classes but the model 11"),
])
def test_bad_model_metadata_is_one_line_naming_the_file(tiny_run, tmp_path, model, labels, message):
    save_checkpoint(tmp_path, 1, load_weights(tiny_run[0]), {}, metadata={MODEL_KEY: model, LABELS_KEY: labels})
    weights = last_checkpoint(tmp_path)["weights"]
    with pytest.raises(WeightsError, match=re.escape(f"{weights}: ")) as error:
        syn2real.load(weights)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_import_syn2real_does_not_import_torch():
    code = "import sys, syn2real; assert 'torch' not in sys.modules, 'torch imported'; print(syn2real.load.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "load"
