"""Which pixels of one target image to label next: selection rules turning per-pixel model outputs into requests.

Every selector reads the softmax of one image at its native resolution and returns `Request`s, best first, that
never exceed the budget and never touch pixels labelled in earlier rounds:

| method      | budget           | rule                                                                          |
|-------------|------------------|-------------------------------------------------------------------------------|
| `random`    | points / percent | uniform unlabelled pixels / random non-overlapping 3x3 regions                |
| `entropy`   | points / percent | normalised entropy, window suppression / 3x3 regions by mean entropy          |
| `ripu-pa`   | points           | region impurity x uncertainty, (2k+1)^2 window suppression (RIPU)             |
| `ripu-ra`   | percent          | (2k+1)^2 regions by impurity x mean uncertainty, suppression radius 2k (RIPU) |
| `labor-spl` | percent          | connected segments where the two heads disagree (LabOR)                       |
| `labor-ppl` | points           | per class, the disagreeing pixels nearest the class prototype (LabOR)         |

Window sums use integral images, so a selection costs O(C·H·W) whatever the window size.

A selector is a function registered with `@SELECTORS.register(name, budgets=..., two_classifier=...)`: it takes
a `Selection` (one image's inputs) and keyword-only options whose defaults are its paper's; `select()` checks a
call's budget and options against the registration and the signature.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from syn2real.active.requests import Budget, Request
from syn2real.errors import ConfigError
from syn2real.methods.losses import entropy_map
from syn2real.registry import Registry

SELECTORS: Registry = Registry("selector", "active.selector")

#: RIPU (Xie et al., CVPR 2022), configs/*/deeplabv2_r101_PA.yaml `RADIUS_K: 32`: impurity window and suppression
#: half-size of pixel-based selection.
RIPU_PA_K = 32
#: RIPU region-based selection: 3x3 regions (`RADIUS_K: 1`), non-maximum suppression radius 2k (core/active/build.py).
RIPU_RA_K = 1
#: RIPU picks on outputs upsampled to the native Cityscapes size (2048x1024), so k=32 is measured at that width.
RIPU_REFERENCE_WIDTH = 2048
#: Chosen here, not from LabOR (which only says "the pixels most similar to the prototype"): keeps one class's
#: points from piling up on neighbouring pixels of the same blob. Native pixels; on benchmark R (CamVid, 960x720)
#: 30 scored 38.4 mIoU against 37.9 for 8 (docs/RESULTS.md).
LABOR_PPL_MIN_DISTANCE = 30
#: How PPL shares an image's points among the classes' uncertain sets D(k), which LabOR leaves open (it picks
#: "the pixel(s)" nearest each prototype): `round-robin` gives every class its turn, larger sets first;
#: `proportional` gives each class points in proportion to |D(k)| (largest remainders), so a confusion that
#: covers much of the image gets many points.
LABOR_PPL_ALLOCATIONS = ("round-robin", "proportional")

def scale_k(k: int, width: int, reference_width: int = RIPU_REFERENCE_WIDTH) -> int:
    """A window half-size given for `reference_width`-wide images, scaled to `width` (at least 1)."""
    return max(1, round(k * width / reference_width))


# ---- helpers shared with the rest of the toolkit ---------------------------------------------------------------


def normalized_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Prediction entropy of a (C, H, W) softmax divided by log C: (H, W) in [0, 1]."""
    return entropy_map(probs[None])[0]


def region_impurity(pred: torch.Tensor, num_classes: int, k: int) -> torch.Tensor:
    """RIPU's region impurity: entropy of the predicted-class histogram in the (2k+1)^2 window around each pixel
    (clipped at the borders), divided by log `num_classes`. `pred` is a (H, W) integer class map."""
    if pred.numel() and not 0 <= int(pred.min()) <= int(pred.max()) < num_classes:
        raise ValueError(f"predicted classes must lie in [0, {num_classes}), got {int(pred.min())}..{int(pred.max())}")
    one_hot = pred[None] == torch.arange(num_classes, device=pred.device)[:, None, None]
    counts = _box_sum(one_hot, k)
    share = counts / counts.sum(0).float()
    return -torch.special.xlogy(share, share).sum(0) / math.log(num_classes)


