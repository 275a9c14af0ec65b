"""The contract every registered method keeps (syn2real.methods.base), checked over the registry and the CPU
presets' option sets, on a tiny random-init Segmentor and 32x64 crops:

- a step gives finite losses and back-propagates something;
- with a plain UDA target batch it reads the target's image only (never a label);
- under active labelling it learns the target batch's sparse labels;
- its extra state (teacher, discriminators, thresholds) survives state_dict / load_state_dict.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from syn2real.config import load_config
from syn2real.labels import IGNORE
from syn2real.methods import METHODS, build_method
from syn2real.methods.losses import sparse_cross_entropy
from syn2real.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["model.pretrained=null", "model.head_channels=16", "model.channels_last=false", "model.dropout=0.0"]
#: Every registered method with its defaults, and the CPU presets' option sets (DACS, IAST, DAFormer, MIC...).
CASES = [(name, None) for name in METHODS] + [
    (None, preset) for preset in ("dacs_cpu", "iast_cpu", "daformer_cpu", "mic_cpu", "fda_cpu", "adaptsegnet_cpu",
                                  "advent_cpu", "minent_cpu")]
IDS = [name or preset for name, preset in CASES]


def _method(name: str | None, preset: str | None, seed: int = 0):
    if preset is not None:
        preset_cfg = load_config(preset)
        overrides = [f"method.name={preset_cfg.method.name}"]
    else:
        overrides = [f"method.name={name}"]
    cfg = load_config(None, [*overrides, *TINY])
    if preset is not None:
        # The CPU presets' discriminators look at the head's resolution; a 32x64 crop needs the input's.
        cfg.method.params = {**preset_cfg.method.params,
                             **({"full_resolution": True} if "full_resolution" in preset_cfg.method.params else {})}
    torch.manual_seed(seed)
    return build_method(cfg, build_model(cfg.model).train())


class RecordingBatch(dict):
    """A batch that records which keys were read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def _batches(labelled_share: float = 0.0, seed: int = 0) -> tuple[dict, RecordingBatch]:
    g = torch.Generator().manual_seed(seed)
    classes = torch.tensor([0, 2, 8, 10, 11, 13])
    src = {"image": torch.rand(2, 3, 32, 64, generator=g),
           "mask": classes[torch.randint(0, len(classes), (2, 32, 64), generator=g)]}
    tgt = RecordingBatch(image=torch.rand(2, 3, 32, 64, generator=g))
    if labelled_share:
        # One class the source never shows (bicycle), so what the labels teach is unmistakable.
        keep = torch.rand(2, 32, 64, generator=g) < labelled_share
        tgt["mask"] = torch.where(keep, 18, IGNORE)
    return src, tgt


def _step(method, src, tgt, seed: int = 0) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """One train_step from zero gradients with a fixed random stream; the losses and the model's gradients."""
    method.model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    losses = method.train_step(src, tgt, step=0)
    grads = {n: p.grad.clone() for n, p in method.model.named_parameters() if p.grad is not None}
    return losses, grads


@pytest.mark.parametrize("name,preset", CASES, ids=IDS)
def test_finite_losses_and_the_target_image_only(name, preset):
    method = _method(name, preset)
    src, tgt = _batches()
    losses, grads = _step(method, src, tgt)
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
    assert tgt.read <= {"image"}, f"a UDA step read {sorted(tgt.read - {'image'})} of the target batch"


@pytest.mark.parametrize("name,preset", CASES, ids=IDS)
def test_learns_sparse_target_labels(name, preset):
    """The labels move the step's gradient of the output layer (the parameters with one row per class) the way
    that lowers the cross-entropy on the labelled target pixels: (grad with labels - grad without) · ∇CE > 0.
    Same method state and random stream for both steps. Deeper layers are left out: on noise images, strong
    augmentation (self-training trains on a blurred, jittered mix) turns their gradients every which way."""
    method = _method(name, preset)
    src, labelled = _batches(labelled_share=0.1)
    images_only = RecordingBatch(image=labelled["image"])
    without = copy.deepcopy(method)
    _, with_labels = _step(method, src, labelled)
    _, without_labels = _step(without, src, images_only)
    assert "mask" in labelled.read, f"{name or preset} never reads the target batch's sparse labels"

    model = copy.deepcopy(method.model)
    model.zero_grad(set_to_none=True)
    sparse_cross_entropy(model(labelled["image"]), labelled["mask"]).backward()
    num_classes = model.num_classes
    output_layer = [n for n, p in model.named_parameters() if p.grad is not None and p.shape[0] == num_classes]
    assert output_layer
    params = dict(model.named_parameters())
    dot = sum((with_labels[n] - without_labels[n]).mul(params[n].grad).sum() for n in output_layer)
    assert dot > 0, f"{name or preset} ignores the target batch's sparse labels (change · ∇CE = {float(dot):.3g})"


@pytest.mark.parametrize("name,preset", CASES, ids=IDS)
def test_state_round_trips(name, preset):
    trained = _method(name, preset)
    src, tgt = _batches()
    _step(trained, src, tgt)
    trained.after_step(0)
    fresh = _method(name, preset, seed=1)
    fresh.load_state_dict(copy.deepcopy(trained.state_dict()))
    _assert_same_state(fresh.state_dict(), trained.state_dict())


def _assert_same_state(a, b, where: str = "state") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where
