"""Benchmark-only experiments: core fixes tried by monkeypatching, never by editing okrsync/.

``python -m benchmarks.experiments --size 1000 --out FILE [--patch mark_ran,on_change_guard]``
runs the same measurement as ``benchmarks.measure`` with the named patches applied, so a
proposed fix's before/after numbers come from the same harness.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

import okrsync.engine.recorder as recorder
from benchmarks.measure import measure
from okrsync.engine import outbox
from okrsync.engine.planner import QueryPlan
from okrsync.engine.sync import SyncService
from okrsync.store.db import session_scope
from okrsync.store.tables import MetricStateRow

CHUNK = 500


def mark_metrics_ran_bulk(self: SyncService, plan: QueryPlan, now: datetime) -> None:
    """One SELECT per 500 metrics instead of one ``session.get`` per metric."""
    names = sorted({name for (name, _cycle) in plan.key_for})
    with session_scope(self.engine) as session:
        for i in range(0, len(names), CHUNK):
            chunk = names[i : i + CHUNK]
            rows = session.exec(
                select(MetricStateRow).where(col(MetricStateRow.name).in_(chunk))
            ).all()
            found = {row.name: row for row in rows}
            for name in chunk:
                row = found.get(name) or MetricStateRow(name=name)
                row.last_run_at = now
                session.add(row)


class BatchedScope:
    """``record``'s transactions grouped: one commit per ``every`` key results, not per one.

    Experiment only: a failure rolls back the whole open batch (a core version would use a
    SAVEPOINT per key result to keep one bad row from undoing its neighbours).
    """

    def __init__(self, every: int = 500) -> None:
        self.every = every
        self.session: Session | None = None
        self.count = 0

    @contextmanager
    def __call__(self, engine: Engine) -> Iterator[Session]:
        if self.session is None:
            self.session = Session(engine, expire_on_commit=False)
        try:
            yield self.session
        except BaseException:
            self.session.rollback()
            raise
        self.count += 1
        if self.count % self.every == 0:
            self.flush()

    def flush(self) -> None:
        if self.session is not None:
            self.session.commit()
            self.session.close()
            self.session = None


def batch_record() -> None:
    scope = BatchedScope()
    recorder.session_scope = scope  # type: ignore[attr-defined]
    mark = SyncService._mark_metrics_ran

    def mark_after_commit(self: SyncService, plan: QueryPlan, now: datetime) -> None:
        scope.flush()
        mark(self, plan, now)

    SyncService._mark_metrics_ran = mark_after_commit  # type: ignore[method-assign]


def guarded_on_change(original: Callable[..., int]) -> Callable[..., int]:
    """Skip the mirror lookups of a key result whose config has no mirror (nor digest)."""

    def on_change(session: Any, objective: Any, cycle: Any, row: Any, *rest: Any) -> int:
        has_own = any(kr.id == row.id and kr.mirrors for kr in objective.key_results)
        if not has_own and not objective.mirrors:
            return 0
        return original(session, objective, cycle, row, *rest)

    return on_change


PATCHES: dict[str, Callable[[], None]] = {
    "mark_ran": lambda: setattr(SyncService, "_mark_metrics_ran", mark_metrics_ran_bulk),
    "batch_record": batch_record,
    "on_change_guard": lambda: setattr(recorder, "on_change", guarded_on_change(outbox.on_change)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--patch", default="")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args()
    for name in sorted(filter(None, args.patch.split(",")), key=lambda n: n != "batch_record"):
        PATCHES[name]()
    result = asyncio.run(measure(args.size, 0.05, 0.0, 0, args.profile, naive_baseline=False))
    result["patches"] = args.patch
    args.out.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
