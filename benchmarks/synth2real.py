"""Benchmark R: SynStreets (synthetic) -> real CamVid val, 11 classes, from source-only through every
unsupervised adaptation method to the CamVid-trained oracle.

    python benchmarks/synth2real.py                                # render, train every row, print the table
    python benchmarks/synth2real.py --rows source_only oracle      # some rows only
    python benchmarks/synth2real.py --rows dacs mic --seeds 0 1 2  # mean ± std over seeds
    python benchmarks/synth2real.py --rows source_only source_only_psp  # the PSP head beside DeepLab-V3+

Same model and resolution for every row. Source-only and oracle train 1500 iterations (presets
`synstreets2camvid_source_only`, `camvid_supervised`); every UDA row starts from the source-only model at
iteration 1000 and adapts 300 iterations with the unlabelled CamVid train frames (`synstreets2camvid_uda`;
UDA rows of every seed start from seed 0's source-only model). Runs that finished already are re-used, not
retrained. Reports the last checkpoint's score, never a checkpoint picked on val, and each row's share of the
source-only -> oracle gap. Skips when ../shared/data/camvid is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "data" / "camvid"
ROWS = {"source_only": "synstreets2camvid_source_only", "adaptsegnet": "adaptsegnet_cpu", "advent": "advent_cpu",
        "minent": "minent_cpu", "fda": "fda_cpu", "dacs": "dacs_cpu", "iast": "iast_cpu",
        "daformer": "daformer_cpu", "mic": "mic_cpu", "oracle": "camvid_supervised"}
#: Rows that change one setting of a preset: name -> (preset, overrides). Their runs are named after the row.
VARIANTS = {"source_only_psp": ("synstreets2camvid_source_only", ["model.head=psp"])}
WARM_START_ITER = 1000


def camvid_missing() -> bool:
    """True (and says why) when CamVid is not beside the repository: benchmark R is then skipped."""
    if CAMVID.is_dir():
        return False
    print(f"skipped: benchmark R needs CamVid at {CAMVID} (see shared/data/README.md)")
    return True


def train_timed(preset: str, overrides: list[str]) -> dict:
    """Train `preset` with `overrides` unless that run finished already; its final metrics and wall seconds."""
    from syn2real.config import load_config
    from syn2real.io import atomic_write_json
    from syn2real.run import final_metrics, is_finished, train_once

    cfg = load_config(preset, overrides)
    timing = cfg.run_dir / "wall_time.json"
    if not is_finished(cfg.run_dir):
        start = time.perf_counter()
        train_once(cfg)
        atomic_write_json(timing, {"seconds": time.perf_counter() - start, "iters": cfg.train.iters})
        print(f"{cfg.name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    result = final_metrics(cfg.run_dir)
    result["seconds"] = json.loads(timing.read_text())["seconds"] if timing.is_file() else float("nan")
    return result


def run_row(row: str, seed: int, out_dir: Path, source_root: Path, iters: int | None) -> dict:
    preset, extra = VARIANTS.get(row, (ROWS.get(row), []))
    name = row if row in VARIANTS else preset
    overrides = [f"out_dir={out_dir}", f"name={name}_seed{seed}", f"train.seed={seed}",
                 f"data.val.root={CAMVID}", *extra]
    if preset == ROWS["oracle"]:
        overrides.append(f"data.source.root={CAMVID}")
    else:
        overrides.append(f"data.source.root={source_root}")
    if preset not in (ROWS["oracle"], ROWS["source_only"]):
        warm = out_dir / f"{ROWS['source_only']}_seed0" / "checkpoints" / f"iter_{WARM_START_ITER:06d}.safetensors"
        overrides += [f"data.target.root={CAMVID}", f"train.init_from={warm}"]
    if iters:
        overrides.append(f"train.iters={iters}")
    return train_timed(preset, overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_r"))
    parser.add_argument("--frames", type=int, default=2000, help="SynStreets source frames")
    parser.add_argument("--size", default="480x360", help="SynStreets frame size WxH (CamVid's is 480x360)")
    parser.add_argument("--iters", type=int, default=None, help="override the presets' iteration budget")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=[*ROWS, *VARIANTS])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if camvid_missing():
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from syn2real.synth import render_dataset

    out = Path(args.out)
    w, h = (int(v) for v in args.size.split("x"))
    source_root = render_dataset(out / "synstreets", n=args.frames, size=(w, h), style="synthetic", seed=0,
                                 workers=args.workers, split="train", progress=True)
    results = {row: [run_row(row, s, out, source_root, args.iters) for s in args.seeds] for row in args.rows}

    classes = list(next(iter(results.values()))[0]["iou"])
    print(f"\nBenchmark R: SynStreets ({args.frames} frames {args.size}) -> CamVid val, 11 classes, "
          f"seeds {args.seeds}; IoU %")
    print(f"{'class':<12}" + "".join(f"{row:>16}" for row in results))
    for name in classes:
        cells = [np.array([np.nan if r["iou"][name] is None else r["iou"][name] for r in rs]) * 100
                 for rs in results.values()]
        print(f"{name:<12}" + "".join(f"{c.mean():>16.1f}" for c in cells))
    mious = {row: np.array([r["miou"] for r in rs]) * 100 for row, rs in results.items()}
    print(f"{'mIoU':<12}" + "".join(f"{m.mean():>9.1f} ± {m.std():>4.1f}" for m in mious.values()))
    times = {row: np.array([r["seconds"] for r in rs]) / 60 for row, rs in results.items()}
    print(f"{'minutes':<12}" + "".join(f"{t.mean():>16.1f}" for t in times.values()))
    if {"source_only", "oracle"} <= set(mious):
        low, high = mious["source_only"].mean(), mious["oracle"].mean()
        print(f"\nsource-only reaches {100 * low / high:.0f} % of the oracle; share of the gap closed:")
        for row, m in mious.items():
            print(f"  {row:<12}{100 * (m.mean() - low) / (high - low):>6.0f} %")


if __name__ == "__main__":
    main()
