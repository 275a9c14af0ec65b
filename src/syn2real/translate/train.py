"""Training a translator (`syn2real translate train`) and using one (`load_translator`, `translate apply`,
`translate score`).

A translator run folder holds `translator.yaml` (its config, absolute paths), `metrics.jsonl` (losses every
`log_every` iterations), `samples/iter_XXXXXX.png` (rows: source | source -> target | back to source, then
target | target -> source | back) and `checkpoints/` in the layout of `syn2real.engine.checkpoint`:
`iter_XXXXXX.safetensors` (all weights) + `iter_XXXXXX.state.pt` (optimisers, history buffers, samplers' random
states) and `last.json`, written last, naming the last complete pair. A run killed at any moment resumes from
there (`--resume`) and ends with the weights of an uninterrupted run: all randomness comes from generators whose
states are saved, and data is read in the main process.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn, track)
from torch import nn

from syn2real.config import DatasetConfig
from syn2real.errors import ConfigError, DataError, TrainingError, WeightsError
from syn2real.io import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    png_bytes,
    read_json,
)
from syn2real.translate.config import (
    CONFIG_FILE,
    TranslatorConfig,
    read_translator_config,
    save_translator_config,
)
from syn2real.translate.cyclegan import CycleGAN
from syn2real.translate.dranet import DRANet

LAST = "last.json"


# ---- building -------------------------------------------------------------------------------------------


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """Zhu et al.'s init: conv weights N(0, 0.02), biases 0, norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def build_translator(cfg: TranslatorConfig) -> CycleGAN | DRANet:
    """The model a config names, initialised from `cfg.seed`."""
    torch.manual_seed(cfg.seed)
    if cfg.model == "cyclegan":
        model = CycleGAN(ngf=cfg.ngf, n_blocks=cfg.n_blocks, ndf=cfg.ndf, n_layers_d=cfg.n_layers_d, norm=cfg.norm,
                         gan_mode=cfg.gan_mode, lambda_cycle=cfg.lambda_cycle, lambda_identity=cfg.lambda_identity,
                         pool_size=cfg.pool_size, seed=cfg.seed, residual=cfg.residual)
    else:
        model = DRANet(ngf=cfg.ngf, n_blocks=cfg.n_blocks, ndf=cfg.ndf, n_layers_d=cfg.n_layers_d,
                       lambda_recon=cfg.lambda_recon, lambda_consistency=cfg.lambda_consistency,
                       lambda_content=cfg.lambda_content, lambda_style=cfg.lambda_style, lambda_gan=cfg.lambda_gan,
                       gan_mode=cfg.gan_mode)
    init_weights(model)
    if cfg.model == "cyclegan" and cfg.residual:
        model.g_ab.start_as_identity()
        model.g_ba.start_as_identity()
    return model


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda: no CUDA device is available")
    return torch.device(name)


# ---- data -----------------------------------------------------------------------------------------------


def _resize_short(image: torch.Tensor, short_side: int | None) -> torch.Tensor:
    """uint8 (3, H, W) with its shorter side `short_side` (aspect kept); None: unchanged."""
    if short_side is None:
        return image
    h, w = image.shape[-2:]
    scale = short_side / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if size == (h, w):
        return image
    out = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
    return out[0].round().clamp(0, 255).to(torch.uint8)


