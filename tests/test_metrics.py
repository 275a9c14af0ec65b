"""Confusion-matrix metrics against a brute-force reference, and the scoring protocols' label maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syn2real.errors import ConfigError, DataError
from syn2real.evaluate.metrics import ConfusionMatrix
from syn2real.evaluate.protocols import PROTOCOLS, get_protocol
from syn2real.labels import C, CAMVID11, CITYSCAPES19, IGNORE, SYNTHIA16, SYNTHIA16_TRAIN_IDS


def reference_scores(pred: np.ndarray, gt: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Per-class IoU by counting pixels class by class; pixel accuracy over non-ignored ground truth."""
    valid = gt != IGNORE
    ious = []
    for c in range(k):
        inter = np.sum((pred == c) & (gt == c) & valid)
        union = np.sum(((pred == c) | (gt == c)) & valid)
        ious.append(inter / union if union else np.nan)
    return np.array(ious), np.sum((pred == gt) & valid) / np.sum(valid)


def random_pair(rng: np.random.Generator, k: int, shape=(3, 17, 23)) -> tuple[np.ndarray, np.ndarray]:
    gt = rng.integers(0, k, shape)
    gt[rng.random(shape) < 0.2] = IGNORE
    pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, k, shape))
    pred[rng.random(shape) < 0.05] = IGNORE  # predictions of classes the protocol does not score
    return pred, gt


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    k = 7
    pred, gt = random_pair(rng, k)
    matrix = ConfusionMatrix(k)
    matrix.update(torch.from_numpy(pred), torch.from_numpy(gt))
    ref_iou, ref_acc = reference_scores(pred, gt, k)
    np.testing.assert_allclose(matrix.iou(), ref_iou)
    assert matrix.miou() == pytest.approx(np.nanmean(ref_iou))
    assert matrix.pixel_accuracy() == pytest.approx(ref_acc)
    assert matrix.matrix.sum() + matrix.outside.sum() == np.sum(gt != IGNORE)


def test_ignore_pixels_never_count():
    gt = torch.tensor([0, 1, IGNORE, IGNORE])
    matrix = ConfusionMatrix(3)
    matrix.update(torch.tensor([0, 1, 2, 0]), gt)
    assert matrix.matrix.sum() == 2
    np.testing.assert_array_equal(matrix.iou(), [1.0, 1.0, np.nan])
    assert matrix.miou() == 1.0


def test_absent_classes_are_nan_and_prediction_only_classes_score_zero():
    matrix = ConfusionMatrix(5)
    # class 0 right, class 1 predicted as 2 on one pixel; 3 never appears; 4 only in prediction
    matrix.update(torch.tensor([0, 0, 1, 2, 4]), torch.tensor([0, 0, 1, 1, 0]))
    iou = matrix.iou()
    assert iou[0] == pytest.approx(2 / 3)  # 2 hits; union adds the GT-0 pixel predicted 4
    assert iou[1] == pytest.approx(1 / 2)
    assert iou[2] == 0.0 and iou[4] == 0.0
    assert np.isnan(iou[3])
    assert matrix.miou() == pytest.approx((2 / 3 + 1 / 2 + 0 + 0) / 4)
    np.testing.assert_allclose(matrix.class_accuracy(), [2 / 3, 1 / 2, np.nan, np.nan, np.nan])


def test_empty_matrix_is_nan():
    matrix = ConfusionMatrix(4)
    matrix.update(torch.tensor([1, 2]), torch.tensor([IGNORE, IGNORE]))
    assert np.isnan(matrix.miou()) and np.isnan(matrix.pixel_accuracy())
    assert matrix.to_dict(("a", "b", "c", "d"))["miou"] is None


def test_merge_equals_one_matrix_over_concatenated_data():
    rng = np.random.default_rng(3)
    (p1, g1), (p2, g2) = random_pair(rng, 5), random_pair(rng, 5, shape=(2, 9, 4))
    first, second, whole = ConfusionMatrix(5), ConfusionMatrix(5), ConfusionMatrix(5)
    first.update(torch.from_numpy(p1), torch.from_numpy(g1))
    second.update(torch.from_numpy(p2), torch.from_numpy(g2))
    whole.update(torch.from_numpy(np.concatenate([p1.ravel(), p2.ravel()])),
                 torch.from_numpy(np.concatenate([g1.ravel(), g2.ravel()])))
    assert torch.equal(first.merge(second).counts, whole.counts)
    with pytest.raises(ValueError):
        first.merge(ConfusionMatrix(6))


