"""The YAML the ``linear`` connector reads: its connection, its metrics and its mirror.

What can be checked without calling Linear is checked here, so ``okrsync validate`` catches it:
both or neither of ``api_key`` and ``access_token``, an API key pasted with a ``Bearer`` prefix
(Linear refuses that), an unknown state type, a date that is neither ISO 8601 nor a
``{cycle_…}`` placeholder, a mirror naming its project twice.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from okrsync.sdk.connector import ConnectionConfig, MirrorSpec, QuerySpec
from okrsync.sdk.models import CycleWindow

DEFAULT_BASE_URL = "https://api.linear.app"
MAX_PAGE_SIZE = 250  # Linear's connections take first: 1..250
PLACEHOLDERS = ("{cycle_start}", "{cycle_end}")
_CYCLE_TOKEN = re.compile(r"\{cycle[._][A-Za-z_]*\}")
_DURATION = re.compile(r"^-?P(?:\d+[YMWD])+(?:T(?:\d+[HMS])+)?$")

StateType = Literal["triage", "backlog", "unstarted", "started", "completed", "canceled"]
Health = Literal["onTrack", "atRisk", "offTrack"]


def _check_date(value: str | None) -> str | None:
    """A Linear ``DateTimeOrDuration``: ISO date/datetime, ISO duration, or a cycle placeholder."""
    if value is None:
        return None
    text = value.strip()
    if text in PLACEHOLDERS:
        return text
    for token in _CYCLE_TOKEN.findall(text):
        raise ValueError(f"unknown placeholder {token}: use {' or '.join(PLACEHOLDERS)}")
    if _DURATION.fullmatch(text):
        return text
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is neither an ISO 8601 date (2026-10-01), a datetime, a duration "
            f"(-P2W) nor one of {', '.join(PLACEHOLDERS)}"
        ) from None
    return text


def fill_date(value: str, cycle: CycleWindow) -> str:
    """The value Linear receives: a placeholder becomes the cycle date at midnight UTC."""
    days: dict[str, date] = {"{cycle_start}": cycle.start, "{cycle_end}": cycle.end}
    day = days.get(value)
    return f"{day.isoformat()}T00:00:00.000Z" if day is not None else value


class LinearConnection(ConnectionConfig):
    """A personal API key (sent bare) or an OAuth access token (sent as ``Bearer``)."""

    type: Literal["linear"] = "linear"
    api_key: SecretStr | None = Field(
        default=None, description="A personal API key (lin_api_…), sent without 'Bearer'."
    )
    access_token: SecretStr | None = Field(
        default=None, description="An OAuth 2.0 access token, sent as 'Bearer <token>'."
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL, description="The API host; the endpoint is <base_url>/graphql."
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds one request may take.")
    max_retries: int = Field(default=4, ge=0, le=10, description="Retries of a transient failure.")
    max_concurrency: int = Field(default=4, ge=1, le=32)
    requests_per_second: float | None = Field(
        default=None, gt=0, description="Pace of all calls; none by default (headers pace us)."
    )
    page_size: int = Field(
        default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Issues per page (1-250)."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description=(
            "The signing secret of Linear's webhook (Settings > API > Webhooks): POST "
            "/hooks/<connection> then accepts Linear's signed events (OKRSYNC_HOOK_SECRET_<NAME> "
            "overrides it)."
        ),
    )

    @model_validator(mode="after")
    def _one_credential(self) -> LinearConnection:
        if (self.api_key is None) == (self.access_token is None):
            raise ValueError("give exactly one of 'api_key' (personal key) and 'access_token'")
        if self.api_key is not None:
            key = self.api_key.get_secret_value().strip()
            if key.lower().startswith("bearer "):
                raise ValueError(
                    "api_key must not start with 'Bearer ': Linear takes a personal API key bare "
                    "(use access_token for an OAuth token)"
                )
            if not key:
                raise ValueError("api_key is empty")
        return self

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL}")
        return value.rstrip("/")

    def authorization(self) -> str:
        if self.api_key is not None:
            return self.api_key.get_secret_value().strip()
        assert self.access_token is not None
        return f"Bearer {self.access_token.get_secret_value().strip()}"


def stripped_name(value: str | None) -> str | None:
    """A team, project or project id as given, trimmed; an empty one is an error."""
    if value is not None and not value.strip():
        raise ValueError("must not be empty")
    return None if value is None else value.strip()


def check_project_and_labels(
    project: str | None, project_id: str | None, labels: tuple[str, ...]
) -> None:
    """A project by name or by id (not both), and no empty label name."""
    if project is not None and project_id is not None:
        raise ValueError("give 'project' (a name) or 'project_id', not both")
    if any(not label.strip() for label in labels):
        raise ValueError("a label name is empty")


def team_and_project(
    team: str | None, project: str | None, project_id: str | None
) -> dict[str, Any]:
    """The ``team`` and ``project`` parts of an ``IssueFilter``."""
    parts: dict[str, Any] = {}
    if team is not None:
        parts["team"] = {"key": {"eq": team}}
    if project_id is not None:
        parts["project"] = {"id": {"eq": project_id}}
    elif project is not None:
        parts["project"] = {"name": {"eq": project}}
    return parts


def one_or_many(value: Any) -> Any:
    """``labels: x`` as ``labels: [x]``."""
    return (value,) if isinstance(value, str) else value


IssueName = Annotated[str | None, AfterValidator(stripped_name)]
IssueDate = Annotated[str | None, AfterValidator(_check_date)]
Labels = Annotated[tuple[str, ...], BeforeValidator(one_or_many)]


class LinearQuery(QuerySpec):
    """Issues matching a filter: how many, or the sum of their estimates.

    Every given field narrows the set (they are ANDed); ``labels`` asks for issues carrying all
    the named labels; ``state_type`` for issues in any of the listed workflow-state types.
    """

    team: IssueName = Field(default=None, description="A team key, e.g. 'ENG'.")
    project: IssueName = Field(default=None, description="A project's exact name.")
    project_id: IssueName = Field(default=None, description="A project's id.")
    labels: Labels = Field(default=(), description="Label names the issues all carry.")
    state_type: Annotated[tuple[StateType, ...], BeforeValidator(one_or_many)] = Field(
        default=(), description="triage|backlog|unstarted|started|completed|canceled (any of)."
    )
    completed_after: IssueDate = Field(default=None, description="completedAt >= this.")
    completed_before: IssueDate = Field(default=None, description="completedAt < this.")
    created_after: IssueDate = Field(default=None, description="createdAt >= this.")
    created_before: IssueDate = Field(default=None, description="createdAt < this.")
    include_archived: bool = Field(default=False, description="Count archived issues too.")
    aggregate: Literal["count", "sum_estimate"] = Field(
        default="count", description="count, or sum_estimate (issues without an estimate add 0)."
    )

    @model_validator(mode="after")
    def _one_project(self) -> LinearQuery:
        check_project_and_labels(self.project, self.project_id, self.labels)
        return self

    def issue_filter(self, cycle: CycleWindow | None = None) -> dict[str, Any]:
        """The ``IssueFilter`` sent to Linear (placeholders filled when a cycle is given)."""

        def when(value: str) -> str:
            return fill_date(value, cycle) if cycle is not None else value

        parts = team_and_project(self.team, self.project, self.project_id)
        if self.state_type:
            parts["state"] = {"type": {"in": list(self.state_type)}}
        for field, after, before in (
            ("completedAt", self.completed_after, self.completed_before),
            ("createdAt", self.created_after, self.created_before),
        ):
            comparator: dict[str, str] = {}
            if after is not None:
                comparator["gte"] = when(after)
            if before is not None:
                comparator["lt"] = when(before)
            if comparator:
                parts[field] = comparator
        if len(self.labels) == 1:
            parts["labels"] = {"some": {"name": {"eq": self.labels[0]}}}
        elif self.labels:
            parts["and"] = [{"labels": {"some": {"name": {"eq": name}}}} for name in self.labels]
        return parts

    def is_count(self) -> bool:
        return self.aggregate == "count"

    def query_text(self) -> str:
        filter_text = json.dumps(self.issue_filter(), separators=(",", ":"))
        archived = ", includeArchived: true" if self.include_archived else ""
        measure = "count of nodes" if self.aggregate == "count" else "sum of nodes.estimate"
        return f"issues(filter: {filter_text}{archived}) → {measure}"


class LinearProjectUpdateMirror(MirrorSpec):
    """One project update per key result on a Linear project, edited in place."""

    project_id: str | None = Field(default=None, description="The project's id.")
    project: str | None = Field(default=None, description="The project's exact name.")
    no_data_health: Health | Literal["unchanged"] = Field(
        default="atRisk",
        description="Health to show while the key result has no data ('unchanged' omits it).",
    )

    @model_validator(mode="after")
    def _one_project(self) -> LinearProjectUpdateMirror:
        if (self.project_id is None) == (self.project is None):
            raise ValueError("give exactly one of 'project_id' and 'project' (a name)")
        for value in (self.project_id, self.project):
            if value is not None and not value.strip():
                raise ValueError("the project must not be empty")
        return self

    def target(self) -> str:
        return f"project {self.project_id or self.project!r}"
