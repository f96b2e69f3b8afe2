"""The two HTTP clients of one GitHub connection, and GitHub's Link-header pagination.

GitHub meters search calls (30 a minute) apart from everything else (5,000 an hour), and says
which window a response counted against in ``x-ratelimit-resource``. One budget for both would
let a spent search window hold the comment calls for up to a minute, so each gets its own
:class:`~okrsync.sdk.http.HttpClient` with its own :class:`~okrsync.sdk.budget.CallBudget`:
``search`` paced at the search limit, ``core`` at whatever the connection sets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from connectors.github.models import GitHubConnection
from connectors.github.ratelimit import GITHUB_ERROR_TABLE, GitHubRateLimits, reset_observer
from okrsync.errors import VendorResponseError
from okrsync.sdk.budget import BudgetPolicy, CallBudget
from okrsync.sdk.connector import ConnectorBase
from okrsync.sdk.http import HttpClient, RetryPolicy
from okrsync.sdk.paging import NextUrlPaginator

API_VERSION = "2022-11-28"
PER_PAGE = 100


@dataclass(frozen=True)
class Timing:
    """Backoffs and waits; a test (or a subclass) makes them short."""

    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    rate_limit_backoff: float = 1.0
    secondary_wait: float = 60.0  # GitHub: "wait at least one minute" without Retry-After
    reset_margin: float = 1.0  # past x-ratelimit-reset, for clock skew and whole seconds
    max_wait: float = 300.0  # a longer rate-limit hold pauses the connection instead


def next_link(response: httpx.Response) -> str | None:
    """The ``rel="next"`` URL of GitHub's ``Link`` header, if there is one."""
    for link in response.headers.get_list("link", split_commas=False):
        for part in _split_links(link):
            url, _, params = part.partition(";")
            rels = [
                p.split("=", 1)[1].strip().strip('"')
                for p in params.split(";")
                if p.strip().startswith("rel=")
            ]
            if any("next" in rel.split() for rel in rels):
                return url.strip().lstrip("<").rstrip(">")
    return None


def _split_links(header: str) -> list[str]:
    """Split a Link header on the commas between links (URLs may contain commas themselves)."""
    parts: list[str] = []
    current: list[str] = []
    inside = False
    for char in header:
        if char == "<":
            inside = True
        elif char == ">":
            inside = False
        if char == "," and not inside:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


class GitHubApi:
    """``core`` and ``search`` clients of one connection, plus pagination."""

    def __init__(self, name: str, config: GitHubConnection, timing: Timing) -> None:
        self.name = name
        self.base_url = config.base_url
        token = config.token.get_secret_value()
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {token}",
        }
        retry = RetryPolicy(
            max_attempts=config.max_retries + 1,
            initial_backoff=timing.initial_backoff,
            max_backoff=timing.max_backoff,
            rate_limit_backoff=timing.rate_limit_backoff,
        )
        core_budget = CallBudget(
            BudgetPolicy(
                max_concurrency=config.max_concurrency,
                requests_per_second=config.core_requests_per_second,
                max_wait=timing.max_wait,
            )
        )
        search_budget = CallBudget(
            BudgetPolicy(
                max_concurrency=min(config.max_concurrency, 2),
                requests_per_second=config.search_requests_per_minute / 60.0,
                burst=config.search_burst,
                max_wait=timing.max_wait,
            )
        )
        for budget in (core_budget, search_budget):
            budget.extra_observers.append(reset_observer(timing.reset_margin))
        self.core = self._client(name, config, headers, core_budget, retry, timing)
        self.search = self._client(name, config, headers, search_budget, retry, timing)
        # Creating a comment is not idempotent: a POST whose answer was lost may have created
        # it. This client (sharing the core budget) never retries by itself; the sink decides.
        once = RetryPolicy(max_attempts=1, max_retry_after=retry.max_retry_after)
        self.create = self._client(name, config, headers, core_budget, once, timing)
        self.retry = retry

    @staticmethod
    def _client(
        name: str,
        config: GitHubConnection,
        headers: dict[str, str],
        budget: CallBudget,
        retry: RetryPolicy,
        timing: Timing,
    ) -> HttpClient:
        limits = GitHubRateLimits(budget, secondary_wait=timing.secondary_wait)
        return HttpClient(
            connection=name,
            base_url=config.base_url,
            headers=headers,
            timeout=config.timeout,
            budget=budget,
            retry=retry,
            error_table=GITHUB_ERROR_TABLE,
            classify=limits.classify,
            secrets=config.secret_values(),
        )

    @property
    def calls(self) -> int:
        return self.core.calls + self.search.calls + self.create.calls

    def url(self, path: str) -> str:
        return self.base_url + path

    async def aclose(self) -> None:
        await self.core.aclose()
        await self.search.aclose()
        await self.create.aclose()

    async def pages(
        self, path: str, *, params: dict[str, Any], subject: str, max_pages: int = 50
    ) -> AsyncIterator[list[Any]]:
        """Each page of a GitHub list endpoint, following ``Link: rel="next"``.

        Stops with an error on a loop or past ``max_pages`` rather than on a partial answer,
        and refuses a next link to another host: the token travels with every request.
        """
        api = httpx.URL(self.base_url)

        def on_api(url: str) -> bool:
            target = httpx.URL(url)
            return (target.scheme, target.netloc) == (api.scheme, api.netloc)

        links = NextUrlPaginator(
            _next_url, allowed=on_api, what=path, max_pages=max_pages, subject=subject
        )
        while not links.finished:
            query = {**params, "per_page": PER_PAGE} if links.token is None else None
            url = links.token or self.url(path)
            response = await self.core.request("GET", url, params=query, subject=subject)
            body = self.core.parse_json(response, subject=subject)
            if not isinstance(body, list):
                raise VendorResponseError(
                    f"expected a JSON list from {path}, got {type(body).__name__}",
                    connection=self.name,
                    subject=subject,
                )
            yield body
            links.advance(body, response)


def _next_url(body: object, response: httpx.Response | None) -> str | None:
    """The absolute URL of the ``rel="next"`` page, or ``None`` on the last page."""
    if response is None:
        return None
    link = next_link(response)
    return str(response.url.join(link)) if link is not None else None


class GitHubBase(ConnectorBase[GitHubConnection]):
    """What the GitHub source and sink share: one :class:`GitHubApi` per connection."""

    timing: ClassVar[Timing] = Timing()

    def __init__(self, name: str, config: GitHubConnection) -> None:
        super().__init__(name, config)
        self.api = GitHubApi(name, config, self.timing)
        # GitHub counts per token: the pace and the holds its headers set are one for every
        # replica of the daemon (core and search are separate limits, so separate buckets).
        self.api.core.budget.share(self.budgets.bucket("core"))
        self.api.search.budget.share(self.budgets.bucket("search"))

    @property
    def api_calls(self) -> int:
        return self.api.calls

    async def aclose(self) -> None:
        await self.api.aclose()