def inconsistency_mask(probs: torch.Tensor, probs2: torch.Tensor) -> np.ndarray:
    """LabOR's mask M: pixels where the two classifiers predict different classes, as a (H, W) bool array."""
    return (probs.argmax(0) != probs2.argmax(0)).cpu().numpy()


# ---- entry point ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """One image's inputs to a selector: its name, the (C, H, W) softmax, the second classifier's softmax (LabOR
    selectors), the budget, the (H, W) bool pixels still selectable and a generator (random selectors)."""

    image: str
    probs: torch.Tensor
    probs2: torch.Tensor | None
    budget: Budget
    selectable: np.ndarray
    rng: np.random.Generator | None

    @property
    def pixels(self) -> int:
        """The budget in pixels of this image."""
        return self.budget.pixels(*self.selectable.shape)


def selector_options(name: str) -> dict:
    """The options selector `name` takes, with their defaults (its keyword-only parameters)."""
    parameters = inspect.signature(SELECTORS.get(name)).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def needs_two_classifiers(name: str) -> bool:
    """Whether selector `name` reads LabOR's second classifier (`probs2`)."""
    return SELECTORS.meta(name).get("two_classifier", False)


def select(method: str, image: str, probs: torch.Tensor, budget: Budget, *, labelled: np.ndarray | None = None,
           probs2: torch.Tensor | None = None, rng: np.random.Generator | None = None, **params) -> list[Request]:
    """Requests for `image` chosen by `method` from its (C, H, W) softmax `probs`, within `budget`, avoiding the
    (H, W) bool `labelled` pixels. `probs2` (second classifier) is needed by the LabOR selectors, `rng` by
    `random`; `params` override the selector's option defaults."""
    selector = SELECTORS.get(method)
    defaults = selector_options(method)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} for selector {method!r}; valid: {valid}")
    if not isinstance(budget, Budget):
        raise ConfigError(f"budget must be a Budget, got {type(budget).__name__}")
    kind = "points" if budget.points is not None else "percent"
    budgets = SELECTORS.meta(method)["budgets"]
    if kind not in budgets:
        raise ConfigError(f"selector {method!r} takes a {' or '.join(budgets)} budget, got {budget.describe()}")
    settings = {**defaults, **params}
    _check_settings(method, settings)

    probs = _checked_probs(probs, "probs")
    height, width = probs.shape[1:]
    if needs_two_classifiers(method):
        if probs2 is None:
            raise ConfigError(f"selector {method!r} needs probs2, the second classifier's softmax")
        probs2 = _checked_probs(probs2, "probs2")
        if probs2.shape != probs.shape:
            raise ValueError(f"probs2 has shape {tuple(probs2.shape)}, probs {tuple(probs.shape)}")
    if SELECTORS.meta(method).get("random") and rng is None:
        raise ConfigError(f"selector {method!r} needs rng (a numpy Generator) so the selection is reproducible")
    if labelled is None:
        selectable = np.ones((height, width), bool)
    else:
        labelled = np.asarray(labelled)
        if labelled.dtype != bool or labelled.shape != (height, width):
            raise ValueError(f"labelled must be a bool array of shape {(height, width)}, "
                             f"got {labelled.dtype} {labelled.shape}")
        selectable = ~labelled
    return selector(Selection(image, probs, probs2, budget, selectable, rng), **settings)


def _check_settings(method: str, settings: dict) -> None:
    if "k" in settings:
        k = settings["k"]
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"selector {method!r}: k (window half-size) must be an integer >= 1, got {k!r}")
    if "allocation" in settings and settings["allocation"] not in LABOR_PPL_ALLOCATIONS:
        raise ConfigError(f"selector {method!r}: allocation must be one of {', '.join(LABOR_PPL_ALLOCATIONS)}, "
                          f"got {settings['allocation']!r}")
    if "min_distance" in settings:
        distance = settings["min_distance"]
        if isinstance(distance, bool) or not isinstance(distance, (int, float, np.number)) or not distance >= 0:
            raise ConfigError(f"selector {method!r}: min_distance must be a number >= 0, got {distance!r}")


