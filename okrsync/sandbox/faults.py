"""Fault injection and request recording for the sandbox fakes.

A fake of a vendor API is only useful if it can also misbehave the way the vendor does: slow
answers, 429s with ``Retry-After``, 5xx, hangs, HTML error pages from a proxy, JSON cut off
mid-document, connections closed before the declared length. :class:`FaultMiddleware` wraps
any fake (a plain ASGI app) and adds exactly that, plus a log of every request the fake received,
so a test can assert what the connector *sent*.

Faults are armed in-process (``SandboxServer.faults.add``) or over HTTP through the admin routes
under ``/_sandbox/``, so ``okrsync demo``, the benchmarks and another process can drive the same
fake. The server runs in another thread than the test, hence the locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_PREFIX = "/_sandbox/"
MAX_RECORDS = 10_000
_LOG = logging.getLogger(__name__)


class FaultKind(StrEnum):
    STATUS = "status"  # answer ``status`` with ``body``, ``headers`` and ``Retry-After``
    LATENCY = "latency"  # wait ``delay`` seconds, then let the fake answer
    TIMEOUT = "timeout"  # wait ``delay`` seconds (longer than the client's timeout), then 504
    MALFORMED = "malformed"  # 200 with JSON that does not parse
    HTML = "html"  # an HTML error page, as a proxy in front of the vendor sends
    TRUNCATED = "truncated"  # close the connection before the declared Content-Length
    EMPTY = "empty"  # 200 with no body at all


class Fault(BaseModel):
    """One misbehaviour, armed for the next ``times`` matching requests (-1: until cleared).

    ``path`` is a regular expression searched in the URL path, ``method`` an HTTP method; both
    unset means every request. ``status`` is used by STATUS (default 500) and, when given
    explicitly, by the other kinds that answer (TIMEOUT otherwise answers 504, the rest 200).
    """

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    status: int = Field(default=500, ge=100, le=599)
    body: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    retry_after: str | None = None
    delay: float = Field(default=0.0, ge=0.0)
    times: int = 1
    path: str | None = None
    method: str | None = None

    @field_validator("times")
    @classmethod
    def _times_positive_or_forever(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("times must be a positive count, or -1 for forever")
        return value

    @field_validator("path")
    @classmethod
    def _path_is_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"path is not a regular expression: {exc}") from exc
        return value

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None

    def status_or(self, default: int) -> int:
        """``status`` when it was given explicitly, else the kind's natural status."""
        return self.status if "status" in self.model_fields_set else default


@dataclass
class _Armed:
    fault: Fault
    remaining: int  # -1 = forever


class FaultInjector:
    """The faults armed on one fake; thread-safe, first armed is first served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._armed.append(_Armed(fault, fault.times))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return [armed.fault for armed in self._armed]

    def take(self, method: str, path: str) -> Fault | None:
        """The fault to apply to this request, using up one of its ``times``."""
        with self._lock:
            for armed in self._armed:
                if not armed.fault.matches(method, path):
                    continue
                if armed.remaining > 0:
                    armed.remaining -= 1
                    if armed.remaining == 0:
                        self._armed.remove(armed)
                return armed.fault
        return None


class RequestRecord(BaseModel):
    """One request as the fake received it (headers with repeats joined by ``, ``)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    at: datetime

    def json_body(self) -> Any:
        return json.loads(self.body)


