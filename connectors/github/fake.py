"""The sandbox GitHub: the REST endpoints the ``github`` connector (and PyGithub) use.

Served under ``/`` (github.com style) and under ``/api/v3`` (GitHub Enterprise Server style);
every URL in an answer points back at the prefix the request came in on.

* ``GET /search/issues?q=…&per_page=&page=`` — ``{"total_count", "incomplete_results",
  "items"}``, ``Link`` pagination, first 1,000 results only. The query parser understands the
  qualifiers okrsync's users write: ``repo:``, ``is:issue|pr|open|closed``, ``type:issue|pr``,
  ``state:``, ``label:`` (``a,b`` = either; ``-label:`` excludes; quotes for spaces),
  ``milestone:``, ``created:`` and ``closed:`` with ``>= > <= < a..b`` and ``*``; other words
  match titles. Like GitHub since 2025 it rejects a query without ``is:issue``/``is:pr`` (422).
* ``GET /repos/{owner}/{repo}``, ``…/issues/{n}``, ``…/milestones?state=&per_page=&page=``,
  ``…/milestones/{n}`` (``open_issues``/``closed_issues`` count issues and PRs, as GitHub does).
* ``GET|POST …/issues/{n}/comments`` (list with ``Link`` pagination; create → 201 with
  ``Location``), ``GET|PATCH …/issues/comments/{id}``.
* ``GET /rate_limit`` (free, like GitHub's).
* Labels, for okrsync's backlinks: ``POST /repos/{o}/{r}/labels`` (201; 422 with code
  ``already_exists`` for a taken name), ``POST …/issues/{n}/labels`` ``{"labels": [...]}`` (200,
  the item's labels; an unknown name is created, as GitHub does; only a new label moves
  ``updated_at``), ``DELETE …/issues/{n}/labels/{name}`` (200 with the labels left, 404
  ``Label does not exist``).
* Search also understands ``updated:`` (dates or ISO date-times, ``>=`` …) and ``sort=updated|
  created`` with ``order=asc|desc``. Items carry ``assignees``, ``draft`` (PRs), a
  ``state_reason`` and ``merged_at`` only for merged PRs; :meth:`GitHubData.change` edits an
  item as a person would (moving ``updated_at``), so tests can change a state or move an item
  out of a query.

Every answer carries ``x-ratelimit-limit/-remaining/-used/-reset/-resource`` for its resource:
``core`` (5,000 an hour) or ``search`` (30 a minute); both limits and windows are settable, and
an exhausted window answers 403 (or ``limit_status``) with GitHub's primary-limit message.
Errors have GitHub's shape: ``{"message", "documentation_url", "status"}``, plus ``errors`` on
422. ``Authorization: Bearer <token>`` or ``token <token>``; anything else is 401
``Bad credentials``.

State that sinks change is kept (``comments``), with counts of comments created per issue
(``created_per_issue``) and per okrsync marker (:meth:`GitHubData.marked_comments`). Data is
generated from a seed, dates in the year before ``anchor`` (default today), so tests compute the
exact expected counts from ``app.state.data``.

Unverified detail (documented here, not relied on by the connector): the wording of the 422 for a
query without ``is:issue``/``is:pr`` and for an unreadable date.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

DEFAULT_TOKEN = "ghp_sandboxTokenForOkrsyncFake0001"  # noqa: S105 - the fake's own token
OWNER = "okrsync-demo"
REPOS = ("api", "web")
ITEMS_PER_REPO = 180
TRACKING_ISSUE = 1  # in okrsync-demo/api: the issue OKR comments go to; has many comments
TRACKING_COMMENTS = 130
LABELS = ("bug", "enhancement", "documentation", "security", "performance", "good first issue")
USERS = ("amara", "bo", "chen", "dario", "elif", "femi")
MILESTONES = ("v1.0", "v1.1", "2026-Q4 launch", "Backlog")
DOCS = "https://docs.github.com/rest"
SEARCH_DOCS = "https://docs.github.com/v3/search/"
PRIMARY_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-the-primary-rate-limits"
MAX_SEARCH_RESULTS = 1000
ENTERPRISE_PREFIX = "/api/v3"
_JSON = "application/json; charset=utf-8"


def _ts(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


@dataclass(frozen=True)
class Item:
    """An issue or a pull request (GitHub numbers both from one sequence per repository)."""

    repo: str
    number: int
    id: int
    title: str
    is_pr: bool
    state: str
    labels: tuple[str, ...]
    user: str
    created_at: datetime
    closed_at: datetime | None
    milestone: int | None
    comments: int = 0
    updated_at: datetime | None = None  # None: closed_at or created_at
    assignees: tuple[str, ...] = ()
    draft: bool = False  # pull requests only
    merged: bool = True  # a closed pull request: merged (or closed unmerged)
    state_reason: str | None = None  # a closed issue: None means "completed"

    def last_update(self) -> datetime:
        return self.updated_at or self.closed_at or self.created_at


@dataclass(frozen=True)
class Milestone:
    repo: str
    number: int
    id: int
    title: str
    state: str
    created_at: datetime
    due_on: datetime | None


@dataclass
class Comment:
    id: int
    repo: str
    issue: int
    body: str
    user: str
    created_at: datetime
    updated_at: datetime


@dataclass
class RateWindow:
    """One rate-limit resource's fixed window, as GitHub reports it."""

    resource: str
    limit: int
    seconds: float
    started: float = 0.0
    used: int = 0

    def reset_at(self) -> int:
        return math.ceil(self.started + self.seconds)

    def take(self, now: float) -> bool:
        """Count one call; ``False`` when the window is spent (the call is refused)."""
        if now >= self.reset_at() or self.started == 0.0:
            self.started, self.used = now, 0
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(max(0, self.limit - self.used)),
            "x-ratelimit-reset": str(self.reset_at()),
            "x-ratelimit-used": str(self.used),
            "x-ratelimit-resource": self.resource,
        }


