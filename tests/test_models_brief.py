"""PSPNet's head, FCN-8s on VGG-16 and the dilated residual networks DRN-C-26 / DRN-D-22 (issue #27): shapes and
strides, what each paper's structure does, one training step and a bit-identical resume. Random init, tiny inputs."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from syn2real.config import ModelConfig, load_config
from syn2real.engine.optim import build_optimizer
from syn2real.errors import ConfigError, WeightsError
from syn2real.methods import build_method
from syn2real.models import build_backbone, build_model
from syn2real.models.drn import BasicBlock
from syn2real.models.fcn import FCN8sHead
from syn2real.models.psp import PSPHead

pytestmark = pytest.mark.usefixtures("one_thread")

H, W = 64, 96
BRIEF = [("efficientnet_lite0", "psp"), ("vgg16", "fcn8s"), ("drn_c_26", "aspp"), ("drn_d_22", "aspp"),
         ("drn_d_22", "psp")]


def _images(n: int = 2, h: int = H, w: int = W) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("backbone,head,stride", [("efficientnet_lite0", "psp", 32), ("resnet50", "psp", 8),
                                                  ("vgg16", "fcn8s", 8), ("drn_c_26", "aspp", 8),
                                                  ("drn_d_22", "aspp", 8), ("drn_c_26", "drnseg", 8)])
def test_output_shapes_and_strides(backbone, head, stride):
    model = build_model(ModelConfig(backbone=backbone, head=head, pretrained=None, num_classes=5)).eval()
    with torch.no_grad():
        feats = model.extract(_images())
        assert [f.shape[1] for f in feats] == model.backbone.feature_channels
        assert [H // f.shape[2] for f in feats] == model.backbone.reductions
        assert model.decode(feats).shape == (2, 5, H // stride, W // stride)
        assert model(_images()).shape == (2, 5, H, W)


# ---- PSP ------------------------------------------------------------------------------------------------


def test_psp_bins_and_concatenated_width():
    head = PSPHead(in_channels=32, num_classes=3, channels=16, dropout=0.0).eval()
    x = torch.randn(2, 32, 12, 12)
    assert [tuple(stage(x).shape[-2:]) for stage in head.stages] == [(1, 1), (2, 2), (3, 3), (6, 6)]
    assert [stage[1][0].out_channels for stage in head.stages] == [8] * 4  # in/4 each
    pyramid = head.pyramid(x)
    assert pyramid.shape == (2, 32 + 4 * 8, 12, 12) and torch.equal(pyramid[:, :32], x)
    assert head.bottleneck[0].in_channels == 64 and head.bottleneck[0].kernel_size == (3, 3)
    # The 1x1 bin is global context: a change in one corner reaches the opposite corner through it.
    y = x.clone()
    y[:, :, 0, 0] += 10
    with torch.no_grad():
        changed = (head.pyramid(y) - pyramid).abs()[:, 32:].amax(dim=(0, 2, 3)).view(4, 8).amax(1)
        far = (head.pyramid(y) - pyramid)[:, 32:40, -1, -1].abs().amax()
    assert (changed > 0).all() and far > 0


# ---- FCN-8s ---------------------------------------------------------------------------------------------


def test_vgg16_gives_pool_levels_at_strides_4_to_32():
    backbone = build_backbone("vgg16")
    assert backbone.reductions == [4, 8, 16, 32] and backbone.feature_channels == [256, 512, 512, 512]
    assert backbone.mean == pytest.approx((0.485, 0.456, 0.406))


def _up(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def _only(head: FCN8sHead, keep: str) -> FCN8sHead:
    for name in ("classifier", "score_pool4", "score_pool3"):
        if name != keep:
            torch.nn.init.zeros_(getattr(head, name).weight)
            torch.nn.init.zeros_(getattr(head, name).bias)
    return head


def test_fcn8s_skip_fusion():
    """Each score layer alone: where the output's detail comes from, at which scale."""
    torch.manual_seed(0)
    feats = [torch.randn(1, 8, 16, 24), torch.randn(1, 16, 8, 12), torch.randn(1, 16, 4, 6), torch.randn(1, 32, 2, 3)]
    pool3, pool4 = F.max_pool2d(feats[0], 2), F.max_pool2d(feats[1], 2)
    with torch.no_grad():
        coarse = _only(FCN8sHead([8, 16, 16, 32], 3, 0.0).eval(), "classifier")
        score32 = coarse.classifier(coarse.forward_features(feats))
        assert score32.shape[-2:] == (2, 3)
        assert torch.allclose(coarse(feats), _up(_up(score32, pool4), pool3), atol=1e-6)

        mid = _only(FCN8sHead([8, 16, 16, 32], 3, 0.0).eval(), "score_pool4")
        assert torch.allclose(mid(feats), _up(mid.score_pool4(pool4 * 0.01), pool3), atol=1e-7)

        fine = _only(FCN8sHead([8, 16, 16, 32], 3, 0.0).eval(), "score_pool3")
        out = fine(feats)
        assert out.shape == (1, 3, 8, 12)
        assert torch.allclose(out, fine.score_pool3(pool3 * 0.0001), atol=1e-9)
        # stride-8 detail: a single pool3 cell moves exactly one output cell
        bumped = [f.clone() for f in feats]
        bumped[0][..., 4:6, 6:8] += 1e4
        assert ((fine(bumped) - out).abs().sum(1) > 0).nonzero().tolist() == [[0, 2, 3]]


def test_fcn8s_on_vgg16_has_the_published_size():
    model = build_model(ModelConfig(backbone="vgg16", head="fcn8s", pretrained=None, num_classes=21))
    # FCN-8s VGG-16 on PASCAL VOC (21 classes): 134M parameters (Long et al., Table 1 lists 134M for FCN-VGG16).
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134e6, rel=0.01)


