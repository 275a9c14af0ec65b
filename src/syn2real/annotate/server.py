"""The annotator's web app: one page (static/) and a small JSON API over a request folder.

A request folder (written by `syn2real select`) holds `labels.sqlite` (the label store), `meta.json`
({"space", "classes", "palette", "ignore"}) and optionally `predictions/<image>.png` (the model's class ids at
the image's size). All state lives in the store, so answers outlive the server and several annotators (or
servers) can work on one folder at once; the store keeps each answer exactly once.

API (JSON). When the app has a token every /api call must carry it, as `Authorization: Bearer <token>` or
`?token=<token>`:
    GET    /api/meta                           classes, palette, ignore id, lease seconds
    POST   /api/next     {annotator}           lease an image with open requests: {"image": name or null}
    POST   /api/release  {annotator}           hand the leased image back
    GET    /api/images/{name}/file             the image (its file path comes from the store, never the client)
    GET    /api/images/{name}/requests         its requests, their answers and the prediction's suggestion
    GET    /api/images/{name}/prediction       the prediction as an RGBA overlay PNG (404 when there is none)
    POST   /api/answers  {annotator, image, request, class | labels | corrections, skipped, seconds}
    DELETE /api/answers/{request}?annotator=   undo: delete that annotator's answer
    GET    /api/progress[?annotator=]          answered / total, skipped, mean seconds per label
    POST   /api/export                         REQUEST_DIR/export/: masks/*.png + answers.json (the store's format)
Errors come as {"detail": message}: 400 bad Host header, 401 token, 404 unknown image or request, 409 already
answered, 411/413 body without length or too large, 422 invalid payload.
"""

from __future__ import annotations

import io
import ipaddress
import json
import secrets
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from fastapi import Path as PathParam
from fastapi import Request as HttpRequest
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from syn2real.active.store import Answer, LabelStore, StoredRequest, from_run_length, run_length
from syn2real.errors import DataError
from syn2real.labels import IGNORE

STATIC = Path(__file__).with_name("static")
#: A brushed region of 1 % of a 2048x1024 image is about 0.3 MB as corrections, far less as run lengths.
MAX_BODY_BYTES = 4 << 20
#: Image files a browser shows as they are; others are sent as PNG.
BROWSER_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}
#: SQLite integers are 64-bit: larger ids would be a 500 instead of a 404.
MAX_ID = 2**62
MAX_COORDINATE = 1 << 16

ANNOTATOR_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
AnnotatorName = Annotated[str, Field(pattern=ANNOTATOR_PATTERN)]
AnnotatorQuery = Annotated[str, Query(pattern=ANNOTATOR_PATTERN)]
ClassValue = Annotated[StrictInt, Field(ge=0, le=IGNORE)]
Coordinate = Annotated[StrictInt, Field(ge=0, lt=MAX_COORDINATE)]


class AnnotatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotator: AnnotatorName


class AnswerIn(BaseModel):
    """One answer. A point takes `class`. A region takes `class` (all its pixels), `labels` (run-length
    [value, count] pairs over its box, row by row, 255 outside the region or where left open), or `corrections`
    ([x, y, class] in image pixels, each inside the region) over an optional `class`. `skipped` (unsure) takes
    none of them."""

    model_config = ConfigDict(extra="forbid")
    annotator: AnnotatorName
    image: str = Field(min_length=1, max_length=512)
    request: StrictInt = Field(ge=0, le=MAX_ID)
    class_id: ClassValue | None = Field(None, alias="class")
    labels: list[tuple[ClassValue, Annotated[StrictInt, Field(ge=0, le=MAX_COORDINATE**2)]]] | None = None
    corrections: list[tuple[Coordinate, Coordinate, ClassValue]] | None = None
    skipped: StrictBool = False
    seconds: float | None = Field(None, ge=0, le=86400, allow_inf_nan=False)

    @model_validator(mode="after")
    def one_kind_of_answer(self) -> AnswerIn:
        given = [name for name, value in (("class", self.class_id), ("labels", self.labels),
                                          ("corrections", self.corrections)) if value is not None]
        if self.skipped and given:
            raise ValueError(f"a skipped answer carries no {' or '.join(given)}")
        if self.labels is not None and len(given) > 1:
            raise ValueError("labels are a whole answer: send them without class or corrections")
        if not self.skipped and not given:
            raise ValueError("an answer needs class, labels or corrections (or skipped: true when unsure)")
        return self


