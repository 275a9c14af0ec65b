"""Learned image translation: CycleGAN's losses and history, the PatchGAN, Gram matrices, KID, the translator
commands (train with resume after a kill, apply with labels byte-identical, score), and spec errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
import torch.nn.functional as F
from torch import nn

from syn2real.errors import ConfigError
from syn2real.translate.config import PRESETS, load_translator_config
from syn2real.translate.cyclegan import (
    CycleGAN,
    ImageHistory,
    PatchDiscriminator,
    cycle_loss,
    gan_loss,
    generator_gan_loss,
    identity_loss,
    receptive_field,
)
from syn2real.translate.kid import kid, mmd2_unbiased, polynomial_kernel
from syn2real.translate.perceptual import gram_matrix

pytestmark = pytest.mark.usefixtures("one_thread")

#: A translator small enough for tests: a few filters, one block, 32x32 crops.
TINY = ["ngf=4", "ndf=4", "n_blocks=1", "crop=[32,32]", "pool_size=3", "log_every=1", "sample_every=4"]


class Shift(nn.Module):
    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x):
        return x + self.c


class ConstantD(nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 1, 2, 2)


# ---- CycleGAN's pieces ------------------------------------------------------------------------------------


def test_cycle_and_identity_losses_on_constructed_generators():
    a, b = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    model = CycleGAN(ngf=4, n_blocks=1, ndf=4)
    model.d_a, model.d_b = ConstantD(), ConstantD()
    model.g_ab, model.g_ba = nn.Identity(), nn.Identity()
    _, parts, _ = model.generator_losses(a, b)
    assert parts["cycle_a"] == 0 and parts["cycle_b"] == 0 and parts["idt_a"] == 0 and parts["idt_b"] == 0
    # Each generator adds 0.25: the cycle comes back 0.5 off, identity maps 0.25 off.
    model.g_ab, model.g_ba = Shift(0.25), Shift(0.25)
    _, parts, images = model.generator_losses(a, b)
    assert torch.allclose(images["rec_a"], a + 0.5)
    assert parts["cycle_a"].item() == pytest.approx(10 * 0.5)  # lambda 10
    assert parts["cycle_b"].item() == pytest.approx(10 * 0.5)
    assert parts["idt_a"].item() == pytest.approx(5 * 0.25)  # 0.5 * lambda
    assert parts["idt_b"].item() == pytest.approx(5 * 0.25)
    assert cycle_loss(a, a + 0.1).item() == pytest.approx(0.1)
    assert identity_loss(a, a - 0.3).item() == pytest.approx(0.3)
    # LSGAN generator term: the discriminator says 0 everywhere -> (0 - 1)^2 = 1 per direction.
    assert parts["g_gan_ab"].item() == 1.0 and parts["g_gan_ba"].item() == 1.0


def test_a_residual_generator_starts_as_the_identity_and_learns_a_correction():
    from syn2real.translate.train import build_translator

    cfg = load_translator_config("cyclegan_cpu", ["ngf=4", "ndf=4", "n_blocks=1"])  # residual in the CPU preset
    model = build_translator(cfg)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(model.g_ab(x), x) and torch.equal(model.g_ba(x), x)
    optimizer = torch.optim.Adam(model.generator_parameters(), lr=1e-2)
    (model.g_ab(x) - 0.5).abs().mean().backward()  # pull the output towards 0.5
    optimizer.step()
    moved = model.g_ab(x)
    assert not torch.equal(moved, x) and (moved - 0.5).abs().mean() < (x - 0.5).abs().mean()
    assert moved.min() >= -1 and moved.max() <= 1
    plain = build_translator(load_translator_config("cyclegan", ["ngf=4", "ndf=4", "n_blocks=1"]))
    assert isinstance(plain.g_ab.model[-1], nn.Tanh) and not torch.equal(plain.g_ab(x), x)
    with pytest.raises(ConfigError, match="residual"):
        load_translator_config("dranet_cpu", ["residual=true"])


def test_translating_at_a_smaller_scale_keeps_the_frames_own_detail():
    from syn2real.translate.train import Translator, build_translator, translate_at

    model = build_translator(load_translator_config("cyclegan_cpu", ["ngf=4", "ndf=4", "n_blocks=1", "residual=true"]))
    frame = torch.rand(1, 3, 36, 48)  # fine detail: noise at the pixel scale
    # The identity at a third of the size returns the frame as it is: only the change is resized.
    assert torch.allclose(translate_at(Translator(model), frame, (12, 16)), frame, atol=1e-6)
    # A translator that brightens by 0.1 brightens the frame by 0.1, detail kept.
    shifted = translate_at(Shift01(), frame, (12, 16))
    assert torch.allclose(shifted, (frame + 0.1).clamp(0, 1), atol=1e-5)


def test_artefacts_a_generator_paints_along_the_border_fall_in_the_cut_off_margin():
    from syn2real.translate.train import Translator, build_translator

    model = build_translator(load_translator_config("cyclegan_cpu", ["ngf=4", "ndf=4", "n_blocks=1"]))
    model.g_ab = PaintTopRows()  # the identity, but a bright band along the top of whatever it sees
    for h, w in ((40, 50), (37, 45), (3, 5)):  # margins by reflection, by repetition for a tiny frame
        frame = torch.rand(1, 3, h, w) * 0.5
        assert torch.allclose(Translator(model)(frame), frame, atol=1e-6), (h, w)


class PaintTopRows(nn.Module):
    def forward(self, x):
        x = x.clone()
        x[..., :20, :] = 1.0
        return x


def test_a_smoothed_change_keeps_the_frames_edges_and_takes_the_colour():
    from syn2real.translate.train import translate_at

    frame = torch.zeros(1, 3, 32, 32)
    frame[..., :, 16:] = 1.0  # a sharp vertical edge
    blur_away = BlurAndTint()  # a translator that blurs the content away and adds a tint
    whole = translate_at(blur_away, frame, (32, 32))
    smoothed = translate_at(blur_away, frame, (32, 32), smooth=3.0)
    edge = lambda image: (image[..., 16] - image[..., 15]).abs().mean()  # noqa: E731
    assert edge(whole) < 0.5 < edge(smoothed)  # the blur washes the edge out; smoothed, the edge stays
    assert torch.allclose(smoothed[..., 2:-2, 2:6].mean(), torch.tensor(0.05), atol=0.02)  # the tint arrives


class BlurAndTint(nn.Module):
    def forward(self, x):
        kernel = torch.ones(3, 1, 9, 9) / 81
        return (F.conv2d(F.pad(x, (4, 4, 4, 4), mode="replicate"), kernel, groups=3) + 0.15 * torch.tensor(
            [1.0, 0.0, 0.0]).view(1, 3, 1, 1)).clamp(0, 1)


class Shift01(nn.Module):
    def forward(self, x):
        return (x + 0.1).clamp(0, 1)


def test_lsgan_targets_are_one_for_real_and_zero_for_fake():
    pred = torch.tensor([[0.0, 0.5], [1.0, 2.0]])
    assert gan_loss(pred, True).item() == pytest.approx(((pred - 1) ** 2).mean().item())
    assert gan_loss(pred, False).item() == pytest.approx((pred ** 2).mean().item())
    assert generator_gan_loss(pred).item() == pytest.approx(gan_loss(pred, True).item())
    assert gan_loss(torch.ones(3), True).item() == 0 and gan_loss(torch.zeros(3), False).item() == 0
    assert gan_loss(pred, True, "hinge").item() == pytest.approx(torch.relu(1 - pred).mean().item())
    assert generator_gan_loss(pred, "hinge").item() == pytest.approx(-pred.mean().item())
    with pytest.raises(ConfigError, match="gan_mode"):
        gan_loss(pred, True, "wgan")


def test_patchgan_with_three_layers_sees_70_pixels():
    assert receptive_field(PatchDiscriminator()) == 70
    assert receptive_field(PatchDiscriminator(n_layers=1)) == 16  # the 16x16 "PixelGAN"-ish small patch
    # Measured: the input pixels one output score depends on (no norm layer, which would couple all pixels).
    net = PatchDiscriminator(ndf=4, n_layers=3, norm="none")
    x = torch.rand(1, 3, 160, 160, requires_grad=True)
    y = net(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3))).flatten()
    cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2))).flatten()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_history_buffer_returns_a_stored_image_half_the_time_and_keeps_the_new_one():
    assert torch.equal(ImageHistory(0).query(torch.ones(2, 1, 1, 1)), torch.ones(2, 1, 1, 1))
    pool = ImageHistory(size=4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as given, all stored
    assert [float(i) for i in pool.images] == [0, 1, 2, 3]
    from_history = 0
    for k in range(400):
        new = torch.full((1, 1, 1, 1), 100.0 + k)
        before = [float(i) for i in pool.images]
        got = float(pool.query(new))
        after = [float(i) for i in pool.images]
        if got == 100.0 + k:  # the new image itself; the history is unchanged
            assert after == before
        else:  # a stored image, whose place the new one took
            from_history += 1
            slot = before.index(got)
            assert after[slot] == 100.0 + k and after[:slot] + after[slot + 1:] == before[:slot] + before[slot + 1:]
    assert 0.4 < from_history / 400 < 0.6
    # Its state (images and random generator) round-trips: the same queries give the same answers.
    clone = ImageHistory(size=4, seed=123)
    clone.load_state_dict(pool.state_dict())
    probe = torch.rand(8, 1, 1, 1)
    assert torch.equal(pool.query(probe), clone.query(probe))


def test_learning_rate_is_constant_then_falls_linearly_to_zero():
    from syn2real.translate.train import lr_at

    cfg = load_translator_config("cyclegan", ["iters=100"])
    assert lr_at(cfg, 0) == lr_at(cfg, 49) == 2e-4
    assert lr_at(cfg, 75) == pytest.approx(1e-4) and lr_at(cfg, 100) == 0.0


def test_presets_carry_the_papers_numbers():
    paper = load_translator_config("cyclegan")
    assert (paper.ngf, paper.n_blocks, paper.ndf, paper.n_layers_d, paper.crop) == (64, 9, 64, 3, (256, 256))
    assert (paper.lambda_cycle, paper.lambda_identity, paper.pool_size, paper.lr, paper.betas) == (
        10.0, 0.5, 50, 2e-4, (0.5, 0.999))
    assert paper.gan_mode == "lsgan" and paper.decay_start == 0.5
    cpu = load_translator_config("cyclegan_cpu")
    assert (cpu.ngf, cpu.n_blocks) == (32, 6) and cpu.name == "cyclegan_cpu"
    assert load_translator_config("dranet_cpu").model == "dranet"
    assert set(PRESETS) == {"cyclegan", "cyclegan_cpu", "cycada", "cycada_cpu", "dranet", "dranet_cpu"}
    with pytest.raises(ConfigError, match="semantic=RUN"):
        load_translator_config("cycada")
    with pytest.raises(ConfigError, match="translator crop must be"):
        load_translator_config("cyclegan_cpu", ["crop=[30,32]"])
    with pytest.raises(ConfigError, match="neither a translator preset"):
        load_translator_config("cyclegann")


# ---- CyCADA and DRANet ------------------------------------------------------------------------------------


def test_semantic_consistency_trains_the_generator_not_the_frozen_segmenter():
    from syn2real.translate.cycada import SemanticConsistency

    torch.manual_seed(0)
    segmenter = nn.Conv2d(3, 5, 1)
    loss = SemanticConsistency(segmenter)
    loss.train()
    assert not segmenter.training and not any(p.requires_grad for p in segmenter.parameters())
    a, b = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    g = Shift(0.0)
    g.c = nn.Parameter(torch.tensor(0.3))
    value = loss(a, g(a), b, g(b))
    value.backward()
    assert g.c.grad is not None and g.c.grad != 0 and segmenter.weight.grad is None
    # An identity translation costs exactly CE(f(x), argmax f(x)) on each direction.
    expected = sum(nn.functional.cross_entropy(segmenter((x + 1) / 2), segmenter((x + 1) / 2).argmax(1))
                   for x in (a, b))
    assert loss(a, a, b, b).item() == pytest.approx(expected.item(), rel=1e-5)


def test_dranet_separates_content_and_style_and_translates_with_the_mean_style():
    from syn2real.translate.dranet import DRANet

    torch.manual_seed(0)
    model = DRANet(ngf=4, n_blocks=2, ndf=4)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    content, style = model.split(a, 0)
    assert content.shape == (2, 16, 8, 8) and style.shape == (2, 16)
    total, parts, images = model.generator_losses(a, b)
    assert torch.isfinite(total) and set(parts) == {"recon", "consistency", "g_gan"}
    assert images["fake_b"].shape == a.shape
    assert model.style_seen.all()  # the running mean styles were set
    assert torch.allclose(model.style_mean[1], model.split(b, 1)[1].mean(0), atol=1e-6)
    assert model.translate(a).shape == a.shape


# ---- features: Gram matrices, VGG weights, KID ------------------------------------------------------------


def test_gram_matrix_of_a_constructed_feature_map():
    features = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]],  # channel 0: ones
                              [[1.0, 1.0], [0.0, 0.0]]]])  # channel 1: top row
    # <c0, c0> = 4, <c0, c1> = 2, <c1, c1> = 2, divided by C*H*W = 8.
    expected = torch.tensor([[[4.0, 2.0], [2.0, 2.0]]]) / 8
    assert torch.allclose(gram_matrix(features), expected)
    assert gram_matrix(torch.rand(3, 5, 4, 6)).shape == (3, 5, 5)


def test_a_vgg16_state_dict_is_accepted_by_path(tmp_path):
    from syn2real.errors import WeightsError
    from syn2real.translate.perceptual import _VGG16, FeatureNet

    state, index, channels = {}, 0, 3
    for v in _VGG16:  # torchvision's `features.N` names, small random tensors
        if v == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(v, channels, 3, 3) * 0.01
        state[f"features.{index}.bias"] = torch.zeros(v)
        index, channels = index + 2, v
    torch.save(state, tmp_path / "vgg16.pth")
    net = FeatureNet(str(tmp_path / "vgg16.pth"))
    out = net(torch.rand(1, 3, 64, 64), embed=True)
    assert [f.shape[1] for f in out["style"]] == [64, 128, 256, 512] and out["embedding"].shape == (1, 512)
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="VGG-16"):
        FeatureNet(str(tmp_path / "other.pth"))


def test_kid_is_unbiased_zero_for_one_distribution_and_positive_for_shifted_sets():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=gen)
    y = torch.randn(300, 16, generator=gen)
    # The estimate against a brute-force reading of the formula (m != n).
    xs, ys = x[:7].double(), y[:5].double()
    k = lambda p, q: (p @ q / 16 + 1) ** 3
    brute = (sum(k(xs[i], xs[j]) for i in range(7) for j in range(7) if i != j) / 42
             + sum(k(ys[i], ys[j]) for i in range(5) for j in range(5) if i != j) / 20
             - 2 * sum(k(xs[i], ys[j]) for i in range(7) for j in range(5)) / 35)
    assert mmd2_unbiased(x[:7], y[:5]) == pytest.approx(float(brute), rel=1e-9)
    assert torch.allclose(polynomial_kernel(xs, ys), (xs @ ys.T / 16 + 1) ** 3)
    same_mean, same_std = kid(x, x, subsets=20, subset_size=100)
    other_mean, _ = kid(x, y, subsets=20, subset_size=100)
    shifted_mean, shifted_std = kid(x, y + 1.0, subsets=20, subset_size=100)
    # About 0 for one distribution (a set against itself slightly below: subsets share images), far above 0 for
    # a shifted set (measured here: -0.05 and 0.01 against 7.7).
    assert abs(same_mean) < 0.1 and abs(other_mean) < 0.1 and same_std > 0
    assert shifted_mean > 2.0 and shifted_mean > 10 * shifted_std
    # Unbiased: two samples of one distribution score below zero about half of the time.
    draws = [mmd2_unbiased(torch.randn(20, 4, generator=gen), torch.randn(20, 4, generator=gen)) for _ in range(40)]
    assert min(draws) < 0 < max(draws)


# ---- commands -------------------------------------------------------------------------------------------


def _train_args(source: dict, target: dict, out: Path, name: str, *extra: str) -> list[str]:
    return ["translate", "train", "--source", f"folder:{source['root']}:train",
            "--target", f"folder:{target['root']}:train", "--config", "cyclegan_cpu", "--out", str(out),
            "--name", name, *TINY, *extra]


def test_train_then_apply_copies_labels_byte_for_byte_and_resumes(tiny_uda_folders, tmp_path, run_cli):
    from syn2real.config import DatasetConfig
    from syn2real.data import build_dataset
    from syn2real.translate import load_translator

    source, target = tiny_uda_folders
    code, output = run_cli(_train_args(source, target, tmp_path / "runs", "t", "iters=4", "checkpoint_every=2"))
    assert code == 0, output
    run = tmp_path / "runs" / "t"
    assert (run / "samples" / "iter_000004.png").is_file() and (run / "checkpoints" / "last.json").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4

    translator = load_translator(run)
    x = torch.rand(2, 3, 30, 50)  # not a multiple of 4: padded inside
    y = translator(x)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1 and not translator.training
    assert not any(p.requires_grad for p in translator.parameters())

    out = tmp_path / "translated"
    code, output = run_cli(["translate", "apply", run, "--data", f"folder:{source['root']}:train", "--out", out])
    assert code == 0, output
    for mask in sorted(Path(source["root"], "masks").glob("*.png")):
        assert (out / "masks" / mask.name).read_bytes() == mask.read_bytes()
    copied = build_dataset(DatasetConfig(kind="folder", root=str(out), split="train"))
    original = build_dataset(DatasetConfig(kind="folder", root=source["root"], split="train"))
    assert copied.names == original.names
    item, reference = copied[0], original[0]
    assert torch.equal(item["mask"], reference["mask"]) and item["image"].shape == reference["image"].shape
    assert not torch.equal(item["image"], reference["image"])  # translated
    # The preview: per frame the source picture, the translated one and the unchanged label, side by side.
    from syn2real.data.base import read_rgb
    from syn2real.labels import CITYSCAPES19

    sheet = read_rgb(out / "preview.png")
    first = read_rgb(original.files[0][0])
    h, w = first.shape[:2]
    assert sheet.shape[1] == 3 * w and "preview:" in output
    assert np.array_equal(sheet[:h, :w], first)
    assert np.array_equal(sheet[:h, w:2 * w], read_rgb(out / "images" / f"{original.names[0]}.png"))
    assert np.array_equal(sheet[:h, 2 * w:], CITYSCAPES19.colorize(reference["mask"].numpy().astype(np.uint8)))
    # Resume: only missing frames are written again.
    (out / "images" / "2.png").unlink()
    code, output = run_cli(["translate", "apply", run, "--data", f"folder:{source['root']}:train", "--out", out])
    assert code == 0 and "wrote 1 translated frames" in output and "(3 already there)" in output

    code, output = run_cli(["translate", "score", "--a", f"folder:{source['root']}:train", "--b",
                            str(out / "images"), "--subsets", "3", "--size", "64x32"])
    assert code == 0 and "KID x 1000:" in output, output

    # data.source.translator: the trainer translates every source batch, labels untouched.
    from syn2real.config import load_config
    from syn2real.engine.trainer import Trainer

    batches = {}
    for name, extra in (("plain", []), ("translated", [f"data.source.translator={run}"])):
        cfg = load_config(None, [f"out_dir={tmp_path / 'seg'}", f"name={name}", "data.source.kind=folder",
                                 f"data.source.root={source['root']}", "data.crop_size=[32,48]",
                                 "data.workers=0", "model.pretrained=null", "model.channels_last=false",
                                 "train.device=cpu", *extra])
        trainer = Trainer(cfg)
        batches[name] = trainer._next_batch("source")
    assert torch.equal(batches["plain"]["mask"], batches["translated"]["mask"])
    assert torch.allclose(batches["translated"]["image"], translator(batches["plain"]["image"]), atol=1e-6)


def test_bad_data_spec_fails_in_one_line_naming_it(tiny_uda_folders, tmp_path, run_cli):
    source, target = tiny_uda_folders
    for args, named in [
        (["translate", "apply", tmp_path, "--data", "nonsense", "--out", tmp_path / "o"], "--data"),
        (["translate", "apply", tmp_path, "--data", "nokind:/tmp:train", "--out", tmp_path / "o"], "--data"),
        (["translate", "train", "--source", f"folder:{tmp_path / 'missing'}:train", "--target",
          f"folder:{target['root']}"], "--source"),
        (["translate", "train", "--source", f"folder:{source['root']}", "--target", "camvid"], "--target"),
        (["translate", "score", "--a", "xx", "--b", "yy"], "--a"),
    ]:
        code, output = run_cli(args)
        lines = output.strip().splitlines()
        assert code == 1 and len(lines) == 1 and lines[0].startswith("error:"), output
        assert named in lines[0] and str(args[args.index(named) + 1]) in lines[0], output
    assert not (tmp_path / "o").exists()


KILLABLE = """
import sys, time, torch
torch.set_num_threads(1)
import syn2real.translate.train as train
original = train.train_translator

