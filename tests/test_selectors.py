"""Active-learning selectors on constructed softmax maps: budgets, labelled pixels, and each published rule."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from syn2real.active.requests import Budget, Request
from syn2real.active.selectors import (
    SELECTORS,
    inconsistency_mask,
    normalized_entropy,
    region_impurity,
    scale_k,
    select,
)
from syn2real.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def blobby_probs(seed: int, classes: int = 5, height: int = 24, width: int = 32) -> torch.Tensor:
    """A softmax with class blobs (low-resolution logits upsampled), like a segmenter's output."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, classes, height // 4, width // 4, generator=g) * 3
    logits = torch.nn.functional.interpolate(logits, size=(height, width), mode="bilinear")[0]
    return (logits + 0.5 * torch.randn(classes, height, width, generator=g)).softmax(0)


def union(requests: list[Request], height: int, width: int) -> np.ndarray:
    """The requests as one mask, asserting they are disjoint."""
    covered = np.zeros((height, width), int)
    for request in requests:
        covered += request.full_mask(height, width)
    assert covered.max(initial=0) <= 1, "requests overlap"
    return covered.astype(bool)


def one_hot_probs(pred: np.ndarray, classes: int, confidence: float = 0.9) -> torch.Tensor:
    """A softmax predicting `pred` with the given confidence, the rest spread evenly."""
    probs = np.full((classes, *pred.shape), (1 - confidence) / (classes - 1))
    np.put_along_axis(probs, pred[None], confidence, axis=0)
    return torch.tensor(probs, dtype=torch.float32)


# ---- budgets and labelled pixels, over random inputs -----------------------------------------------------------

SMALL_WINDOWS = {"entropy": [{"k": 2}], "ripu-pa": [{"k": 2}],
                 "labor-ppl": [{"min_distance": 3}, {"min_distance": 3, "allocation": "proportional"}]}


@pytest.mark.parametrize("method", SELECTORS.names())
def test_budgets_never_exceeded_and_labelled_pixels_never_selected(method):
    height, width = 24, 32
    for seed in range(4):
        rng = np.random.default_rng(seed)
        probs, probs2 = blobby_probs(seed), blobby_probs(seed + 100)
        labelled = rng.random((height, width)) < 0.2
        for params in ({}, *SMALL_WINDOWS.get(method, [])):
            for budget in [Budget(points=n) for n in (1, 3, 50)] + [Budget(percent=p) for p in (1, 5, 30)]:
                kind = "points" if budget.points is not None else "percent"
                if kind not in SELECTORS.meta(method)["budgets"]:
                    continue
                requests = select(method, f"img{seed}", probs, budget, labelled=labelled, probs2=probs2,
                                  rng=np.random.default_rng(seed), **params)
                covered = union(requests, height, width)
                assert not (covered & labelled).any()
                assert all(r.image == f"img{seed}" for r in requests)
                if kind == "points":
                    assert all(r.kind == "point" for r in requests)
                    assert len(requests) <= budget.points
                else:
                    assert all(r.kind == "region" for r in requests)
                    assert covered.sum() <= budget.pixels(height, width)
                    if method != "labor-spl" and budget.percent <= 5:
                        # 3x3 regions have room here: the budget is spent up to less than one region
                        assert covered.sum() > budget.pixels(height, width) - 9


def test_point_selectors_return_the_full_budget_when_there_is_room():
    probs = blobby_probs(0)
    rng = np.random.default_rng(0)
    assert len(select("random", "a", probs, Budget(points=7), rng=rng)) == 7
    assert len(select("entropy", "a", probs, Budget(points=7), k=2)) == 7
    assert len(select("ripu-pa", "a", probs, Budget(points=7), k=2)) == 7


@pytest.mark.parametrize("method", SELECTORS.names())
def test_nothing_is_selected_when_everything_is_labelled(method):
    probs, probs2 = blobby_probs(1), blobby_probs(2)
    budget = Budget(points=5) if "points" in SELECTORS.meta(method)["budgets"] else Budget(percent=10)
    assert select(method, "a", probs, budget, labelled=np.ones((24, 32), bool), probs2=probs2,
                  rng=np.random.default_rng(0)) == []


