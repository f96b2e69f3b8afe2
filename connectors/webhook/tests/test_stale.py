"""Stale key results in webhook deliveries: the body says ``stale`` and when it was confirmed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from connectors.webhook import WebhookMirror, WebhookSink
from connectors.webhook.tests.test_webhook import OBSERVED, Receiver, make_sink, start_receiver
from connectors.webhook.tests.test_webhook import update as kr_update
from okrsync.sdk.models import ObjectiveUpdate, Status

CHECKED = datetime(2026, 11, 11, 7, 5, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from start_receiver(None)


@pytest.fixture
async def hook(receiver: Receiver) -> AsyncIterator[WebhookSink]:
    sink = make_sink(f"{receiver.url}/okr")
    yield sink
    await sink.aclose()


async def test_delivered_body_says_stale_then_fresh(receiver: Receiver, hook: WebhookSink) -> None:
    await hook.push(kr_update("d-stale", stale=True, checked_at=CHECKED), WebhookMirror(), None)
    await hook.push(kr_update("d-fresh", checked_at=OBSERVED), WebhookMirror(), None)
    stale, fresh = (d.body for d in receiver.state.received)
    assert (stale["stale"], stale["checked_at"]) == (True, "2026-11-11T07:05:00+00:00")
    assert stale["value"] == "375.5"  # the last confirmed number, still sent
    assert (fresh["stale"], fresh["checked_at"]) == (False, "2026-11-12T09:30:00+00:00")


async def test_digest_key_results_say_stale(receiver: Receiver, hook: WebhookSink) -> None:
    digest = ObjectiveUpdate(
        objective_id="revenue",
        objective_title="Grow new-business revenue",
        cycle_id="2026-Q4",
        owner=None,
        progress=Decimal("0.3755"),
        status=Status.AT_RISK,
        observed_at=OBSERVED,
        idempotency_key="o-1",
        key_results=(kr_update(stale=True, checked_at=CHECKED),),
    )
    await hook.push_digest(digest, WebhookMirror(), None)
    (delivery,) = receiver.state.received
    (kr,) = delivery.body["key_results"]
    assert (kr["stale"], kr["checked_at"]) == (True, "2026-11-11T07:05:00+00:00")
