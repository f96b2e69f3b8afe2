"""The YAML fields of a Jira connection, metric and mirror, and the JQL cycle placeholders."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from okrsync.sdk.connector import ConnectionConfig, MirrorSpec, QuerySpec

CYCLE_PLACEHOLDERS = ("cycle_start", "cycle_end")
# Cloud's ``search/jql`` answers at most 5,000 issues a page when only ``id`` or ``key`` is asked
# for (its documented ``maxResults``); with other fields, fewer (``page_size``).
ID_PAGE = 5000
ID_FIELDS = (["id"], ["key"])
# A placeholder, with the double quotes a user may already have put around it.
_PLACEHOLDER = re.compile(r'"?\{([^{}]*)\}"?')
_ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]*-[1-9][0-9]*$")
_PROPERTY_KEY_LIMIT = 255


class JiraConnection(ConnectionConfig):
    """One Jira site. Cloud: email + API token (Basic); Data Center: a personal access token."""

    type: Literal["jira"] = "jira"
    url: str = Field(description="The site, e.g. https://acme.atlassian.net (no /rest path).")
    deployment: Literal["cloud", "datacenter"] = Field(
        default="cloud", description="cloud: REST v3, Basic auth; datacenter: REST v2, Bearer PAT."
    )
    email: str | None = Field(default=None, description="Cloud: the Atlassian account's email.")
    api_token: SecretStr | None = Field(default=None, description="Cloud: an API token.")
    personal_access_token: SecretStr | None = Field(
        default=None, description="Data Center: a personal access token."
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds one request may take.")
    page_size: int = Field(
        default=100, ge=1, le=5000, description="Issues per search page when fields are read."
    )
    requests_per_second: float | None = Field(
        default=100.0,
        gt=0,
        description=(
            "Ceiling of our pace for this site (requests per second; Jira Cloud documents a "
            "burst limit of 100/s per endpoint for GET and POST): a lower X-RateLimit-Limit "
            "announced by Jira Cloud caps it, X-RateLimit-NearLimit and RateLimit-Reason halve "
            "it, quiet answers win it back. null: no pacing (Retry-After and X-RateLimit-Reset "
            "are still obeyed)."
        ),
    )
    max_concurrency: int = Field(
        default=10,
        ge=1,
        le=100,
        description=(
            "Requests in flight at once. Jira documents no concurrency limit, only the pace; "
            "10 sustain the 100/s ceiling while an answer takes up to 100 ms."
        ),
    )
    issue_write_interval: float = Field(
        default=0.5,
        ge=0,
        description="Least seconds between two writes to the same issue (Jira's per-issue limit).",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"url must be like https://acme.atlassian.net, got {value!r}")
        if parts.path.rstrip("/").endswith(("/rest/api/3", "/rest/api/2")):
            raise ValueError("url is the site only: drop the /rest/api/... part")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _credentials_match_deployment(self) -> Self:
        if self.deployment == "cloud":
            if not self.email or self.api_token is None:
                raise ValueError("a cloud connection needs email and api_token (Basic auth)")
            if self.personal_access_token is not None:
                raise ValueError("personal_access_token is for deployment: datacenter")
        else:
            if self.personal_access_token is None:
                raise ValueError("a datacenter connection needs personal_access_token")
            if self.api_token is not None:
                raise ValueError("api_token is for deployment: cloud; use personal_access_token")
        return self

    @property
    def api_version(self) -> str:
        return "3" if self.deployment == "cloud" else "2"


def check_placeholders(jql: str) -> str:
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(jql)} - set(CYCLE_PLACEHOLDERS))
    if unknown:
        names = ", ".join("{" + name + "}" for name in unknown)
        raise ValueError(
            f"unknown placeholder(s) {names} in jql; only {{cycle_start}} and {{cycle_end}} exist "
            "(JQL has no bind parameters, so okrsync substitutes them as quoted dates)"
        )
    return jql


def render_jql(jql: str, start: date, end: date) -> str:
    """``jql`` with the cycle placeholders replaced by quoted ISO dates.

    The value is a date okrsync produced, never user text, so quoting cannot be escaped; a
    placeholder the user already wrapped in quotes is not quoted twice.
    """
    values = {"cycle_start": start.isoformat(), "cycle_end": end.isoformat()}
    return _PLACEHOLDER.sub(lambda m: f'"{values[m.group(1)]}"', jql)


class JiraQuery(QuerySpec):
    """A metric: count, sum or average of a number field, or the done ratio under a parent."""

    jql: str = Field(default="", description="The issues to look at; may use {cycle_start}.")
    aggregate: Literal["count", "sum", "average", "done_ratio"] = "count"
    count: Literal["exact", "approximate"] = Field(
        default="exact", description="count only: approximate uses Jira's estimate (1 call)."
    )
    field: str | None = Field(
        default=None, description="sum/average: a field id (customfield_10016) or its name."
    )
    parent: str | None = Field(
        default=None, description="done_ratio: the epic or parent issue key, e.g. OKR-12."
    )

    @field_validator("jql")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return check_placeholders(value.strip())

    @field_validator("parent")
    @classmethod
    def _issue_key(cls, value: str | None) -> str | None:
        if value is not None and not _ISSUE_KEY.match(value):
            raise ValueError(f"parent must be an issue key such as OKR-12, got {value!r}")
        return value

    @model_validator(mode="after")
    def _fits_aggregate(self) -> Self:
        if self.aggregate in ("sum", "average") and not self.field:
            raise ValueError(f"aggregate: {self.aggregate} needs field (an id or a field name)")
        if self.aggregate not in ("sum", "average") and self.field:
            raise ValueError("field is only used by aggregate: sum or average")
        if self.parent and self.aggregate != "done_ratio":
            raise ValueError("parent is only used by aggregate: done_ratio (else write it in jql)")
        if self.count == "approximate" and self.aggregate != "count":
            raise ValueError("count: approximate only applies to aggregate: count")
        if not self.jql and not self.parent:
            raise ValueError("jql is required (done_ratio may use parent alone)")
        return self

    def base_jql(self) -> str:
        """The JQL before cycle substitution, with the parent restriction added."""
        clauses = [f'parent = "{self.parent}"'] if self.parent else []
        if self.jql:
            clauses.append(f"({self.jql})" if self.parent else self.jql)
        return " AND ".join(clauses)

    def is_count(self) -> bool:
        return self.aggregate == "count"

    def query_text(self) -> str:
        what: str = self.aggregate
        if self.aggregate == "count":
            what = f"count ({self.count})"
        elif self.field:
            what = f"{self.aggregate} of {self.field}"
        return f"{what} of JQL: {self.base_jql()}"


FieldValue = Literal["progress_percent", "value", "status"]


class JiraMirror(MirrorSpec):
    """Where a key result is shown on an issue: a field, one comment, and an issue property."""

    issue: str = Field(description="The issue key, e.g. OKR-12.")
    field: str | None = Field(default=None, description="A field id or name to set (optional).")
    field_value: FieldValue = Field(default="progress_percent", description="What goes into field.")
    comment: bool = Field(default=True, description="Keep one comment per key result current.")
    property: str | None = Field(
        default=None, description='Issue property key; default "okrsync.<key result id>".'
    )

    @field_validator("issue")
    @classmethod
    def _issue_key(cls, value: str) -> str:
        if not _ISSUE_KEY.match(value):
            raise ValueError(f"issue must be an issue key such as OKR-12, got {value!r}")
        return value

    @field_validator("property")
    @classmethod
    def _property_key(cls, value: str | None) -> str | None:
        if value is not None and not 0 < len(value) <= _PROPERTY_KEY_LIMIT:
            raise ValueError("property must be 1 to 255 characters")
        return value

    def property_key(self, key_result_id: str) -> str:
        return self.property or f"okrsync.{key_result_id}"[:_PROPERTY_KEY_LIMIT]
