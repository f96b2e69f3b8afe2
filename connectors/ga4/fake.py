# ruff: noqa: E501 - Google's error messages are kept verbatim
"""A sandbox of Google's OAuth token endpoint and the GA4 Data API (v1beta).

* ``POST /token``: the JWT-bearer grant. The assertion's RS256 signature is verified with the
  public key of a registered service account; ``aud`` must be Google's token endpoint
  (``https://oauth2.googleapis.com/token``) or this endpoint, ``scope`` an Analytics scope and
  ``exp - iat`` at most an hour, else ``400 invalid_grant`` as Google says.
* The Data API takes the tokens issued there, or a service account's self-signed JWT as the
  bearer token (``aud`` the API endpoint, as Google's own client sends it), verified with the
  same key (see :mod:`connectors.ga4.fake_auth`). Enums may be names or numbers (proto3 JSON).
* ``POST /v1beta/properties/{id}:runReport`` and ``:batchRunReports`` over deterministic daily
  data per property (dimensions ``date``, ``country``, ``sessionDefaultChannelGroup``; metrics
  ``sessions``, ``activeUsers``, ``conversions``, ``totalRevenue``), with ``dimensionFilter``
  (string, in-list, and/or/not), ``metricAggregations: TOTAL``, ``limit``/``offset`` paging,
  ``rowCount``, ``metadata`` and a ``propertyQuota`` that is really spent.
* Google's error envelope ``{"error": {"code", "message", "status"}}`` for 400
  ``INVALID_ARGUMENT``, 401 ``UNAUTHENTICATED``, 403 ``PERMISSION_DENIED`` and 429
  ``RESOURCE_EXHAUSTED``.

Simplification: ``activeUsers`` is summed across rows for the ``TOTAL`` row, where GA4 would
de-duplicate users; the tests compute expectations the same way.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import product
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.ga4.fake_auth import check_grant_assertion, self_signed_caller
from connectors.ga4.sandbox import SANDBOX_EMAIL, SANDBOX_PROPERTY, sandbox_public_key

DIMENSIONS = ("date", "country", "sessionDefaultChannelGroup")
METRICS = {
    "sessions": "TYPE_INTEGER",
    "activeUsers": "TYPE_INTEGER",
    "conversions": "TYPE_INTEGER",
    "totalRevenue": "TYPE_CURRENCY",
}
COUNTRIES = ("France", "Germany", "United States")
CHANNELS = ("Organic Search", "Direct", "Paid Search")
TOKEN_COST = 10  # quota tokens one report costs here
# Proto3 JSON lets an enum be its name or its number; Google's REST clients send numbers
# (``$alt=json;enum-encoding=int``). The numbers are those of the v1beta protos.
MATCH_TYPES = ("MATCH_TYPE_UNSPECIFIED", "EXACT", "BEGINS_WITH", "ENDS_WITH", "CONTAINS",
               "FULL_REGEXP", "PARTIAL_REGEXP")  # fmt: skip
METRIC_AGGREGATIONS = {0: "METRIC_AGGREGATION_UNSPECIFIED", 1: "TOTAL", 4: "COUNT",
                       5: "MINIMUM", 6: "MAXIMUM"}  # fmt: skip
_DAYS_AGO = re.compile(r"^(\d+)daysAgo$")
_INFO = "https://developers.google.com/analytics/devguides/reporting/data/v1"


def daily(property_id: str, day: date, country: str, channel: str) -> dict[str, Decimal]:
    """The deterministic numbers of one property, day, country and channel."""
    seed = hashlib.sha256(f"{property_id}|{day}|{country}|{channel}".encode()).digest()
    sessions = 20 + seed[0] % 80
    users = sessions - seed[1] % 15
    conversions = seed[2] % 6
    revenue = Decimal(conversions * (1000 + seed[3] * 37)) / 100
    return {
        "sessions": Decimal(sessions),
        "activeUsers": Decimal(users),
        "conversions": Decimal(conversions),
        "totalRevenue": revenue,
    }


@dataclass
class GA4Data:
    """The fake's state: keys, live tokens, property grants, quotas and counters."""

    public_keys: dict[str, Any] = field(default_factory=dict)  # client_email → public key
    grants: dict[str, set[str]] = field(default_factory=dict)  # client_email → property ids
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token → (email, expiry)
    quota_hour: dict[str, int] = field(default_factory=dict)  # property → remaining tokens
    quota_day: dict[str, int] = field(default_factory=dict)
    token_lifetime: int = 3599
    counts: Counter[str] = field(default_factory=Counter)
    reports: list[dict[str, Any]] = field(default_factory=list)  # every report request

    def register(self, client_email: str, public_key: Any, properties: set[str]) -> None:
        self.public_keys[client_email] = public_key
        self.grants[client_email] = set(properties)

    def revoke_tokens(self) -> None:
        """Forget every issued token (as if they expired early): the next call gets a 401."""
        self.tokens.clear()


