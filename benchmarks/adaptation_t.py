"""Benchmark T for every adaptation method: SynStreets `synthetic` -> `photo`, the demo's data and model.

    python benchmarks/adaptation_t.py                       # all rows (about 25 minutes on 2 cores)
    python benchmarks/adaptation_t.py --rows dacs_cpu fda_cpu

Every row starts from the demo's source-only model (`syn2real demo`'s first run, trained here if missing) and
trains `syn2real.demo.ADAPT_ITERS` more iterations with 2 source + 2 target crops a step. The `source-only`
row continues source-only training for the same iterations, so every row has the same budget. Scores are on
the photo val split (19 classes), last checkpoint. Runs already finished are re-used.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Row name -> preset; `synstreets2camvid_uda` has no method, i.e. source-only at the adaptation budget.
ROWS = {"source-only": "synstreets2camvid_uda", "adaptsegnet": "adaptsegnet_cpu", "advent": "advent_cpu",
        "minent": "minent_cpu", "fda": "fda_cpu", "dacs": "dacs_cpu", "iast": "iast_cpu",
        "daformer": "daformer_cpu", "mic": "mic_cpu"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "runs" / "demo"))
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from syn2real import demo
    from syn2real.run import final_metrics, train_once

    out = Path(args.out)
    roots = demo.render_demo_data(out)
    start_run = train_once(demo.source_only_config(out, roots))
    base = final_metrics(start_run)
    results, seconds = {}, {}
    for row in args.rows:
        name = f"t_{row}" if args.seed == 0 else f"t_{row}_seed{args.seed}"
        cfg = demo.adaptation_config(ROWS[row], out, roots, start_run / "checkpoints", name=name)
        cfg.train.seed = args.seed
        t0 = time.perf_counter()
        train_once(cfg)
        seconds[row] = time.perf_counter() - t0
        results[row] = final_metrics(cfg.run_dir)
        print(f"{row}: mIoU {100 * results[row]['miou']:.1f} ({seconds[row]:.0f} s)", file=sys.stderr)

    print(f"\nBenchmark T: SynStreets synthetic -> photo val (19 classes), {demo.ADAPT_ITERS} iterations from the "
          f"source-only model (mIoU {100 * base['miou']:.1f}), seed {args.seed}")
    print(f"{'row':<14}{'mIoU %':>8}{'gain':>8}{'time s':>9}")
    reference = results.get("source-only", base)["miou"]
    for row, result in results.items():
        print(f"{row:<14}{100 * result['miou']:>8.1f}{100 * (result['miou'] - reference):>+8.1f}"
              f"{seconds[row]:>9.0f}")
    print("gain: mIoU points over the source-only row (same budget)")


if __name__ == "__main__":
    main()
