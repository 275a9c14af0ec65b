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

from pathlib import Path

import cv2
import numpy as np
import torch
from rich.progress import track
from torch import nn

from syn2real.active.requests import Budget, Request
from syn2real.active.selectors import select
from syn2real.active.store import LabelStore, png_bytes
from syn2real.data.base import SegDataset
from syn2real.io import atomic_write_bytes, atomic_write_json
from syn2real.evaluate.inference import eval_mode, infer_logits
from syn2real.labels import IGNORE, LabelSpace

STORE_FILE = "labels.sqlite"
#: Selectors that need LabOR's two-classifier pixel selector instead of the segmentation model's softmax.
TWO_CLASSIFIER_SELECTORS = ("labor-spl", "labor-ppl")
PREVIEW_COLOUR = (255, 0, 255)


def write_meta(request_dir: Path, space: LabelSpace) -> None:
    atomic_write_json(request_dir / "meta.json", {"space": space.name, "classes": list(space.classes),
                                                  "palette": [list(map(int, c)) for c in space.palette],
                                                  "ignore": IGNORE})



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
    if selector in TWO_CLASSIFIER_SELECTORS and pixel_selector is None:
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
            if selector in TWO_CLASSIFIER_SELECTORS:
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