def test_the_only_unlabelled_pixel_is_the_one_selected():
    labelled = np.ones((24, 32), bool)
    labelled[5, 7] = False
    for method in ("random", "entropy", "ripu-pa"):
        requests = select(method, "a", blobby_probs(3), Budget(points=4), labelled=labelled,
                          rng=np.random.default_rng(0))
        assert [(r.x, r.y) for r in requests] == [(7, 5)]
    regions = select("ripu-ra", "a", blobby_probs(3), Budget(percent=10), labelled=labelled)
    assert [(r.x, r.y, r.n_pixels) for r in regions] == [(7, 5, 1)]


# ---- random and entropy ----------------------------------------------------------------------------------------


def test_random_is_reproducible_by_seed():
    probs = blobby_probs(0)

    def picks(budget, seed):
        requests = select("random", "a", probs, budget, rng=np.random.default_rng(seed))
        return [(r.x, r.y, r.mask.tobytes()) for r in requests]

    for budget in (Budget(points=10), Budget(percent=5)):
        assert picks(budget, 1) == picks(budget, 1)
        assert picks(budget, 1) != picks(budget, 2)


def test_random_regions_are_at_most_3x3():
    requests = select("random", "a", blobby_probs(0), Budget(percent=20), rng=np.random.default_rng(0))
    assert requests and all(r.mask.shape[0] <= 3 and r.mask.shape[1] <= 3 for r in requests)


def test_entropy_picks_the_most_uncertain_pixel_first():
    pred = np.zeros((20, 30), int)
    probs = one_hot_probs(pred, 4, confidence=0.9)
    probs[:, 2, 3] = torch.tensor([0.4, 0.3, 0.2, 0.1])
    probs[:, 13, 17] = 0.25  # uniform: the most uncertain pixel
    requests = select("entropy", "a", probs, Budget(points=2), k=1)
    assert (requests[0].x, requests[0].y) == (17, 13)
    assert requests[0].score == pytest.approx(1.0)
    assert (requests[1].x, requests[1].y) == (3, 2)


def test_entropy_regions_centre_on_the_most_uncertain_area():
    probs = one_hot_probs(np.zeros((20, 30), int), 4, confidence=0.9)
    probs[:, 9:12, 20:23] = 0.25
    first = select("entropy", "a", probs, Budget(percent=2))[0]  # 12 pixels: one 3x3 region first
    assert (first.x, first.y, first.n_pixels) == (20, 9, 9)
    assert first.score == pytest.approx(1.0)


@pytest.mark.parametrize("method", ("entropy", "ripu-pa"))
def test_window_suppression_keeps_points_more_than_k_apart(method):
    k = 3
    requests = select(method, "a", blobby_probs(4, height=40, width=40), Budget(points=30), k=k)
    assert len(requests) > 5
    for i, a in enumerate(requests):
        for b in requests[:i]:
            assert max(abs(a.x - b.x), abs(a.y - b.y)) > k


def test_normalized_entropy_is_zero_for_certain_and_one_for_uniform():
    probs = torch.zeros(4, 1, 2)
    probs[2, 0, 0] = 1
    probs[:, 0, 1] = 0.25
    assert torch.allclose(normalized_entropy(probs), torch.tensor([[0.0, 1.0]]))


# ---- RIPU --------------------------------------------------------------------------------------------------------


def brute_force_impurity(pred: np.ndarray, classes: int, k: int) -> np.ndarray:
    height, width = pred.shape
    out = np.zeros((height, width))
    for y in range(height):
        for x in range(width):
            window = pred[max(y - k, 0):y + k + 1, max(x - k, 0):x + k + 1]
            share = np.bincount(window.ravel(), minlength=classes) / window.size
            share = share[share > 0]
            out[y, x] = -(share * np.log(share)).sum() / math.log(classes)
    return out