def test_all_reduce_is_a_no_op_without_process_group():
    matrix = ConfusionMatrix(3)
    matrix.update(torch.tensor([0, 1]), torch.tensor([0, 2]))
    before = matrix.counts.clone()
    assert torch.equal(matrix.all_reduce().counts, before)


def test_ground_truth_out_of_range_is_a_data_error():
    with pytest.raises(DataError, match=r"\[7\]"):
        ConfusionMatrix(5).update(torch.tensor([0, 1]), torch.tensor([0, 7]))


def test_to_dict_names_classes():
    matrix = ConfusionMatrix(2)
    matrix.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    out = matrix.to_dict(("road", "sky"))
    assert out["iou"] == {"road": 0.5, "sky": 0.5}
    assert out["pixel_accuracy"] == pytest.approx(2 / 3)


# ---- protocols -----------------------------------------------------------------------------------------


def score(protocol_name: str, model_space: str, dataset_space: str, pred: list[int], gt: list[int]):
    protocol = get_protocol(protocol_name)
    pred_lut = torch.from_numpy(protocol.pred_lut(model_space)).long()
    gt_lut = torch.from_numpy(protocol.gt_lut(dataset_space)).long()
    matrix = ConfusionMatrix(protocol.space.num_classes)
    matrix.update(pred_lut[torch.tensor(pred)], gt_lut[torch.tensor(gt)])
    return matrix


def test_truck_prediction_scores_as_camvid_car():
    car = CAMVID11.classes.index("car")
    assert get_protocol("camvid11").pred_lut("cityscapes19")[C["truck"]] == car
    matrix = score("camvid11", "cityscapes19", "camvid11", [C["truck"], C["bus"], C["sky"]], [car, car, 0])
    assert matrix.iou()[car] == 1.0 and matrix.miou() == 1.0


def test_synthia16_drops_terrain_and_counts_unscored_predictions_as_misses():
    protocol = get_protocol("synthia16")
    assert protocol.space == SYNTHIA16
    gt_lut = protocol.gt_lut("cityscapes19")
    for name in ("terrain", "truck", "train"):
        assert gt_lut[C[name]] == IGNORE
    assert [int(gt_lut[t]) for t in SYNTHIA16_TRAIN_IDS] == list(range(16))
    # GT terrain is not scored; a road pixel predicted as truck is a road miss, not dropped.
    matrix = score("synthia16", "cityscapes19", "cityscapes19",
                   pred=[C["road"], C["road"], C["truck"]], gt=[C["road"], C["terrain"], C["road"]])
    road = SYNTHIA16.classes.index("road")
    assert matrix.iou()[road] == 0.5
    assert matrix.outside[road] == 1


def test_model_already_in_protocol_space_maps_by_identity():
    lut = get_protocol("camvid11").pred_lut("camvid11")
    np.testing.assert_array_equal(lut[:11], np.arange(11))
    assert (lut[11:] == IGNORE).all()


def test_subspace_model_maps_through_cityscapes():
    lut = get_protocol("cityscapes19").pred_lut("synthia16")
    np.testing.assert_array_equal(lut[:16], SYNTHIA16_TRAIN_IDS)


@pytest.mark.parametrize("name", PROTOCOLS)
def test_cityscapes19_model_and_ground_truth_map_into_every_protocol(name):
    protocol = get_protocol(name)
    lut = protocol.gt_lut("cityscapes19")
    assert set(lut.tolist()) == set(range(protocol.space.num_classes)) | {IGNORE}
    assert lut[IGNORE] == IGNORE
    assert len(protocol.pred_lut("cityscapes19")) == 256


def test_impossible_pairings_are_config_errors():
    with pytest.raises(ConfigError, match="camvid11"):
        get_protocol("cityscapes19").gt_lut("camvid11")
    with pytest.raises(ConfigError, match="terrain"):
        get_protocol("cityscapes19").gt_lut("synthia16")
    with pytest.raises(ConfigError, match="model"):
        get_protocol("synthia16").pred_lut("camvid11")
    with pytest.raises(ConfigError, match="known"):
        get_protocol("ade20k")
    with pytest.raises(ConfigError, match="unknown label space"):
        get_protocol("cityscapes19").pred_lut("nope")


def test_cityscapes19_identity():
    lut = get_protocol("cityscapes19").pred_lut(CITYSCAPES19.name)
    np.testing.assert_array_equal(lut[:19], np.arange(19))
