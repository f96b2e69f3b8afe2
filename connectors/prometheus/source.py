"""The ``prometheus`` source: one instant PromQL query → one number.

Reliability key results ("p95 checkout latency below 300 ms", "availability above 99.9 %") live in
Prometheus. The source sends ``GET /api/v1/query`` and is strict about the answer, because a
number that silently came from the wrong series is worse than no number:

* a ``scalar`` answer is the value; a ``vector`` must have exactly one element unless the metric
  says how to fold several (``aggregate: sum|max|min|avg|first``) — otherwise the error lists the
  series so the user can narrow the selector;
* an empty vector is "no series matched", never a quiet zero;
* ``NaN`` and ``±Inf`` (a ``histogram_quantile`` over no traffic, a division by zero) are not
  numbers a key result can use, and are reported as such;
* a range vector (``matrix``) or a ``string`` answer means the query is not an instant query.

The evaluation time is always sent explicitly (``time=``), so the provenance says exactly what
instant was measured: now, or with ``at: cycle_end`` the end of the cycle's last day (UTC) when
that is already past. ``{cycle_range}`` in the query becomes the time from the cycle's start to
the evaluation time as a PromQL duration (``increase(orders_total[{cycle_range}])``).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import httpx

from connectors.prometheus.models import (
    CYCLE_RANGE,
    PrometheusConnection,
    PrometheusQuery,
)
from okrsync.errors import Blame, ConnectorError, QueryError, RetriableError, VendorResponseError
from okrsync.sdk.auth import auth_headers
from okrsync.sdk.http import (
    DEFAULT_ERROR_TABLE,
    ErrorAction,
    ErrorRule,
)
from okrsync.sdk.http_connector import HttpSource
from okrsync.sdk.models import CycleWindow, Query, Reading, digest

QUERY_PATH = "/api/v1/query"
_SHOWN_SERIES = 3

ERROR_TABLE = {
    **DEFAULT_ERROR_TABLE,
    400: ErrorRule(ErrorAction.FAIL, QueryError, "Prometheus rejected the query"),
    422: ErrorRule(ErrorAction.FAIL, QueryError, "Prometheus could not execute the query"),
    503: ErrorRule(
        ErrorAction.RETRY, RetriableError, "Prometheus timed out or is overloaded (query aborted)"
    ),
}


def describe_prometheus_error(response: httpx.Response) -> str | None:
    """``bad_data: 1:5: parse error: …`` from Prometheus's ``{"status":"error",…}`` body."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        kind = body.get("errorType")
        return f"{kind}: {body['error']}" if isinstance(kind, str) and kind else body["error"]
    return None


def evaluation_time(spec: PrometheusQuery, cycle: CycleWindow, now: datetime) -> datetime:
    if spec.at == "cycle_end":
        end = datetime.combine(cycle.end + timedelta(days=1), time(), tzinfo=UTC)
        return min(end, now)
    return now


def cycle_range(cycle: CycleWindow, at: datetime) -> str:
    """The PromQL duration from the cycle's first instant (UTC) to ``at``."""
    start = datetime.combine(cycle.start, time(), tzinfo=UTC)
    seconds = int((at - start).total_seconds())
    if seconds <= 0:
        raise ConnectorError(
            f"{CYCLE_RANGE} is empty: cycle {cycle.id} starts on {cycle.start}, after the "
            f"evaluation time {at:%Y-%m-%dT%H:%M:%SZ}",
            blame=Blame.TRANSIENT,
        )
    return f"{seconds}s"


def _number(raw: Any, what: str) -> Decimal:
    """A Prometheus sample value (always a string on the wire) as a finite Decimal."""
    if not isinstance(raw, str):
        raise VendorResponseError(f"{what} is not a Prometheus sample value: {raw!r:.60}")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise VendorResponseError(f"{what} is not a number: {raw!r:.60}") from None
    if not value.is_finite():
        raise VendorResponseError(
            f"{what} is {raw}, not a usable number (a quantile or ratio over no data?)"
        )
    return value


