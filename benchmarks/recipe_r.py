"""Benchmark R, one recipe (issue 23): `syn2real recipe synstreets2camvid_best` once per seed, each stage's score
as a row.

    python benchmarks/recipe_r.py --seeds 0 1 2
    python benchmarks/recipe_r.py --seeds 0 --set adapt.config=fda_cpu --tag fda     # a variant, named apart

Seed s runs the recipe into `--out/synstreets2camvid_best[_TAG]_seed<s>` with every train stage at train.seed=s
(the render stage keeps its seed 0: every seed trains on the same frames, as benchmarks/source_r.py's seeds do).
`--reuse-source` takes benchmark R's finished source-only run of the same seed
(`runs/bench_r/source_default_seed<s>`, from `source_r.py --rows default --seeds ...`) as the recipe's
source_only stage when its training config is the recipe's own (name and folder aside): a hard-linked copy, so
the 16 minutes are not spent twice. Each stage is scored on CamVid val at its last checkpoint, as the recipe does.
Prints, per stage: mIoU mean ± std over the seeds, % of the oracle, the share of the source-only -> oracle gap
closed, minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth2real import ROOT, camvid_missing

RECIPE = "synstreets2camvid_best"
ORACLE = 62.9  # docs/RESULTS.md, time to accuracy: camvid_supervised at 20 minutes (issue 26)


def same_training(a: dict, b: dict) -> bool:
    """Two saved run configs that train the same thing: equal but for the run's name and folder."""
    strip = lambda cfg: {k: v for k, v in cfg.items() if k not in ("name", "out_dir")}  # noqa: E731
    return strip(a) == strip(b)


def reuse_source(recipe, seed: int, say) -> None:
    """Copy benchmark R's finished source-only run of `seed` into the recipe's source_only folder (hard links)
    when it trained what the recipe's stage would."""
    from syn2real.config import load_config, to_dict
    from syn2real.recipe import planned_outputs, train_configs
    from syn2real.run import is_finished

    stage = recipe.stage("source_only")
    (cfg,) = train_configs(recipe, stage, planned_outputs(recipe))
    bench = ROOT / "runs" / "bench_r" / f"source_default_seed{seed}"
    if is_finished(cfg.run_dir) or not is_finished(bench):
        return
    # Through the loader, so options added since that run was saved take their defaults.
    if not same_training(to_dict(load_config(bench / "config.yaml")), to_dict(cfg)):
        say(f"not reused: {bench} trained another config than the recipe's source_only stage")
        return
    shutil.copytree(bench, cfg.run_dir, copy_function=os.link)
    say(f"source_only: reused {bench}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "runs" / "recipes"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", nargs="*", default=[], metavar="STAGE.KEY=VALUE",
                        help="recipe overrides for every seed, as `syn2real recipe --set` (name them with --tag)")
    parser.add_argument("--tag", default="")
    parser.add_argument("--reuse-source", action="store_true")
    args = parser.parse_args()
    if args.set and not args.tag:
        parser.error("--set changes the recipe: name its runs apart with --tag")
    if camvid_missing():
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The shipped recipe's paths (frames, CamVid) are relative to $SYN2REAL_DATA: the repository's root here.
    os.environ.setdefault("SYN2REAL_DATA", str(ROOT))
    from syn2real.recipe import load_recipe, run_recipe

    rows: dict[str, list[tuple[float | None, float]]] = {}
    for seed in args.seeds:
        out = Path(args.out) / f"{RECIPE}{'_' + args.tag if args.tag else ''}_seed{seed}"
        recipe = load_recipe(RECIPE, [*args.set, f"*.train.seed={seed}"], out=out)
        if args.reuse_source:
            reuse_source(recipe, seed, print)
        for row in run_recipe(recipe, progress=True, say=print):
            if row.kind in ("train", "evaluate"):
                rows.setdefault(row.stage, []).append((row.miou, row.minutes))
        print(json.dumps({"seed": seed, "summary": str(out / "summary.md")}))

    print(f"\nBenchmark R, recipe {RECIPE}{' ' + ' '.join(args.set) if args.set else ''}, seeds {args.seeds}: "
          f"CamVid val, 11 classes, mIoU % (oracle {ORACLE})")
    start = None
    print(f"{'stage':<20}{'mIoU':>14}{'% oracle':>10}{'gap closed':>12}{'minutes':>9}")
    for stage, results in rows.items():
        m = np.array([np.nan if r[0] is None else r[0] for r in results]) * 100
        minutes = np.mean([r[1] for r in results])
        start = m.mean() if start is None else start
        gap = (m.mean() - start) / (ORACLE - start) * 100
        print(f"{stage:<20}{f'{m.mean():.1f} ± {m.std():.1f}':>14}{m.mean() / ORACLE * 100:>9.0f}%"
              f"{gap:>11.0f}%{minutes:>9.1f}")


if __name__ == "__main__":
    main()
