"""The annotator's JSON API through FastAPI's TestClient: answers stored exactly once, undo, leases, export, and
every bad request refused with a clear 4xx."""

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from syn2real.active.requests import Request
from syn2real.active.store import LabelStore, run_length
from syn2real.annotate.cli import annotate_app
from syn2real.annotate.guard import parse_host
from syn2real.annotate.server import MAX_BODY_BYTES, create_app, is_loopback
from syn2real.errors import DataError
from syn2real.labels import CITYSCAPES19

LOCAL = "http://127.0.0.1"


def rectangle(shape, y0, y1, x0, x1):
    full = np.zeros(shape, bool)
    full[y0:y1, x0:x1] = True
    return full


def make_request_folder(root: Path, images: dict[str, np.ndarray], predictions: dict[str, np.ndarray],
                        rounds: list[tuple[str, list[Request]]]) -> Path:
    """A request folder as `syn2real select` writes it: image files elsewhere, labels.sqlite, meta.json and
    predictions/<image>.png."""
    (root / "images").mkdir(parents=True)
    files = {}
    for name, pixels in images.items():
        files[name] = root / "images" / f"{name}.png"
        Image.fromarray(pixels).save(files[name])
    folder = root / "requests"
    store = LabelStore(folder / "labels.sqlite")
    store.add_images({name: (*pixels.shape[:2], files[name]) for name, pixels in images.items()})
    for index, (method, requests) in enumerate(rounds):
        store.add_round(index, method, "test", requests)
    (folder / "meta.json").write_text(json.dumps({
        "space": CITYSCAPES19.name, "classes": list(CITYSCAPES19.classes),
        "palette": [list(c) for c in CITYSCAPES19.palette], "ignore": 255}))
    (folder / "predictions").mkdir()
    for name, classes in predictions.items():
        Image.fromarray(classes).save(folder / "predictions" / f"{name}.png")
    return folder


SHAPE = (24, 32)
L_SHAPE = rectangle(SHAPE, 10, 14, 20, 22) | rectangle(SHAPE, 12, 14, 20, 26)  # box 6x4, 8 pixels outside it


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    prediction = np.full(SHAPE, 13, np.uint8)  # car
    prediction[:, :16] = 0  # road on the left half
    prediction[0, 0] = 255
    return make_request_folder(
        tmp_path,
        images={name: rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8) for name in ("a", "b", "c")},
        predictions={"a": prediction},
        rounds=[("labor-ppl", [Request.point("a", 3, 5), Request.point("a", 20, 9), Request.point("b", 0, 0),
                               Request.point("c", 1, 1)]),
                ("ripu-ra", [Request.region("a", rectangle(SHAPE, 2, 5, 14, 18)), Request.region("a", L_SHAPE)])])


@pytest.fixture
def client(folder):
    with TestClient(create_app(folder), base_url=LOCAL) as c:
        yield c


def ids_of(client, image):
    response = client.get(f"/api/images/{image}/requests")
    assert response.status_code == 200
    return [r["id"] for r in response.json()["requests"]]


def post(client, request, image="a", annotator="alice", **answer):
    return client.post("/api/answers", json={"annotator": annotator, "image": image, "request": request, **answer})


def test_page_meta_image_requests_and_prediction(client, folder):
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="canvas"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "CLASS_KEYS" in client.get("/static/app.js").text and client.get("/static/style.css").status_code == 200
    meta = client.get("/api/meta").json()
    assert meta["classes"] == list(CITYSCAPES19.classes) and meta["ignore"] == 255 and meta["lease_seconds"] == 600
    image = client.get("/api/images/a/file")
    assert image.status_code == 200 and image.content == (folder.parent / "images" / "a.png").read_bytes()
    assert image.headers["cache-control"] == "no-store"

    listing = client.get("/api/images/a/requests").json()
    assert (listing["width"], listing["height"], listing["prediction"]) == (32, 24, True)
    points, regions = listing["requests"][:2], listing["requests"][2:]
    assert [(p["kind"], p["x"], p["y"], p["suggestion"]) for p in points] == [("point", 3, 5, 0), ("point", 20, 9, 13)]
    # 3 x 4 pixels, two columns on road (x 14, 15) and two on car: the tie goes to the lower class id.
    assert (regions[0]["width"], regions[0]["height"], regions[0]["pixels"], regions[0]["suggestion"]) == (4, 3, 12, 0)
    assert regions[1]["mask"] == run_length(L_SHAPE[10:14, 20:26].astype(np.uint8)) and regions[1]["pixels"] == 16
    assert regions[1]["suggestion"] == 13 and all(r["answer"] is None for r in listing["requests"])
    assert client.get("/api/images/b/requests").json()["prediction"] is False

    overlay = np.array(Image.open(io.BytesIO(client.get("/api/images/a/prediction").content)))
    assert overlay.shape == (24, 32, 4)
    assert tuple(overlay[5, 3]) == (*CITYSCAPES19.palette[0], 255) and tuple(overlay[5, 30]) == (0, 0, 142, 255)
    assert overlay[0, 0, 3] == 0  # ignore stays transparent
    assert client.get("/api/images/b/prediction").status_code == 404


