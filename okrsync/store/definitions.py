"""Upserting YAML definitions into the store; what left the YAML is archived, never deleted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlmodel import Session, SQLModel, select

from okrsync.config import Config
from okrsync.domain.definition_diff import Definition, compare, field_diff
from okrsync.domain.grading import score
from okrsync.domain.planner import metric_definitions
from okrsync.store.connection_definitions import (
    connection_definitions,
    connection_diff,
    record_connections,
    recorded_connections,
    without_digests,
)
from okrsync.store.metric_definitions import record_metrics, recorded_metrics
from okrsync.store.tables import CycleRow, KeyResultRow, MirrorRow, ObjectiveRow


@dataclass
class DefinitionChanges:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    unchanged: int = 0
    # label -> ``-``/``+`` lines of what changed (metrics' queries, key results' fields …)
    diffs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.added or self.changed or self.archived)


def desired_rows(config: Config) -> list[tuple[type[SQLModel], str, dict[str, Any]]]:
    """Every definition row the config describes: (table, primary key, column values)."""
    rows: list[tuple[type[SQLModel], str, dict[str, Any]]] = []
    for cycle in config.cycles.values():
        rows.append((CycleRow, cycle.id, {"start": cycle.start, "end": cycle.end}))
    for o_pos, objective in enumerate(config.objectives):
        rows.append(
            (
                ObjectiveRow,
                objective.id,
                {
                    "title": objective.title,
                    "cycle_id": objective.cycle,
                    "owner": objective.owner,
                    "weight": objective.weight,
                    "description": objective.description,
                    "position": o_pos,
                },
            )
        )
        for mirror in objective.mirrors:
            rows.append(
                (
                    MirrorRow,
                    mirror.key,
                    {
                        "objective_id": objective.id,
                        "key_result_id": None,
                        "connection": mirror.connection,
                        "spec": mirror.spec.model_dump(mode="json"),
                    },
                )
            )
        for k_pos, kr in enumerate(objective.key_results):
            rows.append(
                (
                    KeyResultRow,
                    kr.id,
                    {
                        "objective_id": objective.id,
                        "title": kr.title,
                        "kind": kr.kind.value,
                        "start": kr.start,
                        "target": kr.target,
                        "low": kr.low,
                        "high": kr.high,
                        "unit": kr.unit,
                        "weight": kr.weight,
                        "metric": kr.metric,
                        "expression": kr.value.text if kr.value is not None else None,
                        "stale_after_seconds": (
                            int(kr.stale_after.total_seconds()) if kr.stale_after else None
                        ),
                        "position": k_pos,
                        "stretch": kr.stretch,
                        "decimals": kr.decimals,
                    },
                )
            )
            for mirror in kr.mirrors:
                rows.append(
                    (
                        MirrorRow,
                        mirror.key,
                        {
                            "key_result_id": kr.id,
                            "objective_id": None,
                            "connection": mirror.connection,
                            "spec": mirror.spec.model_dump(mode="json"),
                        },
                    )
                )
    return rows


def desired_mirrors(config: Config) -> dict[str, dict[str, Any]]:
    return {pk: values for kind, pk, values in desired_rows(config) if kind is MirrorRow}


def _pair_mirrors(
    existing: dict[str, Any], wanted: dict[str, dict[str, Any]], changes: DefinitionChanges
) -> None:
    """A mirror whose target was edited has a new key (the key digests its spec): the new one
    is shown with the target's fields before and after, and which mirror it replaces."""
    prefix = len("mirrors:")
    gone = [label[prefix:] for label in changes.archived if label.startswith("mirrors:")]
    new = [label[prefix:] for label in changes.added if label.startswith("mirrors:")]
    for key in new:
        owner = key.rsplit("/", 1)[0]  # ``<key result>/<connection>``: same place, same sink
        replaced = [old for old in gone if old.rsplit("/", 1)[0] == owner]
        if len(replaced) != 1:
            continue  # several edited at once: which replaced which is a guess, so none is made
        before = existing[replaced[0]]
        diff = field_diff(_target(before.connection, before.spec), _target(**_mirror(wanted[key])))
        changes.diffs[f"mirrors:{key}"] = [f"replaces mirrors:{replaced[0]}", *diff]


def _mirror(values: dict[str, Any]) -> dict[str, Any]:
    return {"connection": values["connection"], "spec": values["spec"]}


def _target(connection: str, spec: dict[str, Any]) -> dict[str, str | None]:
    fields: dict[str, str | None] = {"connection": connection}
    fields.update({f"target.{k}": None if v is None else str(v) for k, v in sorted(spec.items())})
    return fields


