"""Time to accuracy: the oracle's CamVid-val mIoU after 5, 10, 15 and 20 minutes of training on this machine,
one row per setting (backbone, loss, learning rates, speed levers).

    python benchmarks/time_to_accuracy.py                                  # every setting
    python benchmarks/time_to_accuracy.py --settings baseline lite2 --minutes 20

Each setting first (all probes before any run) trains `--probe` iterations in a scratch folder to measure its seconds per iteration (data
loading included, the median of the iterations after the 10th), then trains `minutes x 60 / (s/iter)` iterations with the
schedule ending there, scored on CamVid val at every quarter of the budget. So the budget is in iterations
fixed by the probe: a busy machine slows the run but does not change its scores (the probe itself must run
alone). Runs that finished already are re-used. Skips when ../shared/data/camvid is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "data" / "camvid"

#: Settings that change neither the model nor the input (learning rates, loss weights) cost the same per
#: iteration as this one and take its probe, so they train the same iterations and the comparison is exact.
SAME_SPEED = {"backbone_lr": "baseline", "balanced": "baseline", "default": "baseline"}

#: name -> (preset, overrides, what changes against `baseline`)
SETTINGS: dict[str, tuple[str, list[str], str]] = {
    "baseline": ("camvid_supervised", ["model.head=deeplabv3plus", "optim.backbone_lr_mult=0.1", "loss.name=ce",
                                       "loss.class_weight=none"],
                 "Lite0 + DeepLab-V3+ head, AdamW 6e-4 with backbone x0.1, plain CE (the old oracle)"),
    "backbone_lr": ("camvid_supervised", ["optim.backbone_lr_mult=1.0", "loss.name=ce", "loss.class_weight=none"],
                    "backbone at the head's learning rate"),
    "balanced": ("camvid_supervised", ["optim.backbone_lr_mult=1.0", "loss.name=ce",
                                       "loss.class_weight=median_frequency", "loss.class_weight_power=0.5"],
                 "+ median-frequency class weights, square root"),
    "ohem": ("camvid_supervised", ["optim.backbone_lr_mult=1.0", "loss.name=ohem", "loss.class_weight=none"],
             "+ OHEM (p < 0.7, at least 100k pixels)"),
    "default": ("camvid_supervised", [], "the preset as it stands: balanced, the chosen recipe"),
    "lite1": ("camvid_supervised", ["model.backbone=efficientnet_lite1"], "the preset on EfficientNet-Lite1"),
    "lite2": ("camvid_supervised", ["model.backbone=efficientnet_lite2"], "the preset on EfficientNet-Lite2"),
    "psp": ("camvid_supervised", ["model.head=psp"], "the preset with a PSP head"),
}


def overrides_for(name: str, out: Path, run_name: str | None = None) -> tuple[str, list[str]]:
    preset, extra, _ = SETTINGS[name]
    return preset, [f"out_dir={out}", f"name={run_name or name}", f"data.source.root={CAMVID}", f"data.val.root={CAMVID}",
                    *extra]


def seconds_per_iter(name: str, out: Path, probe: int) -> float:
    """Train `probe` iterations in a scratch folder (no validation); seconds per iteration after the 10th."""
    from syn2real.config import load_config
    from syn2real.engine.callbacks import Callback
    from syn2real.engine.trainer import Trainer

    name = SAME_SPEED.get(name, name)
    cache = out / "probes" / f"{name}.json"
    if cache.is_file():
        return json.loads(cache.read_text())["seconds_per_iter"]

    class Clock(Callback):
        def __init__(self):
            self.times: dict[int, float] = {}

        def before_step(self, trainer) -> bool:
            self.times[trainer.step] = time.perf_counter()
            return False

    preset, overrides = overrides_for(name, out)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [*overrides, f"out_dir={tmp}", f"train.iters={probe + 1}", "train.eval_every=0",
                     "train.checkpoint_every=0", "data.val=null"]
        clock = Clock()
        warnings.filterwarnings("ignore", message="optim.warmup_iters")  # the probe is shorter than the warm-up
        Trainer(load_config(preset, overrides), callbacks=[clock]).fit()
    # The median step: a burst of other work on the machine does not move it.
    steps = [clock.times[i + 1] - clock.times[i] for i in range(10, probe)]
    seconds = float(sorted(steps)[len(steps) // 2])
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"seconds_per_iter": seconds, "probe_iters": probe}))
    return seconds


def run_setting(name: str, out: Path, minutes: float, probe: int) -> dict:
    from syn2real.config import load_config
    from syn2real.run import train_once

    spi = seconds_per_iter(name, out, probe)
    quarter = max(1, round(minutes * 60 / 4 / spi))
    preset, overrides = overrides_for(name, out, f"{name}_{minutes:g}min")
    cfg = load_config(preset, [*overrides, f"train.iters={4 * quarter}", f"train.eval_every={quarter}",
                               f"train.checkpoint_every={quarter}"])
    start = time.perf_counter()
    train_once(cfg, progress=False)
    scores = {}
    for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "val/mIoU" in record:
            scores[record["step"]] = record
    final = scores[4 * quarter]
    classes = {k.removeprefix("val/IoU/"): v for k, v in final.items() if k.startswith("val/IoU/")}
    worst = min(classes, key=classes.get)
    return {"name": name, "seconds_per_iter": spi, "iters": 4 * quarter,
            "miou": [100 * scores[quarter * i]["val/mIoU"] for i in (1, 2, 3, 4)],
            "worst": f"{worst} {100 * classes[worst]:.1f}", "wall_minutes": (time.perf_counter() - start) / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget of each setting")
    parser.add_argument("--probe", type=int, default=40, help="iterations of the speed probe")
    parser.add_argument("--out", default=str(ROOT / "runs" / "time_to_accuracy"))
    parser.add_argument("--fresh", action="store_true", help="delete the settings' earlier runs and probes first")
    args = parser.parse_args()
    if not CAMVID.is_dir():
        print(f"skipped: the oracle needs CamVid at {CAMVID} (see shared/data/README.md)")
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    if args.fresh:
        for name in args.settings:
            shutil.rmtree(out / f"{name}_{args.minutes:g}min", ignore_errors=True)
            (out / "probes" / f"{name}.json").unlink(missing_ok=True)
    marks = [args.minutes * i / 4 for i in (1, 2, 3, 4)]
    print(f"oracle (CamVid train -> val, 11 classes), mIoU % after each share of a {args.minutes:g}-minute budget")
    print(f"{'setting':>12} {'s/iter':>6} {'iters':>5} " + " ".join(f"{m:>5.0f}'" for m in marks)
          + f" {'worst class':>18} {'wall min':>8}  what")
    for name in args.settings:  # every probe first, while the machine is quiet; the runs after need not be
        seconds_per_iter(name, out, args.probe)
    for name in args.settings:
        r = run_setting(name, out, args.minutes, args.probe)
        print(f"{name:>12} {r['seconds_per_iter']:>6.2f} {r['iters']:>5} "
              + " ".join(f"{v:>6.1f}" for v in r["miou"])
              + f" {r['worst']:>18} {r['wall_minutes']:>8.1f}  {SETTINGS[name][2]}", flush=True)


if __name__ == "__main__":
    main()
