"""Linear as a work tracker: the issues an ``IssueFilter`` matches, and one attachment each.

Reads page the ``issues`` connection (``first: page_size``, ``after: endCursor``, as the
metrics do) with ``filter: {team: {key: {eq}}, labels: {name: {in}}, project: …}``; the first
page of a full read also asks, in the same request, whether the team, project and labels exist
(a typo would otherwise read as "no work"). An incremental read adds ``updatedAt: {gte:
since}``; the reconciliation read asks for ``identifier`` only.

States come from ``state.type``: ``triage``/``backlog``/``unstarted`` → todo, ``started`` → in
progress, ``completed`` → done (at ``completedAt``), and ``canceled`` → done too (at
``canceledAt``): no work is left, as Jira's "Won't Do" sits in the Done category and a closed
GitHub issue is done whatever its reason. Dropping canceled issues instead would make them look
as if they had left the query.

A backlink is an attachment: ``attachmentCreate(input: {issueId, url, title, subtitle})``,
which Linear turns into an update when the same ``url`` is already attached to the issue, so a
repeat (or a retry after a crash) never duplicates it. The ``url`` is the key result's page
(or, until okrsync knows its address, a stable ``https://okrsync.invalid/key-results/<id>``);
when it changes, the attachment under the old url (the ``ref`` kept) is deleted. Removing is
``attachmentDelete(id)``; without a ``ref`` the id is looked up by url on the issue first.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.linear.graphql_client import LinearGraphQL, expect, relay_pages
from connectors.linear.models import (
    IssueDate,
    IssueName,
    Labels,
    LinearConnection,
    LinearQuery,
    check_project_and_labels,
    fill_date,
    team_and_project,
)
from connectors.linear.source import _check_names, checked_issues_query, issue_variables
from okrsync.errors import TargetNotFoundError, VendorResponseError
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

MAX_PAGES = 400  # 100,000 issues
STATE_OF_TYPE = {
    "triage": WorkState.TODO,
    "backlog": WorkState.TODO,
    "unstarted": WorkState.TODO,
    "started": WorkState.IN_PROGRESS,
    "completed": WorkState.DONE,
    "canceled": WorkState.DONE,
}
FALLBACK_URL = "https://okrsync.invalid/key-results/"

WORK_QUERY = checked_issues_query(
    "OkrsyncWork",
    """{
      identifier
      title
      url
      updatedAt
      completedAt
      canceledAt
      state { type }
      assignee { displayName }
      labels(first: 25) { nodes { name } }
    }""",
)

WORK_KEYS_QUERY = """
query OkrsyncWorkKeys($filter: IssueFilter, $first: Int!, $after: String) {
  issues(filter: $filter, first: $first, after: $after) {
    nodes { identifier }
    pageInfo { hasNextPage endCursor }
  }
}
""".strip()

ATTACH = """
mutation OkrsyncAttach($input: AttachmentCreateInput!) {
  attachmentCreate(input: $input) {
    success
    attachment { id }
  }
}
""".strip()

DETACH = """
mutation OkrsyncDetach($id: String!) {
  attachmentDelete(id: $id) {
    success
  }
}
""".strip()

FIND_ATTACHMENT = """
query OkrsyncFindAttachment($issue: String!, $url: String!) {
  issue(id: $issue) {
    attachments(filter: {url: {eq: $url}}, first: 10) { nodes { id } }
  }
}
""".strip()

DOCUMENTS = (WORK_QUERY, WORK_KEYS_QUERY, ATTACH, DETACH, FIND_ATTACHMENT)


class LinearWorkFilter(BaseModel):
    """``filter: {team: ENG, labels: [checkout-v2]}``: every given field narrows the set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    team: IssueName = Field(default=None, description="A team key, e.g. 'ENG'.")
    labels: Labels = Field(default=(), description="Issues carrying any of these labels.")
    project: IssueName = Field(default=None, description="A project's exact name.")
    project_id: IssueName = Field(default=None, description="A project's id.")
    created_after: IssueDate = Field(default=None, description="createdAt >= this.")
    created_before: IssueDate = Field(default=None, description="createdAt < this.")

    @model_validator(mode="after")
    def _bounded(self) -> LinearWorkFilter:
        check_project_and_labels(self.project, self.project_id, self.labels)
        if not (self.team or self.project or self.project_id or self.labels):
            raise ValueError("name a team, a project or labels: a filter must narrow the issues")
        return self


class LinearWork(WorkQuery):
    """``work: [{connection: linear, filter: {team: ENG, labels: [checkout-v2]}}]``."""

    filter: LinearWorkFilter

    def issue_filter(self, cycle: CycleWindow, since: datetime | None = None) -> dict[str, Any]:
        """The ``IssueFilter`` sent to Linear."""
        wanted = self.filter
        parts = team_and_project(wanted.team, wanted.project, wanted.project_id)
        if wanted.labels:
            parts["labels"] = {"name": {"in": list(wanted.labels)}}
        created: dict[str, str] = {}
        if wanted.created_after is not None:
            created["gte"] = fill_date(wanted.created_after, cycle)
        if wanted.created_before is not None:
            created["lt"] = fill_date(wanted.created_before, cycle)
        if created:
            parts["createdAt"] = created
        if since is not None:
            moment = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
            stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            parts["updatedAt"] = {"gte": stamp}
        return parts

    def as_metric(self) -> LinearQuery:
        """The same names as a metric's query, for the existence checks the source makes."""
        return LinearQuery(
            team=self.filter.team,
            project=self.filter.project,
            project_id=self.filter.project_id,
            labels=self.filter.labels,
        )

    def query_text(self) -> str:
        return self.filter.model_dump_json(exclude_defaults=True)