class GitHubData:
    """The fake's records. The server runs in another thread than the test, hence the lock."""

    def __init__(self, *, seed: int = 2026, anchor: date | None = None) -> None:
        self.anchor = anchor or date.today()
        self.lock = threading.Lock()
        rng = random.Random(seed)  # noqa: S311 - sample data
        ids = itertools.count(1_000_001)
        end = datetime.combine(self.anchor, dtime(18, 0), tzinfo=UTC)
        self.repos: dict[str, int] = {
            f"{OWNER}/{name}": 500_000 + i for i, name in enumerate(REPOS)
        }
        self.items: dict[str, list[Item]] = {}
        self.milestones: dict[str, list[Milestone]] = {}
        for repo in self.repos:
            stones = [
                Milestone(
                    repo,
                    n,
                    next(ids),
                    title,
                    "closed" if title == "v1.0" else "open",
                    end - timedelta(days=360),
                    end + timedelta(days=30 * n),
                )
                for n, title in enumerate(MILESTONES, start=1)
            ]
            self.milestones[repo] = stones
            items = []
            for number in range(1, ITEMS_PER_REPO + 1):
                created = end - timedelta(days=rng.randrange(365), minutes=rng.randrange(1440))
                closed = None
                if rng.random() < 0.6:
                    closed = min(end, created + timedelta(days=rng.randrange(1, 90)))
                stone = rng.choice([*range(1, len(MILESTONES) + 1), None, None])
                items.append(
                    Item(
                        repo=repo,
                        number=number,
                        id=next(ids),
                        title=f"{rng.choice(('Fix', 'Add', 'Improve', 'Document'))} "
                        f"{rng.choice(('login', 'search', 'export', 'billing', 'sync'))} #{number}",
                        is_pr=number != TRACKING_ISSUE and rng.random() < 0.35,
                        state="closed" if closed else "open",
                        labels=tuple(sorted(set(rng.sample(LABELS, rng.randrange(0, 3))))),
                        user=rng.choice(USERS),
                        created_at=created,
                        closed_at=closed,
                        milestone=stone,
                    )
                )
            self.items[repo] = items
        self._comment_ids = itertools.count(2_000_000_001)
        self.comments: list[Comment] = []
        tracking = f"{OWNER}/{REPOS[0]}"
        for n in range(TRACKING_COMMENTS):
            when = end - timedelta(days=200) + timedelta(hours=n)
            self.comments.append(
                Comment(
                    next(self._comment_ids),
                    tracking,
                    TRACKING_ISSUE,
                    f"Status note {n + 1}: still on it.",
                    rng.choice(USERS),
                    when,
                    when,
                )
            )
        self.created_per_issue: Counter[tuple[str, int]] = Counter()
        self.edits: Counter[int] = Counter()
        # Each repository's labels (lower-cased name -> name, color, description), and the
        # label writes okrsync's backlinks make.
        self.repo_labels: dict[str, dict[str, tuple[str, str, str | None]]] = {
            repo: {name: (name, "a2eeef", None) for name in LABELS} for repo in self.repos
        }
        self.labels_created: Counter[str] = Counter()  # per repository
        self.labels_added: Counter[tuple[str, int, str]] = Counter()  # (repo, number, label)
        self.incomplete_results = False  # flip to make search answer incomplete_results: true
        # The next N comment writes are applied, then answered 502, as when a gateway loses
        # the answer: the case where retrying a POST blindly would duplicate the comment.
        self.lose_write_answers = 0
        self.viewer = "okrsync-bot"

    # --- reads ------------------------------------------------------------------------------------

    def item(self, repo: str, number: int) -> Item | None:
        items = self.items.get(repo, [])
        return items[number - 1] if 1 <= number <= len(items) else None

    def all_items(self) -> list[Item]:
        with self.lock:
            return [item for items in self.items.values() for item in items]

    def milestone(self, repo: str, number: int) -> Milestone | None:
        return next((m for m in self.milestones.get(repo, []) if m.number == number), None)

    def milestone_counts(self, repo: str, number: int) -> tuple[int, int]:
        """(open, closed) issues and PRs in the milestone."""
        items = [i for i in self.items.get(repo, []) if i.milestone == number]
        return sum(i.state == "open" for i in items), sum(i.state == "closed" for i in items)

    def comments_on(self, repo: str, issue: int) -> list[Comment]:
        with self.lock:
            return [c for c in self.comments if c.repo == repo and c.issue == issue]

    def marked_comments(self, key_result_id: str) -> list[Comment]:
        """Comments carrying okrsync's marker for ``key_result_id``."""
        mark = f"<!-- okrsync:kr={key_result_id} -->"
        with self.lock:
            return [c for c in self.comments if c.body.lstrip().startswith(mark)]

    # --- writes -----------------------------------------------------------------------------------

    def create_comment(self, repo: str, issue: int, body: str) -> Comment:
        now = datetime.now(UTC)
        with self.lock:
            comment = Comment(next(self._comment_ids), repo, issue, body, self.viewer, now, now)
            self.comments.append(comment)
            self.created_per_issue[(repo, issue)] += 1
            self._bump_comments(repo, issue, +1)
        return comment

    def edit_comment(self, comment_id: int, body: str) -> Comment | None:
        with self.lock:
            comment = next((c for c in self.comments if c.id == comment_id), None)
            if comment is None:
                return None
            if comment.body != body:
                self.edits[comment_id] += 1
            comment.body, comment.updated_at = body, datetime.now(UTC)
            return comment

    def delete_comment(self, comment_id: int) -> None:
        with self.lock:
            found = [c for c in self.comments if c.id == comment_id]
            self.comments = [c for c in self.comments if c.id != comment_id]
            for c in found:
                self._bump_comments(c.repo, c.issue, -1)

    def _bump_comments(self, repo: str, issue: int, delta: int) -> None:
        item = self.item(repo, issue)
        if item is not None:
            self.items[repo][issue - 1] = replace(item, comments=item.comments + delta)

    def add_milestone(self, repo: str, title: str, state: str = "open") -> Milestone:
        """One more (empty) milestone, numbered after the others."""
        with self.lock:
            stones = self.milestones[repo]
            number = max((m.number for m in stones), default=0) + 1
            start = datetime.combine(self.anchor, dtime(9, 0), tzinfo=UTC)
            stone = Milestone(repo, number, 3_000_000 + number, title, state, start, None)
            stones.append(stone)
            return stone

    def assign(self, repo: str, number: int, milestone: int) -> None:
        """Put an issue into a milestone."""
        with self.lock:
            item = self.item(repo, number)
            if item is not None:
                self.items[repo][number - 1] = replace(item, milestone=milestone)

    def change(self, repo: str, number: int, *, at: datetime | None = None, **changes: Any) -> Item:
        """Edit an issue or pull request as a person would (``state``, ``labels``,
        ``assignees``, ``draft``, ``title`` ...); ``updated_at`` moves to ``at`` (default now),
        closing sets ``closed_at``, reopening clears it."""
        moment = at or datetime.now(UTC)
        with self.lock:
            item = self.item(repo, number)
            if item is None:
                raise KeyError(f"{repo}#{number}")
            if changes.get("state") == "closed" and item.state != "closed":
                changes.setdefault("closed_at", moment)
            if changes.get("state") == "open":
                changes.setdefault("closed_at", None)
            changed = replace(item, **changes, updated_at=moment)
            self.items[repo][number - 1] = changed
            return changed

    def create_label(self, repo: str, name: str, color: str, description: str | None) -> bool:
        """Add a repository label; ``False`` when one of that name (any case) exists."""
        with self.lock:
            labels = self.repo_labels[repo]
            if name.lower() in labels:
                return False
            labels[name.lower()] = (name, color, description)
            self.labels_created[repo] += 1
            return True

    def label_issue(self, repo: str, number: int, names: list[str]) -> Item:
        """Add labels to an item (creating unknown ones, as GitHub does); only a label the
        item did not have yet changes it and moves ``updated_at``."""
        with self.lock:
            item = self.item(repo, number)
            assert item is not None
            labels = list(item.labels)
            for name in names:
                known = self.repo_labels[repo].setdefault(name.lower(), (name, "ededed", None))
                if known[0].lower() not in {label.lower() for label in labels}:
                    labels.append(known[0])
                    self.labels_added[(repo, number, known[0])] += 1
            if len(labels) != len(item.labels):
                item = replace(item, labels=tuple(labels), updated_at=datetime.now(UTC))
                self.items[repo][number - 1] = item
            return item

    def unlabel_issue(self, repo: str, number: int, name: str) -> Item | None:
        """Take a label off an item; ``None`` when it does not carry it."""
        with self.lock:
            item = self.item(repo, number)
            assert item is not None
            kept = tuple(label for label in item.labels if label.lower() != name.lower())
            if len(kept) == len(item.labels):
                return None
            item = replace(item, labels=kept, updated_at=datetime.now(UTC))
            self.items[repo][number - 1] = item
            return item

    def close_issue(self, repo: str, number: int, when: datetime | None = None) -> None:
        """Close one issue (the demo moves numbers with it)."""
        with self.lock:
            item = self.item(repo, number)
            if item is not None:
                closed = when or datetime.now(UTC)
                self.items[repo][number - 1] = replace(item, state="closed", closed_at=closed)


