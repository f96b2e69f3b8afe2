"""Jira as a work tracker: the issues a JQL query matches, and one remote link per key result.

Reads page ``POST /rest/api/3/search/jql`` (``/rest/api/2/search`` on Data Center), the same
endpoint and pagination as the metrics, with the fields ``summary, status, assignee, labels,
updated, resolutiondate``. The state comes from ``status.statusCategory.key`` (``new`` → todo,
``indeterminate`` → in progress, ``done`` → done), never from the status name.

An incremental read appends ``AND updated >= "yyyy/MM/dd HH:mm"`` before the query's own
``ORDER BY``. Jira reads that date-time in the time zone of the user who asks, so the moment is
converted to the zone ``GET /myself`` reports (asked once per connection) and floored to the
minute: an item changed in that minute is read again, never missed. The reconciliation read
asks for the ``key`` only, so Cloud answers up to 5,000 keys a page (``maxResults``, as
documented for ids-only reads) where a read with fields gets ``page_size`` (100).

A backlink is a remote issue link whose ``globalId`` names the key result: ``POST
.../issue/{key}/remotelink`` with the same ``globalId`` replaces the link instead of adding one,
so a repeat (or a retry after a crash) never duplicates it; writes to one issue keep the
connection's ``issue_write_interval`` apart (Jira's per-issue write limit); ``DELETE
.../remotelink?globalId=...`` takes it off, and a link already gone is fine.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from connectors.jira.client import IssueWriteSpacer
from connectors.jira.models import ID_PAGE, JiraConnection, check_placeholders, render_jql
from okrsync.errors import TargetNotFoundError, VendorResponseError
from okrsync.sdk.http import HttpClient
from okrsync.sdk.models import CycleWindow
from okrsync.sdk.work import Backlink, WorkItem, WorkPages, WorkQuery, WorkState, WorkTracker

WORK_FIELDS = ["summary", "status", "assignee", "labels", "updated", "resolutiondate"]
KEY_ONLY = ["key"]
STATE_OF_CATEGORY = {
    "new": WorkState.TODO,
    "indeterminate": WorkState.IN_PROGRESS,
    "done": WorkState.DONE,
}
# The last ORDER BY outside quotes: the incremental clause goes before it.
_ORDER_BY = re.compile(r"""("[^"]*"|'[^']*')|\border\s+by\b""", re.IGNORECASE)
_JIRA_TIME = "%Y-%m-%dT%H:%M:%S.%f%z"


class JiraWork(WorkQuery):
    """``work: [{connection: jira, jql: "parent = OKR-12"}]``."""

    jql: str = Field(description="The issues behind the key result; may use {cycle_start}.")

    @field_validator("jql")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("jql must not be empty")
        return check_placeholders(value)

    def query_text(self) -> str:
        return self.jql


def split_order_by(jql: str) -> tuple[str, str]:
    """``(condition, " ORDER BY ...")``: the query without and with its ordering clause."""
    at: int | None = None
    for match in _ORDER_BY.finditer(jql):
        if match.group(1) is None:
            at = match.start()
    if at is None:
        return jql.strip(), ""
    return jql[:at].strip(), " " + jql[at:].strip()


def since_clause(jql: str, since: datetime, zone: ZoneInfo) -> str:
    """``jql`` restricted to issues updated at or after ``since`` (to the minute, in ``zone``)."""
    local = since.astimezone(zone)
    early, late = local.replace(fold=0).utcoffset(), local.replace(fold=1).utcoffset()
    if early is not None and late is not None and early > late:
        # A wall time that happens twice (clocks going back) reads either way in Jira: asking
        # from the shift earlier reads a little more, and never misses a change.
        local -= early - late
    condition, order = split_order_by(jql)
    stamp = local.strftime("%Y/%m/%d %H:%M")
    if not condition:
        return f'updated >= "{stamp}"{order}'
    return f'({condition}) AND updated >= "{stamp}"{order}'


