"""How the JSON API writes an answer: redacted JSON, a piece at a time, and HTTP caching.

Handlers build pydantic models (:mod:`okrsync.api.models`) and return :func:`answer`'s
response: FastAPI passes a response through as it is, so the bytes are these, whatever the
route's ``response_model`` (which documents the shape). The OKR reads go through
:func:`cached`: an ETag and Last-Modified from the store's read stamp, and a 304 for a current
``If-None-Match``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from okrsync.store import views

if TYPE_CHECKING:
    from okrsync.api.context import ApiContext


def _json(value: Any) -> str:
    """As :class:`~starlette.responses.JSONResponse` writes JSON."""
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    )


def answer(ctx: ApiContext, model: BaseModel, status: int = 200) -> Response:
    """``model`` as JSON, redacted, byte for byte what ``JSONResponse`` makes of it, but written
    a piece at a time: each item of a list on its own. A page is built in a worker thread, and
    one ``json.dumps`` (or ``model_dump``) of a page of thousands of items holds the interpreter
    lock, and so the event loop, for its whole length; between items the loop gets its turn."""
    redact = ctx.redactor.redact_value
    parts = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            text = "[" + ",".join(_json(redact(v.model_dump(mode="json"))) for v in value) + "]"
        else:
            text = _json(redact(model.model_dump(mode="json", include={name})[name]))
        parts.append(f"{_json(name)}:{text}")
    body = ("{" + ",".join(parts) + "}").encode()
    return Response(body, status, media_type="application/json")


CACHE_SECONDS = 60
"""The ETag of an OKR read digests the store's read stamp and the current minute: status, pace
and staleness are computed against the clock, so an answer is reused for at most this long past
the minute it was made in, and never past a recorded change."""

ETAG_TEXT = (
    "Changes with every recorded value, confirmation, error or run (and each minute, as status "
    "follows the clock); send it as If-None-Match"
)
CACHE_HEADERS: dict[str, Any] = {
    "ETag": {"description": ETAG_TEXT, "schema": {"type": "string"}},
    "Last-Modified": {
        "description": "The last change recorded in the store",
        "schema": {"type": "string"},
    },
}
"""The caching headers of an OKR read, as the OpenAPI document describes them."""

IF_NONE_MATCH_TEXT = (
    "The `ETag` of an earlier answer: when nothing was recorded since (and within the minute, "
    "as status follows the clock), the answer is a 304 with no body."
)


def _etag(request: Request, stamp: views.ReadStamp, now: datetime) -> str:
    minute = int(now.timestamp()) // CACHE_SECONDS
    query = sorted(request.query_params.multi_items())
    text = json.dumps([request.url.path, query, stamp.parts(), minute])
    return f'W/"{hashlib.sha256(text.encode()).hexdigest()[:32]}"'


def _matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` compared weakly (RFC 9110 §13.1.2): ``*`` or any listed tag."""
    if header is None:
        return False
    opaque = etag.removeprefix("W/")
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == opaque:
            return True
    return False


def cached(
    ctx: ApiContext,
    request: Request,
    condition: str | None,
    session: Session,
    build: Callable[[], BaseModel],
) -> Response:
    """``build()``'s answer with an ETag and Last-Modified from the store's read stamp (one
    statement), or a 304 without building it when ``condition`` (the client's
    ``If-None-Match``) is current."""
    now = ctx.clock()
    stamp = views.read_stamp(session)
    headers = {"ETag": _etag(request, stamp, now), "Cache-Control": "no-cache"}
    changed = stamp.last_change()
    if changed is not None:
        headers["Last-Modified"] = format_datetime(changed, usegmt=True)
    if _matches(condition, headers["ETag"]):
        if condition is not None and "*" in (t.strip() for t in condition.split(",")):
            build()  # "*" matches only what exists: a missing one is still a 404
        return Response(status_code=304, headers=headers)
    response = answer(ctx, build())
    response.headers.update(headers)
    return response
