"""What LabOR's inconsistency mask covers on benchmark R, for a range of discrepancy weights.

    python benchmarks/labor_mask_r.py                      # lambda_discrepancy 1 10 50 200
    python benchmarks/labor_mask_r.py --lambdas 1 50 --images 30

For each weight the pixel selector is trained from R's AdaptSegNet model as round 0 of the LabOR rows trains it
(`labor_ppl_cpu`: 100 iterations, source CE + pseudo-label CE on target - lambda x discrepancy), then compared with
the CamVid train labels on every k-th image: the mask's share of the pixels, the model's error rate inside and
outside it, the share of the model's errors it covers, the share of one named confusion it covers (default: real
pavement predicted as road, R's largest error), and the error rate at the 20 points LabOR-PPL would ask for.
Uniform random points are printed first as the yardstick. Then, per weight and true class: the class's share of
the pixels, the model's accuracy on it, the share of its pixels in the mask, its share of the mask, and its share
of the points each selector would ask for (LabOR-PPL; entropy as benchmark R's `entropy-points` row, over the
whole image and inside the mask only; random). Needs `benchmarks/synth2real.py --rows source_only adaptsegnet`
first.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

# a sibling script: benchmarks/ is on sys.path when this one runs
from active_r import CAMVID, ENTROPY_POINTS_K, ROOT
from rich.progress import track

OUT = ROOT / "runs" / "bench_r"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lambdas", nargs="+", type=float, default=[1.0, 10.0, 50.0, 200.0])
    parser.add_argument("--images", type=int, default=60, help="CamVid train images measured (evenly spaced)")
    parser.add_argument("--points", type=int, default=20, help="PPL points per image (one round of the 40)")
    parser.add_argument("--confusion", nargs=2, default=["sidewalk", "road"], metavar=("TRUE", "PREDICTED"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warm = OUT / "adaptsegnet_cpu_seed0" / "checkpoints" / "iter_000300.safetensors"
    if not CAMVID.is_dir():
        print(f"skipped: benchmark R needs CamVid at {CAMVID} (see shared/data/README.md)")
        return
    if not warm.is_file():
        print(f"run benchmarks/synth2real.py --rows source_only adaptsegnet first: this starts from {warm}")
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from syn2real.active.pixel_selector import train_selector
    from syn2real.active.requests import Budget
    from syn2real.active.selectors import inconsistency_mask, select
    from syn2real.config import load_config
    from syn2real.data import build_dataset
    from syn2real.engine.checkpoint import load_weights
    from syn2real.engine.trainer import build_datasets
    from syn2real.evaluate.inference import infer_logits
    from syn2real.evaluate.metrics import ConfusionMatrix
    from syn2real.labels import CITYSCAPES19, IGNORE
    from syn2real.models import build_model

    cfg = load_config("labor_ppl_cpu", [f"out_dir={OUT}", f"data.source.root={OUT / 'synstreets'}",
                                        f"data.target.root={CAMVID}", f"data.val.root={CAMVID}",
                                        f"active.oracle_data.root={CAMVID}"])
    torch.manual_seed(args.seed)
    model = build_model(cfg.model)
    model.load_state_dict(load_weights(warm))
    model.eval()
    datasets = build_datasets(cfg)
    truth = build_dataset(cfg.active.oracle_data, None, labels=True)
    true_id, predicted_id = (truth.space.classes.index(name) for name in args.confusion)
    step = max(1, len(truth) // args.images)
    frames = []  # (name, image batch, model softmax, model prediction, labels)
    with torch.no_grad():
        for index in track(range(0, len(truth), step)[:args.images], description="Model predictions"):
            item = truth[index]
            batch = item["image"].as_subclass(torch.Tensor).unsqueeze(0).float() / 255
            probs = infer_logits(model, batch, precision=cfg.train.precision)[0].softmax(0)
            frames.append((item["name"], batch, probs, probs.argmax(0).numpy(),
                           item["mask"].as_subclass(torch.Tensor).numpy()))

    budget = Budget(points=args.points)
    classes = len(CITYSCAPES19.classes)

    def answers(choose) -> tuple[float, np.ndarray]:
        """The model's error rate at the points `choose(name, probs)` asks for, and the points' true classes."""
        asked = [(labels[r.y, r.x], predicted[r.y, r.x]) for name, _, probs, predicted, labels in frames
                 for r in choose(name, probs) if labels[r.y, r.x] != IGNORE]
        if not asked:
            return float("nan"), np.zeros(classes, np.int64)
        true, guess = np.array(asked, np.int64).T
        return 100 * float(np.mean(true != guess)), np.bincount(true, minlength=classes)

    rng = np.random.default_rng(args.seed)
    random_errors, random_classes = answers(lambda name, probs: select("random", name, probs, budget, rng=rng))
    _, entropy_classes = answers(lambda name, probs: select("entropy", name, probs, budget, k=ENTROPY_POINTS_K))
    scores = ConfusionMatrix(classes)
    for *_, predicted, labels in frames:
        scores.update(torch.from_numpy(predicted), torch.from_numpy(labels))
    pixels, accuracy = scores.matrix.sum(1) + scores.outside, 100 * scores.class_accuracy()
    confusion = f"{args.confusion[0]}->{args.confusion[1]}"
    print(f"\nLabOR's inconsistency mask on benchmark R (AdaptSegNet model, {len(frames)} CamVid train images, "
          f"selector {cfg.active.selector_iters} iterations, seed {args.seed}); percentages")
    header = (f"{'lambda':>8}{'mask px':>9}{'err in':>8}{'err out':>9}{'errors in mask':>16}"
              f"{confusion + ' in mask':>26}{'err at PPL pts':>16}")
    rows = [f"{'random':>8}{'':>9}{'':>8}{'':>9}{'':>16}{'':>26}{random_errors:>16.1f}"]
    per_class = []
    for lam in args.lambdas:
        torch.manual_seed(args.seed)  # the second classifier's initialisation
        selector, _ = train_selector(model, datasets["source"], datasets["target"], cfg.active.selector_iters,
                                     cfg.optim.lr, lam, cfg.data.batch_size, cfg.data.workers, seed=args.seed,
                                     pseudo_threshold=cfg.active.selector_pseudo_threshold, progress=True)
        in_mask = np.zeros(classes, np.int64)
        heads, count = {}, dict.fromkeys(("mask", "pixels", "wrong_in", "valid_in", "wrong_out", "valid_out",
                                           "confused_in", "confused"), 0)
        with torch.no_grad():
            for name, batch, _, predicted, labels in frames:
                logits1, logits2 = selector(batch)
                heads[name] = (logits1[0].float().softmax(0), logits2[0].float().softmax(0))
                mask = inconsistency_mask(*heads[name])
                valid = labels != IGNORE
                wrong = valid & (predicted != labels)
                confused = (labels == true_id) & (predicted == predicted_id)
                for key, value in (("mask", mask), ("wrong_in", wrong & mask), ("valid_in", valid & mask),
                                   ("wrong_out", wrong & ~mask), ("valid_out", valid & ~mask),
                                   ("confused_in", confused & mask), ("confused", confused)):
                    count[key] += int(value.sum())
                count["pixels"] += mask.size
                in_mask += np.bincount(labels[valid & mask], minlength=classes)
        ppl, ppl_classes = answers(lambda name, probs, heads=heads: select(
            "labor-ppl", name, heads[name][0], budget, probs2=heads[name][1], **cfg.active.params))
        _, masked_entropy_classes = answers(lambda name, probs, heads=heads: select(
            "entropy", name, probs, budget, labelled=~inconsistency_mask(*heads[name]), k=ENTROPY_POINTS_K))
        per_class.append((lam, in_mask, [ppl_classes, entropy_classes, masked_entropy_classes, random_classes]))
        share = {"mask": count["mask"] / count["pixels"], "in": count["wrong_in"] / max(count["valid_in"], 1),
                 "out": count["wrong_out"] / max(count["valid_out"], 1),
                 "covered": count["wrong_in"] / max(count["wrong_in"] + count["wrong_out"], 1),
                 "confused": count["confused_in"] / max(count["confused"], 1)}
        rows.append(f"{lam:>8g}{100 * share['mask']:>9.1f}{100 * share['in']:>8.1f}{100 * share['out']:>9.1f}"
                    f"{100 * share['covered']:>16.1f}{100 * share['confused']:>26.1f}{ppl:>16.1f}")
    print(header, *rows, sep="\n")

    def percent_of_total(counts: np.ndarray) -> np.ndarray:
        return 100 * counts / max(counts.sum(), 1)

    selectors = ("PPL", "entropy", "entropy in mask", "random")
    widths = [max(len(name) + 2, 8) for name in selectors]
    for lam, in_mask, asked in per_class:
        print(f"\nPer true class at lambda {lam:g}: % of the pixels, the model's accuracy, % of the class in the mask, "
              f"% of the mask, and % of the {args.points} points/image each selector asks for")
        print(f"{'class':<15}{'pixels':>8}{'acc':>7}{'in mask':>9}{'of mask':>9}"
              + "".join(f"{name:>{w}}" for name, w in zip(selectors, widths)))
        columns = [percent_of_total(pixels), accuracy, 100 * in_mask / np.maximum(pixels, 1),
                   percent_of_total(in_mask), *map(percent_of_total, asked)]
        for k in np.flatnonzero(pixels).tolist():
            print(f"{CITYSCAPES19.classes[k]:<15}" + "".join(f"{column[k]:>{w}.1f}" for column, w in
                                                             zip(columns, [8, 7, 9, 9, *widths])))


if __name__ == "__main__":
    main()