def parse_jira_time(value: Any) -> datetime | None:
    """Jira's ``2026-11-12T09:30:00.000+0000`` (or ISO 8601) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, _JIRA_TIME)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def work_item(issue: dict[str, Any], site: str) -> WorkItem:
    """One search result as a :class:`WorkItem` (raises ``ValueError`` without a key)."""
    key = issue.get("key")
    if not isinstance(key, str) or not key:
        raise ValueError("an issue without a key")
    fields = issue.get("fields") or {}
    status = fields.get("status") or {}
    category = (status.get("statusCategory") or {}).get("key") if isinstance(status, dict) else None
    state = STATE_OF_CATEGORY.get(str(category), WorkState.TODO)
    assignee = fields.get("assignee")
    name = assignee.get("displayName") if isinstance(assignee, dict) else None
    labels = fields.get("labels")
    return WorkItem(
        key=key,
        title=str(fields.get("summary") or key),
        state=state,
        url=f"{site}/browse/{key}",
        assignee=name if isinstance(name, str) else None,
        labels=tuple(str(x) for x in labels) if isinstance(labels, list) else (),
        updated_at=parse_jira_time(fields.get("updated")),
        done_at=parse_jira_time(fields.get("resolutiondate")) if state is WorkState.DONE else None,
    )


class JiraWorkTracker(WorkTracker):
    """The work-tracker half of :class:`~connectors.jira.connector.JiraConnector`."""

    work_model = JiraWork

    if TYPE_CHECKING:  # provided by JiraConnector
        name: str
        config: JiraConnection
        _api: str
        _cloud: bool
        _spacer: IssueWriteSpacer

        @property
        def client(self) -> HttpClient: ...

        def _issues(
            self, jql: str, fields: list[str], subject: str, raw: Any
        ) -> AsyncIterator[dict[str, Any]]: ...

    _user_zone: ZoneInfo | None = None
    _zone_lock: asyncio.Lock | None = None

    async def list_work(
        self, query: WorkQuery, cycle: CycleWindow, since: datetime | None
    ) -> Sequence[WorkItem]:
        assert isinstance(query, JiraWork)
        jql = render_jql(query.jql, cycle.start, cycle.end)
        if since is not None:
            jql = since_clause(jql, since, await self._zone())
        subject = f"work of JQL {jql}"
        items: list[WorkItem] = []
        async for issue in self._search(jql, WORK_FIELDS, subject):
            items.append(self._item(issue, subject))
        return items

    async def list_work_keys(self, query: WorkQuery, cycle: CycleWindow) -> Sequence[str]:
        assert isinstance(query, JiraWork)
        jql = render_jql(query.jql, cycle.start, cycle.end)
        subject = f"work of JQL {jql}"
        keys: list[str] = []
        async for issue in self._search(jql, KEY_ONLY, subject):
            key = issue.get("key")
            if not isinstance(key, str) or not key:
                raise VendorResponseError(
                    "Jira's search answer has an issue without a key", subject=subject
                ).for_subject(self.name, subject)
            keys.append(key)
        return keys

    def work_pages(self) -> WorkPages:
        # Data Center pages ids-only searches like any other (``startAt``, ``page_size``)
        return WorkPages(self.config.page_size, ID_PAGE if self._cloud else self.config.page_size)

    async def put_backlink(self, item: str, link: Backlink, ref: str | None) -> str | None:
        subject = f"backlink on {item} (key result {link.key_result_id!r})"
        body = {
            "globalId": link.global_id,
            "application": {"type": "io.okrsync", "name": "okrsync"},
            "relationship": "serves key result",
            "object": {
                # Jira requires a url: the issue's own page stands in until the dashboard's
                # address is known.
                "url": link.url or f"{self.config.url}/browse/{item}",
                "title": link.title,
                "summary": f"Key result {link.key_result_id}",
                # resolved: the key result reached its target (Jira strikes the link through).
                "status": {"resolved": _complete(link)},
            },
        }
        async with self._spacer.turn(item):  # Jira's per-issue write limit
            answer = await self.client.request_json(
                "POST", f"{self._api}/issue/{item}/remotelink", json=body, subject=subject
            )
        link_id = answer.get("id") if isinstance(answer, dict) else None
        return str(link_id) if isinstance(link_id, int | str) else ref

    async def remove_backlink(self, item: str, link: Backlink, ref: str | None) -> None:
        subject = f"backlink on {item} (key result {link.key_result_id!r})"
        with contextlib.suppress(TargetNotFoundError):  # the link (or the issue) is gone
            async with self._spacer.turn(item):
                await self.client.request(
                    "DELETE",
                    f"{self._api}/issue/{item}/remotelink",
                    params={"globalId": link.global_id},
                    subject=subject,
                )

    # --- helpers --------------------------------------------------------------------------------

    async def _search(self, jql: str, fields: list[str], subject: str) -> AsyncIterator[Any]:
        async for issue in self._issues(jql, fields, subject, _NoDigest()):
            yield issue

    def _item(self, issue: dict[str, Any], subject: str) -> WorkItem:
        try:
            return work_item(issue, self.config.url)
        except ValueError:
            raise VendorResponseError(
                "Jira's search answer has an issue without a key", subject=subject
            ).for_subject(self.name, subject) from None

    async def _zone(self) -> ZoneInfo:
        """The time zone Jira reads JQL date-times in: the asking user's (once per connection,
        also when several entries' first incremental reads start together)."""
        if self._user_zone is None:
            if self._zone_lock is None:
                self._zone_lock = asyncio.Lock()
            async with self._zone_lock:
                if self._user_zone is None:
                    self._user_zone = await self._ask_zone()
        return self._user_zone

    async def _ask_zone(self) -> ZoneInfo:
        body = await self.client.get_json(f"{self._api}/myself", subject="time zone")
        name = body.get("timeZone") if isinstance(body, dict) else None
        try:
            return ZoneInfo(name) if isinstance(name, str) and name else ZoneInfo("UTC")
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")


def _complete(link: Backlink) -> bool:
    return link.progress_display is not None and link.progress_display >= 100


class _NoDigest:
    """The search helper hashes what it reads for metrics; work reads keep no digest."""

    def update(self, data: bytes) -> None:
        return None
