"""Active labelling end to end: oracle, sparse-label dataset, LabOR's pixel selector, rounds, resume."""

import json
import math

import numpy as np
import pytest
import torch

from syn2real.active import rounds
from syn2real.active.dataset import SparseLabelDataset
from syn2real.active.oracle import SimulatedAnnotator
from syn2real.active.pixel_selector import TwoClassifierSelector, discrepancy, train_selector
from syn2real.active.requests import Budget, Request
from syn2real.active.store import LabelStore
from syn2real.config import DatasetConfig, load_config
from syn2real.data import build_dataset
from syn2real.run import train
from syn2real.errors import ConfigError
from syn2real.labels import IGNORE
from syn2real.synth import render_dataset

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = (96, 64)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("synstreets")
    render_dataset(root / "source", 4, SIZE, "synthetic", seed=0, workers=1, progress=False)
    render_dataset(root / "target", 3, SIZE, "photo", seed=1, workers=1, split="train", progress=False)
    render_dataset(root / "target", 2, SIZE, "photo", seed=1, workers=1, split="val", progress=False)
    return root


def target_cfg(frames, split="train"):
    return DatasetConfig(kind="synstreets", root=str(frames / "target"), split=split)


def test_the_oracle_reveals_exactly_the_requested_pixels(frames, tmp_path):
    images = build_dataset(target_cfg(frames), labels=False)
    store = LabelStore(tmp_path / "labels.sqlite")
    dataset = SparseLabelDataset(images, store)
    dataset.register()
    name = images.names[1]
    full = np.zeros((64, 96), bool)
    full[10:14, 20:30] = True
    full[11, 20] = False
    store.add_round(0, "test", "x", [Request.point(name, 5, 7), Request.region(name, full)])
    # Before any answer the target carries no label at all.
    assert (dataset[1]["mask"] == IGNORE).all()
    oracle = SimulatedAnnotator(build_dataset(target_cfg(frames), labels=True))
    assert oracle.answer_open(store) == 2
    assert oracle.answer_open(store) == 0  # nothing is answered twice
    truth = oracle.ground_truth(name)
    sparse = dataset[1]["mask"].numpy()
    requested = full.copy()
    requested[7, 5] = True
    assert np.array_equal(sparse != IGNORE, requested & (truth != IGNORE))
    assert np.array_equal(sparse[requested], truth[requested])
    assert oracle.revealed == int((requested & (truth != IGNORE)).sum())
    assert (dataset[0]["mask"] == IGNORE).all()  # other images stay unlabelled


def test_the_sparse_dataset_refuses_a_labelled_target(frames, tmp_path):
    with pytest.raises(ValueError, match="labels=False"):
        SparseLabelDataset(build_dataset(target_cfg(frames), labels=True), LabelStore(tmp_path / "s.sqlite"))


def test_the_discrepancy_moves_the_classifiers_not_the_features():
    from syn2real.config import ModelConfig
    from syn2real.models import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(pretrained=None, head_channels=8))
    selector = TwoClassifierSelector(model)
    assert not torch.equal(selector.classifier2.weight, selector.segmentor.head.classifier.weight)
    images = torch.rand(1, 3, 64, 64)
    features = selector.features(images)
    p1, p2 = selector.classify(features.detach(), images.shape[-2:])
    (-discrepancy(p1.softmax(1), p2.softmax(1))).backward()
    assert selector.classifier2.weight.grad.abs().sum() > 0
    assert selector.segmentor.head.classifier.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in selector.segmentor.backbone.parameters())
    # The original segmentation model is a separate copy.
    assert model.head.classifier.weight.grad is None


