"""The Slack sink against the Slack fake over loopback sockets."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from connectors.slack import SlackMirror, SlackSink, connector
from connectors.slack.blocks import EVENT_TYPE, progress_bar
from connectors.slack.fake import BOT_TOKEN, Channel
from connectors.slack.models import MessageRef
from connectors.slack.tests.conftest import (
    OBSERVED,
    PagingSlackSink,
    Slack,
    kr_update,
    make_sink,
    objective_update,
)
from okrsync.errors import (
    ConnectorError,
    CredentialsError,
    TargetNotFoundError,
    VendorResponseError,
)
from okrsync.sandbox import Fault, FaultKind
from okrsync.sdk.models import Status

OKRS = "C0OKRS0001"
MIRROR = SlackMirror(channel=OKRS)


def bot_messages(slack: Slack, channel: str = OKRS) -> list[Any]:
    return [m for m in slack.state.channel_messages(channel) if m.bot_id]


def request_paths(slack: Slack) -> list[str]:
    return [r.path.removeprefix("/api/") for r in slack.server.requests]


async def test_first_push_posts_the_exact_message(slack: Slack, sink: SlackSink) -> None:
    result = await sink.push(
        kr_update(), SlackMirror(channel=OKRS, link="https://okr.example/b"), None
    )
    ref = MessageRef.parse(result.ref or "")
    assert ref is not None and ref.channel == OKRS
    assert result.detail == {"created": True, "recovered": False, "thread_replies": 0}
    (message,) = bot_messages(slack)
    assert message.ts == ref.ts
    assert message.text == "Close $1000 in new bookings: 38% (376 / 1,000 USD), on track"
    header, section, context = message.blocks
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Close $1000 in new bookings", "emoji": True},
    }
    assert section["text"]["text"] == "_Grow new-business revenue_\n`▓▓▓▓░░░░░░` *38%*"
    assert section["fields"] == [
        {"type": "mrkdwn", "text": "*Value*\n376 / 1,000 USD"},
        {"type": "mrkdwn", "text": "*Status*\n:large_green_circle: On track"},
    ]
    stamp = int(OBSERVED.timestamp())
    assert context["elements"][0]["text"] == (
        f"Cycle *2026-Q4* · observed <!date^{stamp}^{{date_short_pretty}} {{time}}"
        "|2026-11-12 09:30 UTC> · <https://okr.example/b|Open>"
    )
    assert message.metadata == {
        "event_type": EVENT_TYPE,
        "event_payload": {
            "kind": "key_result",
            "id": "bookings",
            "cycle": "2026-Q4",
            "progress": "0.3755",
            "status": "on_track",
        },
    }
    # no reference yet: the channel is searched for an earlier message first (crash safety)
    search, request = slack.server.requests
    assert search.path == "/api/conversations.history"
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert sink.api_calls == 2


async def test_one_living_message_across_many_changes(slack: Slack, sink: SlackSink) -> None:
    ref: str | None = None
    for step in range(6):
        value = Decimal(150 * step)
        update = kr_update(str(value), str(value / 1000), key=f"d-{step}")
        result = await sink.push(update, MIRROR, ref)
        assert ref is None or result.ref == ref  # the same message every time
        ref = result.ref
    (message,) = bot_messages(slack)
    assert message.updates == 5
    assert slack.state.posted_per_channel[OKRS] == 1
    assert slack.state.posts_for("key_result", "bookings") == 1
    assert message.text.startswith("Close $1000 in new bookings: 75% (750 / 1,000 USD)")
    assert (
        request_paths(slack) == ["conversations.history", "chat.postMessage"] + ["chat.update"] * 5
    )
    # two people's messages are untouched
    assert len(slack.state.channel_messages(OKRS)) == 3


async def test_same_state_twice_changes_nothing_visible(slack: Slack, sink: SlackSink) -> None:
    first = await sink.push(kr_update(), MIRROR, None)
    (before,) = bot_messages(slack)
    blocks, text = json.dumps(before.blocks), before.text
    second = await sink.push(kr_update(), MIRROR, first.ref)
    assert second.ref == first.ref
    (after,) = bot_messages(slack)
    assert (json.dumps(after.blocks), after.text) == (blocks, text)
    assert slack.state.posts_for("key_result", "bookings") == 1


async def test_lost_ref_finds_the_message_instead_of_posting(slack: Slack) -> None:
    sink = make_sink(slack, cls=PagingSlackSink)
    try:
        first = await sink.push(kr_update(), MIRROR, None)
        for index in range(7):  # people talk: our message is now several history pages back
            slack.state.messages[OKRS].append(
                type(bot_messages(slack)[0])(
                    ts=slack.state.next_ts(), text=f"hi {index}", user="U0ALICE001"
                )
            )
        # crash: the push succeeded but the reference was never recorded
        second = await sink.push(kr_update("500", "0.5", key="d-2"), MIRROR, None)
    finally:
        await sink.aclose()
    assert second.ref == first.ref
    assert second.detail["recovered"] is True and second.detail["created"] is False
    assert slack.state.posts_for("key_result", "bookings") == 1
    (message,) = bot_messages(slack)
    assert "50%" in message.text and message.updates == 1
    history = [r for r in slack.server.requests if r.path.endswith("conversations.history")]
    recovery = history[1:]  # the first is the first push's own search of an empty past
    assert len(recovery) == 3  # pages of 3: 7 people's, then ours on page three
    assert all("include_all_metadata=true" in r.query for r in recovery)
    assert "cursor=" not in recovery[0].query and "cursor=" in recovery[2].query


async def test_lost_ref_with_a_channel_name_pages_the_channel_list(slack: Slack) -> None:
    slack.state.add_channel(Channel("C0ZZOKRS01", "zz-okrs"))  # sorts last: on the last page
    mirror = SlackMirror(channel="#zz-okrs")
    sink = make_sink(slack, cls=PagingSlackSink)
    try:
        first = await sink.push(kr_update(), mirror, None)
        assert (first.ref or "").startswith("C0ZZOKRS01:")
    finally:
        await sink.aclose()
    fresh = make_sink(slack, cls=PagingSlackSink)  # a restarted daemon knows no channel ids
    try:
        second = await fresh.push(kr_update("600", "0.6"), mirror, None)
    finally:
        await fresh.aclose()
    assert second.ref == first.ref
    assert slack.state.posts_for("key_result", "bookings") == 1
    lists = [r for r in slack.server.requests if r.path.endswith("conversations.list")]
    assert len(lists) == 8  # 17 visible channels in pages of 4, once per daemon
    assert "cursor=" not in lists[0].query and "cursor=" in lists[1].query


async def test_unknown_channel_name_is_explained(slack: Slack, sink: SlackSink) -> None:
    with pytest.raises(TargetNotFoundError) as caught:
        await sink.push(kr_update(), SlackMirror(channel="#nope"), None)
    text = str(caught.value)
    assert "connection 'team_chat'" in text and "'bookings'" in text and "#nope" in text
    assert "/invite" in text


async def test_deleted_message_is_posted_anew(slack: Slack, sink: SlackSink) -> None:
    first = await sink.push(kr_update(), MIRROR, None)
    old = MessageRef.parse(first.ref or "")
    assert old is not None
    slack.state.delete(OKRS, old.ts)  # someone deleted it in Slack
    second = await sink.push(kr_update("500", "0.5"), MIRROR, first.ref)
    assert second.ref != first.ref and second.detail["created"] is True
    (message,) = bot_messages(slack)
    assert second.ref == f"{OKRS}:{message.ts}"
    assert request_paths(slack)[1:] == ["chat.postMessage", "chat.update", "chat.postMessage"]


async def test_ratelimited_then_success_waits_retry_after(slack: Slack, sink: SlackSink) -> None:
    slack.state.limits["chat.update"] = (1, 1.0)
    first = await sink.push(kr_update(), MIRROR, None)
    await sink.push(kr_update("400", "0.4"), MIRROR, first.ref)
    result = await sink.push(kr_update("450", "0.45"), MIRROR, first.ref)  # 429, waits 1 s
    assert result.ref == first.ref
    updates = [r for r in slack.server.requests if r.path.endswith("chat.update")]
    assert len(updates) == 3
    assert (updates[2].at - updates[1].at).total_seconds() >= 0.9
    assert "45%" in bot_messages(slack)[0].text


async def test_server_error_then_success(slack: Slack, sink: SlackSink) -> None:
    slack.server.faults.add(Fault(kind=FaultKind.STATUS, status=503))
    result = await sink.push(kr_update(), MIRROR, None)
    assert result.ref is not None
    assert sink.api_calls == 3 and len(bot_messages(slack)) == 1


async def test_fatal_error_body_is_retried(slack: Slack, sink: SlackSink) -> None:
    slack.server.faults.add(
        Fault(kind=FaultKind.STATUS, status=200, body='{"ok":false,"error":"fatal_error"}')
    )
    result = await sink.push(kr_update(), MIRROR, None)
    assert result.ref is not None and sink.api_calls == 3


async def test_channel_not_found(slack: Slack, sink: SlackSink) -> None:
    with pytest.raises(TargetNotFoundError) as caught:
        await sink.push(kr_update(), SlackMirror(channel="C0NOPE0001"), None)
    text = str(caught.value)
    assert "connection 'team_chat'" in text
    assert "key result 'bookings'" in text and "'C0NOPE0001'" in text
    assert "channel_not_found" in text and "/invite" in text


async def test_not_in_channel(slack: Slack, sink: SlackSink) -> None:
    with pytest.raises(TargetNotFoundError) as caught:
        await sink.push(kr_update(), SlackMirror(channel="#random"), None)
    text = str(caught.value)
    assert "not a member" in text and "/invite" in text and "'#random'" in text


async def test_archived_channel(slack: Slack, sink: SlackSink) -> None:
    with pytest.raises(TargetNotFoundError, match="archived"):
        await sink.push(kr_update(), SlackMirror(channel="C0OLDQ3001"), "C0OLDQ3001:bogus")


@pytest.mark.parametrize("error", ["invalid_auth", "token_revoked"])
async def test_rejected_token_names_the_connection(slack: Slack, error: str) -> None:
    token = "xoxb-not-a-real-token-123"
    if error == "token_revoked":
        slack.state.tokens.add(token)
        slack.state.revoked.add(token)
    sink = make_sink(slack, token=token)
    try:
        with pytest.raises(CredentialsError) as caught:
            await sink.push(kr_update(), MIRROR, None)
    finally:
        await sink.aclose()
    text = str(caught.value)
    assert "connection 'team_chat'" in text and error in text and "token" in text
    assert token not in text
    assert sink.api_calls == 1  # a rejected token is not retried


async def test_invalid_blocks_shows_slacks_messages(slack: Slack, sink: SlackSink) -> None:
    body = {
        "ok": False,
        "error": "invalid_blocks",
        "response_metadata": {
            "messages": [
                "[ERROR] must be less than 151 characters [json-pointer:/blocks/0/text/text]"
            ]
        },
    }
    slack.server.faults.add(Fault(kind=FaultKind.STATUS, status=200, body=json.dumps(body)))
    with pytest.raises(ConnectorError) as caught:
        await sink.push(kr_update(), MIRROR, None)
    assert "invalid_blocks" in str(caught.value)
    assert "must be less than 151 characters" in str(caught.value)
    assert not isinstance(caught.value, TargetNotFoundError | CredentialsError)


async def test_malformed_answer(slack: Slack, sink: SlackSink) -> None:
    slack.server.faults.add(Fault(kind=FaultKind.MALFORMED))
    with pytest.raises(VendorResponseError, match="not valid JSON"):
        await sink.push(kr_update(), MIRROR, None)


async def test_html_answer(slack: Slack, sink: SlackSink) -> None:
    slack.server.faults.add(Fault(kind=FaultKind.HTML, status=200))
    with pytest.raises(VendorResponseError, match="HTML"):
        await sink.push(kr_update(), MIRROR, None)


async def test_thread_alerts_on_thresholds_and_status(slack: Slack, sink: SlackSink) -> None:
    mirror = SlackMirror(channel=OKRS, thread_alerts=True)
    first = await sink.push(kr_update("200", "0.2"), mirror, None)
    assert first.detail["thread_replies"] == 0
    second = await sink.push(kr_update("550", "0.55", Status.AT_RISK, key="d-2"), mirror, first.ref)
    assert second.detail["thread_replies"] == 3
    ref = MessageRef.parse(first.ref or "")
    assert ref is not None
    replies = [m.text for m in slack.state.replies(OKRS, ref.ts)]
    assert replies == [
        ":tada: *Close $1000 in new bookings* reached 25% (550 / 1,000 USD)",
        ":tada: *Close $1000 in new bookings* reached 50% (550 / 1,000 USD)",
        ":large_yellow_circle: *Close $1000 in new bookings* is now at risk at 55%",
    ]
    again = await sink.push(kr_update("550", "0.55", Status.AT_RISK, key="d-2"), mirror, first.ref)
    assert again.detail["thread_replies"] == 0  # the retry of a delivery repeats no alert
    assert len(bot_messages(slack)) == 1  # replies stay in the thread
    assert slack.state.posts_for("key_result", "bookings") == 1


async def test_digest_is_one_living_message(slack: Slack, sink: SlackSink) -> None:
    assert connector.supports_digest
    first = await sink.push_digest(objective_update(), MIRROR, None)
    second = await sink.push_digest(objective_update("0.7", key="o-2"), MIRROR, first.ref)
    third = await sink.push_digest(objective_update("0.8", key="o-3"), MIRROR, None)  # lost ref
    assert first.ref == second.ref == third.ref
    assert slack.state.posts_for("objective", "revenue") == 1
    (message,) = bot_messages(slack)
    assert message.text == "Grow new-business revenue: 80%, at risk (2 key results)"
    header, summary, divider, kr1, kr2, context = message.blocks
    assert header["text"]["text"] == "Grow new-business revenue"
    assert summary["text"]["text"] == (
        f"`{progress_bar(Decimal('0.8'))}` *80%* :large_yellow_circle: At risk · owner *sales*"
    )
    assert divider == {"type": "divider"}
    assert kr2["text"]["text"] == (
        ":large_yellow_circle: *Win rate above 70%*\n`▓▓▓▓▓▓░░░░` 60% · 42.0 / 70.0 %"
    )
    assert kr1["text"]["text"].startswith(":large_green_circle: *Close $1000 in new bookings*")
    assert context["type"] == "context"
    assert message.metadata["event_payload"]["kind"] == "objective"


async def test_fake_accepts_form_and_json_like_slack(slack: Slack) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    async with httpx.AsyncClient(base_url=slack.api) as client:
        form = await client.post(
            "chat.postMessage",
            data={
                "token": BOT_TOKEN,
                "channel": "#okrs",
                "text": "hi",
                "blocks": json.dumps(blocks),
            },
        )
        assert form.json()["ok"] is True and form.json()["channel"] == OKRS
        no_header = await client.post(
            "chat.postMessage", json={"token": BOT_TOKEN, "channel": OKRS, "text": "hi"}
        )
        assert no_header.json() == {"ok": False, "error": "not_authed"}
        bad = await client.post(
            "chat.postMessage",
            headers={"Authorization": f"Bearer {BOT_TOKEN}"},
            json={
                "channel": OKRS,
                "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
            },
        )
        assert bad.json()["error"] == "invalid_blocks"
        assert "151" in bad.json()["response_metadata"]["messages"][0]
        update = await client.post(
            "chat.update",
            headers={"Authorization": f"Bearer {BOT_TOKEN}"},
            json={"channel": "#okrs", "ts": form.json()["ts"], "text": "x"},
        )
        assert update.json() == {"ok": False, "error": "channel_not_found"}  # needs the id
        people = slack.state.channel_messages(OKRS)[0]
        theirs = await client.post(
            "chat.update",
            headers={"Authorization": f"Bearer {BOT_TOKEN}"},
            json={"channel": OKRS, "ts": people.ts, "text": "x"},
        )
        assert theirs.json() == {"ok": False, "error": "cant_update_message"}
    assert slack.state.posted_per_channel[OKRS] == 1


async def test_fake_private_channel_hidden_unless_member(slack: Slack) -> None:
    slack.state.add_channel(Channel("G0SECRET01", "secret", is_private=True, bot_is_member=False))
    async with httpx.AsyncClient(
        base_url=slack.api, headers={"Authorization": f"Bearer {BOT_TOKEN}"}
    ) as client:
        answer = await client.post("chat.postMessage", json={"channel": "G0SECRET01", "text": "x"})
        names: list[str] = []
        cursor = ""
        while True:
            page = (
                await client.get(
                    "conversations.list",
                    params={
                        "types": "public_channel,private_channel",
                        "limit": 5,
                        "cursor": cursor,
                    },
                )
            ).json()
            names += [c["name"] for c in page["channels"]]
            cursor = page["response_metadata"]["next_cursor"]
            if not cursor:
                break
    assert answer.json() == {"ok": False, "error": "channel_not_found"}
    assert "secret" not in names and "leadership" in names and len(names) == len(set(names)) == 17


def test_models_and_descriptor() -> None:
    assert connector.type == "slack" and connector.mirror_model is SlackMirror
    with pytest.raises(ValidationError):
        SlackMirror.model_validate({"channel": OKRS, "colour": "red"})
    with pytest.raises(ValidationError, match="xoxb"):
        connector.connection_model.model_validate({"type": "slack", "token": "hunter2"})
    assert MessageRef.parse("C0OKRS0001:1700000000.000100") == MessageRef(
        "C0OKRS0001", "1700000000.000100"
    )
    assert MessageRef.parse("garbage") is None
    assert str(MessageRef("C1", "1700000000.000100")) == "C1:1700000000.000100"


async def test_a_key_result_own_decimals_show(slack: Slack, sink: SlackSink) -> None:
    """``decimals: 2`` on a USD key result: cents shown, half-up, separators (issue 17)."""
    update = kr_update(value="1234.565", decimals=2)
    await sink.push(update, SlackMirror(channel=OKRS), None)
    (message,) = bot_messages(slack)
    assert "(1,234.57 / 1,000.00 USD)" in message.text
