"""Image translation from the source domain toward the target domain (applied to float images in [0, 1]).

- `fda`: Fourier Domain Adaptation's low-frequency amplitude swap (no training).
- `cyclegan`: CycleGAN (Zhu et al., ICCV 2017); `cycada`: CyCADA's semantic-consistency loss (Hoffman et al.,
  ICML 2018); `dranet`: a DRANet-style content/style translator (Lee et al., CVPR 2021).
- `perceptual`: the frozen ImageNet network, perceptual and Gram (style) losses (Johnson et al., ECCV 2016);
  `kid`: Kernel Inception Distance (Bińkowski et al., ICLR 2018).
- `config`: the translator config and presets; `train`: training, `load_translator`, apply to a dataset, score.
"""

from __future__ import annotations

from syn2real.translate.fda import fda_source_to_target, low_frequency_mask


def load_translator(run_dir, checkpoint=None):
    """The trained translator of a `syn2real translate train` run folder: an eval-mode, frozen module mapping
    float [0, 1] (N, 3, H, W) source batches to translated [0, 1] batches (see `translate.train.Translator`)."""
    from syn2real.translate.train import load_translator as load

    return load(run_dir, checkpoint)


__all__ = ["fda_source_to_target", "load_translator", "low_frequency_mask"]
