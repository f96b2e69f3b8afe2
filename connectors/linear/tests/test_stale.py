"""Stale key results on Linear: a quoted warning in the one project update; health from status.

Driven over loopback sockets against the sandbox Linear.
"""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.linear import LinearConnector, LinearProjectUpdateMirror
from connectors.linear.sink import has_marker
from connectors.linear.tests.conftest import Fake, update
from okrsync.sdk.models import Status

KR = "eng-throughput"
CHECKED = datetime(2026, 11, 11, 7, 5, tzinfo=UTC)
CONFIRMED = datetime(2026, 11, 12, 9, 30, tzinfo=UTC)
WARNING = "> ⚠️ **Stale** — last confirmed 2026-11-11 07:05 UTC"


def ours(fake: Fake, pid: str) -> list[dict[str, object]]:
    return [u for u in fake.data.updates_on(pid) if has_marker(str(u["body"]), KR)]


async def test_stale_warning_then_fresh_edit_of_the_same_update(
    fake: Fake, linear: LinearConnector
) -> None:
    pid = str(fake.data.project_named("Checkout revamp")["id"])
    mirror = LinearProjectUpdateMirror(project_id=pid)
    at_risk = update(status=Status.AT_RISK)
    first = await linear.push(at_risk.model_copy(update={"checked_at": CONFIRMED}), mirror, None)
    stale = at_risk.model_copy(update={"stale": True, "checked_at": CHECKED})
    second = await linear.push(stale, mirror, first.ref)
    [shown] = ours(fake, pid)
    assert second.ref == first.ref and second.detail["action"] == "edited"
    body = str(shown["body"])
    assert body.startswith(f"**Complete 100 issues**\n\n{WARNING}\n\nObjective: ")
    assert "| Value | 42 issues |" in body  # the last confirmed number stays
    assert shown["health"] == "atRisk"  # health follows the status, not staleness

    fresh = at_risk.model_copy(update={"checked_at": CONFIRMED, "idempotency_key": "f-1"})
    third = await linear.push(fresh, mirror, second.ref)
    [shown] = ours(fake, pid)
    assert third.ref == first.ref and third.detail["action"] == "edited"
    assert "Stale" not in str(shown["body"])
    assert str(shown["body"]).startswith("**Complete 100 issues**\n\nObjective: ")
    assert shown["health"] == "atRisk"
    assert fake.data.created_per_project[pid] == 1
    assert fake.data.edits[str(first.ref)] == 2


async def test_stale_without_a_confirmation(fake: Fake, linear: LinearConnector) -> None:
    pid = str(fake.data.project_named("Checkout revamp")["id"])
    mirror = LinearProjectUpdateMirror(project_id=pid)
    await linear.push(update().model_copy(update={"stale": True}), mirror, None)
    [shown] = ours(fake, pid)
    assert "> ⚠️ **Stale** — no source has confirmed this value\n" in str(shown["body"])
    assert shown["health"] == "onTrack"
