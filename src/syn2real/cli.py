"""The `syn2real` command. It only parses arguments, loads a config and calls the library."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from syn2real.annotate.cli import annotate_app
from syn2real.errors import ConfigError, Syn2RealError

console = Console(stderr=True)
out = Console()

app = typer.Typer(
    name="syn2real",
    help="Synthetic-to-real semantic segmentation: render, train, adapt, label, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(help="Inspect and validate datasets.", no_args_is_help=True)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"syn2real {version('syn2real')}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                   help="Print the version and exit.")] = False) -> None:
    """Synthetic-to-real semantic segmentation: render, train, adapt, label, evaluate."""
app.add_typer(datasets_app, name="datasets")
app.add_typer(annotate_app, name="annotate")


def _parse_size(text: str | None, what: str = "--size") -> tuple[int, int] | None:
    """'WxH' -> (H, W), the order tensors use."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{what} must look like 1024x512 (width x height), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ConfigError(f"{what} must be positive, got {text!r}")
    return h, w


def _parse_data_spec(spec: str):
    """'kind:root[:split]' -> DatasetConfig (the root may itself contain ':')."""
    from syn2real.config import DatasetConfig

    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ConfigError(f"--data must look like kind:root[:split] (e.g. camvid:/data/camvid:val), got {spec!r}")
    root, split = rest, "val"
    if ":" in rest:
        head, _, tail = rest.rpartition(":")
        if tail and "/" not in tail and "\\" not in tail:
            root, split = head, tail
    return DatasetConfig(kind=kind, root=root, split=split)


