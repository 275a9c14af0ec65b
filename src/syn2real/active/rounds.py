"""One labelling round: score every target image with the current model, select within the budget, write the
requests into the label store and a request folder a person can look at.

A request folder (the label store's folder) holds:
    labels.sqlite                      the label store (images, rounds, requests, answers)
    meta.json                          label space: class names, palette, ignore id (for the annotator page)
    predictions/<image>.png            the model's current prediction (class ids, native size)
    round_NNN/requests.json            this round's requests (ids, image, kind, box, score)
    round_NNN/previews/<image>.png     the image dimmed, requested regions tinted, requested points ringed
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.progress import track
from torch import nn

from syn2real.active.dataset import SparseLabelDataset
from syn2real.active.meta import write_meta
from syn2real.active.pixel_selector import train_selector
from syn2real.active.requests import Budget, Request
from syn2real.active.selectors import SELECTORS, needs_two_classifiers, select
from syn2real.active.store import LabelStore
from syn2real.config import ActiveConfig, DataConfig, DatasetConfig
from syn2real.data import build_dataset, train_transform
from syn2real.data.base import SegDataset, pixel_hash, read_rgb
from syn2real.errors import ConfigError, DataError
from syn2real.io import atomic_write_bytes, atomic_write_json, png_bytes
from syn2real.evaluate.inference import eval_mode, infer_logits
from syn2real.labels import LabelSpace

STORE_FILE = "labels.sqlite"
PREVIEW_COLOUR = (255, 0, 255)


@dataclass
class RequestFolder:
    """A request folder opened for selection: its label store, the target images (never their labels) and the
    dataset that trains on the store's sparse labels."""

    path: Path
    store: LabelStore
    images: SegDataset
    target: SparseLabelDataset


def open_request_folder(path: Path, target: DatasetConfig, data: DataConfig,
                        space: LabelSpace | None = None) -> RequestFolder:
    """Open (or start) the request folder `path` for the target images `target`, every image registered in its
    store with the hash of its pixels, and `meta.json` naming the label space answers are given in (default: the
    target reader's). The images are found before the store is created, so a wrong target leaves nothing."""
    images = build_dataset(target, None, labels=False)
    store = LabelStore(path / STORE_FILE)
    try:
        sparse = SparseLabelDataset(images, store, train_transform(data))
        sparse.register()
        register_hashes(store, images)
        write_meta(path, space or images.space)
    except BaseException:
        store.close()  # a caller may remove the store file: no connection may write to it afterwards
        raise
    return RequestFolder(path, store, images, sparse)


def register_hashes(store: LabelStore, images: SegDataset) -> None:
    """Record the pixel hash of every registered image that has none (new ones, and those of a store written
    before hashes were kept), so the oracle can tell the registered image from another frame of the same name.
    Decoded pixels rather than file bytes: a re-encoded copy of the same picture is still the same image."""
    known = store.image_hashes()
    missing = {name: path for name, (path, _) in zip(images.names, images.files) if known.get(name) is None}
    if missing:
        store.set_image_hashes({name: pixel_hash(read_rgb(path)) for name, path in missing.items()})


def select_round(round_index: int, selector: str, budget: Budget, model: nn.Module, requests: RequestFolder,
                 source: SegDataset | None, active: ActiveConfig, lr: float, batch_size: int, workers: int, seed: int,
                 precision: str = "fp32", params: dict | None = None,
                 progress: bool = False) -> tuple[list[int], dict[str, float]]:
    """One round: LabOR's pixel selector trained from `model` when `selector` needs it (on the labelled `source`
    and the store's labels so far), then `run_round`. Returns the new request ids and the pixel selector's last losses.
    The global random streams are left as they were, so a training run around it is not moved."""
    with torch.random.fork_rng(devices=[]):
        pixel_selector, logs = None, {}
        if needs_two_classifiers(selector):
            if source is None:
                raise ValueError(f"{selector} trains LabOR's pixel selector on labelled source frames: pass source")
            pixel_selector, logs = train_selector(
                model, source, requests.target, active.selector_iters, lr, active.lambda_discrepancy, batch_size,
                workers, seed=seed + round_index, pseudo_threshold=active.selector_pseudo_threshold,
                progress=progress)
        ids = run_round(round_index, selector, budget, requests.images, requests.store, model, requests.path,
                        pixel_selector=pixel_selector, params=params, seed=seed, precision=precision,
                        progress=progress)
    return ids, logs


