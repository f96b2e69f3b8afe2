"""Counting Linear issues, or summing their estimates, page by page over ``issues``.

Linear has no aggregate query, so the source walks the ``issues`` connection with the metric's
``IssueFilter`` (250 nodes a page, the most Linear allows, asking only ``id`` and ``estimate`` to
keep each page's complexity low) and counts what it sees. The first page also asks, in the same
request, whether the team, project and labels the metric names exist: a filter on a team key
nobody has matches nothing, and "0 issues" would read like good news instead of a typo.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from connectors.linear.graphql_client import LinearBase, expect, relay_pages
from connectors.linear.models import LinearConnection, LinearQuery
from okrsync.errors import QueryError, VendorResponseError
from okrsync.sdk.connector import Source
from okrsync.sdk.models import Query, Reading, as_decimal, digest

MAX_PAGES = 400  # 100,000 issues: beyond that a metric should be narrowed, not paged through


def checked_issues_query(operation: str, nodes: str) -> str:
    """A query paging ``issues`` that, on the first page, also asks whether the team, project
    and labels its filter names exist; ``nodes`` is the selection on each issue."""
    return f"""
query {operation}(
  $filter: IssueFilter
  $first: Int!
  $after: String
  $includeArchived: Boolean
  $checkTeam: Boolean!
  $teamFilter: TeamFilter
  $checkProject: Boolean!
  $projectFilter: ProjectFilter
  $checkLabels: Boolean!
  $labelFilter: IssueLabelFilter
) {{
  teams(filter: $teamFilter, first: 1) @include(if: $checkTeam) {{
    nodes {{ id key }}
  }}
  projects(filter: $projectFilter, first: 1) @include(if: $checkProject) {{
    nodes {{ id name }}
  }}
  issueLabels(filter: $labelFilter, first: 250) @include(if: $checkLabels) {{
    nodes {{ id name }}
  }}
  issues(filter: $filter, first: $first, after: $after, includeArchived: $includeArchived) {{
    nodes {nodes}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
""".strip()


ISSUES_QUERY = checked_issues_query("OkrsyncIssueTotals", "{ id estimate }")


def issue_variables(
    spec: LinearQuery, filter_: dict[str, Any], page_size: int, after: str | None
) -> dict[str, Any]:
    """The operation's variables; the existence checks only ride along on the first page."""
    first_page = after is None
    check_project = first_page and (spec.project is not None or spec.project_id is not None)
    project_filter: dict[str, Any] | None = None
    if spec.project_id is not None:
        project_filter = {"id": {"eq": spec.project_id}}
    elif spec.project is not None:
        project_filter = {"name": {"eq": spec.project}}
    return {
        "filter": filter_,
        "first": page_size,
        "after": after,
        "includeArchived": spec.include_archived,
        "checkTeam": first_page and spec.team is not None,
        "teamFilter": {"key": {"eq": spec.team}} if spec.team is not None else None,
        "checkProject": check_project,
        "projectFilter": project_filter,
        "checkLabels": first_page and bool(spec.labels),
        "labelFilter": {"name": {"in": list(spec.labels)}} if spec.labels else None,
    }


def _check_names(spec: LinearQuery, data: dict[str, Any], subject: str) -> None:
    """Fail the metric when what its filter names does not exist in the workspace."""
    if "teams" in data:
        teams = expect(data["teams"], dict, "teams", subject).get("nodes")
        if not teams:
            raise QueryError(f"Linear has no team with key {spec.team!r}", subject=subject)
    if "projects" in data:
        projects = expect(data["projects"], dict, "projects", subject).get("nodes")
        if not projects:
            what = f"id {spec.project_id!r}" if spec.project_id is not None else repr(spec.project)
            raise QueryError(f"Linear has no project {what}", subject=subject)
    if "issueLabels" in data:
        nodes = expect(data["issueLabels"], dict, "issueLabels", subject).get("nodes") or []
        found = {node.get("name") for node in nodes if isinstance(node, dict)}
        missing = [name for name in spec.labels if name not in found]
        if missing:
            names = ", ".join(repr(name) for name in missing)
            raise QueryError(f"Linear has no label named {names}", subject=subject)


class LinearSource(LinearBase, Source[LinearConnection, LinearQuery]):
    """Issue counts and estimate sums."""

    query_model = LinearQuery

    async def fetch_one(self, query: Query[LinearQuery]) -> Reading:
        spec = query.spec
        subject = query.subject
        filter_ = spec.issue_filter(query.cycle)
        calls_before = self.api_calls
        count = 0
        total = Decimal(0)
        raw: list[bytes] = []
        pages = relay_pages("issues", max_pages=MAX_PAGES, subject=subject)
        while not pages.finished:
            variables = issue_variables(spec, filter_, self.config.page_size, pages.token)
            answer = await self.graphql.execute(ISSUES_QUERY, variables, subject=subject)
            raw.append(answer.raw)
            if pages.pages_read == 0:
                _check_names(spec, answer.data, subject)
            issues = expect(answer.data.get("issues"), dict, "issues connection", subject)
            nodes = expect(issues.get("nodes"), list, "issues.nodes list", subject)
            for node in nodes:
                count += 1
                estimate = node.get("estimate") if isinstance(node, dict) else None
                if estimate is not None:
                    try:
                        total += as_decimal(estimate)
                    except (TypeError, ArithmeticError) as exc:
                        raise VendorResponseError(
                            f"an issue's estimate is not a number: {estimate!r}", subject=subject
                        ) from exc
            pages.advance(issues)
        value = Decimal(count) if spec.aggregate == "count" else total
        return Reading(
            key=query.key,
            value=value,
            query_text=spec.query_text(),
            fetched_at=datetime.now(UTC),
            raw_digest=digest(b"\n".join(raw)),
            api_calls=self.api_calls - calls_before,
        )
