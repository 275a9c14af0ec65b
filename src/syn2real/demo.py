"""`syn2real demo`: benchmark T end to end with no download.

Renders a SynStreets source in the `synthetic` style and a target in the `photo` style (an unlabelled train
split and a labelled val split), then runs a short version of the `synstreets2camvid_best` recipe: source-only on
the source, the best adaptation method on T from that model, and, if asked, Noisy Student rounds from the adapted
model (each round's student becomes the next round's teacher). Scores every run on the target val split and
prints each one's gain over source-only. Each run folder gets its metrics and report.html.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from syn2real.config import Config, load_config
from syn2real.io import atomic_write_json
from syn2real.run import final_metrics, train_once

#: Frames rendered for the demo at 512x256 (W x H); the render takes seconds.
SOURCE_FRAMES = 600
TARGET_TRAIN_FRAMES = 300
TARGET_VAL_FRAMES = 60
FRAME_SIZE = (512, 256)

#: The method the demo runs after source-only: the best `_cpu` preset on benchmark T, FDA (37.1 mIoU from the
#: source-only model's 28.8; `python benchmarks/adaptation_t.py` prints every method's row, docs/RESULTS.md holds
#: the table).
BEST_METHOD = "fda_cpu"
#: Adaptation budget on T: iterations from the source-only model, 2 source + 2 target crops a step, so a
#: self-training run takes about as long as a fifth of the source-only one.
ADAPT_ITERS = 150
ADAPT_BATCH = 2
#: Noisy Student rounds after the adaptation (the recipe's self-training stage), each ADAPT_ITERS iterations.
#: None by default: on T one round moved FDA's 22.6 to 22.5 (before the balanced optimiser) and adds 2.5 minutes
#: (docs/RESULTS.md, benchmark T).
SELF_TRAINING = "noisy_student_cpu"
ROUNDS = 0


def render_demo_data(out_dir: Path, workers: int = 2) -> dict[str, Path]:
    """Render (or find already rendered) the demo's source and target frames; returns their roots."""
    from syn2real.synth import render_dataset

    source = render_dataset(out_dir / "data" / "source", n=SOURCE_FRAMES, size=FRAME_SIZE, style="synthetic",
                            seed=0, workers=workers, split="train", progress=True)
    # A different seed: target scenes are new scenes, not re-styled source scenes. Train and val are splits
    # of one folder with different frame seeds, so no val scene is seen in training.
    target = out_dir / "data" / "target"
    for split, n in (("val", TARGET_VAL_FRAMES), ("train", TARGET_TRAIN_FRAMES)):
        render_dataset(target, n=n, size=FRAME_SIZE, style="photo", seed=1, workers=workers, split=split,
                       progress=True)
    return {"source": source, "target": target}


def source_only_config(out_dir: Path, roots: dict[str, Path], iters: int | None = None) -> Config:
    overrides = [f"out_dir={out_dir}", f"data.source.root={roots['source']}", f"data.val.root={roots['target']}"]
    if iters is not None:
        overrides.append(f"train.iters={iters}")
    return load_config("demo", overrides)


def adaptation_config(preset: str, out_dir: Path, roots: dict[str, Path], init_from: Path,
                      iters: int = ADAPT_ITERS, name: str | None = None) -> Config:
    """The demo's data and model with the adaptation method of `preset` (a benchmark-R `_cpu` preset; the
    method-less `synstreets2camvid_uda` continues source-only training at the same budget) and its model noise
    (dropout, stochastic depth: a Noisy Student preset's)."""
    cfg = load_config("demo", [
        f"out_dir={out_dir}", f"name={name or preset}", f"data.source.root={roots['source']}",
        f"data.val.root={roots['target']}", "data.target.kind=synstreets", f"data.target.root={roots['target']}",
        "data.target.split=train", f"data.batch_size={ADAPT_BATCH}", f"train.iters={iters}",
        f"train.init_from={init_from}", "train.checkpoint_every=50"])
    method_cfg = load_config(preset)
    cfg.method = method_cfg.method
    cfg.optim.poly_power = method_cfg.optim.poly_power
    cfg.model.dropout, cfg.model.drop_path = method_cfg.model.dropout, method_cfg.model.drop_path
    return cfg