def test_answers_land_in_the_store_once(client, folder):
    point, other_point, square, l_shape = ids_of(client, "a")
    assert post(client, point, **{"class": 7}, seconds=1.5).status_code == 201
    assert post(client, point, **{"class": 8}).status_code == 409  # the same annotator again
    second = post(client, point, annotator="bob", **{"class": 8})
    assert second.status_code == 409 and "already answered" in second.json()["detail"]
    assert post(client, other_point, skipped=True, seconds=0.5).status_code == 201
    assert post(client, square, **{"class": 2}, seconds=4.0).status_code == 201
    # A region answered as a class plus brush corrections (image pixels) inside it, one of them left open.
    corrections = [[20, 13, 11], [25, 13, 11], [21, 10, 255]]
    assert post(client, l_shape, annotator="bob", **{"class": 13}, corrections=corrections).status_code == 201

    store = LabelStore(folder / "labels.sqlite")
    label = store.sparse_label("a")
    expected = np.full(SHAPE, 255, np.uint8)
    expected[5, 3] = 7
    expected[2:5, 14:18] = 2
    expected[L_SHAPE] = 13
    expected[13, 20] = expected[13, 25] = 11
    expected[10, 21] = 255
    assert np.array_equal(label, expected)
    answers = {stored.id: answer for stored, answer in store.answers("a")}
    assert answers[point].annotator == "alice" and answers[point].source == "human"
    assert answers[other_point].skipped and answers[l_shape].annotator == "bob"
    assert time.time() - 60 < answers[point].answered <= time.time()

    listing = client.get("/api/images/a/requests").json()["requests"]
    assert listing[0]["answer"]["class"] == 7 and listing[1]["answer"]["skipped"]
    assert listing[3]["answer"]["labels"] == run_length(expected[10:14, 20:26])
    progress = client.get("/api/progress", params={"annotator": "alice"}).json()
    assert progress == {"total": 6, "answered": 4, "skipped": 1, "mean_seconds": pytest.approx(2.75),
                        "images": 3, "open_images": 2, "annotator": "alice", "mine": 3,
                        "my_mean_seconds": pytest.approx(2.75)}


def test_a_region_answered_as_run_lengths(client, folder):
    square = ids_of(client, "a")[2]
    labels = np.array([[0, 0, 1, 1], [0, 0, 1, 255], [2, 2, 2, 2]], np.uint8)
    response = post(client, square, labels=run_length(labels))
    assert response.status_code == 201, response.text
    assert np.array_equal(LabelStore(folder / "labels.sqlite").sparse_label("a")[2:5, 14:18], labels)


@pytest.mark.parametrize("answer, status, message", [
    ({"class": 19}, 422, "class ids must be in 0..18"),
    ({"class": 256}, 422, "less than or equal to 255"),
    ({"class": -1}, 422, "greater than or equal to 0"),
    ({"class": "3"}, 422, "valid integer"),
    ({"class": 3.0}, 422, "valid integer"),
    ({"class": 255}, 422, "labels no pixel"),
    ({"corrections": [[21, 10, 5]]}, 422, "is a point"),
    ({"labels": [[5, 1]]}, 422, "is a point"),
    ({"skipped": True, "class": 3}, 422, "skipped answer carries no class"),
    ({}, 422, "needs class, labels or corrections"),
    ({"class": 3, "path": "/etc/passwd"}, 422, "Extra inputs"),
    ({"class": 3, "seconds": -1}, 422, "greater than or equal to 0"),
])
def test_invalid_point_answers_are_refused(client, folder, answer, status, message):
    point = ids_of(client, "a")[0]
    response = post(client, point, **answer)
    assert response.status_code == status and message in json.dumps(response.json()["detail"])
    assert LabelStore(folder / "labels.sqlite").answers() == []


