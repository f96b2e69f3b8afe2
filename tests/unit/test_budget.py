"""The call budget's arithmetic, measured on a fake clock instead of by sleeping."""

from __future__ import annotations

import asyncio
import itertools
import math
import re

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from okrsync.errors import QuotaExhaustedError
from okrsync.sdk.budget import BudgetPolicy, CallBudget
from okrsync.sdk.connector import ConnectionConfig, Connector, ConnectorBase
from okrsync.sdk.ledger import BucketKey, ConnectionBudgets, LocalLedger
from okrsync.sdk.pace import (
    WINDOW_SLOTS,
    BucketState,
    Pace,
    SlidingWindow,
    Taken,
    TokenBucket,
    decode_sends,
    encode_sends,
    hold,
    take,
)

WALL = 1_700_000_000.0  # a fixed "now" for headers that carry epoch timestamps


class FakeClock:
    """Virtual time: ``sleep`` moves the clock to the sleeper's wake-up time, never backwards.

    Concurrent sleepers each wake at their own target, in the order asyncio resumes them, which
    is the order of their targets because they went to sleep in that order.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL + self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        target = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, target)


def budget(clock: FakeClock, **policy: object) -> CallBudget:
    return CallBudget(
        BudgetPolicy(**policy),  # type: ignore[arg-type]
        clock=clock,
        wall_clock=clock.wall,
        sleep=clock.sleep,
    )


async def start_times(b: CallBudget, clock: FakeClock, n: int) -> list[float]:
    starts: list[float] = []
    for _ in range(n):
        async with b.slot():
            starts.append(clock())
    return starts


# --- token bucket -----------------------------------------------------------------------------


async def test_no_rate_means_no_waiting() -> None:
    clock = FakeClock()
    b = budget(clock)
    assert await start_times(b, clock, 20) == [0.0] * 20
    assert b.calls == 20


async def test_requests_per_second_spaces_sequential_requests() -> None:
    clock = FakeClock()
    b = budget(clock, requests_per_second=2.0)
    starts = await start_times(b, clock, 5)
    assert starts == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    # throughput over the run: 4 intervals in 2 s
    assert (len(starts) - 1) / (starts[-1] - starts[0]) == pytest.approx(2.0)


async def test_burst_lets_a_few_go_back_to_back_after_a_quiet_spell() -> None:
    clock = FakeClock()
    b = budget(clock, requests_per_second=1.0, burst=3)
    assert await start_times(b, clock, 5) == pytest.approx([0.0, 0.0, 0.0, 1.0, 2.0])
    clock.now += 10.0  # quiet: the bucket refills, but only up to the burst size
    again = await start_times(b, clock, 4)
    assert [t - again[0] for t in again] == pytest.approx([0.0, 0.0, 0.0, 1.0])


async def test_concurrent_requests_queue_behind_each_other() -> None:
    clock = FakeClock()
    b = budget(clock, requests_per_second=4.0, max_concurrency=10)
    starts: list[float] = []

    async def one() -> None:
        async with b.slot():
            starts.append(clock())

    await asyncio.gather(*(one() for _ in range(8)))
    assert sorted(starts) == pytest.approx([i * 0.25 for i in range(8)])


# --- concurrency ------------------------------------------------------------------------------


async def test_concurrency_limit_is_honoured() -> None:
    b = CallBudget(BudgetPolicy(max_concurrency=3))
    active = peak = 0

    async def one() -> None:
        nonlocal active, peak
        async with b.slot():
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1

    await asyncio.gather(*(one() for _ in range(12)))
    assert peak == 3
    assert b.calls == 12


async def test_a_failed_request_gives_its_slot_back() -> None:
    b = CallBudget(BudgetPolicy(max_concurrency=1))
    with pytest.raises(RuntimeError):
        async with b.slot():
            raise RuntimeError("boom")
    async with asyncio.timeout(1):
        async with b.slot():
            pass


# --- holds ------------------------------------------------------------------------------------


async def test_hold_until_makes_everyone_wait() -> None:
    clock = FakeClock()
    b = budget(clock, max_concurrency=5)
    b.hold_until(5.0)
    assert b.held_for() == 5.0
    starts: list[float] = []

    async def one() -> None:
        async with b.slot():
            starts.append(clock())

    await asyncio.gather(*(one() for _ in range(3)))
    assert starts == pytest.approx([5.0, 5.0, 5.0])
    assert b.held_for() == 0.0


async def test_holds_only_grow() -> None:
    clock = FakeClock()
    b = budget(clock)
    b.hold_until(10.0)
    b.hold_until(2.0)
    b.hold_until(-1.0)
    b.hold_until(float("nan"))
    assert b.held_for() == 10.0


@pytest.mark.parametrize(
    ("headers", "hold"),
    [
        # GitHub: reset is a Unix timestamp
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(WALL) + 30)}, 30.0),
        # a delta in seconds under the same names
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "12"}, 12.0),
        # Jira: ISO-8601 timestamp, minutes precision (WALL is 22:13:20Z)
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2023-11-14T22:14Z"}, 40.0),
        # IETF draft, separate fields, delta seconds
        ({"RateLimit-Remaining": "0", "RateLimit-Reset": "7"}, 7.0),
        # IETF draft, combined field
        ({"RateLimit": '"default";r=0;t=9'}, 9.0),
    ],
)
def test_observe_holds_when_the_window_is_spent(headers: dict[str, str], hold: float) -> None:
    clock = FakeClock()
    b = budget(clock)
    b.observe(httpx.Headers(headers))
    assert b.held_for() == pytest.approx(hold)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ratelimit-remaining": "4999", "x-ratelimit-reset": str(int(WALL) + 30)},
        {"RateLimit-Remaining": "1", "RateLimit-Reset": "7"},
        {"RateLimit": '"default";r=5;t=9'},
        # a vendor's own headers are its connector's observers' business (none here)
        {"X-HubSpot-RateLimit-Remaining": "0", "X-HubSpot-RateLimit-Interval-Milliseconds": "1"},
        {"X-RateLimit-Remaining": "0"},  # spent, but no idea until when: the 429 will say
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "whenever"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(WALL) - 30)},  # past
        {},
    ],
)
def test_observe_ignores_headers_that_leave_room(headers: dict[str, str]) -> None:
    clock = FakeClock()
    b = budget(clock)
    b.observe(httpx.Headers(headers))
    assert b.held_for() == 0.0


def test_observe_caps_absurd_holds_at_a_day() -> None:
    clock = FakeClock()
    b = budget(clock)
    b.observe(httpx.Headers({"RateLimit-Remaining": "0", "RateLimit-Reset": "999999999"}))
    assert b.held_for() == 86_400.0


def test_extra_observers_read_vendor_specific_headers() -> None:
    def salesforce(headers: httpx.Headers) -> float | None:
        match = re.search(r"api-usage=(\d+)/(\d+)", headers.get("sforce-limit-info", ""))
        if match and int(match[1]) >= int(match[2]):
            return 3600.0
        return None

    clock = FakeClock()
    b = CallBudget(clock=clock, sleep=clock.sleep, extra_observers=[salesforce])
    b.observe(httpx.Headers({"Sforce-Limit-Info": "api-usage=18/5000"}))
    assert b.held_for() == 0.0
    b.observe(httpx.Headers({"Sforce-Limit-Info": "api-usage=5000/5000"}))
    assert b.held_for() == 3600.0


async def test_remaining_zero_makes_the_next_request_wait_for_the_reset() -> None:
    clock = FakeClock()
    b = budget(clock)
    async with b.slot():
        b.observe(httpx.Headers({"RateLimit-Remaining": "0", "RateLimit-Reset": "20"}))
    assert await start_times(b, clock, 1) == [20.0]


# --- max_wait ---------------------------------------------------------------------------------


async def test_a_hold_longer_than_max_wait_pauses_instead_of_waiting() -> None:
    clock = FakeClock()
    b = budget(clock, max_wait=60.0)
    b.hold_until(3600.0)
    with pytest.raises(QuotaExhaustedError) as caught:
        async with b.slot():
            pytest.fail("must not get a slot")
    assert clock.sleeps == []  # raised at once, not after waiting max_wait
    assert b.calls == 0
    assert caught.value.resume_at == pytest.approx(WALL + 3600.0)
    assert "3600s" in caught.value.message


async def test_a_rate_wait_longer_than_max_wait_pauses_and_keeps_the_token() -> None:
    clock = FakeClock()
    b = budget(clock, requests_per_second=0.01, max_wait=10.0)  # one call per 100 s
    async with b.slot():
        pass
    with pytest.raises(QuotaExhaustedError):
        async with b.slot():
            pass
    clock.now += 100.0
    assert await start_times(b, clock, 1) == [100.0]  # the refused call reserved nothing


async def test_waits_within_max_wait_are_made() -> None:
    clock = FakeClock()
    b = budget(clock, max_wait=60.0)
    b.hold_until(59.0)
    assert await start_times(b, clock, 1) == [59.0]


@pytest.mark.parametrize(
    "policy",
    [
        {"max_concurrency": 0},
        {"requests_per_second": 0.0},
        {"requests_per_second": -1.0},
        {"burst": 0},
        {"max_wait": -1.0},
    ],
)
def test_nonsense_policies_are_refused(policy: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BudgetPolicy(**policy)  # type: ignore[arg-type]


async def test_set_rate_changes_the_pace_from_then_on() -> None:
    clock = FakeClock()
    b = budget(clock, requests_per_second=10.0, burst=1)
    assert await start_times(b, clock, 3) == pytest.approx([0.0, 0.1, 0.2])
    b.set_rate(2.0)
    assert b.rate == 2.0
    starts = await start_times(b, clock, 2)
    assert starts[1] - starts[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="positive"):
        b.set_rate(0)
    unpaced = budget(clock)
    unpaced.set_rate(5.0)
    assert unpaced.rate is None  # nothing to adapt


# --- the pure arithmetic of turns (okrsync.sdk.pace) ------------------------------------------


def turns(pace: Pace | None, times: list[float], state: BucketState | None = None) -> list[float]:
    """When each of a sequence of single turns, asked at ``times``, may send."""
    state = state or BucketState()
    sent: list[float] = []
    for now in times:
        taken = take(state, now, pace)
        state = taken.state
        sent.append(now + taken.waits[0])
    return sent


def test_a_token_bucket_lets_its_burst_go_then_paces() -> None:
    assert turns(TokenBucket(2.0, burst=3), [0.0] * 6) == pytest.approx(
        [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]
    )


def test_asking_for_several_turns_at_once_books_what_single_turns_would() -> None:
    pace = TokenBucket(4.0, burst=2)
    taken = take(BucketState(), 10.0, pace, count=6)
    assert [10.0 + w for w in taken.waits] == pytest.approx(turns(pace, [10.0] * 6))
    window = SlidingWindow(3, 1.0)
    taken = take(BucketState(), 0.0, window, count=7)
    assert list(taken.waits) == pytest.approx(turns(window, [0.0] * 7))


def test_a_hold_comes_first_and_the_bucket_refills_meanwhile() -> None:
    state = hold(BucketState(tokens=-3.0, refilled_at=0.0), 0.0, 30.0)
    taken = take(state, 0.0, TokenBucket(1.0, burst=2), count=3)
    assert taken.waits == pytest.approx((30.0, 30.0, 31.0))
    assert taken.hold_left == 30.0
    assert hold(state, 0.0, 5.0) == state  # holds only grow
    assert hold(state, 0.0, float("nan")) == state


def test_a_turn_beyond_max_wait_is_refused_and_books_nothing() -> None:
    pace = TokenBucket(1.0, burst=2)
    taken = take(BucketState(), 0.0, pace, count=5, max_wait=1.5)
    assert taken.waits == pytest.approx((0.0, 0.0, 1.0))
    assert taken.refused == pytest.approx(2.0)
    assert taken.reason == "pace"
    again = take(taken.state, 0.0, pace, max_wait=1.5)
    assert again.refused == pytest.approx(2.0)  # the refused turn left no trace
    held = take(hold(BucketState(), 0.0, 60.0), 0.0, pace, max_wait=10.0)
    assert (held.waits, held.reason, held.refused) == ((), "hold", 60.0)


def test_a_window_follows_the_send_a_whole_window_before() -> None:
    window = SlidingWindow(3, 10.5)
    assert turns(window, [0.0, 4.0, 8.0, 9.0, 9.0, 30.0]) == pytest.approx(
        [0.0, 4.0, 8.0, 10.5, 14.5, 30.0]
    )


def test_a_window_counts_its_sends_when_it_refuses() -> None:
    window = SlidingWindow(5, 86_400.0)
    state = take(BucketState(), 0.0, window, count=5).state
    refused = take(state, 3_600.0, window, max_wait=0.0)
    assert refused.waits == ()
    assert refused.used == 5
    assert refused.refused == pytest.approx(86_400.0 - 3_600.0)


@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=120),
    calls=st.integers(min_value=1, max_value=8),
    seconds=st.floats(min_value=0.1, max_value=5.0),
)
def test_no_window_ever_holds_more_sends_than_the_limit(
    gaps: list[float], calls: int, seconds: float
) -> None:
    """Whatever the arrivals, merged slots included: at most ``calls`` in any window."""
    times = list(itertools.accumulate(gaps))
    sent = sorted(turns(SlidingWindow(calls, seconds), times))
    for first, later in zip(sent, sent[calls:], strict=False):
        assert later - first >= seconds - 1e-9


@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=120),
    rate=st.floats(min_value=0.5, max_value=20.0),
    burst=st.integers(min_value=1, max_value=6),
)
def test_a_token_bucket_never_sends_more_than_burst_plus_rate_times_span(
    gaps: list[float], rate: float, burst: int
) -> None:
    times = list(itertools.accumulate(gaps))
    sent = sorted(turns(TokenBucket(rate, burst), times))
    for i, first in enumerate(sent):
        for j in range(i, len(sent)):
            assert j - i + 1 <= burst + (sent[j] - first) * rate + 1e-6


def test_a_window_of_many_calls_stays_small_in_the_store() -> None:
    window = SlidingWindow(10_000, 86_400.0)
    state = BucketState()
    for second in range(0, 86_400, 30):
        state = take(state, float(second), window).state
    assert len(state.sends) <= WINDOW_SLOTS + 1
    assert sum(n for _, n in state.sends) == 86_400 // 30
    assert decode_sends(encode_sends(state.sends)) == state.sends
    assert decode_sends("not json") == ()


def test_nonsense_paces_are_refused() -> None:
    for make in (
        lambda: TokenBucket(0.0),
        lambda: TokenBucket(1.0, burst=0),
        lambda: SlidingWindow(0, 60.0),
        lambda: SlidingWindow(5, 0.0),
    ):
        with pytest.raises(ValueError):
            make()


# --- one bucket for several budgets (what replicas sharing a ledger see) ----------------------


def replica(clock: FakeClock, ledger: LocalLedger, **policy: object) -> CallBudget:
    """A budget of the connection ``crm`` whose bucket ``api`` lives in ``ledger``."""
    return CallBudget(
        BudgetPolicy(**policy),  # type: ignore[arg-type]
        shared=ConnectionBudgets("crm", ledger).bucket("api"),
        clock=clock,
        wall_clock=clock.wall,
        sleep=clock.sleep,
    )


async def test_budgets_sharing_a_bucket_pace_together() -> None:
    clock = FakeClock()
    ledger = LocalLedger(clock)
    replicas = [replica(clock, ledger, requests_per_second=2.0) for _ in range(3)]
    starts: list[float] = []

    async def one(b: CallBudget) -> None:
        async with b.slot():
            starts.append(clock())

    await asyncio.gather(*(one(b) for b in replicas for _ in range(2)))
    assert sorted(starts) == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])


async def test_budgets_with_buckets_of_their_own_would_each_go_at_full_pace() -> None:
    """The control for the test above: three private buckets triple the pace."""
    clock = FakeClock()
    replicas = [replica(clock, LocalLedger(clock), requests_per_second=2.0) for _ in range(3)]
    starts: list[float] = []

    async def one(b: CallBudget) -> None:
        async with b.slot():
            starts.append(clock())

    await asyncio.gather(*(one(b) for b in replicas for _ in range(2)))
    assert sorted(starts) == pytest.approx([0.0, 0.0, 0.0, 0.5, 0.5, 0.5])


async def test_a_hold_learnt_by_one_budget_holds_the_others() -> None:
    clock = FakeClock()
    ledger = LocalLedger(clock)
    first, second = replica(clock, ledger), replica(clock, ledger)
    async with first.slot():
        first.observe(httpx.Headers({"RateLimit-Remaining": "0", "RateLimit-Reset": "20"}))
    assert await start_times(second, clock, 1) == [20.0]
    assert second.held_for() == 0.0


async def test_a_shared_hold_beyond_max_wait_pauses_the_other_budget() -> None:
    clock = FakeClock()
    ledger = LocalLedger(clock)
    first, second = replica(clock, ledger), replica(clock, ledger, max_wait=60.0)
    first.hold_until(3_600.0)
    await asyncio.sleep(0)  # the hold is written to the bucket by a task of its own
    with pytest.raises(QuotaExhaustedError) as caught:
        async with second.slot():
            pytest.fail("must not get a slot")
    assert caught.value.resume_at == pytest.approx(WALL + 3_600.0)
    assert second.held_for() == pytest.approx(3_600.0)  # it knows now, for resume_at


class CountingLedger(LocalLedger):
    """Memory, counting the questions asked of it (a shared ledger's round trips)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.asked: list[int] = []

    async def take(
        self, key: BucketKey, pace: Pace | None, *, count: int = 1, max_wait: float = math.inf
    ) -> Taken:
        self.asked.append(count)
        await asyncio.sleep(0)  # a round trip: callers arriving meanwhile queue for the next
        return await super().take(key, pace, count=count, max_wait=max_wait)


async def test_concurrent_callers_share_one_question_to_the_ledger() -> None:
    clock = FakeClock()
    ledger = CountingLedger(clock)
    b = replica(clock, ledger, requests_per_second=4.0, max_concurrency=8)
    starts: list[float] = []

    async def one() -> None:
        async with b.slot():
            starts.append(clock())

    await asyncio.gather(*(one() for _ in range(8)))
    assert ledger.asked == [8]  # one question for eight turns
    assert sorted(starts) == pytest.approx([i * 0.25 for i in range(8)])


async def test_a_batch_partly_beyond_max_wait_pauses_only_the_late_callers() -> None:
    clock = FakeClock()
    b = replica(clock, LocalLedger(clock), requests_per_second=1.0, max_wait=1.5)
    results = await asyncio.gather(
        *(start_times(b, clock, 1) for _ in range(4)), return_exceptions=True
    )
    granted = sorted(r[0] for r in results if isinstance(r, list))
    refused = [r for r in results if isinstance(r, QuotaExhaustedError)]
    assert granted == pytest.approx([0.0, 1.0])
    assert len(refused) == 2


def test_a_connector_keeps_its_buckets_where_the_core_says() -> None:
    class Nothing(ConnectorBase[ConnectionConfig]):
        pass

    descriptor = Connector("nothing", "test", ConnectionConfig, Nothing)
    config = ConnectionConfig(type="nothing")
    alone = descriptor.create("crm", config)
    assert isinstance(alone.budgets.ledger, LocalLedger)
    shared = LocalLedger()
    live = descriptor.create("crm", config, ledger=shared)
    assert live.budgets.ledger is shared
    assert live.budgets.bucket("api").key == ("crm", "api")
