"""Whole / sliding-window inference, evaluate() end to end (also under 2-process DDP), predict_folder."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image
from rich.console import Console
from torch import nn
from torchvision import tv_tensors

from syn2real.config import EvalConfig
from syn2real.errors import ConfigError, DataError
from syn2real.evaluate import evaluate, infer_logits, predict_folder
from syn2real.evaluate.inference import predict
from syn2real.labels import C, CAMVID11, CITYSCAPES19, CITYSCAPES19_TO_CAMVID11, IGNORE, LabelSpace, make_lut


class NearestColour(nn.Module):
    """Classifies each pixel as the palette colour nearest to it: argmax_c 2 x.p_c - |p_c|^2 is a 1x1 conv."""

    def __init__(self, space: LabelSpace, swap: tuple[int, int] | None = None) -> None:
        super().__init__()
        palette = torch.tensor(space.palette, dtype=torch.float32) / 255
        self.conv = nn.Conv2d(3, space.num_classes, 1)
        with torch.no_grad():
            self.conv.weight.copy_(2 * palette[:, :, None, None])
            self.conv.bias.copy_(-(palette**2).sum(1))
            if swap:  # a known-wrong model: two classes exchanged
                a, b = swap
                self.conv.weight[[a, b]] = self.conv.weight[[b, a]].clone()
                self.conv.bias[[a, b]] = self.conv.bias[[b, a]].clone()

    def forward(self, x):
        return self.conv(x)


class InMemorySegDataset(torch.utils.data.Dataset):
    """Items in the dataset contract, images painted with the Cityscapes palette of their masks."""

    def __init__(self, masks: list[np.ndarray], space: LabelSpace = CITYSCAPES19, gt_lut: np.ndarray | None = None,
                 image_size: tuple[int, int] | None = None) -> None:
        self.masks, self.space, self.gt_lut, self.image_size = masks, space, gt_lut, image_size

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, i):
        mask = self.masks[i]
        image = torch.from_numpy(CITYSCAPES19.colorize(mask)).permute(2, 0, 1)
        if self.image_size:  # like data.val_resize: image smaller, mask kept at native size
            image = torch.nn.functional.interpolate(image[None].float(), size=self.image_size, mode="nearest")[0]
            image = image.to(torch.uint8)
        target = self.gt_lut[mask] if self.gt_lut is not None else mask
        return {"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(torch.from_numpy(target)),
                "name": f"frame{i:03d}"}


def block_masks(n: int, seed: int = 0, size=(16, 24)) -> list[np.ndarray]:
    """Masks of 4x4 blocks of random classes in {road, sidewalk, building, car, truck}, some ignored."""
    rng = np.random.default_rng(seed)
    classes = np.array([C["road"], C["sidewalk"], C["building"], C["car"], C["truck"], IGNORE], np.uint8)
    blocks = rng.choice(classes, size=(n, size[0] // 4, size[1] // 4))
    return [np.kron(b, np.ones((4, 4), np.uint8)) for b in blocks]


# ---- inference ------------------------------------------------------------------------------------------


def test_sliding_window_equals_whole_for_pointwise_model():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 5, 1)
    images = torch.rand(2, 3, 37, 53)
    whole = infer_logits(model, images)
    slide = infer_logits(model, images, mode="slide", crop_size=(16, 24), stride=(10, 13), num_classes=5)
    assert slide.shape == (2, 5, 37, 53) and slide.dtype == torch.float32
    torch.testing.assert_close(slide, whole, atol=1e-5, rtol=1e-5)


def test_sliding_window_pads_images_smaller_than_crop():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 1)
    images = torch.rand(1, 3, 10, 30)  # shorter than the crop, wider than it
    slide = infer_logits(model, images, mode="slide", crop_size=(16, 24), stride=(8, 8))
    torch.testing.assert_close(slide, infer_logits(model, images), atol=1e-5, rtol=1e-5)


def test_sliding_window_averages_overlaps():
    class Ones(nn.Module):  # logit 1 everywhere; padding-aware averaging keeps it exactly 1
        def forward(self, x):
            return torch.ones(x.shape[0], 2, *x.shape[-2:])

    logits = infer_logits(Ones(), torch.rand(1, 3, 20, 20), mode="slide", crop_size=(8, 8), stride=(3, 5))
    assert torch.equal(logits, torch.ones(1, 2, 20, 20))


def test_predict_argmax_and_bf16_autocast():
    model = NearestColour(CITYSCAPES19)
    mask = block_masks(1)[0]
    image = torch.from_numpy(CITYSCAPES19.colorize(np.where(mask == IGNORE, 0, mask))).permute(2, 0, 1)[None]
    labels = predict(model, image.float() / 255)
    assert labels.dtype == torch.int64 and labels.shape == (1, 16, 24)
    assert torch.equal(labels[0], torch.from_numpy(np.where(mask == IGNORE, 0, mask)).long())
    bf16 = infer_logits(model, image.float() / 255, precision="bf16")
    assert bf16.dtype == torch.float32


def test_inference_config_errors():
    model = nn.Conv2d(3, 5, 1)
    images = torch.rand(1, 3, 8, 8)
    with pytest.raises(ConfigError, match="5 classes"):
        infer_logits(model, images, num_classes=19)
    with pytest.raises(ConfigError, match="stride"):
        infer_logits(model, images, mode="slide", crop_size=(4, 4), stride=(5, 4))
    with pytest.raises(ConfigError, match="mode"):
        infer_logits(model, images, mode="multiscale")
    with pytest.raises(ConfigError, match="precision"):
        infer_logits(model, images, precision="int8")


# ---- evaluate -------------------------------------------------------------------------------------------


def test_perfect_model_scores_one_and_swapped_classes_score_known_value(tmp_path):
    dataset = InMemorySegDataset(block_masks(5))
    cfg = EvalConfig(protocol="cityscapes19", batch_size=2)
    model = NearestColour(CITYSCAPES19).train()
    result = evaluate(model, dataset, cfg, CITYSCAPES19, progress=False)
    assert model.training  # restored after evaluation
    assert result.miou == 1.0 and result.pixel_accuracy == 1.0 and result.n_images == 5
    present = {C[n] for n in ("road", "sidewalk", "building", "car", "truck")}
    assert {int(i) for i in np.flatnonzero(~np.isnan(result.iou))} == present

    wrong = evaluate(NearestColour(CITYSCAPES19, swap=(C["road"], C["sidewalk"])), dataset,
                     EvalConfig(mode="slide", crop_size=(8, 8), stride=(6, 6)), CITYSCAPES19, progress=False)
    assert wrong.iou[C["road"]] == 0.0 and wrong.iou[C["sidewalk"]] == 0.0
    assert wrong.miou == pytest.approx(3 / 5)
    assert wrong.confusion[C["road"], C["sidewalk"]] > 0

    wrong.save(tmp_path / "eval")
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["miou"] == pytest.approx(0.6) and saved["iou"]["terrain"] is None
    assert len(saved["confusion"]) == 19
    with Image.open(tmp_path / "eval" / "confusion.png") as png:
        assert png.width > 600 and png.height > 600
    out = io.StringIO()
    wrong.print_table(Console(file=out, width=100))
    assert "mIoU" in out.getvalue() and "sidewalk" in out.getvalue() and "60.0" in out.getvalue()


def test_camvid_protocol_maps_19_class_predictions():
    # Masks in CamVid-11 space, images painted from the 19-class masks: truck pixels must score as car.
    dataset = InMemorySegDataset(block_masks(3, seed=1), space=CAMVID11, gt_lut=make_lut(CITYSCAPES19_TO_CAMVID11))
    result = evaluate(NearestColour(CITYSCAPES19), dataset, EvalConfig(protocol="camvid11"), CITYSCAPES19,
                      progress=False)
    assert result.miou == 1.0 and result.class_names == CAMVID11.classes
    with pytest.raises(ConfigError, match="camvid11"):
        evaluate(NearestColour(CITYSCAPES19), dataset, EvalConfig(protocol="cityscapes19"), CITYSCAPES19,
                 progress=False)


def test_synthia16_scores_unscored_predictions_as_misses(tmp_path):
    # road predicted as truck (not a SYNTHIA-16 class) is a road miss; GT truck pixels are ignored.
    result = evaluate(NearestColour(CITYSCAPES19, swap=(C["road"], C["truck"])), InMemorySegDataset(block_masks(4)),
                      EvalConfig(protocol="synthia16"), CITYSCAPES19, progress=False)
    road = result.class_names.index("road")
    assert result.iou[road] == 0.0 and result.outside[road] > 0
    assert result.miou == pytest.approx(3 / 4)  # sidewalk, building, car perfect
    result.save(tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text())["outside"][road] == result.outside[road]
    assert (tmp_path / "confusion.png").stat().st_size > 0


def test_logits_are_upsampled_to_mask_size():
    # Two classes, no ignore: bilinear mixing at block edges then always favours the pixel's own block.
    masks = [np.where(m == IGNORE, C["car"], np.where(m == C["car"], C["car"], C["road"])).astype(np.uint8)
             for m in block_masks(2, seed=2)]
    dataset = InMemorySegDataset(masks, image_size=(8, 12))
    assert dataset[0]["image"].shape[-2:] != dataset[0]["mask"].shape
    result = evaluate(NearestColour(CITYSCAPES19), dataset, EvalConfig(), CITYSCAPES19, progress=False)
    assert result.miou == 1.0
    assert result.confusion.sum() == sum(int((m != IGNORE).sum()) for m in dataset.masks)


def test_unlabelled_items_are_a_data_error():
    class Unlabelled(InMemorySegDataset):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            del item["mask"]
            return item

    with pytest.raises(DataError, match="frame000"):
        evaluate(NearestColour(CITYSCAPES19), Unlabelled(block_masks(1)), EvalConfig(), CITYSCAPES19,
                 progress=False)


def _ddp_worker(rank: int, world_size: int, tmp_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_dir}/init", rank=rank, world_size=world_size)
    try:
        # The trainer hands over its DDP-wrapped model; evaluate() unwraps it.
        model = nn.parallel.DistributedDataParallel(NearestColour(CITYSCAPES19, swap=(C["car"], C["building"])))
        result = evaluate(model, InMemorySegDataset(block_masks(5, seed=4)), EvalConfig(), CITYSCAPES19,
                          progress=False)
        np.save(f"{tmp_dir}/rank{rank}.npy", np.append(result.confusion.ravel(), result.n_images))
    finally:
        dist.destroy_process_group()


def test_ddp_shards_are_disjoint_and_matrices_summed(tmp_path):
    single = evaluate(NearestColour(CITYSCAPES19, swap=(C["car"], C["building"])),
                      InMemorySegDataset(block_masks(5, seed=4)), EvalConfig(), CITYSCAPES19, progress=False)
    mp.spawn(_ddp_worker, args=(2, str(tmp_path)), nprocs=2)
    for rank in range(2):  # every rank holds the whole-dataset result, each image counted once
        saved = np.load(tmp_path / f"rank{rank}.npy")
        assert saved[-1] == 5
        np.testing.assert_array_equal(saved[:-1].reshape(single.confusion.shape), single.confusion)


# ---- predict_folder -------------------------------------------------------------------------------------


def write_images(folder, sizes=((16, 24), (12, 20))):
    folder.mkdir(parents=True, exist_ok=True)
    masks = {}
    for i, (h, w) in enumerate(sizes):
        mask = block_masks(1, seed=10 + i, size=(h, w))[0]
        mask[mask == IGNORE] = C["sky"]
        Image.fromarray(CITYSCAPES19.colorize(mask)).save(folder / f"img{i}.png")
        masks[f"img{i}"] = mask
    return masks


def test_predict_folder_writes_palette_masks_and_overlays(tmp_path):
    masks = write_images(tmp_path / "in")
    Image.fromarray(np.zeros((10, 14, 3), np.uint8)).save(tmp_path / "in" / "dark.JPG")
    (tmp_path / "in" / "notes.txt").write_text("not an image, not an input")
    written = predict_folder(NearestColour(CITYSCAPES19), tmp_path / "in", tmp_path / "out", CITYSCAPES19,
                             overlay=True, progress=False)
    assert [p.name for p in written] == ["dark.png", "dark_overlay.jpg", "img0.png", "img0_overlay.jpg",
                                         "img1.png", "img1_overlay.jpg"]
    for stem, mask in masks.items():
        with Image.open(tmp_path / "out" / f"{stem}.png") as png:
            assert png.mode == "P" and png.size == (mask.shape[1], mask.shape[0])
            np.testing.assert_array_equal(np.asarray(png), mask)
            assert png.getpalette()[: 3 * 19] == [v for colour in CITYSCAPES19.palette for v in colour]
        with Image.open(tmp_path / "out" / f"{stem}_overlay.jpg") as jpg:
            assert jpg.format == "JPEG" and jpg.size == (mask.shape[1], mask.shape[0])
    with Image.open(tmp_path / "out" / "dark.png") as png:
        assert png.size == (14, 10)


def test_predict_folder_inference_size_and_recursion(tmp_path):
    masks = write_images(tmp_path / "in" / "sub")
    written = predict_folder(NearestColour(CITYSCAPES19), tmp_path / "in", tmp_path / "out", CITYSCAPES19,
                             size=(8, 8), recursive=True, mode="slide", crop_size=(6, 6), stride=(4, 4),
                             progress=False)
    assert written == [tmp_path / "out" / "sub" / "img0.png", tmp_path / "out" / "sub" / "img1.png"]
    with Image.open(written[1]) as png:
        assert png.size == (masks["img1"].shape[1], masks["img1"].shape[0])  # back at image size


def test_predict_takes_one_image_file(tmp_path):
    masks = write_images(tmp_path / "in")
    written = predict_folder(NearestColour(CITYSCAPES19), tmp_path / "in" / "img1.png", tmp_path / "out",
                             CITYSCAPES19, overlay=True, progress=False)
    assert written == [tmp_path / "out" / "img1.png", tmp_path / "out" / "img1_overlay.jpg"]
    with Image.open(written[0]) as png:
        np.testing.assert_array_equal(np.asarray(png), masks["img1"])
    (tmp_path / "in" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"notes.txt: not an image file"):
        predict_folder(NearestColour(CITYSCAPES19), tmp_path / "in" / "notes.txt", tmp_path / "out", CITYSCAPES19,
                       progress=False)


def test_predict_folder_errors(tmp_path):
    model = NearestColour(CITYSCAPES19)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        predict_folder(model, tmp_path / "empty", tmp_path / "out", CITYSCAPES19, progress=False)
    with pytest.raises(DataError, match="not found"):
        predict_folder(model, tmp_path / "missing", tmp_path / "out", CITYSCAPES19, progress=False)
    write_images(tmp_path / "in")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG this is not a picture")
    with pytest.raises(DataError, match="broken.png"):
        predict_folder(model, tmp_path / "in", tmp_path / "out", CITYSCAPES19, progress=False)
    assert not (tmp_path / "out").exists()  # checked before any output is written
    (tmp_path / "in" / "broken.png").unlink()
    with pytest.raises(DataError, match="overwrite"):
        predict_folder(model, tmp_path / "in", tmp_path / "in", CITYSCAPES19, progress=False)
    with pytest.raises(ConfigError, match="19 classes"):
        predict_folder(model, tmp_path / "in", tmp_path / "out", CAMVID11, progress=False)
