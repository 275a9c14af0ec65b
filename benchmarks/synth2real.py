"""Benchmark R: SynStreets (synthetic) -> real CamVid val, 11 classes, beside the CamVid-trained oracle.

    python benchmarks/synth2real.py                          # render, train both rows, print the table
    python benchmarks/synth2real.py --rows source_only       # one row only
    python benchmarks/synth2real.py --seeds 0 1 2            # mean ± std over seeds

Same model, resolution and iteration budget for every row (the presets `synstreets2camvid_source_only` and
`camvid_supervised`). Runs that finished already are re-used, not retrained. Reports the last checkpoint's
score, never a checkpoint picked on val. Skips when ../shared/data/camvid is absent.
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
ROWS = {"source_only": "synstreets2camvid_source_only", "oracle": "camvid_supervised"}


def run_row(preset: str, seed: int, out_dir: Path, source_root: Path, iters: int | None) -> dict:
    from syn2real.config import load_config
    from syn2real.engine.trainer import train

    overrides = [f"out_dir={out_dir}", f"name={preset}_seed{seed}", f"train.seed={seed}",
                 f"data.val.root={CAMVID}"]
    if preset == ROWS["oracle"]:
        overrides.append(f"data.source.root={CAMVID}")
    else:
        overrides.append(f"data.source.root={source_root}")
    if iters:
        overrides.append(f"train.iters={iters}")
    cfg = load_config(preset, overrides)
    final = cfg.run_dir / "eval" / "final" / "metrics.json"
    if not final.is_file():
        start = time.perf_counter()
        train(cfg, resume=(cfg.run_dir / "checkpoints" / "last.json").is_file())
        print(f"{cfg.name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return json.loads(final.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_r"))
    parser.add_argument("--frames", type=int, default=2000, help="SynStreets source frames")
    parser.add_argument("--size", default="480x360", help="SynStreets frame size WxH (CamVid's is 480x360)")
    parser.add_argument("--iters", type=int, default=None, help="override the presets' iteration budget")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not CAMVID.is_dir():
        print(f"skipped: benchmark R needs CamVid at {CAMVID} (see shared/data/README.md)")
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from syn2real.synth import render_dataset

    out = Path(args.out)
    w, h = (int(v) for v in args.size.split("x"))
    source_root = render_dataset(out / "synstreets", n=args.frames, size=(w, h), style="synthetic", seed=0,
                                 workers=args.workers, split="train", progress=True)
    results = {row: [run_row(ROWS[row], s, out, source_root, args.iters) for s in args.seeds] for row in args.rows}

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
    if {"source_only", "oracle"} <= set(mious):
        print(f"\nsource-only reaches {100 * mious['source_only'].mean() / mious['oracle'].mean():.0f} % "
              f"of the oracle")


if __name__ == "__main__":
    main()