class RequestLog:
    """The requests a fake received, oldest first; thread-safe.

    Bounded by default (the last :data:`MAX_RECORDS`, so a long-running ``okrsync demo`` does not
    grow without end), never silently: :attr:`received` counts every request since the last
    :meth:`clear` and :attr:`dropped` how many of them fell out of the bound, the first drop is
    logged, and ``GET /_sandbox/requests`` carries both counts in ``X-Sandbox-Received`` and
    ``X-Sandbox-Dropped``. A benchmark that counts requests calls :meth:`keep_all` (no bound).
    """

    def __init__(self, limit: int | None = MAX_RECORDS) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=limit)
        self._received = 0
        self._dropped = 0

    @property
    def limit(self) -> int | None:
        """How many records are kept (``None``: all of them)."""
        return self._records.maxlen

    @property
    def received(self) -> int:
        """Requests recorded since the last :meth:`clear`, dropped ones included."""
        with self._lock:
            return self._received

    @property
    def dropped(self) -> int:
        """Requests recorded since the last :meth:`clear` that the bound no longer keeps."""
        with self._lock:
            return self._dropped

    def keep_all(self) -> None:
        """Lift the bound: from now on every request is kept (those already dropped stay
        counted in :attr:`dropped`)."""
        with self._lock:
            self._records = deque(self._records, maxlen=None)

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            limit = self._records.maxlen
            full = limit is not None and len(self._records) >= limit
            self._records.append(record)
            self._received += 1
            self._dropped += 1 if full else 0
            first_drop = full and self._dropped == 1
        if first_drop:
            _LOG.warning(
                "sandbox request log is full (%s records): older requests are being dropped "
                "(RequestLog.dropped counts them)",
                limit,
            )

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._received = 0
            self._dropped = 0

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)


# --- keeping a deliberate truncation out of the server's error log ------------------------------

_truncating: ContextVar[bool] = ContextVar("okrsync_sandbox_truncating", default=False)


class _HideDeliberateErrors(logging.Filter):
    """Keep what the sandbox does on purpose out of uvicorn's error log.

    Uvicorn logs an error when an app ends a response early, which the TRUNCATED fault does on
    purpose; the flag is a context variable set by the very request that truncates, so a genuine
    bug in a fake (another request, another task) is still logged. It also logs the cancellation
    of requests still in flight when :meth:`SandboxServer.stop` cuts them short — expected for a
    fake that is being stopped, not a bug.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _truncating.get():
            return False
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


_FILTER = _HideDeliberateErrors()


def install_log_filter() -> None:
    """Attach the filter to uvicorn's error logger (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


# --- the middleware ------------------------------------------------------------------------------


class FaultMiddleware:
    """Pure ASGI middleware: records requests, applies armed faults, serves ``/_sandbox/``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: FaultInjector | None = None,
        log: RequestLog | None = None,
    ) -> None:
        self.app = app
        self.faults = faults if faults is not None else FaultInjector()
        self.log = log if log is not None else RequestLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIX):
            await self._admin(scope, receive, send)
            return
        body, disconnected = await _read_body(receive)
        method: str = scope["method"]
        self.log.append(
            RequestRecord(
                method=method,
                path=path,
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=_headers_of(scope),
                body=body.decode("utf-8", errors="replace"),
                at=datetime.now(UTC),
            )
        )
        if disconnected:
            return
        replay = _replaying(body, receive)
        fault = self.faults.take(method, path)
        if fault is None:
            await self.app(scope, replay, send)
            return
        await self._apply(fault, scope, replay, receive, send)

    async def _apply(
        self, fault: Fault, scope: Scope, replay: Receive, server: Receive, send: Send
    ) -> None:
        """``replay`` hands the fake the body already read; pauses watch ``server`` (whose next
        message can only be the client hanging up, since the body is consumed)."""
        receive = server
        extra = dict(fault.headers)
        if fault.retry_after is not None:
            extra["Retry-After"] = fault.retry_after
        match fault.kind:
            case FaultKind.LATENCY:
                if not await _pause(fault.delay, receive):
                    await self.app(scope, replay, _adding_headers(send, extra))
            case FaultKind.TIMEOUT:
                if not await _pause(fault.delay, receive):
                    body = fault.body or _json_error(fault.status_or(504), "injected timeout")
                    await _respond(send, fault.status_or(504), body, extra)
            case FaultKind.STATUS:
                await _pause(fault.delay, receive)
                body = (
                    fault.body
                    if fault.body is not None
                    else _json_error(fault.status, "injected fault")
                )
                await _respond(send, fault.status, body, extra)
            case FaultKind.MALFORMED:
                body = fault.body or '{"truncated": '
                await _respond(send, fault.status_or(200), body, extra, "application/json")
            case FaultKind.HTML:
                await _respond(send, fault.status_or(200), fault.body or _HTML_PAGE, extra)
            case FaultKind.EMPTY:
                await _respond(send, fault.status_or(200), "", extra, "application/json")
            case FaultKind.TRUNCATED:
                await _truncate(send, fault.status_or(200), fault.body or _LONG_JSON, extra)

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The routes another process uses to drive this fake; never recorded nor faulted."""
        body, _ = await _read_body(receive)
        route = (scope["method"], scope["path"].rstrip("/"))
        match route:
            case ("POST", "/_sandbox/faults"):
                try:
                    fault = Fault.model_validate_json(body)
                except ValidationError as exc:
                    detail = json.dumps({"detail": exc.errors(include_url=False)}, default=str)
                    await _respond(send, 422, detail, {})
                    return
                self.faults.add(fault)
                await _respond(send, 201, fault.model_dump_json(), {})
            case ("GET", "/_sandbox/faults"):
                faults = [f.model_dump(mode="json") for f in self.faults.pending()]
                await _respond(send, 200, json.dumps(faults), {})
            case ("DELETE", "/_sandbox/faults"):
                self.faults.clear()
                await _respond(send, 204, "", {})
            case ("GET", "/_sandbox/requests"):
                records = [r.model_dump(mode="json") for r in self.log.snapshot()]
                counts = {
                    "X-Sandbox-Received": str(self.log.received),
                    "X-Sandbox-Dropped": str(self.log.dropped),
                }
                await _respond(send, 200, json.dumps(records), counts)
            case ("DELETE", "/_sandbox/requests"):
                self.log.clear()
                await _respond(send, 204, "", {})
            case _:
                await _respond(send, 404, _json_error(404, "no such sandbox route"), {})


