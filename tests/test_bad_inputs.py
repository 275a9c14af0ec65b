"""Bad inputs (not bad config values: those are tests/test_bad_config.py) through the real command line: label ids
the reader does not know, a wrong oracle, a half-bad answers file, a model of the wrong class count, a huge
image, a split that leaves the output folder, a selection on bad input. Each must end with exit status 1 and one
`error:` line naming the file or key, and leave nothing half-written; `--skip-bad` drops bad frames and says how
many."""

from __future__ import annotations

import json
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from syn2real import cli
from syn2real.active.requests import Request
from syn2real.active.rounds import STORE_FILE, open_request_folder
from syn2real.active.store import LabelStore
from syn2real.config import DatasetConfig, load_config

pytestmark = pytest.mark.usefixtures("one_thread")
FRAMES = 4
UNKNOWN_ID = 7  # the id maps below list 0, 1, 2


def make_folder(root: Path, seed: int = 0) -> Path:
    """A labelled `folder` dataset: 4 frames of 32x64, mask ids 0/1/2 -> road/sidewalk/car."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(FRAMES):
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, (32, 64), dtype=np.uint8)).save(root / "masks" / f"{i}.png")
    (root / "id_map.yaml").write_text(yaml.safe_dump({"ids": {0: 0, 1: 1, 2: 13}}))
    return root


def with_unknown_road(root: Path, frame: int = 2) -> Path:
    """Every road pixel (id 0) of one frame's mask set to an id the map does not list."""
    path = root / "masks" / f"{frame}.png"
    mask = np.array(Image.open(path))
    mask[mask == 0] = UNKNOWN_ID
    Image.fromarray(mask).save(path)
    return path


def huge_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A PNG whose header says width x height (its pixel data is empty): what a decompression bomb looks like
    to a reader, in 60 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("good"))


@pytest.fixture
def bad(tmp_path) -> Path:
    """A copy of the good data whose frame 2 has unknown label ids."""
    root = make_folder(tmp_path / "bad")
    with_unknown_road(root)
    return root


def train_args(source: Path, out_dir: Path, *extra: str, val: Path | None = None) -> list[str]:
    """A one-iteration CPU run on `source`, scored on `val` (default: `source`) at the end."""
    return ["train", "--config", "cpu_default", "--out-dir", str(out_dir), "--name", "run",
            f"data.source={{kind: folder, root: {source}}}", f"data.val={{kind: folder, root: {val or source}}}",
            "model.pretrained=null", "model.head_channels=8", "model.channels_last=false", "data.crop_size=[32,64]",
            "data.batch_size=2", "data.workers=0", "train.iters=1", "train.device=cpu", "train.log_every=1",
            "optim.warmup_iters=0", *extra]


def one_error_line(code: int, output: str, *names: str) -> str:
    """Exit status 1 and one `error:` line, the last one, naming `names` (progress bars may come before it)."""
    lines = output.strip().splitlines()
    assert code == 1, output
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], output
    assert "Traceback" not in output, output
    assert all(name in lines[-1] for name in names), output
    return lines[-1]


def written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.is_dir() else []


def no_results(run: Path) -> None:
    """A run stopped by bad data holds no checkpoint and no score (its config and empty logs may be there)."""
    assert not (run / "checkpoints").exists() and not (run / "eval").exists(), written(run)


@pytest.fixture(scope="module")
def trained(good, tmp_path_factory) -> Path:
    """A finished one-iteration run on the good data, with an unlabelled target (for `evaluate` and `select`)."""
    out_dir = tmp_path_factory.mktemp("runs")
    target = f"data.target={{kind: folder, root: {good}}}"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(sys, "argv", ["syn2real", *train_args(good, out_dir, target)])
        with pytest.raises(SystemExit) as done:
            cli.main()
    assert done.value.code == 0
    return out_dir / "run"


# ---- unknown label ids: train and evaluate stop, or drop the frame with skip_bad ---------------------------------


