"""CycleGAN (Zhu, Park, Isola and Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks", ICCV 2017), as the authors' PyTorch code (`junyanz/pytorch-CycleGAN-and-pix2pix`) builds it:

- generators: Johnson et al.'s ResNet (c7s1-64, d128, d256, 9 residual blocks at 256 px, 6 at 128 px, u128, u64,
  c7s1-3, tanh), instance norm, reflection padding; images in [-1, 1];
- discriminators: the 70x70 PatchGAN (C64-C128-C256-C512, 4x4 convolutions, LeakyReLU 0.2, no norm on the first);
- least-squares GAN (Mao et al., ICCV 2017): real -> 1, fake -> 0, mean squared error;
- losses: cycle L1 with lambda 10 on both cycles, identity L1 with weight 0.5 * lambda;
- a 50-image history of generated images for the discriminators (Shrivastava et al., CVPR 2017), each query
  returning a stored image with probability 0.5;
- Adam lr 2e-4, betas (0.5, 0.999), the lr constant for the first half of training, then linear decay to 0
  (`translate.train`).

CyCADA's semantic-consistency loss is an option of `CycleGAN.generator_losses` (`translate.cycada`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from syn2real.errors import ConfigError


def _norm(kind: str, channels: int) -> nn.Module:
    # pytorch-CycleGAN's `norm=instance`: InstanceNorm2d(affine=False, track_running_stats=False).
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"translator norm must be instance, batch or none, got {kind!r}")


class ResnetBlock(nn.Module):
    """x + [reflect-pad, conv3x3, norm, ReLU, reflect-pad, conv3x3, norm](x)."""

    def __init__(self, channels: int, norm: str = "instance"):
        super().__init__()
        bias = norm == "instance"  # the authors' use_bias: no bias before a norm with its own affine
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """Johnson et al.'s image transformation network as CycleGAN uses it: [-1, 1] images in and out.

    ngf 64 and 9 blocks for 256 px images, 6 blocks for 128 px (Zhu et al., Appendix 7.2). Two stride-2 steps:
    sides must be multiples of 4 (`Translator` pads).

    `residual` (not in Zhu et al.): the network's output, without the tanh, is a correction added to the input
    (clipped to [-1, 1]); with the last convolution started at zero (`build_translator`) the generator starts as
    the identity, so a short training run changes the look without first blurring the content away, as SimGAN's
    refiner (Shrivastava et al., CVPR 2017) keeps a synthetic image's content while making it look real.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", residual: bool = False):
        super().__init__()
        self.residual = residual
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                                   _norm(norm, ngf), nn.ReLU(True)]
        for i in range(2):  # d128, d256
            mult = 2 ** i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                       _norm(norm, ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm) for _ in range(n_blocks)]
        for i in range(2):  # u128, u64
            mult = 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                          bias=bias),
                       _norm(norm, ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7)]
        if not residual:
            layers.append(nn.Tanh())
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.model(x)).clamp(-1.0, 1.0) if self.residual else self.model(x)

    def start_as_identity(self) -> None:
        """A residual generator's correction set to zero: it returns its input until it learns otherwise."""
        last = self.model[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)


class PatchDiscriminator(nn.Module):
    """The PatchGAN: one real/fake score per overlapping patch; with 3 layers each score sees 70x70 pixels.

    C64 (no norm) - C128 - C256 (stride 2) - C512 (stride 1) - 1 channel, 4x4 kernels, padding 1, LeakyReLU 0.2.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       _norm(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def receptive_field(module: nn.Module) -> int:
    """The receptive field (pixels on a side) of one output of a chain of convolutions, from kernels and strides
    (r = 1 + sum (k - 1) * prod of the strides before): 70 for the 3-layer PatchGAN."""
    field, jump = 1, 1
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            field += (layer.kernel_size[0] - 1) * jump
            jump *= layer.stride[0]
    return field


# ---- losses ------------------------------------------------------------------------------------------------


def gan_loss(prediction: torch.Tensor, real: bool, mode: str = "lsgan") -> torch.Tensor:
    """A discriminator's loss on `prediction` for a real or a fake batch.

    lsgan (CycleGAN): mean (D - 1)^2 for real, mean D^2 for fake. vanilla: BCE with logits. hinge (DRANet):
    mean relu(1 - D) for real, mean relu(1 + D) for fake. Generators use `generator_gan_loss`.
    """
    if mode == "lsgan":
        target = torch.ones_like(prediction) if real else torch.zeros_like(prediction)
        return F.mse_loss(prediction, target)
    if mode == "vanilla":
        target = torch.ones_like(prediction) if real else torch.zeros_like(prediction)
        return F.binary_cross_entropy_with_logits(prediction, target)
    if mode == "hinge":
        return F.relu(1.0 - prediction).mean() if real else F.relu(1.0 + prediction).mean()
    raise ConfigError(f"gan_mode must be lsgan, vanilla or hinge, got {mode!r}")


def generator_gan_loss(prediction: torch.Tensor, mode: str = "lsgan") -> torch.Tensor:
    """What the generator minimises to fool the discriminator (hinge: -mean D, as SAGAN / DRANet)."""
    return -prediction.mean() if mode == "hinge" else gan_loss(prediction, True, mode)


def cycle_loss(original: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """||G_BA(G_AB(a)) - a||_1, averaged over pixels (the authors' nn.L1Loss)."""
    return F.l1_loss(reconstructed, original)


def identity_loss(image: torch.Tensor, mapped: torch.Tensor) -> torch.Tensor:
    """||G_AB(b) - b||_1: a generator fed an image of its output domain should leave it alone."""
    return F.l1_loss(mapped, image)


class ImageHistory:
    """The history of generated images a discriminator trains on (Shrivastava et al., CVPR 2017; CycleGAN keeps
    50). Until full, a query stores its images and returns them; then, for each image, with probability 0.5
    a random stored image is returned and replaced by the new one, else the new image itself is returned.

    It draws from its own generator, so a run is repeatable and resumes where it stopped (`state_dict`).
    """

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size <= 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator) > 0.5:
                index = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"images": [i.cpu() for i in self.images], "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.images = [i.clone() for i in state["images"]]
        self.generator.set_state(state["generator"])