# --- search ------------------------------------------------------------------------------------


class SearchError(ValueError):
    """The query cannot be run; carries GitHub's 422 ``errors`` entry."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


_TOKEN = re.compile(r'(-?)([A-Za-z_-]+):((?:"[^"]*"|[^\s"])+)|"([^"]*)"|(\S+)')
_LIST_PART = re.compile(r'"([^"]*)"|([^,"]+)')
_DATE_RANGE = re.compile(r"^(>=|<=|>|<)?(.+)$")


def _parse_when(text: str) -> date | datetime | None:
    if text == "*":
        return None
    try:
        if "T" in text:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        return date.fromisoformat(text)
    except ValueError:
        raise SearchError(
            f"The date {text!r} is not in a format GitHub search understands."
        ) from None


def _compare(value: datetime, bound: date | datetime, op: str) -> bool:
    left: date | datetime = value if isinstance(bound, datetime) else value.date()
    if isinstance(bound, datetime) and bound.tzinfo is None:
        bound = bound.replace(tzinfo=UTC)
    if op == ">=":
        return left >= bound
    if op == ">":
        return left > bound
    if op == "<=":
        return left <= bound
    if op == "<":
        return left < bound
    return left == bound


def date_filter(text: str) -> Callable[[datetime | None], bool]:
    """``>=2026-10-01``, ``2026-10-01..2026-12-31``, ``*..2026-12-31``, ``2026-10-01``…"""
    if ".." in text:
        low_text, high_text = text.split("..", 1)
        low, high = _parse_when(low_text), _parse_when(high_text)
        return lambda v: (
            v is not None
            and (low is None or _compare(v, low, ">="))
            and (high is None or _compare(v, high, "<="))
        )
    match = _DATE_RANGE.match(text)
    assert match is not None
    op, when = match.group(1) or "=", _parse_when(match.group(2))
    if when is None:
        return lambda v: v is not None
    return lambda v: v is not None and _compare(v, when, op)


@dataclass
class SearchQuery:
    repos: list[str] = field(default_factory=list)
    kind: str | None = None  # "issue" | "pr"
    state: str | None = None
    label_sets: list[set[str]] = field(default_factory=list)  # each: any of
    excluded_labels: set[str] = field(default_factory=set)
    milestone: str | None = None
    created: list[Callable[[datetime | None], bool]] = field(default_factory=list)
    closed: list[Callable[[datetime | None], bool]] = field(default_factory=list)
    updated: list[Callable[[datetime | None], bool]] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    def matches(self, item: Item, milestone_title: str | None) -> bool:
        if self.repos and item.repo.lower() not in self.repos:
            return False
        if self.kind is not None and item.is_pr != (self.kind == "pr"):
            return False
        if self.state is not None and item.state != self.state:
            return False
        labels = {label.lower() for label in item.labels}
        if any(not (wanted & labels) for wanted in self.label_sets):
            return False
        if self.excluded_labels & labels:
            return False
        if self.milestone is not None and (milestone_title or "").lower() != self.milestone:
            return False
        if not all(check(item.created_at) for check in self.created):
            return False
        if not all(check(item.closed_at) for check in self.closed):
            return False
        if not all(check(item.last_update()) for check in self.updated):
            return False
        title = item.title.lower()
        return all(word in title for word in self.words)


def parse_search(q: str) -> SearchQuery:
    query = SearchQuery()
    for match in _TOKEN.finditer(q):
        negated, key, value, quoted, word = match.groups()
        if key is None:
            query.words.append((quoted if quoted is not None else word).lower())
            continue
        parts = [a or b for a, b in _LIST_PART.findall(value)]
        key, value = key.lower(), value.replace('"', "")
        lowered = value.lower()
        if key == "repo":
            query.repos.append(lowered)
        elif key in ("is", "type", "state") and lowered in ("issue", "issues"):
            query.kind = "issue"
        elif key in ("is", "type") and lowered in ("pr", "pull-request", "pullrequest"):
            query.kind = "pr"
        elif key in ("is", "state") and lowered in ("open", "closed"):
            query.state = lowered
        elif key == "label" and negated:
            query.excluded_labels.add(lowered)
        elif key == "label":
            query.label_sets.append({part.strip().lower() for part in parts})
        elif key == "milestone":
            query.milestone = lowered
        elif key == "created":
            query.created.append(date_filter(value))
        elif key == "closed":
            query.closed.append(date_filter(value))
        elif key == "updated":
            query.updated.append(date_filter(value))
        else:  # GitHub searches an unknown qualifier as text
            query.words.append(f"{key}:{lowered}")
    if query.kind is None:
        raise SearchError("Query must include 'is:issue' or 'is:pull-request'")
    return query


# --- JSON shapes -------------------------------------------------------------------------------


def _user(base: str, login: str) -> dict[str, Any]:
    uid = 9_000_000 + sum(map(ord, login))
    return {
        "login": login,
        "id": uid,
        "node_id": f"U_kgDO{uid}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "url": f"{base}/users/{login}",
        "html_url": f"https://github.com/{login}",
        "type": "Bot" if login.endswith("bot") else "User",
        "site_admin": False,
    }


def _label(
    base: str, repo: str, name: str, color: str | None = None, description: str | None = None
) -> dict[str, Any]:
    lid = 7_000_000 + sum(map(ord, name))
    return {
        "id": lid,
        "node_id": f"LA_kwDO{lid}",
        "url": f"{base}/repos/{repo}/labels/{quote(name, safe='')}",
        "name": name,
        "color": color or ("d73a4a" if name == "bug" else "a2eeef"),
        "default": name in ("bug", "enhancement", "documentation", "good first issue"),
        "description": description,
    }


def milestone_json(base: str, data: GitHubData, stone: Milestone) -> dict[str, Any]:
    open_issues, closed_issues = data.milestone_counts(stone.repo, stone.number)
    url = f"{base}/repos/{stone.repo}/milestones/{stone.number}"
    return {
        "url": url,
        "html_url": f"https://github.com/{stone.repo}/milestone/{stone.number}",
        "labels_url": f"{url}/labels",
        "id": stone.id,
        "node_id": f"MI_kwDO{stone.id}",
        "number": stone.number,
        "state": stone.state,
        "title": stone.title,
        "description": f"Everything planned for {stone.title}.",
        "creator": _user(base, USERS[0]),
        "open_issues": open_issues,
        "closed_issues": closed_issues,
        "created_at": _ts(stone.created_at),
        "updated_at": _ts(stone.created_at),
        "closed_at": _ts(stone.created_at + timedelta(days=90))
        if stone.state == "closed"
        else None,
        "due_on": _ts(stone.due_on),
    }


def issue_json(base: str, data: GitHubData, item: Item) -> dict[str, Any]:
    url = f"{base}/repos/{item.repo}/issues/{item.number}"
    stone = data.milestone(item.repo, item.milestone) if item.milestone else None
    body: dict[str, Any] = {
        "url": url,
        "repository_url": f"{base}/repos/{item.repo}",
        "labels_url": f"{url}/labels{{/name}}",
        "comments_url": f"{url}/comments",
        "events_url": f"{url}/events",
        "html_url": f"https://github.com/{item.repo}/{'pull' if item.is_pr else 'issues'}/"
        f"{item.number}",
        "id": item.id,
        "node_id": f"{'PR' if item.is_pr else 'I'}_kwDO{item.id}",
        "number": item.number,
        "title": item.title,
        "user": _user(base, item.user),
        "labels": [_label(base, item.repo, name) for name in item.labels],
        "state": item.state,
        "state_reason": (item.state_reason or "completed")
        if item.state == "closed" and not item.is_pr
        else None,
        "locked": False,
        "assignee": _user(base, item.assignees[0]) if item.assignees else None,
        "assignees": [_user(base, login) for login in item.assignees],
        "milestone": milestone_json(base, data, stone) if stone else None,
        "comments": item.comments,
        "created_at": _ts(item.created_at),
        "updated_at": _ts(item.last_update()),
        "closed_at": _ts(item.closed_at),
        "author_association": "MEMBER",
        "body": f"Details of {item.title}.",
    }
    if item.is_pr:
        pr_url = f"{base}/repos/{item.repo}/pulls/{item.number}"
        body["draft"] = item.draft
        body["pull_request"] = {
            "url": pr_url,
            "html_url": body["html_url"],
            "diff_url": f"{body['html_url']}.diff",
            "patch_url": f"{body['html_url']}.patch",
            "merged_at": _ts(item.closed_at) if item.merged else None,
        }
    return body


def comment_json(base: str, comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "node_id": f"IC_kwDO{comment.id}",
        "url": f"{base}/repos/{comment.repo}/issues/comments/{comment.id}",
        "html_url": f"https://github.com/{comment.repo}/issues/{comment.issue}"
        f"#issuecomment-{comment.id}",
        "body": comment.body,
        "user": _user(base, comment.user),
        "created_at": _ts(comment.created_at),
        "updated_at": _ts(comment.updated_at),
        "issue_url": f"{base}/repos/{comment.repo}/issues/{comment.issue}",
        "author_association": "MEMBER" if comment.user != "okrsync-bot" else "NONE",
        "performed_via_github_app": None,
    }


# --- HTTP --------------------------------------------------------------------------------------


class GitHubFake:
    """The routes, the rate windows and the checks shared by every route."""

    def __init__(
        self,
        data: GitHubData,
        *,
        token: str,
        core_limit: int,
        search_limit: int,
        search_window: float,
        limit_status: int,
    ) -> None:
        self.data = data
        self.token = token
        self.windows = {
            "core": RateWindow("core", core_limit, 3600.0),
            "search": RateWindow("search", search_limit, search_window),
        }
        self.limit_status = limit_status
        self.refused: Counter[str] = Counter()  # calls refused for a spent window, per resource
        self._lock = threading.Lock()

    # --- plumbing ---------------------------------------------------------------------------------

    @staticmethod
    def base(request: Request) -> str:
        """The API root the request came in on: ``http://host`` or ``http://host/api/v3``."""
        root = f"{request.url.scheme}://{request.url.netloc}"
        return root + ENTERPRISE_PREFIX if request.url.path.startswith(ENTERPRISE_PREFIX) else root

    def answer(
        self,
        body: Any,
        status: int = 200,
        *,
        resource: str = "core",
        headers: dict[str, str] | None = None,
    ) -> Response:
        with self._lock:
            rate = self.windows[resource].headers()
        all_headers = {
            **rate,
            "x-github-api-version-selected": "2022-11-28",
            "x-github-media-type": "github.v3; format=json",
            "x-github-request-id": uuid.uuid4().hex[:20].upper(),
            "x-oauth-scopes": "repo",
            **(headers or {}),
        }
        return Response(json.dumps(body), status_code=status, headers=all_headers, media_type=_JSON)

    def error(
        self,
        status: int,
        message: str,
        *,
        resource: str = "core",
        docs: str = DOCS,
        errors: list[dict[str, Any]] | None = None,
    ) -> Response:
        body: dict[str, Any] = {"message": message}
        if errors is not None:
            body["errors"] = errors
        body["documentation_url"] = docs
        body["status"] = str(status)
        return self.answer(body, status, resource=resource)

    def gate(self, request: Request, resource: str = "core") -> Response | None:
        """Authentication and the rate window; a response when the call is refused."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            return self.error(401, "Requires authentication", resource=resource)
        if scheme.lower() not in ("bearer", "token") or token.strip() != self.token:
            return self.error(401, "Bad credentials", resource=resource)
        with self._lock:
            allowed = self.windows[resource].take(time.time())
        if not allowed:
            self.refused[resource] += 1
            return self.error(
                self.limit_status,
                "API rate limit exceeded for user ID 4242. If you reach out to GitHub Support "
                "for help, please include the request ID "
                f"{uuid.uuid4().hex[:8].upper()}.",
                resource=resource,
                docs=PRIMARY_DOCS,
            )
        return None

    def not_found(self, resource: str = "core") -> Response:
        return self.error(404, "Not Found", resource=resource)

    @staticmethod
    def paging(request: Request, default: int = 30) -> tuple[int, int]:
        try:
            per_page = int(request.query_params.get("per_page", default))
            page = int(request.query_params.get("page", 1))
        except ValueError:
            per_page, page = default, 1
        return min(max(per_page, 1), 100), max(page, 1)

    def link_header(self, request: Request, page: int, last: int) -> dict[str, str]:
        """GitHub's ``Link`` header: next/last, and prev/first past page one."""
        if last <= 1:
            return {}
        url = str(request.url.replace(query=""))
        params = dict(request.query_params)

        def at(n: int) -> str:
            return f"{url.rstrip('?')}?{urlencode({**params, 'page': n})}"

        links = []
        if page < last:
            links += [f'<{at(page + 1)}>; rel="next"', f'<{at(last)}>; rel="last"']
        if page > 1:
            links = [f'<{at(page - 1)}>; rel="prev"', f'<{at(1)}>; rel="first"', *links]
        return {"link": ", ".join(links)} if links else {}

    def listing(self, request: Request, rows: list[Any], *, resource: str = "core") -> Response:
        per_page, page = self.paging(request)
        last = max(1, math.ceil(len(rows) / per_page))
        chunk = rows[(page - 1) * per_page : page * per_page]
        return self.answer(chunk, resource=resource, headers=self.link_header(request, page, last))

    # --- routes -----------------------------------------------------------------------------------

    async def search_issues(self, request: Request) -> Response:
        refused = self.gate(request, "search")
        if refused is not None:
            return refused
        q = request.query_params.get("q", "").strip()
        if not q:
            return self.error(
                422,
                "Validation Failed",
                resource="search",
                docs=SEARCH_DOCS,
                errors=[{"resource": "Search", "field": "q", "code": "missing"}],
            )
        try:
            query = parse_search(q)
            for repo in query.repos:
                if repo not in {r.lower() for r in self.data.repos}:
                    raise SearchError(
                        "The listed users and repositories cannot be searched either because the "
                        "resources do not exist or you do not have permission to view them."
                    )
        except SearchError as exc:
            return self.error(
                422,
                "Validation Failed",
                resource="search",
                docs=SEARCH_DOCS,
                errors=[
                    {"message": str(exc), "resource": "Search", "field": "q", "code": exc.code}
                ],
            )
        found = []
        for item in self.data.all_items():
            stone = self.data.milestone(item.repo, item.milestone) if item.milestone else None
            if query.matches(item, stone.title if stone else None):
                found.append(item)
        sort = request.query_params.get("sort")
        descending = request.query_params.get("order", "desc") != "asc"
        if sort == "updated":
            found.sort(key=lambda i: (i.last_update(), i.id), reverse=descending)
        elif sort == "created":
            found.sort(key=lambda i: (i.created_at, i.id), reverse=descending)
        else:  # best match: the fake has no relevance, so newest first
            found.sort(key=lambda i: i.created_at, reverse=True)
        per_page, page = self.paging(request)
        if (page - 1) * per_page >= MAX_SEARCH_RESULTS:
            return self.error(
                422,
                "Only the first 1000 search results are available",
                resource="search",
                docs=SEARCH_DOCS,
            )
        reachable = min(len(found), MAX_SEARCH_RESULTS)
        last = max(1, math.ceil(reachable / per_page))
        base = self.base(request)
        items = [
            {**issue_json(base, self.data, item), "score": 1.0}
            for item in found[(page - 1) * per_page : page * per_page]
        ]
        body = {
            "total_count": len(found),
            "incomplete_results": self.data.incomplete_results,
            "items": items,
        }
        return self.answer(body, resource="search", headers=self.link_header(request, page, last))

    def _repo(self, request: Request) -> str | None:
        wanted = f"{request.path_params['owner']}/{request.path_params['repo']}".lower()
        return next((r for r in self.data.repos if r.lower() == wanted), None)

    def _known_repo(self, request: Request) -> str | Response:
        """The repository a route names, or the gate's refusal, or a 404 when there is none."""
        refused = self.gate(request)
        if refused is not None:
            return refused
        repo = self._repo(request)
        return self.not_found() if repo is None else repo

    def _known_issue(self, request: Request) -> tuple[str, int] | Response:
        """The repository and issue number a route names, or the refusal or 404 instead."""
        repo = self._known_repo(request)
        if isinstance(repo, Response):
            return repo
        number = request.path_params["number"]
        if self.data.item(repo, number) is None:
            return self.not_found()
        return repo, number

    async def get_repo(self, request: Request) -> Response:
        repo = self._known_repo(request)
        if isinstance(repo, Response):
            return repo
        base = self.base(request)
        owner, name = repo.split("/")
        return self.answer(
            {
                "id": self.data.repos[repo],
                "node_id": f"R_kgDO{self.data.repos[repo]}",
                "name": name,
                "full_name": repo,
                "private": False,
                "owner": {**_user(base, owner), "type": "Organization"},
                "html_url": f"https://github.com/{repo}",
                "description": f"The {name} of the okrsync demo.",
                "fork": False,
                "url": f"{base}/repos/{repo}",
                "issues_url": f"{base}/repos/{repo}/issues{{/number}}",
                "milestones_url": f"{base}/repos/{repo}/milestones{{/number}}",
                "has_issues": True,
                "open_issues_count": sum(i.state == "open" for i in self.data.items[repo]),
                "default_branch": "main",
                "visibility": "public",
                "created_at": "2024-01-15T09:00:00Z",
                "updated_at": _ts(datetime.now(UTC)),
            }
        )

    async def get_issue(self, request: Request) -> Response:
        repo = self._known_repo(request)
        if isinstance(repo, Response):
            return repo
        item = self.data.item(repo, request.path_params["number"])
        if item is None:
            return self.not_found()
        return self.answer(issue_json(self.base(request), self.data, item))

    async def list_milestones(self, request: Request) -> Response:
        repo = self._known_repo(request)
        if isinstance(repo, Response):
            return repo
        state = request.query_params.get("state", "open")
        if state not in ("open", "closed", "all"):
            return self.error(
                422,
                "Validation Failed",
                errors=[{"resource": "Milestone", "field": "state", "code": "invalid"}],
            )
        base = self.base(request)
        rows = [
            milestone_json(base, self.data, m)
            for m in self.data.milestones[repo]
            if state == "all" or m.state == state
        ]
        return self.listing(request, rows)

    async def get_milestone(self, request: Request) -> Response:
        repo = self._known_repo(request)
        if isinstance(repo, Response):
            return repo
        stone = self.data.milestone(repo, request.path_params["number"])
        if stone is None:
            return self.not_found()
        return self.answer(milestone_json(self.base(request), self.data, stone))

    async def issue_comments(self, request: Request) -> Response:
        known = self._known_issue(request)
        if isinstance(known, Response):
            return known
        repo, number = known
        base = self.base(request)
        if request.method == "GET":
            rows = [comment_json(base, c) for c in self.data.comments_on(repo, number)]
            return self.listing(request, rows)
        body = await self._body_field(request)
        if isinstance(body, Response):
            return body
        comment = self.data.create_comment(repo, number, body)
        if self._answer_lost():
            return self.error(502, "Server Error")
        payload = comment_json(base, comment)
        return self.answer(payload, 201, headers={"location": payload["url"]})

    def _answer_lost(self) -> bool:
        with self.data.lock:
            if self.data.lose_write_answers > 0:
                self.data.lose_write_answers -= 1
                return True
        return False

    async def comment(self, request: Request) -> Response:
        repo = self._known_repo(request)
        if isinstance(repo, Response):
            return repo
        comment_id = request.path_params["comment_id"]
        with self.data.lock:
            found = next(
                (c for c in self.data.comments if c.id == comment_id and c.repo == repo), None
            )
        if found is None:
            return self.not_found()
        if request.method == "PATCH":
            body = await self._body_field(request)
            if isinstance(body, Response):
                return body
            edited = self.data.edit_comment(comment_id, body)
            if edited is None:
                return self.not_found()
            if self._answer_lost():
                return self.error(502, "Server Error")
            found = edited
        return self.answer(comment_json(self.base(request), found))

    async def _body_field(self, request: Request) -> str | Response:
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return self.error(400, "Problems parsing JSON")
        if not isinstance(payload, dict) or "body" not in payload:
            return self.error(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
        if not isinstance(payload["body"], str):
            return self.error(422, "Invalid request.\n\nFor 'properties/body', it is not a string.")
        if len(payload["body"]) > 65536:
            return self.error(
                422,
                "Validation Failed",
                errors=[
                    {
                        "resource": "IssueComment",
                        "field": "body",
                        "code": "custom",
                        "message": "body is too long (maximum is 65536 characters)",
                    }
                ],
            )
        return str(payload["body"])

    async def _json(self, request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError:
            return None

    async def create_label(self, request: Request) -> Response:
        """``POST /repos/{o}/{r}/labels``: 201, or 422 ``already_exists`` for a taken name."""
        repo = self._known_repo(request)
        if isinstance(repo, Response):
            return repo
        payload = await self._json(request)
        name = payload.get("name") if isinstance(payload, dict) else None
        if not isinstance(name, str) or not name.strip():
            return self.error(422, 'Invalid request.\n\n"name" wasn\'t supplied.')
        color = str(payload.get("color") or "ededed").lstrip("#").lower()
        description = payload.get("description")
        if (
            len(name) > 50
            or not re.fullmatch(r"[0-9a-f]{6}", color)
            or (
                description is not None
                and (not isinstance(description, str) or len(description) > 100)
            )
        ):
            return self.error(
                422,
                "Validation Failed",
                errors=[{"resource": "Label", "code": "invalid", "field": "name"}],
            )
        if not self.data.create_label(repo, name, color, description):
            return self.error(
                422,
                "Validation Failed",
                errors=[{"resource": "Label", "code": "already_exists", "field": "name"}],
            )
        label = _label(self.base(request), repo, name, color, description)
        return self.answer(label, 201, headers={"location": label["url"]})

    def _labels_of(self, request: Request, item: Item) -> list[dict[str, Any]]:
        known = self.data.repo_labels[item.repo]
        base = self.base(request)
        out = []
        for name in item.labels:
            _, color, description = known.get(name.lower(), (name, "a2eeef", None))
            out.append(_label(base, item.repo, name, color, description))
        return out

    async def issue_labels(self, request: Request) -> Response:
        """``POST /repos/{o}/{r}/issues/{n}/labels`` with ``{"labels": [...]}``: 200 and the
        item's labels (a name the repository lacks is created, as GitHub does)."""
        known = self._known_issue(request)
        if isinstance(known, Response):
            return known
        repo, number = known
        payload = await self._json(request)
        names = payload.get("labels") if isinstance(payload, dict) else payload
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            return self.error(
                422, "Invalid request.\n\nFor 'properties/labels', it is not an array of strings."
            )
        item = self.data.label_issue(repo, number, names)
        return self.answer(self._labels_of(request, item))

    async def issue_label(self, request: Request) -> Response:
        """``DELETE /repos/{o}/{r}/issues/{n}/labels/{name}``: 200 and the labels left, or 404
        ``Label does not exist``."""
        known = self._known_issue(request)
        if isinstance(known, Response):
            return known
        repo, number = known
        item = self.data.unlabel_issue(repo, number, request.path_params["name"])
        if item is None:
            return self.error(404, "Label does not exist")
        return self.answer(self._labels_of(request, item))

    async def rate_limit(self, request: Request) -> Response:
        with self._lock:
            resources = {
                name: {
                    "limit": w.limit,
                    "remaining": max(0, w.limit - w.used),
                    "reset": w.reset_at(),
                    "used": w.used,
                    "resource": name,
                }
                for name, w in self.windows.items()
            }
        return self.answer({"resources": resources, "rate": resources["core"]})

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/rate_limit", self.rate_limit),
            Route("/search/issues", self.search_issues),
            Route("/repos/{owner}/{repo}", self.get_repo),
            Route("/repos/{owner}/{repo}/milestones", self.list_milestones),
            Route("/repos/{owner}/{repo}/milestones/{number:int}", self.get_milestone),
            Route(
                "/repos/{owner}/{repo}/issues/comments/{comment_id:int}",
                self.comment,
                methods=["GET", "PATCH"],
            ),
            Route("/repos/{owner}/{repo}/issues/{number:int}", self.get_issue),
            Route("/repos/{owner}/{repo}/labels", self.create_label, methods=["POST"]),
            Route(
                "/repos/{owner}/{repo}/issues/{number:int}/labels",
                self.issue_labels,
                methods=["POST"],
            ),
            Route(
                "/repos/{owner}/{repo}/issues/{number:int}/labels/{name}",
                self.issue_label,
                methods=["DELETE"],
            ),
            Route(
                "/repos/{owner}/{repo}/issues/{number:int}/comments",
                self.issue_comments,
                methods=["GET", "POST"],
            ),
        ]


def github_app(
    *,
    token: str = DEFAULT_TOKEN,
    seed: int = 2026,
    anchor: date | None = None,
    core_limit: int = 5000,
    search_limit: int = 30,
    search_window: float = 60.0,
    limit_status: int = 403,
) -> Starlette:
    """The sandbox GitHub; ``app.state.data`` holds its records, ``app.state.fake`` its windows."""
    data = GitHubData(seed=seed, anchor=anchor)
    fake = GitHubFake(
        data,
        token=token,
        core_limit=core_limit,
        search_limit=search_limit,
        search_window=search_window,
        limit_status=limit_status,
    )
    routes = fake.routes()

    async def unrouted(request: Request, exc: Exception) -> Response:
        return fake.error(getattr(exc, "status_code", 404), "Not Found")

    app = Starlette(
        routes=[Mount(ENTERPRISE_PREFIX, routes=routes), *routes],
        exception_handlers={404: unrouted, 405: unrouted},
    )
    app.state.data = data
    app.state.fake = fake
    return app