@app.command()
def train(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (see configs/).")] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="Dotted overrides, e.g. train.iters=200.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run folder's last complete checkpoint.")] = False,
    init_from: Annotated[Optional[Path], typer.Option(help="Start from these weights (a run folder or a "
                                                            ".safetensors file), with a fresh optimiser.")] = None,
    deterministic: Annotated[bool, typer.Option(help="Bit-for-bit repeatable CPU runs.")] = False,
    name: Annotated[Optional[str], typer.Option(help="Run name (folder under out_dir).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option(help="Parent folder of the run folder.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Drop frames with unreadable files or unknown label "
                                                              "ids (and say how many) instead of stopping.")] = False,
):
    """Train a model as the config says (source-only, supervised, or an adaptation method).

    Examples:

      syn2real train --config configs/camvid_supervised.yaml

      syn2real train -c configs/gta2cs_source_only_dlv2.yaml data.source.root=/data/gta5 data.val.root=/data/cityscapes

      syn2real train -c configs/camvid_supervised.yaml train.iters=100 --name quick   # then --resume after a kill

    The same command runs under `torchrun --nproc_per_node N` (DDP).
    """
    from syn2real.config import load_config
    from syn2real.run import train as run_training

    extra = list(overrides or [])
    if deterministic:
        extra.append("train.deterministic=true")
    if name:
        extra.append(f"name={name}")
    if out_dir:
        extra.append(f"out_dir={out_dir}")
    if init_from:  # as an override, so config.yaml keeps it (absolute) for --resume from anywhere
        extra.append(f"train.init_from={init_from}")
    cfg = load_config(config, extra)
    if skip_bad:  # for each dataset the config has (overriding an absent one would add it)
        cfg = load_config(config, [*extra, *(f"data.{key}.skip_bad=true" for key in ("source", "target", "val")
                                             if getattr(cfg.data, key) is not None)])
    run_dir = run_training(cfg, resume=resume)
    out.print(f"run folder: {run_dir}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (or use --checkpoint for other weights).")],
    data: Annotated[Optional[str], typer.Option(help="kind:root[:split]; default: the run's validation set.")] = None,
    protocol: Annotated[Optional[str], typer.Option(help="cityscapes19 | synthia16 | synthia13 | camvid11.")] = None,
    mode: Annotated[Optional[str], typer.Option(help="whole | slide (sliding window).")] = None,
    size: Annotated[Optional[str], typer.Option(help="Resize images to WxH for inference; scoring stays at "
                                                     "label resolution.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="A .safetensors file instead of the run's last.")] = None,
    precision: Annotated[str, typer.Option(help="fp32 | bf16 | fp16.")] = "fp32",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    name: Annotated[Optional[str], typer.Option(help="Folder under RUN_DIR/eval/ (default: named by the data, "
                                                     "split, protocol, mode and size).")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Drop frames with unreadable files or unknown label "
                                                              "ids (and say how many) instead of stopping.")] = False,
):
    """Score a trained model: per-class IoU, mIoU, pixel accuracy, a confusion-matrix PNG.

    Each evaluation gets its own folder under RUN_DIR/eval/ (e.g. camvid-3f9a1c_val_camvid11_whole_native: kind,
    a hash of the root, split, protocol, mode, size), so no score replaces another; `report` lists them all.

    Examples:

      syn2real evaluate runs/camvid_supervised

      syn2real evaluate runs/gta2cs --data camvid:/data/camvid:val --protocol camvid11

      syn2real evaluate runs/gta2cs --data cityscapes:/data/cityscapes:val --mode slide --size 2048x1024
    """
    from syn2real.run import evaluate_run

    spec = _parse_data_spec(data) if data else None
    if skip_bad:  # the run's validation set unless --data names other frames
        import dataclasses

        from syn2real.config import load_config

        if spec is None and (run_dir / "config.yaml").is_file():
            spec = load_config(run_dir / "config.yaml").data.val
        spec = dataclasses.replace(spec, skip_bad=True) if spec is not None else None
    result, dest = evaluate_run(run_dir, spec, protocol, mode, _parse_size(size),
                                checkpoint, precision, device, progress=True, name=name)
    result.print_table(out)
    out.print(f"wrote {dest}/metrics.json and {dest}/confusion.png")


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (with --backend onnxruntime: an exported .onnx "
                                                 "file).")],
    images: Annotated[Path, typer.Argument(help="A folder of images (png, jpg) or one image.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the masks.")] = Path("preds"),
    overlay: Annotated[bool, typer.Option(help="Also write image/prediction blends.")] = False,
    size: Annotated[Optional[str], typer.Option(help="Resize images to WxH for inference.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="A .safetensors file instead of the run's last.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    backend: Annotated[str, typer.Option(help="torch | onnxruntime (runs a file from `syn2real export`).")] = "torch",
    compile: Annotated[bool, typer.Option("--compile", help="torch backend: torch.compile with frozen weights "
                                                            "(1.3-2.2x faster on a CPU after up to 1 min of compiling "
                                                            "per image size; for large folders).")] = False,
):
    """Predict palette PNG masks (and optional overlays) for a folder of images or one image.

    Examples:

      syn2real predict runs/camvid_supervised images/ --out preds/ --overlay

      syn2real predict runs/camvid_supervised street.jpg --out preds/

      syn2real predict runs/camvid_supervised/export/model.onnx images/ --backend onnxruntime
    """
    if backend == "onnxruntime":
        if checkpoint is not None:
            raise ConfigError("--checkpoint picks a run folder's weights; --backend onnxruntime runs the .onnx given")
        from syn2real.export import predict_onnx

        written = predict_onnx(run_dir, images, out_dir, size=_parse_size(size), overlay=overlay, device=device,
                               progress=True)
    elif backend == "torch":
        from syn2real.run import predict_run

        written = predict_run(run_dir, images, out_dir, size=_parse_size(size), overlay=overlay,
                              checkpoint=checkpoint, device=device, progress=True, compile=compile)
    else:
        raise ConfigError(f"--backend must be torch or onnxruntime, got {backend!r}")
    out.print(f"wrote {len(written)} files to {out_dir}")


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder, or a .safetensors checkpoint (it carries its "
                                                 "model config).")],
    fmt: Annotated[str, typer.Option("--format", help="onnx | torchscript.")] = "onnx",
    out_file: Annotated[Optional[Path], typer.Option("--out", help="File to write (default RUN_DIR/export/model"
                                                                   ".onnx or .pt; beside a .safetensors).")] = None,
    size: Annotated[Optional[str], typer.Option(help="Fix the input size to WxH (default: any size; the batch "
                                                     "axis is always free).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="A .safetensors file instead of the run's last.")] = None,
):
    """Export a trained model to ONNX or TorchScript, with its label space and input contract as metadata.

    The graph takes float32 RGB (N, 3, H, W) in [0, 1] and returns logits (N, C, H, W); it normalises itself.

    Examples:

      syn2real export runs/camvid_supervised --format onnx

      syn2real export runs/camvid_supervised --format torchscript --out model.pt --size 960x720
    """
    from syn2real.export import export_model

    out.print(f"wrote {export_model(run_dir, fmt, out_file, _parse_size(size), checkpoint)}")


@datasets_app.command("check")
def datasets_check(
    kind: Annotated[str, typer.Argument(help="gta5 | synthia | cityscapes | camvid | camvid19 | kitti | carla | "
                                             "folder | synstreets")],
    root: Annotated[Path, typer.Argument(help="The dataset's root folder.")],
    split: Annotated[str, typer.Option(help="Split to check (train, val, all, ...).")] = "train",
    id_map: Annotated[Optional[Path], typer.Option(help="folder datasets: YAML id map.")] = None,
    skip_bad: Annotated[bool, typer.Option(help="Report and skip bad pairs instead of failing.")] = False,
):
    """Validate a dataset folder and print per-class pixel shares.

    Examples:

      syn2real datasets check cityscapes /data/cityscapes --split val

      syn2real datasets check camvid ../shared/data/camvid --split train
    """
    from syn2real.config import DatasetConfig
    from syn2real.data.check import check_dataset, print_check_report

    ds_cfg = DatasetConfig(kind=kind, root=str(root), split=split, id_map=str(id_map) if id_map else None,
                           skip_bad=skip_bad)
    print_check_report(check_dataset(ds_cfg, progress=True), out)


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder to write.")] = Path("data/synstreets"),
    n: Annotated[int, typer.Option(help="Number of frames.")] = 500,
    size: Annotated[str, typer.Option(help="Frame size WxH.")] = "1024x512",
    style: Annotated[Optional[str], typer.Option(help="synthetic (game-like, the default) | photo (camera-like): "
                                                      "the renderer's two fixed looks.")] = None,
    randomize: Annotated[Optional[str], typer.Option(help="Draw every frame from the ranges of a randomisation "
                                                          "YAML file, or of a shipped one: default | synthetic | "
                                                          "photo (docs/SYNSTREETS.md).")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    workers: Annotated[int, typer.Option(help="Parallel render processes.")] = max(1, (os.cpu_count() or 1)),
    split: Annotated[str, typer.Option(help="Split name to write.")] = "train",
    preview: Annotated[bool, typer.Option(help="Also write a contact sheet (image | labels) preview.png.")] = False,
    sheet: Annotated[Optional[Path], typer.Option(help="Write only a contact sheet of the --n frames to this PNG "
                                                       "(no dataset): to look at a randomisation file.")] = None,
):
    """Render labelled synthetic street scenes (SynStreets) in Cityscapes train ids.

    Examples:

      syn2real synth --out data/synstreets --n 5000 --size 1024x512 --style synthetic --seed 0 --workers 2

      syn2real synth --out data/synstreets_sdr --n 5000 --size 1024x512 --randomize default --preview

      syn2real synth --randomize my_ranges.yaml --n 8 --size 512x256 --sheet sheet.png
    """
    from syn2real.synth import render_dataset, write_preview, write_sheet

    h, w = _parse_size(size)
    if n <= 0:
        raise ConfigError(f"--n must be positive, got {n}")
    if sheet is not None:
        written = write_sheet(sheet, n, (w, h), seed=seed, split=split, style=style, randomize=randomize)
        out.print(f"contact sheet of {n} frames: {written}")
        return
    root = render_dataset(out_dir, n=n, size=(w, h), style=style, seed=seed, workers=workers, split=split,
                          progress=True, randomize=randomize)
    out.print(f"wrote {n} frames to {root}")
    if preview:
        sheet = write_preview(root, root / "preview.png", split=split)
        out.print(f"preview: {sheet}")


@app.command()
def select(
    run_dir: Annotated[Path, typer.Argument(help="A run folder: its model scores the target images.")],
    method: Annotated[str, typer.Option(help="random | entropy | ripu-pa | ripu-ra | labor-spl | labor-ppl")],
    points: Annotated[Optional[int], typer.Option(help="Point requests per image.")] = None,
    percent: Annotated[Optional[float], typer.Option(help="Percent of each image's pixels (region requests).")] = None,
    data: Annotated[Optional[str], typer.Option(help="Target images kind:root[:split] (default: the run's "
                                                     "data.target).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Request folder (default RUN_DIR/active).")] = None,
    selector_iters: Annotated[Optional[int], typer.Option(help="LabOR: pixel-selector training iterations.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
):
    """Write a labelling request: which pixels of each target image a person (or the oracle) should label.

    The request folder gets the label store (labels.sqlite), round_NNN/requests.json and a preview PNG per image.

      syn2real select runs/dacs_cpu --method labor-ppl --points 40
    """
    from syn2real.active.requests import Budget
    from syn2real.active.rounds import select_next_round

    budget = Budget(points=points, percent=percent)
    round_index, ids, requests = select_next_round(run_dir, method, budget, _parse_data_spec(data) if data else None,
                                                   out_dir, selector_iters, device, progress=True)
    folder, images = requests.path, requests.images
    out.print(f"round {round_index}: {len(ids)} requests over {len(images)} images ({budget.describe()}) in "
              f"{folder}; previews in {folder / f'round_{round_index:03d}' / 'previews'}")


@app.command()
def label(
    request_dir: Annotated[Path, typer.Argument(help="A request folder (from `syn2real select`).")],
    oracle: Annotated[Optional[str], typer.Option(help="Answer every open request from ground truth: the labelled "
                                                       "target split as kind:root[:split].")] = None,
    import_answers: Annotated[Optional[Path], typer.Option("--import", help="Store a person's answers: answers.json, "
                                                           "a Label Studio JSON export or a CVAT export.")] = None,
    import_format: Annotated[str, typer.Option(help="ours (answers.json) | labelstudio (JSON export, brush labels) | "
                                                    "cvat (Segmentation mask 1.1 folder or .zip).")] = "ours",
    export: Annotated[Optional[Path], typer.Option(help="Write the labels gathered so far into this folder.")] = None,
    export_format: Annotated[str, typer.Option(help="ours (masks/*.png, answers.json) | labelstudio (tasks.json, "
                                                    "config.xml) | cvat (Segmentation mask 1.1).")] = "ours",
    image_url: Annotated[Optional[str], typer.Option(help="labelstudio export: a task's image is this prefix + the "
                                                          "file name (default: the file's path).")] = None,
):
    """Answer labelling requests (simulated oracle or imported answers) and export the labels gathered so far.

    Imported Label Studio / CVAT labels answer the open requests; painted pixels outside them are ignored.

      syn2real label runs/dacs/active --export ls --export-format labelstudio --image-url '/data/local-files/?d=val/'

      syn2real label runs/dacs/active --import project-1.json --import-format labelstudio

      syn2real label runs/dacs/active --import task_1.zip --import-format cvat
    """
    from syn2real.active.interchange import FORMATS, export_labels, import_labels
    from syn2real.active.oracle import SimulatedAnnotator
    from syn2real.active.rounds import STORE_FILE, summary
    from syn2real.active.store import LabelStore
    from syn2real.data import build_dataset

    if not (request_dir / STORE_FILE).is_file():
        raise ConfigError(f"{request_dir} is not a request folder: {request_dir / STORE_FILE} is missing")
    if not (oracle or import_answers or export):
        raise ConfigError("say what to do: --oracle kind:root:split, --import answers.json and/or --export DIR")
    for option, value in (("--import-format", import_format), ("--export-format", export_format)):
        if value not in FORMATS:
            raise ConfigError(f"{option} must be one of {', '.join(FORMATS)}, got {value!r}")
    store = LabelStore(request_dir / STORE_FILE)
    if oracle:
        annotator = SimulatedAnnotator(build_dataset(_parse_data_spec(oracle), None, labels=True))
        answered = annotator.answer_open(store, progress=True)
        out.print(f"oracle answered {answered} requests, revealing {annotator.revealed} pixels")
    if import_answers and import_format == "ours":
        out.print(f"imported {store.import_answers(import_answers)} new answers from {import_answers}")
    elif import_answers:
        out.print(f"{import_answers}: {import_labels(store, request_dir, import_answers, import_format).describe()}")
    if export and export_format == "ours":
        out.print(f"exported to {store.export(export)}")
    elif export:
        written = export_labels(store, request_dir, export, export_format, image_url)
        out.print(f"exported ({export_format}) to {written}")
    spent = summary(store)
    out.print(f"labelled so far: {spent['points_per_image']:.1f} points/image, {spent['percent_pixels']:.2f} % of "
              f"pixels over {spent['images']} images")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run folder.")]):
    """Write RUN_DIR/report.html: every evaluation's scores, per-class IoU and confusion matrix, training curves,
    example predictions.

    Example:

      syn2real report runs/camvid_supervised
    """
    from syn2real.report.html import write_report

    out.print(f"wrote {write_report(run_dir)}")


@app.command("list")
def list_entries(what: Annotated[str, typer.Argument(help="methods | datasets | selectors | backbones | heads | "
                                                        "presets")]):
    """List what a config can name, with a line on each.

    Examples:

      syn2real list methods

      syn2real list selectors
    """
    from rich.table import Table

    from syn2real.run import catalog

    table = Table(show_header=False, box=None, pad_edge=False)
    for name, description in catalog(what):
        table.add_row(f"[bold]{name}[/]", description)
    out.print(table)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo's data and runs go.")] = Path("runs/demo"),
    iters: Annotated[Optional[int], typer.Option(help="Source-only iterations (default: the demo preset's).")] = None,
    method: Annotated[str, typer.Option(help="Adaptation preset run after source-only ('none' to skip).")] = "",
    adapt_iters: Annotated[Optional[int], typer.Option(help="Adaptation iterations (and each self-training "
                                                             "round's).")] = None,
    rounds: Annotated[Optional[int], typer.Option(help="Noisy Student rounds after the adaptation (default: "
                                                       "none).")] = None,
):
    """Render a synthetic source and a photo-style target, then a short recipe: train source-only, adapt
    (and, with --rounds, self-train with Noisy Student); score every run on the target.

    Needs no download; under 10 minutes on 2 CPU cores. Writes run folders with metrics and report.html.

    Examples:

      syn2real demo

      syn2real demo --rounds 1                                   # + a Noisy Student round

      syn2real demo --out /tmp/demo --iters 100 --method none   # a quick look; its scores mean little
    """
    from syn2real.demo import ADAPT_ITERS, BEST_METHOD, ROUNDS, run_demo

    chosen = None if method == "none" else (method or BEST_METHOD)
    run_demo(out_dir, iters=iters, console=out, method=chosen, adapt_iters=adapt_iters or ADAPT_ITERS,
             rounds=ROUNDS if rounds is None else rounds)


@app.command("recipe")
def recipe_command(
    recipe: Annotated[Optional[str], typer.Argument(help="A recipe YAML file or a shipped recipe "
                                                         "(--list shows them).")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="STAGE.KEY=VALUE (e.g. "
                                                           "source_only.train.iters=300, noisy_student.rounds=1, "
                                                           "'*.train.seed=1' for every train stage) or out=DIR; "
                                                           "repeatable.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="The recipe's folder (default: the "
                                                                  "recipe's `out`).")] = None,
    list_recipes: Annotated[bool, typer.Option("--list", help="List the shipped recipes.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Check the recipe and print its runs; train "
                                                        "nothing.")] = False,
):
    """Run a recipe: render -> (translate) -> source-only -> adapt -> self-training rounds -> distil -> evaluate
    -> report, one folder per stage under the recipe's folder.

    Run it again after an interruption: finished stages are skipped, the interrupted one resumes at its last
    checkpoint. Writes OUT/summary.json and OUT/summary.md (stage, folder, mIoU, minutes).

    Examples:

      syn2real recipe --list

      syn2real recipe synstreets2camvid_best

      syn2real recipe synstreets2camvid_best --set noisy_student.rounds=1 --out runs/recipes/short

      syn2real recipe my_recipe.yaml --check
    """
    from rich.table import Table

    from syn2real.recipe import load_recipe, plan, recipe_catalog, run_recipe

    if list_recipes:
        table = Table(show_header=False, box=None, pad_edge=False)
        for name, description in recipe_catalog():
            table.add_row(f"[bold]{name}[/]", description)
        out.print(table)
        return
    if recipe is None:
        raise ConfigError("name a recipe file or a shipped recipe (syn2real recipe --list)")
    loaded = load_recipe(recipe, list(overrides or []), out_dir)
    if check:
        for name, kind, folder in plan(loaded):
            out.print(f"{name:<24} {kind:<9} {folder}", highlight=False, soft_wrap=True)
        out.print(f"{loaded.path}: {len(loaded.stages)} stages checked")
        return
    rows = run_recipe(loaded, progress=True, say=lambda line: console.print(f"[bold]recipe[/] {line}",
                                                                            highlight=False, soft_wrap=True))
    table = Table(title=f"recipe {loaded.path.stem}")
    for column, justify in (("stage", "left"), ("run folder", "left"), ("mIoU %", "right"), ("minutes", "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(row.stage, row.folder, f"{100 * row.miou:.1f}" if row.miou is not None else "",
                      f"{row.minutes:.1f}")
    out.print(table)
    out.print(f"wrote {loaded.out / 'summary.json'} and {loaded.out / 'summary.md'}", soft_wrap=True)


# ---- translate: learned image translation (CycleGAN / CyCADA / DRANet-style), apply, KID ---------------------

translate_app = typer.Typer(help="Learned image translation: train a translator, translate a labelled dataset, "
                                 "score domain distance (KID).", no_args_is_help=True)
app.add_typer(translate_app, name="translate")


def _translate_spec(option: str, spec: str):
    """KIND:ROOT[:SPLIT] for `option`; a malformed spec, an unknown kind or a missing root is one line naming it."""
    from syn2real.data import DATASETS
    from syn2real.errors import DataError

    try:
        ds = _parse_data_spec(spec)
    except ConfigError as e:
        raise ConfigError(str(e).replace("--data", option, 1)) from None
    if ds.kind not in DATASETS:
        raise ConfigError(f"{option} {spec!r}: unknown dataset kind {ds.kind!r}; kinds: {', '.join(DATASETS.names())}")
    if not Path(ds.root).expanduser().is_dir():
        raise DataError(f"{option} {spec!r}: dataset root {ds.root} is not a folder")
    return ds


def _translate_set(option: str, value: str):
    """An image folder, or KIND:ROOT[:SPLIT]."""
    return Path(value) if Path(value).is_dir() else _translate_spec(option, value)


@translate_app.command("train")
def translate_train(
    overrides: Annotated[Optional[list[str]], typer.Argument(help="Dotted overrides, e.g. iters=500 ngf=16.")] = None,
    source: Annotated[Optional[str], typer.Option(help="Source (synthetic) frames KIND:ROOT[:SPLIT].")] = None,
    target: Annotated[Optional[str], typer.Option(help="Target (real) frames KIND:ROOT[:SPLIT].")] = None,
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="cyclegan_cpu | cyclegan | cycada_cpu | "
                                                  "cycada | dranet_cpu | dranet, or a YAML file.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Parent folder of the run folder "
                                                                  "(default runs/translate).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Run folder name (default: the preset's).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run folder's last complete checkpoint (its saved "
                                              "config; overrides apply on top).")] = False,
):
    """Train an image translator from source frames to target frames (labels are not read).

    Writes OUT/NAME/: translator.yaml, metrics.jsonl, samples/iter_*.png (source | translated | back), checkpoints/.

    Examples:

      syn2real translate train --source synstreets:data/synstreets:train --target camvid:../shared/data/camvid:train --config cyclegan_cpu

      syn2real translate train --source gta5:/data/gta5 --target cityscapes:/data/cityscapes:train -c cycada semantic=runs/gta_source_only

      syn2real translate train --out runs/translate --name cyclegan_cpu --resume
    """
    import dataclasses

    from syn2real.translate.config import (
        CONFIG_FILE,
        absolute,
        check_translator_config,
        load_translator_config,
    )
    from syn2real.translate.train import train_translator

    extra = list(overrides or [])
    if out_dir:
        extra.append(f"out_dir={out_dir}")
    if name:
        extra.append(f"name={name}")
    if resume:
        guess = load_translator_config(config, extra)  # where the run folder is
        saved = Path(guess.out_dir) / guess.name / CONFIG_FILE
        if not saved.is_file():
            raise ConfigError(f"--resume: {saved} not found (no translator run at {saved.parent})")
        cfg = load_translator_config(saved, [o for o in extra if not o.startswith(("out_dir=", "name="))])
        cfg = dataclasses.replace(cfg, name=guess.name, out_dir=guess.out_dir)
    else:
        cfg = load_translator_config(config, extra)
    if source:
        cfg = dataclasses.replace(cfg, source=_translate_spec("--source", source))
    if target:
        cfg = dataclasses.replace(cfg, target=_translate_spec("--target", target))
    cfg = check_translator_config(absolute(cfg))
    run_dir = train_translator(cfg, resume=resume, progress=True, console=console)
    out.print(f"translator run folder: {run_dir}", soft_wrap=True)