def select_next_round(run_dir: Path, selector: str, budget: Budget, target: DatasetConfig | None = None,
                      request_dir: Path | None = None, selector_iters: int | None = None, device: str = "auto",
                      progress: bool = False) -> tuple[int, list[int], RequestFolder]:
    """`syn2real select`: the next labelling round for the target images (default: the run's `data.target`),
    chosen by the trained run `run_dir`, written into `request_dir` (default RUN_DIR/active). Running the same
    selection again while its round has open requests (after a kill, say) is refused: it would double the budget.
    Returns the round's index, its request ids and the folder."""
    from syn2real.engine.runs import load_run, model_space

    SELECTORS.get(selector)
    budgets = SELECTORS.meta(selector)["budgets"]  # checked again by `select`; here before anything is opened
    if ("points" if budget.points is not None else "percent") not in budgets:
        raise ConfigError(f"selector {selector!r} takes a {' or '.join(budgets)} budget, got {budget.describe()}")
    cfg, model = load_run(run_dir, device=device)
    target = target or cfg.data.target
    if target is None:
        raise ConfigError(f"{run_dir} has no data.target; name the target images with --data kind:root:split")
    path = Path(request_dir or Path(run_dir) / "active")
    # Bad input must not leave a new, empty request folder behind: a later `select` would take it as its own.
    created = [p for p in (path, *path.parents) if not p.exists()]
    new_store = not (path / STORE_FILE).exists()
    requests = None
    try:
        requests = open_request_folder(path, target, cfg.data, model_space(cfg))
        return _select_next(requests, cfg, model, selector, budget, selector_iters, progress)
    except BaseException:
        if requests is not None:
            requests.store.close()
        if new_store:
            _remove_new_request_folder(path, created)
        raise


