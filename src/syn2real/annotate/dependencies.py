"""What the routes get through `Depends`: the request folder, the token check, the caller's session and the
answer in a request's body."""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError

from syn2real.annotate.folder import RequestFolder
from syn2real.annotate.models import MAX_ID, AnswerIn
from syn2real.annotate.parsing import json_invalid, parse_json, validated
from syn2real.annotate.sessions import SESSION_COOKIE, new_session, valid_session


def get_folder(request: Request) -> RequestFolder:
    """The request folder the app serves (`app.state.folder`, set by `create_app`)."""
    return request.app.state.folder


Folder = Annotated[RequestFolder, Depends(get_folder)]


def require_token(request: Request) -> None:
    """When the app has a token (`app.state.token`), a 401 unless the call carries it, as
    'Authorization: Bearer <token>' or ?token=<token>."""
    token = request.app.state.token
    if token is None:
        return
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else request.query_params.get("token", "")
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "missing or wrong token: send the token `syn2real annotate serve` printed, as "
                                 "'Authorization: Bearer <token>' or ?token=<token>",
                            headers={"WWW-Authenticate": "Bearer"})


def session_id(request: Request, response: Response) -> str:
    """The caller's session: the id in its session cookie, or a new one, sent back in that cookie (HttpOnly,
    SameSite=Strict, for /api only; it lasts until the browser closes)."""
    given = request.cookies.get(SESSION_COOKIE)
    if valid_session(given):
        return given
    session = new_session()
    response.set_cookie(SESSION_COOKIE, session, path="/api", httponly=True, samesite="strict")
    return session


Session = Annotated[str, Depends(session_id)]


def _max_runs(data: Any, folder: RequestFolder) -> int | None:
    """How many runs an answer's labels may have: one per pixel of its request's box; 0 when it names no valid
    request id (404 for a valid but unknown one); None when it has no list of labels."""
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list):
        return None
    request_id = data.get("request")
    if type(request_id) is not int or not 0 <= request_id <= MAX_ID:
        return 0
    height, width = folder.stored_request(request_id).request.mask.shape
    return height * width


async def answer_body(request: Request, folder: Folder) -> AnswerIn:
    """The body of POST /api/answers as an AnswerIn. Its labels are counted against its request's box before
    any of them is validated or decoded: a flood of runs costs one lookup, not a pass over each."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if not (content_type == "application/json" or
            (content_type.startswith("application/") and content_type.endswith("+json"))):
        raise RequestValidationError([{"type": "content_type", "loc": ("body",),
                                       "msg": f"send the answer as JSON (Content-Type: application/json), "
                                              f"not {content_type!r}"}])
    try:
        data = parse_json(await request.body())
    except json.JSONDecodeError as e:
        raise json_invalid(e) from None
    return validated(AnswerIn, data, context={"max_runs": _max_runs(data, folder)})


AnswerBody = Annotated[AnswerIn, Depends(answer_body)]