@pytest.mark.parametrize("answer, message", [
    ({"class": 3, "corrections": [[19, 13, 2]]}, "pixel (19, 13) is not part of request"),   # left of the box
    ({"class": 3, "corrections": [[23, 10, 2]]}, "pixel (23, 10) is not part of request"),   # in the box, not asked
    ({"class": 3, "corrections": [[20, 13, 2], [26, 13, 2]]}, "pixel (26, 13)"),            # right of the box
    ({"corrections": [[20, 13, 19]]}, "class ids must be in 0..18"),
    ({"labels": [[3, 23]]}, "cover 23 pixels, its box 6x4 has 24"),
    ({"labels": [[3, 24]]}, "labels outside the requested pixels"),
    ({"labels": [[3, -24]]}, "greater than or equal to 1"),
    ({"labels": [[3, 24]], "class": 3}, "without class or corrections"),
    ({"labels": [[255, 24]]}, "labels no pixel"),
    ({"corrections": [[20, 13, 255]]}, "labels no pixel"),
])
def test_invalid_region_answers_are_refused(client, folder, answer, message):
    l_shape = ids_of(client, "a")[3]
    response = post(client, l_shape, **answer)
    assert response.status_code == 422 and message in json.dumps(response.json()["detail"]), response.text
    assert LabelStore(folder / "labels.sqlite").answers() == []


