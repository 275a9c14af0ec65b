"""Domain generalisation switches: source styles (RandConv, PASTA) in the trainer, MixStyle and IBN-a in the model.

Each does what its paper says on tiny tensors, bad values are one-line ConfigErrors, every switch trains for two
steps through the real Trainer, a model built with them reloads from its checkpoint alone, and a run with a source
style resumes bit for bit.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from test_trainer import TinySegmentor, assert_same_weights, run_tiny, tiny_config, tiny_datasets

import syn2real
from syn2real.config import ModelConfig, load_config
from syn2real.data.source_style import PASTA, SOURCE_STYLES, RandConv, build_source_style, pasta_sigma, random_filter
from syn2real.engine.checkpoint import last_checkpoint, model_config_of
from syn2real.engine.trainer import Trainer
from syn2real.errors import ConfigError
from syn2real.methods.source_only import SourceOnly
from syn2real.models import build_model
from syn2real.models.backbones import build_backbone
from syn2real.models.style import IBN, MixStyle, add_mixstyle, convert_ibn, mix_styles

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _restore_determinism():
    yield
    torch.use_deterministic_algorithms(False)


def mid_grey_images(n: int = 2, h: int = 16, w: int = 24, seed: int = 0) -> torch.Tensor:
    """Images in [0.35, 0.65]: restyled versions stay inside [0, 1], so no clamping hides what a style did."""
    return 0.35 + 0.3 * torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ---- RandConv ----------------------------------------------------------------------------------------------


def test_randconv_with_1x1_kernels_is_a_per_pixel_colour_map():
    x = mid_grey_images()
    torch.manual_seed(0)
    out = RandConv(p=1.0, kernel_sizes=(1,), mix=False)(x)
    assert out.shape == x.shape and 0 < out.min() and out.max() < 1  # nothing clamped
    for image, styled in zip(x, out):
        pixels = torch.cat([image.flatten(1), torch.ones(1, image[0].numel())]).T.double()  # (HW, RGB + 1)
        fit = torch.linalg.lstsq(pixels, styled.flatten(1).T.double()).solution
        assert torch.allclose(pixels @ fit, styled.flatten(1).T.double(), atol=1e-5)  # affine in the input RGB
        assert not torch.allclose(fit[:3], torch.eye(3, dtype=fit.dtype), atol=0.05)  # and not the identity
    # Larger kernels mix neighbouring pixels: no per-pixel colour map reproduces them.
    torch.manual_seed(0)
    textured = RandConv(p=1.0, kernel_sizes=(5,), mix=False)(x)[0]
    pixels = torch.cat([x[0].flatten(1), torch.ones(1, x[0][0].numel())]).T.double()
    fit = torch.linalg.lstsq(pixels, textured.flatten(1).T.double()).solution
    assert (pixels @ fit - textured.flatten(1).T.double()).abs().max() > 0.01


def test_randconv_keeps_brightness_and_contrast_mixes_and_clamps():
    x = mid_grey_images()
    torch.manual_seed(1)
    out = RandConv(p=1.0, kernel_sizes=(3,), mix=False)(x)
    # Re-standardised to each input image's own mean and standard deviation (no clamping happened here).
    assert torch.allclose(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5)
    assert torch.allclose(out.std(dim=(1, 2, 3)), x.std(dim=(1, 2, 3)), atol=1e-5)
    # The mix variant lies on the segment between the image and the same filter's output.
    torch.manual_seed(1)
    mixed = RandConv(p=1.0, kernel_sizes=(3,), mix=True)(x)
    alpha = ((mixed - x) * (out - x)).sum() / ((out - x) ** 2).sum()
    assert 0 < alpha < 1 and torch.allclose(mixed, alpha * out + (1 - alpha) * x, atol=1e-5)
    # Any input comes out as a valid image.
    wide = RandConv(p=1.0, kernel_sizes=(7,), mix=False)(torch.rand(2, 3, 16, 24))
    assert wide.min() >= 0 and wide.max() <= 1


def test_randconv_probability_and_filter_distribution():
    x = mid_grey_images()
    assert RandConv(p=0.0)(x) is x
    torch.manual_seed(0)
    changed = [not torch.equal(RandConv()(x), x) for _ in range(200)]
    assert 0.4 < np.mean(changed) < 0.6  # p = 0.5: half the batches keep their original look
    torch.manual_seed(0)
    weights = torch.stack([random_filter(3) for _ in range(500)])
    assert weights.mean().abs() < 0.01 and weights.std().item() == pytest.approx(1 / math.sqrt(27), rel=0.03)


# ---- PASTA -------------------------------------------------------------------------------------------------


def test_pasta_keeps_the_phase_and_perturbs_the_amplitude():
    x = mid_grey_images(h=16, w=16)
    torch.manual_seed(0)
    out = PASTA(alpha=0.3, k=2, beta=0.02)(x)  # small noise: eps stays positive and no pixel is clamped
    assert 0 < out.min() and out.max() < 1
    before, after = torch.fft.fft2(x.double()), torch.fft.fft2(out.double())
    significant = before.abs() > 1e-3
    phase_change = torch.angle(after * before.conj())[significant]
    assert phase_change.abs().max() < 1e-4
    assert not torch.allclose(after.abs(), before.abs(), rtol=1e-3)


def test_pasta_perturbation_grows_with_frequency():
    sigma = pasta_sigma(8, 12, alpha=3.0, k=2.0, beta=0.25)
    assert sigma.shape == (8, 12)
    assert sigma[0, 0] == pytest.approx(0.25)  # the mean colour: only beta
    assert sigma.max() == pytest.approx(3.0 ** 2 + 0.25)  # the highest frequency: alpha^k + beta
    assert sigma[4, 6] == sigma.max()  # ... at the corner of the (unshifted) spectrum
    radius = torch.fft.fftfreq(8)[:, None] ** 2 + torch.fft.fftfreq(12)[None, :] ** 2
    order = radius.flatten().argsort()
    assert torch.all(sigma.flatten()[order].diff() >= 0)  # monotone in the frequency's radius
    # The paper's defaults perturb high frequencies by far the most.
    x = mid_grey_images(n=8, h=32, w=32)
    torch.manual_seed(0)
    ratio = (torch.fft.fft2(PASTA()(x)).abs() / torch.fft.fft2(x).abs()).log().abs()
    low, high = ratio[..., 1:3, 1:3].median(), ratio[..., 14:18, 14:18].median()
    assert high > 2 * low


def test_styles_compose_in_order_and_follow_the_global_generator():
    cfg = load_config(None, ["data.source_style=[randconv,pasta]", "data.source_style_params={randconv: {p: 1}}"])
    style = build_source_style(cfg.data)
    assert [type(s) for s in style.styles] == [RandConv, PASTA] and style.styles[0].p == 1.0
    x = mid_grey_images()
    torch.manual_seed(3)
    first = style(x)
    torch.manual_seed(3)
    assert torch.equal(style(x), first)  # the same generator state, the same style
    assert not torch.equal(style(x), first)  # the next batch draws new ones
    assert build_source_style(load_config(None).data)(x) is x


# ---- configuration -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, message", [
    (["data.source_style=[randconv,randconv]"], "data.source_style must be a list of distinct style names"),
    (["data.source_style=[randconv]", "data.source_style_params={pasta: {alpha: 1}}"],
     r"data.source_style_params: options for 'pasta', which data.source_style=\['randconv'\] does not use"),
    (["data.source_style=[pasta]", "data.source_style_params={pasta: 3}"],
     "data.source_style_params.pasta must be a mapping"),
    (["model.mixstyle_p=1.5"], r"model.mixstyle_p must lie in \[0, 1\]"),
    (["model.mixstyle_alpha=0"], "model.mixstyle_alpha must be > 0"),
    (["model.mixstyle_stages=0"], "model.mixstyle_stages must be at least 1"),
])
def test_bad_config_values_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_config(None, overrides)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("overrides, message", [
    (["data.source_style=[fog]"], "data.source_style: unknown source style 'fog'; choose one of randconv, pasta"),
    (["data.source_style=[randconv]", "data.source_style_params={randconv: {q: 1}}"],
     r"data.source_style_params.randconv: unknown key\(s\) \['q'\]"),
    (["data.source_style=[randconv]", "data.source_style_params={randconv: {p: 1.5}}"],
     r"data.source_style_params.randconv.p must lie in \[0, 1\]; got 1.5"),
    (["data.source_style=[randconv]", "data.source_style_params={randconv: {kernel_sizes: [2, 3]}}"],
     "data.source_style_params.randconv.kernel_sizes must be a non-empty list of odd sizes"),
    (["data.source_style=[randconv]", "data.source_style_params={randconv: {mix: maybe}}"],
     "data.source_style_params.randconv.mix: expected bool"),
    (["data.source_style=[pasta]", "data.source_style_params={pasta: {beta: -1}}"],
     "data.source_style_params.pasta.beta must be >= 0; got -1.0"),
])
def test_unknown_styles_and_bad_options_stop_the_trainer_before_any_work(tmp_path, overrides, message):
    cfg = tiny_config(tmp_path, "bad", *overrides)
    with pytest.raises(ConfigError, match=message) as error:
        Trainer(cfg, model=TinySegmentor(), datasets=tiny_datasets(cfg))
    assert "\n" not in str(error.value)
    assert not cfg.run_dir.exists()


def test_style_defaults_are_the_papers():
    assert SOURCE_STYLES.names() == ["randconv", "pasta"]
    assert (RandConv().p, RandConv().kernel_sizes, RandConv().mix) == (0.5, (1, 3, 5, 7), True)
    assert (PASTA().alpha, PASTA().k, PASTA().beta) == (3.0, 2.0, 0.25)
    model = ModelConfig()
    assert (model.ibn, model.mixstyle, model.mixstyle_p, model.mixstyle_alpha, model.mixstyle_stages) == (
        False, False, 0.5, 0.1, 3)


# ---- MixStyle ----------------------------------------------------------------------------------------------


def test_mix_styles_is_the_paper_s_formula():
    x = torch.randn(3, 4, 5, 6) * torch.tensor([1.0, 2.0, 0.5, 3.0]).view(1, 4, 1, 1) + 2
    lam, perm = torch.tensor([0.25, 1.0, 0.6]), torch.tensor([2, 0, 1])
    out = mix_styles(x, lam, perm)
    mu, sig = x.mean(dim=(2, 3)), (x.var(dim=(2, 3)) + 1e-6).sqrt()
    expect_mu = lam[:, None] * mu + (1 - lam[:, None]) * mu[perm]
    expect_sig = lam[:, None] * sig + (1 - lam[:, None]) * sig[perm]
    assert torch.allclose(out.mean(dim=(2, 3)), expect_mu, atol=1e-5)
    assert torch.allclose(out.var(dim=(2, 3)), expect_sig ** 2 - 1e-6 * expect_sig ** 2 / sig ** 2, rtol=1e-4)
    assert torch.allclose(out[1], x[1], atol=1e-5)  # lambda 1 keeps an image's own style
    # Content is kept: each channel is an increasing affine map of the input channel.
    assert torch.allclose(torch.corrcoef(torch.stack([out[0, 2].flatten(), x[0, 2].flatten()]))[0, 1],
                          torch.tensor(1.0), atol=1e-5)
    # The statistics are detached: the gradient w.r.t. x is the normalisation's scale only.
    x.requires_grad_(True)
    mix_styles(x, lam, perm).sum().backward()
    scale = (lam * sig[:, 0] + (1 - lam) * sig[perm, 0]) / sig[:, 0]
    assert torch.allclose(x.grad[:, 0], scale.detach().view(3, 1, 1).expand(3, 5, 6), rtol=1e-5)


def test_mixstyle_is_identity_in_eval_mode_and_random_in_training():
    x = torch.randn(4, 8, 6, 6)
    module = MixStyle(p=1.0, alpha=0.1)
    assert module.eval()(x) is x
    module.train()
    torch.manual_seed(0)
    a = module(x)
    assert not torch.allclose(a, x, atol=1e-3)
    assert MixStyle(p=0.0).train()(x) is x


def test_mixstyle_hooks_the_first_stages_and_an_ema_copy_follows_its_own_mode():
    backbone = build_backbone("efficientnet_lite0", None)
    add_mixstyle(backbone, p=1.0, stages=3)
    hooked = [name for name, m in backbone.model.named_modules() if m._forward_hooks]
    assert hooked == ["blocks.1", "blocks.2", "blocks.4"]  # the modules giving feature levels 0-2
    x = torch.rand(2, 3, 32, 48)
    backbone.eval()
    plain = backbone(x)
    backbone.train()
    torch.manual_seed(0)
    mixed = backbone(x)
    assert not torch.allclose(mixed[0], plain[0], atol=1e-4)
    teacher = copy.deepcopy(backbone).eval()  # what an EMA teacher does while the student trains
    backbone.train()
    with torch.no_grad():
        first, second = teacher(x), teacher(x)
    assert all(torch.equal(a, b) for a, b in zip(first, second))  # never mixed: the copy hooks its own MixStyle
    with pytest.raises(ConfigError, match=r"model.mixstyle_stages must lie in \[1, 4\] for efficientnet_lite0"):
        add_mixstyle(build_backbone("efficientnet_lite0", None), stages=5)


# ---- IBN-a -------------------------------------------------------------------------------------------------


def test_ibn_normalises_half_the_channels_per_image_and_keeps_the_pretrained_statistics():
    bn = torch.nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.copy_(torch.arange(1.0, 7.0))
        bn.bias.copy_(torch.arange(6.0) / 10)
        bn.running_mean.copy_(torch.arange(6.0))
        bn.running_var.copy_(torch.arange(1.0, 7.0))
    layer = IBN(bn).eval()
    assert torch.equal(layer.IN.weight, bn.weight[:3]) and torch.equal(layer.IN.bias, bn.bias[:3])
    assert torch.equal(layer.BN.weight, bn.weight[3:]) and torch.equal(layer.BN.running_var, bn.running_var[3:])
    x = torch.randn(2, 6, 5, 5)
    shifted = x.clone()
    shifted[0, :3] += 7.0  # a style change of one image, in the instance-normalised half
    assert torch.allclose(layer(shifted)[0, :3], layer(x)[0, :3], atol=1e-5)
    assert torch.allclose(layer(x)[:, 3:], bn.eval()(x)[:, 3:], atol=1e-6)  # the BN half is the old layer's
    shifted = x.clone()
    shifted[0, 3:] += 7.0
    assert not torch.allclose(layer(shifted)[0, 3:], layer(x)[0, 3:])  # ... which still sees the shift


def test_ibn_converts_the_first_norm_of_each_block_in_all_but_the_last_stage():
    backbone = build_backbone("resnet50", None, output_stride=8)
    converted = convert_ibn(backbone)
    # conv2_x-conv4_x: 3 + 4 + 6 bottlenecks, each its bn1 (the paper's IBN-a); layer4 and the stem untouched.
    assert len(converted) == 13 and all(name.endswith(".bn1") for name in converted)
    assert {name.split(".")[0] for name in converted} == {"layer1", "layer2", "layer3"}
    assert isinstance(backbone.model.layer3[5].bn1, IBN) and not isinstance(backbone.model.layer4[0].bn1, IBN)
    lite = build_backbone("efficientnet_lite0", None)
    converted = convert_ibn(lite)
    assert converted[0] == "blocks.0.0.bn1" and converted[-1] == "blocks.4.2.bn1"
    ibn = lite.model.blocks[1][0].bn1
    assert isinstance(ibn.act, torch.nn.ReLU6)  # timm's BatchNormAct2d keeps its activation
    with pytest.raises(ConfigError, match="model.ibn: pvt_v2_b0 has no BatchNorm"):
        convert_ibn(build_backbone("pvt_v2_b0", None))


# ---- through the trainer -----------------------------------------------------------------------------------


@pytest.mark.parametrize("style, params", [("randconv", "{randconv: {p: 1}}"), ("pasta", "{}")])
def test_source_style_restyles_source_images_only(tmp_path, style, params):
    cfg = tiny_config(tmp_path, style, f"data.source_style=[{style}]", f"data.source_style_params={params}",
                      "train.iters=2", "optim.warmup_iters=0", "model.channels_last=true")
    datasets = tiny_datasets(cfg, val=False, target=True)
    trainer = Trainer(cfg, model=TinySegmentor(), datasets=datasets)
    positions = {name: loader.state_dict() for name, loader in trainer.loaders.items()}
    src, tgt = trainer._next_batch("source"), trainer._next_batch("target")
    for name, position in positions.items():
        trainer.loaders[name].load_state_dict(position)
    raw_src, raw_tgt = next(trainer.loaders["source"]), next(trainer.loaders["target"])
    assert torch.equal(src["mask"], raw_src["mask"]) and src["name"] == raw_src["name"]  # labels untouched
    assert not torch.allclose(src["image"], raw_src["image"], atol=1e-3)
    assert src["image"].min() >= 0 and src["image"].max() <= 1
    assert src["image"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(tgt["image"], raw_tgt["image"])  # the target is never restyled
    trainer.fit()
    assert trainer.step == 2


def ibn_mixstyle_config(tmp_path, name, *overrides):
    return tiny_config(tmp_path, name, "model.backbone=efficientnet_lite0", "model.pretrained=null",
                       "model.head=deeplabv3plus", "model.head_channels=16", "train.iters=2",
                       "train.checkpoint_every=2", "optim.warmup_iters=0", *overrides)


@pytest.mark.parametrize("switch", ["model.ibn=true", "model.mixstyle=true"])
def test_model_switches_train_and_reload_from_the_checkpoint_alone(tmp_path, switch):
    cfg = ibn_mixstyle_config(tmp_path, switch.split(".")[1].split("=")[0], switch)
    torch.manual_seed(0)
    trainer = Trainer(cfg, datasets=tiny_datasets(cfg))
    result = trainer.fit()
    assert trainer.step == 2 and math.isfinite(result["loss_seg"])
    weights = last_checkpoint(cfg.run_dir / "checkpoints")["weights"]
    model_cfg, labels = model_config_of(weights)
    assert model_cfg == cfg.model and labels == "cityscapes19"  # the switch travels with the weights
    has_ibn = any(".IN." in key for key in trainer.model.state_dict())
    assert has_ibn == cfg.model.ibn
    image = (np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8)
    from_file, from_run = syn2real.load(weights, device="cpu"), syn2real.load(cfg.run_dir, device="cpu")
    np.testing.assert_array_equal(from_file.predict(image), from_run.predict(image))
    trainer.model.eval()
    expected = trainer.model(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255).argmax(1)[0]
    np.testing.assert_array_equal(from_file.predict(image), expected.numpy())


def test_a_model_with_both_switches_builds_and_a_plain_one_is_unchanged():
    torch.manual_seed(0)
    plain = build_model(ModelConfig(backbone="efficientnet_lite0", pretrained=None, head_channels=16))
    torch.manual_seed(0)
    both = build_model(ModelConfig(backbone="efficientnet_lite0", pretrained=None, head_channels=16, ibn=True,
                                   mixstyle=True))
    assert not hasattr(plain.backbone, "mixstyle") and not any(".IN." in k for k in plain.state_dict())
    assert isinstance(both.backbone.mixstyle, MixStyle)
    assert both(torch.rand(2, 3, 32, 48)).shape == (2, 19, 32, 48)


def test_resume_with_source_styles_is_bit_identical(tmp_path):
    styles = ("data.source_style=[randconv,pasta]", "data.source_style_params={randconv: {p: 0.5}}")
    reference = run_tiny(tiny_config(tmp_path, "uninterrupted", *styles)).model.state_dict()
    plain = run_tiny(tiny_config(tmp_path, "plain")).model.state_dict()
    assert not torch.equal(plain["head.1.weight"], reference["head.1.weight"])  # the styles changed training

    class CrashAtStep6(SourceOnly):
        def train_step(self, src, tgt, step):
            if step == 6:
                raise RuntimeError("simulated crash")
            return super().train_step(src, tgt, step)

    cfg = tiny_config(tmp_path, "crashed", *styles)
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(cfg, method=CrashAtStep6(cfg, TinySegmentor()), datasets=tiny_datasets(cfg)).fit()
    resumed = run_tiny(cfg, resume=True)
    assert resumed.step == 8
    assert_same_weights(resumed.model.state_dict(), reference)
