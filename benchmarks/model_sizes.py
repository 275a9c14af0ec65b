"""Parameters and forward GFLOPs of the models of issue #27 (PSPNet, FCN-8s, DRN) and DeepLab-V2, beside the
published sizes where the papers give them.

    python benchmarks/model_sizes.py                   # 1024x512, batch 1 (ResNet-101 takes a while on a CPU)
    python benchmarks/model_sizes.py --size 256x128    # quicker; FLOPs scale with the pixel count
    python benchmarks/model_sizes.py --no-flops        # parameters only

GFLOPs are torch.utils.flop_counter's (one multiply-add = 2 FLOPs) of one forward pass, random init, 19 classes,
ModelConfig defaults otherwise (PSP bottleneck of 128 channels, not the released 512; ASPP rates 6-24).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from syn2real.config import ModelConfig
from syn2real.engine.flops import count_flops
from syn2real.models import build_model

#: (backbone, head, published parameters in millions or None, what the published figure counts).
MODELS = [
    ("resnet101", "psp", None, ""),
    ("efficientnet_lite0", "psp", None, ""),
    # Long et al., CVPR 2015, Table 1: FCN-VGG16, 134M (PASCAL VOC's 21 classes).
    ("vgg16", "fcn8s", 134.0, "FCN-VGG16, Long et al. 2015 Table 1"),
    # Yu et al., CVPR 2017 / fyu/drn README: the ImageNet classifiers (backbone + 1000-class 1x1 conv).
    ("drn_c_26", "aspp", 21.1, "DRN-C-26 classifier, Yu et al. 2017"),
    ("drn_d_22", "aspp", 16.4, "DRN-D-22 classifier, Yu et al. 2017"),
    ("resnet101", "aspp", None, ""),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024x512", help="WxH of the input (default 1024x512)")
    parser.add_argument("--no-flops", action="store_true", help="count parameters only")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    print(f"{'backbone':<20}{'head':<8}{'params M':>10}{'backbone M':>12}{'GFLOPs':>10}  published")
    for backbone, head, published, what in MODELS:
        model = build_model(ModelConfig(backbone=backbone, head=head, pretrained=None, num_classes=19)).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        backbone_params = sum(p.numel() for p in model.backbone.parameters()) / 1e6
        gflops = "-"
        if not args.no_flops:
            with torch.no_grad():
                gflops = f"{count_flops(lambda: model(torch.rand(1, 3, height, width))) / 1e9:.1f}"  # noqa: B023
        note = f"{published:.1f}M ({what})" if published else ""
        print(f"{backbone:<20}{head:<8}{params:>10.1f}{backbone_params:>12.1f}{gflops:>10}  {note}", flush=True)


if __name__ == "__main__":
    main()