@pytest.mark.parametrize("k", (1, 2, 5))
def test_box_filter_impurity_equals_brute_force(k):
    pred = np.random.default_rng(k).integers(0, 4, (7, 9))
    fast = region_impurity(torch.from_numpy(pred), 4, k).numpy()
    np.testing.assert_allclose(fast, brute_force_impurity(pred, 4, k), atol=1e-6)


def test_impurity_is_zero_in_a_uniform_window_and_maximal_where_many_classes_meet():
    assert region_impurity(torch.full((8, 8), 3), 5, 2).abs().max() == 0
    pred = np.zeros((9, 9), int)
    pred[3:6, 3:6] = np.arange(9).reshape(3, 3)  # nine classes meet around (4, 4)
    impurity = region_impurity(torch.from_numpy(pred), 9, 1)
    assert impurity[4, 4].item() == pytest.approx(1.0)
    assert impurity.argmax().item() == 4 * 9 + 4
    assert impurity[0, 0] == 0


def test_ripu_pa_prefers_uncertain_pixels_at_class_boundaries():
    pred = np.zeros((30, 30), int)
    pred[:, 15:] = 1  # a vertical boundary between columns 14 and 15
    probs = one_hot_probs(pred, 3, confidence=0.8)
    probs[:, 5, 4] = torch.tensor([0.34, 0.33, 0.33])  # uncertain but inside a pure region: impurity 0
    probs[:, 20, 14] = torch.tensor([0.5, 0.4, 0.1])  # uncertain on the boundary
    requests = select("ripu-pa", "a", probs, Budget(points=3), k=2)
    assert (requests[0].x, requests[0].y) == (14, 20)
    assert all(abs(r.x - 14.5) < 3 for r in requests)  # zero-impurity pixels score 0 and come last


def test_ripu_ra_prefers_an_impure_uncertain_region_to_a_pure_one():
    pred = np.zeros((30, 30), int)
    pred[:, 15:] = 1  # a vertical boundary between columns 14 and 15
    probs = one_hot_probs(pred, 3, confidence=0.9)
    probs[:, 4:7, 3:6] = torch.tensor([0.45, 0.35, 0.2])[:, None, None]  # the most uncertain, but all class 0
    probs[:, 20:23, 13:15] = torch.tensor([0.5, 0.3, 0.2])[:, None, None]  # a bit less uncertain, on the boundary
    probs[:, 20:23, 15] = torch.tensor([0.3, 0.5, 0.2])[:, None]
    budget = Budget(percent=1)  # 9 pixels: one region
    assert [(r.x, r.y) for r in select("entropy", "a", probs, budget)] == [(3, 4)]
    assert [(r.x, r.y) for r in select("ripu-ra", "a", probs, budget)] == [(13, 20)]


def test_ripu_ra_regions_are_3x3_and_disjoint_with_a_two_pixel_gap():
    requests = select("ripu-ra", "a", blobby_probs(5, height=40, width=40), Budget(percent=20))
    assert requests and all(r.mask.shape[0] <= 3 and r.mask.shape[1] <= 3 for r in requests)
    union(requests, 40, 40)
    centres = [(r.y + 1, r.x + 1) for r in requests if r.mask.shape == (3, 3)]
    for i, a in enumerate(centres):
        for b in centres[:i]:
            assert max(abs(a[0] - b[0]), abs(a[1] - b[1])) > 2  # NMS radius 2k with k = 1


def test_ripu_ra_regions_leave_out_labelled_pixels():
    pred = np.zeros((12, 12), int)
    pred[:, 6:] = 1
    probs = one_hot_probs(pred, 2, confidence=0.6)
    labelled = np.zeros((12, 12), bool)
    labelled[:, 6] = True
    requests = select("ripu-ra", "a", probs, Budget(percent=10), labelled=labelled)
    assert not (union(requests, 12, 12) & labelled).any()
    assert any(r.n_pixels < 9 for r in requests)


