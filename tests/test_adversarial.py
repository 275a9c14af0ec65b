"""AdaptSegNet / ADVENT: entropy maps, the discriminator, where gradients go in the staged step, which way the
generator is pushed, checkpoint state, and runs through the trainer."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm imports huggingface_hub

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from syn2real.config import Config, MethodConfig, ModelConfig, from_dict
from syn2real.engine.trainer import Trainer
from syn2real.errors import ConfigError
from syn2real.methods import build_method
from syn2real.methods.adversarial import SOURCE_LABEL, AdaptSegNet, AdvEnt, MinEnt
from syn2real.methods.losses import entropy_loss, entropy_map, gan_loss, self_information
from syn2real.models import build_model
from syn2real.models.discriminators import FCDiscriminator

H, W = 32, 64
C = 5


pytestmark = pytest.mark.usefixtures("one_thread")


# ---- pure helpers ------------------------------------------------------------------------------------------


def test_entropy_and_self_information_on_constructed_probabilities():
    uniform = torch.full((2, 19, 3, 4), 1 / 19)
    one_hot = F.one_hot(torch.randint(0, 19, (2, 3, 4)), 19).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(entropy_map(uniform), torch.ones(2, 3, 4))
    torch.testing.assert_close(self_information(uniform), torch.full_like(uniform, 1 / 19))
    assert entropy_map(one_hot).abs().max() == 0 and self_information(one_hot).abs().max() == 0
    # Two equally likely classes out of four: 1 bit out of log2(4) = 2 bits.
    half = torch.tensor([0.5, 0.5, 0.0, 0.0]).view(1, 4, 1, 1)
    assert entropy_map(half).item() == pytest.approx(0.5)
    # The MinEnt loss is ADVENT's -Σ p·log2 p / (n·h·w·log2 C).
    p = torch.randn(2, C, 3, 4, generator=torch.Generator().manual_seed(0)).softmax(1).double()
    n, c, h, w = p.shape
    expected = -(p * torch.log2(p)).sum() / (n * h * w * math.log2(c))
    assert entropy_loss(p).item() == pytest.approx(expected.item(), rel=1e-9)
    # Where the softmax underflows to 0 the gradient stays finite.
    probs = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).requires_grad_()
    entropy_loss(probs).backward()
    assert torch.isfinite(probs.grad).all()


def test_gan_losses_against_a_domain_label():
    logits = torch.tensor([[[[2.0, -1.0]]]])
    assert gan_loss(logits, 0.0, "bce").item() == pytest.approx(
        F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits)).item())
    assert gan_loss(logits, 1.0, "ls").item() == pytest.approx(((logits - 1) ** 2).mean().item())


def test_fc_discriminator_is_adaptsegnets():
    disc = FCDiscriminator(19)
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    acts = [m for m in disc.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert len(acts) == 4 and all(a.negative_slope == 0.2 for a in acts)
    out = disc(torch.randn(2, 19, 64, 128) * 10)
    assert out.shape == (2, 1, 2, 4)
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in disc.modules())


# ---- the method on a tiny Segmentor ------------------------------------------------------------------------


def _method(name: str, seed: int = 0, **params):
    torch.manual_seed(seed)
    model_cfg = ModelConfig(pretrained=None, num_classes=C, head_channels=16, dropout=0.0, channels_last=False)
    cfg = Config(model=model_cfg, method=MethodConfig(name=name, params=params))
    return build_method(cfg, build_model(model_cfg))


def _batches(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = {"image": torch.rand(2, 3, H, W, generator=g), "mask": torch.randint(0, C, (2, H, W), generator=g)}
    src["mask"][:, :4] = 255  # some ignored pixels
    tgt = {"image": torch.rand(2, 3, H, W, generator=g) * 0.5}  # no mask: UDA never reads target labels
    return src, tgt


def _seg_params(method) -> dict[str, torch.nn.Parameter]:
    params = {f"model.{n}": p for n, p in method.model.named_parameters()}
    if method.aux_classifier is not None:
        params.update({f"aux.{n}": p for n, p in method.aux_classifier.named_parameters()})
    return params


def _grads(params: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor | None]:
    return {n: None if p.grad is None else p.grad.clone() for n, p in params.items()}


def _recorded_step(method, src, tgt):
    """Run the real `train_step`, recording the gradients after each staged backward."""
    stages = []
    backward = method.backward

    def recording_backward(loss):
        backward(loss)
        stages.append((_grads(_seg_params(method)), _grads(dict(method.discriminators.named_parameters()))))

    method.backward = recording_backward
    losses = method.train_step(src, tgt, step=0)
    return losses, stages


def _changed(before: dict, after: dict) -> set[str]:
    return {n for n in after if (before[n] is None) != (after[n] is None)
            or (after[n] is not None and not torch.equal(before[n], after[n]))}


VARIANTS = [
    ("adaptsegnet", {}),
    ("adaptsegnet", {"gan": "ls", "lambda_adv": 0.01}),
    ("adaptsegnet", {"multi_level": True}),
    ("advent", {"multi_level": False}),
    ("advent", {"lambda_ent": 0.001, "lambda_ent_aux": 0.0002}),  # AdvEnt + MinEnt in one model, multi-level
]


@pytest.mark.parametrize("name,params", VARIANTS)
def test_staged_step_keeps_gradients_apart(name, params):
    method = _method(name, **params)
    losses, stages = _recorded_step(method, *_batches())
    assert len(stages) == 3 and all(np.isfinite(v) for v in losses.values())
    seg_names = set(_seg_params(method))
    d_names = {n for n, _ in method.discriminators.named_parameters()}
    (seg_1, d_1), (seg_2, d_2), (seg_3, d_3) = stages
    # 1. source CE: the segmentation net (incl. the auxiliary classifier) only.
    assert all(g is None for g in d_1.values())
    assert {n for n, g in seg_1.items() if g is not None} == seg_names
    # 2. generator step: D is fixed (no gradient), the segmentation net's gradients move.
    assert all(g is None for g in d_2.values())
    assert _changed(seg_1, seg_2)
    # 3. D's step: D only; the segmentation net gets nothing from it.
    assert not _changed(seg_2, seg_3)
    assert _changed(d_2, d_3) == d_names
    assert all(p.requires_grad for p in method.discriminators.parameters())
    expected_terms = {"loss_seg", "loss_adv", "loss_d"}
    if method.options["multi_level"]:
        expected_terms |= {"loss_seg_aux", "loss_adv_aux", "loss_d_aux"}
    if method.options["lambda_ent"] > 0:
        expected_terms |= {"loss_ent", "loss_ent_aux"}
    assert set(losses) == expected_terms


def _exact_gradient(method, objective, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """d objective(method, images) / d segmentation parameters, computed on a float64 copy of the method.

    The tests below check which way a stage's gradient moves the segmentation net. Comparing a loss before and
    after a small float32 step decides on rounding when the loss is nearly flat (a saturated discriminator moves
    it by less than float32 resolves); the directional derivative in float64 does not.
    """
    exact = copy.deepcopy(method)
    for module in (exact.model, exact.aux_classifier, exact.discriminators):
        if module is not None:
            module.double()
    params = _seg_params(exact)
    grads = torch.autograd.grad(objective(exact, images.double()), list(params.values()), allow_unused=True)
    return {n: g for n, g in zip(params, grads) if g is not None}


def _target_probs(method, images: torch.Tensor) -> list[torch.Tensor]:
    """Softmax of each output level at the input size (where D and the entropy look: full_resolution)."""
    return [F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False).softmax(1)
            for out in method.outputs(images)]


def _generator_objective(method, images: torch.Tensor) -> torch.Tensor:
    """What the adversarial stage minimises: Σ_level λ_adv·GAN(D(target output), source label)."""
    return sum(w_adv * gan_loss(disc(method.discriminator_input(probs)), SOURCE_LABEL, method.options["gan"])
               for (_, _, w_adv, _), probs, disc in zip(method.levels, _target_probs(method, images),
                                                         method.discriminators))


def _d_target_probability(method, images: torch.Tensor) -> torch.Tensor:
    """D's mean probability that the main target output is "target"."""
    return torch.sigmoid(method.discriminators[0](method.discriminator_input(_target_probs(method, images)[0]))).mean()


