"""One self-contained HTML page per run: what was trained, how it scored, what it sees."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from syn2real.io import atomic_write_text, png_bytes, read_json
from syn2real.labels import IGNORE
from syn2real.report.plots import read_metrics, training_curves_png

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}.sw{display:inline-block;width:.9em;height:.9em;margin-right:.4em;
vertical-align:middle;border:1px solid #999}.big{font-size:1.4em;font-weight:600}img{max-width:100%}
.rows td{padding:2px;border:none}.rows th{text-align:center}.muted{color:#777}
"""


def _img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _iou_table(result: dict) -> str:
    from syn2real.evaluate.protocols import get_protocol

    space = get_protocol(result["protocol"]).space
    rows = []
    for colour, (name, iou) in zip(space.palette, result["iou"].items()):
        rows.append(f'<tr><td><span class="sw" style="background:rgb{tuple(colour)}"></span>{html.escape(name)}'
                    f"</td><td>{_percent(iou)}</td></tr>")
    return "<table><tr><th>class</th><th>IoU (%)</th></tr>" + "".join(rows) + "</table>"


def _example_rows(run_dir: Path, n: int) -> str:
    """image | prediction | ground truth for the first `n` validation frames."""
    from syn2real.data import build_dataset
    from syn2real.data.transforms import eval_transform
    from syn2real.engine.runs import load_run, model_space
    from syn2real.evaluate.protocols import get_protocol

    cfg, model = load_run(run_dir, device="cpu")
    if cfg.data.val is None:
        return ""
    dataset = build_dataset(cfg.data.val, transform=eval_transform(cfg.data.val_resize), labels=True)
    protocol = get_protocol(cfg.eval.protocol)
    pred_lut = torch.from_numpy(protocol.pred_lut(model_space(cfg).name)).long()
    gt_lut = torch.from_numpy(protocol.gt_lut(dataset.space.name)).long()
    rows = []
    with torch.no_grad():
        for i in range(min(n, len(dataset))):
            item = dataset[i]
            image = item["image"].unsqueeze(0).float() / 255
            mask = item["mask"].long()
            pred = model(image).argmax(1)[0]
            if pred.shape != mask.shape:
                pred = torch.nn.functional.interpolate(pred[None, None].float(), size=mask.shape,
                                                       mode="nearest")[0, 0].long()
            colour = protocol.space.colorize
            pred_rgb = colour(pred_lut[pred].numpy().astype(np.uint8))
            gt = gt_lut[mask].numpy().astype(np.uint8)
            gt_rgb = colour(gt)
            gt_rgb[gt == IGNORE] = 0
            img = item["image"].permute(1, 2, 0).numpy()
            if img.shape[:2] != mask.shape:
                img = np.asarray(Image.fromarray(img).resize(mask.shape[::-1], Image.BILINEAR))
            cells = "".join(f"<td>{_img_tag(png_bytes(a), t)}</td>" for a, t in
                            ((img, "image"), (pred_rgb, "prediction"), (gt_rgb, "ground truth")))
            rows.append(f"<tr>{cells}</tr>")
    head = "<tr><th>image</th><th>prediction</th><th>ground truth</th></tr>"
    return f'<table class="rows">{head}{"".join(rows)}</table>'


def _evaluations(run_dir: Path, config: dict) -> list[tuple[str, dict]]:
    """(folder name, metrics) of every evaluation in RUN_DIR/eval: the end-of-training one first, then the others
    oldest first. The end-of-training score was of the run's own validation set and settings."""
    folders = sorted((p.parent for p in (run_dir / "eval").glob("*/metrics.json")),
                     key=lambda f: (f.name != "final", (f / "metrics.json").stat().st_mtime, f.name))
    found = []
    for folder in folders:
        result = read_json(folder / "metrics.json", "evaluation result")
        if folder.name == "final":
            result = {"data": config["data"]["val"], "mode": config["eval"]["mode"],
                      "size": config["data"]["val_resize"], **result}
        found.append((folder.name, result))
    return found


def _evaluation_table(evals: list[tuple[str, dict]]) -> str:
    def cell(value) -> str:
        return f"<td>{html.escape(str(value))}</td>"

    rows = []
    for name, r in evals:
        data = r.get("data") or {}
        size = r.get("size")
        rows.append("<tr>" + "".join(cell(v) for v in (
            name, data.get("kind", "?"), data.get("split", "?"), r["protocol"], r.get("mode", "?"),
            f"{size[1]}x{size[0]}" if size else "native", r["n_images"])) +
            f"<td>{_percent(r['miou'])}</td><td>{_percent(r['pixel_accuracy'])}</td>"
            f'<td class="muted">{html.escape(str(data.get("root", "")))}</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("evaluation", "data", "split", "protocol", "mode", "size", "images",
                                             "mIoU (%)", "pixel acc. (%)", "root"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def write_report(run_dir: str | Path, examples: int = 4) -> Path:
    """Write RUN_DIR/report.html from the run's config, metrics.jsonl, every evaluation and its weights."""
    from syn2real.errors import DataError

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise DataError(f"{run_dir} is not a run folder (no config.yaml)")
    config_text = (run_dir / "config.yaml").read_text()
    records = read_metrics(run_dir / "metrics.jsonl")
    evals = _evaluations(run_dir, yaml.safe_load(config_text))
    parts = [f"<h1>syn2real run <code>{html.escape(run_dir.name)}</code></h1>"]
    if evals:
        parts.append(f"<h2>Scores ({len(evals)} evaluations)</h2>{_evaluation_table(evals)}")
        for i, (name, result) in enumerate(evals):
            confusion = run_dir / "eval" / name / "confusion.png"
            matrix = _img_tag(confusion.read_bytes(), "confusion matrix") if confusion.is_file() else ""
            parts.append(f'<details{" open" if i == 0 else ""}><summary><b>{html.escape(name)}</b>: '
                         f'{html.escape(result["protocol"])}, {result["n_images"]} images</summary>'
                         f'<p class="big">mIoU {_percent(result["miou"])} % · pixel accuracy '
                         f'{_percent(result["pixel_accuracy"])} %</p>{_iou_table(result)}{matrix}</details>')
    else:
        parts.append('<p class="muted">No evaluation yet: run <code>syn2real evaluate RUN_DIR</code>.</p>')
    curves = training_curves_png(records)
    if curves:
        parts.append(f"<h2>Training</h2>{_img_tag(curves, 'training curves')}")
    if (run_dir / "checkpoints" / "last.json").is_file() and examples:
        parts.append(f"<h2>Examples</h2>{_example_rows(run_dir, examples)}")
    parts.append(f"<h2>Configuration</h2><pre>{html.escape(config_text)}</pre>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>syn2real · {html.escape(run_dir.name)}"
            f"</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    dest = run_dir / "report.html"
    atomic_write_text(dest, page)
    return dest
