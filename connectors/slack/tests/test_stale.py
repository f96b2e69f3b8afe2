"""Stale key results on Slack: a warning beside the number, edited away when a source confirms.

The sink is driven over loopback sockets against the Slack fake; what a team would see is read
from the fake's stored message.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.slack import SlackMirror, SlackSink
from connectors.slack.blocks import alerts, key_result_state, objective_state, stale_text
from connectors.slack.fake import Message
from connectors.slack.models import MessageRef
from connectors.slack.tests.conftest import OBSERVED, Slack, kr_update, objective_update
from okrsync.sdk.models import ObjectiveUpdate, Status

OKRS = "C0OKRS0001"
MIRROR = SlackMirror(channel=OKRS)
CHECKED = datetime(2026, 11, 11, 7, 5, tzinfo=UTC)  # a day before OBSERVED
STAMP = int(CHECKED.timestamp())
MARKER = (
    f":warning: *Stale* — last confirmed <!date^{STAMP}^{{date_short_pretty}} {{time}}"
    "|2026-11-11 07:05 UTC>"
)


def bot_message(slack: Slack) -> Message:
    (message,) = [m for m in slack.state.channel_messages(OKRS) if m.bot_id]
    return message


def blocks_of(message: Message) -> list[Any]:
    assert message.blocks is not None
    return message.blocks


def section_text(slack: Slack) -> str:
    _header, section, _context = blocks_of(bot_message(slack))
    return str(section["text"]["text"])


async def test_stale_marker_appears_then_a_fresh_push_edits_it_away(
    slack: Slack, sink: SlackSink
) -> None:
    first = await sink.push(kr_update(checked_at=OBSERVED), MIRROR, None)
    assert "Stale" not in section_text(slack)

    stale = kr_update(key="stale-1", stale=True, checked_at=CHECKED)
    second = await sink.push(stale, MIRROR, first.ref)
    assert second.ref == first.ref and second.detail["created"] is False
    assert section_text(slack) == (f"_Grow new-business revenue_\n`▓▓▓▓░░░░░░` *38%*\n{MARKER}")
    message = bot_message(slack)
    assert message.text == (
        "Close $1000 in new bookings: 38% (376 / 1,000 USD), on track "
        "(stale, last confirmed 2026-11-11 07:05 UTC)"
    )

    fresh = kr_update(key="fresh-1", checked_at=OBSERVED + timedelta(minutes=5))
    third = await sink.push(fresh, MIRROR, second.ref)
    assert third.ref == first.ref
    assert section_text(slack) == "_Grow new-business revenue_\n`▓▓▓▓░░░░░░` *38%*"
    assert "stale" not in message.text
    assert message.updates == 2
    assert slack.state.posts_for("key_result", "bookings") == 1


async def test_staleness_alone_posts_no_thread_alert(slack: Slack, sink: SlackSink) -> None:
    mirror = SlackMirror(channel=OKRS, thread_alerts=True)
    at_risk = ("300", "0.3", Status.AT_RISK)
    first = await sink.push(kr_update(*at_risk, checked_at=CHECKED), mirror, None)
    stale = await sink.push(
        kr_update(*at_risk, key="s", stale=True, checked_at=CHECKED), mirror, first.ref
    )
    fresh = await sink.push(kr_update(*at_risk, key="f", checked_at=OBSERVED), mirror, first.ref)
    assert [r.detail["thread_replies"] for r in (first, stale, fresh)] == [0, 0, 0]
    ref = MessageRef.parse(first.ref or "")
    assert ref is not None and slack.state.replies(OKRS, ref.ts) == []


def test_alerts_ignore_a_stale_flip_either_way() -> None:
    at_risk = ("300", "0.3", Status.AT_RISK)
    fresh = kr_update(*at_risk, checked_at=OBSERVED)
    stale = kr_update(*at_risk, stale=True, checked_at=CHECKED)
    assert alerts(key_result_state(fresh), stale) == []
    assert alerts(key_result_state(stale), fresh) == []
    # a real move still alerts, stale or not: the alert is about progress, not freshness
    moved = kr_update("550", "0.55", Status.AT_RISK, stale=True, checked_at=CHECKED)
    assert alerts(key_result_state(fresh), moved) == [
        ":tada: *Close $1000 in new bookings* reached 50% (550 / 1,000 USD)"
    ]


def test_state_payload_carries_stale_only_while_stale() -> None:
    fresh = kr_update(checked_at=CHECKED)
    confirmed_later = kr_update(key="d-9", checked_at=OBSERVED)
    stale = kr_update(stale=True, checked_at=CHECKED)
    # a re-push of the same state is the same state, however recently it was confirmed
    assert key_result_state(fresh) == key_result_state(confirmed_later)
    assert "stale" not in key_result_state(fresh)  # as messages written before staleness read
    assert key_result_state(stale) == {**key_result_state(fresh), "stale": True}
    assert key_result_state(stale) == key_result_state(kr_update(stale=True, key="x"))


def test_objective_state_is_stale_while_any_key_result_is() -> None:
    digest = objective_update()
    assert "stale" not in objective_state(digest)
    one_stale = _with_stale_win_rate(digest)
    assert objective_state(one_stale) == {**objective_state(digest), "stale": True}


def test_stale_without_a_confirmation_says_so() -> None:
    assert stale_text(kr_update(stale=True)) == (
        ":warning: *Stale* — no source has confirmed this value"
    )


async def test_message_metadata_says_stale(slack: Slack, sink: SlackSink) -> None:
    await sink.push(kr_update(stale=True, checked_at=CHECKED), MIRROR, None)
    message = bot_message(slack)
    assert message.metadata is not None
    assert message.metadata["event_payload"]["stale"] is True


def _with_stale_win_rate(digest: ObjectiveUpdate) -> ObjectiveUpdate:
    bookings, win_rate = digest.key_results
    stale = win_rate.model_copy(update={"stale": True, "checked_at": CHECKED})
    return digest.model_copy(update={"key_results": (bookings, stale), "idempotency_key": "o-s"})


async def test_digest_marks_only_the_stale_key_result(slack: Slack, sink: SlackSink) -> None:
    first = await sink.push_digest(_with_stale_win_rate(objective_update()), MIRROR, None)
    message = bot_message(slack)
    blocks = blocks_of(message)
    bookings, win_rate = blocks[3]["text"]["text"], blocks[4]["text"]["text"]
    assert "Stale" not in bookings
    assert win_rate == (
        f":large_yellow_circle: *Win rate above 70%*\n`▓▓▓▓▓▓░░░░` 60% · 42.0 / 70.0 %\n{MARKER}"
    )
    assert message.text == ("Grow new-business revenue: 50%, at risk (2 key results, 1 stale)")

    second = await sink.push_digest(objective_update(key="o-2"), MIRROR, first.ref)
    assert second.ref == first.ref
    assert all("Stale" not in str(b) for b in blocks_of(message))
    assert message.text == "Grow new-business revenue: 50%, at risk (2 key results)"
    assert slack.state.posts_for("objective", "revenue") == 1