def read_meta(request_dir: Path) -> dict:
    """The request folder's label space: {"space", "classes", "palette", "ignore"}, checked."""
    path = request_dir / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable request-folder meta file ({e})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object with classes and palette")
    classes, palette = meta.get("classes"), meta.get("palette")
    if (not isinstance(classes, list) or not 0 < len(classes) < IGNORE
            or not all(isinstance(name, str) for name in classes)):
        raise DataError(f"{path}: 'classes' must be a list of 1..{IGNORE - 1} class names")
    if (not isinstance(palette, list) or len(palette) != len(classes)
            or not all(isinstance(c, list) and len(c) == 3 and all(type(v) is int and 0 <= v <= 255 for v in c)
                       for c in palette)):
        raise DataError(f"{path}: 'palette' must hold one [r, g, b] (0..255) per class ({len(classes)})")
    if meta.get("ignore", IGNORE) != IGNORE:
        raise DataError(f"{path}: 'ignore' must be {IGNORE}, the label store's ignore id")
    return {"space": meta.get("space"), "classes": classes, "palette": palette, "ignore": IGNORE}


def open_store(request_dir: Path) -> LabelStore:
    path = request_dir / "labels.sqlite"
    if not path.is_file():  # LabelStore would create an empty store at a mistyped folder
        raise DataError(f"{request_dir}: no labels.sqlite here; is it a request folder written by `syn2real select`?")
    return LabelStore(path)


def is_loopback(host: str) -> bool:
    """Whether `host` (a bind address or a Host header's name) only reaches this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The name in a Host header: 'localhost:8000' -> 'localhost', '[::1]:8000' -> '::1'."""
    if header.startswith("["):
        return header[1:header.find("]")]
    return header.rsplit(":", 1)[0]


class _Guard:
    """Checks every HTTP request before any route runs, and marks every response.

    Without a token the app only answers Host headers naming this machine: otherwise a web page the labeller
    visits could reach the loopback server through DNS rebinding. Bodies must declare a length of at most
    MAX_BODY_BYTES. Responses keep the page's scripts its own (CSP), send no Referer (the page's address may
    hold the token) and API answers are never cached."""

    SECURITY_HEADERS = (
        (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app, check_host: bool):
        self.app, self.check_host = app, check_host

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.check_host and not is_loopback(_host_name(headers.get(b"host", b"").decode("latin-1"))):
            return await _send_error(send, 400, "the server is bound to loopback: address it as 127.0.0.1 or "
                                                "localhost (or restart it with --host and use its token)")
        if b"transfer-encoding" in headers:
            return await _send_error(send, 411, "send the body with a Content-Length")
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return await _send_error(send, 413, f"the body must be at most {MAX_BODY_BYTES} bytes")
        extra = list(self.SECURITY_HEADERS)
        if scope["path"].startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))

        async def send_marked(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_marked)


