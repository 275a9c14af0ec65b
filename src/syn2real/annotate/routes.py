"""The app's routes: `api` (/api/..., token-checked, strict JSON bodies) and `page` (the annotation page).

Handlers are plain functions of their inputs; the request folder, the caller's session and the answer body come
from dependencies (syn2real.annotate.dependencies). Sync handlers run in FastAPI's thread pool, each thread
with its own SQLite connections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from PIL import Image

from syn2real.active.store import Answer, StoredRequest, run_length
from syn2real.annotate.dependencies import AnswerBody, Folder, Session, require_token
from syn2real.annotate.models import (
    MAX_ID,
    AnnotatorIn,
    AnnotatorQuery,
    AnswerIn,
    AnswerOut,
    ExportOut,
    GivenAnswerOut,
    ImageRequestsOut,
    MetaOut,
    NextOut,
    ProgressOut,
    RequestOut,
    UndoOut,
)
from syn2real.annotate.parsing import StrictJSONRoute
from syn2real.errors import DataError
from syn2real.io import png_bytes, read_json
from syn2real.labels import IGNORE

STATIC = Path(__file__).with_name("static")
#: Image files a browser shows as they are; others are sent as PNG.
BROWSER_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}

api = APIRouter(prefix="/api", dependencies=[Depends(require_token)], route_class=StrictJSONRoute)
page = APIRouter(include_in_schema=False)


@page.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@api.get("/meta")
def get_meta(folder: Folder) -> MetaOut:
    return MetaOut(**folder.meta, lease_seconds=folder.lease_seconds)


@api.post("/next")
def next_image(body: AnnotatorIn, folder: Folder) -> NextOut:
    return NextOut(image=folder.store.lease(body.annotator, folder.lease_seconds))


@api.post("/release", status_code=204)
def release(body: AnnotatorIn, folder: Folder) -> Response:
    folder.store.release(body.annotator)
    return Response(status_code=204)


@api.get("/images/{name:path}/file")
def image_file(name: str, folder: Folder) -> Response:
    folder.image_size(name)
    path = folder.store.image_path(name)
    if not path.is_file():
        raise HTTPException(404, f"the file of image {name!r} is missing on the server")
    if path.suffix.lower() in BROWSER_IMAGE_SUFFIXES:
        return FileResponse(path)
    with Image.open(path) as image:
        return Response(png_bytes(np.asarray(image.convert("RGB"))), media_type="image/png")


@api.get("/images/{name:path}/requests", response_model_exclude_unset=True)
def image_requests(name: str, folder: Folder) -> ImageRequestsOut:
    height, width = folder.image_size(name)
    try:
        classes, problem = folder.prediction(name, height, width), None
    except DataError as e:
        classes, problem = None, str(e)
    answers = {stored.id: answer for stored, answer in folder.store.answers(name)}
    return ImageRequestsOut(image=name, width=width, height=height, prediction=classes is not None,
                            prediction_problem=problem,
                            requests=[_request_out(s, answers.get(s.id), classes, folder.num_classes)
                                      for s in folder.store.requests(image=name)])


@api.get("/images/{name:path}/prediction")
def image_prediction(name: str, folder: Folder) -> Response:
    height, width = folder.image_size(name)
    try:
        classes = folder.prediction(name, height, width)
    except DataError as e:
        raise HTTPException(404, str(e)) from None
    if classes is None:
        raise HTTPException(404, f"no prediction for image {name!r}")
    return Response(png_bytes(folder.palette[classes]), media_type="image/png")


@api.post("/answers", status_code=201)
def post_answer(body: AnswerBody, folder: Folder, session: Session) -> AnswerOut:
    folder.image_size(body.image)
    stored = folder.stored_request(body.request)
    if stored.image != body.image:
        raise HTTPException(422, f"request {stored.id} belongs to image {stored.image!r}, not {body.image!r}")
    labels = _answer_labels(body, stored)
    try:
        new = folder.store.answer(stored.id, labels, body.annotator, skipped=body.skipped, seconds=body.seconds,
                                  num_classes=folder.num_classes)
    except DataError as e:
        raise HTTPException(422, str(e)) from None
    if not new:
        raise HTTPException(409, f"request {stored.id} is already answered (undo that answer to change it)")
    folder.sessions.record(stored.id, session)
    return AnswerOut(request=stored.id, image=stored.image, annotator=body.annotator)


@api.delete("/answers/{request_id}")
def undo_answer(request_id: Annotated[int, PathParam(ge=0, le=MAX_ID)], annotator: AnnotatorQuery,
                folder: Folder, session: Session) -> UndoOut:
    """Undo: only the session that gave the answer may take it back (403 for another session's answer, 404
    when there is no answer from the app, or none of `annotator`'s)."""
    stored = folder.stored_request(request_id)
    owner = folder.sessions.owner(stored.id)
    if owner is None:
        raise HTTPException(404, f"request {stored.id} has no answer of {annotator!r} to undo")
    if owner != session:
        raise HTTPException(403, f"request {stored.id} was answered in another session: only that browser "
                                 f"session can undo it")
    if not folder.store.retract(stored.id, annotator):  # the session's row goes with the answer
        raise HTTPException(404, f"request {stored.id} has no answer of {annotator!r} to undo")
    return UndoOut(request=stored.id, image=stored.image)


@api.get("/progress", response_model_exclude_unset=True)
def progress(folder: Folder, annotator: AnnotatorQuery | None = None) -> ProgressOut:
    return ProgressOut(**folder.store.progress(annotator))


@api.post("/export")
def export(folder: Folder) -> ExportOut:
    out = folder.store.export(folder.path / "export")
    answers = read_json(out / "answers.json", "answers file")
    return ExportOut(folder=out.name, answers=len(answers), masks=len(list((out / "masks").glob("*.png"))))


# ---- helpers ---------------------------------------------------------------------------------------------------




def _suggestion(stored: StoredRequest, classes: np.ndarray | None, num_classes: int) -> int | None:
    """The prediction's most frequent class over the requested pixels."""
    if classes is None:
        return None
    r = stored.request
    h, w = r.mask.shape
    inside = classes[r.y:r.y + h, r.x:r.x + w][r.mask]
    inside = inside[inside < num_classes]
    return int(np.bincount(inside).argmax()) if inside.size else None


def _request_out(stored: StoredRequest, answer: Answer | None, classes: np.ndarray | None,
                 num_classes: int) -> RequestOut:
    r = stored.request
    h, w = r.mask.shape
    mask = {"mask": run_length(r.mask.astype(np.uint8))} if r.kind == "region" else {}
    return RequestOut(id=stored.id, round=stored.round, kind=r.kind, x=r.x, y=r.y, width=w, height=h,
                      pixels=r.n_pixels, suggestion=_suggestion(stored, classes, num_classes),
                      answer=None if answer is None else _given_out(r.kind, answer), **mask)


def _given_out(kind: str, answer: Answer) -> GivenAnswerOut:
    """`class` for an answered point, `labels` for an answered region, neither when skipped."""
    given = {}
    if not answer.skipped and kind == "point":
        given["class_id"] = int(answer.labels[0, 0])
    elif not answer.skipped:
        given["labels"] = run_length(answer.labels)
    return GivenAnswerOut(skipped=answer.skipped, annotator=answer.annotator, source=answer.source,
                          answered=answer.answered, **given)


def _answer_labels(body: AnswerIn, stored: StoredRequest) -> np.ndarray | None:
    """The answer as labels over the request's box (the store checks the class ids), or a 422."""
    if body.skipped:
        return None
    r = stored.request
    h, w = r.mask.shape
    if r.kind == "point" and body.class_id is None:
        raise HTTPException(422, f"request {stored.id} is a point: answer it with a class")
    if body.labels is not None:
        # At most h*w runs (AnswerIn checked), each of at least one pixel.
        values, counts = np.asarray(body.labels, np.int64).reshape(-1, 2).T
        covered = int(counts.sum())
        if covered != h * w:
            raise HTTPException(422, f"labels of request {stored.id} cover {covered} pixels, its box {w}x{h} "
                                     f"has {h * w}")
        labels = np.repeat(values, counts).reshape(h, w)
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
