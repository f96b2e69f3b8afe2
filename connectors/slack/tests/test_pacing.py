"""The sink paces itself within Slack's per-method limits: a burst waits its turn, no 429s.

The window arithmetic is checked with a fake clock; the sink against the Slack fake (over
loopback) with limits scaled down to a second, so a burst that Slack would refuse shows within
a few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from connectors.slack import SlackMirror, SlackSink
from connectors.slack.fake import DEFAULT_LIMITS
from connectors.slack.sink import WindowBudget
from connectors.slack.tests.conftest import FastSlackSink, Slack, kr_update, make_sink
from okrsync.sdk.connector import PushContext

OKRS, SALES = "C0OKRS0001", "C0SALES001"
SCALED = (3, 1.0)  # three calls in any second, for the fake and for the sink alike


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_window_lets_a_burst_through_then_follows_the_oldest_send() -> None:
    fake = FakeTime()
    budget = WindowBudget(3, 10.0, margin=0.5, clock=fake.clock, sleep=fake.sleep)
    sent: list[float] = []

    async def call(at: float | None = None) -> None:
        if at is not None:
            fake.now = at
        async with budget.slot():
            sent.append(fake.now)

    for at in (0.0, 4.0, 8.0):  # three spread out, within one window
        await call(at)
    await call(9.0)  # the fourth follows the first by a whole window
    await call()  # the fifth follows the second, not the start of a fixed minute
    await call(30.0)  # after a quiet spell nothing waits
    assert sent == [0.0, 4.0, 8.0, 10.5, 14.5, 30.0]


async def test_window_queues_concurrent_callers_one_after_another() -> None:
    budget = WindowBudget(2, 0.2, margin=0.0)
    sent: list[float] = []

    async def call() -> None:
        async with budget.slot():
            sent.append(time.monotonic())

    await asyncio.gather(*(call() for _ in range(6)))
    sent.sort()
    assert all(later - earlier >= 0.19 for earlier, later in zip(sent, sent[2:], strict=False))
    assert sent[-1] - sent[0] >= 0.39  # two windows for six calls, two at a time


def test_window_needs_a_positive_window() -> None:
    with pytest.raises(ValueError):
        WindowBudget(0, 60.0)
    with pytest.raises(ValueError):
        WindowBudget(5, 0.0)


def test_default_pace_stays_within_slacks_documented_limits() -> None:
    """The fake's limits are Slack's documented tiers; the sink must never ask for more."""
    paced = {**SlackSink.method_pace, "chat.postMessage": SlackSink.post_pace}
    assert {"chat.update", "chat.postMessage", "conversations.history"} <= set(paced)
    for method, (calls, window) in paced.items():
        allowed, per = DEFAULT_LIMITS[method]
        assert calls <= allowed and window >= per, method


class ScaledSink(FastSlackSink):
    method_pace = {"chat.update": SCALED}
    post_pace = SCALED


class UnpacedSink(FastSlackSink):
    method_pace = {}


@pytest.fixture
def scaled(slack: Slack) -> Slack:
    slack.state.limits["chat.update"] = SCALED
    slack.state.limits["chat.postMessage"] = SCALED
    return slack


@pytest.fixture
async def paced(scaled: Slack) -> AsyncIterator[SlackSink]:
    sink = make_sink(scaled, cls=ScaledSink)
    yield sink
    await sink.aclose()


def updates_sent(slack: Slack) -> int:
    return sum(r.path.endswith("/chat.update") for r in slack.server.requests)


async def test_a_burst_of_updates_waits_instead_of_being_refused(
    scaled: Slack, paced: SlackSink
) -> None:
    mirror = SlackMirror(channel=OKRS)
    first = await paced.deliver(kr_update(), mirror, PushContext(first_attempt=True))
    began = time.monotonic()
    results = await asyncio.gather(
        *(
            paced.push(kr_update(str(i), str(i / 1000), key=f"d-{i}"), mirror, first.ref)
            for i in range(9)
        )
    )
    took = time.monotonic() - began
    assert all(r.ref == first.ref for r in results)
    assert updates_sent(scaled) == 9  # not one refused and sent again
    assert took >= 2 * SCALED[1]  # three windows' worth: it waited


async def test_the_same_burst_unpaced_is_refused_by_slack(scaled: Slack) -> None:
    """The control: without the pace, the fake answers 429 and the sink sends again."""
    sink = make_sink(scaled, cls=UnpacedSink)
    mirror = SlackMirror(channel=OKRS)
    try:
        first = await sink.deliver(kr_update(), mirror, PushContext(first_attempt=True))
        await asyncio.gather(
            *(
                sink.push(kr_update(str(i), str(i / 1000), key=f"d-{i}"), mirror, first.ref)
                for i in range(9)
            ),
            return_exceptions=True,
        )
    finally:
        await sink.aclose()
    assert updates_sent(scaled) > 9


async def test_posts_are_paced_per_channel(scaled: Slack, paced: SlackSink) -> None:
    began = time.monotonic()
    results = await asyncio.gather(
        *(
            paced.deliver(
                kr_update(key_result_id=f"kr{i}"),
                SlackMirror(channel=channel),
                PushContext(first_attempt=True),
            )
            for channel in (OKRS, SALES)
            for i in range(4)
        )
    )
    took = time.monotonic() - began
    assert len({r.ref for r in results}) == 8
    posts = [r for r in scaled.server.requests if r.path.endswith("/chat.postMessage")]
    assert len(posts) == 8  # none refused by Slack's per-channel limit
    # four posts in a channel need two windows; the two channels do not wait for each other
    assert SCALED[1] <= took < 3 * SCALED[1]