def untrained_model_and_source(frames):
    from syn2real.config import ModelConfig
    from syn2real.models import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(pretrained=None, head_channels=8))
    source = build_dataset(DatasetConfig(kind="synstreets", root=str(frames / "source"), split="train"))
    return model, source


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_the_selector_pseudo_labels_only_confident_pixels(frames, threshold):
    model, source = untrained_model_and_source(frames)
    target = build_dataset(target_cfg(frames), labels=False)
    _, logs = train_selector(model, source, target, iters=1, lr=1e-3, pseudo_threshold=threshold)
    # An untrained model is never sure of anything: 1.0 leaves every pixel to the discrepancy, 0.0 none.
    assert logs["selector/target_labelled"] == (1.0 if threshold == 0.0 else 0.0)
    assert math.isfinite(logs["selector/loss_pseudo"])
    assert (logs["selector/loss_pseudo"] > 0) == (threshold == 0.0)


class FirstRowLabelled(torch.utils.data.Dataset):
    """Target items whose "mask" is a person's sparse labels: class 1 on the top row, IGNORE elsewhere."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        item = self.images[index]
        mask = torch.full(item["image"].shape[-2:], IGNORE, dtype=torch.uint8)
        mask[0] = 1
        return {**item, "mask": mask}


def test_the_selector_learns_the_given_target_labels_where_they_exist(frames):
    model, source = untrained_model_and_source(frames)
    target = FirstRowLabelled(build_dataset(target_cfg(frames), labels=False))
    height = target[0]["image"].shape[-2]
    # No pseudo-label passes a threshold of 1, so what is trained on target is exactly the labelled top row.
    _, logs = train_selector(model, source, target, iters=1, lr=1e-3, pseudo_threshold=1.0)
    assert logs["selector/target_labelled"] == pytest.approx(1 / height)
    assert logs["selector/loss_pseudo"] > 0


def active_config(frames, tmp_path, *extra):
    return load_config("cpu_default", [
        f"out_dir={tmp_path}", "name=active", "model.pretrained=null", "model.head_channels=8",
        "data.crop_size=[64,96]", "data.batch_size=2", "data.workers=0",
        f"data.source={{kind: synstreets, root: {frames / 'source'}, split: train}}",
        f"data.target={{kind: synstreets, root: {frames / 'target'}, split: train}}",
        f"data.val={{kind: synstreets, root: {frames / 'target'}, split: val}}",
        "method.name=adaptsegnet", "train.iters=4", "train.checkpoint_every=100", "train.log_every=1",
        f"active.oracle_data={{kind: synstreets, root: {frames / 'target'}, split: train}}",
        "active.rounds=[0,2]", "active.selector_iters=2", *extra])


@pytest.mark.parametrize("selector,budget,method", [
    ("labor-ppl", "active.points=4", "adaptsegnet"), ("labor-spl", "active.percent=2.0", "adaptsegnet"),
    ("entropy", "active.points=4", "adaptsegnet"), ("ripu-ra", "active.percent=2.0", "source_only")])
def test_rounds_select_answer_and_train_within_the_budget(frames, tmp_path, selector, budget, method):
    cfg = active_config(frames, tmp_path, f"active.selector={selector}", budget, f"method.name={method}")
    run = train(cfg, progress=False)
    store = LabelStore(run / "active" / "labels.sqlite")
    assert sorted(store.rounds()) == [0, 1]
    assert store.requests(open_only=True) == []
    if selector == "entropy":  # LabOR asks nothing where a toy model's two classifiers agree everywhere
        assert len(store.requests()) == 3 * cfg.active.points
    for name, (h, w) in store.images().items():
        requests = store.requests(image=name)
        if cfg.active.points:
            assert len(requests) <= cfg.active.points and all(r.request.kind == "point" for r in requests)
        else:
            assert sum(r.request.n_pixels for r in requests) <= 2 * Budget(percent=1.0).pixels(h, w)
        asked = store.requested_mask(name)
        assert not (store.sparse_label(name)[~asked] != IGNORE).any()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("active/revealed_pixels" in r for r in records)
    assert any("loss_tgt_labelled" in r for r in records)
    assert (run / "eval" / "final" / "metrics.json").is_file()
    assert (run / "active" / "round_001" / "requests.json").is_file()
    assert (run / "active" / "round_000" / "previews").is_dir()
    meta = json.loads((run / "active" / "meta.json").read_text())
    assert len(meta["classes"]) == 19 and meta["ignore"] == IGNORE


def test_a_run_killed_in_a_round_resumes_without_repeating_it(frames, tmp_path, monkeypatch):
    cfg = active_config(frames, tmp_path, "active.selector=random", "active.points=2")
    real = rounds.run_round
    calls = []

    def dying(round_index, *args, **kwargs):
        calls.append(round_index)
        if round_index == 1:
            raise KeyboardInterrupt
        return real(round_index, *args, **kwargs)

    monkeypatch.setattr(rounds, "run_round", dying)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.setattr(rounds, "run_round", real)
    train(cfg, resume=True, progress=False)
    store = LabelStore(cfg.run_dir / "active" / "labels.sqlite")
    assert calls == [0, 1] and sorted(store.rounds()) == [0, 1]
    assert len(store.requests(round_index=0)) == 3  # one point per image and round, round 0 not re-selected


def test_bad_active_configs_are_refused(frames, tmp_path):
    with pytest.raises(ConfigError, match="active.selector: unknown selector 'best'"):
        train(active_config(frames, tmp_path, "active.selector=best", "active.points=2"), progress=False)
    with pytest.raises(ConfigError, match="not both or neither"):
        train(active_config(frames, tmp_path, "active.selector=random"), progress=False)
    with pytest.raises(ConfigError, match=r"active.rounds must be increasing"):
        train(active_config(frames, tmp_path, "active.selector=random", "active.points=2", "active.rounds=[2,0]"),
              progress=False)
    with pytest.raises(ConfigError, match="selector_pseudo_threshold must lie in"):
        train(active_config(frames, tmp_path, "active.selector=labor-ppl", "active.points=2",
                            "active.selector_pseudo_threshold=1.5"), progress=False)
    with pytest.raises(ConfigError, match="needs active.oracle_data"):
        train(active_config(frames, tmp_path, "active.selector=random", "active.points=2",
                            "active.oracle_data=null"), progress=False)


def test_preview_marks_points_and_regions():
    image = np.full((20, 30, 3), 200, np.uint8)
    full = np.zeros((20, 30), bool)
    full[5:9, 10:20] = True
    out = rounds.preview(image, [Request.point("a", 3, 3), Request.region("a", full)])
    assert out.shape == image.shape
    assert tuple(out[3, 3]) == (255, 255, 255)
    assert out[6, 14, 1] < out[6, 14, 0]  # magenta tint inside the region
    assert out[15, 25, 0] < 200  # dimmed elsewhere


def test_the_oracle_answers_only_from_the_registered_images_and_all_or_nothing(frames, tmp_path):
    import sqlite3

    from syn2real.errors import DataError

    folder = rounds.open_request_folder(tmp_path / "requests", target_cfg(frames), load_config("cpu_default").data)
    store = folder.store
    assert all(store.image_hashes().values())
    store.add_round(0, "test", "1 points", [Request.point(name, 5, 7) for name in folder.images.names])
    # The val split has frames of the same names and size: other pictures.
    wrong = SimulatedAnnotator(build_dataset(target_cfg(frames, "val"), labels=True))
    with pytest.raises(DataError, match=r"oracle frame '000000': .*val/000000\.png is not the image the label store "
                                        r"registered \(.*train/000000\.png; the pixels differ\)"):
        wrong.answer_open(store)
    assert store.answers() == []
    # A store without hashes (written before they were kept) is checked by size only: the two frames of the same
    # names pass, the third is missing, and still nothing is answered.
    db = sqlite3.connect(store.path)
    db.execute("UPDATE images SET sha256 = NULL")
    db.commit()
    db.close()
    with pytest.raises(DataError, match="has no labelled frame '000002'"):
        wrong.answer_open(store)
    assert store.answers() == [] and wrong.revealed == 0
    right = SimulatedAnnotator(build_dataset(target_cfg(frames), labels=True))
    assert right.answer_open(store) == 3
