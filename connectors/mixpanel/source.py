"""Mixpanel source: an event's count over the cycle from the Query API's segmentation report.

``GET {host}/api/query/segmentation?project_id=&event=&from_date=&to_date=&type=`` answers
``{"data": {"series": [dates], "values": {"<event>": {"<date>": n}}}, "legend_size": 1}``.

* ``type: general`` (every occurrence) asks for ``unit=day`` and sums the days exactly.
* ``type: unique`` must not be summed over days (a person active on two days would count
  twice), so it asks for one bucket the length of the cycle (``interval=<days>``, which the API
  accepts in lieu of ``unit`` when the type is not general) and reads that single value.

The Query API allows about 60 queries per hour and 5 at once per project. The call budget paces
requests to that allowance and, when the next slot is further away than ``max_wait``, raises
:class:`~okrsync.errors.QuotaExhaustedError` so the scheduler pauses the connection instead of
burning the hour on 429s.
"""

from __future__ import annotations

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

HOSTS = {
    "us": "https://mixpanel.com",
    "eu": "https://eu.mixpanel.com",
    "in": "https://in.mixpanel.com",
}
SEGMENTATION = "/api/query/segmentation"

_ERROR_TABLE = {
    **DEFAULT_ERROR_TABLE,
    400: ErrorRule(ErrorAction.FAIL, QueryError, "Mixpanel rejected the query"),
    401: ErrorRule(ErrorAction.FAIL, CredentialsError, "Mixpanel rejected the service account"),
    402: ErrorRule(ErrorAction.FAIL, CredentialsError, "the Mixpanel plan does not allow this"),
}


class MixpanelConnection(ConnectionConfig):
    """A Mixpanel project reached with a service account (HTTP Basic) and its project id."""

    type: Literal["mixpanel"] = "mixpanel"
    region: str = Field(
        default="us",
        description="Data residency: 'us', 'eu' or 'in'; or an http(s) URL (a proxy, the sandbox).",
    )
    project_id: int = Field(gt=0)
    workspace_id: int | None = Field(default=None, gt=0)
    service_account_username: str = Field(min_length=1)
    service_account_secret: SecretStr
    queries_per_hour: float = Field(default=60, gt=0, description="Query API allowance.")
    burst: int = Field(default=5, ge=1, le=60, description="Queries that may go back to back.")
    max_concurrency: int = Field(default=5, ge=1, le=5, description="Mixpanel allows 5 at once.")
    max_wait: float = Field(
        default=300, ge=0, description="Longer waits for the allowance pause the connection."
    )
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return region_or_url(value, HOSTS, "region")

    @property
    def base_url(self) -> str:
        return HOSTS.get(self.region, self.region)


class MixpanelQuery(QuerySpec):
    """How many times an event happened (or how many people did it) in the cycle."""

    event: str = Field(min_length=1, description="One event name, exactly as tracked.")
    type: Literal["general", "unique"] = Field(
        default="general", description="general: every occurrence; unique: distinct people."
    )
    where: str | None = Field(
        default=None, description='A segmentation expression, e.g. properties["plan"] == "pro".'
    )

    def is_count(self) -> bool:
        return True  # segmentation counts events (general) or people (unique)

    def query_text(self) -> str:
        text = f"segmentation {self.type} count of {self.event!r} over the cycle"
        return f"{text} where {self.where}" if self.where else text


class MixpanelSource(HttpSource[MixpanelConnection, MixpanelQuery]):
    query_model = MixpanelQuery
    error_table = _ERROR_TABLE
    initial_backoff: ClassVar[float] = 2.0
    max_backoff: ClassVar[float] = 60.0
    rate_limit_backoff: ClassVar[float] = 30.0

    def auth(self) -> httpx.Auth:
        secret = self.config.service_account_secret.get_secret_value()
        return httpx.BasicAuth(self.config.service_account_username, secret)

    def params(self, query: Query[MixpanelQuery]) -> dict[str, Any]:
        spec, cycle = query.spec, query.cycle
        params: dict[str, Any] = {
            "project_id": self.config.project_id,
            "event": spec.event,
            "from_date": cycle.start.isoformat(),
            "to_date": cycle.end.isoformat(),
            "type": spec.type,
        }
        if spec.type == "general":
            params["unit"] = "day"
        else:
            params["interval"] = (cycle.end - cycle.start).days + 1
        if self.config.workspace_id is not None:
            params["workspace_id"] = self.config.workspace_id
        if spec.where:
            params["where"] = spec.where
        return params

    async def fetch_one(self, query: Query[MixpanelQuery]) -> Reading:
        before = self.client.calls
        response = await self.client.request(
            "GET", SEGMENTATION, params=self.params(query), subject=query.subject
        )
        document = self.client.parse_json(response, subject=query.subject)
        value = self._value(document, query)
        return Reading(
            key=query.key,
            value=value,
            query_text=query.spec.query_text(),
            fetched_at=datetime.now(UTC),
            raw_digest=digest(response.content),
            api_calls=self.client.calls - before,
        )

    def _value(self, document: Any, query: Query[MixpanelQuery]) -> Decimal:
        def wrong(why: str) -> VendorResponseError:
            return VendorResponseError(why, connection=self.name, subject=query.subject)

        data = document.get("data") if isinstance(document, dict) else None
        values = data.get("values") if isinstance(data, dict) else None
        if not isinstance(values, dict):
            raise wrong("the segmentation answer has no data.values object")
        series = values.get(query.spec.event)
        if series is None:
            # Mixpanel leaves out an event with no occurrences in the range.
            return Decimal(0)
        if not isinstance(series, dict):
            raise wrong(f"data.values[{query.spec.event!r}] should map dates to counts")
        if query.spec.type == "unique" and len(series) > 1:
            raise wrong(
                f"asked for one bucket of unique people, got {len(series)}; "
                "summing them would count people twice"
            )
        total = Decimal(0)
        for day, count in series.items():
            try:
                total += as_decimal(count)
            except (TypeError, ArithmeticError):
                raise wrong(f"the count for {day} is not a number: {str(count)[:40]!r}") from None
        return total
