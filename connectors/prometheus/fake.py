"""A small Prometheus-compatible ``/api/v1/query`` for unit tests and ``okrsync demo``.

It is not PromQL: it understands exactly the shapes the tests need, answered in Prometheus's
wire format (``{"status":"success","data":{"resultType":…,"result":…}}``, values as strings,
``[unix_seconds, "value"]`` samples, ``{"status":"error","errorType":"bad_data",…}`` with 400):

* a number literal (``42``, ``NaN``, ``+Inf``) and ``scalar(<selector>)`` → ``scalar``;
* ``vector(<number>)`` and a selector ``name{label="v",label=~"re"}`` → ``vector``;
* ``sum|min|max|avg|count(<selector>)`` → a one-element ``vector`` without labels;
* anything else → 400 ``bad_data`` with a parse error, as Prometheus answers.

The real server is exercised by the tests too (``test_real_prometheus.py``); this fake covers what
a real server cannot be made to do on demand (NaN, many series, auth).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

Labels = dict[str, str]

_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d+)?|Inf|NaN)$", re.IGNORECASE)
_CALL = re.compile(r"^(\w+)\((.*)\)$", re.DOTALL)
_SELECTOR = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)?(?:\{(.*)\})?$", re.DOTALL)
_MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')


def default_series() -> list[tuple[Labels, str]]:
    """Checkout latency p95 per region, availability, an empty-traffic quantile."""
    return [
        ({"__name__": "checkout_latency_p95_ms", "region": "eu", "job": "checkout"}, "241.5"),
        ({"__name__": "checkout_latency_p95_ms", "region": "us", "job": "checkout"}, "287.25"),
        ({"__name__": "checkout_latency_p95_ms", "region": "ap", "job": "checkout"}, "310"),
        ({"__name__": "availability_ratio", "job": "api"}, "0.99942"),
        ({"__name__": "orders_total", "job": "shop", "instance": "a"}, "1200"),
        ({"__name__": "orders_total", "job": "shop", "instance": "b"}, "834"),
        ({"__name__": "idle_quantile", "job": "batch"}, "NaN"),
        ({"__name__": "up", "job": "prometheus"}, "1"),
    ]


@dataclass
class PrometheusData:
    series: list[tuple[Labels, str]] = field(default_factory=default_series)
    queries: list[str] = field(default_factory=list)


class BadData(Exception):
    pass


def _fmt(value: Decimal) -> str:
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "+Inf" if value > 0 else "-Inf"
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)


def _select(data: PrometheusData, text: str) -> list[tuple[Labels, str]]:
    match = _SELECTOR.match(text.strip())
    if match is None or not (match.group(1) or match.group(2)):
        raise BadData(f'1:1: parse error: unexpected character in "{text.strip()[:20]}"')
    name, body = match.group(1), match.group(2) or ""
    matchers: list[tuple[str, str, str]] = [("__name__", "=", name)] if name else []
    rest = body
    while rest.strip():
        found = _MATCHER.match(rest)
        if found is None:
            raise BadData(f'1:{len(text) - len(rest) + 1}: parse error: unexpected "{rest[:10]}"')
        matchers.append((found.group(1), found.group(2), found.group(3)))
        rest = rest[found.end() :]
        rest = rest[1:] if rest.startswith(",") else rest
    out = []
    for labels, value in data.series:
        ok = True
        for key, op, want in matchers:
            have = labels.get(key, "")
            if op == "=":
                ok = ok and have == want
            elif op == "!=":
                ok = ok and have != want
            else:
                ok = ok and re.fullmatch(want, have) is not None
        if ok:
            out.append((labels, value))
    return out


def evaluate(data: PrometheusData, query: str) -> tuple[str, Any]:
    """(resultType, result without timestamps) for the tiny language described above."""
    text = query.strip()
    if _NUMBER.match(text):
        return "scalar", text
    call = _CALL.match(text)
    if call:
        func, arg = call.group(1), call.group(2)
        if func == "vector" and _NUMBER.match(arg.strip()):
            return "vector", [({}, arg.strip())]
        if func in ("scalar", "sum", "min", "max", "avg", "count"):
            selected = _select(data, arg)
            values = [Decimal(v) for _, v in selected]
            if func == "scalar":
                return "scalar", (_fmt(values[0]) if len(values) == 1 else "NaN")
            if not values:
                return "vector", []
            agg = {
                "sum": lambda: sum(values, Decimal(0)),
                "min": lambda: min(values),
                "max": lambda: max(values),
                "avg": lambda: sum(values, Decimal(0)) / len(values),
                "count": lambda: Decimal(len(values)),
            }[func]()
            return "vector", [({}, _fmt(agg))]
        raise BadData(f'1:1: parse error: unknown function with name "{func}"')
    if "(" in text or ")" in text:
        raise BadData(f"1:{len(text) + 1}: parse error: unclosed left parenthesis")
    return "vector", _select(data, text)


def _parse_time(raw: str | None) -> float:
    if raw is None or raw == "":
        return datetime.now().timestamp()
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadData(
            f'invalid parameter "time": cannot parse "{raw}" to a valid timestamp'
        ) from None


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"status": "error", "errorType": kind, "error": message}, status_code=status
    )


def prometheus_app(
    *,
    data: PrometheusData | None = None,
    bearer_token: str | None = None,
    basic: tuple[str, str] | None = None,
) -> Starlette:
    """The fake; ``app.state.data`` holds its series and the queries it answered."""
    state = data or PrometheusData()

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if bearer_token is not None:
            return header == f"Bearer {bearer_token}"
        if basic is not None:
            expected = base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
            return header == f"Basic {expected}"
        return True

    async def query(request: Request) -> Response:
        if not authorized(request):
            return PlainTextResponse("Unauthorized\n", status_code=401)
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: v[0] for k, v in parse_qs((await request.body()).decode()).items()})
        text = params.get("query")
        if not text:
            return _error(
                400,
                "bad_data",
                'invalid parameter "query": 1:1: parse error: no expression found in input',
            )
        try:
            at = _parse_time(params.get("time"))
            kind, result = evaluate(state, text)
        except BadData as exc:
            message = str(exc)
            if not message.startswith("invalid parameter"):
                message = f'invalid parameter "query": {message}'
            return _error(400, "bad_data", message)
        state.queries.append(text)
        stamp = round(at, 3)
        if kind == "scalar":
            body: Any = [stamp, result]
        else:
            body = [{"metric": labels, "value": [stamp, value]} for labels, value in result]
        return JSONResponse({"status": "success", "data": {"resultType": kind, "result": body}})

    app = Starlette(routes=[Route("/api/v1/query", query, methods=["GET", "POST"])])
    app.state.data = state
    return app
