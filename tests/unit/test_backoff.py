from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from okrsync.domain.backoff import capped_exponential, failure_pause, quota_resume
from okrsync.engine.daemon import store_retry_delay
from okrsync.engine.dispatcher import retry_delay
from okrsync.sdk.http import RetryPolicy

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def test_a_few_failures_are_noise_then_pauses_double_up_to_a_ceiling() -> None:
    pauses = [failure_pause(n) for n in range(1, 12)]
    assert pauses[:2] == [None, None]
    assert pauses[2:7] == [timedelta(seconds=s) for s in (30, 60, 120, 240, 480)]
    assert pauses[-1] == timedelta(minutes=30)
    assert failure_pause(10_000) == timedelta(minutes=30)


def test_quota_pause_lasts_until_the_reset_or_a_default() -> None:
    assert quota_resume(NOW, NOW + timedelta(hours=2)) == NOW + timedelta(hours=2)
    assert quota_resume(NOW, None) == NOW + timedelta(minutes=15)
    assert quota_resume(NOW, NOW - timedelta(hours=1)) == NOW + timedelta(minutes=15)


class _Bounds:
    """A jitter source that answers the lower end of the range it is asked for, and records it."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.asked.append((a, b))
        return a


def test_one_formula_doubles_from_its_base_up_to_its_ceiling() -> None:
    assert [capped_exponential(step, 5.0, 60.0) for step in (-1, 0, 1, 2, 3, 4)] == [
        5.0,
        5.0,
        10.0,
        20.0,
        40.0,
        60.0,
    ]
    assert capped_exponential(10**9, 5.0, 60.0) == 60.0


def test_jitter_draws_between_half_the_delay_and_the_delay_never_below_the_base() -> None:
    source = _Bounds()
    assert capped_exponential(3, 0.5, 30.0, jitter=source) == 2.0
    assert capped_exponential(0, 0.5, 30.0, jitter=source) == 0.5
    assert capped_exponential(20, 0.5, 30.0, jitter=source) == 15.0
    assert source.asked == [(2.0, 4.0), (0.5, 0.5), (15.0, 30.0)]


def test_each_caller_keeps_its_numbers() -> None:
    assert [retry_delay(n) for n in (0, 1, 2, 3, 12, 13)] == [
        timedelta(seconds=s) for s in (5, 5, 10, 20, 1800, 1800)
    ]
    assert [store_retry_delay(n) for n in (0, 1, 2, 3, 4, 5, 50)] == [1, 2, 4, 8, 16, 30, 30]
    seeded = RetryPolicy(initial_backoff=0.5, max_backoff=30.0, jitter=random.Random(7))
    for attempt, (low, high) in enumerate([(0.5, 0.5), (0.5, 1.0), (1.0, 2.0), (15.0, 30.0)], 1):
        wait = seeded.backoff(attempt if attempt < 4 else 9)
        assert low <= wait <= high
    lowest = RetryPolicy(initial_backoff=0.5, max_backoff=30.0, jitter=_Bounds())
    assert [lowest.backoff(n) for n in (1, 2, 3, 4, 9)] == [0.5, 0.5, 1.0, 2.0, 15.0]
