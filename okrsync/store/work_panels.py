"""What the dashboard shows of the work behind each key result on a page (issue 15).

For the key results of one objective page: their linked items counted by state (with done this
week), the first :data:`ITEMS_SHOWN` of them (in progress, to do, then done newest first) and
when each was done within the cycle (the marks on the burn-up chart). Two statements for the
whole page, whatever the number of key results or items (:mod:`okrsync.store.work_views`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from okrsync.domain.work_window import week_start
from okrsync.store import work_views
from okrsync.store.tables import WorkItemRow

ITEMS_SHOWN = 15
"""Items listed per key result on the dashboard; the rest are counted and a link lists them."""


@dataclass(frozen=True)
class WorkPanel:
    counts: work_views.WorkCounts
    items: list[WorkItemRow]
    done_marks: list[tuple[datetime, str]] = field(default_factory=list)

    @property
    def more(self) -> int:
        return max(0, self.counts.total - len(self.items))


def work_panels(
    session: Session, kr_ids: Sequence[str], now: datetime, cycle_start: datetime
) -> dict[str, WorkPanel]:
    """The panels of the key results that have linked work (the others have none)."""
    found = work_views.items_by_key_result(session, kr_ids, ITEMS_SHOWN, week_start(now))
    if not found:
        return {}
    marks = work_views.done_times(session, sorted(found), cycle_start)
    return {
        kr_id: WorkPanel(counts, items, marks.get(kr_id, []))
        for kr_id, (counts, items) in found.items()
    }
