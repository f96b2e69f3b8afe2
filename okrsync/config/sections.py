"""The sections that declare what objectives build on: defaults, connections, metrics (cycles:
:mod:`okrsync.config.cycles`).

Each reader validates its section with the document models (defaults and every metric's
own fields each in one call), declares its names in :class:`CrossReferences` (even those of
entries that are otherwise wrong, so a misspelt setting does not also make every use of the
entry "unknown") and returns the definitions that came out whole.
"""

from __future__ import annotations

import keyword
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from okrsync.config.crossrefs import CrossReferences
from okrsync.config.models import (
    DEFAULT_SCHEDULE,
    ConnectionCommon,
    DefaultsDocument,
    MetricCommon,
    MetricCommonTable,
    MetricDef,
)
from okrsync.config.pydantic_errors import check, valid_fields, validate
from okrsync.config.readers import ValueReader
from okrsync.config.reporting import did_you_mean
from okrsync.config.yaml_source import KeyPath
from okrsync.domain.plausibility import Bounds
from okrsync.domain.schedule import Schedule
from okrsync.sdk.connector import ConnectionConfig, QuerySpec

_METRIC_COMMONS = TypeAdapter(MetricCommonTable)
_METRIC_FIELDS = frozenset(MetricCommon.model_fields)
_CONNECTION_FIELDS = frozenset(ConnectionCommon.model_fields)


def read_defaults(read: ValueReader, value: object) -> tuple[Schedule | None, timedelta | None]:
    """The default schedule of metrics and ``stale_after`` of key results."""
    path: KeyPath = ("defaults",)
    if value is None:
        return Schedule.parse(DEFAULT_SCHEDULE), None
    if read.mapping(path, value, "defaults") is None:
        return None, None
    defaults, problems = check(DefaultsDocument, value)
    for loc, message in problems:
        read.problem((*path, *loc), message)
    if not isinstance(defaults, DefaultsDocument):
        return None, None
    return defaults.schedule or Schedule.parse(DEFAULT_SCHEDULE), defaults.stale_after


def read_connections(
    read: ValueReader, refs: CrossReferences, value: object
) -> dict[str, ConnectionConfig]:
    """Each connection, validated by the connection model of its ``type``'s connector and, for
    the okrsync fields every connection has (``fetch_deadline``), by :class:`ConnectionCommon`;
    no value is quoted back (it may be a secret)."""
    path: KeyPath = ("connections",)
    if value is None:
        return {}
    section = read.mapping(path, value, "connections")
    if section is None:
        refs.connections_readable = False
        return {}
    common = _CONNECTION_FIELDS
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
        shared, problems = check(
            ConnectionCommon, {k: v for k, v in mapping.items() if k in common}, secret=True
        )
        for loc, message in problems:
            read.problem((*where, *loc), message)
        if isinstance(shared, ConnectionCommon) and shared.fetch_deadline is not None:
            refs.fetch_deadlines[name] = shared.fetch_deadline
        model = refs.connectors[kind].connection_model
        own = {k: v for k, v in mapping.items() if k not in common}
        validated = validate(read, where, model, own, secret=True, also_allowed=common)
        if isinstance(validated, ConnectionConfig):
            refs.connections[name] = validated
    return refs.connections


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
    shared = {
        name: {k: v for k, v in body.items() if k in _METRIC_FIELDS}
        for name, body in section.items()
        if isinstance(body, dict)
    }
    documents, problems = check(_METRIC_COMMONS, shared, shape=MetricCommonTable)
    for loc, message in problems:
        read.problem((*path, *loc), message)
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
        if documents is not None:
            fields = documents[name].__dict__
        else:
            fields, wrong = valid_fields(MetricCommon, shared[name])
            if wrong:
                fields = {k: v for k, v in fields.items() if k == "connection"}
        connection: str | None = fields.get("connection")
        schedule: Schedule | None = fields.get("schedule") or default_schedule
        bounds = metric_bounds(read, where, fields)
        query_fields = {k: v for k, v in mapping.items() if k not in _METRIC_FIELDS}
        model = refs.query_model_for(where, connection)
        if model is None:
            continue
        spec = validate(read, where, model, query_fields, secret=False, also_allowed=_METRIC_FIELDS)
        if (
            isinstance(spec, QuerySpec)
            and connection is not None
            and schedule is not None
            and bounds is not None
        ):
            metrics[name] = MetricDef(name, connection, schedule, spec, read.line(where), bounds)
    return metrics


def metric_bounds(read: ValueReader, where: KeyPath, fields: dict[str, Any]) -> Bounds | None:
    """A metric's ``min``/``max`` (plausible readings); ``None`` when they are wrong."""
    if "min" not in fields or "max" not in fields:
        return None  # refused, and reported
    low: Decimal | None = fields["min"]
    high: Decimal | None = fields["max"]
    if low is not None and high is not None and low > high:
        read.problem((*where, "min"), f"min {low} is above max {high}")
        return None
    return Bounds(low, high)
