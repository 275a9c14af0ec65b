"""A DRANet-style content/style translator (Lee, Cho and Im, "DRANet: Disentangling Representation and Adaptation
Networks for Unsupervised Cross-Domain Adaptation", CVPR 2021), smaller and exemplar-free.

As DRANet: ONE encoder E for every domain; a separator S that takes the features F = E(x) and gives the content
C = S(F, domain) (domain-specific normalisation scales, DRANet's w_X) and the style as the remainder F - C; ONE
decoder G that recombines a content with a style; every direction in one model (source -> target and target ->
source here). Losses, with DRANet's weights for GTA <-> Cityscapes (`loss_functions.py::loss_weights`):

- reconstruction 10: L1(G(C_x + s_x), x);
- consistency 1: the translation's own content and style, re-encoded, match C_x and s_y (L1);
- content perceptual 1: MSE between the frozen network's content features of x -> y and of x (Johnson et al.);
- style perceptual 5e3: squared distance between Gram matrices of x -> y and of y (Johnson et al.);
- GAN 0.5 (generator and discriminator), hinge loss, one PatchGAN per domain.
DRANet's lr is 1e-3 (Adam; betas (0.5, 0.999) here as CycleGAN's).

Where this differs, so that `translate apply` needs no target exemplar per frame: the style code is the
per-channel spatial mean s of the remainder F - C (a vector), broadcast over the content map when recombined,
and every domain keeps a running mean of its style codes (momentum 0.99); translating a source frame uses the
target domain's mean style. DRANet's CADT module (content-adaptive style selection for segmentation) is left out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from syn2real.translate.cyclegan import PatchDiscriminator, gan_loss, generator_gan_loss

# DRANet's loss weights for segmentation (GTA <-> Cityscapes).
LAMBDA_RECON = 10.0
LAMBDA_CONSISTENCY = 1.0
LAMBDA_CONTENT = 1.0
LAMBDA_STYLE = 5e3
LAMBDA_GAN = 0.5
STYLE_MOMENTUM = 0.99


class _ResBlock(nn.Module):
    """x + conv-ReLU-conv(x), no normalisation: the encoder's features must keep their style statistics."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.ReLU(True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Separator(nn.Module):
    """C = S(F, d): two conv blocks, each instance-normalised with a per-domain scale and shift (DRANet's
    domain-specific normalisation), the features' statistics being what the style is made of."""

    def __init__(self, channels: int, domains: int = 2, blocks: int = 2):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
                                   for _ in range(blocks))
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.scale = nn.Parameter(torch.ones(domains, blocks, channels))
        self.shift = nn.Parameter(torch.zeros(domains, blocks, channels))

    def forward(self, features: torch.Tensor, domain: int) -> torch.Tensor:
        x = features
        for i, conv in enumerate(self.convs):
            x = self.norm(conv(x)) * self.scale[domain, i].view(1, -1, 1, 1) + self.shift[domain, i].view(1, -1, 1, 1)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x