# ---- the model ---------------------------------------------------------------------------------------------


class CycleGAN(nn.Module):
    """Two generators (A -> B: source -> target, B -> A) and two PatchGAN discriminators, with their losses.

    Domain A is the source (synthetic), B the target (real). Images here are in [-1, 1].
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 9, ndf: int = 64, n_layers_d: int = 3, norm: str = "instance",
                 gan_mode: str = "lsgan", lambda_cycle: float = 10.0, lambda_identity: float = 0.5,
                 pool_size: int = 50, seed: int = 0, residual: bool = False):
        super().__init__()
        self.g_ab = ResnetGenerator(ngf=ngf, n_blocks=n_blocks, norm=norm, residual=residual)
        self.g_ba = ResnetGenerator(ngf=ngf, n_blocks=n_blocks, norm=norm, residual=residual)
        self.d_a = PatchDiscriminator(ndf=ndf, n_layers=n_layers_d, norm=norm)
        self.d_b = PatchDiscriminator(ndf=ndf, n_layers=n_layers_d, norm=norm)
        self.gan_mode = gan_mode
        self.lambda_cycle = lambda_cycle
        self.lambda_identity = lambda_identity  # relative to lambda_cycle, as the authors' --lambda_identity
        self.pool_a = ImageHistory(pool_size, seed + 1)
        self.pool_b = ImageHistory(pool_size, seed + 2)

    def generator_parameters(self):
        return [*self.g_ab.parameters(), *self.g_ba.parameters()]

    def discriminator_parameters(self):
        return [*self.d_a.parameters(), *self.d_b.parameters()]

    def translate(self, a: torch.Tensor) -> torch.Tensor:
        """Source -> target, [-1, 1]."""
        return self.g_ab(a)

    def generator_losses(self, a: torch.Tensor, b: torch.Tensor, semantic=None) -> tuple[torch.Tensor, dict, dict]:
        """(total generator loss, its parts, the images made) for source batch `a` and target batch `b`.

        `semantic(a, fake_b, b, fake_a) -> loss` adds CyCADA's semantic consistency (already weighted).
        """
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        rec_a, rec_b = self.g_ba(fake_b), self.g_ab(fake_a)
        parts = {
            "g_gan_ab": generator_gan_loss(self.d_b(fake_b), self.gan_mode),
            "g_gan_ba": generator_gan_loss(self.d_a(fake_a), self.gan_mode),
            "cycle_a": self.lambda_cycle * cycle_loss(a, rec_a),
            "cycle_b": self.lambda_cycle * cycle_loss(b, rec_b),
        }
        if self.lambda_identity > 0:
            weight = self.lambda_cycle * self.lambda_identity
            parts["idt_b"] = weight * identity_loss(b, self.g_ab(b))
            parts["idt_a"] = weight * identity_loss(a, self.g_ba(a))
        if semantic is not None:
            parts["semantic"] = semantic(a, fake_b, b, fake_a)
        total = sum(parts.values())
        return total, parts, {"fake_b": fake_b, "fake_a": fake_a, "rec_a": rec_a, "rec_b": rec_b}

    def discriminator_losses(self, a: torch.Tensor, b: torch.Tensor, fake_a: torch.Tensor,
                             fake_b: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Each discriminator on a real batch and on a batch from the history, halved (the authors' 0.5)."""
        fake_b = self.pool_b.query(fake_b)
        fake_a = self.pool_a.query(fake_a)
        parts = {
            "d_b": 0.5 * (gan_loss(self.d_b(b), True, self.gan_mode) + gan_loss(self.d_b(fake_b.detach()), False,
                                                                                self.gan_mode)),
            "d_a": 0.5 * (gan_loss(self.d_a(a), True, self.gan_mode) + gan_loss(self.d_a(fake_a.detach()), False,
                                                                                self.gan_mode)),
        }
        return parts["d_a"] + parts["d_b"], parts

    def extra_state(self) -> dict:
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.pool_a.load_state_dict(state["pool_a"])
        self.pool_b.load_state_dict(state["pool_b"])