def self_training_config(out_dir: Path, roots: dict[str, Path], previous: Path, round_: int,
                         iters: int = ADAPT_ITERS) -> Config:
    """Noisy Student round `round_` (from 1): teacher and initial weights = `previous` (the adapted run, then the
    previous round), the CBST portion growing by the recipe's step a round."""
    from syn2real.recipe import round_portion

    cfg = adaptation_config(SELF_TRAINING, out_dir, roots, previous / "checkpoints", iters,
                            name=f"noisy_student_r{round_}")
    params = cfg.method.params
    params["teacher"] = str(previous)
    params["portion"] = round_portion(params["portion"], round_)
    return cfg


def short_budget_note(iters: int, adapt_iters: int | None, warmup: int) -> str | None:
    """A warning for budgets too small to read anything into (a run spends its first `warmup` iterations
    ramping the learning rate up): None at the demo's own budget."""
    if iters > 2 * warmup and (adapt_iters is None or adapt_iters > warmup):
        return None
    budget = f"{iters} source-only" + (f" and {adapt_iters} adaptation" if adapt_iters is not None else "")
    return (f"note: {budget} iterations, the first {warmup} of each run a learning-rate warm-up, is too little "
            f"training for these scores (or the gain) to mean much; leave --iters and --adapt-iters unset for the "
            f"demo's budget")


def run_demo(out_dir: str | Path = "runs/demo", iters: int | None = None, console: Console | None = None,
             workers: int = 2, method: str | None = BEST_METHOD, adapt_iters: int = ADAPT_ITERS,
             rounds: int = ROUNDS) -> Path:
    """Run benchmark T; returns the last run's folder (the source-only one when `method` is None; no
    self-training rounds then)."""
    from syn2real.report.html import write_report

    console = console or Console()
    out_dir = Path(out_dir)
    start = time.perf_counter()
    roots = render_demo_data(out_dir, workers)
    source_cfg = source_only_config(out_dir, roots, iters)
    source_run = train_once(source_cfg)
    write_report(source_run)
    runs = {"source-only": source_run}
    if method is not None:
        console.print(f"adapting the source-only model to the unlabelled photo frames with {method} "
                      f"({adapt_iters} iterations)")
        previous = train_once(adaptation_config(method, out_dir, roots, source_run / "checkpoints", adapt_iters))
        write_report(previous)
        runs[method] = previous
        for k in range(1, rounds + 1):
            console.print(f"Noisy Student round {k} of {rounds}: the last model labels the photo frames, a "
                          f"student learns them under noise ({adapt_iters} iterations)")
            previous = train_once(self_training_config(out_dir, roots, previous, k, adapt_iters))
            write_report(previous)
            runs[previous.name] = previous
    results = {name: final_metrics(run) for name, run in runs.items()}
    base = results["source-only"]["miou"]
    table = Table(title="Benchmark T: SynStreets synthetic -> photo (val, 19 classes)")
    table.add_column("run")
    table.add_column("mIoU %", justify="right")
    table.add_column("gain", justify="right")
    table.add_column("pixel acc. %", justify="right")
    for name, result in results.items():
        gain = "" if name == "source-only" else f"{100 * (result['miou'] - base):+.1f}"
        table.add_row(name, f"{100 * result['miou']:.1f}", gain, f"{100 * result['pixel_accuracy']:.1f}")
    console.print(table)
    summary = {name: {"run": str(runs[name]), "miou": r["miou"], "pixel_accuracy": r["pixel_accuracy"]}
               for name, r in results.items()}
    last = list(runs)[-1]
    if method is not None:
        gain = 100 * (results[last]["miou"] - base)
        summary["gain_miou_points"] = gain
        console.print(f"{' + '.join(list(runs)[1:])} gains {gain:+.1f} mIoU points over source-only")
    note = short_budget_note(source_cfg.train.iters, adapt_iters if method is not None else None,
                             source_cfg.optim.warmup_iters)
    if note:
        console.print(note)
    atomic_write_json(out_dir / "summary.json", summary)
    final_run = runs[last]
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s; reports {source_run / 'report.html'}"
                  + (f" and {final_run / 'report.html'}" if method is not None else ""))
    return final_run
