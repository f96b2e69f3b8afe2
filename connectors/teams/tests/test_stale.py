"""Stale key results on Teams: a Warning-coloured line on the card, over a real socket.

A Teams webhook can post but never edit, so "confirmed again" is a new card without the line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.teams import TeamsMirror, TeamsSink
from connectors.teams.fake import legacy_url
from connectors.teams.tests.conftest import Teams, make_sink
from connectors.teams.tests.test_sink import OBSERVED, kr_update, objective
from okrsync.sdk.models import ObjectiveUpdate

MIRROR = TeamsMirror()
CHECKED = datetime(2026, 11, 11, 7, 5, tzinfo=UTC)
WARNING = {
    "type": "TextBlock",
    "text": "⚠️ Stale — last confirmed 2026-11-11 07:05 UTC",
    "color": "Warning",
    "weight": "Bolder",
    "wrap": True,
    "spacing": "None",
}


def items(card: dict[str, Any]) -> list[dict[str, Any]]:
    (container,) = card["attachments"][0]["content"]["body"]
    found: list[dict[str, Any]] = container["items"]
    return found


async def test_stale_card_warns_and_the_fresh_one_does_not(teams: Teams, sink: TeamsSink) -> None:
    await sink.push(kr_update(stale=True, checked_at=CHECKED), MIRROR, None)
    await sink.push(kr_update(idempotency_key="d-2", checked_at=OBSERVED), MIRROR, None)
    assert not teams.state.failed_runs  # the flow posted both cards
    stale_card, fresh_card = teams.state.cards()
    _objective, _title, _bar, status, warning, facts = items(stale_card)
    assert (status["text"], warning) == ("At risk", WARNING)
    assert facts["facts"][0] == {"title": "Value", "value": "376 / 1,000 USD"}
    assert all("Stale" not in str(item) for item in items(fresh_card))
    assert len(items(fresh_card)) == 5
    assert teams.state.posts_for("key_result", "bookings") == 2  # webhooks cannot edit


async def test_legacy_webhook_takes_the_stale_card(teams: Teams) -> None:
    sink = make_sink(legacy_url(teams.server.url))
    try:
        result = await sink.push(kr_update(stale=True), MIRROR, None)
    finally:
        await sink.aclose()
    assert result.detail == {"status": 200}
    (card,) = teams.state.cards()
    assert items(card)[4]["text"] == "⚠️ Stale — no source has confirmed this value"


def _with_stale_win_rate(digest: ObjectiveUpdate) -> ObjectiveUpdate:
    bookings, win_rate = digest.key_results
    stale = win_rate.model_copy(update={"stale": True, "checked_at": CHECKED})
    return digest.model_copy(update={"key_results": (bookings, stale)})


async def test_digest_marks_the_stale_key_result(teams: Teams, sink: TeamsSink) -> None:
    await sink.push_digest(_with_stale_win_rate(objective()), MIRROR, None)
    await sink.push_digest(objective(), MIRROR, None)
    assert not teams.state.failed_runs
    stale_card, fresh_card = teams.state.cards()
    _title, _bar, _status, facts, warning, footer = items(stale_card)
    assert facts["facts"] == [
        {"title": "Close $1000 in new bookings", "value": "38% · at risk · 376 / 1,000 USD"},
        {
            "title": "Win rate above 70%",
            "value": (
                "60% · on track · 42.0 / 70.0 % · ⚠️ Stale — last confirmed 2026-11-11 07:05 UTC"
            ),
        },
    ]
    assert warning["color"] == "Warning" and warning["text"].startswith("⚠️ 1 of 2 key results")
    assert footer["text"].startswith("Cycle 2026-Q4")
    assert all("Stale" not in str(item) for item in items(fresh_card))
