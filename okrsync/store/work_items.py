"""The store side of linked work: each ``work`` entry's items, where its reads stand, its leases.

A read is recorded in one transaction with the entry's read state, so a crash before the commit
reads the same changes again and a crash after it loses nothing. Items are matched on
``(work_key, item_key)``: a new one is inserted with ``first_linked_at``, a changed one updated,
one that comes back after leaving its query is linked again; an item a full read or an ids-only
reconciliation no longer finds gets ``unlinked_at`` and keeps its row (history, like archived
definitions). Replicas sharing a PostgreSQL store claim entries with row leases on
``work_reads`` (``FOR UPDATE SKIP LOCKED``, as metric claims do), so no two read one entry at
once; on SQLite claims always succeed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from okrsync.sdk.work import WorkItem
from okrsync.store.db import session_scope
from okrsync.store.tables import WorkItemRow, WorkReadRow
from okrsync.store.upsert import add_missing


@dataclass(frozen=True)
class ReadState:
    """Where one entry's reads stand (all ``None`` before its first read)."""

    read_since: datetime | None  # the next incremental read asks for changes since this
    read_at: datetime | None
    reconciled_at: datetime | None


@dataclass(frozen=True)
class Owner:
    """What an entry's items are linked to: a key result, or an objective."""

    key_result_id: str | None
    objective_id: str | None


@dataclass
class ReadOutcome:
    added: int = 0
    changed: int = 0
    relinked: int = 0
    unlinked: int = 0

    @property
    def touched(self) -> int:
        return self.added + self.changed + self.relinked + self.unlinked


@dataclass(frozen=True)
class BacklinkState:
    """An item whose backlink may need a call: put (``linked``) or taken off (not ``linked``)."""

    item_key: str
    linked: bool
    ref: str | None
    shown: str | None


def ensure_reads(engine: Engine, entries: Mapping[str, str]) -> None:
    """A read row for every entry (``work_key`` → connection); replicas may race to add them."""
    if not entries:
        return
    with session_scope(engine) as session:
        present = set(
            session.exec(
                select(WorkReadRow.work_key).where(col(WorkReadRow.work_key).in_(list(entries)))
            )
        )
    missing = sorted(set(entries) - present)
    if missing:
        with session_scope(engine) as session:
            add_missing(
                session, [WorkReadRow(work_key=key, connection=entries[key]) for key in missing]
            )


def read_states(engine: Engine, keys: Collection[str]) -> dict[str, ReadState]:
    with session_scope(engine) as session:
        rows = session.exec(select(WorkReadRow).where(col(WorkReadRow.work_key).in_(list(keys))))
        return {r.work_key: ReadState(r.read_since, r.read_at, r.reconciled_at) for r in rows}


def claim(
    engine: Engine, keys: Collection[str], *, owner: str, now: datetime, lease: timedelta
) -> set[str]:
    """Lease every entry of ``keys`` no other replica holds now; the ones leased."""
    mine: set[str] = set()
    with session_scope(engine) as session:
        rows = session.exec(
            select(WorkReadRow)
            .where(col(WorkReadRow.work_key).in_(sorted(keys)))
            .order_by(col(WorkReadRow.work_key))
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            held = row.lease_owner not in (None, owner)
            if held and row.lease_until is not None and row.lease_until > now:
                continue
            row.lease_owner = owner
            row.lease_until = now + lease
            session.add(row)
            mine.add(row.work_key)
    return mine


def release(engine: Engine, keys: Collection[str], *, owner: str) -> None:
    """Give up this replica's leases on ``keys`` (a read failed, or ended without recording)."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(WorkReadRow).where(
                col(WorkReadRow.work_key).in_(list(keys)), col(WorkReadRow.lease_owner) == owner
            )
        ).all()
        for row in rows:
            row.lease_owner = None
            row.lease_until = None
            session.add(row)


def stored_keys(engine: Engine, work_key: str, *, linked_only: bool = True) -> set[str]:
    with session_scope(engine) as session:
        query = select(WorkItemRow.item_key).where(col(WorkItemRow.work_key) == work_key)
        if linked_only:
            query = query.where(col(WorkItemRow.unlinked_at).is_(None))
        return set(session.exec(query))


def record_read(
    engine: Engine,
    work_key: str,
    connection: str,
    owner: Owner,
    items: Sequence[WorkItem],
    *,
    started_at: datetime,
    now: datetime,
    present: Collection[str] | None,
) -> ReadOutcome:
    """Store what one read of an entry found, and move its read state on.

    ``items``: what the tracker answered (everything, or what changed since the last read).
    ``present``: when known (a full read, or a reconciliation), every key the query matches now;
    linked items outside it are unlinked. ``started_at``: when the read was asked, so the next
    incremental read asks for changes since then (less an overlap the caller takes off).
    """
    outcome = ReadOutcome()
    with session_scope(engine) as session:
        existing = {
            row.item_key: row
            for row in session.exec(
                select(WorkItemRow).where(col(WorkItemRow.work_key) == work_key)
            )
        }
        for item in items:
            row = existing.get(item.key)
            if row is None:
                row = WorkItemRow(
                    work_key=work_key,
                    key_result_id=owner.key_result_id,
                    objective_id=owner.objective_id,
                    connection=connection,
                    item_key=item.key,
                    title=item.title,
                    state=item.state.value,
                    first_linked_at=now,
                )
                _apply(row, item)
                session.add(row)
                existing[item.key] = row
                outcome.added += 1
                continue
            if row.unlinked_at is not None:
                row.unlinked_at = None
                outcome.relinked += 1
            elif _differs(row, item):
                outcome.changed += 1
            else:
                continue
            _apply(row, item)
            session.add(row)
        if present is not None:
            keep = set(present) | {item.key for item in items}
            for key, row in existing.items():
                if row.unlinked_at is None and key not in keep:
                    row.unlinked_at = now
                    session.add(row)
                    outcome.unlinked += 1
        state = session.get(WorkReadRow, work_key, with_for_update=True)
        if state is None:
            state = WorkReadRow(work_key=work_key, connection=connection)
        state.read_since = started_at
        state.read_at = now
        if present is not None:
            state.reconciled_at = now
        state.lease_owner = None
        state.lease_until = None
        session.add(state)
    return outcome


def unlink_retired(engine: Engine, live: Collection[str], now: datetime) -> int:
    """Items of entries no longer in the config leave their key result (rows kept)."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(WorkItemRow).where(
                col(WorkItemRow.unlinked_at).is_(None),
                col(WorkItemRow.work_key).not_in(list(live)),
            )
        ).all()
        for row in rows:
            row.unlinked_at = now
            session.add(row)
    return len(rows)


