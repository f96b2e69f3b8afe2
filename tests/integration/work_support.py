"""Work items written straight into the store, as the work refresh (issue 15's core) writes
them: the contract between that writer and the read side tested here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from okrsync.store.tables import WorkItemRow


def item(
    key: str,
    state: str,
    *,
    key_result: str | None = "deals",
    objective: str | None = None,
    connection: str = "jira",
    linked_at: datetime,
    done_at: datetime | None = None,
    unlinked_at: datetime | None = None,
    entry: str = "entry-0",
) -> dict[str, Any]:
    return {
        "work_key": f"{key_result or objective}:{connection}:{entry}",
        "key_result_id": key_result,
        "objective_id": objective,
        "connection": connection,
        "item_key": key,
        "title": f"Do {key}",
        "state": state,
        "url": f"https://tracker.example/browse/{key}",
        "assignee": "ana" if state != "todo" else None,
        "labels": ["checkout-v2"],
        "updated_at": done_at or linked_at,
        "done_at": done_at,
        "first_linked_at": linked_at,
        "unlinked_at": unlinked_at,
    }


def insert_items(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(WorkItemRow), rows)


def many(kr: str, n: int, linked_at: datetime, start: int = 0) -> list[dict[str, Any]]:
    """``n`` items of key result ``kr``: a third each to do, in progress and done."""
    states = ("todo", "in_progress", "done")
    return [
        item(
            f"BULK-{i:05d}",
            states[i % 3],
            key_result=kr,
            linked_at=linked_at,
            done_at=linked_at + timedelta(hours=i) if i % 3 == 2 else None,
            entry=kr,
        )
        for i in range(start, start + n)
    ]


def definitions(engine: Engine, key_results: tuple[str, ...] = ("deals",)) -> None:
    """Cycle ``2026-Q4``, objective ``o`` and its key results, as ``apply_definitions`` writes
    them (no config needed to read work)."""
    from datetime import date

    from okrsync.store.tables import CycleRow, KeyResultRow, ObjectiveRow

    with engine.begin() as conn:
        conn.execute(
            insert(CycleRow),
            [{"id": "2026-Q4", "start": date(2026, 10, 1), "end": date(2026, 12, 31)}],
        )
        conn.execute(
            insert(ObjectiveRow), [{"id": "o", "title": "Objective", "cycle_id": "2026-Q4"}]
        )
        conn.execute(
            insert(KeyResultRow),
            [
                {
                    "id": kr,
                    "objective_id": "o",
                    "title": f"Key result {kr}",
                    "kind": "increase",
                    "start": 0,
                    "target": 10,
                    "position": n,
                    "status": "no_data",
                }
                for n, kr in enumerate(key_results)
            ],
        )