# --- helpers ------------------------------------------------------------------------------------

_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>The upstream server sent an invalid response.</p>"
    "<hr><address>sandbox proxy</address></body></html>"
)
_LONG_JSON = json.dumps({"records": [{"id": i, "value": i * 10} for i in range(50)], "done": True})


def _json_error(status: int, message: str) -> str:
    return json.dumps({"error": "sandbox_fault", "status": status, "message": message})


def _headers_of(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole request body, and whether the client went away while sending it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body to the fake, then defers to the server."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _pause(delay: float, receive: Receive) -> bool:
    """Sleep ``delay`` seconds unless the client hangs up first; ``True`` if it did.

    Watching for the disconnect matters: a TIMEOUT fault is meant to outlast the client, and a
    handler still sleeping after the client left would delay the server's shutdown.
    """
    if delay <= 0:
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + delay
    while (remaining := deadline - loop.time()) > 0:
        waiter = asyncio.ensure_future(receive())
        done, _ = await asyncio.wait({waiter}, timeout=remaining)
        if waiter not in done:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            return False
        if waiter.result()["type"] == "http.disconnect":
            return True
        await asyncio.sleep(max(0.0, deadline - loop.time()))  # not a disconnect: just wait
    return False


def _content_type(body: str) -> str:
    if body.lstrip().startswith("<"):
        return "text/html; charset=utf-8"
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


def _raw_headers(
    body: bytes, extra: dict[str, str], content_type: str | None, length: int | None = None
) -> list[tuple[bytes, bytes]]:
    names = {name.lower() for name in extra}
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()]
    if "content-type" not in names and content_type:
        headers.append((b"content-type", content_type.encode("latin-1")))
    if "content-length" not in names:
        headers.append((b"content-length", str(len(body) if length is None else length).encode()))
    return headers


async def _respond(
    send: Send, status: int, body: str, extra: dict[str, str], content_type: str | None = None
) -> None:
    data = body.encode("utf-8")
    if status in (204, 304):
        data = b""
    kind = content_type or (_content_type(body) if data else None)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": _raw_headers(data, extra, kind),
        }
    )
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _truncate(send: Send, status: int, body: str, extra: dict[str, str]) -> None:
    """Promise the whole body in Content-Length, send half of it, and end the response.

    Returning without the final body message makes the server close the connection, so the
    client sees the peer hang up mid-body: a protocol error, as from a dropped proxy link.
    """
    data = body.encode("utf-8")
    headers = _raw_headers(data, extra, "application/json", length=len(data))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True})
    _truncating.set(True)


def _adding_headers(send: Send, extra: dict[str, str]) -> Send:
    if not extra:
        return send

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [
                *message.get("headers", []),
                *((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()),
            ]
        await send(message)

    return wrapped
