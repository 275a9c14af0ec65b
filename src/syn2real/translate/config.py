"""The translator config: one dataclass, its presets, and loading from a preset name or a YAML file.

Presets live here, in Python, rather than as YAML under `configs/`: the top-level files of `configs/` are
segmentation-training presets and its subfolders are their building blocks (each must parse as a part of
`syn2real.config.Config` and be used by a preset, `tests/test_config.py`), which a translator config is not.
A YAML file may start from a preset with `preset: cyclegan_cpu` and change any key; dotted overrides
(`iters=500`, `source.root=/data/gta5`) apply on top, as for `syn2real train`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from syn2real.config import (
    DatasetConfig,
    apply_override,
    from_dict,
    to_dict,
    yaml_mapping,
)
from syn2real.errors import ConfigError

MODELS = ("cyclegan", "dranet")
#: The run folder's copy of its config (absolute paths), read by `--resume`, `apply` and `load_translator`.
CONFIG_FILE = "translator.yaml"


@dataclass
class TranslatorConfig:
    model: str = "cyclegan"  # cyclegan (+ CyCADA with `semantic`) | dranet
    name: str = ""  # run folder name under out_dir (default: the preset's name)
    out_dir: str = "runs/translate"
    source: DatasetConfig | None = None  # domain A (synthetic); labels are not read
    target: DatasetConfig | None = None  # domain B (real)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    # --- data: the shorter side resized to `short_side` (None: native), then random crops, flips.
    short_side: int | None = None
    crop: tuple[int, int] = (256, 256)  # (H, W); Zhu et al.: 256x256 crops of 286-px images
    hflip: bool = True
    batch_size: int = 1  # Zhu et al.: 1
    cache_images: bool = True  # keep decoded (resized) frames in memory
    # --- schedule: Zhu et al.: Adam 2e-4, betas (0.5, 0.999), lr constant, then linear decay to 0 over the
    # second half (100 + 100 epochs); TLlib: 20 + 20 epochs x 5000 iterations.
    iters: int = 200_000
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    decay_start: float = 0.5  # fraction of `iters` after which the lr falls linearly to 0
    # --- networks: Zhu et al.: ngf = ndf = 64, 9 ResNet blocks at 256 px (6 at 128 px), 3-layer (70x70) PatchGAN.
    ngf: int = 64
    n_blocks: int = 9
    ndf: int = 64
    n_layers_d: int = 3
    norm: str = "instance"  # instance (Zhu et al.) | batch | none
    # CycleGAN's generators add a learned correction to their input, starting as the identity (not in Zhu et al.;
    # see cyclegan.ResnetGenerator): for short runs, whose plain generators are still blurring the content.
    residual: bool = False
    gan_mode: str = "lsgan"  # lsgan (Zhu et al.) | vanilla | hinge (DRANet)
    # --- CycleGAN losses: lambda 10 on each cycle, identity 0.5 * lambda, a 50-image history.
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    # --- CyCADA: a frozen source segmenter (a `syn2real train` run folder or .safetensors) -> semantic consistency.
    semantic: str | None = None
    lambda_semantic: float = 1.0  # TLlib / CyCADA's CycleGAN fork: 1 on each direction
    # --- DRANet (Lee et al., seg GTA <-> Cityscapes): recon 10, consistency 1, content 1, style 5e3, GAN 0.5.
    lambda_recon: float = 10.0
    lambda_consistency: float = 1.0
    lambda_content: float = 1.0
    # DRANet's 5e3 is for VGG Gram matrices (set it with a VGG-16 `features` file). EfficientNet-Lite0's block
    # outputs are not ReLU'd and larger: the raw style distance between CamVid frames is 0.01-0.2 here, so 5e3 would
    # drown every other term; 50 puts it on the scale of the content term (measured 4-12 between CamVid frames).
    lambda_style: float = 50.0
    lambda_gan: float = 0.5
    # The frozen ImageNet network of the perceptual and style losses: efficientnet_lite0 (offline weights) or a
    # VGG-16 state dict file (torchvision / timm key names), as Johnson et al. used.
    features: str = "efficientnet_lite0"
    # --- bookkeeping
    checkpoint_every: int = 500
    sample_every: int = 250
    log_every: int = 50
    keep_checkpoints: int = 2
    extra: dict[str, str] = field(default_factory=dict)  # free-form notes kept with the run


_CPU_NOTE = "2 CPU cores, <= 30 minutes"

PRESETS: dict[str, TranslatorConfig] = {
    # Zhu et al.'s CycleGAN as published (for a GPU): 64 filters, 9 blocks, 256x256 crops, 200k iterations.
    "cyclegan": TranslatorConfig(),
    # A narrower CycleGAN for 2 CPU cores in <= 30 minutes: 32 filters, 6 blocks (Zhu et al.'s 128-px generator),
    # 128x128 crops of frames whose shorter side is 256, 1200 iterations (600 + 600 decay). Measured: 1.35 s per
    # iteration on ONE thread of the shared 2-core machine (27 minutes); cycada_cpu and dranet_cpu (batch 2,
    # 1.7 s) have fewer iterations for their extra networks. Residual generators: at 1200 iterations the plain
    # ones still blur the content away (docs/RESULTS.md, benchmark R translation).
    "cyclegan_cpu": TranslatorConfig(ngf=32, ndf=32, n_blocks=6, short_side=256, crop=(128, 128), iters=1200,
                                     residual=True, checkpoint_every=200, sample_every=200, log_every=20,
                                     extra={"budget": _CPU_NOTE}),
    # CyCADA (Hoffman et al.): CycleGAN + semantic consistency; set `semantic=RUN` (a source-only run folder).
    "cycada": TranslatorConfig(semantic=None, extra={"needs": "semantic=RUN"}),
    "cycada_cpu": TranslatorConfig(ngf=32, ndf=32, n_blocks=6, short_side=256, crop=(128, 128), iters=1000,
                                   residual=True, checkpoint_every=200, sample_every=200, log_every=20,
                                   extra={"budget": _CPU_NOTE, "needs": "semantic=RUN"}),
    # DRANet-style (Lee et al.): lr 1e-3, batch 2, hinge GAN, 512-px images (crops 256x512 here).
    "dranet": TranslatorConfig(model="dranet", lr=1e-3, batch_size=2, short_side=512, crop=(256, 512),
                               n_blocks=4, gan_mode="hinge", iters=100_000, decay_start=0.5),
    "dranet_cpu": TranslatorConfig(model="dranet", lr=1e-3, batch_size=2, short_side=256, crop=(128, 128),
                                   ngf=32, ndf=32, n_blocks=4, gan_mode="hinge", iters=900,
                                   checkpoint_every=200, sample_every=200, log_every=20,
                                   extra={"budget": _CPU_NOTE}),
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def load_translator_config(config: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TranslatorConfig:
    """A preset name, a YAML file (optionally `preset: NAME` plus keys) or None (`cyclegan_cpu`), then dotted
    overrides; every value checked. Relative dataset roots become absolute."""
    name = "cyclegan_cpu"
    if config is None or str(config) in PRESETS:
        name = str(config or name)
        data = to_dict(PRESETS[name])
        where = f"translator preset {name}"
    else:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"--config {config}: neither a translator preset ({', '.join(preset_names())}) "
                              f"nor a YAML file")
        own = yaml_mapping(path)
        base = own.pop("preset", None)
        if base is not None and base not in PRESETS:
            raise ConfigError(f"{path}: preset {base!r} is not one of {', '.join(preset_names())}")
        name = base or path.stem
        data = {**to_dict(PRESETS[base] if base else TranslatorConfig()), **own}
        where = str(path)
    data.setdefault("name", "")
    for override in overrides:
        data = apply_override(data, override)
    cfg = from_dict(TranslatorConfig, data, where)
    if not cfg.name:
        cfg = dataclasses.replace(cfg, name=name)
    return check_translator_config(absolute(cfg))


def absolute(cfg: TranslatorConfig) -> TranslatorConfig:
    """Dataset roots, out_dir, semantic and features paths made absolute (from the current directory)."""
    def ds(d: DatasetConfig | None):
        if d is None:
            return None
        return dataclasses.replace(d, root=str(Path(d.root).expanduser().absolute()) if d.root else d.root,
                                   id_map=str(Path(d.id_map).expanduser().absolute()) if d.id_map else d.id_map)

    features = cfg.features
    if features.endswith((".pth", ".pt", ".safetensors", ".bin")):
        features = str(Path(features).expanduser().absolute())
    return dataclasses.replace(
        cfg, source=ds(cfg.source), target=ds(cfg.target), out_dir=str(Path(cfg.out_dir).expanduser().absolute()),
        semantic=str(Path(cfg.semantic).expanduser().absolute()) if cfg.semantic else None, features=features)


def check_translator_config(cfg: TranslatorConfig) -> TranslatorConfig:
    """One-line ConfigErrors naming the key, what it must be and what it got."""
    def must(ok: bool, key: str, what: str, value) -> None:
        if not ok:
            raise ConfigError(f"translator {key} must be {what}; got {value!r}")

    must(cfg.model in MODELS, "model", " or ".join(MODELS), cfg.model)
    must(cfg.device in ("auto", "cpu", "cuda"), "device", "auto, cpu or cuda", cfg.device)
    must(cfg.norm in ("instance", "batch", "none"), "norm", "instance, batch or none", cfg.norm)
    must(cfg.gan_mode in ("lsgan", "vanilla", "hinge"), "gan_mode", "lsgan, vanilla or hinge", cfg.gan_mode)
    must(all(s > 0 and s % 4 == 0 for s in cfg.crop), "crop", "(H, W), positive multiples of 4", cfg.crop)
    must(cfg.short_side is None or cfg.short_side > 0, "short_side", "positive or null", cfg.short_side)
    for key in ("iters", "batch_size", "ngf", "ndf", "n_layers_d", "checkpoint_every", "sample_every",
                "log_every", "keep_checkpoints"):
        must(getattr(cfg, key) >= 1, key, "at least 1", getattr(cfg, key))
    must(cfg.n_blocks >= 0 and cfg.pool_size >= 0, "n_blocks / pool_size", ">= 0", (cfg.n_blocks, cfg.pool_size))
    must(cfg.lr > 0, "lr", "positive", cfg.lr)
    must(0.0 <= cfg.decay_start <= 1.0, "decay_start", "in [0, 1]", cfg.decay_start)
    for key in ("lambda_cycle", "lambda_identity", "lambda_semantic", "lambda_recon", "lambda_consistency",
                "lambda_content", "lambda_style", "lambda_gan"):
        must(getattr(cfg, key) >= 0, key, ">= 0", getattr(cfg, key))
    must(not cfg.residual or cfg.model == "cyclegan", "residual", "false for dranet (a CycleGAN option)",
         cfg.residual)
    if cfg.extra.get("needs") == "semantic=RUN" and not cfg.semantic:
        raise ConfigError(f"translator preset {cfg.name}: CyCADA needs a frozen source segmenter: add "
                          f"semantic=RUN_FOLDER (a source-only `syn2real train` run)")
    return cfg


def save_translator_config(cfg: TranslatorConfig, path: str | Path) -> None:
    from syn2real.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def read_translator_config(run_dir: str | Path) -> TranslatorConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a translator run folder ({CONFIG_FILE} is missing)")
    return from_dict(TranslatorConfig, yaml_mapping(path), str(path))
