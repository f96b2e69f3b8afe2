"""The GitHub source: issue/PR counts from the search API, and milestone completion.

* ``search``: ``GET /search/issues?q=…&per_page=1`` and its ``total_count`` — one call however
  many issues match (``total_count`` is exact even past the 1,000 results search lists). The
  search client has its own call budget (see :mod:`connectors.github.client`).
* ``milestone``: ``GET /repos/{owner}/{repo}/milestones/{number}`` and its ``open_issues`` /
  ``closed_issues`` (GitHub counts issues and pull requests alike there). A milestone named by
  title is looked up once in ``GET /repos/{owner}/{repo}/milestones?state=all`` (all pages), then
  read by number; a 404 on a remembered number looks the title up again.

``incomplete_results: true`` means GitHub's search timed out and ``total_count`` may be short.
A short count is a wrong number that looks right, so by default the metric fails with a
retriable error (the next tick asks again); ``incomplete_results: warn`` takes the number and
logs ``github_search_incomplete``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog

from connectors.github.client import GitHubBase
from connectors.github.models import GitHubConnection, GitHubQuery, fill_placeholders
from okrsync.errors import (
    Blame,
    ConnectorError,
    QueryError,
    RetriableError,
    TargetNotFoundError,
    VendorResponseError,
)
from okrsync.sdk.connector import Source
from okrsync.sdk.models import Query, Reading, digest

log = structlog.get_logger()


def _count(body: Any, field: str, what: str) -> int:
    value = body.get(field) if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise VendorResponseError(f"{what} has no usable {field!r} (got {value!r})")
    return value


def milestone_value(open_issues: int, closed_issues: int, measure: str) -> Decimal:
    """The number a milestone metric reports; ``percent`` and ``ratio`` are exact decimals."""
    total = open_issues + closed_issues
    if measure == "open":
        return Decimal(open_issues)
    if measure == "closed":
        return Decimal(closed_issues)
    if measure == "total":
        return Decimal(total)
    if total == 0:
        raise VendorResponseError(
            "the milestone has no issues yet, so its completion is undefined", blame=Blame.CONFIG
        )
    ratio = Decimal(closed_issues) / Decimal(total)
    return ratio * 100 if measure == "percent" else ratio


class GitHubSource(GitHubBase, Source[GitHubConnection, GitHubQuery]):
    query_model = GitHubQuery

    def __init__(self, name: str, config: GitHubConnection) -> None:
        super().__init__(name, config)
        self.max_concurrency = config.max_concurrency
        self._milestone_numbers: dict[tuple[str, str], int] = {}

    async def fetch_one(self, query: Query[GitHubQuery]) -> Reading:
        spec = query.spec
        subject = query.subject
        calls_before = self.api.calls
        try:
            if spec.search is not None:
                value, raw = await self._search(spec, query)
            else:
                value, raw = await self._milestone(spec, query)
        except ConnectorError as exc:
            raise exc.for_subject(self.name, subject) from None
        return Reading(
            key=query.key,
            value=value,
            query_text=spec.query_text(),
            fetched_at=datetime.now(UTC),
            raw_digest=digest(raw),
            api_calls=self.api.calls - calls_before,
        )

    # --- search ----------------------------------------------------------------------------------

    async def _search(self, spec: GitHubQuery, query: Query[GitHubQuery]) -> tuple[Decimal, bytes]:
        q = spec.search_text(query.cycle)
        response = await self.api.search.request(
            "GET",
            self.api.url("/search/issues"),
            params={"q": q, "per_page": 1},
            subject=query.subject,
        )
        body = self.api.search.parse_json(response, subject=query.subject)
        total = _count(body, "total_count", "the search answer")
        if body.get("incomplete_results") is True:
            if spec.incomplete_results == "error":
                raise RetriableError(
                    f"GitHub's search timed out and says its count ({total}) may be incomplete "
                    f"for q={q!r}; asking again next time (set incomplete_results: warn to "
                    "accept such counts)"
                )
            log.warning("github_search_incomplete", connection=self.name, metric=query.metrics, q=q)
        return Decimal(total), response.content

    # --- milestones ------------------------------------------------------------------------------

    async def _milestone(
        self, spec: GitHubQuery, query: Query[GitHubQuery]
    ) -> tuple[Decimal, bytes]:
        assert spec.repo is not None and spec.milestone is not None
        repo = spec.repo
        if isinstance(spec.milestone, int):
            body, raw = await self._milestone_by_number(repo, spec.milestone, query.subject)
        else:
            title = fill_placeholders(spec.milestone, query.cycle)
            body, raw = await self._milestone_by_title(repo, title, query.subject)
        open_issues = _count(body, "open_issues", "the milestone")
        closed_issues = _count(body, "closed_issues", "the milestone")
        return milestone_value(open_issues, closed_issues, spec.measure), raw

    async def _milestone_by_number(
        self, repo: str, number: int, subject: str
    ) -> tuple[dict[str, Any], bytes]:
        response = await self.api.core.request(
            "GET", self.api.url(f"/repos/{repo}/milestones/{number}"), subject=subject
        )
        body = self.api.core.parse_json(response, subject=subject)
        if not isinstance(body, dict):
            raise VendorResponseError("the milestone answer is not a JSON object")
        return body, response.content

    async def _milestone_by_title(
        self, repo: str, title: str, subject: str
    ) -> tuple[dict[str, Any], bytes]:
        known = self._milestone_numbers.get((repo, title))
        if known is not None:
            try:
                return await self._milestone_by_number(repo, known, subject)
            except TargetNotFoundError:
                del self._milestone_numbers[(repo, title)]  # deleted or renumbered: look again
        seen = 0
        folded: list[dict[str, Any]] = []
        async for page in self.api.pages(
            f"/repos/{repo}/milestones", params={"state": "all"}, subject=subject
        ):
            for item in page:
                if not isinstance(item, dict):
                    continue
                seen += 1
                if item.get("title") == title:
                    return self._remember(repo, title, item)
                if str(item.get("title", "")).casefold() == title.casefold():
                    folded.append(item)
        if len(folded) == 1:
            return self._remember(repo, title, folded[0])
        raise QueryError(
            f"no milestone titled {title!r} in {repo} (looked at {seen} milestones, open and "
            "closed); check the title or give its number"
        )

    def _remember(
        self, repo: str, title: str, item: dict[str, Any]
    ) -> tuple[dict[str, Any], bytes]:
        number = item.get("number")
        if isinstance(number, int):
            self._milestone_numbers[(repo, title)] = number
        raw = repr(sorted((k, str(v)) for k, v in item.items())).encode()
        return item, raw
