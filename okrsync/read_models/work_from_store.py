"""Work rows and counts (:mod:`okrsync.store.work_views`) as :mod:`okrsync.read_models.work`."""

from __future__ import annotations

from datetime import datetime

from okrsync.read_models import work as m
from okrsync.store.tables import WorkItemRow
from okrsync.store.work_views import WorkCounts


def work_item(row: WorkItemRow) -> m.WorkItem:
    return m.WorkItem(
        connection=row.connection,
        key=row.item_key,
        title=row.title,
        state=row.state,  # validated: one of the three
        url=row.url,
        assignee=row.assignee,
        labels=list(row.labels or []),
        updated_at=row.updated_at,
        done_at=row.done_at,
        first_linked_at=row.first_linked_at,
        unlinked_at=row.unlinked_at,
        key_result=row.key_result_id,
        objective=row.objective_id,
    )


def work_summary(counts: WorkCounts, week_start: datetime) -> m.WorkSummary:
    return m.WorkSummary(
        todo=counts.todo,
        in_progress=counts.in_progress,
        done=counts.done,
        total=counts.total,
        done_this_week=counts.done_this_week,
        week_start=week_start,
    )
