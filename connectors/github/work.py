"""GitHub as a work tracker: the issues and pull requests an issue search matches, and a label.

Reads page ``GET /search/issues?q=…&sort=updated&order=asc&per_page=100`` along ``Link:
rel="next"``, on the search client (its own 30-a-minute budget). Search lists at most 1,000
results per query; sorted by ``updated`` ascending, a longer result goes on with the same query
plus ``updated:>=<the last item's update>`` (items seen twice are read once). An incremental read
adds ``updated:>=<since, UTC, to the second>``. Search answers carry every field, so the
reconciliation read (keys only) costs the same requests; it keeps only the keys.

States (GitHub has no status category; decided here, documented in the README):

* ``closed`` for any reason (completed, not planned, a merged or an unmerged pull request) →
  ``done``: no work is left, as Jira's "Won't Do" sits in the Done category. ``done_at`` is
  ``pull_request.merged_at`` for a merged pull request, else ``closed_at``;
* an open pull request (draft or not) → ``in_progress``: code exists;
* an open issue with an assignee → ``in_progress``; without one → ``todo``.

Keys are ``owner/repo#number``. A backlink is the label ``okr:<key result id>``: created once
per repository and connection (``POST /repos/{o}/{r}/labels``; 422 ``already_exists`` is
fine), then added to the item (``POST …/issues/{n}/labels``, which adds nothing the second
time). Removing it is ``DELETE …/issues/{n}/labels/{name}``; a 404 (no such label there) is
fine. Nothing noisier: no comment, no mention.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from pydantic import Field, field_validator

from connectors.github.client import GitHubApi, next_link
from connectors.github.models import _KIND_QUALIFIER, _check_placeholders, fill_placeholders
from okrsync.errors import (
    Blame,
    ConnectorError,
    QueryError,
    RetriableError,
    TargetNotFoundError,
    VendorResponseError,
)
from okrsync.sdk.models import CycleWindow
from okrsync.sdk.work import (
    Backlink,
    WorkItem,
    WorkPages,
    WorkQuery,
    WorkState,
    WorkTracker,
    vendor_time,
)

SEARCH_PAGE = 100
SEARCH_CAP = 1000  # GitHub's search lists the first 1,000 results of a query
MAX_WINDOWS = 1000  # restarts past the cap: a runaway guard, 1,000,000 items
LABEL_LIMIT = 50  # characters in a GitHub label name
LABEL_COLOR = "5319e7"
_ITEM_KEY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*)/([A-Za-z0-9._-]+)#([1-9][0-9]*)$")


class GitHubWork(WorkQuery):
    """``work: [{connection: github, search: "repo:acme/shop label:checkout-v2 is:pr"}]``."""

    search: str = Field(description="An issue search; must say is:issue or is:pr.")

    @field_validator("search")
    @classmethod
    def _search(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("search is empty")
        _check_placeholders(value)
        if not _KIND_QUALIFIER.search(value):
            raise ValueError(
                "the search must say is:issue or is:pr (GitHub rejects issue searches without "
                "one); list issues and pull requests as two work entries"
            )
        if re.search(r"(?:^|\s)updated:", value, re.IGNORECASE):
            raise ValueError("okrsync adds updated: itself for incremental reads; drop it")
        return value

    def query_text(self) -> str:
        return self.search


def label_name(key_result_id: str) -> str:
    """``okr:<id>``, shortened with a digest to GitHub's 50 characters when longer."""
    name = f"okr:{key_result_id}"
    if len(name) <= LABEL_LIMIT:
        return name
    digest = hashlib.sha256(key_result_id.encode()).hexdigest()[:8]
    return f"{name[: LABEL_LIMIT - 9]}~{digest}"


def split_key(key: str) -> tuple[str, int]:
    """``("owner/repo", number)`` of ``owner/repo#number``."""
    match = _ITEM_KEY.match(key)
    if match is None:
        raise ConnectorError(
            f"{key!r} is not a GitHub item key (owner/repo#number)", blame=Blame.CONFIG
        )
    return f"{match.group(1)}/{match.group(2)}", int(match.group(3))