class CropSampler:
    """Random crops of one domain's frames: a random frame, shorter side resized, a random crop (reflect-padded
    when the frame is smaller), a random flip; batches in [-1, 1]. All draws from its own generator."""

    def __init__(self, ds_cfg: DatasetConfig, cfg: TranslatorConfig, seed: int):
        from syn2real.data import build_dataset

        self.dataset = build_dataset(ds_cfg, transform=None, labels=False)
        self.cfg = cfg
        self.generator = torch.Generator().manual_seed(seed)
        self._cache: dict[int, torch.Tensor] = {}

    def frame(self, index: int) -> torch.Tensor:
        if index in self._cache:
            return self._cache[index]
        image = self.dataset[index]["image"].as_subclass(torch.Tensor)
        image = _resize_short(image, self.cfg.short_side)
        if self.cfg.cache_images:
            self._cache[index] = image
        return image

    def _crop(self, image: torch.Tensor, top: int, left: int) -> torch.Tensor:
        ch, cw = self.cfg.crop
        h, w = image.shape[-2:]
        if h < ch or w < cw:
            pad_h, pad_w = max(0, ch - h), max(0, cw - w)
            image = F.pad(image[None].float(), (0, pad_w, 0, pad_h), mode="replicate")[0]
        return image[:, top:top + ch, left:left + cw]

    def batch(self) -> torch.Tensor:
        ch, cw = self.cfg.crop
        out = []
        for _ in range(self.cfg.batch_size):
            image = self.frame(int(torch.randint(len(self.dataset), (), generator=self.generator)))
            h, w = image.shape[-2:]
            top = int(torch.randint(max(1, h - ch + 1), (), generator=self.generator))
            left = int(torch.randint(max(1, w - cw + 1), (), generator=self.generator))
            crop = self._crop(image, top, left)
            if self.cfg.hflip and torch.rand((), generator=self.generator) < 0.5:
                crop = crop.flip(-1)
            out.append(crop.float())
        return torch.stack(out) / 127.5 - 1.0

    def fixed(self, n: int) -> torch.Tensor:
        """Centre crops of `n` frames spread over the dataset (the sample grid's inputs); draws nothing."""
        ch, cw = self.cfg.crop
        out = []
        for index in sorted(set(np.linspace(0, len(self.dataset) - 1, min(n, len(self.dataset))).round().astype(int))):
            image = self.frame(int(index))
            h, w = image.shape[-2:]
            out.append(self._crop(image, max(0, (h - ch) // 2), max(0, (w - cw) // 2)).float())
        return torch.stack(out) / 127.5 - 1.0

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


# ---- checkpoints ----------------------------------------------------------------------------------------


def _stem(step: int) -> str:
    return f"iter_{step:06d}"


def save_checkpoint(ckpt_dir: Path, step: int, weights: dict[str, torch.Tensor], state: dict, keep: int) -> None:
    """The weights, then the state, then `last.json` (each atomically), then older pairs deleted."""
    from safetensors.torch import save_file

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    stem = _stem(step)
    with atomic_path(ckpt_dir / f"{stem}.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}, str(tmp),
                  metadata={"step": str(step), "syn2real.translator": "1"})
    with atomic_path(ckpt_dir / f"{stem}.state.pt") as tmp:
        torch.save(state, tmp)
    atomic_write_json(ckpt_dir / LAST, {"step": step, "weights": f"{stem}.safetensors", "state": f"{stem}.state.pt"})
    steps = sorted({int(p.name[5:11]) for p in ckpt_dir.glob("iter_*.*") if p.name[5:11].isdigit()})
    kept = [s for s in steps if s <= step][-keep:]
    for p in ckpt_dir.glob("iter_*.*"):
        if p.name[5:11].isdigit() and int(p.name[5:11]) not in kept:
            p.unlink(missing_ok=True)


def last_checkpoint(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / "checkpoints" / LAST
    if not path.is_file():
        return None
    last = read_json(path, "checkpoint index")
    try:
        return {"step": int(last["step"]), "weights": path.parent / last["weights"], "state": path.parent / last["state"]}
    except (KeyError, TypeError, ValueError) as e:
        raise TrainingError(f"{path}: not a valid checkpoint index ({e})") from None


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None


# ---- training -------------------------------------------------------------------------------------------


def lr_at(cfg: TranslatorConfig, step: int) -> float:
    """Zhu et al.'s schedule: `lr` until `decay_start * iters`, then linearly to 0 at `iters`."""
    start = int(cfg.decay_start * cfg.iters)
    if step < start:
        return cfg.lr
    return cfg.lr * max(0.0, 1.0 - (step - start) / max(1, cfg.iters - start))


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] (N, 3, H, W) -> (H, N*W, 3) uint8 side by side."""
    images = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return torch.cat(list(images), dim=-1).permute(1, 2, 0).numpy()


@torch.no_grad()
def sample_grid(model: CycleGAN | DRANet, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Rows: a, a -> B, back to A; b, b -> A, back to B (each row the batch side by side)."""
    was_training = model.training
    model.eval()
    if isinstance(model, CycleGAN):
        fake_b, fake_a = model.g_ab(a), model.g_ba(b)
        back_a, back_b = model.g_ba(fake_b), model.g_ab(fake_a)
    else:
        fake_b, fake_a = model.translate(a, 0, 1), model.translate(b, 1, 0)
        back_a, back_b = model.translate(fake_b, 1, 0), model.translate(fake_a, 0, 1)
    model.train(was_training)
    rows = [_to_uint8(t) for t in (a, fake_b, back_a)] + [_to_uint8(t) for t in (b, fake_a, back_b)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return np.concatenate(rows, axis=0)


def _rewrite_metrics(path: Path, up_to: int) -> None:
    """Drop log lines past `up_to` (written after the checkpoint a resumed run starts from)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= up_to:
                kept.append(line)
        except json.JSONDecodeError:
            continue
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))


def train_translator(cfg: TranslatorConfig, resume: bool = False, progress: bool = False,
                     console=None, on_step: Callable[[int], None] | None = None) -> Path:
    """Train the translator `cfg` describes; returns the run folder (`cfg.out_dir/cfg.name`)."""
    if cfg.source is None or cfg.target is None:
        raise ConfigError("translator training needs a source and a target (--source KIND:ROOT:SPLIT "
                          "--target KIND:ROOT:SPLIT)")
    run_dir = Path(cfg.out_dir) / cfg.name
    last = last_checkpoint(run_dir)
    if last is not None and not resume:
        raise ConfigError(f"{run_dir} already holds a translator run (step {last['step']}); add --resume to "
                          f"continue it or give another --name")
    device = _device(cfg.device)
    sampler_a = CropSampler(cfg.source, cfg, cfg.seed + 11)
    sampler_b = CropSampler(cfg.target, cfg, cfg.seed + 12)
    model = build_translator(cfg).to(device)
    semantic = perceptual = None
    if cfg.semantic:
        from syn2real.translate.cycada import SemanticConsistency, load_segmenter

        semantic = SemanticConsistency(load_segmenter(cfg.semantic), cfg.lambda_semantic).to(device)
    if cfg.model == "dranet" and (cfg.lambda_content > 0 or cfg.lambda_style > 0):
        from syn2real.translate.perceptual import FeatureNet, PerceptualLoss

        perceptual = PerceptualLoss(FeatureNet(cfg.features)).to(device)
    opt_g = torch.optim.Adam(model.generator_parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(model.discriminator_parameters(), lr=cfg.lr, betas=cfg.betas)

    start = 0
    if last is not None:
        model.load_state_dict(_load_weights(last["weights"]), strict=True)
        try:
            state = torch.load(last["state"], map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError) as e:
            raise TrainingError(f"{last['state']}: cannot read the training state ({e})") from None
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        sampler_a.load_state_dict(state["sampler_a"])
        sampler_b.load_state_dict(state["sampler_b"])
        model.load_extra_state(state["extra"])
        start = int(state["step"])
    # Lines logged after the checkpoint (or by a run killed before its first one) are logged again.
    _rewrite_metrics(run_dir / "metrics.jsonl", start)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_translator_config(cfg, run_dir / CONFIG_FILE)
    fixed_a, fixed_b = sampler_a.fixed(4).to(device), sampler_b.fixed(4).to(device)
    discriminators = model.discriminator_parameters()

    def checkpoint(step: int) -> None:
        state = {"step": step, "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                 "sampler_a": sampler_a.state_dict(), "sampler_b": sampler_b.state_dict(),
                 "extra": model.extra_state()}
        save_checkpoint(run_dir / "checkpoints", step, model.state_dict(), state, cfg.keep_checkpoints)


    bar = Progress(TextColumn("[bold]translate[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
                   disable=not progress, console=console, transient=False)
    model.train()
    log_path = run_dir / "metrics.jsonl"
    tic = time.monotonic()
    with bar:
        task = bar.add_task(cfg.name, total=cfg.iters, completed=start, losses="")
        for step in range(start, cfg.iters):
            lr = lr_at(cfg, step)
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr
            a, b = sampler_a.batch().to(device), sampler_b.batch().to(device)
            # Generators, with the discriminators fixed (their gradients are not needed).
            for p in discriminators:
                p.requires_grad_(False)
            opt_g.zero_grad(set_to_none=True)
            extra = {"perceptual": perceptual} if isinstance(model, DRANet) else {}
            loss_g, parts_g, images = model.generator_losses(a, b, semantic=semantic, **extra)
            if not torch.isfinite(loss_g):
                raise TrainingError(f"translator loss is {loss_g.item()} at iteration {step} ({parts_g})")
            loss_g.backward()
            opt_g.step()
            # Discriminators, on real batches and (for CycleGAN) the history of translations.
            for p in discriminators:
                p.requires_grad_(True)
            opt_d.zero_grad(set_to_none=True)
            loss_d, parts_d = model.discriminator_losses(a, b, images["fake_a"], images["fake_b"])
            loss_d.backward()
            opt_d.step()
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.iters:
                losses = {k: float(v.detach()) for k, v in {**parts_g, **parts_d}.items()}
                record = {"step": done, "lr": lr, **{k: round(v, 5) for k, v in losses.items()},
                          "seconds": round(time.monotonic() - tic, 2)}
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                bar.update(task, losses=f"G {float(loss_g.detach()):.3f} D {float(loss_d.detach()):.3f}")
            if done % cfg.sample_every == 0 or done == cfg.iters:
                atomic_write_bytes(run_dir / "samples" / f"{_stem(done)}.png",
                                   png_bytes(sample_grid(model, fixed_a, fixed_b)))
            if done % cfg.checkpoint_every == 0 or done == cfg.iters:
                checkpoint(done)
            bar.update(task, completed=done)
            if on_step is not None:
                on_step(done)
    return run_dir


# ---- using a trained translator -------------------------------------------------------------------------


class Translator(nn.Module):
    """Source -> target translation of float images in [0, 1] (N, 3, H, W) to [0, 1], any size. Frozen, eval mode.

    The frame is reflect-padded by `BORDER` pixels on every side (and to a multiple of 4) and translated, and the
    padding cut off again: generators trained on crops that rarely touch a frame's border paint artefacts along
    it (a bright band under the top edge, up to ~20 px deep, in a cyclegan_cpu run), which then sit in the margin.
    """

    BORDER = 32

    def __init__(self, model: CycleGAN | DRANet, short_side: int | None = None):
        super().__init__()
        # Only what translation needs: CycleGAN's source -> target generator, DRANet without discriminators.
        if isinstance(model, CycleGAN):
            self.net = model.g_ab
        else:
            model.discriminators = nn.ModuleList()
            self.net = model
        self.short_side = short_side  # the frames' shorter side in training (None: native)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Translator:
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        b = self.BORDER
        pad_h, pad_w = (-(h + 2 * b)) % 4, (-(w + 2 * b)) % 4
        # Reflection needs the padding narrower than the frame; a tiny frame repeats its edge pixels instead.
        mode = "reflect" if b + pad_h < h and b + pad_w < w else "replicate"
        y = F.pad(x * 2 - 1, (b, b + pad_w, b, b + pad_h), mode=mode)
        y = self.net.translate(y, 0, 1) if isinstance(self.net, DRANet) else self.net(y)
        return ((y[..., b:b + h, b:b + w] + 1) / 2).clamp(0, 1)


def load_translator(run_dir: str | Path, checkpoint: str | Path | None = None) -> Translator:
    """The trained translator of a `translate train` run folder (its last checkpoint, or `checkpoint`): a module
    mapping float [0, 1] (N, 3, H, W) source batches to translated [0, 1] batches, eval mode, frozen."""
    run_dir = Path(run_dir)
    cfg = read_translator_config(run_dir)
    if checkpoint is None:
        last = last_checkpoint(run_dir)
        if last is None:
            raise WeightsError(f"{run_dir}: no translator checkpoint yet (checkpoints/{LAST} is missing)")
        checkpoint = last["weights"]
    model = build_translator(cfg)
    try:
        model.load_state_dict(_load_weights(Path(checkpoint)), strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{checkpoint}: does not fit the translator of {run_dir} "
                           f"({str(e).splitlines()[0]})") from None
    return Translator(model, cfg.short_side)


def _label_is_plain_png(dataset, label_path: Path) -> bool:
    """True when the reader takes its label file as a plain index PNG (so a byte copy plus its id map is what the
    `folder` reader needs)."""
    from syn2real.data.base import SegDataset

    return (type(dataset)._read_label is SegDataset._read_label and label_path.suffix.lower() == ".png"
            and not dataset.resizes_labels)


def apply_translator(run_dir: str | Path, ds_cfg: DatasetConfig, out_dir: str | Path,
                     size: str | tuple[int, int] = "train", progress: bool = False, device: str = "auto",
                     console=None, preview: int = 4, smooth: float = 0.0) -> tuple[Path, int, int]:
    """Write a translated copy of a labelled dataset in the `folder` layout: `out/images/{name}.png` (translated),
    `out/masks/{name}.png`, `out/id_map.yaml` and `out/{split}.txt`, and `out/preview.png`: the first `preview`
    frames as source | translated | label (0: none). Returns (out, frames written, skipped).

    Labels are byte-identical copies when the reader takes plain index PNGs (the id map then is the reader's);
    other label formats (colour PNGs, multi-channel files) are written once mapped, with an identity id map.
    Frames whose image and mask exist are skipped, so a killed run resumes. `size`: "train" translates at the
    translator's training scale (shorter side) and adds the change, resized back, to the frame (so the frame's
    finer detail stays), "native" translates at the frame's own size, (H, W) at that size, as "train" does.
    `smooth` > 0 keeps only the translator's large-scale change (`translate_at`).
    """
    import yaml

    from syn2real.data import build_dataset
    from syn2real.data.base import read_rgb
    from syn2real.labels import IGNORE
    from syn2real.synth.writer import tile_sheet

    out_dir = Path(out_dir)
    translator = load_translator(run_dir).to(_device(device))
    dataset = build_dataset(ds_cfg, transform=None, labels=True)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    plain = all(_label_is_plain_png(dataset, lbl) for _, lbl in dataset.files)
    if plain:
        ids = {int(k): int(v) for k, v in dataset.id_map.items()}
        ids.update({int(v): IGNORE for v in dataset.void_ids if v not in ids})
    else:
        ids = {i: i for i in range(dataset.space.num_classes)}
    id_map = yaml.safe_dump({"space": dataset.space.name, "ids": ids}, sort_keys=False)
    atomic_write_text(out_dir / "id_map.yaml", id_map)
    atomic_write_json(out_dir / "translated.json", {
        "translator": str(Path(run_dir).absolute()), "kind": ds_cfg.kind, "root": ds_cfg.root, "split": ds_cfg.split,
        "size": size if isinstance(size, str) else list(size), "smooth": smooth,
        "labels": "copied" if plain else "mapped"})

    written = skipped = 0
    bar = Progress(TextColumn("translating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn(), disable=not progress, console=console)
    device_ = next(iter(translator.parameters())).device
    with bar, torch.no_grad():
        for name, (image_path, label_path) in bar.track(list(zip(dataset.names, dataset.files))):
            image_out, mask_out = out_dir / "images" / f"{name}.png", out_dir / "masks" / f"{name}.png"
            if image_out.is_file() and mask_out.is_file():
                skipped += 1
                continue
            rgb = read_rgb(image_path)
            h, w = rgb.shape[:2]
            x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255).to(device_)
            y = translate_at(translator, x, _working_size((h, w), size, translator.short_side), smooth)
            pixels = (y[0].permute(1, 2, 0).cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)
            if plain:
                with atomic_path(mask_out) as tmp:
                    shutil.copyfile(label_path, tmp)
            else:
                atomic_write_bytes(mask_out, png_bytes(dataset.load_mask(label_path, (h, w))))
            atomic_write_bytes(image_out, png_bytes(pixels))  # the image last: its presence marks the frame done
            written += 1
    atomic_write_text(out_dir / f"{ds_cfg.split}.txt", "".join(f"{n}.png\n" for n in dataset.names))
    if preview > 0:
        frames = []
        for name, (image_path, label_path) in list(zip(dataset.names, dataset.files))[:preview]:
            source = read_rgb(image_path)
            frames.append([source, read_rgb(out_dir / "images" / f"{name}.png"),
                           dataset.space.colorize(dataset.load_mask(label_path, source.shape[:2]))])
        atomic_write_bytes(out_dir / "preview.png", png_bytes(tile_sheet(frames, max_width=1536)))
    return out_dir, written, skipped


def translate_at(translator: Translator, x: torch.Tensor, work: tuple[int, int],
                 smooth: float = 0.0) -> torch.Tensor:
    """`x` ([0, 1], (N, 3, H, W)) translated at size `work`: the change made there is resized back and added to
    `x`, so the frame's own finer detail stays. `smooth` > 0 blurs the change first (a Gaussian of that many
    pixels at the working scale): the frame keeps its edges and takes only the target's colour and light, which
    a short-trained translator gets right before the content (it blurs that)."""
    h, w = x.shape[-2:]
    if work == (h, w) and not smooth:
        return translator(x)
    small = x if work == (h, w) else F.interpolate(x, size=work, mode="bilinear", align_corners=False,
                                                   antialias=work[0] < h)
    change = translator(small) - small
    if smooth:
        kernel = 2 * math.ceil(3 * smooth) + 1
        change = TF.gaussian_blur(change, [kernel, kernel], [smooth, smooth])
    if work != (h, w):
        change = F.interpolate(change, size=(h, w), mode="bilinear", align_corners=False)
    return (x + change).clamp(0, 1)


def _working_size(hw: tuple[int, int], size: str | tuple[int, int], short_side: int | None) -> tuple[int, int]:
    h, w = hw
    if size == "native" or (size == "train" and short_side is None):
        return h, w
    if size == "train":
        scale = short_side / min(h, w)
        return max(4, round(h * scale)), max(4, round(w * scale))
    if isinstance(size, tuple) and len(size) == 2:
        return size
    raise ConfigError(f"--size must be train, native or WxH, got {size!r}")


# ---- scoring --------------------------------------------------------------------------------------------


def _image_files(folder: Path) -> list[Path]:
    from syn2real.data.folder import IMAGE_EXTS

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not files:
        raise DataError(f"{folder}: no images (.png, .jpg) found")
    return files


def image_set(spec: DatasetConfig | Path) -> list[Path]:
    """The image files of a dataset (KIND:ROOT:SPLIT, labels not read) or of a folder (recursively)."""
    if isinstance(spec, DatasetConfig):
        from syn2real.data import build_dataset

        return [img for img, _ in build_dataset(spec, transform=None, labels=False).files]
    folder = Path(spec)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of images")
    return _image_files(folder)


@torch.no_grad()
def embed_images(files: list[Path], net, size: tuple[int, int] = (224, 224), batch_size: int = 16,
                 progress: bool = False, description: str = "features", console=None) -> torch.Tensor:
    """(N, D) pooled features of image files, each resized to `size` (H, W)."""

    from syn2real.data.base import read_rgb

    device = next(iter(net.buffers())).device
    out = []
    for i in track(range(0, len(files), batch_size), description=description, disable=not progress,
                   console=console):
        batch = []
        for path in files[i:i + batch_size]:
            x = torch.from_numpy(read_rgb(path)).permute(2, 0, 1)[None].float().div(255)
            batch.append(F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True))
        out.append(net.embed(torch.cat(batch).to(device)).float().cpu())
    return torch.cat(out)


def score_sets(a: DatasetConfig | Path, b: DatasetConfig | Path, features: str = "efficientnet_lite0",
               size: tuple[int, int] = (224, 224), subsets: int = 100, subset_size: int = 1000, limit: int | None = None,
               progress: bool = False, console=None, device: str = "auto") -> dict:
    """KID (mean, std over subsets) between two image sets on frozen ImageNet features."""
    from syn2real.translate.kid import kid
    from syn2real.translate.perceptual import FeatureNet

    files_a, files_b = image_set(a), image_set(b)
    if limit is not None:
        files_a, files_b = files_a[:limit], files_b[:limit]
    net = FeatureNet(features).to(_device(device))
    fa = embed_images(files_a, net, size, progress=progress, description="features (a)", console=console)
    fb = embed_images(files_b, net, size, progress=progress, description="features (b)", console=console)
    mean, std = kid(fa, fb, subsets=subsets, subset_size=subset_size)
    return {"kid": mean, "std": std, "n_a": len(files_a), "n_b": len(files_b), "subset_size": min(subset_size,
            len(files_a), len(files_b)), "subsets": subsets, "features": features, "feature_dim": fa.shape[1],
            "size": list(size)}


