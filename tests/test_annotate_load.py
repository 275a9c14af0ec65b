"""A bounded load test on loopback: 20 concurrent clients x 500 answers against a real uvicorn server.

Every request is answered by two clients at once, so each answer races another: exactly one of the two is
stored (201), the other is told it came second (409), and nothing is lost or stored twice. Malformed and
out-of-set payloads mixed in get 4xx, and the server keeps serving. Everything has a timeout: the test stops by
itself."""

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from conftest import serve_on_loopback
from test_annotate_api import make_request_folder

from syn2real.active.requests import Request
from syn2real.active.store import LabelStore
from syn2real.annotate.server import create_app

CLIENTS, ANSWERS_PER_CLIENT = 20, 500
IMAGES, SIDE = 10, 25  # 10 images of 25x25 = 625 pixels, 500 point requests each: 5000 requests
BAD_EVERY = 50  # one bad payload per 50 answers: 10 per client
DEADLINE_SECONDS = 240  # a hard stop far above the expected time, so a hung server fails instead of hanging

pytestmark = pytest.mark.slow


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"img{i:02d}" for i in range(IMAGES)]
    pixels = [(x, y) for y in range(SIDE) for x in range(SIDE)][:CLIENTS * ANSWERS_PER_CLIENT // 2 // IMAGES]
    requests = [Request.point(name, x, y) for name in names for x, y in pixels]
    return make_request_folder(tmp_path, {n: rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8) for n in names},
                               {}, [("random", requests)])


@pytest.fixture
def server_url(folder):
    with serve_on_loopback(create_app(folder), backlog=256) as url:
        yield url


def bad_payloads(request_of_a, request_of_b):
    """(what is sent, expected status): malformed, out of set, and unknown."""
    good = {"annotator": "mallory", "image": "img00", "request": request_of_a, "class": 1}
    return [
        (json.dumps({**good, "class": 19}), 422),                          # no such class
        (json.dumps({**good, "request": request_of_b}), 422),              # a request of another image
        (json.dumps({**good, "class": None, "corrections": [[1, 1, 2]]}), 422),  # pixels on a point
        (json.dumps({**good, "image": "../labels"}), 404),                 # unknown image
        (json.dumps({**good, "request": 10**9}), 404),                     # unknown request
        (json.dumps({**good, "annotator": "<script>"}), 422),
        (json.dumps({**good, "skipped": "yes"}), 422),
        (json.dumps([good]), 422),
        ('{"annotator": "mallory", "image": "img00", "request": ', 422),   # cut off
        ("", 422),
    ]


def test_20_clients_x_500_answers_each_stored_exactly_once(folder, server_url):
    store = LabelStore(folder / "labels.sqlite")
    ids = [s.id for s in store.requests()]
    first_of_b = store.requests(image="img01")[0].id
    bad = bad_payloads(ids[0], first_of_b)
    assert len(ids) * 2 == CLIENTS * ANSWERS_PER_CLIENT
    # Clients 2k and 2k+1 answer the same 500 requests, in opposite orders and with different classes.
    block = ANSWERS_PER_CLIENT
    plans = [ids[(c // 2) * block:(c // 2 + 1) * block][::1 if c % 2 == 0 else -1] for c in range(CLIENTS)]
    results = [[] for _ in range(CLIENTS)]  # (request, status) per answer
    refused = [[] for _ in range(CLIENTS)]  # (expected, got) per bad payload
    image_of = {s.id: s.image for s in store.requests()}

    def client(c):
        with httpx.Client(base_url=server_url, timeout=30) as http:
            for k, request in enumerate(plans[c]):
                response = http.post("/api/answers", json={"annotator": f"client{c:02d}", "image": image_of[request],
                                                           "request": request, "class": c % 19, "seconds": 1.0})
                results[c].append((request, response.status_code))
                if k % BAD_EVERY == 0:
                    content, expected = bad[(k // BAD_EVERY) % len(bad)]
                    got = http.post("/api/answers", content=content, headers={"content-type": "application/json"})
                    refused[c].append((expected, got.status_code))

    pool = ThreadPoolExecutor(max_workers=CLIENTS)
    start = time.monotonic()
    try:
        futures = [pool.submit(client, c) for c in range(CLIENTS)]
        for future in futures:  # re-raises a client's error; a hung server fails at the deadline
            future.result(timeout=max(0.0, DEADLINE_SECONDS - (time.monotonic() - start)))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    seconds = time.monotonic() - start
    print(f"\n{CLIENTS * ANSWERS_PER_CLIENT} answers from {CLIENTS} clients in {seconds:.1f} s "
          f"({CLIENTS * ANSWERS_PER_CLIENT / seconds:.0f}/s)")

    statuses = Counter(status for per_client in results for _, status in per_client)
    assert statuses == {201: len(ids), 409: len(ids)}
    winners = {request: c for c in range(CLIENTS) for request, status in results[c] if status == 201}
    assert sorted(winners) == ids  # every request won exactly once
    answers = store.answers()
    assert len(answers) == len(ids) and len({stored.id for stored, _ in answers}) == len(ids)
    for stored, answer in answers:
        c = winners[stored.id]
        assert answer.annotator == f"client{c:02d}" and int(answer.labels[0, 0]) == c % 19
    assert all(expected == got for per_client in refused for expected, got in per_client), refused
    assert sum(len(r) for r in refused) == CLIENTS * ANSWERS_PER_CLIENT // BAD_EVERY

    with httpx.Client(base_url=server_url, timeout=10) as http:  # still serving
        progress = http.get("/api/progress").json()
        assert (progress["answered"], progress["total"], progress["open_images"]) == (len(ids), len(ids), 0)
        assert http.get("/api/images/img00/requests").status_code == 200
