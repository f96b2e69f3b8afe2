"""``okrsync plan``: what a sync would fetch, change and push, without writing or pushing.

Sources are read (that is how a change can be shown) but nothing is stored, no connection health
is updated and no mirror is touched. A SQLite store that does not exist yet is not created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from okrsync.config import Config, MirrorDef
from okrsync.domain.planner import metric_definitions, plan_queries
from okrsync.engine.closeout import closed_in_store, open_key_result_ids
from okrsync.engine.runtime import Connections
from okrsync.engine.sync import evaluate_plan, fetch_all
from okrsync.plugins import Registry
from okrsync.redaction import Redactor
from okrsync.settings import Settings, digest_key
from okrsync.store.db import current_revision, head_revision, make_engine, normalise_url
from okrsync.store.definitions import DefinitionChanges, sync_definitions
from okrsync.store.tables import KeyResultRow


@dataclass
class PlannedChange:
    key_result: str
    old: Decimal | None
    new: Decimal | None
    progress: Decimal | None
    mirrors: list[str]
    error: str | None = None


@dataclass
class PlanResult:
    definitions: DefinitionChanges
    store_ready: bool
    queries: dict[str, list[str]] = field(default_factory=dict)  # connection -> query texts
    changes: list[PlannedChange] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    fetched: bool = False
    api_calls: int = 0
    closed_cycles: list[str] = field(default_factory=list)  # their metrics are not fetched
    frozen: list[str] = field(default_factory=list)  # key results of closed cycles

    @property
    def failed(self) -> bool:
        """A query (or an expression over its answers) failed: the plan is incomplete."""
        return any(c.error for c in self.changes)

    @property
    def any_changes(self) -> bool:
        """A sync would change the store: a definition, or a value (and push it)."""
        return self.definitions.any or any(c.error is None for c in self.changes)

    def as_json(self) -> dict[str, Any]:
        return {
            "store_ready": self.store_ready,
            "definitions": {
                "added": self.definitions.added,
                "changed": self.definitions.changed,
                "archived": self.definitions.archived,
                "diffs": self.definitions.diffs,
            },
            "queries": self.queries,
            "fetched": self.fetched,
            "api_calls": self.api_calls,
            "changes": [
                {
                    "key_result": c.key_result,
                    "old": None if c.old is None else str(c.old),
                    "new": None if c.new is None else str(c.new),
                    "progress": None if c.progress is None else str(c.progress),
                    "mirrors": c.mirrors,
                    "error": c.error,
                }
                for c in self.changes
            ],
            "unchanged": self.unchanged,
            "closed_cycles": self.closed_cycles,
            "frozen_key_results": self.frozen,
        }

    def print(self, out: Console) -> None:
        d = self.definitions
        if not self.store_ready:
            out.print("store not initialised yet: every definition would be added")
        out.print(
            f"definitions: {len(d.added)} to add, {len(d.changed)} to change, "
            f"{len(d.archived)} to archive, {d.unchanged} unchanged"
        )
        for label, items in (("+", d.added), ("~", d.changed), ("-", d.archived)):
            for item in items:
                out.print(f"  {label} {item}", highlight=False)
                for line in d.diffs.get(item, []):
                    style = {"-": "red", "+": "green"}.get(line[:1], "")
                    out.print(f"      {line}", style=style, highlight=False, markup=False)
        if self.closed_cycles:
            out.print(
                f"closed cycles ({', '.join(self.closed_cycles)}): {len(self.frozen)} key "
                "results left out, their values are frozen and their metrics are not fetched",
                highlight=False,
            )
        total = sum(len(q) for q in self.queries.values())
        out.print(f"fetch: {total} distinct queries on {len(self.queries)} connections")
        for connection, texts in self.queries.items():
            for text in texts:
                out.print(f"  {connection}: {text}", highlight=False)
        if not self.fetched:
            return
        out.print(f"changes ({self.api_calls} API calls made to read them):")
        for c in self.changes:
            if c.error:
                out.print(f"  ! {c.key_result}: {c.error}", highlight=False)
                continue
            out.print(f"  ~ {c.key_result}: {c.old} → {c.new}", highlight=False)
            for mirror in c.mirrors:
                out.print(f"      would push to {mirror}", highlight=False)
        if self.unchanged:
            out.print(f"  unchanged: {', '.join(self.unchanged)}")


def store_exists(url: str) -> bool:
    """False for a SQLite file that does not exist yet (reading must not create it)."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return True
    return parsed.database == ":memory:" or Path(parsed.database).exists()


