"""Source-image randomisation for domain generalisation: every source batch gets a new random look, so the model
cannot lean on the synthetic renderer's textures and colours. No target image is needed, and it works with every
method: the trainer applies `build_source_style(cfg.data)` to each source batch's images (`data.source_style`,
in the listed order) on the training device; labels are not touched.

A style is a frozen dataclass registered in `SOURCE_STYLES`: its fields are its options, with the paper's values
as defaults (`data.source_style_params.<name>` overrides them, type-checked by the config layer's `from_dict`),
`__post_init__` checks their values and `__call__` maps float images (N, 3, H, W) in [0, 1] -- the model's input,
before it normalises -- to images of the same kind. Randomness comes from torch's global generators, which the
trainer saves with each checkpoint, so a resumed run draws the same styles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from syn2real.config import DataConfig, from_dict
from syn2real.errors import ConfigError
from syn2real.registry import Registry

#: Source styles by name (`data.source_style`): frozen dataclasses mapping an image batch to a restyled one.
SOURCE_STYLES: Registry[type] = Registry("source style", "data.source_style")


def _check(style: str, option: str, ok: bool, must: str, value) -> None:
    if not ok:
        shown = list(value) if isinstance(value, tuple) else value
        raise ConfigError(f"data.source_style_params.{style}.{option} must {must}; got {shown!r}")


@SOURCE_STYLES.register("randconv")
@dataclass(frozen=True)
class RandConv:
    """Random convolutions (Xu et al., "Robust and Generalizable Visual Representation Learning via Random
    Convolutions", ICLR 2021), the mixing variant RandConv_mix.

    With probability `p` a batch goes through one random 3->3 convolution: kernel size drawn from `kernel_sizes`
    (the paper's multi-scale 1-7: 1, 3, 5, 7), weights ~ N(0, 1/(3k^2)) (Kaiming normal with gain 1, the authors'
    `kaiming_normal_(nonlinearity="conv2d")`), no bias; with `mix` the result is blended with the input by
    alpha ~ U(0, 1). Otherwise the batch keeps its original look (the paper uses the original data with
    probability 0.5, hence p 0.5). One filter and one alpha per batch, as the authors' code draws them per iteration.

    The authors convolve normalised images, whose zero padding is the mean colour, and optionally clamp to the
    valid range. Here the images are in [0, 1], so the filter runs on each image minus its per-channel mean, and
    its output is re-standardised to the input image's own mean and standard deviation (over all channels and
    pixels: brightness and contrast stay, colours and textures change) before mixing and clamping to [0, 1]."""

    p: float = 0.5
    kernel_sizes: tuple[int, ...] = (1, 3, 5, 7)
    mix: bool = True

    def __post_init__(self):
        _check("randconv", "p", 0 <= self.p <= 1, "lie in [0, 1]", self.p)
        _check("randconv", "kernel_sizes", bool(self.kernel_sizes) and all(k >= 1 and k % 2 for k in self.kernel_sizes),
               "be a non-empty list of odd sizes (so the image keeps its size)", self.kernel_sizes)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return images
        k = self.kernel_sizes[int(torch.randint(len(self.kernel_sizes), ()))]
        weight = random_filter(k).to(images)
        centred = images - images.mean(dim=(2, 3), keepdim=True)
        out = _match_statistics(F.conv2d(centred, weight, padding=k // 2), images)
        if self.mix:
            alpha = float(torch.rand(()))
            out = alpha * out + (1 - alpha) * images
        return out.clamp(0, 1)


def random_filter(k: int) -> torch.Tensor:
    """A (3, 3, k, k) RandConv filter: N(0, 1/fan_in), fan_in = 3 k^2, from torch's global CPU generator."""
    return torch.randn(3, 3, k, k) / math.sqrt(3 * k * k)


def _match_statistics(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`x` shifted and scaled per image to the mean and standard deviation (over C, H, W) of `like`."""
    dims = (1, 2, 3)
    standard = (x - x.mean(dim=dims, keepdim=True)) / x.std(dim=dims, keepdim=True).clamp_min(1e-6)  # flat stays flat
    return standard * like.std(dim=dims, keepdim=True) + like.mean(dim=dims, keepdim=True)


@SOURCE_STYLES.register("pasta")
@dataclass(frozen=True)
class PASTA:
    """Proportional amplitude spectrum augmentation (Chattopadhyay et al., "PASTA: Proportional Amplitude Spectrum
    Training Augmentation for Syn-to-Real Domain Generalization", ICCV 2023).

    Each channel's Fourier amplitude is multiplied, per frequency, by eps ~ N(1, sigma^2) with
    sigma = (alpha * r)^k + beta, r the frequency's radius over the largest one (0 at DC, 1 at the corner of the
    spectrum): high frequencies, which synthetic images lack, are perturbed most. The phase is kept, then the
    inverse FFT's real part is clamped to [0, 1]. Every image, every batch. Defaults: the paper's semantic
    segmentation setting, alpha 3, k 2, beta 0.25.

    As in the authors' code, eps is drawn independently for each frequency of the full 2-D spectrum and may be
    negative (a sign flip); r is measured in cycles per pixel, which for square images is the authors' grid."""

    alpha: float = 3.0
    k: float = 2.0
    beta: float = 0.25

    def __post_init__(self):
        for option in ("alpha", "k", "beta"):
            value = getattr(self, option)
            _check("pasta", option, math.isfinite(value) and value >= 0, "be >= 0", value)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.fft2(images)
        sigma = pasta_sigma(*images.shape[-2:], self.alpha, self.k, self.beta).to(images.device)
        # A real factor scales a frequency's amplitude and leaves its phase.
        eps = 1 + sigma * torch.randn(spectrum.shape, device=images.device)
        return torch.fft.ifft2(spectrum * eps).real.clamp(0, 1)


def pasta_sigma(height: int, width: int, alpha: float, k: float, beta: float) -> torch.Tensor:
    """PASTA's perturbation strength per frequency of an (H, W) FFT (unshifted): (alpha * r)^k + beta."""
    fy, fx = torch.fft.fftfreq(height), torch.fft.fftfreq(width)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    return (alpha * radius / radius.max()) ** k + beta


class SourceStyle:
    """Styles applied in order to a batch of source images (no gradients: they are data)."""

    def __init__(self, styles: Sequence):
        self.styles = tuple(styles)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        for style in self.styles:
            images = style(images)
        return images

    def __repr__(self) -> str:
        return f"SourceStyle({', '.join(map(repr, self.styles))})"


def build_source_style(data: DataConfig) -> SourceStyle:
    """The styles `data.source_style` names, with `data.source_style_params`; an unknown name, option or bad value
    is a one-line ConfigError. No styles: the identity."""
    return SourceStyle(from_dict(SOURCE_STYLES.get(name), data.source_style_params.get(name, {}),
                                 f"data.source_style_params.{name}")
                       for name in data.source_style)
