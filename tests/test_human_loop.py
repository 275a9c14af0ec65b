"""The documented human loop of active labelling, as a new user runs it: `train ... active.answers=human` pauses at
each round, a person answers through the annotator's HTTP API, `train --resume` goes on. Answered with the true
labels (what the oracle would give), the run must end with exactly the weights of an oracle run; so must runs
killed in a round and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from syn2real.active import rounds
from syn2real.active.oracle import SimulatedAnnotator
from syn2real.active.store import LabelStore
from syn2real.annotate.server import create_app
from syn2real.config import DatasetConfig, load_config, save_config
from syn2real.data import build_dataset
from syn2real.engine.checkpoint import load_weights
from syn2real.labels import IGNORE
from syn2real.run import is_finished, train
from syn2real.synth import render_dataset

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = (96, 64)


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synstreets")
    render_dataset(root / "source", 4, SIZE, "synthetic", seed=0, workers=1, progress=False)
    render_dataset(root / "target", 3, SIZE, "photo", seed=1, workers=1, split="train", progress=False)
    render_dataset(root / "target", 2, SIZE, "photo", seed=1, workers=1, split="val", progress=False)
    return root


def config(frames: Path, out_dir: Path, name: str, *extra: str):
    """Two rounds (before the first step and at step 4) of 8 iterations, two points per image and round."""
    return load_config("cpu_default", [
        f"out_dir={out_dir}", f"name={name}", "model.pretrained=null", "model.head_channels=8",
        "data.crop_size=[64,96]", "data.batch_size=2", "data.workers=0",
        f"data.source={{kind: synstreets, root: {frames / 'source'}, split: train}}",
        f"data.target={{kind: synstreets, root: {frames / 'target'}, split: train}}",
        f"data.val={{kind: synstreets, root: {frames / 'target'}, split: val}}",
        "method.name=source_only", "optim.warmup_iters=0", "train.iters=8", "train.checkpoint_every=100", "train.log_every=1",
        "active.selector=random", "active.points=4", "active.rounds=[0,4]", *extra])


def oracle_config(frames: Path, out_dir: Path, name: str = "oracle"):
    return config(frames, out_dir, name, "active.answers=oracle",
                  f"active.oracle_data={{kind: synstreets, root: {frames / 'target'}, split: train}}")


@pytest.fixture(scope="module")
def oracle_run(frames, tmp_path_factory) -> Path:
    return train(oracle_config(frames, tmp_path_factory.mktemp("oracle_run")), progress=False)


def assert_same_weights(run: Path, reference: Path) -> None:
    mine, theirs = load_weights(run), load_weights(reference)
    assert mine.keys() == theirs.keys()
    different = [k for k in mine if not torch.equal(mine[k], theirs[k])]
    assert different == [], f"{len(different)} tensors differ, e.g. {different[:3]}"


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_no_duplicate_records(run: Path) -> None:
    records = Counter((r["step"], tuple(sorted(r))) for r in metrics(run))
    assert [key for key, n in records.items() if n > 1] == []


def answer_as_a_person(request_dir: Path, truth: SimulatedAnnotator) -> int:
    """Answer every open request through the annotator's API with the true labels, image by image as the page
    hands them out; a point on an unlabelled pixel is skipped ("unsure"), as the API wants. Returns the count."""
    answered = 0
    with TestClient(create_app(request_dir), base_url="http://127.0.0.1") as client:
        while (image := client.post("/api/next", json={"annotator": "ann"}).json()["image"]) is not None:
            labels = truth.ground_truth(image)
            for request in client.get(f"/api/images/{image}/requests").json()["requests"]:
                if request["answer"] is not None:
                    continue
                assert request["kind"] == "point"
                value = int(labels[request["y"], request["x"]])
                answer = {"skipped": True} if value == IGNORE else {"class": value}
                response = client.post("/api/answers", json={"annotator": "ann", "image": image,
                                                             "request": request["id"], **answer})
                assert response.status_code == 201, response.text
                answered += 1
    return answered


def test_the_human_loop_pauses_resumes_and_matches_the_oracle(frames, tmp_path, oracle_run, capsys):
    cfg = config(frames, tmp_path, "human", "active.answers=human")
    truth = SimulatedAnnotator(build_dataset(DatasetConfig(kind="synstreets", root=str(frames / "target"),
                                                           split="train"), labels=True))
    request_dir = cfg.run_dir / "active"
    store = LabelStore(request_dir / "labels.sqlite")

    train(cfg, progress=False)
    assert "--resume" in capsys.readouterr().out
    assert sorted(store.rounds()) == [0] and not is_finished(cfg.run_dir)
    assert answer_as_a_person(request_dir, truth) == 3 * 2

    train(cfg, resume=True, progress=False)  # trains to step 4, pauses at round 1
    assert sorted(store.rounds()) == [0, 1] and not is_finished(cfg.run_dir)
    assert len(store.requests(round_index=1, open_only=True)) == 3 * 2
    # Resuming before the answers are in pauses again at the same round, selecting nothing new.
    train(cfg, resume=True, progress=False)
    assert len(store.requests()) == 3 * 4
    assert answer_as_a_person(request_dir, truth) == 3 * 2

    train(cfg, resume=True, progress=False)
    assert is_finished(cfg.run_dir) and store.requests(open_only=True) == []
    oracle_store = LabelStore(oracle_run / "active" / "labels.sqlite")
    for image in store.images():
        assert (store.sparse_label(image) == oracle_store.sparse_label(image)).all()
    assert_same_weights(cfg.run_dir, oracle_run)
    assert_no_duplicate_records(cfg.run_dir)


@pytest.mark.parametrize("round_index", [0, 1])
def test_a_run_killed_in_a_round_resumes_to_the_same_weights(frames, tmp_path, oracle_run, monkeypatch,
                                                              round_index):
    cfg = oracle_config(frames, tmp_path)
    real = rounds.run_round

    def killed(index, *args, **kwargs):
        if index == round_index:
            raise KeyboardInterrupt  # as a kill would: the round's transaction never commits
        return real(index, *args, **kwargs)

    monkeypatch.setattr(rounds, "run_round", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.setattr(rounds, "run_round", real)
    train(cfg, resume=True, progress=False)
    assert is_finished(cfg.run_dir)
    assert_same_weights(cfg.run_dir, oracle_run)
    assert_no_duplicate_records(cfg.run_dir)


#: Runs a config in a process of its own whose round `ROUND` stalls (after touching `MARKER`) until it is killed.
STALLING_RUN = """
import sys, time
from pathlib import Path
import torch
from syn2real.active import rounds
from syn2real.config import load_config
from syn2real.run import train