@pytest.mark.parametrize("where", ["source", "val"])
def test_train_stops_at_unknown_label_ids(good, bad, tmp_path, run_cli, where):
    source, val = (bad, good) if where == "source" else (good, bad)
    out_dir = tmp_path / "runs"
    # Two steps of two frames read every source frame.
    code, output = run_cli(train_args(source, out_dir, "train.iters=2", val=val))
    one_error_line(code, output, str(bad / "masks" / "2.png"), f"[{UNKNOWN_ID}]")
    no_results(out_dir / "run")


@pytest.mark.parametrize("how", ["--skip-bad", "config"])
def test_train_with_skip_bad_drops_and_counts_the_bad_frame(bad, tmp_path, run_cli, how):
    out_dir = tmp_path / "runs"
    extra = ["--skip-bad"] if how == "--skip-bad" else [f"data.source={{kind: folder, root: {bad}, skip_bad: true}}",
                                                        f"data.val={{kind: folder, root: {bad}, skip_bad: true}}"]
    with pytest.warns(UserWarning, match=r"(?s)1 of 4 frames are bad:.*2\.png.*skipped 1 frames"):
        code, output = run_cli(train_args(bad, out_dir, *extra))
    assert code == 0, output
    assert (out_dir / "run" / "eval" / "final" / "metrics.json").is_file()


def test_evaluate_stops_at_unknown_label_ids(trained, bad, run_cli):
    before = written(trained)
    code, output = run_cli(["evaluate", trained, "--data", f"folder:{bad}:train",
                                                  "--device", "cpu"])
    one_error_line(code, output, str(bad / "masks" / "2.png"), f"[{UNKNOWN_ID}]")
    assert written(trained) == before


def test_evaluate_with_skip_bad_drops_and_counts_the_bad_frame(trained, bad, run_cli):
    with pytest.warns(UserWarning, match=r"(?s)1 of 4 frames are bad:.*2\.png.*skipped 1 frames"):
        code, output = run_cli(["evaluate", trained, "--data", f"folder:{bad}:train",
                                                      "--device", "cpu", "--skip-bad", "--name", "skipped"])
    assert code == 0, output
    assert (trained / "eval" / "skipped" / "metrics.json").is_file()


# ---- the model's class count, a huge image ------------------------------------------------------------------------


def test_a_model_of_another_class_count_stops_before_any_work(good, tmp_path, run_cli):
    out_dir = tmp_path / "runs"
    code, output = run_cli(train_args(good, out_dir, "model.num_classes=11"))
    one_error_line(code, output, "model.num_classes", "11", str(good), "19")
    assert written(out_dir) == []


def test_a_huge_png_is_one_data_error_in_train(good, tmp_path, run_cli):
    source = tmp_path / "source"
    shutil.copytree(good, source)
    huge_png(source / "images" / "1.png")
    out_dir = tmp_path / "runs"
    code, output = run_cli(train_args(source, out_dir, "data.source.limit=2"))
    one_error_line(code, output, str(source / "images" / "1.png"), "decompression bomb")
    no_results(out_dir / "run")


def test_a_huge_png_is_one_data_error_in_evaluate(trained, good, tmp_path, run_cli):
    data = tmp_path / "data"
    shutil.copytree(good, data)
    huge_png(data / "images" / "0.png")
    before = written(trained)
    code, output = run_cli(["evaluate", trained, "--data", f"folder:{data}:train",
                                                  "--device", "cpu"])
    one_error_line(code, output, str(data / "images" / "0.png"), "decompression bomb")
    assert written(trained) == before


# ---- synth: the split is a folder name ------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["../../x", "a/b", "..", "absolute"])
def test_synth_split_must_not_leave_the_output_folder(tmp_path, run_cli, monkeypatch, split):
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    if split == "absolute":  # inside tmp_path, so that a writer that follows it writes nothing elsewhere
        split = str(tmp_path / "elsewhere")
    code, output = run_cli(["synth", "--out", "out", "--n", "1", "--size", "32x32",
                                                  "--workers", "1", "--split", split])
    one_error_line(code, output, "split", repr(split))
    assert written(tmp_path) == ["work", "work/deep"]


# ---- the oracle and imported answers: all or nothing ---------------------------------------------------------------


@pytest.fixture
def request_dir(good, tmp_path) -> Path:
    """A request folder over the good frames with one point request per frame, none answered."""
    path = tmp_path / "requests"
    folder = open_request_folder(path, DatasetConfig(kind="folder", root=str(good)), load_config("cpu_default").data)
    folder.store.add_round(0, "test", "1 points", [Request.point(name, 5, 5) for name in folder.images.names])
    return path


