"""The webhook sink against the receiver fake on a loopback socket.

What the receiver *got* is read from its own state (as a team's endpoint would see it) and
what went over the wire from the sandbox's request log, so signatures are checked on the exact
bytes sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from connectors.webhook import WebhookConnection, WebhookMirror, WebhookSink, connector
from connectors.webhook.receiver import ReceiverState, receiver_app
from connectors.webhook.sink import decimal_text
from okrsync.errors import ConnectorError, CredentialsError, TargetNotFoundError
from okrsync.plugins import load_registry
from okrsync.sandbox import Fault, FaultKind, SandboxServer
from okrsync.sdk.http import RetryPolicy
from okrsync.sdk.models import KeyResultUpdate, Status
from okrsync.sdk.webhooks import sign, verify
from okrsync.sdk.work_summary import WorkLink, WorkSummary

SECRET = "whsec-5c1d0e9b7a"
OBSERVED = datetime(2026, 11, 12, 9, 30, tzinfo=UTC)


class FastSink(WebhookSink):
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)


@dataclass
class Receiver:
    server: SandboxServer
    state: ReceiverState

    @property
    def url(self) -> str:
        return self.server.url


def start_receiver(secret: str | None) -> Iterator[Receiver]:
    app = receiver_app(secret=secret)
    with SandboxServer(app, name="hook") as server:
        yield Receiver(server, app.state.receiver)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from start_receiver(None)


@pytest.fixture
def signed_receiver() -> Iterator[Receiver]:
    yield from start_receiver(SECRET)


def make_sink(url: str, **connection: Any) -> WebhookSink:
    config = WebhookConnection.model_validate({"type": "webhook", "url": url, **connection})
    return FastSink("hook", config)


@pytest.fixture
async def sink(signed_receiver: Receiver) -> AsyncIterator[WebhookSink]:
    hook = make_sink(f"{signed_receiver.url}/okr", secret=SECRET)
    yield hook
    await hook.aclose()


def update(key: str = "delivery-0001", observed: datetime = OBSERVED, **changes: Any) -> Any:
    fields: dict[str, Any] = {
        "objective_id": "revenue",
        "objective_title": "Grow new-business revenue",
        "key_result_id": "bookings",
        "key_result_title": "Close $1000 in new bookings",
        "cycle_id": "2026-Q4",
        "kind": "increase",
        "value": Decimal("375.5"),
        "start": Decimal(0),
        "target": Decimal("1000"),
        "unit": "USD",
        "progress": Decimal("0.3755"),
        "progress_display": Decimal("0.3755"),
        "status": Status.AT_RISK,
        "observed_at": observed,
        "idempotency_key": key,
        **changes,
    }
    return KeyResultUpdate(**fields)


MIRROR = WebhookMirror()


async def test_payload_and_headers_are_exact(signed_receiver: Receiver, sink: WebhookSink) -> None:
    before = int(time.time())
    result = await sink.push(update(confidence=7, score=Decimal("0.26285")), MIRROR, None)
    assert result.ref is None

    (delivery,) = signed_receiver.state.received
    assert delivery.path == "/okr"
    assert delivery.body == {
        "event": "key_result.updated",
        "objective": {"id": "revenue", "title": "Grow new-business revenue"},
        "key_result": {
            "id": "bookings",
            "title": "Close $1000 in new bookings",
            "kind": "increase",
            "unit": "USD",
            "start": "0",
            "target": "1000",
        },
        "cycle": "2026-Q4",
        "value": "375.5",
        "progress": "0.3755",
        "progress_display": "0.3755",
        "status": "at_risk",
        "observed_at": "2026-11-12T09:30:00+00:00",
        "stale": False,
        "checked_at": None,
        "confidence": 7,
        "score": "0.26285",
        "delivery_id": "delivery-0001",
        "final": False,
    }
    (request,) = signed_receiver.server.requests
    headers = request.headers
    assert request.method == "POST"
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == "delivery-0001"
    assert headers["x-okrsync-event"] == "key_result.updated"
    timestamp = headers["x-okrsync-timestamp"]
    assert before <= int(timestamp) <= int(time.time())
    expected = hmac.new(
        SECRET.encode(), f"{timestamp}.{request.body}".encode(), hashlib.sha256
    ).hexdigest()
    assert headers["x-okrsync-signature"] == f"sha256={expected}"
    assert SECRET not in json.dumps(headers) + request.body


async def test_signature_verifies(signed_receiver: Receiver, sink: WebhookSink) -> None:
    await sink.push(update(), MIRROR, None)
    assert len(signed_receiver.state.received) == 1 and signed_receiver.state.rejected == 0
    (request,) = signed_receiver.server.requests
    timestamp = request.headers["x-okrsync-timestamp"]
    signature = request.headers["x-okrsync-signature"]
    now = float(timestamp)
    assert verify(SECRET, timestamp, request.body, signature, now=now)
    assert verify(SECRET, timestamp, request.body.encode(), signature, now=now + 300)
    assert not verify(SECRET, timestamp, request.body, signature, now=now + 301)  # replayed
    assert not verify(SECRET, timestamp, request.body + " ", signature, now=now)  # tampered
    assert not verify("other", timestamp, request.body, signature, now=now)
    assert not verify(SECRET, str(int(timestamp) + 1), request.body, signature, now=now)
    assert not verify(SECRET, None, request.body, signature, now=now)
    assert not verify(SECRET, "²", request.body, signature, now=now)
    assert sign(SECRET, 1_700_000_000, b"{}") == sign(SECRET, "1700000000", "{}")


async def test_same_key_twice_is_counted_once(signed_receiver: Receiver, sink: WebhookSink) -> None:
    await sink.push(update(), MIRROR, None)
    await sink.push(update(), MIRROR, None)  # at-least-once: the dispatcher retried
    assert len(signed_receiver.state.received) == 1
    assert signed_receiver.state.duplicates == 1
    async with httpx.AsyncClient() as client:
        seen = (await client.get(f"{signed_receiver.url}/_received")).json()
    assert seen["count"] == 1 and seen["duplicates"] == 1
    assert seen["deliveries"][0]["body"]["value"] == "375.5"
    assert seen["latest_by_key_result"]["bookings"]["delivery_id"] == "delivery-0001"


async def test_latest_by_key_result_keeps_the_newest(
    signed_receiver: Receiver, sink: WebhookSink
) -> None:
    later = OBSERVED + timedelta(hours=1)
    await sink.push(update("k-2", later, value=Decimal(500)), MIRROR, None)
    await sink.push(update("k-1", OBSERVED), MIRROR, None)  # an older one, delivered late
    await sink.push(update("k-3", key_result_id="win_rate"), MIRROR, None)
    latest = signed_receiver.state.latest_by_key_result
    assert latest["bookings"]["value"] == "500" and latest["win_rate"]["delivery_id"] == "k-3"
    assert [d.idempotency_key for d in signed_receiver.state.received] == ["k-2", "k-1", "k-3"]


async def test_server_error_then_success(signed_receiver: Receiver, sink: WebhookSink) -> None:
    signed_receiver.server.faults.add(Fault(kind=FaultKind.STATUS, status=500))
    await sink.push(update(), MIRROR, None)
    assert len(signed_receiver.server.requests) == 2
    assert len(signed_receiver.state.received) == 1
    assert sink.api_calls == 2


async def test_wrong_secret_is_rejected_clearly(signed_receiver: Receiver) -> None:
    hook = make_sink(f"{signed_receiver.url}/okr", secret="whsec-wrong-0000")
    try:
        with pytest.raises(CredentialsError) as caught:
            await hook.push(update(), MIRROR, None)
    finally:
        await hook.aclose()
    message = str(caught.value)
    assert message.startswith(
        "connection 'hook', mirror 'key_result.updated' of key result 'bookings': "
        "the receiver refused the delivery: check the connection's secret"
    )
    assert "invalid_signature" in message and "whsec-wrong-0000" not in message
    assert signed_receiver.state.rejected == 1 and signed_receiver.state.received == []
    assert len(signed_receiver.server.requests) == 1  # a refusal is not retried


async def test_empty_secret_means_unsigned(receiver: Receiver, signed_receiver: Receiver) -> None:
    config = WebhookConnection.model_validate(
        {"type": "webhook", "url": "https://hooks.example.com/okr", "secret": ""}
    )
    assert config.secret is None and config.secret_values() == []
    with pytest.raises(ValidationError, match="url must be an http"):
        WebhookConnection.model_validate({"type": "webhook", "url": "ftp://files/okr"})
    hook = make_sink(f"{receiver.url}/okr", secret="")
    strict = make_sink(f"{signed_receiver.url}/okr", secret="")
    try:
        await hook.push(update(), MIRROR, None)
        with pytest.raises(CredentialsError):
            await strict.push(update(), MIRROR, None)  # the receiver wants a signature
    finally:
        await hook.aclose()
        await strict.aclose()
    (request,) = receiver.server.requests
    assert "x-okrsync-signature" not in request.headers
    assert "x-okrsync-timestamp" in request.headers
    assert len(receiver.state.received) == 1


async def test_mirror_path_event_and_extra_headers(receiver: Receiver) -> None:
    hook = make_sink(f"{receiver.url}/hooks/", headers={"X-Team-Token": "team-tok-1234"})
    mirror = WebhookMirror(event="okr.progress", path="/sales")
    try:
        await hook.push(update(), mirror, None)
        assert hook.describe(mirror) == f"hook: POST {receiver.url}/hooks/sales (okr.progress)"
    finally:
        await hook.aclose()
    (request,) = receiver.server.requests
    assert request.path == "/hooks/sales"
    assert request.headers["x-team-token"] == "team-tok-1234"
    assert request.json_body()["event"] == "okr.progress"


async def test_redirects_and_missing_receivers_are_errors(receiver: Receiver) -> None:
    hook = make_sink(f"{receiver.url}/okr")
    moved = {"Location": "https://hooks.example.com/okr"}
    receiver.server.faults.add(Fault(kind=FaultKind.STATUS, status=301, body="", headers=moved))
    receiver.server.faults.add(Fault(kind=FaultKind.STATUS, status=410))
    try:
        with pytest.raises(ConnectorError, match=r"HTTP 301 to https://hooks\.example\.com/okr"):
            await hook.push(update(), MIRROR, None)
        with pytest.raises(TargetNotFoundError, match="the receiver is gone"):
            await hook.push(update(), MIRROR, None)
    finally:
        await hook.aclose()
    assert receiver.state.received == []


def test_decimals_are_plain_strings() -> None:
    assert decimal_text(Decimal("1E+3")) == "1000"
    assert decimal_text(Decimal("0.10")) == "0.10"
    assert decimal_text(None) is None


def test_descriptor() -> None:
    assert load_registry().connectors["webhook"] is connector
    assert connector.mirror_model is WebhookMirror and connector.query_model is None
    assert connector.fake is not None
    assert isinstance(connector.fake().state.receiver, ReceiverState)


async def test_a_key_result_with_work_carries_its_summary(
    signed_receiver: Receiver, sink: WebhookSink
) -> None:
    done_at = datetime(2026, 11, 12, 8, tzinfo=UTC)
    since = datetime(2026, 11, 11, 9, tzinfo=UTC)
    work = WorkSummary(
        todo=3,
        in_progress=5,
        done=12,
        done_since=since,
        done_recently=(
            WorkLink(
                connection="jira",
                key="OKR-7",
                title="Ship it",
                url="https://j/OKR-7",
                done_at=done_at,
            ),
        ),
        done_recently_total=1,
    )
    await sink.push(update(work=work), MIRROR, None)
    (delivery,) = signed_receiver.state.received
    assert delivery.body["work"] == {
        "todo": 3,
        "in_progress": 5,
        "done": 12,
        "done_since": "2026-11-11T09:00:00+00:00",
        "done_recently": [
            {
                "connection": "jira",
                "key": "OKR-7",
                "title": "Ship it",
                "url": "https://j/OKR-7",
                "done_at": "2026-11-12T08:00:00+00:00",
            }
        ],
        "done_recently_total": 1,
    }
