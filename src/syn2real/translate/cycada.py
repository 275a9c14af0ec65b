"""CyCADA's semantic-consistency loss (Hoffman, Tzeng, Park, Zhu, Isola, Saenko, Efros and Darrell, "CyCADA:
Cycle-Consistent Adversarial Domain Adaptation", ICML 2018, Eq. 5):

    L_sem = CE(f_S(G_ST(x_s)), argmax f_S(x_s)) + CE(f_S(G_TS(x_t)), argmax f_S(x_t))

with f_S a segmenter trained on the source and FROZEN: a translation must not change what the source model
sees in the image (no label flipping). Weight 1 on each direction, as TLlib's `examples/domain_adaptation/
image_translation/cycada.py` and the CyCADA CycleGAN fork (`cycle_gan_semantic_model.py`) add the two terms to
the generator loss unweighted. CyCADA's second step, output/feature adaptation on the translated frames, is a
training recipe (e.g. AdaptSegNet on the `translate apply` output), not part of the translator.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from syn2real.errors import WeightsError
from syn2real.io import read_json

#: CyCADA's weight on each direction of the semantic-consistency loss.
LAMBDA_SEMANTIC = 1.0


def load_segmenter(path: str | Path) -> nn.Module:
    """A frozen segmenter (eval mode, no gradients for its weights) from a `syn2real train` run folder (its
    config.yaml and last checkpoint) or a `.safetensors` checkpoint carrying its model config."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from syn2real.config import ModelConfig, from_dict, load_config
    from syn2real.models import build_model

    path = Path(path).expanduser()
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            raise WeightsError(f"semantic segmenter {path}: not a run folder (no config.yaml)")
        model_cfg = load_config(path / "config.yaml").model
        last = read_json(path / "checkpoints" / "last.json", "checkpoint index")
        weights = path / "checkpoints" / last["weights"]
    elif path.suffix == ".safetensors" and path.is_file():
        import json

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
        except (SafetensorError, OSError) as e:
            raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
        if "syn2real.model" not in meta:
            raise WeightsError(f"{path}: no model config in its metadata; give the run folder instead")
        model_cfg = from_dict(ModelConfig, json.loads(meta["syn2real.model"]), "syn2real.model")
        weights = path
    else:
        raise WeightsError(f"semantic segmenter {path}: give a run folder or a .safetensors checkpoint")
    model = build_model(dataclasses.replace(model_cfg, pretrained=None))
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise WeightsError(f"{weights}: cannot load the semantic segmenter ({str(e).splitlines()[0]})") from None
    return freeze(model)


def freeze(model: nn.Module) -> nn.Module:
    """`model` in eval mode with no trainable parameters (it still passes gradients to its input)."""
    model.eval()
    model.requires_grad_(False)
    return model


class SemanticConsistency(nn.Module):
    """L_sem for images in [-1, 1] (the generators' range); `segmenter` takes [0, 1] images (a Segmentor)."""

    def __init__(self, segmenter: nn.Module, weight: float = LAMBDA_SEMANTIC):
        super().__init__()
        self.segmenter = freeze(segmenter)
        self.weight = weight

    def train(self, mode: bool = True) -> SemanticConsistency:  # f_S stays frozen, BatchNorm in eval mode
        return super().train(False)

    def direction(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """CE(f_S(fake), argmax f_S(real)): the translation keeps the source model's labels."""
        with torch.no_grad():
            labels = self.segmenter((real + 1) / 2).argmax(1)
        return F.cross_entropy(self.segmenter((fake + 1) / 2).float(), labels)

    def forward(self, a: torch.Tensor, fake_b: torch.Tensor, b: torch.Tensor, fake_a: torch.Tensor) -> torch.Tensor:
        return self.weight * (self.direction(a, fake_b) + self.direction(b, fake_a))
