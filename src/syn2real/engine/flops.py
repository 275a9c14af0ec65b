"""FLOP counting for training steps with `torch.utils.flop_counter`, with convolution backward counted right.

torch's own formula for `aten.convolution_backward` ignores `groups`, so the backward of a depthwise
convolution is overcounted by about the channel count (a 64-channel depthwise 3x3 conv: forward 1.2 MFLOP,
"backward" 77 MFLOP). Each requested gradient of a convolution (input, weight) costs as much as its forward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

aten = torch.ops.aten


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    # conv_flop_count reads the weight's (out, in / groups, kh, kw) shape, so it is right for grouped convs.
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def flop_counter() -> FlopCounterMode:
    """A `FlopCounterMode` (display off) whose convolution backward respects `groups`."""
    return FlopCounterMode(display=False, custom_mapping={aten.convolution_backward: _conv_backward_flop})


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of `fn` (forward and backward, whatever it runs)."""
    with flop_counter() as counter:
        fn()
    return counter.get_total_flops()
