"""Cost of each adaptation method against source-only: step time ratio beside FLOP ratio.

    python benchmarks/method_overhead.py                      # every CPU preset, 256x384, batch 2
    python benchmarks/method_overhead.py --methods dacs_cpu mic_cpu --steps 5

A method's extra forwards and backwards (teacher, discriminator, mixed and masked images) should cost time in
proportion to their FLOPs: the time ratio should not exceed the FLOP ratio by more than 10 %. One process
measures every method on the same random batches, in turn, so the ratios share the machine's state.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

PRESETS = ["synstreets2camvid_source_only", "adaptsegnet_cpu", "advent_cpu", "minent_cpu", "fda_cpu", "dacs_cpu",
           "iast_cpu", "daformer_cpu", "mic_cpu"]


def measure(preset: str, size: tuple[int, int], batch: int, steps: int) -> tuple[float, float]:
    """(seconds per training step, FLOPs per training step) of `preset`'s method on random batches."""
    from syn2real.config import load_config
    from syn2real.engine.flops import count_flops
    from syn2real.engine.optim import build_optimizer
    from syn2real.methods import build_method
    from syn2real.models import build_model

    torch.manual_seed(0)
    cfg = load_config(preset, ["data.target=null"] if preset == PRESETS[0] else [])
    model = build_model(cfg.model).to(memory_format=torch.channels_last)
    method = build_method(cfg, model)
    optimizers = [build_optimizer(cfg.optim, method.param_groups()), *method.extra_optimizers()]
    h, w = size
    generator = torch.Generator().manual_seed(0)
    src = {"image": torch.rand(batch, 3, h, w, generator=generator),
           "mask": torch.randint(0, cfg.model.num_classes, (batch, h, w), generator=generator)}
    tgt = {"image": torch.rand(batch, 3, h, w, generator=generator)} if cfg.data.target else None
    method.set_train_mode()

    def step(i: int) -> None:
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        method.train_step(src, tgt, i)
        for opt in optimizers:
            opt.step()
        method.after_step(i)

    flops = count_flops(lambda: step(0))
    step(1)  # warm-up
    start = time.perf_counter()
    for i in range(steps):
        step(2 + i)
    return (time.perf_counter() - start) / steps, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=PRESETS[1:], help="presets to compare with source-only")
    parser.add_argument("--size", default="384x256", help="WxH")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    w, h = (int(v) for v in args.size.split("x"))

    base_time, base_flops = measure(PRESETS[0], (h, w), args.batch, args.steps)
    print(f"input {w}x{h}, batch {args.batch} (+{args.batch} target), {args.steps} timed steps, "
          f"{torch.get_num_threads()} threads")
    print(f"{'preset':<30} {'s/step':>7} {'GFLOP':>7} {'time ratio':>10} {'FLOP ratio':>10} {'excess':>7}")
    print(f"{PRESETS[0]:<30} {base_time:>7.2f} {base_flops / 1e9:>7.1f} {1:>10.2f} {1:>10.2f} {'':>7}")
    for preset in args.methods:
        seconds, flops = measure(preset, (h, w), args.batch, args.steps)
        time_ratio, flop_ratio = seconds / base_time, flops / base_flops
        print(f"{preset:<30} {seconds:>7.2f} {flops / 1e9:>7.1f} {time_ratio:>10.2f} {flop_ratio:>10.2f} "
              f"{100 * (time_ratio / flop_ratio - 1):>+6.0f}%")


if __name__ == "__main__":
    main()
