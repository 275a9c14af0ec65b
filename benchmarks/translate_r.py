"""Benchmark R, learned translation (issue 22): SynStreets frames made to look like CamVid, then source-only and
CyCADA's recipe on them.

    python benchmarks/translate_r.py                                  # cyclegan_cpu on the `default` frames
    python benchmarks/translate_r.py --translators cyclegan_cpu cycada_cpu dranet_cpu --seeds 0 1 2
    python benchmarks/translate_r.py --source default+barerails --set residual=false --tag plain
    python benchmarks/translate_r.py --source default+barerails --set residual=false --tag plain --smooth 4

For each translator preset: train it (SynStreets frames of `--source`, a benchmarks/source_r.py row, -> the
unlabelled CamVid train frames; cycada_cpu's frozen segmenter is that row's seed-0 source-only run), print KID on
EfficientNet-Lite0 features (source vs CamVid train, translated vs CamVid train), write the translated copy of
the frames (labels unchanged), train source-only on it (preset `synstreets2camvid_source_only`, every seed) and
AdaptSegNet from its iteration 1000 (CyCADA's recipe: adversarial adaptation on translated frames). The rows to
compare, on the plain frames, come from `source_r.py --rows SOURCE --seeds ... --uda adaptsegnet fda`.
Translator training time is printed apart from the rows'. Finished steps are re-used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from source_r import parse_row, render_frames
from synth2real import CAMVID, ROOT, ROWS, WARM_START_ITER, camvid_missing, train_timed


def train_translator_once(preset: str, name: str, out: Path, frames: Path, semantic: Path | None,
                          overrides: list[str]) -> Path:
    from syn2real.config import DatasetConfig
    from syn2real.io import atomic_write_json
    from syn2real.translate.config import (
        absolute,
        check_translator_config,
        load_translator_config,
    )
    from syn2real.translate.train import last_checkpoint, train_translator

    cfg = load_translator_config(preset, [f"out_dir={out / 'translate'}", f"name={name}", *overrides])
    cfg = dataclasses.replace(cfg, source=DatasetConfig("synstreets", str(frames), "train"),
                              target=DatasetConfig("camvid", str(CAMVID), "train"),
                              semantic=str(semantic) if semantic else cfg.semantic)
    cfg = check_translator_config(absolute(cfg))
    run = Path(cfg.out_dir) / cfg.name
    timing = run / "wall_time.json"
    last = last_checkpoint(run)
    if last is None or last["step"] < cfg.iters:
        start = time.perf_counter()
        train_translator(cfg, resume=last is not None, progress=True)
        atomic_write_json(timing, {"seconds": time.perf_counter() - start, "iters": cfg.iters})
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_r"))
    parser.add_argument("--source", default="default", help="a source_r.py row naming the frames")
    parser.add_argument("--translators", nargs="+", default=["cyclegan_cpu"],
                        choices=["cyclegan_cpu", "cycada_cpu", "dranet_cpu"])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="translator settings for every preset, e.g. residual=false (name them with --tag)")
    parser.add_argument("--tag", default="", help="added to the translator runs' names")
    parser.add_argument("--smooth", type=float, default=0.0,
                        help="apply with --smooth SIGMA (only the translator's large-scale change)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.set and not args.tag:
        parser.error("--set changes the translators: name their runs apart with --tag")
    if camvid_missing():
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from syn2real.config import DatasetConfig
    from syn2real.translate.train import apply_translator, score_sets

    out = Path(args.out)
    groups, edits, switches = parse_row(args.source)
    frames = render_frames(out, groups, edits, args.workers)
    camvid_train = DatasetConfig("camvid", str(CAMVID), "train")
    plain_kid = score_sets(DatasetConfig("synstreets", str(frames), "train"), camvid_train, progress=True)
    lines = [(f"KID x 1e3 (EfficientNet-Lite0 features) to CamVid train: {args.source} frames "
              f"{1e3 * plain_kid['kid']:.2f} ± {1e3 * plain_kid['std']:.2f}")]
    table = []
    for preset in args.translators:
        name = f"{preset}{'_' + args.tag if args.tag else ''}_{args.source}"
        semantic = out / f"source_{args.source}_seed0" if preset.startswith("cycada") else None
        run = train_translator_once(preset, name, out, frames, semantic, args.set)
        name += f"_smooth{args.smooth:g}" if args.smooth else ""
        translated, _, _ = apply_translator(run, DatasetConfig("synstreets", str(frames), "train"),
                                            out / "translated" / name, progress=True, smooth=args.smooth)
        scores = score_sets(DatasetConfig("folder", str(translated), "train"), camvid_train, progress=True)
        minutes = json.loads((run / "wall_time.json").read_text())["seconds"] / 60 \
            if (run / "wall_time.json").is_file() else float("nan")
        lines.append(f"  {name}: translated {1e3 * scores['kid']:.2f} ± {1e3 * scores['std']:.2f} "
                     f"(translator trained in {minutes:.0f} minutes)")
        common = [f"out_dir={out}", "data.source.kind=folder", f"data.source.root={translated}",
                  f"data.val.root={CAMVID}", *switches]
        source_runs = [train_timed(ROWS["source_only"], [*common, f"train.seed={s}", f"name=source_{name}_seed{s}"])
                       for s in args.seeds]
        warm = out / f"source_{name}_seed0" / "checkpoints" / f"iter_{WARM_START_ITER:06d}.safetensors"
        adapted = [train_timed(ROWS["adaptsegnet"], [*common, f"data.target.root={CAMVID}", f"train.init_from={warm}",
                                                     f"train.seed={s}", f"name=adaptsegnet_from_{name}_seed{s}"])
                   for s in args.seeds]
        table.append((name, source_runs, adapted))

    import numpy as np

    print("\n" + "\n".join(lines))
    print(f"\nBenchmark R on translated frames, seeds {args.seeds}: mIoU % (mean ± std), minutes per run")
    for name, source_runs, adapted in table:
        for row, results in ((f"source-only on {name}", source_runs), (f"AdaptSegNet on {name}", adapted)):
            m = np.array([r["miou"] for r in results]) * 100
            t = np.array([r["seconds"] for r in results]) / 60
            print(f"  {row:<48} {m.mean():5.1f} ± {m.std():3.1f}   {t.mean():5.1f}")


if __name__ == "__main__":
    main()