def item_key(issue: dict[str, Any]) -> str:
    repository = str(issue.get("repository_url") or "")
    parts = repository.rstrip("/").split("/")
    number = issue.get("number")
    if len(parts) < 2 or not isinstance(number, int):
        raise ValueError("a search result without repository_url or number")
    return f"{parts[-2]}/{parts[-1]}#{number}"


def state_of(issue: dict[str, Any]) -> WorkState:
    if issue.get("state") == "closed":
        return WorkState.DONE
    if (
        isinstance(issue.get("pull_request"), dict)
        or issue.get("assignees")
        or issue.get("assignee")
    ):
        return WorkState.IN_PROGRESS
    return WorkState.TODO


def work_item(issue: dict[str, Any]) -> WorkItem:
    state = state_of(issue)
    pull = issue.get("pull_request")
    done_at = None
    if state is WorkState.DONE:
        merged = vendor_time(pull.get("merged_at")) if isinstance(pull, dict) else None
        done_at = merged or vendor_time(issue.get("closed_at"))
    assignees = issue.get("assignees") or ([issue["assignee"]] if issue.get("assignee") else [])
    first = assignees[0] if isinstance(assignees, list) and assignees else None
    login = first.get("login") if isinstance(first, dict) else None
    labels = [
        label.get("name") if isinstance(label, dict) else label
        for label in issue.get("labels") or []
    ]
    key = item_key(issue)
    return WorkItem(
        key=key,
        title=str(issue.get("title") or key),
        state=state,
        url=issue.get("html_url") if isinstance(issue.get("html_url"), str) else None,
        assignee=login if isinstance(login, str) else None,
        labels=tuple(str(name) for name in labels if isinstance(name, str)),
        updated_at=vendor_time(issue.get("updated_at")),
        done_at=done_at,
    )