def _entropy_objective(method, images: torch.Tensor) -> torch.Tensor:
    """What MinEnt's target stage minimises: Σ_level λ_ent·entropy(target output)."""
    return sum(w_ent * entropy_loss(probs) for (_, _, _, w_ent), probs in zip(method.levels,
                                                                               _target_probs(method, images)))


def _target_stage_step(stages) -> dict[str, torch.Tensor]:
    """The gradient the target stage alone added (stage 2 minus stage 1), in float64."""
    (seg_1, _), (seg_2, _), *_ = stages
    return {n: (seg_2[n] - (seg_1[n] if seg_1[n] is not None else 0)).double()
            for n in seg_2 if seg_2[n] is not None}


def _assert_descends(delta: dict[str, torch.Tensor], grad: dict[str, torch.Tensor]) -> None:
    """`delta` (the recorded float32 gradient) is the objective's exact gradient `grad`, up to float32 error, so
    the step θ -= η·delta/|delta| lowers the objective at the rate -cos·|∇J| ≈ -|∇J| < 0. The cosine is 0.998
    here, not 1: float32 accumulation, and subtracting stage 1's larger source gradient, cost the rest."""
    assert grad and set(grad) <= set(delta)
    dot = sum((delta[n] * grad[n]).sum() for n in grad)
    delta_norm = torch.sqrt(sum((d**2).sum() for d in delta.values()))
    grad_norm = torch.sqrt(sum((g**2).sum() for g in grad.values()))
    assert grad_norm > 0
    cosine = dot / (delta_norm * grad_norm)
    assert cosine > 0.99, f"the target stage's gradient is not its objective's (cosine {cosine:.4f})"
    assert -dot / delta_norm == pytest.approx(-grad_norm.item(), rel=0.01)