def test_fcn8s_takes_fc6_fc7_from_vgg_classifier_weights():
    import timm

    head = FCN8sHead([256, 512, 512, 512], 19, 0.5)
    vgg = timm.create_model("vgg16").state_dict()  # timm: pre_logits.fc1 / fc2 are convolutions already
    head.load_pretrained(vgg, "timm vgg16")
    assert torch.equal(head.fc6[0].weight, vgg["pre_logits.fc1.weight"])
    assert torch.equal(head.fc7[0].bias, vgg["pre_logits.fc2.bias"])
    # torchvision's layout: linear layers on the flattened 512x7x7 pool5, reshaped into the same kernels.
    linear = {"classifier.0.weight": torch.randn(4096, 512 * 7 * 7), "classifier.0.bias": torch.randn(4096),
              "classifier.3.weight": torch.randn(4096, 4096), "classifier.3.bias": torch.randn(4096)}
    head.load_pretrained(linear, "torchvision vgg16")
    pool5 = torch.randn(1, 512, 7, 7)
    assert torch.allclose(F.conv2d(pool5, head.fc6[0].weight, head.fc6[0].bias).flatten(),
                          linear["classifier.0.weight"] @ pool5.flatten() + linear["classifier.0.bias"],
                          rtol=1e-4, atol=1e-3)
    with pytest.raises(WeightsError, match="fc7"):
        head.load_pretrained({**linear, "classifier.3.weight": torch.randn(4096, 1000)}, "bad.pth")


def test_fcn8s_refuses_a_dilated_backbone():
    with pytest.raises(ConfigError, match="fcn8s"):
        build_model(ModelConfig(backbone="drn_d_22", head="fcn8s", pretrained=None))


# ---- DRN ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,published", [("drn_c_26", 21.1e6), ("drn_d_22", 16.4e6)])
def test_drn_stride_8_dilations_and_size(name, published):
    backbone = build_backbone(name)
    drn = backbone.model
    assert backbone.reductions == [4, 8, 8, 8]
    assert backbone(torch.rand(1, 3, 64, 64))[-1].shape == (1, 512, 8, 8)
    convs = {level: [m for m in getattr(drn, f"layer{level}").modules() if isinstance(m, torch.nn.Conv2d)
                     and m.kernel_size == (3, 3)] for level in range(1, 9)}
    assert [{c.dilation[0] for c in convs[level]} for level in range(4, 9)] == [{1}, {2}, {4}, {2}, {1}]
    assert all(c.stride == (1, 1) for level in range(5, 9) for c in convs[level])
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in drn.modules())
    # Residual blocks per level: DRN-D has plain conv layers in levels 1-2 (its stem) and 7-8; the degridding
    # levels 7-8 have no residual connection in either.
    blocks = {level: [m for m in getattr(drn, f"layer{level}").modules() if isinstance(m, BasicBlock)]
              for level in range(1, 9)}
    plain = {1, 2, 7, 8} if name == "drn_d_22" else set()
    assert {level for level, found in blocks.items() if not found} == plain
    assert all(b.residual == (level < 7) for level, found in blocks.items() for b in found)
    # Published size (fyu/drn README, Yu et al. 2017) includes the 1000-class 1x1 classifier on 512 channels.
    params = sum(p.numel() for p in drn.parameters()) + 512 * 1000 + 1000
    assert params == pytest.approx(published, abs=0.05e6)


def test_drn_loads_the_authors_checkpoint_layout(tmp_path):
    source = build_backbone("drn_d_22").model
    state = {**source.state_dict(), "fc.weight": torch.zeros(1000, 512, 1, 1), "fc.bias": torch.zeros(1000)}
    torch.save(state, tmp_path / "drn_d_22.pth")
    loaded = build_backbone("drn_d_22", str(tmp_path / "drn_d_22.pth")).model
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(WeightsError, match="no hub weights"):
        build_backbone("drn_d_22", "timm")


# ---- training ------------------------------------------------------------------------------------------


def _setup(backbone: str, head: str):
    cfg = load_config(None, ["method.name=source_only", f"model.backbone={backbone}", f"model.head={head}",
                             "model.pretrained=null", "model.head_channels=16", "model.channels_last=false",
                             "model.dropout=0.0", "model.num_classes=11"])
    torch.manual_seed(0)
    method = build_method(cfg, build_model(cfg.model).train())
    return method, build_optimizer(cfg.optim, method.param_groups())


def _train_step(method, optimizer, step: int) -> float:
    g = torch.Generator().manual_seed(step)
    src = {"image": torch.rand(2, 3, 64, 64, generator=g), "mask": torch.randint(0, 11, (2, 64, 64), generator=g)}
    optimizer.zero_grad(set_to_none=True)
    loss = method.train_step(src, None, step)["loss_seg"]
    optimizer.step()
    return loss


@pytest.mark.parametrize("backbone,head", BRIEF)
def test_trains_a_step_and_resumes_bit_identically(backbone, head):
    method, optimizer = _setup(backbone, head)
    before = copy.deepcopy(method.model.state_dict())
    assert math.isfinite(_train_step(method, optimizer, 0))
    after = method.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in after)
    saved = copy.deepcopy((method.model.state_dict(), optimizer.state_dict()))
    _train_step(method, optimizer, 1)
    straight = method.model.state_dict()

    resumed, resumed_opt = _setup(backbone, head)
    resumed.model.load_state_dict(saved[0])
    resumed_opt.load_state_dict(saved[1])
    _train_step(resumed, resumed_opt, 1)
    again = resumed.model.state_dict()
    assert straight.keys() == again.keys()
    assert all(torch.equal(straight[k], again[k]) for k in straight)
