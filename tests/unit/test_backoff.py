from __future__ import annotations

from datetime import UTC, datetime, timedelta

from okrsync.domain.backoff import failure_pause, quota_resume

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