def _pk_name(table: type[SQLModel]) -> str:
    return "key" if table is MirrorRow else "id"


def sync_definitions(
    session: Session,
    config: Config,
    now: datetime,
    *,
    dry_run: bool = False,
    digest_key: bytes | None = None,
) -> DefinitionChanges:
    """Make the store's definitions match ``config``. State columns are never touched here.
    With ``digest_key`` a connection's secrets are compared by their keyed digests."""
    changes = DefinitionChanges()
    wanted: dict[type[SQLModel], set[str]] = {}
    existing: dict[type[SQLModel], dict[str, Any]] = {}
    tables: tuple[type[SQLModel], ...] = (CycleRow, ObjectiveRow, KeyResultRow, MirrorRow)
    for table in tables:
        existing[table] = {getattr(r, _pk_name(table)): r for r in session.exec(select(table))}
        wanted[table] = set()
    for kind, pk, values in desired_rows(config):
        wanted[kind].add(pk)
        label = f"{kind.__tablename__}:{pk}"
        row = existing[kind].get(pk)
        if row is None:
            changes.added.append(label)
            if not dry_run:
                session.add(kind(**{_pk_name(kind): pk, **values}))
            continue
        differs = any(getattr(row, k) != v for k, v in values.items())
        if differs or row.archived_at is not None:
            changes.changed.append(label)
            before = {k: _text(getattr(row, k)) for k in values}
            diff = field_diff(before, {k: _text(v) for k, v in values.items()})
            if diff:
                changes.diffs[label] = diff
            if not dry_run:
                for k, v in values.items():
                    setattr(row, k, v)
                row.archived_at = None
                session.add(row)
        else:
            changes.unchanged += 1
    for kind, rows in existing.items():
        for pk, row in rows.items():
            if pk not in wanted[kind] and row.archived_at is None:
                changes.archived.append(f"{kind.__tablename__}:{pk}")
                if not dry_run:
                    row.archived_at = now
                    session.add(row)
    _pair_mirrors(existing[MirrorRow], desired_mirrors(config), changes)
    _compare_metrics(session, config, now, changes, dry_run=dry_run, digest_key=digest_key)
    if not dry_run:
        _rescore(session, config, existing[KeyResultRow])
        session.flush()
    return changes


def _rescore(session: Session, config: Config, rows: dict[str, Any]) -> None:
    """Scores that a changed ``stretch`` or ``grading`` moved (the value did not change, so the
    recorder would not rescore them); like the other definitions, written only when different."""
    for kr in config.key_results():
        row = rows.get(kr.id)
        if row is None or row.value is None:
            continue
        try:
            fresh = score(kr.target_spec, row.value, stretch=kr.stretch, rule=kr.grading)
        except (ArithmeticError, ValueError):
            fresh = None
        if row.score != fresh:
            row.score = fresh
            session.add(row)


def _compare_metrics(
    session: Session,
    config: Config,
    now: datetime,
    changes: DefinitionChanges,
    *,
    dry_run: bool,
    digest_key: bytes | None,
) -> None:
    """Metrics' connection, query and schedule, and connections' fields, against the ones
    applied last; only the rows of what changed are written."""
    _compare(
        "metrics",
        recorded_metrics(session),
        metric_definitions(config),
        changes,
        None if dry_run else partial(record_metrics, session, now=now),
    )
    recorded = recorded_connections(session)
    _compare(
        "connections",
        recorded if digest_key is not None else without_digests(recorded),
        connection_definitions(config, digest_key),
        changes,
        None if dry_run else partial(record_connections, session, now=now),
        connection_diff,
    )


def _compare(
    kind: str,
    recorded: dict[str, dict[str, str | None]],
    wanted: dict[str, dict[str, str | None]],
    changes: DefinitionChanges,
    record: Callable[..., None] | None,
    differ: Callable[[Definition, Definition], list[str]] = field_diff,
) -> None:
    added, changed, removed, unchanged = compare(recorded, wanted, differ)
    changes.added.extend(f"{kind}:{name}" for name in added)
    for name, diff in changed.items():
        changes.changed.append(f"{kind}:{name}")
        changes.diffs[f"{kind}:{name}"] = diff
    changes.archived.extend(f"{kind}:{name}" for name in removed)
    changes.unchanged += unchanged
    if record is not None and (added or changed or removed):
        record(wanted, added=added, changed=list(changed), removed=removed)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
