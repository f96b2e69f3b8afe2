"""The sections that declare what objectives build on: defaults, connections, cycles, metrics.

Each reader checks its section, declares its names in :class:`CrossReferences` (even those of
entries that are otherwise wrong, so a misspelt setting does not also make every use of the
entry "unknown") and returns the definitions that came out whole.
"""

from __future__ import annotations

import keyword
from datetime import timedelta

from okrsync.config.crossrefs import CrossReferences, UniqueIds
from okrsync.config.models import (
    DEFAULT_SCHEDULE,
    ConnectionCommon,
    CycleDef,
    CycleDocument,
    DefaultsDocument,
    MetricCommon,
    MetricDef,
    field_names,
)
from okrsync.config.pydantic_errors import validate
from okrsync.config.readers import ValueReader
from okrsync.config.reporting import MISSING, did_you_mean
from okrsync.config.yaml_source import KeyPath
from okrsync.engine.plausibility import Bounds
from okrsync.engine.schedule import Schedule
from okrsync.sdk.connector import ConnectionConfig, QuerySpec


def read_defaults(read: ValueReader, value: object) -> tuple[Schedule | None, timedelta | None]:
    """The default schedule of metrics and ``stale_after`` of key results."""
    path: KeyPath = ("defaults",)
    if value is None:
        return read.schedule(path, DEFAULT_SCHEDULE), None
    mapping = read.mapping(path, value, "defaults")
    if mapping is None:
        return None, None
    read.known_keys(path, mapping, field_names(DefaultsDocument))
    raw_schedule = mapping.get("schedule")
    schedule = (
        read.schedule((*path, "schedule"), raw_schedule)
        if raw_schedule is not None
        else read.schedule(path, DEFAULT_SCHEDULE)
    )
    return schedule, read.duration((*path, "stale_after"), mapping.get("stale_after"))


def read_connections(
    read: ValueReader, refs: CrossReferences, value: object
) -> dict[str, ConnectionConfig]:
    """Each connection, validated by the connection model of its ``type``'s connector; the
    okrsync fields every connection has (``fetch_deadline``) are read here, not by the model."""
    path: KeyPath = ("connections",)
    if value is None:
        return {}
    section = read.mapping(path, value, "connections")
    if section is None:
        refs.connections_readable = False
        return {}
    common = field_names(ConnectionCommon)
    for name, body in section.items():
        where = (*path, name)
        refs.declared_connections.add(name)
        read.identifier(where, name, "connection name")
        mapping = read.mapping(where, body, f"the settings of connection {name!r}")
        if mapping is None:
            continue
        kind = mapping.get("type")
        if kind is None:
            read.problem(
                (*where, "type"),
                "missing required key 'type'; installed connection types: "
                + ", ".join(sorted(refs.connectors)),
            )
            continue
        if not isinstance(kind, str) or kind not in refs.connectors:
            installed = sorted(refs.connectors)  # only now: naming them all imports them all
            shown = read.show((*where, "type"), kind)
            hint = did_you_mean(str(kind), installed)
            read.problem(
                (*where, "type"),
                f"unknown connection type {shown}; installed: {', '.join(installed) or 'none'}"
                + (f" (did you mean {hint!r}?)" if hint else ""),
            )
            continue
        refs.connection_types[name] = kind
        deadline = read.duration((*where, "fetch_deadline"), mapping.get("fetch_deadline"))
        if deadline is not None:
            refs.fetch_deadlines[name] = deadline
        model = refs.connectors[kind].connection_model
        own = {k: v for k, v in mapping.items() if k not in common}
        validated = validate(read, where, model, own, secret=True, also_allowed=common)
        if isinstance(validated, ConnectionConfig):
            refs.connections[name] = validated
    return refs.connections


def read_cycles(read: ValueReader, refs: CrossReferences, value: object) -> dict[str, CycleDef]:
    """Each cycle (a time box with an id, a start and an end no earlier than the start)."""
    path: KeyPath = ("cycles",)
    cycles: dict[str, CycleDef] = {}
    if value is None:
        return cycles
    items = read.sequence(path, value, "cycles")
    if items is None:
        refs.declared_cycles = None
        return cycles
    ids = UniqueIds(read, "cycle")
    for index, item in enumerate(items):
        where = (*path, index)
        mapping = read.mapping(where, item, "a cycle with id, start and end")
        if mapping is None:
            continue
        read.known_keys(where, mapping, field_names(CycleDocument))
        raw_id = read.required(where, mapping, "id")
        cycle_id = read.identifier((*where, "id"), raw_id, "cycle id")
        if refs.declared_cycles is not None and raw_id is not MISSING:
            refs.declared_cycles.add(str(raw_id))
        start = read.day((*where, "start"), read.required(where, mapping, "start"))
        end = read.day((*where, "end"), read.required(where, mapping, "end"))
        if cycle_id is not None and not ids.claim(cycle_id, (*where, "id")):
            continue
        if start is not None and end is not None and end < start:
            read.problem(
                (*where, "end"),
                f"cycle ends ({end.isoformat()}) before it starts ({start.isoformat()})",
            )
            continue
        if cycle_id is not None and start is not None and end is not None:
            cycles[cycle_id] = CycleDef(cycle_id, start, end)
    return cycles


def read_metrics(
    read: ValueReader, refs: CrossReferences, value: object, default_schedule: Schedule | None
) -> dict[str, MetricDef]:
    """Each metric: its source connection, its schedule and its connector's query fields."""
    path: KeyPath = ("metrics",)
    metrics: dict[str, MetricDef] = {}
    if value is None:
        return metrics
    section = read.mapping(path, value, "metrics (a mapping of metric name to its query)")
    if section is None:
        refs.metrics_readable = False
        return metrics
    refs.declared_metrics.update(section)
    common = field_names(MetricCommon)
    for name, body in section.items():
        where = (*path, name)
        if not name.isidentifier() or keyword.iskeyword(name):
            read.problem(
                where,
                f"metric name {name!r} is not usable in expressions: use letters, digits and "
                "underscores, not starting with a digit, and not a Python keyword",
            )
        mapping = read.mapping(where, body, f"the query of metric {name!r}")
        if mapping is None:
            continue
        connection = read.text((*where, "connection"), read.required(where, mapping, "connection"))
        raw_schedule = mapping.get("schedule")
        schedule = (
            read.schedule((*where, "schedule"), raw_schedule)
            if raw_schedule is not None
            else default_schedule
        )
        bounds = read_bounds(read, where, mapping)
        query_fields = {k: v for k, v in mapping.items() if k not in common}
        model = refs.query_model_for(where, connection)
        if model is None:
            continue
        spec = validate(read, where, model, query_fields, secret=False, also_allowed=common)
        if (
            isinstance(spec, QuerySpec)
            and connection is not None
            and schedule is not None
            and bounds is not None
        ):
            metrics[name] = MetricDef(name, connection, schedule, spec, read.line(where), bounds)
    return metrics


def read_bounds(read: ValueReader, where: KeyPath, mapping: dict[str, object]) -> Bounds | None:
    """A metric's ``min``/``max`` (plausible readings); ``None`` when they are wrong."""
    low = read.number((*where, "min"), mapping.get("min"))
    high = read.number((*where, "max"), mapping.get("max"))
    if (low is None and mapping.get("min") is not None) or (
        high is None and mapping.get("max") is not None
    ):
        return None
    if low is not None and high is not None and low > high:
        read.problem((*where, "min"), f"min {low} is above max {high}")
        return None
    return Bounds(low, high)