def _remove_new_request_folder(path: Path, created: list[Path]) -> None:
    """What a failed first selection wrote into `path`, and the folders it created (`created`, deepest first)."""
    for name in (STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", "meta.json"):
        (path / name).unlink(missing_ok=True)
    for folder in (path / "predictions", *path.glob("round_*/previews"), *path.glob("round_*"), *created):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _select_next(requests: RequestFolder, cfg, model: nn.Module, selector: str, budget: Budget,
                 selector_iters: int | None, progress: bool) -> tuple[int, list[int], RequestFolder]:
    rounds = requests.store.rounds()
    last = max(rounds, default=None)
    if last is not None and (rounds[last]["method"], rounds[last]["budget"]) == (selector, budget.describe()):
        open_count = len(requests.store.requests(round_index=last, open_only=True))
        if open_count:
            raise DataError(f"{requests.path}: round {last} ({selector}, {budget.describe()}) was selected already "
                            f"and {open_count} of its requests are open; answer them (syn2real annotate serve / "
                            f"syn2real label) before selecting the next round")
    active = cfg.active if selector_iters is None else dataclasses.replace(cfg.active, selector_iters=selector_iters)
    source = (build_dataset(cfg.data.source, train_transform(cfg.data), labels=True)
              if needs_two_classifiers(selector) else None)
    round_index = 0 if last is None else last + 1
    ids, _ = select_round(round_index, selector, budget, model, requests, source, active, cfg.optim.lr,
                          cfg.data.batch_size, cfg.data.workers, cfg.train.seed, cfg.train.precision,
                          params=cfg.active.params if cfg.active.selector == selector else None, progress=progress)
    return round_index, ids, requests



def preview(image: np.ndarray, requests: list[Request]) -> np.ndarray:
    """The image dimmed, requested regions tinted magenta with an outline, requested points ringed."""
    height, width = image.shape[:2]
    out = (image.astype(np.float32) * 0.55).astype(np.uint8)
    regions = np.zeros((height, width), bool)
    for r in requests:
        if r.kind == "region":
            regions |= r.full_mask(height, width)
    out[regions] = (0.4 * image[regions] + 0.6 * np.array(PREVIEW_COLOUR)).astype(np.uint8)
    contours, _ = cv2.findContours(regions.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, PREVIEW_COLOUR, 1)
    radius = max(3, round(min(height, width) / 80))
    for r in requests:
        if r.kind == "point":
            cv2.circle(out, (r.x, r.y), radius, PREVIEW_COLOUR, 1, lineType=cv2.LINE_AA)
            out[r.y, r.x] = (255, 255, 255)
    return out


@torch.no_grad()
def run_round(round_index: int, selector: str, budget: Budget, images: SegDataset, store: LabelStore,
              model: nn.Module, request_dir: Path, pixel_selector: nn.Module | None = None,
              params: dict | None = None, seed: int = 0, precision: str = "fp32",
              progress: bool = False) -> list[int]:
    """Select this round's requests over every image of `images` (labels=False, no transform) and write them.

    `budget` is this round's share per image. Pixels requested in earlier rounds are never asked again.
    Returns the new request ids (the round is written in one transaction: all or nothing)."""
    if needs_two_classifiers(selector) and pixel_selector is None:
        raise ValueError(f"{selector} needs LabOR's pixel selector (two classifiers)")
    rng = np.random.default_rng([seed, round_index])
    device = next(model.parameters()).device
    requests: list[Request] = []
    previews: dict[str, bytes] = {}
    predictions: dict[str, bytes] = {}
    with eval_mode(model):
        for index in track(range(len(images)), description=f"Selecting round {round_index} ({selector})",
                           disable=not progress):
            item = images[index]
            name = item["name"]
            pixels = item["image"].as_subclass(torch.Tensor)
            batch = pixels.unsqueeze(0).to(device).float() / 255
            probs = infer_logits(model, batch, precision=precision)[0].softmax(0)
            # The annotator shows the segmentation model's prediction, whichever model selects.
            predictions[name] = png_bytes(probs.argmax(0).to(torch.uint8).cpu().numpy())
            probs2 = None
            if pixel_selector is not None:
                logits1, logits2 = pixel_selector(batch)
                probs, probs2 = logits1[0].float().softmax(0), logits2[0].float().softmax(0)
            chosen = select(selector, name, probs.cpu(), budget, labelled=store.requested_mask(name),
                            probs2=None if probs2 is None else probs2.cpu(), rng=rng, **(params or {}))
            requests += chosen
            rgb = pixels.permute(1, 2, 0).numpy()
            previews[name] = png_bytes(preview(rgb, chosen))
    ids = store.add_round(round_index, selector, budget.describe(), requests)
    # Pictures and the JSON listing after the store: the store is the record, these are views of it.
    round_dir = request_dir / f"round_{round_index:03d}"
    for name, data in previews.items():
        atomic_write_bytes(round_dir / "previews" / f"{name}.png", data)
    for name, data in predictions.items():
        atomic_write_bytes(request_dir / "predictions" / f"{name}.png", data)
    listing = [{"request": rid, "image": r.image, "kind": r.kind, "x": r.x, "y": r.y, "width": r.mask.shape[1],
                "height": r.mask.shape[0], "pixels": r.n_pixels, "score": r.score}
               for rid, r in zip(ids, requests)]
    atomic_write_json(round_dir / "requests.json", listing)
    return ids


def summary(store: LabelStore) -> dict:
    """Budget spent so far: pixels revealed, points and percent of pixels per image (means over images)."""
    sizes = store.images()
    revealed = store.revealed()
    points = {name: 0 for name in sizes}
    for stored, answer in store.answers():
        if stored.request.kind == "point" and answer.labels is not None:
            points[stored.image] += 1
    n = max(len(sizes), 1)
    return {"images": len(sizes),
            "revealed_pixels": sum(revealed.values()),
            "points_per_image": sum(points.values()) / n,
            "percent_pixels": 100 * float(np.mean([revealed[k] / (h * w) for k, (h, w) in sizes.items()]))
            if sizes else 0.0,
            "rounds": len(store.rounds())}
