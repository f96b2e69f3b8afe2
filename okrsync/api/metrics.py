"""``/metrics``: Prometheus text, from a registry of this app's own (never the global default).

Everything is read at scrape time by one collector: the store for what all replicas share (runs,
outbox, key-result progress, connection health, delivery lag) and this process's live connections
for HTTP counters. Nothing is counted twice and no code path elsewhere has to remember to
increment a metric.

The HTTP counters (calls, retries, rate-limited answers) come from every
:class:`~okrsync.sdk.http.HttpClient` a live connection holds, found among the connection's
attributes (and theirs, one level down). They count since this process started, and only for
connections used so far. The SDK keeps no count of failed calls, so errors per connection are the
health rows' ``consecutive_failures`` and ``status`` from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any, cast

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import case, func
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from okrsync.api.context import ApiContext
from okrsync.api.offload import in_thread
from okrsync.domain.statuses import ConnectionStatus, DeliveryStatus, RunStatus
from okrsync.sdk.http import HttpClient
from okrsync.store.db import session_scope
from okrsync.store.tables import (
    ConnectionStateRow,
    DeliveryRow,
    KeyResultRow,
    ObjectiveRow,
    RunRow,
)

log = structlog.get_logger()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LAG_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0)
CONNECTION_STATUSES = tuple(s for s in ConnectionStatus if s is not ConnectionStatus.UNKNOWN)
OUTBOX_STATUSES = tuple(DeliveryStatus)


def http_clients(live: object) -> list[HttpClient]:
    """The HTTP clients a live connection holds, each once."""
    found: dict[int, HttpClient] = {}

    def scan(obj: object, depth: int) -> None:
        if isinstance(obj, HttpClient):
            found.setdefault(id(obj), obj)
            return
        if depth == 0 or not hasattr(obj, "__dict__"):
            return
        for value in vars(obj).values():
            if isinstance(value, HttpClient) or (
                depth > 1 and type(value).__module__.startswith("connectors")
            ):
                scan(value, depth - 1)

    scan(live, 2)
    return list(found.values())


class StoreCollector(Collector):
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterable[Metric]:
        try:
            with session_scope(self.ctx.engine) as session:
                yield from self._store_metrics(session)
        except Exception as exc:  # a scrape must still answer when the store does not
            log.warning("metrics_store_unreachable", error=self.ctx.redactor.redact(str(exc)))
            yield GaugeMetricFamily("okrsync_store_up", "Whether the store answered", value=0)
        else:
            yield GaugeMetricFamily("okrsync_store_up", "Whether the store answered", value=1)
        yield from self._connection_counters()
        yield from self._scheduler()

    def _store_metrics(self, session: Session) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "okrsync_runs", "Finished sync runs in the store", labels=["trigger", "status"]
        )
        for trigger, status, count in session.exec(
            select(RunRow.trigger, RunRow.status, func.count())
            .where(RunRow.status != RunStatus.RUNNING)
            .group_by(col(RunRow.trigger), col(RunRow.status))
        ):
            runs.add_metric([trigger, status], count)
        yield runs

        outbox = GaugeMetricFamily(
            "okrsync_outbox_deliveries", "Outbox rows by status", labels=["status"]
        )
        depth: dict[str, int] = dict.fromkeys(OUTBOX_STATUSES, 0)
        for status, count in session.exec(
            select(DeliveryRow.status, func.count()).group_by(col(DeliveryRow.status))
        ):
            depth[status] = count
        for status, count in sorted(depth.items()):
            outbox.add_metric([status], count)
        yield outbox

        yield self._delivery_lag(session)
        yield from self._connection_health(session)

    def _delivery_lag(self, session: Session) -> Metric:
        """The histogram from one aggregate statement: the store counts each bucket, so a scrape
        reads one row however many deliveries were done."""
        lag = _lag_seconds(session)
        clamped = case((lag < 0, 0.0), else_=lag)
        done = (
            session.connection()
            .execute(
                core_select(
                    func.count(),
                    func.coalesce(func.sum(clamped), 0.0),
                    *(
                        func.coalesce(func.sum(case((lag <= b, 1), else_=0)), 0)
                        for b in LAG_BUCKETS
                    ),
                ).where(
                    col(DeliveryRow.status) == "done", col(DeliveryRow.delivered_at).is_not(None)
                )
            )
            .one()
        )
        total, seconds, counts = int(done[0]), float(done[1]), [int(n) for n in done[2:]]
        buckets: list[tuple[str, float]] = [
            (str(bound), float(n)) for bound, n in zip(LAG_BUCKETS, counts, strict=True)
        ]
        buckets.append(("+Inf", float(total)))
        histogram = HistogramMetricFamily(
            "okrsync_delivery_lag_seconds",
            "From a delivery queued to it delivered (done deliveries in the store)",
        )
        histogram.add_metric([], buckets, sum_value=seconds)
        return histogram

    def _connection_health(self, session: Session) -> Iterator[Metric]:
        status = GaugeMetricFamily(
            "okrsync_connection_status",
            "1 for a connection's current health status",
            labels=["connection", "status"],
        )
        failures = GaugeMetricFamily(
            "okrsync_connection_consecutive_failures",
            "Passes in a row in which every query of the connection failed",
            labels=["connection"],
        )
        for row in session.exec(select(ConnectionStateRow).order_by(col(ConnectionStateRow.name))):
            for name in CONNECTION_STATUSES:
                status.add_metric([row.name, name], 1.0 if row.status == name else 0.0)
            failures.add_metric([row.name], row.consecutive_failures)
        yield status
        yield failures

    def _connection_counters(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "okrsync_api_calls", "HTTP requests sent to a vendor", labels=["connection"]
        )
        retries = CounterMetricFamily(
            "okrsync_api_retries", "Extra attempts after a failed request", labels=["connection"]
        )
        limited = CounterMetricFamily(
            "okrsync_api_rate_limited", "Rate-limit answers (429 and kin)", labels=["connection"]
        )
        connections = self.ctx.connections
        live: dict[str, Any] = dict(getattr(connections, "_live", {})) if connections else {}
        for name in sorted(live):
            clients = http_clients(live[name])
            calls.add_metric([name], live[name].api_calls)
            retries.add_metric([name], sum(c.retries for c in clients))
            limited.add_metric([name], sum(c.rate_limited for c in clients))
        yield calls
        yield retries
        yield limited

    def _scheduler(self) -> Iterator[Metric]:
        daemon = self.ctx.daemon
        if daemon is None:
            return
        yield GaugeMetricFamily(
            "okrsync_scheduler_lag_seconds",
            "How late the most recently due metrics were started",
            value=daemon.scheduler_lag_seconds,
        )
        if daemon.last_loop_at is not None:
            age = (self.ctx.clock() - daemon.last_loop_at).total_seconds()
            yield GaugeMetricFamily(
                "okrsync_scheduler_heartbeat_age_seconds",
                "Seconds since the scheduler loop last went round",
                value=max(age, 0.0),
            )


def _float(value: Decimal) -> float:
    return float(value)


_go_float = cast("Callable[[float], str]", floatToGoString)  # as generate_latest writes numbers

KR_GAUGES = (
    ("okrsync_key_result_progress", "A key result's progress, unclamped (1 = target reached)"),
    ("okrsync_key_result_value", "A key result's current value"),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def key_result_gauges(ctx: ApiContext) -> bytes:
    """The two per-key-result gauges, in Prometheus text, from one statement of four columns.

    Written here rather than through :func:`generate_latest`: at 10,000 key results its generic
    per-sample formatting (label names checked and escaped, a dict per sample) was two thirds of
    a scrape. Empty when the store does not answer (``okrsync_store_up`` says so)."""
    try:
        with session_scope(ctx.engine) as session:
            rows = (
                session.connection()
                .execute(
                    core_select(
                        col(KeyResultRow.objective_id),
                        col(KeyResultRow.id),
                        col(KeyResultRow.progress),
                        col(KeyResultRow.value),
                    )
                    .join(ObjectiveRow, col(ObjectiveRow.id) == col(KeyResultRow.objective_id))
                    .where(
                        col(KeyResultRow.archived_at).is_(None),
                        col(ObjectiveRow.archived_at).is_(None),
                    )
                    .order_by(col(KeyResultRow.objective_id), col(KeyResultRow.position))
                )
                .all()
            )
    except Exception:  # the collector logged it and reports okrsync_store_up 0
        return b""
    out: list[str] = []
    for column, (name, help_text) in enumerate(KR_GAUGES, start=2):
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
        for row in rows:
            number = cast("Decimal | None", row[column])
            if number is not None:
                labels = f'key_result="{_label(row[1])}",objective="{_label(row[0])}"'
                out.append(f"{name}{{{labels}}} {_go_float(_float(number))}\n")
    return "".join(out).encode()


def _lag_seconds(session: Session) -> Any:
    """``delivered_at - created_at`` in seconds, in the store's own SQL."""
    if session.get_bind().dialect.name == "sqlite":  # datetimes kept as ISO text
        days = func.julianday(DeliveryRow.delivered_at) - func.julianday(DeliveryRow.created_at)
        return days * 86400.0
    return func.extract("epoch", col(DeliveryRow.delivered_at) - col(DeliveryRow.created_at))


def metrics_routes(ctx: ApiContext) -> list[BaseRoute]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(ctx))

    def scrape() -> bytes:
        return generate_latest(registry) + key_result_gauges(ctx)

    async def metrics(request: Request) -> Response:
        # the collector reads the store: in a worker thread, so the loop keeps serving
        return Response(await in_thread(scrape), media_type=CONTENT_TYPE)

    return [Route("/metrics", metrics, methods=["GET"])]
