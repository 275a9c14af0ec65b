"""Benchmark R, source side (issue 21): what in the source moves source-only mIoU on real CamVid val.

    python benchmarks/source_r.py --rows synthetic default --iters 500                # a short screen
    python benchmarks/source_r.py --rows camera light structure surfaces vegetation sensor --iters 500
    python benchmarks/source_r.py --rows default+randconv default+pasta default+ibn default+mixstyle --iters 500
    python benchmarks/source_r.py --rows default --seeds 0 1 2                        # the full budget, 3 seeds
    python benchmarks/source_r.py --rows default --uda adaptsegnet advent fda dacs daformer mic

A row is `+`-joined words. Frames: `synthetic` (the renderer's old fixed look, the frames of
benchmarks/synth2real.py), `default` (every group of `--randomize default`), or group names (camera,
structure, light, surfaces, vegetation, sensor): the `synthetic` point with only those groups taken from
`default`; `nocrowns` takes the bare trees' twig crowns out (vegetation as `default` had it before them),
`barerails` labels railings bar by bar (structure.railing_extent_prob 0, as before their gaps were labelled),
`pairedrails` does too with the same scene draws as `default` (probability 1e-9: the railing ablation).
Training-side switches, on top of the frames: `randconv`, `pasta` (data.source_style), `ibn`, `mixstyle`
(model.*). Every row trains preset `synstreets2camvid_source_only` (1500 iterations unless `--iters`)
on 2000 frames of 480x360 rendered with seed 0 into `--out/frames/<groups>` (rendered once, re-used).

`--uda` re-runs benchmark R's UDA rows (presets as in synth2real.py: 300 iterations from the source-only
model's iteration 1000) from each given row's seed-0 source-only run, on that row's frames and switches.
Finished runs are re-used. Reports the last checkpoint's score, never one picked on val.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth2real import CAMVID, ROOT, ROWS, WARM_START_ITER, camvid_missing, train_timed

GROUPS = ("camera", "structure", "light", "surfaces", "vegetation", "sensor")
SWITCHES = {"randconv": ["data.source_style=[randconv]"], "pasta": ["data.source_style=[pasta]"],
            "ibn": ["model.ibn=true"], "mixstyle": ["model.mixstyle=true"]}
#: Renderer changes on top of the groups: word -> YAML lines appended to the row's randomisation file.
FRAME_EDITS = {"nocrowns": "vegetation:\n  bare_crown_prob: 0.0\n  bare_tree_prob: 0.3\n",
               "barerails": "structure:\n  railing_extent_prob: 0.0\n",
               # Bar by bar too, but the per-railing draw still happens: the same scenes as `default`.
               "pairedrails": "structure:\n  railing_extent_prob: 1.0e-9\n"}
FRAMES, SIZE = 2000, (480, 360)


def parse_row(row: str) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
    """Split a row into its randomised renderer groups, its renderer edits and its training-side overrides."""
    groups: set[str] = set()
    edits: list[str] = []
    overrides: list[str] = []
    styles: list[str] = []
    for word in row.split("+"):
        if word == "synthetic":
            continue
        if word in FRAME_EDITS:
            edits.append(word)
        elif word == "default":
            groups.update(GROUPS)
        elif word in GROUPS:
            groups.add(word)
        elif word in ("randconv", "pasta"):
            styles.append(word)
        elif word in SWITCHES:
            overrides += SWITCHES[word]
        else:
            raise SystemExit(f"row {row!r}: unknown word {word!r}; use synthetic, default, {', '.join(GROUPS)}, "
                             f"{', '.join(FRAME_EDITS)}, {', '.join(SWITCHES)}")
    if styles:
        overrides.append(f"data.source_style=[{','.join(styles)}]")
    return tuple(g for g in GROUPS if g in groups), tuple(edits), overrides


def render_frames(out: Path, groups: tuple[str, ...], edits: tuple[str, ...], workers: int) -> Path:
    """The frame set of `groups` and `edits` (rendered once): `synthetic` with those groups from `default`."""
    from syn2real.synth import render_dataset

    if not groups and not edits:
        # The exact frames of benchmarks/synth2real.py (the renderer's old look).
        return render_dataset(out / "synstreets", n=FRAMES, size=SIZE, style="synthetic", seed=0,
                              workers=workers, split="train", progress=True)
    name = "+".join((["default"] if groups == GROUPS else list(groups)) + list(edits))
    # Every group from `default` is `default` itself, which an edit may then change; a group named by a point
    # cannot also be edited in the same file.
    head = "base: default\n" if groups == GROUPS else "base: synthetic\n" + "".join(f"{g}: default\n" for g in groups)
    if groups != GROUPS and any(FRAME_EDITS[e].split(":")[0] in groups for e in edits):
        raise SystemExit(f"row {name}: an edit changes a group the row takes whole from `default`")
    spec = out / "frames" / f"{name}.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(head + "".join(FRAME_EDITS[e] for e in edits))
    return render_dataset(out / "frames" / name, n=FRAMES, size=SIZE, seed=0, workers=workers, split="train",
                          progress=True, randomize=spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_r"))
    parser.add_argument("--rows", nargs="+", default=["synthetic", "default"])
    parser.add_argument("--iters", type=int, default=None, help="source-only budget (preset: 1500)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--uda", nargs="*", default=[], choices=[r for r in ROWS if r not in ("source_only", "oracle")])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.uda and args.iters:
        parser.error("--uda starts from the source-only run's iteration 1000: run it at the preset budget (no --iters)")
    if camvid_missing():
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    budget = f"_i{args.iters}" if args.iters else ""
    results: dict[str, list[dict]] = {}
    for row in args.rows:
        groups, edits, switches = parse_row(row)
        frames = render_frames(out, groups, edits, args.workers)
        common = [f"out_dir={out}", f"data.source.root={frames}", f"data.val.root={CAMVID}", *switches]
        budget_override = [f"train.iters={args.iters}"] if args.iters else []
        results[row] = [train_timed(ROWS["source_only"], [*common, *budget_override, f"train.seed={s}",
                                                          f"name=source_{row}{budget}_seed{s}"]) for s in args.seeds]
        warm = out / f"source_{row}_seed0" / "checkpoints" / f"iter_{WARM_START_ITER:06d}.safetensors"
        for uda in args.uda:
            uda_common = [*common, f"data.target.root={CAMVID}", f"train.init_from={warm}"]
            results[f"{row} {uda}"] = [train_timed(ROWS[uda], [*uda_common, f"train.seed={s}",
                                                               f"name={uda}_from_{row}_seed{s}"]) for s in args.seeds]

    classes = list(next(iter(results.values()))[0]["iou"])
    print(f"\nBenchmark R, source side: {FRAMES} SynStreets frames {SIZE[0]}x{SIZE[1]} -> CamVid val, 11 classes, "
          f"seeds {args.seeds}, source-only budget {args.iters or 'preset (1500)'}; IoU %")
    width = max(16, *(len(r) + 2 for r in results))
    print(f"{'class':<12}" + "".join(f"{row:>{width}}" for row in results))
    for name in classes:
        cells = [np.array([np.nan if r["iou"][name] is None else r["iou"][name] for r in rs]) * 100
                 for rs in results.values()]
        print(f"{name:<12}" + "".join(f"{c.mean():>{width}.1f}" for c in cells))
    mious = [np.array([r["miou"] for r in rs]) * 100 for rs in results.values()]
    print(f"{'mIoU':<12}" + "".join(f"{f'{m.mean():.1f} ± {m.std():.1f}':>{width}}" for m in mious))
    minutes = [np.array([r["seconds"] for r in rs]) / 60 for rs in results.values()]
    print(f"{'minutes':<12}" + "".join(f"{t.mean():>{width}.1f}" for t in minutes))


if __name__ == "__main__":
    main()
