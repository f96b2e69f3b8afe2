"""PostHog source: one number from a HogQL query run through the query API.

``POST {host}/api/projects/{project_id}/query/`` with ``{"query": {"kind": "HogQLQuery",
"query": ..., "values": {...}}}`` answers ``{"results": [[...]], "columns": [...], "types":
[...], "hogql": ..., "hasMore": ...}``; the metric's value is ``results[0][0]``.

Cycle dates are never pasted into the query text: HogQL's own placeholder mechanism
(``{cycle_start}`` in the text, the value in ``values``) binds them as constants, so a metric's
SQL stays exactly what the user wrote and nothing from outside can change its structure.
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
from okrsync.sdk.models import CycleWindow, Query, Reading, as_decimal, digest

HOSTS = {"us": "https://us.posthog.com", "eu": "https://eu.posthog.com"}

_ERROR_TABLE = {
    **DEFAULT_ERROR_TABLE,
    400: ErrorRule(ErrorAction.FAIL, QueryError, "PostHog rejected the HogQL query"),
    401: ErrorRule(
        ErrorAction.FAIL,
        CredentialsError,
        "PostHog rejected the personal API key",
    ),
}


class PostHogConnection(ConnectionConfig):
    """A PostHog project reached with a personal API key (scope ``query:read``)."""

    type: Literal["posthog"] = "posthog"
    host: str = Field(
        default="us",
        description="'us', 'eu', or the https URL of a self-hosted instance.",
    )
    project_id: int = Field(gt=0, description="The project's numeric id (Project settings).")
    personal_api_key: SecretStr = Field(description="A personal API key (phx_...).")
    queries_per_hour: float = Field(
        default=120, gt=0, description="The query endpoint's allowance; calls are paced to it."
    )
    burst: int = Field(default=5, ge=1, le=240, description="Queries that may go back to back.")
    max_wait: float = Field(
        default=300, ge=0, description="Longer waits for the allowance pause the connection."
    )
    max_concurrency: int = Field(default=3, ge=1, le=20)
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return region_or_url(value, HOSTS, "host")

    @property
    def base_url(self) -> str:
        return HOSTS.get(self.host, self.host)


class PostHogQuery(QuerySpec):
    """A HogQL query whose first column of the first row is the metric's value.

    ``{cycle_start}``, ``{cycle_end}`` (ISO dates, inclusive) and ``{cycle_id}`` are HogQL
    placeholders bound through the query's ``values``; ``values`` adds constants of your own.
    """

    hogql: str = Field(min_length=1, description="A HogQL SELECT returning one number.")
    values: dict[str, str | int | float | bool] = Field(default_factory=dict)
    empty_is_zero: bool = Field(
        default=False, description="Read an empty result (no rows) as 0 instead of an error."
    )

    @field_validator("values")
    @classmethod
    def _no_cycle_override(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        reserved = sorted(set(value) & {"cycle_start", "cycle_end", "cycle_id"})
        if reserved:
            raise ValueError(f"{', '.join(reserved)} are set from the cycle; rename yours")
        return value

    def query_text(self) -> str:
        return self.hogql


def cycle_values(cycle: CycleWindow) -> dict[str, str]:
    return {
        "cycle_start": cycle.start.isoformat(),
        "cycle_end": cycle.end.isoformat(),
        "cycle_id": cycle.id,
    }


def describe_posthog_error(response: httpx.Response) -> str | None:
    """PostHog's DRF errors: ``{"type", "code", "detail", "attr"}``; say code and detail."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("detail"), str):
        return None
    code = body.get("code")
    attr = body.get("attr")
    text = f"{code}: {body['detail']}" if isinstance(code, str) and code else body["detail"]
    return f"{text} (field {attr})" if isinstance(attr, str) and attr else text


class PostHogSource(HttpSource[PostHogConnection, PostHogQuery]):
    query_model = PostHogQuery
    error_table = _ERROR_TABLE
    describe_error = describe_posthog_error
    initial_backoff: ClassVar[float] = 1.0
    max_backoff: ClassVar[float] = 30.0
    rate_limit_backoff: ClassVar[float] = 5.0

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.personal_api_key.get_secret_value()}"}

    async def fetch_one(self, query: Query[PostHogQuery]) -> Reading:
        spec = query.spec
        body = {
            "query": {
                "kind": "HogQLQuery",
                "query": spec.hogql,
                "values": {**spec.values, **cycle_values(query.cycle)},
            },
            "refresh": "blocking",
        }
        before = self.client.calls
        response = await self.client.request(
            "POST",
            f"/api/projects/{self.config.project_id}/query/",
            json=body,
            subject=query.subject,
        )
        document = self.client.parse_json(response, subject=query.subject)
        value = self._value(document, spec, query.subject)
        return Reading(
            key=query.key,
            value=value,
            query_text=spec.query_text(),
            fetched_at=datetime.now(UTC),
            raw_digest=digest(response.content),
            api_calls=self.client.calls - before,
        )

    def _value(self, document: Any, spec: PostHogQuery, subject: str) -> Decimal:
        def wrong(why: str) -> VendorResponseError:
            return VendorResponseError(why, connection=self.name, subject=subject)

        if not isinstance(document, dict) or not isinstance(document.get("results"), list):
            raise wrong("the query answer has no 'results' list")
        if isinstance(document.get("error"), str) and document["error"]:
            raise QueryError(
                f"PostHog reported a query error: {document['error']}",
                connection=self.name,
                subject=subject,
            )
        rows = document["results"]
        if not rows:
            if spec.empty_is_zero:
                return Decimal(0)
            raise QueryError(
                "the query returned no rows; make it return one number "
                "(or set empty_is_zero: true)",
                connection=self.name,
                subject=subject,
            )
        first = rows[0]
        if not isinstance(first, list) or not first:
            raise wrong(f"results[0] should be a row of values, got {str(first)[:80]!r}")
        cell = first[0]
        if cell is None:
            if spec.empty_is_zero:
                return Decimal(0)
            raise QueryError(
                "the query's first column is NULL", connection=self.name, subject=subject
            )
        try:
            return as_decimal(cell)
        except (TypeError, ArithmeticError):
            columns = document.get("columns")
            name = columns[0] if isinstance(columns, list) and columns else "first column"
            raise QueryError(
                f"the query's {name!s} is not a number: {str(cell)[:80]!r}",
                connection=self.name,
                subject=subject,
            ) from None