def test_unknown_and_mismatched_ids_are_refused(client, folder):
    point_of_b = ids_of(client, "b")[0]
    point_of_a = ids_of(client, "a")[0]
    for path in ("/api/images/zz/file", "/api/images/zz/requests", "/api/images/zz/prediction"):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["detail"] == "unknown image 'zz'"
    response = post(client, point_of_b, image="a", **{"class": 1})
    assert response.status_code == 422 and "belongs to image 'b', not 'a'" in response.json()["detail"]
    assert post(client, point_of_a, image="zz", **{"class": 1}).status_code == 404
    assert post(client, 999, **{"class": 1}).json()["detail"] == "no request 999"
    assert post(client, 2**63, **{"class": 1}).status_code == 422  # too large for SQLite: refused, not a crash
    assert post(client, point_of_a, annotator="bad name!", **{"class": 1}).status_code == 422
    assert client.delete(f"/api/answers/{2**63}", params={"annotator": "alice"}).status_code == 422
    assert client.delete("/api/answers/999", params={"annotator": "alice"}).status_code == 404
    assert client.delete(f"/api/answers/{point_of_a}", params={"annotator": "../x"}).status_code == 422
    malformed = client.post("/api/answers", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 422
    as_text = client.post("/api/answers", content=json.dumps({"annotator": "alice", "image": "a",
                                                                "request": point_of_a, "class": 1}),
                          headers={"content-type": "text/plain"})  # what a cross-site form could send
    assert as_text.status_code == 422
    huge = client.post("/api/answers", content=b" " * (MAX_BODY_BYTES + 1),
                       headers={"content-type": "application/json"})
    assert huge.status_code == 413
    assert LabelStore(folder / "labels.sqlite").answers() == []


def test_file_paths_never_come_from_the_client(client, folder):
    secret = folder / "meta.json"
    for path in (f"/api/images/{secret}/file", "/api/images/..%2Fmeta.json/file", "/api/images/../meta/file",
                 "/api/images/%2E%2E%2Fimages%2Fa/file", "/static/..%2Flabels.sqlite", "/static/../server.py"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b'"space"' not in response.content and b"SQLite" not in response.content
    # Even a registered image whose name climbs out of predictions/ gets no file from outside it.
    escaping = folder.parent / "images" / "a.png"
    LabelStore(folder / "labels.sqlite").add_images({"../escape": (24, 32, escaping)})
    Image.fromarray(np.zeros(SHAPE, np.uint8)).save(folder / "escape.png")
    assert client.get("/api/images/..%2Fescape/prediction").json()["detail"] == "no prediction for image '../escape'"
    assert client.get("/api/images/..%2Fescape/file").content == escaping.read_bytes()  # the store's path


def test_token_and_host_checks(folder):
    with TestClient(create_app(folder, token="s3cret-token"), base_url="http://annotator.example:8000") as c:
        assert c.get("/").status_code == 200  # the page itself holds nothing; its API calls need the token
        assert c.get("/api/meta").status_code == 401
        response = c.get("/api/meta", headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401 and "token" in response.json()["detail"]
        assert c.get("/api/meta", params={"token": "s3cret-tok"}).status_code == 401
        assert c.get("/api/meta", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert c.get("/api/images/a/file", params={"token": "s3cret-token"}).status_code == 200
        answer = {"annotator": "x", "image": "a", "request": 1, "class": 1}
        assert c.post("/api/answers", json=answer).status_code == 401
        assert c.post("/api/export").status_code == 401
        assert not (folder / "export").exists()
    # Without a token only loopback names are answered: no DNS rebinding from a page the labeller visits.
    with TestClient(create_app(folder), base_url="http://evil.example") as c:
        response = c.get("/api/meta")
        assert response.status_code == 400 and "loopback" in response.json()["detail"]
    for host in ("http://localhost:8000", "http://[::1]:8000", LOCAL):
        with TestClient(create_app(folder), base_url=host) as c:
            assert c.get("/api/meta").status_code == 200, host
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


def test_undo_only_the_authors_answer(client, folder):
    point = ids_of(client, "a")[0]
    assert post(client, point, **{"class": 4}).status_code == 201
    response = client.delete(f"/api/answers/{point}", params={"annotator": "bob"})
    assert response.status_code == 404 and "no answer of 'bob'" in response.json()["detail"]
    assert client.delete(f"/api/answers/{point}", params={"annotator": "alice"}).json() == {"request": point,
                                                                                          "image": "a"}
    assert client.delete(f"/api/answers/{point}", params={"annotator": "alice"}).status_code == 404
    assert client.get("/api/images/a/requests").json()["requests"][0]["answer"] is None
    assert post(client, point, annotator="bob", **{"class": 5}).status_code == 201
    assert LabelStore(folder / "labels.sqlite").sparse_label("a")[5, 3] == 5


def test_leases_give_annotators_different_images(folder):
    with TestClient(create_app(folder, lease_seconds=0.5), base_url=LOCAL) as c:
        def lease(name):
            return c.post("/api/next", json={"annotator": name}).json()["image"]

        assert lease("alice") == "a" and lease("bob") == "b" and lease("carol") == "c"
        assert lease("dave") is None
        assert lease("alice") == "a"  # renewed, not handed to someone else
        c.post("/api/release", json={"annotator": "carol"})
        assert lease("dave") == "c"
        (point_of_b,) = ids_of(c, "b")
        assert post(c, point_of_b, image="b", annotator="bob", **{"class": 1}).status_code == 201
        assert lease("bob") is None  # b is done, a and c are held
        time.sleep(0.6)  # alice's and dave's leases lapse
        assert lease("erin") == "a"
        assert c.post("/api/next", json={"annotator": ""}).status_code == 422


def test_export_writes_the_stores_exchange_format(client, folder):
    point, _, square, _ = ids_of(client, "a")
    post(client, point, **{"class": 7})
    post(client, square, **{"class": 2})
    response = client.post("/api/export")
    assert response.status_code == 200 and response.json() == {"folder": "export", "answers": 2, "masks": 3}
    out = folder / "export"
    records = json.loads((out / "answers.json").read_text())
    assert [(r["request"], r["kind"], r.get("class"), r["annotator"], r["source"]) for r in records] == [
        (point, "point", 7, "alice", "human"), (square, "region", None, "alice", "human")]
    assert records[1]["labels"] == [[2, 12]]
    mask = np.array(Image.open(out / "masks" / "a.png"))
    assert mask[5, 3] == 7 and (mask[2:5, 14:18] == 2).all() and (mask != 255).sum() == 13


def test_a_folder_that_is_not_a_request_folder_is_a_data_error(tmp_path, folder):
    with pytest.raises(DataError, match="no labels.sqlite here"):
        create_app(tmp_path)
    assert not (tmp_path / "labels.sqlite").exists()  # no empty store made at a mistyped path
    (folder / "meta.json").write_text(json.dumps({"classes": ["road"], "palette": [[1, 2]]}))
    with pytest.raises(DataError, match="'palette' must hold one"):
        create_app(folder)
    cli = typer.Typer()
    cli.add_typer(annotate_app, name="annotate")  # as the main CLI registers it
    result = CliRunner().invoke(cli, ["annotate", "serve", str(tmp_path / "missing")])
    assert isinstance(result.exception, DataError)
    help_text = CliRunner().invoke(cli, ["annotate", "serve", "--help"]).output
    assert "--host" in help_text and "--lease-seconds" in help_text and "127.0.0.1" in help_text


# ---- nothing wrong gets in silently --------------------------------------------------------------------------


def raw_post(client, body: bytes | str, path="/api/answers"):
    return client.post(path, content=body, headers={"content-type": "application/json"})


def test_run_lengths_are_counted_against_the_box_before_any_is_validated(client, folder):
    square = ids_of(client, "a")[2]  # a 4x3 box, every pixel requested
    store = LabelStore(folder / "labels.sqlite")
    # A run covers at least one pixel: zero-length runs are refused, not stored.
    response = post(client, square, labels=[[2, 0], [2, 12]])
    assert response.status_code == 422 and "greater than or equal to 1" in response.text
    # A box of 12 pixels takes at most 12 runs: the 13th is refused before any run is looked at (the bad one
    # in the list is never reported).
    response = post(client, square, labels=[[2, 1]] * 12 + [["x", 1]])
    assert response.status_code == 422
    expected = "13 runs for a box of 12 pixels: a box takes at most one run per pixel"
    assert [e["msg"] for e in response.json()["detail"]] == [expected]
    # A flood of zero-length runs under the body limit: one error, no pass over the runs.
    flood = json.dumps({"annotator": "mallory", "image": "a", "request": square,
                        "labels": [[0, 0]] * 150_000 + [[2, 12]]}, separators=(",", ":"))
    assert len(flood) < MAX_BODY_BYTES
    response = raw_post(client, flood)
    assert response.status_code == 422 and len(response.json()["detail"]) == 1
    assert "150001 runs for a box of 12 pixels" in response.text
    # Over the body limit: 413 before the body is read.
    huge = json.dumps({"annotator": "mallory", "image": "a", "request": square,
                       "labels": [[0, 0]] * 600_000 + [[2, 12]]}, separators=(",", ":"))
    response = raw_post(client, huge)
    assert response.status_code == 413 and f"at most {MAX_BODY_BYTES} bytes" in response.json()["detail"]
    # Runs for an unknown request, or without a valid request id, are not looked at either.
    response = post(client, 999, labels=[[0, 0]] * 1000)
    assert response.status_code == 404 and response.json()["detail"] == "no request 999"
    response = post(client, "x", labels=[[0, 0]] * 1000)
    assert response.status_code == 422 and len(response.json()["detail"]) == 2 and "valid request id" in response.text
    assert store.answers() == []
    # Within the box's budget the answer is stored as before: one run per pixel is the most there can be.
    labels = np.array([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]], np.uint8)
    assert post(client, square, labels=run_length(labels)).status_code == 201
    assert np.array_equal(store.sparse_label("a")[2:5, 14:18], labels)


@pytest.mark.parametrize("path, body", [
    ("/api/answers", '{"annotator": "alice", "image": "a", "request": 1, "class": 3, "seconds": NaN}'),
    ("/api/answers", '{"annotator": "alice", "image": "a", "request": 1, "class": 3, "seconds": Infinity}'),
    ("/api/answers", '{"annotator": "alice", "image": "a", "request": 1, "class": 3, "seconds": -Infinity}'),
    ("/api/answers", '{"annotator": "alice", "image": "a", "request": 1, "class": 3, "seconds": 1e999}'),
    ("/api/answers", '{"annotator": "alice", "image": "a", "request": 1, "class": NaN}'),
    ("/api/answers", '{"annotator": "alice", "image": "a", "request": 5, "labels": [[2, NaN]]}'),
    ("/api/next", '{"annotator": NaN}'),
    ("/api/release", '{"annotator": Infinity}'),
])
def test_non_finite_numbers_are_a_422_not_a_500(client, folder, path, body):
    response = raw_post(client, body, path)
    assert response.status_code == 422, response.text
    assert "is not a finite number" in response.json()["detail"][0]["msg"]
    assert LabelStore(folder / "labels.sqlite").answers() == []


def test_validation_errors_never_echo_the_input(client):
    point = ids_of(client, "a")[0]
    response = post(client, point, **{"class": "x" * 10_000}, corrections=[[1, 2, 3]] * 100)
    assert response.status_code == 422 and len(response.content) < 5_000
    assert all(set(error) == {"type", "loc", "msg"} for error in response.json()["detail"])
    many = post(client, point, corrections=[["x", "y", "z"]] * 100)  # 300 errors: the first 20 and a count
    detail = many.json()["detail"]
    assert len(detail) == 21 and detail[-1]["msg"] == "and 280 more errors"


def test_undo_is_tied_to_the_session_that_answered(folder):
    app = create_app(folder)
    with TestClient(app, base_url=LOCAL) as alice, TestClient(app, base_url=LOCAL) as mallory:
        point, other_point, square, _ = ids_of(alice, "a")
        answered = post(alice, point, **{"class": 4})
        assert answered.status_code == 201
        # Another client naming alice cannot undo her answers, with its own session, none, or a made-up one.
        response = mallory.delete(f"/api/answers/{point}", params={"annotator": "alice"})
        assert response.status_code == 403 and "another session" in response.json()["detail"]
        cookie = answered.headers["set-cookie"].lower()
        assert "syn2real_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert "path=/api" in cookie
        assert "set-cookie" not in post(alice, other_point, skipped=True).headers  # the same session from now on
        mallory.cookies.set("syn2real_session", "A" * 43)
        assert mallory.delete(f"/api/answers/{point}", params={"annotator": "alice"}).status_code == 403
        mallory.cookies.clear()
        assert mallory.delete(f"/api/answers/{other_point}", params={"annotator": "alice"}).status_code == 403
        assert len(LabelStore(folder / "labels.sqlite").answers("a")) == 2

        # Alice can; then mallory answers the request, and alice cannot undo mallory's answer.
        assert alice.delete(f"/api/answers/{point}", params={"annotator": "alice"}).status_code == 200
        assert post(mallory, point, annotator="alice", **{"class": 9}).status_code == 201
        assert alice.delete(f"/api/answers/{point}", params={"annotator": "alice"}).status_code == 403
        assert mallory.delete(f"/api/answers/{point}", params={"annotator": "alice"}).status_code == 200
        session = alice.cookies["syn2real_session"]

    # The session outlives the server: a restarted app still lets alice undo, and only her.
    with TestClient(create_app(folder), base_url=LOCAL, cookies={"syn2real_session": session}) as alice:
        assert alice.delete(f"/api/answers/{other_point}", params={"annotator": "alice"}).status_code == 200
    # Answers not given through the app (the oracle, an import) cannot be undone through it.
    LabelStore(folder / "labels.sqlite").answer(square, 2, "oracle", source="oracle")
    with TestClient(create_app(folder), base_url=LOCAL) as anyone:
        response = anyone.delete(f"/api/answers/{square}", params={"annotator": "oracle"})
        assert response.status_code == 404 and "no answer of 'oracle'" in response.json()["detail"]
    assert [stored.id for stored, _ in LabelStore(folder / "labels.sqlite").answers()] == [square]


LOOPBACK_HOSTS = ["localhost", "LocalHost", "localhost:8000", "127.0.0.1", "127.0.0.1:8000", "127.8.9.10:1",
                  "[::1]", "[::1]:8000", "[0:0:0:0:0:0:0:1]:65535"]
REFUSED_HOSTS = ["[::1].evil.example", "[::1]evil.example", "[::1]:8000.evil.example", "[::1]:8000@evil",
                 "localhost.evil.example", "evil.localhost.example", "127.0.0.1@evil", "127.0.0.1:8000@evil",
                 "evil@127.0.0.1", "", " ", "evil.example", "localhost:", "localhost:99999", "localhost:80:80",
                 "127.0.0.1:abc", "127.0.0.1:-1", "[::1", "::1", "[::1]:", "[127.0.0.1]", "[::1%lo]", "127.1",
                 "0x7f000001", "2130706433", "localhost.", "local host", "localhost:8000/x", "localhost\t",
                 "127.0.0.1 :8000", "[[::1]]"]


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_loopback_host_headers_are_answered(client, host):
    assert client.get("/api/meta", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_other_host_headers_are_refused(client, host):
    response = client.get("/api/meta", headers={"host": host})
    assert response.status_code == 400 and "loopback" in response.json()["detail"]


def test_host_headers_are_parsed_exactly(client):
    # One Host header, not two that disagree.
    response = client.get("/api/meta", headers=[("host", "evil.example"), ("host", "localhost")])
    assert response.status_code == 400
    assert parse_host("localhost:8000") == ("localhost", 8000) and parse_host("[::1]") == ("::1", None)
    assert parse_host("[0:0::1]:80") == ("::1", 80) and parse_host("example.org") == ("example.org", None)
    assert all(parse_host(host) is None for host in ("[::1].evil.example", "127.0.0.1@evil", "localhost:", ""))