def test_scale_k_follows_the_image_width():
    assert scale_k(32, 2048) == 32
    assert scale_k(32, 1024) == 16
    assert scale_k(32, 10) == 1


def test_selection_at_camvid_size_is_fast():
    probs = blobby_probs(6, classes=19, height=360, width=480)
    for method, budget in (("ripu-pa", Budget(points=40)), ("ripu-ra", Budget(percent=2.2))):
        start = time.perf_counter()
        select(method, "a", probs, budget)
        assert time.perf_counter() - start < 3  # an O(k^2) window would take far longer at k = 32


# ---- LabOR -------------------------------------------------------------------------------------------------------


def test_inconsistency_mask_is_where_the_heads_disagree():
    probs, probs2 = blobby_probs(7), blobby_probs(8)
    expected = (probs.argmax(0) != probs2.argmax(0)).numpy()
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(inconsistency_mask(probs, probs2), expected)


def test_spl_with_a_big_budget_returns_exactly_the_disagreement_as_8_connected_segments():
    probs, probs2 = blobby_probs(7), blobby_probs(8)
    labelled = np.zeros((24, 32), bool)
    labelled[:, :4] = True
    requests = select("labor-spl", "a", probs, Budget(percent=100), labelled=labelled, probs2=probs2)
    np.testing.assert_array_equal(union(requests, 24, 32), inconsistency_mask(probs, probs2) & ~labelled)
    scores = [r.score for r in requests]
    assert scores == sorted(scores, reverse=True)


def test_spl_segments_join_diagonal_neighbours():
    pred = np.zeros((6, 6), int)
    probs = one_hot_probs(pred, 2)
    probs2 = probs.clone()
    for y, x in ((1, 1), (2, 2), (3, 3)):  # a diagonal line: one 8-connected segment
        probs2[:, y, x] = torch.tensor([0.1, 0.9])
    requests = select("labor-spl", "a", probs, Budget(percent=100), probs2=probs2)
    assert len(requests) == 1 and requests[0].n_pixels == 3


def test_spl_takes_segments_by_discrepancy_and_skips_what_does_not_fit():
    probs = one_hot_probs(np.zeros((10, 10), int), 2, confidence=0.9)
    probs2 = probs.clone()
    segments = {"high": ((0, 0), (0, 1), (1, 0), (1, 1)), "middle": ((5, 5), (5, 6), (5, 7)), "low": ((9, 0),)}
    second_head = {"high": [0.0, 1.0], "middle": [0.2, 0.8], "low": [0.4, 0.6]}
    for name, pixels in segments.items():
        for y, x in pixels:
            probs2[:, y, x] = torch.tensor(second_head[name])
    # 5 pixels: the 4-pixel segment first, the 3-pixel one does not fit, the 1-pixel one does.
    requests = select("labor-spl", "a", probs, Budget(percent=5), probs2=probs2)
    assert [(r.x, r.y, r.n_pixels) for r in requests] == [(0, 0, 4), (0, 9, 1)]
    assert requests[0].score == pytest.approx(1.8)  # |0.9 - 0| + |0.1 - 1|
    assert requests[1].score == pytest.approx(1.0)


def ppl_case() -> tuple[torch.Tensor, torch.Tensor, dict[str, tuple[int, int]]]:
    """A 12x20 map where both heads agree (class 0) except at four pixels. Mean-probability vectors: a, b, c are
    predicted class 1, with prototype (0.32, 0.4567, 0.2233), nearest first c, a, b; d alone is class 2."""
    where = {"a": (2, 3), "b": (10, 18), "c": (2, 5), "d": (8, 10)}
    mean = {"a": [0.3, 0.5, 0.2], "b": [0.35, 0.4, 0.25], "c": [0.31, 0.47, 0.22], "d": [0.2, 0.3, 0.5]}
    # Heads = mean +- delta, with the heads' argmaxes differing.
    delta = {"a": [0.25, -0.25, 0], "b": [0.1, -0.1, 0], "c": [0.2, -0.2, 0], "d": [0, 0.15, -0.15]}
    probs = one_hot_probs(np.zeros((12, 20), int), 3, confidence=0.8)
    probs2 = probs.clone()
    for name, (y, x) in where.items():
        probs[:, y, x] = torch.tensor(mean[name]) + torch.tensor(delta[name])
        probs2[:, y, x] = torch.tensor(mean[name]) - torch.tensor(delta[name])
    assert inconsistency_mask(probs, probs2).sum() == 4
    return probs, probs2, where


