"""The webhook receiver fake: what a team's endpoint does with okrsync's deliveries.

It accepts a POST on any path, checks the signature when it was built with a secret (401
otherwise), and de-duplicates by ``Idempotency-Key`` the way a careful receiver should: a key
seen before is answered 200 — the sender must stop retrying — but not counted again. Tests, the
demo and the end-to-end suite read what arrived, in-process through ``app.state.receiver`` (a
:class:`ReceiverState`) or over HTTP:

* ``GET /_received``: ``{"count", "duplicates", "rejected", "deliveries": [...],
  "latest_by_key_result": {...}}``, each delivery with its ``path``, ``idempotency_key``,
  ``event``, ``headers``, parsed ``body`` and ``received_at``;
* ``DELETE /_received``: forget everything.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from okrsync.sdk.webhooks import (
    DEFAULT_TOLERANCE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)

KEPT_HEADERS = ("content-type", "idempotency-key", "user-agent", "x-okrsync-event")


@dataclass(frozen=True)
class Delivery:
    path: str
    idempotency_key: str | None
    event: str | None
    headers: dict[str, str]
    body: Any
    received_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "idempotency_key": self.idempotency_key,
            "event": self.event,
            "headers": self.headers,
            "body": self.body,
            "received_at": self.received_at.isoformat(),
        }


class ReceiverState:
    """What arrived. Written by the server's thread and read by the test's, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Delivery] = []
        self._keys: set[str] = set()
        self._latest: dict[str, Any] = {}
        self._duplicates = 0
        self._rejected = 0

    @property
    def received(self) -> list[Delivery]:
        """Unique deliveries, in the order they arrived."""
        with self._lock:
            return list(self._received)

    @property
    def duplicates(self) -> int:
        with self._lock:
            return self._duplicates

    @property
    def rejected(self) -> int:
        """Deliveries refused for a missing, wrong or stale signature."""
        with self._lock:
            return self._rejected

    @property
    def latest_by_key_result(self) -> dict[str, Any]:
        """The newest body per key result id (by ``observed_at``: deliveries may arrive late)."""
        with self._lock:
            return dict(self._latest)

    def record(self, delivery: Delivery) -> bool:
        """Keep ``delivery`` unless its key was seen before; ``False`` for a duplicate."""
        with self._lock:
            key = delivery.idempotency_key
            if key is not None:
                if key in self._keys:
                    self._duplicates += 1
                    return False
                self._keys.add(key)
            self._received.append(delivery)
            kr_id = _key_result_id(delivery.body)
            if kr_id is not None and _newer(delivery.body, self._latest.get(kr_id)):
                self._latest[kr_id] = delivery.body
            return True

    def reject(self) -> None:
        with self._lock:
            self._rejected += 1

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self._keys.clear()
            self._latest.clear()
            self._duplicates = self._rejected = 0

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "count": len(self._received),
                "duplicates": self._duplicates,
                "rejected": self._rejected,
                "deliveries": [d.to_json() for d in self._received],
                "latest_by_key_result": dict(self._latest),
            }


def _key_result_id(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("key_result"), dict):
        kr_id = body["key_result"].get("id")
        return kr_id if isinstance(kr_id, str) else None
    return None


def _observed(body: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(body["observed_at"])
    except (KeyError, TypeError, ValueError):
        return None


def _newer(body: Any, current: Any) -> bool:
    if current is None:
        return True
    new, old = _observed(body), _observed(current)
    return new is None or old is None or new >= old


def receiver_app(
    *,
    secret: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The receiver as an ASGI app; with ``secret``, unsigned or wrongly signed posts get 401."""
    state = ReceiverState()

    async def receive(request: Request) -> Response:
        body = await request.body()
        if secret:
            signed = verify(
                secret,
                request.headers.get(TIMESTAMP_HEADER),
                body,
                request.headers.get(SIGNATURE_HEADER),
                now=clock(),
                tolerance=tolerance,
            )
            if not signed:
                state.reject()
                return JSONResponse(
                    {
                        "error": "invalid_signature",
                        "message": "the signature is missing, wrong or too old",
                    },
                    status_code=401,
                )
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse(
                {"error": "invalid_json", "message": "the body is not JSON"}, status_code=400
            )
        key = request.headers.get("idempotency-key")
        if (
            key is None
            and isinstance(payload, dict)
            and isinstance(payload.get("delivery_id"), str)
        ):
            key = payload["delivery_id"]
        delivery = Delivery(
            path=request.url.path,
            idempotency_key=key,
            event=request.headers.get("x-okrsync-event"),
            headers={
                name: request.headers[name] for name in KEPT_HEADERS if name in request.headers
            },
            body=payload,
            received_at=datetime.now(UTC),
        )
        fresh = state.record(delivery)
        return JSONResponse({"ok": True, "duplicate": not fresh})

    async def received(request: Request) -> Response:
        return JSONResponse(state.to_json())

    async def forget(request: Request) -> Response:
        state.clear()
        return Response(status_code=204)

    app = Starlette(
        routes=[
            Route("/_received", received, methods=["GET"]),
            Route("/_received", forget, methods=["DELETE"]),
            Route("/{path:path}", receive, methods=["POST"]),
        ]
    )
    app.state.receiver = state
    return app
