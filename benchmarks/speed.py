"""Training and inference speed, peak memory and compute efficiency of a model on this machine.

    python benchmarks/speed.py                       # the CPU default model, 256x512, batch 2
    python benchmarks/speed.py --config configs/cpu_default.yaml --size 512x256 --batch 2 --steps 10

Prints, for fp32 and bf16 autocast: train and inference images/s (fp32: also ONNX Runtime's, the model exported
as `syn2real export` does, on as many threads as torch), peak RSS, and the efficiency of a training
step = achieved FLOP/s (FLOPs counted with torch.utils.flop_counter, convolution backward corrected for
grouped convolutions: `syn2real.engine.flops`) / FLOP/s of a large matmul in the same precision measured in the
same run. Each precision runs in its own process so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def matmul_flops_per_s(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


def onnxruntime_img_s(model: torch.nn.Module, images: torch.Tensor, steps: int) -> float:
    """Inference images/s of `model` exported to ONNX and run by onnxruntime (CPU), torch's thread count."""
    import onnxruntime as ort

    from syn2real.export import export_onnx

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = images.numpy()
    session.run(None, {"image": x})
    t = time.perf_counter()
    for _ in range(steps):
        session.run(None, {"image": x})
    return len(x) * steps / (time.perf_counter() - t)


#: Speed levers `--levers` compares with eager fp32, each in its own process (compiled code does not leak).
LEVERS = {
    "eager": "channels-last, AdamW (foreach), no compile: the trainer's default",
    "contiguous": "NCHW memory format instead of channels-last",
    "fused-adamw": "AdamW(fused=True)",
    "compile": "torch.compile, inductor default mode (train step and inference)",
    "compile-max-autotune": "torch.compile mode=max-autotune-no-cudagraphs",
    "compile-freezing": "compiled inference with inductor freezing (weights folded as constants)",
}


def measure(config: str | None, size: tuple[int, int], batch: int, steps: int, precision: str,
            lever: str = "eager") -> dict:
    from syn2real.config import load_config
    from syn2real.engine.flops import count_flops
    from syn2real.methods import build_method
    from syn2real.models import build_model

    torch.manual_seed(0)
    cfg = load_config(config, [f"train.precision={precision}"])
    model = build_model(cfg.model)
    channels_last = cfg.model.channels_last and lever != "contiguous"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    method = build_method(cfg, model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                                  fused=lever == "fused-adamw")
    h, w = size
    image = torch.rand(batch, 3, h, w)
    batch_data = {"image": image.contiguous(memory_format=torch.channels_last) if channels_last else image,
                  "mask": torch.randint(0, cfg.model.num_classes, (batch, h, w))}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def train_step(step: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            method.train_step(batch_data, None, step)
        optimizer.step()

    model.train()
    train_flops = count_flops(lambda: train_step(0))
    compile_s = 0.0
    if lever.startswith("compile"):
        import torch._inductor.config as inductor_config

        inductor_config.freezing = lever == "compile-freezing"
        model.compile(mode="max-autotune-no-cudagraphs" if lever == "compile-max-autotune" else None)
    t = time.perf_counter()
    train_step(0)  # compiles, when compiled
    compile_s += time.perf_counter() - t
    t = time.perf_counter()
    for i in range(steps):
        train_step(1 + i)
    train_time = (time.perf_counter() - t) / steps

    model.eval()
    with torch.no_grad(), autocast:
        t = time.perf_counter()
        model(batch_data["image"])
        compile_s += time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(steps):
            model(batch_data["image"])
        infer_time = (time.perf_counter() - t) / steps
    onnx_img_s = (onnxruntime_img_s(model, batch_data["image"], steps)
                  if precision == "fp32" and lever == "eager" else None)

    peak = matmul_flops_per_s(torch.bfloat16 if precision == "bf16" else torch.float32)
    achieved = train_flops / train_time
    return {
        "precision": precision,
        "lever": lever,
        "compile_s": compile_s,
        "train_img_s": batch / train_time,
        "infer_img_s": batch / infer_time,
        "onnx_img_s": onnx_img_s,
        "train_step_gflop": train_flops / 1e9,
        "achieved_gflop_s": achieved / 1e9,
        "matmul_gflop_s": peak / 1e9,
        "efficiency": achieved / peak,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child(args: argparse.Namespace, precision: str, lever: str = "eager") -> dict:
    proc = subprocess.run([sys.executable, __file__, "--config", args.config, "--size", args.size,
                           "--batch", str(args.batch), "--steps", str(args.steps), "--precision", precision,
                           "--lever", lever], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{precision} {lever} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_levers(args: argparse.Namespace) -> None:
    """One row per lever: train and inference images/s and their ratio to eager, compile time."""
    print(f"{'lever':>21} {'train img/s':>11} {'x eager':>7} {'infer img/s':>11} {'x eager':>7} "
          f"{'compile s':>9}  what")
    base = None
    # Eager again last: how far two runs of the same thing differ on this machine, to read the ratios against.
    for lever, what in [*LEVERS.items(), ("eager", "eager again: the run-to-run noise")]:
        r = child(args, "fp32", lever)
        base = base or r
        print(f"{lever:>21} {r['train_img_s']:>11.2f} {r['train_img_s'] / base['train_img_s']:>7.2f} "
              f"{r['infer_img_s']:>11.2f} {r['infer_img_s'] / base['infer_img_s']:>7.2f} "
              f"{r['compile_s']:>9.0f}  {what}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "..", "configs",
                                                         "cpu_default.yaml"))
    parser.add_argument("--size", default="512x256", help="WxH")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--levers", action="store_true",
                        help="compare each speed lever (fp32) with eager in one run: " + ", ".join(LEVERS))
    parser.add_argument("--precision", choices=["fp32", "bf16"], help=argparse.SUPPRESS)
    parser.add_argument("--lever", choices=list(LEVERS), default="eager", help=argparse.SUPPRESS)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.precision:  # child process: one precision and lever, print JSON
        print(json.dumps(measure(args.config, (h, w), args.batch, args.steps, args.precision, args.lever)))
        return

    print(f"model: {args.config}  input {w}x{h}  batch {args.batch}  threads {torch.get_num_threads()}")
    if args.levers:
        print_levers(args)
        return
    header = (f"{'precision':>9} {'train img/s':>11} {'infer img/s':>11} {'ORT img/s':>9} {'GFLOP/step':>10} "
              f"{'GFLOP/s':>8} {'matmul GFLOP/s':>14} {'efficiency':>10} {'peak RSS MiB':>12}")
    print(header)
    for precision in ("fp32", "bf16"):
        r = child(args, precision)
        onnx = f"{r['onnx_img_s']:>9.2f}" if r["onnx_img_s"] is not None else f"{'-':>9}"
        print(f"{r['precision']:>9} {r['train_img_s']:>11.2f} {r['infer_img_s']:>11.2f} {onnx} "
              f"{r['train_step_gflop']:>10.1f} {r['achieved_gflop_s']:>8.1f} {r['matmul_gflop_s']:>14.1f} "
              f"{r['efficiency']:>10.2f} {r['peak_rss_mib']:>12.0f}")


if __name__ == "__main__":
    main()