async def build_plan(
    settings: Settings, config: Config, registry: Registry, redactor: Redactor, *, fetch: bool
) -> PlanResult:
    now = datetime.now(UTC)
    url = settings.database_url.get_secret_value()
    stored: dict[str, Decimal | None] = {}
    ready = False
    closed: set[str] = set()  # in the store: a sync does not fetch them either
    if store_exists(url):
        engine = make_engine(url)
        try:
            ready = current_revision(engine) == head_revision()
            if ready:
                with Session(engine) as session:
                    definitions = sync_definitions(
                        session, config, now, dry_run=True, digest_key=digest_key(settings)
                    )
                    stored = {r.id: r.value for r in session.exec(select(KeyResultRow))}
                    closed |= closed_in_store(session).keys()
                    session.rollback()
        finally:
            engine.dispose()
    if not ready:
        definitions = DefinitionChanges(
            added=[f"key_results:{kr.id}" for kr in config.key_results()]
            + [f"metrics:{name}" for name in metric_definitions(config)]
            + [f"connections:{name}" for name in sorted(config.connections)]
        )
    shut = sorted(closed & {o.cycle for o in config.objectives})
    open_ids = open_key_result_ids(config, shut)
    plan = plan_queries(config, key_results=open_ids if shut else None)
    result = PlanResult(definitions, ready, closed_cycles=shut)
    result.frozen = [kr.id for kr in config.key_results() if kr.id not in open_ids]
    for connection, queries in sorted(plan.by_connection.items()):
        result.queries[connection] = [q.spec.query_text() for q in queries]
    if not fetch:
        return result
    connections = Connections(config, dict(registry.connectors))
    try:
        # each connection within its fetch_deadline, as in a run: a hung vendor cannot hang
        # the review step; it shows as that connection's error
        deadlines = {
            name: config.fetch_deadline(name).total_seconds() for name in plan.by_connection
        }
        bounds = {name: config.metrics[name].bounds for name in plan.metric_names}
        fetched = await fetch_all(plan, connections, redactor, deadlines=deadlines, bounds=bounds)
        result.fetched = True
        result.api_calls = fetched.api_calls
        for evaluation, item in evaluate_plan(config, plan, fetched.readings, "plan", now):
            kr = item.key_result
            old = stored.get(kr.id)
            if not evaluation.ok:
                error = redactor.redact(evaluation.error or "")
                result.changes.append(PlannedChange(kr.id, old, None, None, [], error))
            elif old is not None and old == evaluation.value:
                result.unchanged.append(kr.id)
            else:
                targets = [*kr.mirrors, *item.objective.mirrors]
                mirrors = [describe_mirror(connections, m) for m in targets]
                result.changes.append(
                    PlannedChange(kr.id, old, evaluation.value, evaluation.progress, mirrors)
                )
    finally:
        await connections.aclose()
    return result


def describe_mirror(connections: Connections, mirror: MirrorDef) -> str:
    """Where a mirror would push, in the sink's own words (its key when the sink is broken)."""
    try:
        text = connections.sink(mirror.connection).describe(mirror.spec)
    except Exception:  # a broken plugin must not break a dry run
        return mirror.key
    return f"{text} (digest)" if mirror.is_digest else text


def plan_exit_code(result: PlanResult, *, detailed: bool) -> int:
    """As Terraform: 1 when anything failed; with ``--detailed-exitcode`` 2 when there are
    changes and 0 when there are none (without it, changes are a success too)."""
    if result.failed:
        return 1
    return 2 if detailed and result.any_changes else 0