async def _send_error(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _token_dependency(token: str | None):
    def check_token(request: HttpRequest) -> None:
        if token is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else request.query_params.get("token", "")
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong token: send the token `syn2real annotate serve` printed, as "
                                     "'Authorization: Bearer <token>' or ?token=<token>",
                                headers={"WWW-Authenticate": "Bearer"})

    return check_token


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def create_app(request_dir: str | Path, token: str | None = None, lease_seconds: float = 600.0) -> FastAPI:
    """The annotator app over `request_dir`. With a `token` every API call must carry it; without one the app
    only answers requests addressed to a loopback name (127.0.0.1, localhost, ::1)."""
    request_dir = Path(request_dir).expanduser().resolve()
    store = open_store(request_dir)
    meta = read_meta(request_dir)
    num_classes = len(meta["classes"])
    palette = np.zeros((256, 4), np.uint8)  # RGBA; ignore and unknown ids stay transparent
    palette[:num_classes, :3] = meta["palette"]
    palette[:num_classes, 3] = 255
    predictions_dir = request_dir / "predictions"

    def image_size(name: str) -> tuple[int, int]:
        try:
            return store.image_size(name)
        except DataError:
            raise HTTPException(404, f"unknown image {name!r}") from None

    def stored_request(request_id: int) -> StoredRequest:
        try:
            return store.request(request_id)
        except DataError:
            raise HTTPException(404, f"no request {request_id}") from None

    def prediction(name: str, height: int, width: int) -> np.ndarray | None:
        """The prediction's class ids for a registered image, None when the folder has none."""
        path = (predictions_dir / f"{name}.png").resolve()
        if not path.is_relative_to(predictions_dir.resolve()) or not path.is_file():
            return None
        try:
            with Image.open(path) as image:
                if image.mode not in ("L", "P"):
                    raise DataError(f"prediction of {name!r} is a {image.mode} image, not class ids (L or P)")
                classes = np.asarray(image)
        except OSError as e:
            raise DataError(f"prediction of {name!r} is unreadable ({e})") from None
        if classes.shape != (height, width):
            raise DataError(f"prediction of {name!r} is {classes.shape[1]}x{classes.shape[0]}, "
                            f"the image {width}x{height}")
        return classes

    app = FastAPI(title="syn2real annotator", docs_url=None, redoc_url=None, openapi_url=None)
    api = APIRouter(prefix="/api", dependencies=[Depends(_token_dependency(token))])

    @api.get("/meta")
    def get_meta() -> dict:
        return {**meta, "lease_seconds": lease_seconds}

    @api.post("/next")
    def next_image(body: AnnotatorIn) -> dict:
        return {"image": store.lease(body.annotator, lease_seconds)}

    @api.post("/release", status_code=204)
    def release(body: AnnotatorIn) -> Response:
        store.release(body.annotator)
        return Response(status_code=204)

    @api.get("/images/{name:path}/file")
    def image_file(name: str) -> Response:
        image_size(name)
        path = store.image_path(name)
        if not path.is_file():
            raise HTTPException(404, f"the file of image {name!r} is missing on the server")
        if path.suffix.lower() in BROWSER_IMAGE_SUFFIXES:
            return FileResponse(path)
        with Image.open(path) as image:
            return Response(_png(np.asarray(image.convert("RGB"))), media_type="image/png")

    @api.get("/images/{name:path}/requests")
    def image_requests(name: str) -> dict:
        height, width = image_size(name)
        try:
            classes, problem = prediction(name, height, width), None
        except DataError as e:
            classes, problem = None, str(e)
        answers = {stored.id: answer for stored, answer in store.answers(name)}
        return {"image": name, "width": width, "height": height, "prediction": classes is not None,
                "prediction_problem": problem,
                "requests": [_request_json(s, answers.get(s.id), classes, num_classes)
                             for s in store.requests(image=name)]}

    @api.get("/images/{name:path}/prediction")
    def image_prediction(name: str) -> Response:
        height, width = image_size(name)
        try:
            classes = prediction(name, height, width)
        except DataError as e:
            raise HTTPException(404, str(e)) from None
        if classes is None:
            raise HTTPException(404, f"no prediction for image {name!r}")
        return Response(_png(palette[classes]), media_type="image/png")

    @api.post("/answers", status_code=201)
    def post_answer(body: AnswerIn) -> dict:
        image_size(body.image)
        stored = stored_request(body.request)
        if stored.image != body.image:
            raise HTTPException(422, f"request {stored.id} belongs to image {stored.image!r}, not {body.image!r}")
        labels = _answer_labels(body, stored)
        try:
            new = store.answer(stored.id, labels, body.annotator, skipped=body.skipped, seconds=body.seconds,
                               num_classes=num_classes)
        except DataError as e:
            raise HTTPException(422, str(e)) from None
        if not new:
            raise HTTPException(409, f"request {stored.id} is already answered (undo that answer to change it)")
        return {"request": stored.id, "image": stored.image, "annotator": body.annotator}

    @api.delete("/answers/{request_id}")
    def undo_answer(request_id: Annotated[int, PathParam(ge=0, le=MAX_ID)], annotator: AnnotatorQuery) -> dict:
        stored = stored_request(request_id)
        if not store.retract(stored.id, annotator):
            raise HTTPException(404, f"request {stored.id} has no answer of {annotator!r} to undo")
        return {"request": stored.id, "image": stored.image}

    @api.get("/progress")
    def progress(annotator: AnnotatorQuery | None = None) -> dict:
        return store.progress(annotator)

    @api.post("/export")
    def export() -> dict:
        out = store.export(request_dir / "export")
        answers = json.loads((out / "answers.json").read_text())
        return {"folder": out.name, "answers": len(answers), "masks": len(list((out / "masks").glob("*.png")))}

    app.include_router(api)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(_Guard, check_host=token is None)
    return app