def since_text(since: datetime) -> str:
    """``since`` as GitHub's search reads a date-time: UTC, to the second."""
    moment = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubWorkTracker(WorkTracker):
    """The work-tracker half of :class:`~connectors.github.GitHubConnector`."""

    work_model = GitHubWork

    if TYPE_CHECKING:  # provided by GitHubBase
        name: str
        api: GitHubApi

    _labeled_repos: set[tuple[str, str]] | None = None

    async def list_work(
        self, query: WorkQuery, cycle: CycleWindow, since: datetime | None
    ) -> Sequence[WorkItem]:
        assert isinstance(query, GitHubWork)
        q = fill_placeholders(query.search, cycle)
        start = since_text(since) if since is not None else None
        subject = f"work of search {q}" + (f" updated:>={start}" if start else "")
        items = []
        async for issue in self._search_all(q, start, subject):
            try:
                items.append(work_item(issue))
            except ValueError as exc:
                raise VendorResponseError(str(exc), subject=subject).for_subject(
                    self.name, subject
                ) from None
        return items

    async def list_work_keys(self, query: WorkQuery, cycle: CycleWindow) -> Sequence[str]:
        return [item.key for item in await self.list_work(query, cycle, None)]

    def work_pages(self) -> WorkPages:
        # the search has no ids-only form: its keys are a full read, so a full read always wins
        return WorkPages(SEARCH_PAGE, SEARCH_PAGE)

    async def put_backlink(self, item: str, link: Backlink, ref: str | None) -> str | None:
        repo, number = split_key(item)
        name = label_name(link.key_result_id)
        subject = f"backlink on {item} (key result {link.key_result_id!r})"
        await self._ensure_label(repo, name, link, subject)
        await self.api.core.request(
            "POST",
            self.api.url(f"/repos/{repo}/issues/{number}/labels"),
            json={"labels": [name]},
            subject=subject,
        )
        return name

    async def remove_backlink(self, item: str, link: Backlink, ref: str | None) -> None:
        repo, number = split_key(item)
        name = ref or label_name(link.key_result_id)
        subject = f"backlink on {item} (key result {link.key_result_id!r})"
        # A 404: the item no longer carries the label (or is gone).
        with contextlib.suppress(TargetNotFoundError):
            await self.api.core.request(
                "DELETE",
                self.api.url(f"/repos/{repo}/issues/{number}/labels/{quote(name, safe='')}"),
                subject=subject,
            )

    # --- helpers --------------------------------------------------------------------------------

    async def _ensure_label(self, repo: str, name: str, link: Backlink, subject: str) -> None:
        """Create the label in ``repo`` once per connection; one that exists is fine."""
        if self._labeled_repos is None:
            self._labeled_repos = set()
        if (repo, name) in self._labeled_repos:
            return
        body = {
            "name": name,
            "color": LABEL_COLOR,
            "description": f"okrsync: {link.key_result_title}"[:100],
        }
        try:
            await self.api.core.request(
                "POST", self.api.url(f"/repos/{repo}/labels"), json=body, subject=subject
            )
        except QueryError as exc:
            if "already_exists" not in str(exc):
                raise
        self._labeled_repos.add((repo, name))

    async def _search_all(
        self, q: str, since: str | None, subject: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item ``q`` matches (updated at or after ``since``), oldest update first, past
        the 1,000-result cap: each further window starts at the last update seen (one
        ``updated:`` qualifier only, as the results are sorted by it)."""
        seen: set[str] = set()
        window = f"{q} updated:>={since}" if since else q
        for _ in range(MAX_WINDOWS):
            listed = 0
            total = 0
            last: str | None = None
            async for body in self._pages(window, subject):
                count = body.get("total_count")
                total = count if isinstance(count, int) else 0
                for issue in body.get("items") or []:
                    if not isinstance(issue, dict):
                        continue
                    listed += 1
                    last = issue.get("updated_at") or last
                    key = f"{issue.get('repository_url')}#{issue.get('number')}"
                    if key not in seen:
                        seen.add(key)
                        yield issue
            if total <= listed or listed < SEARCH_CAP or last is None:
                return
            following = f"{q} updated:>={last}"
            if following == window:
                raise QueryError(
                    f"more than {SEARCH_CAP} items were updated at {last}: GitHub's search cannot "
                    "list them all; narrow the search",
                    subject=subject,
                ).for_subject(self.name, subject)
            window = following
        raise VendorResponseError("the search did not end", subject=subject).for_subject(
            self.name, subject
        )

    async def _pages(self, q: str, subject: str) -> AsyncIterator[dict[str, Any]]:
        api = httpx.URL(self.api.base_url)
        url: str | None = self.api.url("/search/issues")
        params: dict[str, Any] | None = {
            "q": q,
            "sort": "updated",
            "order": "asc",
            "per_page": SEARCH_PAGE,
        }
        for _ in range(-(-SEARCH_CAP // SEARCH_PAGE) + 1):  # the cap's pages, and one more
            if url is None:
                return
            response = await self.api.search.request("GET", url, params=params, subject=subject)
            body = self.api.search.parse_json(response, subject=subject)
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise VendorResponseError(
                    "GitHub's search answer has no list of items", subject=subject
                ).for_subject(self.name, subject)
            if body.get("incomplete_results") is True:
                raise RetriableError(
                    f"GitHub's search timed out and its results may be incomplete for q={q!r}; "
                    "asking again next time",
                    subject=subject,
                ).for_subject(self.name, subject)
            yield body
            following = next_link(response)
            params = None
            url = str(response.url.join(following)) if following else None
            if url is not None:
                target = httpx.URL(url)
                if (target.scheme, target.netloc) != (api.scheme, api.netloc):
                    raise VendorResponseError(
                        "GitHub's next page is on another host", subject=subject
                    ).for_subject(self.name, subject)
        raise VendorResponseError(
            "GitHub's search listed more pages than it can", subject=subject
        ).for_subject(self.name, subject)