def store_state(path: Path) -> tuple[int, int]:
    store = LabelStore(path / STORE_FILE)
    return len(store.requests()), len(store.answers())


def test_the_oracle_refuses_frames_of_another_dataset(request_dir, good, tmp_path, run_cli):
    other = make_folder(tmp_path / "other", seed=1)  # the same names and sizes, other pictures
    code, output = run_cli(["label", request_dir, "--oracle", f"folder:{other}:train"])
    one_error_line(code, output, "oracle frame '0'", str(other / "images" / "0.png"), str(good / "images" / "0.png"))
    assert store_state(request_dir) == (FRAMES, 0)


def test_the_oracle_answers_nothing_when_one_frame_is_wrong(request_dir, good, tmp_path, run_cli):
    other = tmp_path / "other"
    shutil.copytree(good, other)
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(other / "images" / "3.png")  # the last frame replaced
    code, output = run_cli(["label", request_dir, "--oracle", f"folder:{other}:train"])
    one_error_line(code, output, "oracle frame '3'", str(other / "images" / "3.png"))
    assert store_state(request_dir) == (FRAMES, 0)
    # The right dataset answers every request.
    code, output = run_cli(["label", request_dir, "--oracle", f"folder:{good}:train"])
    assert code == 0, output
    assert store_state(request_dir) == (FRAMES, FRAMES)


def test_a_half_bad_answers_file_imports_nothing(request_dir, tmp_path, run_cli):
    store = LabelStore(request_dir / STORE_FILE)
    records = [{"request": s.id, "image": s.image, "x": 5, "y": 5, "class": 1} for s in store.requests()]
    records[2]["class"] = 99  # not a class
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(records))
    code, output = run_cli(["label", request_dir, "--import", answers])
    one_error_line(code, output, str(answers), "answer #2")
    assert store_state(request_dir) == (FRAMES, 0)


# ---- select: bad input leaves no request folder behind -------------------------------------------------------------


def test_select_writes_a_round(trained, tmp_path, run_cli):
    out = tmp_path / "requests"
    code, output = run_cli(["select", trained, "--method", "random", "--points", "2",
                                                  "--out", out, "--device", "cpu"])
    assert code == 0, output
    assert store_state(out) == (2 * FRAMES, 0)


@pytest.mark.parametrize("case", ["unknown method", "wrong budget", "missing target", "corrupt target image"])
def test_select_on_bad_input_leaves_nothing(trained, good, tmp_path, run_cli, case):
    out = tmp_path / "requests" / "round"
    args = ["select", trained, "--method", "random", "--points", "2", "--out", out, "--device", "cpu"]
    if case == "unknown method":
        args[3], name = "randm", "'randm'"
    elif case == "wrong budget":
        args[3:6], name = ["ripu-ra", "--points", "2"], "ripu-ra"
    elif case == "missing target":
        args += ["--data", f"folder:{tmp_path / 'nowhere'}:train"]
        name = str(tmp_path / "nowhere")
    else:
        target = tmp_path / "target"
        shutil.copytree(good, target)
        image = target / "images" / "1.png"
        image.write_bytes(image.read_bytes()[:200])  # a readable header, truncated pixels
        args += ["--data", f"folder:{target}:train"]
        name = str(image)
    code, output = run_cli(args)
    one_error_line(code, output, name)
    assert not (tmp_path / "requests").exists(), written(tmp_path / "requests")


def test_an_error_in_a_loader_worker_is_still_one_line():
    """torch re-raises a worker's error with the worker's traceback as its message; the loaders unwrap it."""
    from torch.utils.data import DataLoader, Dataset

    from syn2real.errors import DataError, worker_errors_unwrapped

    class Unreadable(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            raise DataError(f"frame_{index}.png: label ids [7] are not known")

    with pytest.raises(DataError) as raised, worker_errors_unwrapped():
        next(iter(DataLoader(Unreadable(), num_workers=1)))
    assert str(raised.value) == "frame_0.png: label ids [7] are not known"