@dataclass(frozen=True)
class LeftoverLink:
    """A backlink okrsync put on an item whose entry no longer keeps one (the entry left the
    config, or says ``backlink: false`` now)."""

    work_key: str
    item_key: str
    key_result_id: str
    ref: str | None


def leftover_links(engine: Engine, connection: str, keeping: Collection[str]) -> list[LeftoverLink]:
    """Items of ``connection`` that carry a backlink though their entry is not in ``keeping``
    (the entries with ``backlink: true``)."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(WorkItemRow)
            .where(
                col(WorkItemRow.connection) == connection,
                col(WorkItemRow.backlink_shown).is_not(None),
                col(WorkItemRow.key_result_id).is_not(None),
                col(WorkItemRow.work_key).not_in(list(keeping)),
            )
            .order_by(col(WorkItemRow.work_key), col(WorkItemRow.item_key))
        ).all()
        return [
            LeftoverLink(r.work_key, r.item_key, r.key_result_id or "", r.backlink_ref)
            for r in rows
        ]


def backlinks_to_check(engine: Engine, work_key: str) -> list[BacklinkState]:
    """Linked items (each may need its backlink put or refreshed) and unlinked items that still
    carry one (to take off), in key order."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(WorkItemRow)
            .where(col(WorkItemRow.work_key) == work_key)
            .order_by(col(WorkItemRow.item_key))
        ).all()
        return [
            BacklinkState(r.item_key, r.unlinked_at is None, r.backlink_ref, r.backlink_shown)
            for r in rows
            if r.unlinked_at is None or r.backlink_ref is not None or r.backlink_shown is not None
        ]


def note_backlink(
    engine: Engine,
    work_key: str,
    item_key: str,
    *,
    ref: str | None,
    shown: str | None,
    now: datetime,
) -> None:
    """What the tracker now shows on the item (``shown`` None: the backlink was taken off)."""
    with session_scope(engine) as session:
        row = _row(session, work_key, item_key)
        if row is None:
            return
        row.backlink_ref = ref
        row.backlink_shown = shown
        row.backlink_at = now
        session.add(row)


def items_of(
    engine: Engine, work_keys: Iterable[str], *, linked_only: bool = True
) -> list[WorkItemRow]:
    """The stored items of these entries, by entry then key."""
    with session_scope(engine) as session:
        query = select(WorkItemRow).where(col(WorkItemRow.work_key).in_(list(work_keys)))
        if linked_only:
            query = query.where(col(WorkItemRow.unlinked_at).is_(None))
        rows = session.exec(
            query.order_by(col(WorkItemRow.work_key), col(WorkItemRow.item_key))
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


def _row(session: Session, work_key: str, item_key: str) -> WorkItemRow | None:
    return session.exec(
        select(WorkItemRow).where(
            col(WorkItemRow.work_key) == work_key, col(WorkItemRow.item_key) == item_key
        )
    ).first()


def _differs(row: WorkItemRow, item: WorkItem) -> bool:
    return (
        row.title != item.title
        or row.state != item.state.value
        or row.url != item.url
        or row.assignee != item.assignee
        or list(row.labels or []) != list(item.labels)
        or row.updated_at != item.updated_at
        or row.done_at != item.done_at
    )


def _apply(row: WorkItemRow, item: WorkItem) -> None:
    row.title = item.title
    row.state = item.state.value
    row.url = item.url
    row.assignee = item.assignee
    row.labels = list(item.labels)
    row.updated_at = item.updated_at
    row.done_at = item.done_at