def _suggestion(stored: StoredRequest, classes: np.ndarray | None, num_classes: int) -> int | None:
    """The prediction's most frequent class over the requested pixels."""
    if classes is None:
        return None
    r = stored.request
    h, w = r.mask.shape
    inside = classes[r.y:r.y + h, r.x:r.x + w][r.mask]
    inside = inside[inside < num_classes]
    return int(np.bincount(inside).argmax()) if inside.size else None


def _request_json(stored: StoredRequest, answer: Answer | None, classes: np.ndarray | None,
                  num_classes: int) -> dict:
    r = stored.request
    h, w = r.mask.shape
    item = {"id": stored.id, "round": stored.round, "kind": r.kind, "x": r.x, "y": r.y, "width": w, "height": h,
            "pixels": r.n_pixels, "suggestion": _suggestion(stored, classes, num_classes), "answer": None}
    if r.kind == "region":
        item["mask"] = run_length(r.mask.astype(np.uint8))
    if answer is not None:
        given = {"skipped": answer.skipped, "annotator": answer.annotator, "source": answer.source,
                 "answered": answer.answered}
        if not answer.skipped and r.kind == "point":
            given["class"] = int(answer.labels[0, 0])
        elif not answer.skipped:
            given["labels"] = run_length(answer.labels)
        item["answer"] = given
    return item


def _answer_labels(body: AnswerIn, stored: StoredRequest) -> np.ndarray | None:
    """The answer as labels over the request's box (the store checks the class ids), or a 422."""
    if body.skipped:
        return None
    r = stored.request
    h, w = r.mask.shape
    if r.kind == "point" and body.class_id is None:
        raise HTTPException(422, f"request {stored.id} is a point: answer it with a class")
    if body.labels is not None:
        covered = sum(count for _, count in body.labels)
        if covered != h * w:
            raise HTTPException(422, f"labels of request {stored.id} cover {covered} pixels, its box {w}x{h} "
                                     f"has {h * w}")
        labels = from_run_length(body.labels, (h, w))
    else:
        labels = np.where(r.mask, IGNORE if body.class_id is None else body.class_id, IGNORE)
        if body.corrections:
            if r.kind == "point":
                raise HTTPException(422, f"request {stored.id} is a point: answer it with a class")
            x, y, classes = np.asarray(body.corrections, np.int64).T
            column, row = x - r.x, y - r.y
            inside = (column >= 0) & (column < w) & (row >= 0) & (row < h)
            inside[inside] = r.mask[row[inside], column[inside]]
            if not inside.all():
                first = int(np.argmin(inside))
                raise HTTPException(422, f"pixel ({x[first]}, {y[first]}) is not part of request {stored.id}")
            labels[row, column] = classes
    if not np.any(labels[r.mask] != IGNORE):
        raise HTTPException(422, f"the answer labels no pixel of request {stored.id}; skip it when unsure")
    return labels


def serve(request_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, lease_seconds: float = 600.0) -> None:
    """Serve the annotator until interrupted. Bound to anything but loopback, it makes up a token, prints it and
    requires it on every API call."""
    import uvicorn

    token = None if is_loopback(host) else secrets.token_urlsafe(24)
    app = create_app(request_dir, token=token, lease_seconds=lease_seconds)
    shown = f"[{host}]" if ":" in host else host
    print(f"syn2real annotator for {Path(request_dir).resolve()}", flush=True)
    if token is None:
        print(f"open http://{shown}:{port}/", flush=True)
    else:
        print(f"open http://{shown}:{port}/?token={token}"
              + ("   (with this machine's name or address instead of the wildcard)"
                 if host in ("0.0.0.0", "::") else ""), flush=True)
        print(f"token: {token}   (plain HTTP: share it only on a network you trust, or use an SSH tunnel)",
              flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
