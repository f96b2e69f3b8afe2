"""The ``work`` summary a mirror's payload carries (issue 15): read once per outbox transaction.

A payload is built when its delivery is queued and is pushed as it was built, so the summary is
a snapshot too: the linked items of the key result counted by state, and those done since the
state the mirror shows was recorded (the ``created_at`` of the delivery whose sequence number is
the mirror's ``delivered_seq``; :func:`okrsync.domain.work_window.done_since`). Queued states
that are superseded before they are pushed take nothing with them: the next one looks back to
the same shown state. See :mod:`okrsync.sdk.work_summary` for what a sink reads.

Three statements for a whole transaction, whatever the number of key results and mirrors (the
shown states' times, the counts, the items done in the widest window), and none when no key
result of the transaction has work.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import and_
from sqlalchemy import select as core_select
from sqlmodel import Session, col

from okrsync.domain.work_window import done_since, week_start
from okrsync.sdk.models import KeyResultUpdate, ObjectiveUpdate
from okrsync.sdk.work_summary import MAX_DONE_LISTED, WorkLink, WorkSummary
from okrsync.store import work_views
from okrsync.store.tables import DeliveryRow, MirrorRow, WorkItemRow


class WorkPayloads:
    """What the payloads of one transaction say about work, read on first use."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self._counts: dict[str, work_views.WorkCounts] = {}
        self._counted: set[str] = set()
        self._shown: dict[str, datetime | None] = {}
        self._done: dict[str, list[WorkItemRow]] = {}
        self._done_since: datetime | None = None

    def load(self, kr_ids: Collection[str], mirror_keys: Collection[str]) -> None:
        """Read what the payloads of ``kr_ids`` for ``mirror_keys`` need (what is not read yet)."""
        new_krs = sorted(set(kr_ids) - self._counted)
        if new_krs:
            found = work_views.counts_by_key_result(self.session, new_krs, week_start(self.now))
            self._counts.update(found)
            self._counted.update(new_krs)
        with_work = sorted(k for k in kr_ids if k in self._counts)
        if not with_work:
            return
        new_mirrors = sorted(set(mirror_keys) - set(self._shown))
        if new_mirrors:
            self._shown.update(dict.fromkeys(new_mirrors))
            self._shown.update(_shown_at(self.session, new_mirrors))
        since = (
            min(done_since(self._shown.get(m), self.now) for m in mirror_keys)
            if mirror_keys
            else None
        )
        if since is None:
            return
        missing = [k for k in with_work if k not in self._done]
        if self._done_since is not None and since < self._done_since:
            missing = with_work  # a wider window than was read: read again
        if missing:
            floor = since if self._done_since is None else min(since, self._done_since)
            for kr_id in missing:
                self._done[kr_id] = []
            for row in work_views.done_after(self.session, missing, floor):
                assert row.key_result_id is not None
                self._done[row.key_result_id].append(row)
            self._done_since = floor

    def summary(self, kr_id: str, mirror_key: str) -> WorkSummary | None:
        """The ``work`` of ``kr_id``'s payload for ``mirror_key``; None when it has no work."""
        self.load([kr_id], [mirror_key])
        counts = self._counts.get(kr_id)
        if counts is None:
            return None
        since = done_since(self._shown.get(mirror_key), self.now)
        done = [r for r in self._done.get(kr_id, []) if r.done_at is not None and r.done_at > since]
        return WorkSummary(
            todo=counts.todo,
            in_progress=counts.in_progress,
            done=counts.done,
            done_since=since,
            done_recently=tuple(
                WorkLink(
                    connection=r.connection,
                    key=r.item_key,
                    title=r.title,
                    url=r.url,
                    done_at=r.done_at,
                )
                for r in done[:MAX_DONE_LISTED]
            ),
            done_recently_total=len(done),
        )

    def with_work(
        self, update: KeyResultUpdate | ObjectiveUpdate, mirror_key: str
    ) -> KeyResultUpdate | ObjectiveUpdate:
        """``update`` as ``mirror_key`` should receive it: each key result with its ``work``."""
        if isinstance(update, KeyResultUpdate):
            kr_ids = [update.key_result_id]
        else:
            kr_ids = [kr.key_result_id for kr in update.key_results]
        self.load(kr_ids, [mirror_key])
        if isinstance(update, KeyResultUpdate):
            return self._key_result(update, mirror_key)
        krs = tuple(self._key_result(kr, mirror_key) for kr in update.key_results)
        return update.model_copy(update={"key_results": krs})

    def _key_result(self, update: KeyResultUpdate, mirror_key: str) -> KeyResultUpdate:
        work = self.summary(update.key_result_id, mirror_key)
        return update if work is None else update.model_copy(update={"work": work})


def _shown_at(session: Session, mirror_keys: list[str]) -> dict[str, datetime | None]:
    """When the state each mirror shows was queued (its delivered delivery's ``created_at``)."""
    rows = session.execute(
        core_select(col(MirrorRow.key), col(DeliveryRow.created_at))
        .join(
            DeliveryRow,
            and_(
                col(DeliveryRow.mirror_key) == col(MirrorRow.key),
                col(DeliveryRow.seq) == col(MirrorRow.delivered_seq),
            ),
        )
        .where(col(MirrorRow.key).in_(mirror_keys), col(MirrorRow.delivered_seq) > 0)
    ).all()
    return {key: created_at for key, created_at in rows}
