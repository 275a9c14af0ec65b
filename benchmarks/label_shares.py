"""Which classes a run's answers labelled: the share of each class among the labelled pixels of its label store.

    python benchmarks/label_shares.py runs/bench_r/active_entropy-points_rounds0-450_train.iters900_seed0 ...

Counts every labelled pixel (points and regions alike; answers of 255, CamVid's void, are not labels) in
`RUN/active/labels.sqlite`, in the Cityscapes-19 ids the simulated annotator answers in.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from syn2real.active.rounds import STORE_FILE
from syn2real.active.store import LabelStore
from syn2real.labels import CITYSCAPES19, IGNORE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=9, help="classes to print per run, largest share first")
    args = parser.parse_args()
    for run in args.runs:
        store = LabelStore(run / "active" / STORE_FILE)
        counts = np.zeros(len(CITYSCAPES19.classes), np.int64)
        for image in store.images():
            labels = store.sparse_label(image)
            counts += np.bincount(labels[labels != IGNORE], minlength=counts.size)
        shares = 100 * counts / max(counts.sum(), 1)
        top = " ".join(f"{CITYSCAPES19.classes[k]} {shares[k]:.1f}" for k in np.argsort(-shares)[:args.top])
        print(f"{run.name}: {counts.sum()} labelled pixels; {top}")


if __name__ == "__main__":
    main()