def _sample(pair: Any, what: str) -> Decimal:
    if not isinstance(pair, list) or len(pair) != 2:
        raise VendorResponseError(f"{what} is not a [timestamp, value] pair: {pair!r:.60}")
    return _number(pair[1], what)


def _labels(series: Any) -> str:
    metric = series.get("metric") if isinstance(series, dict) else None
    if not isinstance(metric, dict):
        return "{}"
    name = metric.get("__name__", "")
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{inner}}}"


def value_of(document: Any, spec: PrometheusQuery) -> Decimal:
    """The one number in a ``/api/v1/query`` answer, per the rules in the module docstring."""
    if not isinstance(document, dict) or document.get("status") != "success":
        raise VendorResponseError(f"not a Prometheus query answer: {str(document)[:80]!r}")
    data = document.get("data")
    if not isinstance(data, dict):
        raise VendorResponseError("the answer has no 'data' object")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _sample(result, "the scalar result")
    if kind in ("matrix", "string"):
        raise QueryError(
            f"the query returned a {'range vector' if kind == 'matrix' else 'string'}; "
            "an instant vector or a scalar is needed (wrap a range selector in a function "
            "such as rate() or avg_over_time())"
        )
    if kind != "vector" or not isinstance(result, list):
        raise VendorResponseError(f"unexpected resultType {kind!r}")
    if not result:
        raise VendorResponseError("no series matched the query (empty vector)", blame=Blame.CONFIG)
    if len(result) > 1 and spec.aggregate is None:
        shown = ", ".join(_labels(s) for s in result[:_SHOWN_SERIES])
        more = f" and {len(result) - _SHOWN_SERIES} more" if len(result) > _SHOWN_SERIES else ""
        raise QueryError(
            f"the query returned {len(result)} series ({shown}{more}); narrow the selector, "
            "aggregate in PromQL, or set aggregate: sum|max|min|avg|first"
        )
    values = [
        _sample(s.get("value") if isinstance(s, dict) else None, f"the value of {_labels(s)}")
        for s in result
    ]
    if spec.aggregate in (None, "first"):
        return values[0]
    if spec.aggregate == "sum":
        return sum(values, Decimal(0))
    if spec.aggregate == "max":
        return max(values)
    if spec.aggregate == "min":
        return min(values)
    return sum(values, Decimal(0)) / len(values)


class PrometheusSource(HttpSource[PrometheusConnection, PrometheusQuery]):
    """Answers each metric with one instant query."""

    query_model = PrometheusQuery
    error_table = ERROR_TABLE
    describe_error = describe_prometheus_error
    initial_backoff: ClassVar[float] = 0.5
    max_backoff: ClassVar[float] = 10.0
    rate_limit_backoff: ClassVar[float] = 0.5

    def auth_headers(self) -> dict[str, str]:
        return {"Accept": "application/json", **auth_headers(self.config.auth).headers}

    def secrets(self) -> list[str]:
        return [*self.config.secret_values(), *auth_headers(self.config.auth).secrets]

    def now(self) -> datetime:
        """The wall clock (a test subclass pins it)."""
        return datetime.now(UTC)

    async def fetch_one(self, query: Query[PrometheusQuery]) -> Reading:
        spec, subject = query.spec, query.subject
        at = evaluation_time(spec, query.cycle, self.now())
        promql = spec.query
        try:
            if CYCLE_RANGE in promql:
                promql = promql.replace(CYCLE_RANGE, cycle_range(query.cycle, at))
            response = await self.client.request(
                "GET",
                self.config.url + QUERY_PATH,
                params={"query": promql, "time": f"{at.timestamp():.3f}"},
                subject=subject,
            )
            document = self.client.parse_json(response, subject=subject)
            value = value_of(document, spec)
        except ConnectorError as exc:
            exc.message = self.client.redact(exc.message)
            raise exc.for_subject(self.name, subject) from None
        return Reading(
            key=query.key,
            value=value,
            query_text=f"{spec.query_text()} [time={at:%Y-%m-%dT%H:%M:%SZ}]",
            fetched_at=datetime.now(UTC),
            raw_digest=digest(response.content),
            api_calls=1,
        )