@pytest.mark.parametrize("name,params", VARIANTS[:4])
def test_generator_step_pushes_target_toward_the_source_label(name, params):
    method = _method(name, **{**params, "lambda_adv": 1.0, "lambda_adv_aux": 1.0})
    src, tgt = _batches()
    with torch.no_grad():  # a fixed D that currently calls the target outputs "target"
        for disc in method.discriminators:
            disc.layers[-1].bias.fill_(1.0)
    grad = _exact_gradient(method, _generator_objective, tgt["image"])
    p_target_grad = _exact_gradient(method, _d_target_probability, tgt["image"])
    with torch.no_grad():
        main_loss = gan_loss(method.discriminators[0](method.discriminator_input(
            _target_probs(method, tgt["image"])[0])), SOURCE_LABEL, method.options["gan"])
    losses, stages = _recorded_step(method, src, tgt)
    # The logged term is the GAN loss against the *source* label on the target prediction, with D as it was.
    assert losses["loss_adv"] == pytest.approx(main_loss.item(), rel=1e-4)
    delta = _target_stage_step(stages)
    _assert_descends(delta, grad)
    if method.options["gan"] == "bce":  # D's probability of "target" drops along the step too
        assert sum((delta[n] * g).sum() for n, g in p_target_grad.items()) > 0


def test_minent_has_no_discriminator_and_lowers_target_entropy():
    method = _method("minent")
    assert isinstance(method, MinEnt) and not method.extra_optimizers() and len(method.discriminators) == 0
    assert method.options["lambda_ent"] == 0.001 and method.options["lambda_ent_aux"] == 0.0002
    src, tgt = _batches()
    grad = _exact_gradient(method, _entropy_objective, tgt["image"])
    with torch.no_grad():
        before = entropy_loss(_target_probs(method, tgt["image"])[0])
    losses, stages = _recorded_step(method, src, tgt)
    assert len(stages) == 2 and set(losses) == {"loss_seg", "loss_seg_aux", "loss_ent", "loss_ent_aux"}
    assert losses["loss_ent"] == pytest.approx(before.item(), rel=1e-4)
    _assert_descends(_target_stage_step(stages), grad)


