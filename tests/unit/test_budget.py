"""The call budget's arithmetic, measured on a fake clock instead of by sleeping."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from okrsync.errors import QuotaExhaustedError
from okrsync.sdk.budget import BudgetPolicy, CallBudget

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
        # HubSpot: no reset given, hold for one whole window
        (
            {
                "X-HubSpot-RateLimit-Remaining": "0",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            },
            10.0,
        ),
        ({"X-HubSpot-RateLimit-Secondly-Remaining": "0"}, 1.0),
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
        {"X-HubSpot-RateLimit-Remaining": "99", "X-HubSpot-RateLimit-Interval-Milliseconds": "1"},
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
