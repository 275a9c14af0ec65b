"""FDA: the Fourier amplitude swap (checked on the spectra), its entropy term, MBT, and runs through the trainer."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm imports huggingface_hub

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from syn2real.config import Config, MethodConfig, ModelConfig, from_dict
from syn2real.engine.trainer import Trainer
from syn2real.errors import ConfigError
from syn2real.methods import build_method
from syn2real.methods.fda import FDA, charbonnier_entropy, mbt_predict
from syn2real.models import build_model
from syn2real.translate import fda_source_to_target, low_frequency_mask

H, W = 32, 64


pytestmark = pytest.mark.usefixtures("one_thread")


def _images(seed: int, mean: float, spread: float = 0.05, n: int = 2, size=(H, W)) -> torch.Tensor:
    noise = torch.rand(n, 3, *size, generator=torch.Generator().manual_seed(seed)) - 0.5
    return mean + 2 * spread * noise


def _frequencies(n: int) -> torch.Tensor:
    """Signed integer frequency of each FFT bin."""
    return torch.fft.fftfreq(n, d=1.0 / n).round().long()


def test_amplitude_swap_on_the_spectra():
    # Mid-grey images with a little texture, so nothing is clamped and the spectra can be compared exactly.
    src, trg, beta = _images(0, 0.6), _images(1, 0.3, spread=0.1), 0.1
    out = fda_source_to_target(src, trg, beta)
    assert out.shape == src.shape and 0.0 < out.min() and out.max() < 1.0
    b = int(np.floor(min(H, W) * beta))  # 3
    spec_src, spec_trg, spec_out = (torch.fft.fft2(x.double()) for x in (src, trg, out))
    ky, kx = _frequencies(H)[:, None].abs(), _frequencies(W)[None, :].abs()
    inside = (ky < b) & (kx < b)  # the window is -b..b-1: its mirror-symmetric interior
    outside = (ky > b) | (kx > b)
    assert inside.sum() == (2 * b - 1) ** 2
    # Inside: the target's amplitude with the source's phase.
    torch.testing.assert_close(spec_out.abs()[..., inside], spec_trg.abs()[..., inside], rtol=1e-4, atol=1e-3)
    phase_error = torch.angle(spec_out[..., inside] * spec_src[..., inside].conj())
    assert phase_error.abs().max() < 1e-3
    # Outside: the source spectrum untouched.
    torch.testing.assert_close(spec_out[..., outside], spec_src[..., outside], rtol=1e-4, atol=1e-3)
    # The swap did something: the mean brightness (DC) is now the target's.
    torch.testing.assert_close(out.mean((2, 3)), trg.mean((2, 3)), atol=1e-5, rtol=0)


def test_beta_zero_and_a_window_below_one_pixel_return_the_source():
    src, trg = _images(0, 0.5), _images(1, 0.2)
    assert fda_source_to_target(src, trg, 0.0) is src
    assert fda_source_to_target(src, trg, 0.01) is src  # floor(32 * 0.01) = 0
    assert not torch.equal(fda_source_to_target(src, trg, 0.05), src)  # b = 1: the DC term moves


def test_window_shape_clamping_resizing_and_bad_beta():
    mask = low_frequency_mask(H, W, 0.09)  # b = 2: four 2x2 corner blocks
    assert mask.sum() == 16 and mask[:2, :2].all() and mask[-2:, -2:].all() and mask[:2, -2:].all()
    assert not mask[2:-2].any() and not mask[:, 2:-2].any()
    # A bright target on a dark source saturates: the result stays a valid image.
    out = fda_source_to_target(_images(0, 0.1, spread=0.1), _images(1, 0.95), 0.2)
    assert out.min() >= 0.0 and out.max() <= 1.0
    # A target of another size is resized to the source's first.
    small_trg = _images(2, 0.4, size=(16, 32))
    big_trg = F.interpolate(small_trg, size=(H, W), mode="bilinear", align_corners=False)
    src = _images(3, 0.5)
    torch.testing.assert_close(fda_source_to_target(src, small_trg, 0.1), fda_source_to_target(src, big_trg, 0.1))
    with pytest.raises(ConfigError, match="beta"):
        fda_source_to_target(src, big_trg, 0.7)


def test_charbonnier_entropy_penalty():
    uniform = torch.zeros(1, 19, 4, 4)
    confident = torch.zeros(1, 19, 4, 4)
    confident[:, 3] = 50.0
    assert charbonnier_entropy(uniform, ita=2.0).item() == pytest.approx(1.0, abs=1e-6)
    assert charbonnier_entropy(confident, ita=2.0).item() < 1e-12
    # ita shapes the penalty: with normalised entropy h, (h^2 + 1e-8)^ita.
    mixed = torch.randn(2, 19, 4, 4, generator=torch.Generator().manual_seed(0))
    p = mixed.softmax(1)
    h = -(p * p.log()).sum(1) / np.log(19)
    assert charbonnier_entropy(mixed, ita=1.5).item() == pytest.approx(((h**2 + 1e-8) ** 1.5).mean().item(), rel=1e-5)


def _tiny_model(seed: int, num_classes: int = 5):
    torch.manual_seed(seed)
    return build_model(ModelConfig(pretrained=None, num_classes=num_classes, head_channels=16, dropout=0.0,
                                   channels_last=False))


def test_mbt_predict_averages_the_softmax_of_each_model():
    models = [_tiny_model(0).eval(), _tiny_model(1).eval()]
    images = _images(0, 0.5)
    probs = mbt_predict(models, images)
    with torch.no_grad():
        expected = (models[0](images).softmax(1) + models[1](images).softmax(1)) / 2
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, H, W))
    with pytest.raises(ConfigError):
        mbt_predict([], images)


def test_fda_step_trains_on_translated_source_and_target_entropy():
    model = _tiny_model(0)
    cfg = Config(model=ModelConfig(pretrained=None, num_classes=5), method=MethodConfig(name="fda"))
    method = build_method(cfg, model)
    assert isinstance(method, FDA) and method.options == {"beta": 0.01, "lambda_ent": 0.005, "ita": 2.0}
    src = {"image": _images(0, 0.5), "mask": torch.randint(0, 5, (2, H, W))}
    tgt = {"image": _images(1, 0.3)}  # no mask: UDA never reads target labels
    losses = method.train_step(src, tgt, step=0)
    assert set(losses) == {"loss_seg", "loss_ent"} and all(np.isfinite(v) for v in losses.values())
    assert all(p.grad is not None for p in model.head.classifier.parameters())


# ---- through the real trainer ------------------------------------------------------------------------------


def test_three_iterations_through_the_trainer_and_resume(tmp_path, tiny_uda_folders):
    source, target = tiny_uda_folders
    cfg = from_dict(Config, {
        "name": "fda", "out_dir": str(tmp_path / "runs"),
        "model": {"pretrained": None, "head_channels": 16, "channels_last": False},
        "data": {"source": source, "target": target, "crop_size": [H, W], "scale_range": [1.0, 1.0],
                 "batch_size": 2, "workers": 0},
        "train": {"iters": 3, "checkpoint_every": 3, "log_every": 1, "device": "cpu"},
        # 0.09: a 2-pixel window at 32 px (0.01 would translate nothing at this size).
        "method": {"name": "fda", "params": {"beta": 0.09}},
    })
    trainer = Trainer(cfg, progress=False)
    result = trainer.fit()
    assert result["step"] == 3 and np.isfinite(result["loss_seg"]) and np.isfinite(result["loss_ent"])
    resumed = Trainer(cfg, resume=True, progress=False)
    assert resumed.step == 3
    for name, tensor in trainer.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], tensor, rtol=0, atol=0)
    momentum = trainer.optimizers[0].state_dict()["state"]
    assert momentum and resumed.optimizers[0].state_dict()["state"].keys() == momentum.keys()