def test_defaults_options_and_errors():
    assert isinstance(_method("adaptsegnet"), AdaptSegNet)
    advent = _method("advent")
    assert isinstance(advent, AdvEnt) and advent.options["d_input"] == "self_information"
    assert advent.options["multi_level"] and advent.aux_classifier is not None
    # The auxiliary classifier is trained by the main optimiser at the head's lr multiplier.
    aux_group = [g for g in advent.param_groups() if g["name"] == "aux_classifier"]
    assert aux_group and aux_group[0]["lr_mult"] == advent.cfg.optim.head_lr_mult
    (d_opt,) = advent.extra_optimizers()
    assert isinstance(d_opt, torch.optim.Adam) and d_opt.param_groups[0]["lr"] == 1e-4
    assert d_opt.param_groups[0]["betas"] == (0.9, 0.99)
    with pytest.raises(ConfigError, match="d_input"):
        _method("adaptsegnet", d_input="features")
    with pytest.raises(ConfigError, match="nothing"):
        _method("minent", lambda_ent=0.0)
    with pytest.raises(ConfigError, match="unknown option"):
        _method("advent", lambda_typo=1.0)
    # At head resolution (stride 4) a 32x64 input is too small for D: a clear error, not a conv crash.
    with pytest.raises(ConfigError, match="32x32"):
        _method("adaptsegnet", full_resolution=False).train_step(*_batches(), step=0)


def test_method_state_round_trip():
    trained = _method("adaptsegnet", multi_level=True)
    trained.train_step(*_batches(), step=0)
    trained.extra_optimizers()[0].step()
    fresh = _method("adaptsegnet", seed=1, multi_level=True)
    assert not torch.equal(fresh.discriminators[0].layers[0].weight, trained.discriminators[0].layers[0].weight)
    fresh.load_state_dict(trained.state_dict())
    for a, b in zip(trained.state_dict().values(), fresh.state_dict().values()):
        for name in a:
            assert torch.equal(a[name], b[name]), name


# ---- through the real trainer ------------------------------------------------------------------------------


@pytest.mark.parametrize("name,params", [("adaptsegnet", {"multi_level": True}), ("advent", {}),
                                         ("minent", {"multi_level": False})])
def test_three_iterations_through_the_trainer_and_resume(tmp_path, name, params, tiny_uda_folders):
    source, target = tiny_uda_folders
    cfg = from_dict(Config, {
        "name": name, "out_dir": str(tmp_path / "runs"),
        "model": {"pretrained": None, "head_channels": 16, "channels_last": False},
        "data": {"source": source, "target": target, "crop_size": [H, W], "scale_range": [1.0, 1.0],
                 "batch_size": 2, "workers": 0},
        "optim": {"warmup_iters": 2},
        "train": {"iters": 3, "checkpoint_every": 3, "log_every": 1, "device": "cpu"},
        "method": {"name": name, "params": params},
    })
    trainer = Trainer(cfg, progress=False)
    result = trainer.fit()
    assert result["step"] == 3 and all(np.isfinite(v) for v in result.values())
    resumed = Trainer(cfg, resume=True, progress=False)
    assert resumed.step == 3
    # Method state (discriminators, auxiliary classifier) and every optimiser, D's Adam included.
    for part, state in trainer.method.state_dict().items():
        for key, tensor in state.items():
            assert torch.equal(resumed.method.state_dict()[part][key], tensor), (part, key)
    assert len(resumed.optimizers) == len(trainer.optimizers) == (1 if name == "minent" else 2)
    for mine, theirs in zip(trainer.optimizers, resumed.optimizers):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a["state"].keys() == b["state"].keys() and a["state"]
        for key in a["state"]:
            for slot, value in a["state"][key].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][key][slot]))
        assert [g["lr"] for g in a["param_groups"]] == [g["lr"] for g in b["param_groups"]]
    if name != "minent":
        # D's lr follows the same warm-up/poly schedule from its own base lr (1e-4), and resumes with it.
        assert trainer.schedulers[1].base_lrs == [1e-4] and trainer.schedulers[1].last_epoch == 3
        assert resumed.schedulers[1].state_dict() == trainer.schedulers[1].state_dict()
