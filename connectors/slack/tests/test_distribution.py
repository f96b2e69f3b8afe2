"""``distribution``: conversations.history's pace and page size follow Slack's published limits for
the kind of app (internal and Marketplace: Tier 3, pages of 100; commercially distributed outside
the Marketplace: 1 a minute, pages of at most 15), in the sink and in the fake alike.

Slack's minute is simulated: the fake's limits and the sink's windows read one fake clock, which
the sink's waits advance, so a search that really takes minutes runs in a moment and the test
judges the pace by that clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from connectors.slack import SlackConnection, SlackMirror
from connectors.slack.fake import BOT_TOKEN, Message
from connectors.slack.limits import HISTORY_LIMITS, history_limits, history_page
from connectors.slack.sink import WINDOW_MARGIN, SlackSink, WindowBudget
from connectors.slack.tests.conftest import FastSlackSink, Slack, kr_update, make_sink
from okrsync.sdk.ledger import SharedBucket

OKRS = "C0OKRS0001"
MIRROR = SlackMirror(channel=OKRS)


class FakeMinute:
    """One clock for the fake's limits and the sink's windows; the sink's waits advance it."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.waited: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waited.append(seconds)
        self.now += max(0.0, seconds)


def sink_on(minute: FakeMinute) -> type[SlackSink]:
    clock: Callable[[], float] = minute.clock
    sleep: Callable[[float], Awaitable[None]] = minute.sleep

    class SimulatedMinuteSink(FastSlackSink):
        def window_budget(self, pace: tuple[int, float], shared: SharedBucket) -> WindowBudget:
            return WindowBudget(*pace, shared=shared, clock=clock, sleep=sleep)

    return SimulatedMinuteSink


def history_requests(slack: Slack) -> list[Any]:
    return [r for r in slack.server.requests if r.path.endswith("conversations.history")]


def chatter(slack: Slack, count: int) -> None:
    for index in range(count):
        slack.state.messages[OKRS].append(
            Message(ts=slack.state.next_ts(), text=f"hi {index}", user="U0ALICE001")
        )


def test_published_limits_by_kind_of_app() -> None:
    assert history_limits("internal").pace == history_limits("marketplace").pace == (50, 60.0)
    distributed = history_limits("distributed")
    assert (distributed.calls, distributed.seconds) == (1, 60.0)
    assert distributed.max_page == distributed.default_page == 15
    assert history_page("distributed", 100) == 15 and history_page("internal", 100) == 100
    assert set(HISTORY_LIMITS) == {"internal", "marketplace", "distributed"}


def test_the_connection_defaults_to_an_internal_app() -> None:
    base = {"type": "slack", "token": BOT_TOKEN}
    assert SlackConnection.model_validate(base).distribution == "internal"
    chosen = SlackConnection.model_validate({**base, "distribution": "distributed"})
    assert chosen.distribution == "distributed"
    with pytest.raises(ValidationError, match="internal"):
        SlackConnection.model_validate({**base, "distribution": "public"})


def test_the_fake_serves_a_distributed_app_15_messages_once_a_minute(slack: Slack) -> None:
    minute = FakeMinute()
    slack.state.clock = minute.clock
    slack.state.set_distribution("distributed")
    chatter(slack, 40)
    auth = {"Authorization": f"Bearer {BOT_TOKEN}"}

    def history(**params: Any) -> httpx.Response:
        return httpx.get(
            f"{slack.api}conversations.history", params={"channel": OKRS, **params}, headers=auth
        )

    first = history(limit=100)
    assert first.status_code == 200 and len(first.json()["messages"]) == 15
    refused = history()
    assert refused.status_code == 429 and refused.json() == {"ok": False, "error": "ratelimited"}
    assert int(refused.headers["Retry-After"]) == 60
    minute.now += 60
    default = history()
    assert len(default.json()["messages"]) == 15 and default.json()["has_more"] is True
    assert slack.state.rate_limited["conversations.history"] == 1

    slack.state.set_distribution("internal")
    minute.now += 60
    internal = history()
    assert len(internal.json()["messages"]) == 42  # everything: the default page is 100


def test_a_thread_parent_shows_its_thread_in_history(slack: Slack) -> None:
    parent = Message(ts=slack.state.next_ts(), text="plan?", user="U0ALICE001")
    slack.state.messages[OKRS].append(parent)
    for user in ("U0BOB00001", "U0ALICE001", "U0BOB00001"):
        slack.state.messages[OKRS].append(
            Message(ts=slack.state.next_ts(), text="re", user=user, thread_ts=parent.ts)
        )
    latest = slack.state.messages[OKRS][-1].ts
    answer = httpx.get(
        f"{slack.api}conversations.history",
        params={"channel": OKRS},
        headers={"Authorization": f"Bearer {BOT_TOKEN}"},
    ).json()
    by_ts = {m["ts"]: m for m in answer["messages"]}
    assert len(by_ts) == 3  # two earlier messages and the parent; replies stay in the thread
    shown = by_ts[parent.ts]
    assert shown["thread_ts"] == parent.ts and shown["reply_count"] == 3
    assert shown["reply_users"] == ["U0BOB00001", "U0ALICE001"]
    assert shown["reply_users_count"] == 2 and shown["latest_reply"] == latest
    assert all("reply_count" not in m for ts, m in by_ts.items() if ts != parent.ts)


async def test_lost_message_search_of_a_distributed_app_keeps_slacks_pace(slack: Slack) -> None:
    minute = FakeMinute()
    slack.state.clock = minute.clock
    slack.state.set_distribution("distributed")
    sink = make_sink(slack, cls=sink_on(minute), distribution="distributed")
    try:
        first = await sink.push(kr_update(), MIRROR, None)
        chatter(slack, 40)  # our message is now three pages of 15 back
        started = minute.now
        # crash: the push succeeded but its reference was never recorded
        second = await sink.push(kr_update("500", "0.5", key="d-2"), MIRROR, None)
    finally:
        await sink.aclose()
    assert second.ref == first.ref and second.detail["recovered"] is True
    assert slack.state.posts_for("key_result", "bookings") == 1
    assert slack.state.rate_limited["conversations.history"] == 0  # not one 429
    history = history_requests(slack)
    recovery = history[1:]  # the first is the first push's own search of an empty past
    assert len(recovery) == 3  # 40 people's messages in pages of 15, ours on page three
    assert all("limit=15" in r.query for r in history)
    # each history call waited its minute after the one before, by Slack's clock
    assert minute.now - started >= 3 * 60.0
    assert sum(w for w in minute.waited if w > 0) >= 3 * (60.0 + WINDOW_MARGIN) - 1e-6


async def test_an_internal_app_searches_in_pages_of_100_without_waiting(slack: Slack) -> None:
    minute = FakeMinute()
    slack.state.clock = minute.clock
    sink = make_sink(slack, cls=sink_on(minute))
    try:
        first = await sink.push(kr_update(), MIRROR, None)
        chatter(slack, 40)
        second = await sink.push(kr_update("500", "0.5", key="d-2"), MIRROR, None)
    finally:
        await sink.aclose()
    assert second.ref == first.ref
    history = history_requests(slack)
    assert len(history) == 2 and all("limit=100" in r.query for r in history)
    assert minute.now == 1_000.0  # Tier 3: two calls never wait
