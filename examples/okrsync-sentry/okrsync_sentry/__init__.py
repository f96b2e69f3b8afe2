"""``sentry``: how many Sentry issues (or their events) match a search within the cycle."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from okrsync.errors import CredentialsError, QueryError
from okrsync.sdk.connector import ConnectionConfig, Connector, ImportedFactory, QuerySpec
from okrsync.sdk.http import DEFAULT_ERROR_TABLE, ErrorAction, ErrorRule
from okrsync.sdk.http_connector import HttpSource
from okrsync.sdk.models import Query, Reading, digest
from okrsync.sdk.paging import NextUrlPaginator, read_pages


class SentryConnection(ConnectionConfig):
    type: Literal["sentry"] = "sentry"
    base_url: str = "https://sentry.io"
    organization: str
    auth_token: SecretStr
    max_concurrency: int = 3


class SentryQuery(QuerySpec):
    query: str = "is:unresolved"
    project: int | None = None
    measure: Literal["issues", "events"] = "issues"


def next_page(body: Any, response: httpx.Response | None) -> str | None:
    """Sentry links the next page in ``Link`` and says with ``results`` whether it has any."""
    link = response.links.get("next", {}) if response is not None else {}
    return link.get("url") if link.get("results") == "true" else None


class SentrySource(HttpSource[SentryConnection, SentryQuery]):
    query_model = SentryQuery
    rate_limit_backoff = 1.0  # Sentry counts requests in fixed one-second windows
    error_table = {
        **DEFAULT_ERROR_TABLE,
        400: ErrorRule(ErrorAction.FAIL, QueryError, "Sentry rejected the search"),
        401: ErrorRule(ErrorAction.FAIL, CredentialsError, "Sentry rejected the auth token"),
    }

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.auth_token.get_secret_value()}"}

    async def fetch_one(self, query: Query[SentryQuery]) -> Reading:
        spec, cycle, subject = query.spec, query.cycle, query.subject
        params = {"query": spec.query, "limit": 100, "project": spec.project or None}
        params |= {"start": f"{cycle.start}T00:00:00", "end": f"{cycle.end}T23:59:59"}
        first = f"/api/0/organizations/{self.config.organization}/issues/"

        async def page(url: str | None) -> tuple[Any, httpx.Response]:
            asked = {k: v for k, v in params.items() if v is not None} if url is None else None
            response = await self.client.request("GET", url or first, params=asked, subject=subject)
            return self.client.parse_json(response, subject=subject), response

        paginator = NextUrlPaginator(
            next_page, allowed=lambda url: url.startswith(self.base_url()), subject=subject
        )
        pages = await read_pages(paginator, page)
        issues = [issue for body in pages for issue in body]
        value = sum((Decimal(i["count"]) for i in issues), Decimal(0))
        return Reading(
            key=query.key,
            value=Decimal(len(issues)) if spec.measure == "issues" else value,
            query_text=spec.query,
            fetched_at=datetime.now(UTC),
            raw_digest=digest(repr([i["id"] for i in issues])),
            api_calls=len(pages),
        )


connector = Connector(
    type="sentry",
    summary="Sentry: issues (or their events) matching a search, seen in the cycle",
    connection_model=SentryConnection,
    implementation=SentrySource,
    fake=ImportedFactory("okrsync_sentry.fake:sentry_app"),
    sandbox_credentials={"organization": "acme", "auth_token": "sntrys_sandbox_token"},
)
