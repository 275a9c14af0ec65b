"""The annotator's web app: one page (static/) and a small JSON API over a request folder.

All state lives in the request folder's label store (syn2real.annotate.folder), so answers outlive the server
and several annotators (or servers) can work on one folder at once; the store keeps each answer exactly once.

The app is put together here from small pieces:
    folder.py        RequestFolder: the store, label space, predictions and session ledger (`app.state.folder`)
    routes.py        the routers: `api` (/api/...) and `page` (/), handlers at module level
    dependencies.py  what handlers get through Depends: folder, token check, session, the answer body
    models.py        the JSON in and out, as pydantic models
    parsing.py       strict JSON bodies and JSON-safe 422s
    sessions.py      session cookie and the ledger of which session gave which answer
    guard.py         middleware: loopback Host check, body size limit, security headers

API (JSON). When the app has a token every /api call must carry it, as `Authorization: Bearer <token>` or
`?token=<token>`:
    GET    /api/meta                           classes, palette, ignore id, lease seconds
    POST   /api/next     {annotator}           lease an image with open requests: {"image": name or null}
    POST   /api/release  {annotator}           hand the leased image back
    GET    /api/images/{name}/file             the image (its file path comes from the store, never the client)
    GET    /api/images/{name}/requests         its requests, their answers and the prediction's suggestion
    GET    /api/images/{name}/prediction       the prediction as an RGBA overlay PNG (404 when there is none)
    POST   /api/answers  {annotator, image, request, class | labels | corrections, skipped, seconds}
    DELETE /api/answers/{request}?annotator=   undo: delete that annotator's answer, given in this session
    GET    /api/progress[?annotator=]          answered / total, skipped, mean seconds per label
    POST   /api/export                         REQUEST_DIR/export/: masks/*.png + answers.json (the store's format)
An answer's response sets the session cookie (`syn2real_session`, HttpOnly) when the call had none; only that
session can undo the answer. Errors come as {"detail": message}: 400 bad Host header, 401 token, 403 another
session's answer, 404 unknown image or request, 409 already answered, 411/413 body without length or too large,
422 invalid payload (not strict JSON, NaN or Infinity, more runs than the request's box has pixels, ...).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from syn2real.annotate.folder import RequestFolder, open_store, read_meta
from syn2real.annotate.guard import (
    MAX_BODY_BYTES,
    BodyLimit,
    LoopbackHostOnly,
    SecurityHeaders,
    is_loopback,
)
from syn2real.annotate.parsing import validation_error
from syn2real.annotate.routes import STATIC, api, page

__all__ = ["MAX_BODY_BYTES", "create_app", "is_loopback", "open_store", "read_meta", "serve"]


def create_app(request_dir: str | Path, token: str | None = None, lease_seconds: float = 600.0) -> FastAPI:
    """The annotator app over `request_dir`. With a `token` every API call must carry it; without one the app
    only answers requests addressed to a loopback name (127.0.0.1, localhost, ::1)."""
    app = FastAPI(title="syn2real annotator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.folder = RequestFolder.open(request_dir, lease_seconds)
    app.state.token = token
    app.include_router(api)
    app.include_router(page)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(RequestValidationError, validation_error)
    # The last added runs first: every response marked, then the Host checked, then the body's length.
    app.add_middleware(BodyLimit)
    if token is None:
        app.add_middleware(LoopbackHostOnly)
    app.add_middleware(SecurityHeaders)
    return app


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
