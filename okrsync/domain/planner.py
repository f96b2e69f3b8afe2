"""Which queries a sync pass asks, and of whom. Pure.

Identical questions are asked once: two key results (or two metrics) whose connection, query spec
and cycle are equal share one :class:`Query`, so the vendor sees a single request per tick.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from okrsync.domain.schedule import Schedule, shared_jitter
from okrsync.sdk.models import CycleWindow, Query

if TYPE_CHECKING:
    from okrsync.config import Config, CycleDef, KeyResultDef, ObjectiveDef


@dataclass(frozen=True)
class PlannedKeyResult:
    """A key result with the objective and cycle it belongs to."""

    key_result: KeyResultDef
    objective: ObjectiveDef
    cycle: CycleDef


@dataclass
class QueryPlan:
    """The queries of one pass, grouped per connection, and who needs each answer."""

    by_connection: dict[str, list[Query[Any]]] = field(default_factory=dict)
    # (metric name, cycle id) -> query key
    key_for: dict[tuple[str, str], str] = field(default_factory=dict)
    key_results: list[PlannedKeyResult] = field(default_factory=list)

    @property
    def query_count(self) -> int:
        return sum(len(queries) for queries in self.by_connection.values())

    @property
    def connections(self) -> frozenset[str]:
        return frozenset(self.by_connection)

    @property
    def metric_names(self) -> frozenset[str]:
        """Every metric the plan asks for, the due ones and their key results' other operands."""
        return frozenset(name for name, _cycle in self.key_for)


def plan_queries(
    config: Config,
    *,
    metrics: Collection[str] | None = None,
    key_results: Collection[str] | None = None,
) -> QueryPlan:
    """Plan a pass over the key results that read any of ``metrics`` (all when None).

    A key result whose value is an expression over several metrics gets all of them fetched when
    any one is due: its value needs every operand from the same moment.
    """
    plan = QueryPlan()
    wanted_metrics = None if metrics is None else set(metrics)
    wanted_krs = None if key_results is None else set(key_results)
    asked: dict[str, tuple[str, Any, CycleWindow]] = {}  # key -> (connection, spec, cycle)
    askers: dict[str, dict[str, None]] = {}  # key -> metric names, in order, without repeats
    for objective in config.objectives:
        cycle_def = config.cycles[objective.cycle]
        cycle = cycle_def.window()
        for kr in objective.key_results:
            names = kr.metric_names()
            if wanted_krs is not None and kr.id not in wanted_krs:
                continue
            if not names:  # a manual key result: only check-ins set its value
                continue
            if wanted_metrics is not None and not names & wanted_metrics:
                continue
            plan.key_results.append(PlannedKeyResult(kr, objective, cycle_def))
            for name in sorted(names):
                metric = config.metrics[name]
                key = Query.make_key(metric.connection, metric.spec, cycle)
                plan.key_for[(name, cycle.id)] = key
                asked.setdefault(key, (metric.connection, metric.spec, cycle))
                askers.setdefault(key, {})[name] = None
    for key, (connection, spec, cycle) in asked.items():
        query = Query(key, connection, tuple(askers[key]), spec, cycle)
        plan.by_connection.setdefault(connection, []).append(query)
    return plan


def split_plan(plan: QueryPlan) -> list[QueryPlan]:
    """The plan cut into parts that share no connection, each with the key results it answers.

    Two connections fall in one part when a key result reads both (an expression over metrics of
    several connections needs all its operands from the same pass); otherwise each connection is
    its own part. A part can then be fetched, evaluated and recorded without waiting for any
    other, so a slow vendor holds back only the key results that read it. Parts come in the
    order of their first connection's name; key results keep the plan's order. Pure.
    """
    connection_of = {q.key: name for name, queries in plan.by_connection.items() for q in queries}
    parent = {name: name for name in plan.by_connection}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    reads: list[set[str]] = []
    for item in plan.key_results:
        names = item.key_result.metric_names()
        connections = {connection_of[plan.key_for[(n, item.cycle.id)]] for n in names}
        reads.append(connections)
        ordered = sorted(connections)
        for other in ordered[1:]:
            parent[root(other)] = root(ordered[0])
    parts: dict[str | None, QueryPlan] = {}
    for name in sorted(plan.by_connection):
        part = parts.setdefault(root(name), QueryPlan())
        part.by_connection[name] = plan.by_connection[name]
    for (metric, cycle), key in plan.key_for.items():
        parts[root(connection_of[key])].key_for[(metric, cycle)] = key
    for item, connections in zip(plan.key_results, reads, strict=True):
        group = root(min(connections)) if connections else None  # reads no source at all
        parts.setdefault(group, QueryPlan()).key_results.append(item)
    return list(parts.values())


RequestKey = Callable[[str, Any], str]
"""``(connection, spec) -> str``: what a connection's source says one request answers (its
``Source.request_key``)."""


def default_request_key(connection: str, spec: Any) -> str:
    """The spec itself: only metrics asking the very same question share a request."""
    return str(spec.model_dump_json())


def request_keys(config: Config, request_key: RequestKey = default_request_key) -> dict[str, str]:
    """Each metric's alignment key: its connection and the request its source would send.

    Metrics with equal keys are answered by one request (one query the planner dedupes, one
    batch a source answers together, one response read at several paths), so the scheduler
    gives them one jitter and lets them fall due in the same pass. The cycle is left out: a
    metric's schedule does not depend on the key results reading it. Pure given ``request_key``.
    """
    return {
        name: f"{metric.connection}\n{request_key(metric.connection, metric.spec)}"
        for name, metric in config.metrics.items()
    }


def schedule_offsets(
    schedules: dict[str, Schedule],
    keys: dict[str, str],
    max_jitter: timedelta = timedelta(seconds=30),
) -> dict[str, timedelta]:
    """Each metric's jitter: the :func:`shared_jitter` of its alignment key over the schedules
    of every metric with that key, so they tick together whatever their own schedules. Pure."""
    by_key: dict[str, dict[str, Schedule]] = {}
    for name, schedule in schedules.items():
        by_key.setdefault(keys[name], {})[schedule.text] = schedule
    shared = {key: shared_jitter(key, found.values(), max_jitter) for key, found in by_key.items()}
    return {name: shared[keys[name]] for name in schedules}


def metric_definitions(config: Config) -> dict[str, dict[str, str | None]]:
    """Each metric's definition as ``plan`` compares it: connection, query text, schedule. Pure."""
    return {
        name: {
            "connection": metric.connection,
            "query": metric.spec.query_text(),
            "schedule": metric.schedule.text,
        }
        for name, metric in sorted(config.metrics.items())
    }
