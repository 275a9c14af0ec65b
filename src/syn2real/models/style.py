"""Feature-level domain generalisation for any backbone: MixStyle and IBN-Net's instance-batch normalisation.

`build_model` applies them when the model config asks (`model.mixstyle`, `model.ibn`). Both act on the backbone's
feature stages, found through timm's `feature_info` (the module that gives each returned feature level), so they
work on every registered backbone without knowing its family:

- `add_mixstyle` hooks a `MixStyle` after the first stages' modules: the mixed features go on into the next stage
  (and to the head), as MixStyle layers inserted between ResNet's stages do. It has no weights, so the state dict
  is unchanged and a model trained with it loads without it.
- `convert_ibn` replaces the first BatchNorm of each block of every stage but the last by `IBN`, keeping the
  pretrained statistics and affine weights; the state dict gains `.IN.` / `.BN.` in those layers' names, so the
  model config (saved with every checkpoint) must say `ibn: true` to rebuild it.
"""

from __future__ import annotations

import torch
from torch import nn

from syn2real.errors import ConfigError
from syn2real.models.backbones import Backbone


def feature_stage_names(model: nn.Module) -> list[str]:
    """The names, inside `model` (a timm feature extractor), of the modules whose outputs are its feature levels."""
    names = []
    for name in model.feature_info.module_name():
        # timm's FeatureListNet flattens nested modules: `stages.0` is its child `stages_0`.
        for candidate in (name, name.replace(".", "_")):
            try:
                model.get_submodule(candidate)
            except AttributeError:
                continue
            names.append(candidate)
            break
        else:
            raise ValueError(f"{type(model).__name__}: no module {name!r}, which its feature_info names")
    return names


# ---- MixStyle ----------------------------------------------------------------------------------------------


