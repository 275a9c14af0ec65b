"""The label store: requests, answers exactly once, sparse labels, the exchange format, crash safety."""

import json
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from syn2real.active.requests import Budget, Request
from syn2real.active.store import LabelStore, from_run_length, run_length
from syn2real.errors import ConfigError, DataError


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path / "labels.sqlite")
    s.add_images({"a": (6, 8, tmp_path / "a.png"), "b": (6, 8, tmp_path / "b.png")})
    return s


def region(image, y0, y1, x0, x1, shape=(6, 8)):
    full = np.zeros(shape, bool)
    full[y0:y1, x0:x1] = True
    return Request.region(image, full, score=0.5)


def test_requests_round_trip_and_answers_compose_the_sparse_label(store):
    ids = store.add_round(0, "labor-spl", "2.2 % of pixels", [Request.point("a", 3, 1), region("a", 2, 4, 1, 4)])
    assert [r.id for r in store.requests(image="a", open_only=True)] == ids
    got = store.request(ids[1]).request
    assert (got.x, got.y, got.mask.shape, got.n_pixels) == (1, 2, (2, 3), 6)
    assert store.answer(ids[0], 13, annotator="oracle", source="oracle")
    labels = np.full((2, 3), 7, np.uint8)
    labels[0, 0] = 255  # the answerer may leave a pixel open
    assert store.answer(ids[1], labels, annotator="ann")
    expected = np.full((6, 8), 255, np.uint8)
    expected[1, 3] = 13
    expected[2:4, 1:4] = 7
    expected[2, 1] = 255
    assert np.array_equal(store.sparse_label("a"), expected)
    assert np.array_equal(store.sparse_label("b"), np.full((6, 8), 255, np.uint8))
    assert store.revealed() == {"a": 6, "b": 0} and store.revealed(source="oracle") == {"a": 1, "b": 0}
    assert store.requested_mask("a").sum() == 7
    assert store.requests(open_only=True) == []


def test_an_answer_is_stored_once_and_can_be_retracted_by_its_author(store):
    (rid,) = store.add_round(0, "entropy", "1 points/image", [Request.point("b", 0, 0)])
    assert store.answer(rid, 1, annotator="x")
    assert not store.answer(rid, 2, annotator="y")
    assert store.sparse_label("b")[0, 0] == 1
    assert not store.retract(rid, annotator="y")
    assert store.retract(rid, annotator="x")
    assert store.answer(rid, 2, annotator="y")
    assert store.sparse_label("b")[0, 0] == 2


def test_bad_requests_and_answers_are_refused(store):
    with pytest.raises(DataError, match="unregistered image 'zz'"):
        store.add_round(0, "random", "x", [Request.point("zz", 0, 0)])
    with pytest.raises(DataError, match="leaves image 'a'"):
        store.add_round(0, "random", "x", [Request.point("a", 8, 0)])
    assert store.rounds() == {}  # nothing of a refused round is written
    (rid,) = store.add_round(0, "random", "x", [region("a", 0, 2, 0, 2)])
    with pytest.raises(DataError, match="already exists"):
        store.add_round(0, "random", "x", [])
    with pytest.raises(DataError, match="class ids must be in 0..18"):
        store.answer(rid, 19, annotator="x")
    outside = np.full((2, 2), 255, np.uint8)
    with pytest.raises(DataError, match=r"labels are \(3, 3\)"):
        store.answer(rid, np.zeros((3, 3), np.uint8), annotator="x")
    l_shape = np.zeros((6, 8), bool)
    l_shape[3:5, 3] = l_shape[4, 3:5] = True  # its box holds one pixel that was not requested
    (pid,) = store.add_round(1, "random", "x", [Request.region("a", l_shape)])
    labels = np.zeros((2, 2), np.uint8)
    with pytest.raises(DataError, match="outside the requested pixels"):
        store.answer(pid, labels, annotator="x")
    assert store.answer(rid, outside, annotator="x")  # all left open is a valid (empty) answer
    with pytest.raises(DataError, match="needs labels unless it is skipped"):
        store.answer(pid, None, annotator="x")
    assert store.answer(pid, None, annotator="x", skipped=True)
    assert store.sparse_label("a").max() == 255
    with pytest.raises(DataError, match="registered as 6x8"):
        store.add_images({"a": (7, 8, "a.png")})


