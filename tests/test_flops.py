import torch

from syn2real.engine.flops import count_flops


def conv_train_flops(groups: int) -> int:
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, groups=groups, bias=False)
    x = torch.rand(1, 64, 16, 16, requires_grad=True)
    return count_flops(lambda: conv(x).sum().backward())


def test_depthwise_and_dense_conv_training_flops_are_three_forwards():
    # forward: 2 * out pixels * out channels * (in channels / groups) * k * k; backward: input + weight grads.
    pixels = 16 * 16
    assert conv_train_flops(1) == 3 * 2 * pixels * 64 * 64 * 9
    assert conv_train_flops(64) == 3 * 2 * pixels * 64 * 1 * 9


def test_frozen_input_skips_its_gradient():
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)
    x = torch.rand(1, 8, 8, 8)  # no grad: only the weight gradient is computed
    assert count_flops(lambda: conv(x).sum().backward()) == 2 * (2 * 64 * 8 * 8 * 9)