def slow(*args, **kwargs):  # stands in for a real model's step time, so the kill lands mid-run
    return original(*args, **kwargs, on_step=lambda step: time.sleep(0.15))

train.train_translator = slow
from syn2real import cli
sys.argv = ["syn2real", *{args!r}]
cli.main()
"""


def test_killed_translate_train_resumes_to_the_weights_of_an_uninterrupted_run(tiny_uda_folders, tmp_path, run_cli):
    source, target = tiny_uda_folders
    extra = ("iters=16", "checkpoint_every=4")
    killed = _train_args(source, target, tmp_path, "killed", *extra)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE.format(args=killed)], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    last_json = tmp_path / "killed" / "checkpoints" / "last.json"
    deadline = time.monotonic() + 60
    while not last_json.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.02)
    time.sleep(0.3)  # somewhere after the first checkpoint, before the next
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    from syn2real.translate.train import last_checkpoint

    killed_at = last_checkpoint(tmp_path / "killed")["step"]
    assert killed_at < 16

    code, output = run_cli(["translate", "train", "--out", tmp_path, "--name", "killed", "--resume"])
    assert code == 0, output
    code, output = run_cli(_train_args(source, target, tmp_path, "reference", *extra))
    assert code == 0, output
    resumed = load_file(str(last_checkpoint(tmp_path / "killed")["weights"]))
    reference = load_file(str(last_checkpoint(tmp_path / "reference")["weights"]))
    assert last_checkpoint(tmp_path / "killed")["step"] == 16 and resumed.keys() == reference.keys()
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), key
    steps = [int(line.split('"step": ')[1].split(",")[0])
             for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 17))  # no step logged twice
    # A finished run is not started over by accident.
    code, output = run_cli(_train_args(source, target, tmp_path, "reference", *extra))
    assert code == 1 and "--resume" in output
    assert np.isfinite(float(reference["g_ab.model.1.weight"].sum()))


def test_only_the_source_takes_a_translator(tmp_path):
    from syn2real.config import load_config
    from syn2real.errors import ConfigError

    with pytest.raises(ConfigError, match="data.target.translator"):
        load_config(None, [f"data.target.root={tmp_path}", f"data.target.translator={tmp_path}"])