def test_export_import_round_trip(store, tmp_path):
    ids = store.add_round(0, "labor-ppl", "2 points/image", [Request.point("a", 1, 1), Request.point("b", 2, 2),
                                                              region("b", 3, 5, 4, 7)])
    store.answer(ids[0], 5, annotator="oracle", source="oracle")
    store.answer(ids[1], None, annotator="p", skipped=True)
    labels = np.array([[0, 1, 2], [255, 11, 11]], np.uint8)
    store.answer(ids[2], labels, annotator="p")
    out = store.export(tmp_path / "export")
    mask_b = np.array(Image.open(out / "masks" / "b.png"))
    assert np.array_equal(mask_b, store.sparse_label("b"))
    records = json.loads((out / "answers.json").read_text())
    assert [r["kind"] for r in records] == ["point", "point", "region"]
    assert records[0]["class"] == 5 and records[1]["skipped"] and records[2]["width"] == 3

    other = LabelStore(tmp_path / "other.sqlite")
    other.add_images(store_images(store))
    other.add_round(0, "labor-ppl", "2 points/image", [s.request for s in store.requests()])
    assert other.import_answers(out / "answers.json") == 3
    assert other.import_answers(out / "answers.json") == 0  # nothing counted twice
    for image in ("a", "b"):
        assert np.array_equal(other.sparse_label(image), store.sparse_label(image))
    records[2]["labels"] = [[3, 2]]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(records))
    third = LabelStore(tmp_path / "third.sqlite")
    third.add_images(store_images(store))
    third.add_round(0, "labor-ppl", "x", [s.request for s in store.requests()])
    with pytest.raises(DataError, match=r"bad.json: answer #2: run-length labels cover 2 pixels"):
        third.import_answers(bad)


def store_images(store):
    return {name: (*store.image_size(name), store.image_path(name)) for name in store.images()}


def test_run_length_round_trip():
    values = np.array([[255, 255, 3], [3, 3, 0]])
    assert run_length(values) == [[255, 2], [3, 3], [0, 1]]
    assert np.array_equal(from_run_length(run_length(values), (2, 3)), values)


def test_a_process_killed_mid_round_leaves_no_partial_round(store, tmp_path):
    child = f"""
import numpy as np, os
from syn2real.active.requests import Request
from syn2real.active.store import LabelStore
s = LabelStore({str(store.path)!r})
real, calls = np.packbits, []
def dying(a):
    calls.append(1)
    if len(calls) == 3:
        os._exit(1)
    return real(a)
np.packbits = dying
s.add_round(0, "random", "x", [Request.point("a", i, 0) for i in range(5)])
"""
    assert subprocess.run([sys.executable, "-c", child]).returncode == 1
    assert store.rounds() == {} and store.requests() == []
    store.add_round(0, "random", "x", [Request.point("a", 0, 0)])  # the store still works
    assert len(store.requests()) == 1


def test_concurrent_answers_are_stored_exactly_once(store):
    ids = store.add_round(0, "random", "x", [Request.point("a", x, y) for y in range(6) for x in range(8)])
    stored = []

    def worker(name):
        clone = pickle.loads(pickle.dumps(store))  # what a data-loader worker gets
        stored.extend(rid for rid in ids if clone.answer(rid, 1, annotator=name))

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(stored) == ids


def test_leases_hand_out_different_images_and_expire(store):
    store.add_round(0, "random", "x", [Request.point("a", 0, 0), Request.point("b", 0, 0)])
    assert store.lease("x") == "a"
    assert store.lease("y") == "b"
    assert store.lease("z") is None
    assert store.lease("x") == "a"  # renewed, not a new image
    store.release("x")
    assert store.lease("z") == "a"
    store.release("z")
    assert store.lease("q", seconds=-1) == "a"  # an expired lease frees the image for the next annotator
    assert store.lease("r") == "a"


def test_budget_rules():
    assert Budget(percent=2.2).pixels(360, 480) == 3801
    assert Budget(points=40).split(5) == Budget(points=8)
    assert Budget(percent=2.2).split(5).percent == pytest.approx(0.44)
    with pytest.raises(ConfigError, match="not both or neither"):
        Budget(points=3, percent=1.0)
    with pytest.raises(ConfigError, match="at least 1"):
        Budget(points=0)


def test_a_store_without_image_hashes_is_migrated_and_keeps_working(tmp_path):
    import sqlite3

    from syn2real.active import store as store_module

    path = tmp_path / "labels.sqlite"
    db = sqlite3.connect(path)  # a store written before images had a content hash
    db.executescript(store_module.SCHEMA.replace(", sha256 TEXT", ""))
    db.execute("INSERT INTO images VALUES ('a', 6, 8, '/data/a.png')")
    db.commit()
    db.close()
    old = LabelStore(path)
    assert old.image_hashes() == {"a": None} and old.image_hash("a") is None
    request_id, = old.add_round(0, "test", "1 points", [Request.point("a", 1, 1)])
    assert old.answer(request_id, 3, annotator="ann")
    old.set_image_hashes({"a": "f00d"})
    assert LabelStore(path).image_hash("a") == "f00d"  # opening a migrated store again changes nothing
    with pytest.raises(DataError, match="image 'a' .* has changed since it was registered"):
        old.set_image_hashes({"a": "beef"})


def test_many_answers_are_stored_all_or_none(store):
    import sqlite3

    ids = store.add_round(0, "test", "x", [Request.point("a", 1, 1), Request.point("b", 2, 2)])
    rows = [store.answer_row(store.request(i), 3, "ann") for i in ids]
    with pytest.raises(sqlite3.IntegrityError):  # the third row fails: the first two must not stay
        store.add_answers([*rows, ("not an id", None, 0, "ann", "human", 0.0, None)])
    assert store.answers() == []
    assert store.add_answers(rows[:1]) == [ids[0]] and store.add_answers(rows[:1]) == []