class DRANet(nn.Module):
    """Encoder, separator, decoder, one discriminator per domain. Domain 0 is the source, 1 the target; images
    in [-1, 1], sides multiples of 4."""

    def __init__(self, ngf: int = 64, n_blocks: int = 4, ndf: int = 64, n_layers_d: int = 3, domains: int = 2,
                 lambda_recon: float = LAMBDA_RECON, lambda_consistency: float = LAMBDA_CONSISTENCY,
                 lambda_content: float = LAMBDA_CONTENT, lambda_style: float = LAMBDA_STYLE,
                 lambda_gan: float = LAMBDA_GAN, gan_mode: str = "hinge"):
        super().__init__()
        width = ngf * 4
        self.encoder = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.ReLU(True),
            nn.Conv2d(ngf, ngf * 2, 3, stride=2, padding=1), nn.ReLU(True),
            nn.Conv2d(ngf * 2, width, 3, stride=2, padding=1), nn.ReLU(True),
            *[_ResBlock(width) for _ in range(n_blocks // 2)])
        self.separator = Separator(width, domains)
        self.decoder = nn.Sequential(
            *[_ResBlock(width) for _ in range(n_blocks - n_blocks // 2)],
            nn.ConvTranspose2d(width, ngf * 2, 3, stride=2, padding=1, output_padding=1), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 3, stride=2, padding=1, output_padding=1), nn.ReLU(True),
            nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh())
        self.discriminators = nn.ModuleList(PatchDiscriminator(ndf=ndf, n_layers=n_layers_d, norm="none")
                                            for _ in range(domains))
        # The running mean style code of each domain: what `translate` recombines a source content with.
        self.register_buffer("style_mean", torch.zeros(domains, width))
        self.register_buffer("style_seen", torch.zeros(domains, dtype=torch.bool))
        self.lambdas = {"recon": lambda_recon, "consistency": lambda_consistency, "content": lambda_content,
                        "style": lambda_style, "gan": lambda_gan}
        self.gan_mode = gan_mode

    def generator_parameters(self):
        return [*self.encoder.parameters(), *self.separator.parameters(), *self.decoder.parameters()]

    def discriminator_parameters(self):
        return list(self.discriminators.parameters())

    def split(self, x: torch.Tensor, domain: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(content map (N, C, h, w), style code (N, C)) of images `x` of `domain`."""
        features = self.encoder(x)
        content = self.separator(features, domain)
        return content, (features - content).mean(dim=(2, 3))

    def combine(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.decoder(content + style.reshape(*style.shape, 1, 1))

    def translate(self, x: torch.Tensor, source: int = 0, target: int = 1) -> torch.Tensor:
        """Images of domain `source` with the mean style of domain `target`."""
        content, _ = self.split(x, source)
        style = self.style_mean[target].expand(x.shape[0], -1)
        return self.combine(content, style)

    @torch.no_grad()
    def _track_style(self, domain: int, style: torch.Tensor) -> None:
        mean = style.detach().mean(0)
        if not self.style_seen[domain]:
            self.style_mean[domain] = mean
            self.style_seen[domain] = True
        else:
            self.style_mean[domain].lerp_(mean, 1 - STYLE_MOMENTUM)

    def generator_losses(self, a: torch.Tensor, b: torch.Tensor, semantic=None,
                         perceptual=None) -> tuple[torch.Tensor, dict, dict]:
        """(total, parts, images) for source batch `a` and target batch `b`; `perceptual` is a
        `PerceptualLoss` (needed for the content and style terms), `semantic` as in CycleGAN."""
        lam = self.lambdas
        c_a, s_a = self.split(a, 0)
        c_b, s_b = self.split(b, 1)
        if self.training:
            self._track_style(0, s_a)
            self._track_style(1, s_b)
        rec_a, rec_b = self.combine(c_a, s_a), self.combine(c_b, s_b)
        # In training each image takes the style of the other domain's image at its index (exemplar styles, as
        # DRANet); only inference uses the domain's mean style.
        fake_b, fake_a = self.combine(c_a, s_b), self.combine(c_b, s_a)
        parts = {"recon": lam["recon"] * (F.l1_loss(rec_a, a) + F.l1_loss(rec_b, b))}
        c_fb, s_fb = self.split(fake_b, 1)
        c_fa, s_fa = self.split(fake_a, 0)
        parts["consistency"] = lam["consistency"] * (F.l1_loss(c_fb, c_a) + F.l1_loss(s_fb, s_b)
                                                     + F.l1_loss(c_fa, c_b) + F.l1_loss(s_fa, s_a))
        if perceptual is not None:
            to01 = lambda t: (t + 1) / 2
            content_ab, style_ab = perceptual(to01(fake_b), to01(a), to01(b))
            content_ba, style_ba = perceptual(to01(fake_a), to01(b), to01(a))
            parts["content"] = lam["content"] * (content_ab + content_ba)
            parts["style"] = lam["style"] * (style_ab + style_ba)
        parts["g_gan"] = lam["gan"] * (generator_gan_loss(self.discriminators[1](fake_b), self.gan_mode)
                                       + generator_gan_loss(self.discriminators[0](fake_a), self.gan_mode))
        if semantic is not None:
            parts["semantic"] = semantic(a, fake_b, b, fake_a)
        return sum(parts.values()), parts, {"fake_b": fake_b, "fake_a": fake_a, "rec_a": rec_a, "rec_b": rec_b}

    def discriminator_losses(self, a, b, fake_a, fake_b) -> tuple[torch.Tensor, dict]:
        lam, mode = self.lambdas["gan"], self.gan_mode
        d_a, d_b = self.discriminators
        parts = {
            "d_b": lam * (gan_loss(d_b(b), True, mode) + gan_loss(d_b(fake_b.detach()), False, mode)),
            "d_a": lam * (gan_loss(d_a(a), True, mode) + gan_loss(d_a(fake_a.detach()), False, mode)),
        }
        return parts["d_a"] + parts["d_b"], parts

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass
