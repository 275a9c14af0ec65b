"""`syn2real demo`: benchmark T end to end with no download.

Renders a SynStreets source in the `synthetic` style and a target in the `photo` style (an unlabelled train
split and a labelled val split), trains source-only on the source, scores on the target val split, and
writes the run folder with metrics and report.html.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from syn2real.config import load_config

#: Frames rendered for the demo at 512x256 (W x H); the render takes seconds.
SOURCE_FRAMES = 600
TARGET_VAL_FRAMES = 60
FRAME_SIZE = (512, 256)


def run_demo(out_dir: str | Path = "runs/demo", iters: int | None = None, console: Console | None = None,
             workers: int = 2) -> Path:
    from syn2real.engine.trainer import train
    from syn2real.report.html import write_report
    from syn2real.synth import render_dataset

    console = console or Console()
    out_dir = Path(out_dir)
    start = time.perf_counter()
    source = render_dataset(out_dir / "data" / "source", n=SOURCE_FRAMES, size=FRAME_SIZE, style="synthetic",
                            seed=0, workers=workers, split="train", progress=True)
    # A different seed: target scenes are new scenes, not re-styled source scenes.
    target = render_dataset(out_dir / "data" / "target", n=TARGET_VAL_FRAMES, size=FRAME_SIZE, style="photo",
                            seed=1, workers=workers, split="val", progress=True)
    overrides = [f"out_dir={out_dir}", f"data.source.root={source}", f"data.val.root={target}"]
    if iters is not None:
        overrides.append(f"train.iters={iters}")
    cfg = load_config("demo", overrides)
    run_dir = train(cfg, resume=(cfg.run_dir / "checkpoints" / "last.json").is_file())
    report = write_report(run_dir)
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s; run folder {run_dir}; report {report}")
    return run_dir
