"""The pure pieces of the work read side: windows, summary line, done marks, safe links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from okrsync.api.charts import done_days
from okrsync.api.work_display import state_label, web_url
from okrsync.domain.work_window import FIRST_PUSH_WINDOW, done_since, week_start
from okrsync.sdk.work_summary import WorkLink, WorkSummary


def test_the_week_starts_on_monday_at_midnight_utc() -> None:
    monday = datetime(2026, 11, 9, tzinfo=UTC)
    assert week_start(datetime(2026, 11, 12, 15, tzinfo=UTC)) == monday
    assert week_start(monday) == monday
    assert week_start(monday - timedelta(microseconds=1)) == monday - timedelta(days=7)
    # a time in another zone is judged in UTC: Monday 01:00 in Berlin is Sunday in UTC
    berlin = datetime(2026, 11, 9, 0, 30, tzinfo=UTC).astimezone()
    assert week_start(berlin) == monday


def test_done_since_is_what_the_mirror_shows_or_a_week_for_a_first_push() -> None:
    now = datetime(2026, 11, 12, tzinfo=UTC)
    shown = datetime(2026, 11, 11, 8, tzinfo=UTC)
    assert done_since(shown, now) == shown
    assert done_since(None, now) == now - FIRST_PUSH_WINDOW


def test_the_summary_line_and_what_is_left_unnamed() -> None:
    links = tuple(WorkLink(connection="jira", key=f"OKR-{i}", title="t") for i in range(3))
    summary = WorkSummary(
        todo=3, in_progress=5, done=12, done_recently=links, done_recently_total=7
    )
    assert summary.line() == "work: 12 done · 5 in progress · 3 to do"
    assert summary.total == 20 and summary.more_done() == 4


def test_done_days_group_items_by_their_utc_day() -> None:
    a = datetime(2026, 10, 20, 23, 30, tzinfo=UTC)
    b = datetime(2026, 10, 20, 1, tzinfo=UTC)
    c = datetime(2026, 10, 22, 9, tzinfo=UTC)
    days = done_days([(c, "X-3"), (a, "X-1"), (b, "X-2")])
    assert [(d.isoformat(), keys) for d, keys in days] == [
        ("2026-10-20", ["X-2", "X-1"]),
        ("2026-10-22", ["X-3"]),
    ]


def test_only_web_addresses_are_linked() -> None:
    assert web_url("https://acme.atlassian.net/browse/OKR-1") == (
        "https://acme.atlassian.net/browse/OKR-1"
    )
    assert web_url(" http://x.test/a ") == "http://x.test/a"
    for bad in ("javascript:alert(1)", "JaVaScRiPt:x", "data:text/html,x", "/relative", "", None):
        assert web_url(bad) is None
    assert web_url("http://[bad") is None
    assert state_label("in_progress") == "in progress" and state_label("todo") == "to do"