def _error(code: int, status: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "status": status}}, status_code=code
    )


def _oauth_error(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


class _Invalid(Exception):
    pass


def enum_name(value: Any, names: dict[int, str] | tuple[str, ...]) -> Any:
    """An enum given by number as its name; a name (or anything else) as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        table = dict(enumerate(names)) if isinstance(names, tuple) else names
        return table.get(value, value)
    return value


def _resolve(text: Any, today: date) -> date:
    if not isinstance(text, str):
        raise _Invalid("dateRanges need startDate and endDate")
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    if found := _DAYS_AGO.match(text):
        return today - timedelta(days=int(found.group(1)))
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _Invalid(
            f"Invalid date: {text}. Date must be in the format YYYY-MM-DD, NdaysAgo, yesterday, or today."
        ) from None


def _matches(expression: dict[str, Any], row: dict[str, str]) -> bool:
    if "andGroup" in expression:
        return all(_matches(e, row) for e in expression["andGroup"].get("expressions", []))
    if "orGroup" in expression:
        return any(_matches(e, row) for e in expression["orGroup"].get("expressions", []))
    if "notExpression" in expression:
        return not _matches(expression["notExpression"], row)
    spec = expression.get("filter")
    if not isinstance(spec, dict) or spec.get("fieldName") not in DIMENSIONS:
        raise _Invalid(
            f"Field {spec.get('fieldName') if isinstance(spec, dict) else None} is not a valid dimension in the filter."
        )
    have = row[spec["fieldName"]]
    if "inListFilter" in spec:
        f = spec["inListFilter"]
        values = f.get("values", [])
        return (
            have in values
            if f.get("caseSensitive")
            else have.lower() in [v.lower() for v in values]
        )
    if "stringFilter" in spec:
        f = spec["stringFilter"]
        value, kind = str(f.get("value", "")), enum_name(f.get("matchType", "EXACT"), MATCH_TYPES)
        a, b = (have, value) if f.get("caseSensitive") else (have.lower(), value.lower())
        flags = 0 if f.get("caseSensitive") else re.IGNORECASE
        if kind in ("EXACT", "MATCH_TYPE_UNSPECIFIED"):
            return a == b
        if kind == "BEGINS_WITH":
            return a.startswith(b)
        if kind == "ENDS_WITH":
            return a.endswith(b)
        if kind == "CONTAINS":
            return b in a
        if kind == "FULL_REGEXP":
            return re.fullmatch(value, have, flags) is not None
        if kind == "PARTIAL_REGEXP":
            return re.search(value, have, flags) is not None
    raise _Invalid("Only stringFilter and inListFilter are supported by this sandbox.")


def _fmt(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01"))) if value != value.to_integral() else str(int(value))


def run_report(property_id: str, body: dict[str, Any], today: date) -> dict[str, Any]:
    metrics = [m.get("name") for m in body.get("metrics", [])]
    if not metrics:
        raise _Invalid("Must request at least one metric.")
    if len(metrics) > 10:
        raise _Invalid(
            f"Requests are limited to 10 metrics within a request. This request has {len(metrics)} metrics."
        )
    for name in metrics:
        if name not in METRICS:
            raise _Invalid(
                f"Field {name} is not a valid metric. For a list of valid dimensions and metrics, see {_INFO}/api-schema"
            )
    dims = [d.get("name") for d in body.get("dimensions", [])]
    for name in dims:
        if name not in DIMENSIONS:
            raise _Invalid(
                f"Field {name} is not a valid dimension. For a list of valid dimensions and metrics, see {_INFO}/api-schema"
            )
    ranges = body.get("dateRanges") or []
    if len(ranges) != 1:
        raise _Invalid("This sandbox answers exactly one dateRange.")
    start, end = (
        _resolve(ranges[0].get("startDate"), today),
        _resolve(ranges[0].get("endDate"), today),
    )
    if start > end:
        raise _Invalid(f"Invalid date range: startDate {start} is after endDate {end}.")
    expression = body.get("dimensionFilter")
    grouped: dict[tuple[str, ...], dict[str, Decimal]] = {}
    day = start
    while day <= min(end, today):
        for country, channel in product(COUNTRIES, CHANNELS):
            row = {
                "date": day.strftime("%Y%m%d"),
                "country": country,
                "sessionDefaultChannelGroup": channel,
            }
            if expression is not None and not _matches(expression, row):
                continue
            key = tuple(row[d] for d in dims)
            sums = grouped.setdefault(key, dict.fromkeys(metrics, Decimal(0)))
            for name, value in daily(property_id, day, country, channel).items():
                if name in sums:
                    sums[name] += value
        day += timedelta(days=1)
    keys = sorted(grouped)
    offset, limit = int(body.get("offset", "0")), int(body.get("limit", "10000"))
    answer: dict[str, Any] = {
        "dimensionHeaders": [{"name": d} for d in dims],
        "metricHeaders": [{"name": m, "type": METRICS[m]} for m in metrics],
    }
    if not dims:
        del answer["dimensionHeaders"]
    rows = [
        {
            **({"dimensionValues": [{"value": v} for v in key]} if dims else {}),
            "metricValues": [{"value": _fmt(grouped[key][m])} for m in metrics],
        }
        for key in keys[offset : offset + limit]
    ]
    if rows:
        answer["rows"] = rows
    aggregations = [enum_name(a, METRIC_AGGREGATIONS) for a in body.get("metricAggregations", [])]
    if "TOTAL" in aggregations and keys:
        totals = [sum((grouped[k][m] for k in keys), Decimal(0)) for m in metrics]
        answer["totals"] = [
            {
                "dimensionValues": [{"value": "RESERVED_TOTAL"} for _ in dims],
                "metricValues": [{"value": _fmt(t)} for t in totals],
            }
        ]
    answer["rowCount"] = len(keys)
    answer["metadata"] = {"currencyCode": "USD", "timeZone": "Europe/Paris"}
    answer["kind"] = "analyticsData#runReport"
    return answer


def ga4_app(*, data: GA4Data | None = None, today: date | None = None) -> Starlette:
    """The fake; ``app.state.data`` is its :class:`GA4Data` (register keys there).

    Without ``data`` it trusts the sandbox service account (see :mod:`connectors.ga4.sandbox`).
    """
    if data is None:
        data = GA4Data()
        data.register(SANDBOX_EMAIL, sandbox_public_key(), {SANDBOX_PROPERTY})
    state = data

    def current_day() -> date:
        return today or datetime.now(UTC).date()

    async def token(request: Request) -> JSONResponse:
        state.counts["token"] += 1
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return _oauth_error(
                "unsupported_grant_type", "Invalid grant_type: " + str(form.get("grant_type"))
            )
        token_url = str(request.url.replace(query=""))
        email, refusal = check_grant_assertion(
            str(form.get("assertion", "")), state.public_keys, token_url
        )
        if refusal is not None:
            return _oauth_error(refusal.error, refusal.description)
        assert email is not None
        issued = "ya29.sbx-" + secrets.token_urlsafe(24)
        state.tokens[issued] = (email, time.time() + state.token_lifetime)
        return JSONResponse(
            {"access_token": issued, "expires_in": state.token_lifetime, "token_type": "Bearer"}
        )

    def caller(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None
        bearer = header.removeprefix("Bearer ")
        held = state.tokens.get(bearer)
        if held is not None:
            return held[0] if held[1] >= time.time() else None
        base = str(request.base_url)  # ends with "/", as Google's audiences do
        email = self_signed_caller(bearer, state.public_keys, (base, base.rstrip("/")))
        if email is not None:
            state.counts["self_signed"] += 1
        return email

    def spend(property_id: str, body: dict[str, Any]) -> tuple[JSONResponse | None, dict[str, Any]]:
        hour = state.quota_hour.setdefault(property_id, 40_000)
        day = state.quota_day.setdefault(property_id, 200_000)
        if hour <= 0:
            return _error(
                429,
                "RESOURCE_EXHAUSTED",
                f"Exhausted property tokens per hour for a project per property. These quota tokens will return in under an hour. To learn more, see {_INFO}/quotas",
            ), {}
        if day <= 0:
            return _error(
                429,
                "RESOURCE_EXHAUSTED",
                f"Exhausted property tokens per day. These quota tokens will return at midnight Pacific time. To learn more, see {_INFO}/quotas",
            ), {}
        state.quota_hour[property_id] = hour = max(0, hour - TOKEN_COST)
        state.quota_day[property_id] = day = max(0, day - TOKEN_COST)
        quota = {
            "tokensPerDay": {"consumed": TOKEN_COST, "remaining": day},
            "tokensPerHour": {"consumed": TOKEN_COST, "remaining": hour},
            "concurrentRequests": {"consumed": 0, "remaining": 10},
            "serverErrorsPerProjectPerHour": {"consumed": 0, "remaining": 10},
            "potentiallyThresholdedRequestsPerHour": {"consumed": 0, "remaining": 120},
            "tokensPerProjectPerHour": {"consumed": TOKEN_COST, "remaining": min(hour, 14_000)},
        }
        return None, (quota if body.get("returnPropertyQuota") else {})

    async def report(request: Request) -> JSONResponse:
        target = request.path_params["target"]
        property_id, _, method = target.partition(":")
        state.counts[method] += 1
        email = caller(request)
        if email is None:
            return _error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            )
        if method not in ("runReport", "batchRunReports"):
            return _error(404, "NOT_FOUND", f"Method not found: {method}")
        if property_id not in state.grants.get(email, set()):
            return _error(
                403,
                "PERMISSION_DENIED",
                f"User does not have sufficient permissions for this property. To learn more about Property ID, see {_INFO}/property-id.",
            )
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        requests = body.get("requests", []) if method == "batchRunReports" else [body]
        if method == "batchRunReports" and not 1 <= len(requests) <= 5:
            return _error(
                400,
                "INVALID_ARGUMENT",
                f"Batch requests are limited to 5 reports; this request has {len(requests)}.",
            )
        answers = []
        try:
            for one in requests:
                if one.get("property") not in (None, "", f"properties/{property_id}"):
                    raise _Invalid(
                        "Within a batch request, property should be unspecified or consistent with the batch-level property."
                    )
                state.reports.append(one)
                answers.append(run_report(property_id, one, current_day()))
        except _Invalid as exc:
            return _error(400, "INVALID_ARGUMENT", str(exc))
        refusal, quota = spend(property_id, body if method == "runReport" else requests[0])
        if refusal is not None:
            return refusal
        for answer in answers:
            if quota:
                answer["propertyQuota"] = quota
        if method == "runReport":
            return JSONResponse(answers[0])
        return JSONResponse({"reports": answers, "kind": "analyticsData#batchRunReports"})

    app = Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/v1beta/properties/{target}", report, methods=["POST"]),
        ]
    )
    app.state.data = state
    return app