def _checked_probs(probs: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(probs, torch.Tensor) or probs.ndim != 3 or probs.shape[0] < 2:
        shape = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise ValueError(f"{name} must be a (C, H, W) softmax tensor with C >= 2, got {shape}")
    probs = probs.detach().to("cpu", torch.float32)
    if not torch.isfinite(probs).all():
        raise ValueError(f"{name} holds non-finite values")
    return probs


# ---- selectors -----------------------------------------------------------------------------------------------


@SELECTORS.register("random", budgets=("points", "percent"), random=True)
def random_pixels(s: Selection) -> list[Request]:
    """Uniform unlabelled pixels, or random non-overlapping 3x3 regions."""
    pool = np.flatnonzero(s.selectable)
    width = s.selectable.shape[1]
    if s.budget.points is not None:
        chosen = s.rng.choice(pool, size=min(s.budget.points, pool.size), replace=False)
        return [Request.point(s.image, i % width, i // width) for i in chosen.tolist()]
    return _spread_regions(s.image, np.zeros(s.selectable.shape), s.rng.permutation(pool), s.selectable, RIPU_RA_K,
                           s.pixels)


@SELECTORS.register("entropy", budgets=("points", "percent"))
def entropy(s: Selection, *, k: int = RIPU_PA_K) -> list[Request]:
    """The most uncertain pixels (normalised entropy) with window suppression, or 3x3 regions by mean entropy."""
    uncertainty = normalized_entropy(s.probs)
    if s.budget.points is not None:
        score = uncertainty.numpy()
        return _spread_points(s.image, score, _best_first(score, s.selectable), s.budget.points, k)
    score = _selectable_mean(uncertainty, s.selectable, RIPU_RA_K).numpy()
    return _spread_regions(s.image, score, _best_first(score, s.selectable), s.selectable, RIPU_RA_K, s.pixels)


@SELECTORS.register("ripu-pa", budgets=("points",))
def ripu_pixels(s: Selection, *, k: int = RIPU_PA_K) -> list[Request]:
    """RIPU's pixel-based selection: region impurity x uncertainty, (2k+1)^2 window suppression."""
    score = (region_impurity(s.probs.argmax(0), s.probs.shape[0], k) * normalized_entropy(s.probs)).numpy()
    return _spread_points(s.image, score, _best_first(score, s.selectable), s.budget.points, k)


@SELECTORS.register("ripu-ra", budgets=("percent",))
def ripu_regions(s: Selection, *, k: int = RIPU_RA_K) -> list[Request]:
    """RIPU's region-based selection: (2k+1)^2 regions by impurity x mean uncertainty, suppression radius 2k."""
    # Impurity describes the predicted structure of the whole window; the uncertainty is averaged over the
    # pixels the region would actually ask for.
    impurity = region_impurity(s.probs.argmax(0), s.probs.shape[0], k)
    score = (impurity * _selectable_mean(normalized_entropy(s.probs), s.selectable, k)).numpy()
    return _spread_regions(s.image, score, _best_first(score, s.selectable), s.selectable, k, s.pixels)


@SELECTORS.register("labor-spl", budgets=("percent",), two_classifier=True)
def labor_segments(s: Selection) -> list[Request]:
    """LabOR's segment-based labelling: connected segments where the two classifiers disagree, most
    discrepant first."""
    image, probs, probs2, pixels = s.image, s.probs, s.probs2, s.pixels
    mask = inconsistency_mask(probs, probs2) & s.selectable
    segments, count = ndimage.label(mask, structure=np.ones((3, 3), int))
    if count == 0:
        return []
    discrepancy = (probs - probs2).abs().sum(0).numpy()
    flat = segments.ravel()
    sizes = np.bincount(flat, minlength=count + 1)[1:]
    mean_discrepancy = np.bincount(flat, weights=discrepancy.ravel(), minlength=count + 1)[1:] / sizes
    boxes = ndimage.find_objects(segments)
    requests, remaining = [], pixels
    # A segment that does not fit is skipped, not cut: a smaller, less discrepant one may still fit.
    for i in np.argsort(-mean_discrepancy, kind="stable").tolist():
        if remaining == 0:
            break
        if sizes[i] > remaining:
            continue
        rows, cols = boxes[i]
        requests.append(Request(image, "region", cols.start, rows.start, segments[rows, cols] == i + 1,
                                float(mean_discrepancy[i])))
        remaining -= int(sizes[i])
    return requests


@SELECTORS.register("labor-ppl", budgets=("points",), two_classifier=True)
def labor_points(s: Selection, *, min_distance: float = LABOR_PPL_MIN_DISTANCE,
                 allocation: str = "round-robin") -> list[Request]:
    """LabOR's point-based labelling: per class, the disagreeing pixels nearest the class prototype."""
    image, probs, probs2, points, selectable = s.image, s.probs, s.probs2, s.budget.points, s.selectable
    ys, xs = np.nonzero(inconsistency_mask(probs, probs2) & selectable)
    if ys.size == 0:
        return []
    vectors = ((probs + probs2) / 2)[:, torch.from_numpy(ys), torch.from_numpy(xs)].T.double().numpy()
    predicted = vectors.argmax(1)
    queues = []  # per class: members of D(k) nearest the prototype first, with their distances
    for cls in np.unique(predicted).tolist():
        members = np.flatnonzero(predicted == cls)
        distance = np.linalg.norm(vectors[members] - vectors[members].mean(0), axis=1)
        order = np.argsort(distance, kind="stable")
        queues.append((-members.size, cls, members[order].tolist(), distance[order].tolist()))
    queues.sort()  # larger uncertain sets first, then lower class index

    reach = math.ceil(min_distance)
    offsets = np.arange(-reach, reach + 1)
    disk = offsets[:, None] ** 2 + offsets[None, :] ** 2 < min_distance ** 2
    blocked = np.zeros(selectable.shape, bool)
    heads = [0] * len(queues)
    requests = []

    def take(q: int) -> bool:
        """Ask for the next free member of queue q (nearest its prototype); False when none is left."""
        members, distances = queues[q][2], queues[q][3]
        while heads[q] < len(members) and blocked[ys[members[heads[q]]], xs[members[heads[q]]]]:
            heads[q] += 1
        if heads[q] == len(members):
            return False
        y, x = int(ys[members[heads[q]]]), int(xs[members[heads[q]]])
        requests.append(Request.point(image, x, y, -distances[heads[q]]))
        heads[q] += 1
        _stamp(blocked, y, x, disk, reach)
        return True

    if allocation == "proportional":
        for q, quota in enumerate(_largest_remainder(points, [-queue[0] for queue in queues])):
            while quota and take(q):
                quota -= 1
    # Round-robin: the whole selection, or what proportional quotas left when a class ran out of free pixels.
    while len(requests) < points and any(head < len(queue[2]) for head, queue in zip(heads, queues)):
        for q in range(len(queues)):
            if len(requests) == points:
                break
            take(q)
    return requests


def _largest_remainder(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` (integers summing to `total`; remainders to the largest fractions,
    ties to the earlier weight)."""
    shares = np.asarray(weights, float) * total / sum(weights)
    quotas = np.floor(shares).astype(int)
    quotas[np.argsort(-(shares - quotas), kind="stable")[:total - quotas.sum()]] += 1
    return quotas.tolist()


# ---- greedy picking ------------------------------------------------------------------------------------------


def _best_first(score: np.ndarray, selectable: np.ndarray) -> np.ndarray:
    """Flat indices of the selectable pixels by descending score (ties: row-major order)."""
    candidates = np.flatnonzero(selectable)
    return candidates[np.argsort(-score.ravel()[candidates], kind="stable")]


def _spread_points(image: str, score: np.ndarray, order: np.ndarray, points: int, k: int) -> list[Request]:
    """Up to `points` points walking `order`; each pick suppresses the (2k+1)^2 window around it. Walking a sorted
    list and skipping suppressed pixels is the same as RIPU's repeated argmax over a masked score map."""
    width = score.shape[1]
    free = np.ones(score.shape, bool)
    free_flat = free.ravel()
    requests = []
    for index in order.tolist():
        if not free_flat[index]:
            continue
        y, x = divmod(index, width)
        requests.append(Request.point(image, x, y, float(score[y, x])))
        if len(requests) == points:
            break
        free[max(y - k, 0):y + k + 1, max(x - k, 0):x + k + 1] = False
    return requests


def _spread_regions(image: str, score: np.ndarray, order: np.ndarray, selectable: np.ndarray, k: int,
                    pixels: int) -> list[Request]:
    """(2k+1)^2 regions (clipped at the borders, minus labelled pixels) centred on pixels of `order`, until
    `pixels` are spent. Suppressing radius 2k around each centre keeps the regions disjoint, so a free centre's
    region size is its precomputed window count. A region too big for what is left is skipped."""
    width = score.shape[1]
    sizes = _box_sum(torch.from_numpy(selectable), k).numpy().ravel().tolist()
    free = np.ones(score.shape, bool)
    free_flat = free.ravel()
    requests, remaining = [], pixels
    for index in order.tolist():
        if remaining == 0:
            break
        if not free_flat[index] or sizes[index] > remaining:
            continue
        y, x = divmod(index, width)
        top, left = max(y - k, 0), max(x - k, 0)
        requests.append(_region(image, top, left, selectable[top:y + k + 1, left:x + k + 1],
                                float(score[y, x])))
        remaining -= sizes[index]
        free[max(y - 2 * k, 0):y + 2 * k + 1, max(x - 2 * k, 0):x + 2 * k + 1] = False
    return requests


def _region(image: str, top: int, left: int, window: np.ndarray, score: float) -> Request:
    """A region request from a window mask, trimmed to the bounding box of its pixels."""
    rows, cols = np.flatnonzero(window.any(1)), np.flatnonzero(window.any(0))
    mask = window[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].copy()
    return Request(image, "region", left + int(cols[0]), top + int(rows[0]), mask, score)


def _stamp(blocked: np.ndarray, y: int, x: int, disk: np.ndarray, reach: int) -> None:
    """Mark `disk` (centred, half-size `reach`) around (y, x) in `blocked`, clipped at the borders."""
    height, width = blocked.shape
    top, bottom = max(y - reach, 0), min(y + reach + 1, height)
    left, right = max(x - reach, 0), min(x + reach + 1, width)
    blocked[top:bottom, left:right] |= disk[top - y + reach:bottom - y + reach, left - x + reach:right - x + reach]


# ---- window sums ---------------------------------------------------------------------------------------------


def _box_sum(values: torch.Tensor, k: int) -> torch.Tensor:
    """Sum of `values` (..., H, W) over the (2k+1)^2 window around each pixel, clipped at the borders: two
    prefix-sum differences per axis whatever k. Integers sum exactly in int32, floats in float64."""
    values = values.double() if values.is_floating_point() else values.int()
    return _window_sum(_window_sum(values, k, -2), k, -1)


def _window_sum(values: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Sums over [i-k, i+k] along `dim`, clipped. With the prefix sums P (P[0] = 0) padded by k zeros in front and
    k copies of the total behind, the clipped window of i is Q[i + 2k + 1] - Q[i]."""
    length = values.shape[dim]
    prefix = values.cumsum(dim, dtype=values.dtype)
    zeros = torch.zeros_like(prefix.narrow(dim, 0, 1)).expand(*_sized(prefix, dim, k + 1))
    total = prefix.narrow(dim, length - 1, 1).expand(*_sized(prefix, dim, k))
    padded = torch.cat((zeros, prefix, total), dim)
    return padded.narrow(dim, 2 * k + 1, length) - padded.narrow(dim, 0, length)


def _sized(values: torch.Tensor, dim: int, size: int) -> list[int]:
    shape = list(values.shape)
    shape[dim] = size
    return shape


def _selectable_mean(values: torch.Tensor, selectable: np.ndarray, k: int) -> torch.Tensor:
    """Mean of (H, W) `values` over the selectable pixels of each (2k+1)^2 window (0 where there are none)."""
    mask = torch.from_numpy(selectable)
    total = _box_sum(values * mask, k)
    count = _box_sum(mask, k)
    return (total / count.clamp(min=1)).float()
