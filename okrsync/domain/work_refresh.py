"""When a ``work`` entry is read, and how: full, incremental, with or without reconciliation. Pure.

The first read of an entry is full (``since`` None): every item its query matches, which also
tells which items left it. Later reads are incremental: only items updated since the previous
successful read *started*, less :data:`READ_OVERLAP` (clocks of okrsync and the tracker differ by
a little, and an item edited while the previous read was being answered must not fall between
two reads). Incremental answers cannot show an item that left the query (it no longer matches),
so now and then (:data:`RECONCILE_EVERY`, and on every tracker webhook) the read also asks the
tracker for the keys it matches, ids only, which is cheap. An entry small enough that one full
read costs no more requests than the changes plus the ids is reconciled by that full read
instead (:func:`reconcile_in_full`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from okrsync.domain.progress import display_progress, percent
from okrsync.domain.schedule import Schedule

READ_OVERLAP = timedelta(minutes=2)
RECONCILE_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class WorkReadPlan:
    due: bool
    since: datetime | None  # None: a full read
    reconcile: bool  # also list the keys the query matches (only for incremental reads)
    next_at: datetime  # when the entry falls due next if it is not read now


def plan_work_read(
    schedule: Schedule,
    *,
    read_since: datetime | None,
    read_at: datetime | None,
    reconciled_at: datetime | None,
    now: datetime,
    forced: bool = False,
    reconcile_every: timedelta = RECONCILE_EVERY,
    overlap: timedelta = READ_OVERLAP,
) -> WorkReadPlan:
    """What to do with one entry at ``now``, from where its reads stand.

    ``forced`` (a tracker webhook, ``okrsync sync``): read now whatever the schedule says, and
    reconcile too, since the event may be an item leaving the query.
    """
    if read_since is None or read_at is None:
        return WorkReadPlan(due=True, since=None, reconcile=False, next_at=now)
    next_read = schedule.next_tick(read_at)
    next_reconcile = (reconciled_at or read_at) + reconcile_every
    reconcile = forced or next_reconcile <= now
    due = forced or next_read <= now or reconcile
    next_at = now if due else min(next_read, next_reconcile)
    return WorkReadPlan(due=due, since=read_since - overlap, reconcile=reconcile, next_at=next_at)


def reconcile_in_full(items: int, *, page: int, ids_page: int) -> bool:
    """Whether a due reconciliation of an entry last known to link ``items`` items is one full
    read (``since`` None) rather than an incremental read and an ids-only read.

    A full read costs ceil(n / ``page``) requests; the pair at least 1 (the changes: one request
    even when nothing changed) plus ceil(n / ``ids_page``). The full read is chosen when it is not
    more; it answers both questions (what changed, what is still matched). ``n`` counts at least
    1, as every read asks once.
    """
    if page < 1 or ids_page < 1:
        raise ValueError("page sizes must be at least 1")
    n = max(items, 1)
    return -(-n // page) <= 1 + -(-n // ids_page)


def backlink_progress(progress: Decimal | None) -> Decimal | None:
    """A key result's progress as a backlink shows it: percent, clamped to 0-100, whole."""
    if progress is None:
        return None
    return percent(display_progress(progress)).quantize(Decimal(1), rounding=ROUND_HALF_UP)


def shown_digest(title: str, url: str | None) -> str:
    """What a backlink shows, as a short digest: it is rewritten only when this changes (the
    key result's title, its rounded progress or its status, or its address)."""
    payload = f"{title}\n{url or ''}"
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()[:32]