def mix_styles(x: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """MixStyle's Eq. (4)-(6): each image's instance statistics (mean and std over H, W per channel) replaced by
    `lam` x its own + (1 - `lam`) x those of image `perm[i]`. `lam`: (N,) weights. The statistics are detached, as
    in the paper's code, so gradients pass only through the normalised features. Computed in float32 (bf16
    variances are too coarse) and returned in `x`'s dtype."""
    xf = x.float()
    mu = xf.mean(dim=(2, 3), keepdim=True).detach()
    sig = (xf.var(dim=(2, 3), keepdim=True) + eps).sqrt().detach()
    lam = lam.to(xf).view(-1, 1, 1, 1)
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sig_mix = lam * sig + (1 - lam) * sig[perm]
    return ((xf - mu) / sig * sig_mix + mu_mix).to(x.dtype)


class MixStyle(nn.Module):
    """Zhou et al., "Domain Generalization with MixStyle", ICLR 2021: in training mode, with probability `p`, mix
    the feature statistics of the batch with those of a shuffled copy of it, lambda ~ Beta(alpha, alpha) per image.
    The paper's values: p 0.5, alpha 0.1, eps 1e-6. Identity in eval mode.

    Randomness comes from torch's global generator (drawn on the CPU), which the trainer saves with each
    checkpoint, so a resumed run draws the same mixes."""

    def __init__(self, p: float = 0.5, alpha: float = 0.1, eps: float = 1e-6):
        super().__init__()
        self.p, self.alpha, self.eps = p, alpha, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or torch.rand(()) >= self.p:
            return x
        n = x.shape[0]
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((n,))
        perm = torch.randperm(n)
        return mix_styles(x, lam.to(x.device), perm.to(x.device), self.eps)

    def after(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        """A forward hook: MixStyle on `module`'s output. A bound method, so `copy.deepcopy` of the model (an EMA
        teacher) hooks the copy's own MixStyle, which follows the copy's train/eval mode."""
        return self(output)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, eps={self.eps}"


def add_mixstyle(backbone: Backbone, p: float = 0.5, alpha: float = 0.1, stages: int = 3) -> MixStyle:
    """Apply MixStyle to the outputs of the first `stages` feature stages of `backbone` (the paper's best for
    ResNet: after res1, res2 and res3, i.e. 3). The module becomes `backbone.mixstyle`, so `train()` / `eval()`
    reach it; returns it."""
    names = feature_stage_names(backbone.model)
    if not 1 <= stages <= len(names):
        raise ConfigError(f"model.mixstyle_stages must lie in [1, {len(names)}] for {backbone.name} (its feature "
                          f"stages); got {stages}")
    backbone.mixstyle = MixStyle(p, alpha)
    for name in names[:stages]:
        backbone.model.get_submodule(name).register_forward_hook(backbone.mixstyle.after)
    return backbone.mixstyle


# ---- IBN-Net -----------------------------------------------------------------------------------------------


class IBN(nn.Module):
    """IBN-Net's instance-batch normalisation (Pan et al., "Two at Once: Enhancing Learning and Generalization
    Capacities via IBN-Net", ECCV 2018, IBN-a): the first half of the channels goes through InstanceNorm (affine),
    the rest through BatchNorm, so appearance (colour, contrast, style) is normalised away per image while content
    statistics stay batch-wide.

    Built from a trained `bn`: the BN half keeps its affine weights and running statistics, the IN half starts from
    its affine weights. A timm `BatchNormAct2d` brings its dropout and activation, applied after both halves. The
    submodules are named `IN` and `BN` as in the authors' code (XingangPan/IBN-Net), so their weight names match."""

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        channels = bn.num_features
        self.half = channels // 2  # the paper's ratio 0.5; the authors' code rounds down
        self.IN = nn.InstanceNorm2d(self.half, eps=bn.eps, affine=True)
        self.BN = nn.BatchNorm2d(channels - self.half, eps=bn.eps, momentum=bn.momentum, affine=bn.affine)
        with torch.no_grad():
            if bn.affine:
                self.IN.weight.copy_(bn.weight[:self.half])
                self.IN.bias.copy_(bn.bias[:self.half])
                self.BN.weight.copy_(bn.weight[self.half:])
                self.BN.bias.copy_(bn.bias[self.half:])
            self.BN.running_mean.copy_(bn.running_mean[self.half:])
            self.BN.running_var.copy_(bn.running_var[self.half:])
            self.BN.num_batches_tracked.copy_(bn.num_batches_tracked)
        self.drop = getattr(bn, "drop", nn.Identity())
        self.act = getattr(bn, "act", nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([self.IN(x[:, :self.half]), self.BN(x[:, self.half:])], dim=1)
        return self.act(self.drop(out))


def convert_ibn(backbone: Backbone) -> list[str]:
    """IBN-a on `backbone`, in place: the first BatchNorm of each block in the stages up to the one giving the
    second-to-last feature level becomes an `IBN` (ResNet: conv2_x-conv4_x, the paper's choice, leaving the last
    stage and the stem alone; EfficientNet: blocks 0-4). A block is a child of a sequential stage that has modules
    of its own (a plain conv-BN-ReLU stem has none). Returns the converted layers' names."""
    model = backbone.model
    last = feature_stage_names(model)[-2]
    parent_name, _, last_stage = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    prefix = f"{parent_name}." if parent_name else ""
    converted = []
    for stage_name, stage in parent.named_children():
        if isinstance(stage, nn.Sequential):
            for block_name, block in stage.named_children():
                bn_name, bn = next(((n, m) for n, m in block.named_modules() if n and isinstance(m, nn.BatchNorm2d)),
                                   (None, None))
                if bn is not None:
                    block.set_submodule(bn_name, IBN(bn))
                    converted.append(f"{prefix}{stage_name}.{block_name}.{bn_name}")
        if stage_name == last_stage:
            break
    if not converted:
        raise ConfigError(f"model.ibn: {backbone.name} has no BatchNorm in the blocks of its early stages, which "
                          "IBN-Net converts; use a CNN backbone with BatchNorm (resnet50, efficientnet_lite0, ...) "
                          "or model.ibn=false")
    return converted
