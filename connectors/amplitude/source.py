"""Amplitude source: an event's totals or uniques over the cycle from the Dashboard REST API.

``GET {host}/api/2/events/segmentation?e={"event_type": ...}&start=YYYYMMDD&end=YYYYMMDD&m=...``
answers ``{"data": {"series": [[n, ...]], "seriesLabels": [0], "seriesCollapsed":
[[{"setId": "", "value": n}]], "xValues": ["YYYY-MM-DD", ...]}}``.

``seriesCollapsed`` is the number the chart shows for the whole range, and it is the only
correct one for ``uniques`` (a person active on two days is one person, not two); for
``totals`` the daily ``series`` are summed when the collapsed value is absent, and the two
must agree when both are present.

Amplitude limits each project to 5 concurrent requests across its REST endpoints and a cost
budget per hour (cost grows with days x conditions); exceeding either answers 429 with a message
saying which. The budget keeps at most ``max_concurrency`` requests in flight and, when
``queries_per_hour`` is set, paces to it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, SecretStr, field_validator

from okrsync.errors import CredentialsError, QueryError, VendorResponseError
from okrsync.sdk.connector import ConnectionConfig, QuerySpec
from okrsync.sdk.hosts import region_or_url
from okrsync.sdk.http import DEFAULT_ERROR_TABLE, ErrorAction, ErrorRule
from okrsync.sdk.http_connector import HttpSource
from okrsync.sdk.models import Query, Reading, as_decimal, digest

HOSTS = {"us": "https://amplitude.com", "eu": "https://analytics.eu.amplitude.com"}
SEGMENTATION = "/api/2/events/segmentation"
INTERVALS = {"day": 1, "week": 7, "month": 30}

_ERROR_TABLE = {
    **DEFAULT_ERROR_TABLE,
    400: ErrorRule(ErrorAction.FAIL, QueryError, "Amplitude rejected the query"),
    401: ErrorRule(ErrorAction.FAIL, CredentialsError, "Amplitude rejected the API key/secret"),
}


class AmplitudeConnection(ConnectionConfig):
    """An Amplitude project reached with its API key and secret key (HTTP Basic)."""

    type: Literal["amplitude"] = "amplitude"
    region: str = Field(
        default="us", description="'us', 'eu' (EU residency) or an http(s) URL (proxy, sandbox)."
    )
    api_key: SecretStr
    secret_key: SecretStr
    max_concurrency: int = Field(default=5, ge=1, le=5, description="Amplitude allows 5 at once.")
    queries_per_hour: float | None = Field(
        default=None, gt=0, description="Optional pace; Amplitude's own limit is cost-based."
    )
    max_wait: float = Field(default=300, ge=0)
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return region_or_url(value, HOSTS, "region")

    @property
    def base_url(self) -> str:
        return HOSTS.get(self.region, self.region)


class AmplitudeQuery(QuerySpec):
    """How often an event happened (``totals``) or how many users did it (``uniques``)."""

    event_type: str = Field(min_length=1, description="The event type, or _active / _all.")
    metric: Literal["totals", "uniques"] = "totals"
    interval: Literal["day", "week", "month"] = Field(
        default="day", description="Bucket size of the series (the cycle total is unchanged)."
    )

    def event_json(self) -> str:
        return json.dumps({"event_type": self.event_type}, separators=(",", ":"))

    def is_count(self) -> bool:
        return True  # event totals and uniques

    def query_text(self) -> str:
        return f"event segmentation {self.metric} of {self.event_type!r} over the cycle"


class AmplitudeSource(HttpSource[AmplitudeConnection, AmplitudeQuery]):
    query_model = AmplitudeQuery
    error_table = _ERROR_TABLE
    initial_backoff: ClassVar[float] = 1.0
    max_backoff: ClassVar[float] = 30.0
    rate_limit_backoff: ClassVar[float] = 10.0

    def burst_size(self) -> int:
        return self.config.max_concurrency  # a paced project may start all its slots at once

    def auth(self) -> httpx.Auth:
        config = self.config
        return httpx.BasicAuth(
            config.api_key.get_secret_value(), config.secret_key.get_secret_value()
        )

    @staticmethod
    def params(query: Query[AmplitudeQuery]) -> dict[str, Any]:
        spec, cycle = query.spec, query.cycle
        return {
            "e": spec.event_json(),
            "start": cycle.start.strftime("%Y%m%d"),
            "end": cycle.end.strftime("%Y%m%d"),
            "m": spec.metric,
            "i": INTERVALS[spec.interval],
        }

    async def fetch_one(self, query: Query[AmplitudeQuery]) -> Reading:
        before = self.client.calls
        response = await self.client.request(
            "GET", SEGMENTATION, params=self.params(query), subject=query.subject
        )
        document = self.client.parse_json(response, subject=query.subject)
        return Reading(
            key=query.key,
            value=self._value(document, query),
            query_text=query.spec.query_text(),
            fetched_at=datetime.now(UTC),
            raw_digest=digest(response.content),
            api_calls=self.client.calls - before,
        )

    def _value(self, document: Any, query: Query[AmplitudeQuery]) -> Decimal:
        def wrong(why: str) -> VendorResponseError:
            return VendorResponseError(why, connection=self.name, subject=query.subject)

        data = document.get("data") if isinstance(document, dict) else None
        if not isinstance(data, dict):
            raise wrong("the segmentation answer has no 'data' object")
        collapsed = _collapsed(data.get("seriesCollapsed"))
        summed = None
        series = data.get("series")
        if isinstance(series, list) and series:
            first = series[0]
            if not isinstance(first, list):
                raise wrong("data.series[0] should be a list of numbers")
            try:
                summed = sum((as_decimal(n) for n in first), Decimal(0))
            except (TypeError, ArithmeticError):
                raise wrong("data.series[0] holds something that is not a number") from None
        elif series == [] and collapsed is None:
            return Decimal(0)  # no data in the range
        if query.spec.metric == "uniques":
            if collapsed is None:
                raise wrong("uniques need data.seriesCollapsed; daily uniques cannot be summed")
            return collapsed
        if collapsed is not None:
            if summed is not None and summed != collapsed:
                raise wrong(f"the daily totals sum to {summed} but the range total is {collapsed}")
            return collapsed
        if summed is None:
            raise wrong("the segmentation answer has neither series nor seriesCollapsed")
        return summed


def _collapsed(value: Any) -> Decimal | None:
    """``seriesCollapsed[0][0].value``, or ``None`` when the answer has no such value."""
    try:
        cell = value[0][0]
        return as_decimal(cell["value"]) if isinstance(cell, dict) else as_decimal(cell)
    except (TypeError, IndexError, KeyError, ArithmeticError):
        return None
