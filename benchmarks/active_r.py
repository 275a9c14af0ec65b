"""Benchmark R for active labelling: mIoU vs labelling budget on SynStreets -> CamVid val (11 classes).

    python benchmarks/active_r.py      # every row (first: benchmarks/synth2real.py --rows source_only adaptsegnet)
    python benchmarks/active_r.py --rows labor-ppl random-points
    python benchmarks/active_r.py --rows labor-ppl random-points --rounds 0 75 150 225   # four rounds
    python benchmarks/active_r.py --rows labor-ppl --set active.lambda_discrepancy=50    # any config override
    python benchmarks/active_r.py --rows labor-ppl random-points --rounds 0 450 --set train.iters=900  # 3x longer

Every row trains the same way (synstreets2camvid_active.yaml: from R's AdaptSegNet model, AdaptSegNet + target CE
on the labelled pixels, 300 iterations, rounds at 0 and 150) and differs only in the selector; the simulated annotator
answers from the CamVid train labels and counts what it reveals. Printed beside source-only, the best UDA row
and the oracle of `benchmarks/synth2real.py` (read from its run folders), each as % of the oracle.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "data" / "camvid"
#: Entropy points' suppression half-window (native pixels), shared with benchmarks/labor_mask_r.py.
ENTROPY_POINTS_K = 8
#: Row -> (preset, overrides). Equal budgets: 40 points per image, or 2.2 % of the pixels.
ROWS = {
    "random-points": ("synstreets2camvid_active", ["active.selector=random", "active.points=40"]),
    "entropy-points": ("synstreets2camvid_active", ["active.selector=entropy", "active.points=40",
                                                     f"active.params={{k: {ENTROPY_POINTS_K}}}"]),
    "ripu-pa": ("ripu_pa_cpu", []),
    "labor-ppl": ("labor_ppl_cpu", []),
    "random-percent": ("synstreets2camvid_active", ["active.selector=random", "active.percent=2.2"]),
    "entropy-percent": ("synstreets2camvid_active", ["active.selector=entropy", "active.percent=2.2"]),
    "ripu-ra": ("ripu_ra_cpu", []),
    "labor-spl": ("labor_spl_cpu", []),
}
UDA_ROWS = ("adaptsegnet_cpu", "advent_cpu", "minent_cpu", "fda_cpu", "dacs_cpu", "iast_cpu", "daformer_cpu",
            "mic_cpu")


def run_row(row: str, out: Path, seed: int, rounds: list[int] | None = None, overrides: tuple[str, ...] = ()) -> dict:
    from syn2real.active.rounds import STORE_FILE, summary
    from syn2real.active.store import LabelStore
    from syn2real.config import load_config
    from syn2real.io import atomic_write_json
    from syn2real.run import final_metrics, is_finished, train_once

    preset, extra = ROWS[row]
    if rounds:
        extra = [*extra, f"active.rounds=[{','.join(map(str, rounds))}]"]
    tag = f"_rounds{'-'.join(map(str, rounds))}" if rounds else ""  # one run folder per schedule and override
    extra = [*extra, *overrides]
    tag += "".join("_" + re.sub(r"[^\w.-]+", "", o.removeprefix("active.")) for o in overrides)
    warm = out / "adaptsegnet_cpu_seed0" / "checkpoints" / "iter_000300.safetensors"
    cfg = load_config(preset, [f"out_dir={out}", f"name=active_{row}{tag}_seed{seed}", f"train.seed={seed}",
                               f"data.source.root={out / 'synstreets'}", f"data.target.root={CAMVID}",
                               f"data.val.root={CAMVID}", f"active.oracle_data.root={CAMVID}",
                               f"train.init_from={warm}", *extra])
    timing = cfg.run_dir / "wall_time.json"
    if not is_finished(cfg.run_dir):
        start = time.perf_counter()
        train_once(cfg)
        atomic_write_json(timing, {"seconds": time.perf_counter() - start})
        print(f"{row}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    result = final_metrics(cfg.run_dir)
    result["spent"] = summary(LabelStore(cfg.run_dir / "active" / STORE_FILE))
    result["seconds"] = json.loads(timing.read_text())["seconds"] if timing.is_file() else float("nan")
    return result


def reference(out: Path, name: str) -> float | None:
    path = out / f"{name}_seed0" / "eval" / "final" / "metrics.json"
    return json.loads(path.read_text())["miou"] if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_r"))
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", nargs="+", type=int, help="labelling rounds (iterations) instead of the preset's")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides for every row (named in the run folders)")
    args = parser.parse_args()
    if not CAMVID.is_dir():
        print(f"skipped: benchmark R needs CamVid at {CAMVID} (see shared/data/README.md)")
        return
    out = Path(args.out)
    if not (out / "adaptsegnet_cpu_seed0" / "eval" / "final").is_dir():
        print(f"run benchmarks/synth2real.py --rows source_only adaptsegnet first: the rows start from the "
              f"adapted model in {out}")
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = {row: run_row(row, out, args.seed, args.rounds, tuple(args.set)) for row in args.rows}
    oracle = reference(out, "camvid_supervised")
    uda = {name: reference(out, name) for name in UDA_ROWS}
    uda = {k: v for k, v in uda.items() if v is not None}
    lines = [("source-only", reference(out, "synstreets2camvid_source_only"), "0")]
    if uda:
        best = max(uda, key=uda.get)
        lines.append((f"best UDA ({best})", uda[best], "0"))
    for row, r in results.items():
        spent = r["spent"]
        budget = (f"{spent['points_per_image']:.1f} pts/img" if "points" in row or row in ("ripu-pa", "labor-ppl")
                  else f"{spent['percent_pixels']:.2f} % px")
        lines.append((row, r["miou"], budget))
    lines.append(("oracle (all CamVid train labels)", oracle, "100 % px"))
    print(f"\nBenchmark R, active labelling: SynStreets -> CamVid val (11 classes), seed {args.seed}")
    print(f"{'row':<34}{'labels used':>16}{'mIoU %':>9}{'% of oracle':>13}{'minutes':>9}")
    for row, miou, budget in lines:
        share = f"{100 * miou / oracle:.0f}" if miou is not None and oracle else "-"
        minutes = results[row]["seconds"] / 60 if row in results else float("nan")
        print(f"{row:<34}{budget:>16}{'-' if miou is None else f'{100 * miou:.1f}':>9}{share:>13}"
              f"{minutes:>9.1f}")


if __name__ == "__main__":
    main()