def test_ppl_picks_the_pixel_nearest_the_class_prototype():
    probs, probs2, where = ppl_case()
    first = select("labor-ppl", "a", probs, Budget(points=1), probs2=probs2)
    assert [(r.y, r.x) for r in first] == [where["c"]]
    prototype = np.array([0.3 + 0.35 + 0.31, 0.5 + 0.4 + 0.47, 0.2 + 0.25 + 0.22]) / 3
    assert first[0].score == pytest.approx(-np.linalg.norm(np.array([0.31, 0.47, 0.22]) - prototype), abs=1e-6)


def test_ppl_goes_round_robin_over_classes_larger_sets_first():
    probs, probs2, where = ppl_case()
    requests = select("labor-ppl", "a", probs, Budget(points=10), probs2=probs2, min_distance=0)
    # Class 1 (three pixels) before class 2 (one); fewer uncertain pixels than the budget: fewer points.
    assert [(r.y, r.x) for r in requests] == [where[name] for name in "cdab"]


def test_ppl_proportional_allocation_gives_larger_uncertain_sets_more_points():
    probs, probs2, where = ppl_case()
    # |D(1)| = 3, |D(2)| = 1: two points split 1.5 / 0.5, the tied remainder to the larger set, so both go to
    # class 1 (round-robin would give one to each); three split 2.25 / 0.75, so class 2 gets the third.
    two = select("labor-ppl", "a", probs, Budget(points=2), probs2=probs2, min_distance=0, allocation="proportional")
    assert [(r.y, r.x) for r in two] == [where["c"], where["a"]]
    three = select("labor-ppl", "a", probs, Budget(points=3), probs2=probs2, min_distance=0,
                   allocation="proportional")
    assert [(r.y, r.x) for r in three] == [where[name] for name in "cad"]
    with pytest.raises(ConfigError, match="round-robin, proportional"):
        select("labor-ppl", "a", probs, Budget(points=2), probs2=probs2, allocation="equal")


def test_ppl_skips_candidates_too_close_to_a_chosen_point():
    probs, probs2, where = ppl_case()  # a is 2 pixels from c
    requests = select("labor-ppl", "a", probs, Budget(points=3), probs2=probs2, min_distance=3)
    assert [(r.y, r.x) for r in requests] == [where[name] for name in "cdb"]


# ---- errors ------------------------------------------------------------------------------------------------------


def test_bad_requests_raise_config_errors_naming_the_valid_choices():
    probs = blobby_probs(0)
    with pytest.raises(ConfigError, match="ripu-pa"):
        select("ripu", "a", probs, Budget(points=1))
    with pytest.raises(ConfigError, match="valid: k"):
        select("ripu-pa", "a", probs, Budget(points=1), radius=3)
    with pytest.raises(ConfigError, match="probs2"):
        select("labor-ppl", "a", probs, Budget(points=1))
    with pytest.raises(ConfigError, match="rng"):
        select("random", "a", probs, Budget(points=1))
    with pytest.raises(ConfigError, match="k"):
        select("ripu-pa", "a", probs, Budget(points=1), k=0)
    for method, budget in (("ripu-pa", Budget(percent=1)), ("ripu-ra", Budget(points=1)),
                           ("labor-spl", Budget(points=1)), ("labor-ppl", Budget(percent=1))):
        with pytest.raises(ConfigError, match="budget"):
            select(method, "a", probs, budget, probs2=probs)