@translate_app.command("apply")
def translate_apply(
    run_dir: Annotated[Path, typer.Argument(help="A translator run folder (from `translate train`).")],
    data: Annotated[str, typer.Option(help="Labelled frames to translate, KIND:ROOT[:SPLIT].")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (the `folder` dataset layout).")],
    size: Annotated[str, typer.Option(help="train (the translator's training scale, the change resized back "
                                           "onto the frame) | native | WxH.")] = "train",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    preview: Annotated[int, typer.Option(help="Frames in OUT/preview.png (source | translated | label); 0: "
                                              "none.")] = 4,
    smooth: Annotated[float, typer.Option(help="Keep only the translator's large-scale change: blur it with a "
                                               "Gaussian of this many pixels (working scale) before adding it to "
                                               "the frame; 0: the whole change.")] = 0.0,
):
    """Write a translated copy of a labelled dataset, labels unchanged (a `folder` dataset).

    OUT/images/*.png translated, OUT/masks/*.png the labels (byte-identical copies for index-PNG readers),
    OUT/id_map.yaml, OUT/SPLIT.txt, OUT/preview.png. Frames already written are skipped, so an interrupted run resumes. Train on
    it with `data.source.kind=folder data.source.root=OUT`.

    Example:

      syn2real translate apply runs/translate/cyclegan_cpu --data synstreets:data/synstreets:train --out data/synstreets_cyclegan
    """
    from syn2real.translate.train import apply_translator

    spec = _translate_spec("--data", data)
    work = size if size in ("train", "native") else _parse_size(size)
    if preview < 0 or smooth < 0:
        raise ConfigError(f"--preview and --smooth must be >= 0, got {preview} and {smooth}")
    dest, written, skipped = apply_translator(run_dir, spec, out_dir, size=work, progress=True, device=device,
                                              console=console, preview=preview, smooth=smooth)
    out.print(f"wrote {written} translated frames to {dest}" + (f" ({skipped} already there)" if skipped else ""),
              soft_wrap=True)
    if preview:
        out.print(f"preview: {dest / 'preview.png'}", soft_wrap=True)


@translate_app.command("score")
def translate_score(
    a: Annotated[str, typer.Option("--a", help="First image set: KIND:ROOT[:SPLIT] or a folder of images.")],
    b: Annotated[str, typer.Option("--b", help="Second image set: KIND:ROOT[:SPLIT] or a folder of images.")],
    size: Annotated[str, typer.Option(help="Images are resized to WxH for the feature network.")] = "224x224",
    features: Annotated[str, typer.Option(help="efficientnet_lite0 (offline ImageNet weights) or a VGG-16 "
                                               "state dict file.")] = "efficientnet_lite0",
    subsets: Annotated[int, typer.Option(help="Random subsets averaged (Bińkowski et al.: 100).")] = 100,
    subset_size: Annotated[int, typer.Option(help="Images per subset (Bińkowski et al.: 1000; capped at the "
                                                  "smaller set).")] = 1000,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N images of each set.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
):
    """Print the Kernel Inception Distance (KID) between two image sets: lower is closer.

    KID x 1000 ± std over random subsets, on frozen ImageNet features. Unbiased, so about 0 (possibly below)
    for two sets from one distribution.

    Examples:

      syn2real translate score --a synstreets:data/synstreets:train --b camvid:../shared/data/camvid:train

      syn2real translate score --a data/synstreets_cyclegan/images --b camvid:../shared/data/camvid:train
    """
    import json

    from syn2real.translate.train import score_sets

    if subsets < 1 or subset_size < 2:
        raise ConfigError(f"--subsets must be >= 1 and --subset-size >= 2, got {subsets} and {subset_size}")
    result = score_sets(_translate_set("--a", a), _translate_set("--b", b), features=features,
                        size=_parse_size(size), subsets=subsets, subset_size=subset_size, limit=limit,
                        progress=True, console=console, device=device)
    out.print(f"KID x 1000: {1000 * result['kid']:.3f} ± {1000 * result['std']:.3f} ({result['n_a']} vs "
              f"{result['n_b']} images, {result['subsets']} subsets of {result['subset_size']}, {features})",
              soft_wrap=True)
    out.print(json.dumps(result), highlight=False, soft_wrap=True)


def main() -> None:
    # Under torchrun every process runs the command: only rank 0 prints results (errors print on every rank).
    out.quiet = int(os.environ.get("RANK", "0")) > 0
    try:
        app()
    except Syn2RealError as e:
        # soft_wrap: one line however narrow the terminal, and unwrapped when piped (grep, logs).
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
