"""Whether two sets of runs trained the same: for each run folder present under both OUT_A and OUT_B (e.g. two
`benchmarks/adaptation_t.py --out ...` of different commits), its final mIoU in each and whether its last
checkpoint's weights are equal tensor for tensor.

    python benchmarks/compare_runs.py runs/t_before runs/t_after
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_a", type=Path)
    parser.add_argument("out_b", type=Path)
    args = parser.parse_args()
    import torch

    from syn2real.engine.checkpoint import last_checkpoint, load_weights
    from syn2real.run import final_metrics, is_finished

    names = sorted(p.name for p in args.out_a.iterdir() if is_finished(p) and is_finished(args.out_b / p.name))
    print(f"{'run':<20}{'mIoU A':>10}{'mIoU B':>10}  weights")
    for name in names:
        runs = (args.out_a / name, args.out_b / name)
        miou = [100 * final_metrics(run)["miou"] for run in runs]
        a, b = (load_weights(last_checkpoint(run / "checkpoints")["weights"]) for run in runs)
        same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        print(f"{name:<20}{miou[0]:>10.4f}{miou[1]:>10.4f}  {'equal' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