config, stalled_round, marker, resume = sys.argv[1:]
torch.set_num_threads(1)
run_round = rounds.run_round

def stalling(index, *args, **kwargs):
    if index == int(stalled_round):
        Path(marker).touch()
        time.sleep(600)
    return run_round(index, *args, **kwargs)

rounds.run_round = stalling
train(load_config(config), resume=resume == "resume", progress=False)
"""


def kill_9_in_round(cfg, round_index: int, tmp_path: Path, resume: bool) -> None:
    """Run `cfg` in a subprocess and SIGKILL it while it selects round `round_index`."""
    config_file, marker = tmp_path / f"config_{round_index}.yaml", tmp_path / f"in_round_{round_index}"
    save_config(cfg, config_file)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", STALLING_RUN, str(config_file), str(round_index), str(marker),
                             "resume" if resume else "fresh"], env=env)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before round {round_index}"
            assert time.monotonic() < deadline, f"round {round_index} not reached within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("round_index", [0, 1])
def test_the_human_loop_survives_kill_9_in_a_round(frames, tmp_path, oracle_run, capsys, round_index):
    """`kill -9` while a round is being selected, at round 0 and at round 1: `--resume` selects the round again
    (its transaction never committed), the person answers, and the run ends with the oracle run's weights."""
    cfg = config(frames, tmp_path, "human", "active.answers=human")
    truth = SimulatedAnnotator(build_dataset(DatasetConfig(kind="synstreets", root=str(frames / "target"),
                                                           split="train"), labels=True))
    request_dir = cfg.run_dir / "active"
    if round_index == 1:
        train(cfg, progress=False)  # pauses at round 0
        assert answer_as_a_person(request_dir, truth) == 3 * 2
    kill_9_in_round(cfg, round_index, tmp_path, resume=round_index == 1)
    store = LabelStore(request_dir / "labels.sqlite")
    assert sorted(store.rounds()) == list(range(round_index))  # the killed round left nothing in the store
    for _ in range(2 - round_index):
        train(cfg, resume=True, progress=False)  # selects the round again and pauses for the person
        assert answer_as_a_person(request_dir, truth) == 3 * 2
    train(cfg, resume=True, progress=False)
    assert is_finished(cfg.run_dir)
    assert_same_weights(cfg.run_dir, oracle_run)
    assert_no_duplicate_records(cfg.run_dir)


def test_a_run_killed_after_a_round_logs_it_once(frames, tmp_path, oracle_run, monkeypatch):
    """Killed after round 1 was answered and logged but before the next checkpoint: the resumed run logs the
    round's `active/*` record again, which must replace the first, not add a second."""
    from syn2real.engine.trainer import Trainer

    cfg = oracle_config(frames, tmp_path)
    real = Trainer._next_batch

    def killed(self, name):
        if self.step == 4 and name == "source":
            raise KeyboardInterrupt
        return real(self, name)

    monkeypatch.setattr(Trainer, "_next_batch", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    assert sum("active/revealed_pixels" in r for r in metrics(cfg.run_dir)) == 2
    monkeypatch.setattr(Trainer, "_next_batch", real)
    train(cfg, resume=True, progress=False)
    assert [r["step"] for r in metrics(cfg.run_dir) if "active/revealed_pixels" in r] == [0, 4]
    assert_no_duplicate_records(cfg.run_dir)
    assert_same_weights(cfg.run_dir, oracle_run)


def test_a_resumed_logger_replaces_records_of_its_resume_step(tmp_path):
    from syn2real.engine.logging import RunLogger

    first = RunLogger(tmp_path)
    for step, scalars in ((3, {"loss": 1.0}), (4, {"loss": 0.5}), (4, {"active/rounds": 2}), (5, {"loss": 0.4})):
        first.log(step, scalars)
    first.close()
    resumed = RunLogger(tmp_path, resume_step=4)
    resumed.log(4, {"active/rounds": 2})  # the round at the checkpoint's step, logged again
    resumed.log(5, {"loss": 0.3})
    resumed.close()
    assert metrics(tmp_path) == [{"step": 3, "loss": 1.0}, {"step": 4, "loss": 0.5}, {"step": 4, "active/rounds": 2},
                                 {"step": 5, "loss": 0.3}]
