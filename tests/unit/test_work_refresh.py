"""When a ``work`` entry is read and how (full, incremental, reconciled), and what a backlink
shows: pure functions of :mod:`okrsync.domain.work_refresh`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from okrsync.domain.schedule import Schedule
from okrsync.domain.work_refresh import (
    READ_OVERLAP,
    backlink_progress,
    plan_work_read,
    reconcile_in_full,
    shown_digest,
)

EVERY_10M = Schedule.parse("every 10m")
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_the_first_read_is_full_and_due_at_once() -> None:
    plan = plan_work_read(EVERY_10M, read_since=None, read_at=None, reconciled_at=None, now=T0)
    assert (plan.due, plan.since, plan.reconcile, plan.next_at) == (True, None, False, T0)


def test_later_reads_ask_for_changes_since_the_previous_read_began_less_the_overlap() -> None:
    started = T0 - timedelta(seconds=3)
    early = plan_work_read(
        EVERY_10M, read_since=started, read_at=T0, reconciled_at=T0, now=T0 + timedelta(minutes=4)
    )
    assert not early.due
    assert early.next_at == T0 + timedelta(minutes=10)
    due = plan_work_read(
        EVERY_10M, read_since=started, read_at=T0, reconciled_at=T0, now=T0 + timedelta(minutes=10)
    )
    assert (due.due, due.since, due.reconcile) == (True, started - READ_OVERLAP, False)


def test_reconciliation_is_hourly_and_on_every_forced_read() -> None:
    hour = T0 + timedelta(hours=1)
    plan = plan_work_read(EVERY_10M, read_since=T0, read_at=T0, reconciled_at=T0, now=hour)
    assert plan.due and plan.reconcile
    rare = Schedule.parse("every 1d")  # reconciliation is due before the schedule's next read
    rarely = plan_work_read(rare, read_since=T0, read_at=T0, reconciled_at=T0, now=T0)
    assert rarely.next_at == hour
    forced = plan_work_read(
        rare,
        read_since=T0,
        read_at=T0,
        reconciled_at=T0,
        now=T0 + timedelta(seconds=1),
        forced=True,
    )
    assert forced.due and forced.reconcile and forced.since == T0 - READ_OVERLAP


def test_a_backlink_shows_whole_clamped_percent_rounded_half_up() -> None:
    assert backlink_progress(None) is None
    assert backlink_progress(Decimal("0.504")) == Decimal(50)
    assert backlink_progress(Decimal("0.495")) == Decimal(50)  # 49.5 % shows as 50 %
    assert backlink_progress(Decimal("1.7")) == Decimal(100)
    assert backlink_progress(Decimal("-0.2")) == Decimal(0)


def test_what_a_backlink_shows_changes_its_digest_only_when_it_changes() -> None:
    first = shown_digest("OKR: Launch (50%, on track)", None)
    assert first == shown_digest("OKR: Launch (50%, on track)", None)
    assert first != shown_digest("OKR: Launch (51%, on track)", None)
    assert first != shown_digest("OKR: Launch (50%, at risk)", None)
    assert first != shown_digest("OKR: Launch (50%, on track)", "http://okr/key-results/launch")
    assert len(first) <= 100  # fits work_items.backlink_shown


def test_a_reconciliation_is_one_full_read_while_that_is_no_more_requests() -> None:
    # Jira: 100 items a page with fields, 5,000 ids only. Up to 200 items a full read (2 pages)
    # costs no more than the changes (1) plus the ids (1); at 201 it takes 3 against 2.
    jira = {"page": 100, "ids_page": 5000}
    assert reconcile_in_full(0, **jira)  # an empty entry: 1 request against 2
    assert reconcile_in_full(1, **jira) and reconcile_in_full(100, **jira)
    assert reconcile_in_full(200, **jira)
    assert not reconcile_in_full(201, **jira) and not reconcile_in_full(5000, **jira)
    # Linear: 250 either way; GitHub: its ids are a full read, so a full read is never more.
    assert all(reconcile_in_full(n, page=250, ids_page=250) for n in (0, 250, 251, 10_000))
    assert all(reconcile_in_full(n, page=100, ids_page=100) for n in (0, 99, 101, 1000))
    # A tie (3 full pages, 1 + 2 for changes and ids) reads in full; one page more does not.
    assert reconcile_in_full(3, page=1, ids_page=2) and not reconcile_in_full(4, page=1, ids_page=2)


def test_page_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        reconcile_in_full(5, page=0, ids_page=100)
