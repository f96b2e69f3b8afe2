"""The YAML the ``github`` connector reads: its connection, its metrics and its mirror.

Everything that can be checked without calling GitHub is checked here, so ``okrsync validate``
catches it: a repository that is not ``owner/name``, a metric that is neither a search nor a
milestone, a search that says neither ``is:issue`` nor ``is:pr`` (GitHub's issue search rejects
those with 422 since 2025), an unknown ``{cycle…}`` placeholder.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from okrsync.sdk.connector import ConnectionConfig, MirrorSpec, QuerySpec
from okrsync.sdk.models import CycleWindow

DEFAULT_BASE_URL = "https://api.github.com"
PLACEHOLDERS = ("{cycle_start}", "{cycle_end}", "{cycle_id}")
_CYCLE_TOKEN = re.compile(r"\{cycle[._][A-Za-z_]*\}")
_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
# is:issue / is:pr / type:… as GitHub spells them, not preceded by a "-" (a negation).
_KIND_QUALIFIER = re.compile(
    r"(?:^|\s)(?:is|type):(issue|issues|pr|pull-request|pullrequest)\b", re.IGNORECASE
)


def _valid_repo(value: str) -> str:
    text = value.strip()
    if not _REPO.fullmatch(text):
        raise ValueError(f"repo must be 'owner/name' (e.g. 'acme/api'), got {value!r}")
    return text


def _check_placeholders(text: str) -> None:
    for token in _CYCLE_TOKEN.findall(text):
        if token not in PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {token}: use {', '.join(PLACEHOLDERS)}")


def fill_placeholders(text: str, cycle: CycleWindow) -> str:
    """``text`` with the cycle's dates in GitHub's ``YYYY-MM-DD`` form, token by token."""
    values = {
        "{cycle_start}": cycle.start.isoformat(),
        "{cycle_end}": cycle.end.isoformat(),
        "{cycle_id}": cycle.id,
    }
    for token, value in values.items():
        text = text.replace(token, value)
    return text


class GitHubConnection(ConnectionConfig):
    """A token on github.com or on a GitHub Enterprise Server (``https://HOST/api/v3``)."""

    type: Literal["github"] = "github"
    token: SecretStr = Field(description="A fine-grained or classic personal access token.")
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise.",
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds one request may take.")
    max_retries: int = Field(default=4, ge=0, le=10, description="Retries of a transient failure.")
    max_concurrency: int = Field(default=4, ge=1, le=32)
    search_requests_per_minute: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Pace of search calls, which have their own, lower limit (30/min).",
    )
    search_burst: int = Field(
        default=10, ge=1, le=100, description="Search calls that may go back to back."
    )
    core_requests_per_second: float | None = Field(
        default=None, gt=0, description="Pace of all other calls; none by default."
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(
                "base_url must be an http(s) URL such as https://api.github.com or "
                f"https://github.example.com/api/v3, got {value!r}"
            )
        return value.rstrip("/")


class GitHubQuery(QuerySpec):
    """One number from GitHub: a search count, or a milestone's completion.

    Exactly one of ``search`` and ``milestone`` is given.
    """

    search: str | None = Field(
        default=None,
        description="An issue/PR search query, e.g. 'is:issue is:closed label:bug "
        "closed:{cycle_start}..{cycle_end}'.",
    )
    repo: str | None = Field(
        default=None, description="owner/name: required for a milestone, added to a search."
    )
    kind: Literal["issue", "pr"] | None = Field(
        default=None, description="Adds is:issue or is:pr to the search."
    )
    incomplete_results: Literal["error", "warn"] = Field(
        default="error",
        description="What a search answered with incomplete_results: true yields.",
    )
    milestone: int | str | None = Field(
        default=None, description="A milestone's number, or its exact title."
    )
    measure: Literal["percent", "ratio", "closed", "open", "total"] = Field(
        default="percent",
        description="For a milestone: closed/total as a percentage or ratio, or a count.",
    )

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str | None) -> str | None:
        return None if value is None else _valid_repo(value)

    @model_validator(mode="after")
    def _one_kind_of_question(self) -> GitHubQuery:
        if (self.search is None) == (self.milestone is None):
            raise ValueError("give exactly one of 'search' (a count) and 'milestone'")
        if self.search is not None:
            if not self.search.strip():
                raise ValueError("search is empty")
            _check_placeholders(self.search)
            if self.kind is None and not _KIND_QUALIFIER.search(self.search):
                raise ValueError(
                    "the search must say is:issue or is:pr (GitHub rejects issue searches "
                    "without one), or set kind: issue|pr"
                )
            if self.measure != "percent":
                raise ValueError("measure applies to milestones only")
        else:
            if self.repo is None:
                raise ValueError("a milestone needs repo: owner/name")
            if self.kind is not None:
                raise ValueError("kind applies to searches only")
            if isinstance(self.milestone, int) and self.milestone < 1:
                raise ValueError("a milestone number is 1 or more")
            if isinstance(self.milestone, str):
                if not self.milestone.strip():
                    raise ValueError("the milestone title is empty")
                _check_placeholders(self.milestone)
        return self

    def search_text(self, cycle: CycleWindow | None = None) -> str:
        """The ``q`` sent to GitHub (placeholders filled when a cycle is given)."""
        assert self.search is not None
        parts = [self.search.strip()]
        if self.kind is not None and not _KIND_QUALIFIER.search(self.search):
            parts.append(f"is:{self.kind}")
        if self.repo is not None and f"repo:{self.repo}".lower() not in self.search.lower():
            parts.append(f"repo:{self.repo}")
        text = " ".join(parts)
        return fill_placeholders(text, cycle) if cycle is not None else text

    def is_count(self) -> bool:
        return self.search is not None or self.measure in ("closed", "open", "total")

    def query_text(self) -> str:
        if self.search is not None:
            return f"GET /search/issues?q={self.search_text()} → total_count"
        return f"milestone {self.milestone!r} of {self.repo} → {self.measure}"


class GitHubCommentMirror(MirrorSpec):
    """One comment per key result on an issue (or pull request), edited in place."""

    repo: str = Field(description="owner/name of the repository holding the issue.")
    issue: int = Field(ge=1, description="The issue or pull-request number.")

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        return _valid_repo(value)