def work_item(node: dict[str, Any]) -> WorkItem:
    key = node.get("identifier")
    if not isinstance(key, str) or not key:
        raise ValueError("an issue without an identifier")
    state_type = (node.get("state") or {}).get("type")
    state = STATE_OF_TYPE.get(str(state_type), WorkState.TODO)
    done_at = None
    if state is WorkState.DONE:
        done_at = vendor_time(node.get("completedAt")) or vendor_time(node.get("canceledAt"))
    assignee = node.get("assignee")
    name = assignee.get("displayName") if isinstance(assignee, dict) else None
    labels = (node.get("labels") or {}).get("nodes") or []
    return WorkItem(
        key=key,
        title=str(node.get("title") or key),
        state=state,
        url=node.get("url") if isinstance(node.get("url"), str) else None,
        assignee=name if isinstance(name, str) else None,
        labels=tuple(
            str(label["name"]) for label in labels if isinstance(label, dict) and "name" in label
        ),
        updated_at=vendor_time(node.get("updatedAt")),
        done_at=done_at,
    )


def attachment_url(link: Backlink) -> str:
    return link.url or FALLBACK_URL + quote(link.key_result_id, safe="")


class LinearWorkTracker(WorkTracker):
    """The work-tracker half of :class:`~connectors.linear.LinearConnector`."""

    work_model = LinearWork

    if TYPE_CHECKING:  # provided by LinearBase
        name: str
        config: LinearConnection
        graphql: LinearGraphQL

    async def list_work(
        self, query: WorkQuery, cycle: CycleWindow, since: datetime | None
    ) -> Sequence[WorkItem]:
        assert isinstance(query, LinearWork)
        filter_ = query.issue_filter(cycle, since)
        subject = f"work of Linear filter {query.query_text()}"
        items: list[WorkItem] = []
        check = since is None  # names are checked on full reads only
        async for node in self._nodes(WORK_QUERY, query, filter_, subject, check=check):
            try:
                items.append(work_item(node))
            except ValueError as exc:
                raise VendorResponseError(f"Linear's answer has {exc}", subject=subject) from None
        return items

    async def list_work_keys(self, query: WorkQuery, cycle: CycleWindow) -> Sequence[str]:
        assert isinstance(query, LinearWork)
        subject = f"work of Linear filter {query.query_text()}"
        keys: list[str] = []
        async for node in self._nodes(
            WORK_KEYS_QUERY, query, query.issue_filter(cycle), subject, check=False
        ):
            keys.append(str(expect(node.get("identifier"), str, "issue identifier", subject)))
        return keys

    def work_pages(self) -> WorkPages:
        return WorkPages(self.config.page_size, self.config.page_size)

    async def put_backlink(self, item: str, link: Backlink, ref: str | None) -> str | None:
        subject = f"backlink on {item} (key result {link.key_result_id!r})"
        variables = {
            "input": {
                "issueId": item,
                "url": attachment_url(link),
                "title": link.title,
                "subtitle": f"okrsync key result {link.key_result_id}",
            }
        }
        answer = await self.graphql.execute(ATTACH, variables, subject=subject)
        payload = expect(answer.data.get("attachmentCreate"), dict, "attachmentCreate", subject)
        attachment = expect(payload.get("attachment"), dict, "attachment", subject)
        new_id = str(expect(attachment.get("id"), str, "attachment id", subject))
        if ref is not None and ref != new_id:  # the url changed: the old attachment goes
            await self._detach(ref, subject)
        return new_id

    async def remove_backlink(self, item: str, link: Backlink, ref: str | None) -> None:
        subject = f"backlink on {item} (key result {link.key_result_id!r})"
        ids = [ref] if ref is not None else await self._find(item, attachment_url(link), subject)
        for attachment_id in ids:
            await self._detach(attachment_id, subject)

    # --- helpers --------------------------------------------------------------------------------

    async def _nodes(
        self,
        document: str,
        query: LinearWork,
        filter_: dict[str, Any],
        subject: str,
        *,
        check: bool,
    ) -> AsyncIterator[dict[str, Any]]:
        metric = query.as_metric()
        pages = relay_pages("issues", max_pages=MAX_PAGES, subject=subject)
        while not pages.finished:
            if document is WORK_QUERY:
                variables = issue_variables(metric, filter_, self.config.page_size, pages.token)
                if not check:
                    variables.update(checkTeam=False, checkProject=False, checkLabels=False)
            else:
                variables = {
                    "filter": filter_,
                    "first": self.config.page_size,
                    "after": pages.token,
                }
            answer = await self.graphql.execute(document, variables, subject=subject)
            if check and pages.pages_read == 0:
                _check_names(metric, answer.data, subject)
            issues = expect(answer.data.get("issues"), dict, "issues connection", subject)
            for node in expect(issues.get("nodes"), list, "issues.nodes list", subject):
                if isinstance(node, dict):
                    yield node
            pages.advance(issues)

    async def _find(self, item: str, url: str, subject: str) -> list[str]:
        try:
            answer = await self.graphql.execute(
                FIND_ATTACHMENT, {"issue": item, "url": url}, subject=subject
            )
        except TargetNotFoundError:
            return []  # the issue is gone, and its attachments with it
        issue = answer.data.get("issue") or {}
        nodes = ((issue.get("attachments") or {}).get("nodes")) or []
        return [str(node["id"]) for node in nodes if isinstance(node, dict) and "id" in node]

    async def _detach(self, attachment_id: str, subject: str) -> None:
        with contextlib.suppress(TargetNotFoundError):  # gone already
            await self.graphql.execute(DETACH, {"id": attachment_id}, subject=subject)
