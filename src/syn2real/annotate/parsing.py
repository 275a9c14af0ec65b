"""Request bodies in, validation errors out: strict JSON and 422s that are always JSON themselves.

Python's json module takes `NaN`, `Infinity` and `1e999` (inf) although JSON has no such numbers; an error
report echoing such a value cannot be rendered as JSON, so it became a 500. Here bodies are parsed strictly
(`parse_json`, used by `StrictJSONRoute` for every declared body and by dependencies reading bodies
themselves), and validation errors are reported as type, location and message only, at most MAX_ERRORS of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

#: Errors listed in a 422; the rest are counted.
MAX_ERRORS = 20


class _NonFinite(ValueError):
    pass


def _no_constant(name: str) -> float:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(text)
    return value


def parse_json(raw: bytes) -> Any:
    """JSON as RFC 8259 has it: NaN, Infinity and numbers too large for a float are a JSONDecodeError."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except _NonFinite as e:
        text = raw.decode("utf-8", "replace")
        raise json.JSONDecodeError(f"{e} is not a finite number; JSON numbers must be finite", text,
                                   max(text.find(str(e)), 0)) from None


def json_invalid(error: json.JSONDecodeError) -> RequestValidationError:
    """A body that is not JSON as the 422 FastAPI gives for it."""
    return RequestValidationError([{"type": "json_invalid", "loc": ("body", error.pos), "msg": "JSON decode error",
                                    "input": {}, "ctx": {"error": error.msg}}])


def validated(model: type[BaseModel], data: Any, context: dict | None = None) -> BaseModel:
    """`data` (a parsed body) as `model`, or the RequestValidationError FastAPI raises for a bad body."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as e:
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])}
                                      for error in e.errors(include_url=False)]) from None


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is parsed by `parse_json` (FastAPI turns its JSONDecodeError into a 422)."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict_handler


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 {"detail": [{type, loc, msg}, ...]}: never the offending input (it may be megabytes, or NaN)."""
    errors = exc.errors()
    detail = []
    for error in errors[:MAX_ERRORS]:
        message = str(error.get("msg", ""))
        context = error.get("ctx") or {}
        if error.get("type") == "json_invalid" and "error" in context:
            message = f"{message}: {context['error']}"
        detail.append({"type": str(error.get("type", "")), "loc": [str(part) if not isinstance(part, int) else part
                                                                   for part in error.get("loc", ())],
                       "msg": message})
    if len(errors) > MAX_ERRORS:
        detail.append({"type": "too_many_errors", "loc": ["body"],
                       "msg": f"and {len(errors) - MAX_ERRORS} more errors"})
    return JSONResponse({"detail": detail}, status_code=422)
