"""The fake Jira's issues: a few hundred across three projects, generated from a seed.

Tests compute expected numbers from :class:`JiraData` itself (``select(jql)``); the epic
``OKR-12`` ("Launch checkout v2", the demo's launch epic) is laid out by hand so a reader can
check its numbers: 8 children, 6 of them done (one of them "Won't Do"), one in progress, one to
do, story points 1+2+3+5+8+13+(none)+3 = 35.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.jira.fake.jql import parse

STORY_POINTS = "customfield_10016"
OKR_PROGRESS = "customfield_10050"  # a number field the mirror can fill
OKR_STATUS = "customfield_10051"  # a single-line text field

# name -> (status id, category key, category name, category id)
STATUSES: dict[str, tuple[str, str, str, int]] = {
    "To Do": ("10000", "new", "To Do", 2),
    "In Progress": ("3", "indeterminate", "In Progress", 4),
    "In Review": ("10001", "indeterminate", "In Progress", 4),
    "Done": ("10002", "done", "Done", 3),
    "Won't Do": ("10003", "done", "Done", 3),
}
ISSUE_TYPES = {"Epic": "10000", "Story": "10001", "Task": "10002", "Bug": "10003"}
PROJECTS = {"OKR": ("10000", 90), "WEB": ("10001", 120), "API": ("10002", 90)}
POINTS = (None, 1, 2, 3, 5, 8, 13)

FIELDS: list[dict[str, Any]] = [
    {
        "id": "summary",
        "key": "summary",
        "name": "Summary",
        "custom": False,
        "orderable": True,
        "navigable": True,
        "searchable": True,
        "clauseNames": ["summary"],
        "schema": {"type": "string", "system": "summary"},
    },
    {
        "id": "status",
        "key": "status",
        "name": "Status",
        "custom": False,
        "orderable": False,
        "navigable": True,
        "searchable": True,
        "clauseNames": ["status"],
        "schema": {"type": "status", "system": "status"},
    },
    {
        "id": STORY_POINTS,
        "key": STORY_POINTS,
        "name": "Story point estimate",
        "custom": True,
        "orderable": True,
        "navigable": True,
        "searchable": True,
        "clauseNames": ["cf[10016]", "Story point estimate"],
        "schema": {
            "type": "number",
            "custom": "com.pyxis.greenhopper.jira:jsw-story-points",
            "customId": 10016,
        },
    },
    {
        "id": OKR_PROGRESS,
        "key": OKR_PROGRESS,
        "name": "OKR progress",
        "custom": True,
        "orderable": True,
        "navigable": True,
        "searchable": True,
        "clauseNames": ["cf[10050]", "OKR progress"],
        "schema": {
            "type": "number",
            "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float",
            "customId": 10050,
        },
    },
    {
        "id": OKR_STATUS,
        "key": OKR_STATUS,
        "name": "OKR status",
        "custom": True,
        "orderable": True,
        "navigable": True,
        "searchable": True,
        "clauseNames": ["cf[10051]", "OKR status"],
        "schema": {
            "type": "string",
            "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textfield",
            "customId": 10051,
        },
    },
]


@dataclass
class Issue:
    id: str
    key: str
    project: str
    issuetype: str
    status: str
    summary: str
    created: date
    resolved: date | None
    parent: str | None
    fields: dict[str, Any] = field(default_factory=dict)  # custom field values
    properties: dict[str, Any] = field(default_factory=dict)
    updated: datetime | None = None  # None: when it was resolved or created (at 09:30 UTC)
    labels: list[str] = field(default_factory=list)
    assignee: str | None = None  # a display name; the account id is derived from it
    remote_links: dict[str, dict[str, Any]] = field(default_factory=dict)  # by globalId

    def updated_at(self) -> datetime:
        if self.updated is not None:
            return self.updated
        day = self.resolved or self.created
        return datetime(day.year, day.month, day.day, 9, 30, tzinfo=UTC)

    def facts(self) -> dict[str, Any]:
        """What the JQL subset filters on."""
        return {
            "project": self.project,
            "status": self.status,
            "statusCategory": STATUSES[self.status][2],
            "parent": self.parent,
            "issuetype": self.issuetype,
            "key": self.key,
            "created": self.created,
            "resolved": self.resolved,
            "updated": self.updated_at(),
        }


@dataclass
class Comment:
    id: str
    issue: str
    body: Any  # ADF (v3) or a string (v2)
    created: datetime
    updated: datetime


class JiraData:
    """All state of the fake, guarded by one lock (the fake serves from a thread)."""

    def __init__(self, *, seed: int = 12, anchor: date = date(2026, 11, 15)) -> None:
        self.lock = threading.RLock()
        self.issues: dict[str, Issue] = {}
        self.comments: dict[str, Comment] = {}
        self.comments_created: Counter[str] = Counter()  # per issue key
        self.comments_updated: Counter[str] = Counter()
        self.field_edits: Counter[str] = Counter()
        self.remote_links_created: Counter[str] = Counter()  # per issue key
        self.remote_links_updated: Counter[str] = Counter()
        self._next_comment = 10000
        self._next_remote_link = 10000
        self._generate(random.Random(seed), anchor)  # noqa: S311 - data, not secrets

    def _add(self, issue: Issue) -> None:
        self.issues[issue.key] = issue

    def _generate(self, rng: random.Random, anchor: date) -> None:
        next_id = 10001
        for project, (_, count) in PROJECTS.items():
            epics: list[str] = []
            for number in range(1, count + 1):
                key = f"{project}-{number}"
                if (project == "OKR" and number == 12) or number % 15 == 1:
                    issuetype = "Epic"
                else:
                    issuetype = rng.choice(["Story", "Story", "Task", "Bug"])
                created = anchor - timedelta(days=rng.randrange(0, 200))
                status = rng.choice(list(STATUSES))
                resolved = None
                if STATUSES[status][1] == "done":
                    resolved = min(anchor, created + timedelta(days=rng.randrange(1, 40)))
                parent = rng.choice(epics) if epics and issuetype != "Epic" else None
                if parent == f"{project}-12":
                    parent = None  # OKR-12's children are laid out by hand below
                points = rng.choice(POINTS) if issuetype != "Epic" else None
                issue = Issue(
                    id=str(next_id),
                    key=key,
                    project=project,
                    issuetype=issuetype,
                    status=status,
                    summary=f"{issuetype} {key}",
                    created=created,
                    resolved=resolved,
                    parent=parent,
                    fields={STORY_POINTS: points, OKR_PROGRESS: None, OKR_STATUS: None},
                )
                next_id += 1
                self._add(issue)
                if issuetype == "Epic" and key != "OKR-12":
                    epics.append(key)
        # OKR-12: the epic the docs and tests talk about.
        self.issues["OKR-12"].summary = "Launch checkout v2"
        children = [
            ("Done", 1, "Payment form validates cards inline"),
            ("Done", 2, "Saved addresses at checkout"),
            ("Done", 3, "Order summary shows delivery dates"),
            ("Done", 5, "One-click reorder"),
            ("Won't Do", 8, "Gift wrapping options"),
            ("Done", 13, "New checkout behind a feature flag"),
            ("In Progress", None, "Checkout load time under 1 s"),
            ("To Do", 3, "Roll the new checkout out to every market"),
        ]
        for seq, (status, points, title) in enumerate(children, start=1):
            key = f"OKR-{200 + seq}"
            created = date(2026, 10, 1) + timedelta(days=seq)
            done = STATUSES[status][1] == "done"
            self._add(
                Issue(
                    id=str(next_id),
                    key=key,
                    project="OKR",
                    issuetype="Story",
                    status=status,
                    summary=title,
                    created=created,
                    resolved=created + timedelta(days=7) if done else None,
                    parent="OKR-12",
                    fields={STORY_POINTS: points, OKR_PROGRESS: None, OKR_STATUS: None},
                    labels=["launch"],
                    assignee="Mia Krystof" if status == "In Progress" else None,
                )
            )
            next_id += 1

    # --- queries --------------------------------------------------------------------------------

    def select(self, jql: str) -> list[Issue]:
        """Issues matching ``jql`` in key order (raises JqlError like Jira's 400)."""
        predicate = parse(jql)
        with self.lock:
            found = [issue for issue in self.issues.values() if predicate(issue.facts())]
        return sorted(found, key=lambda i: (i.project, int(i.key.split("-")[1])))

    def find(self, id_or_key: str) -> Issue | None:
        with self.lock:
            issue = self.issues.get(id_or_key.upper())
            if issue is not None:
                return issue
            return next((i for i in self.issues.values() if i.id == id_or_key), None)

    def new_comment(self, issue: Issue, body: Any) -> Comment:
        with self.lock:
            now = datetime.now(UTC)
            comment = Comment(str(self._next_comment), issue.key, body, now, now)
            self._next_comment += 1
            self.comments[comment.id] = comment
            self.comments_created[issue.key] += 1
            return comment

    def change(self, key: str, *, at: datetime | None = None, **changes: Any) -> Issue:
        """Edit an issue as a person would in Jira (``status``, ``parent``, ``labels``,
        ``assignee``, ``summary`` ...): ``updated`` moves to ``at`` (default now) and a status
        in the done category sets the resolution date, any other clears it."""
        with self.lock:
            issue = self.issues[key]
            for name, value in changes.items():
                if not hasattr(issue, name):
                    raise AttributeError(f"an issue has no {name!r}")
                setattr(issue, name, value)
            moment = at or datetime.now(UTC)
            if "status" in changes:
                done = STATUSES[issue.status][1] == "done"
                issue.resolved = moment.date() if done else None
            issue.updated = moment
            return issue

    def put_remote_link(
        self, issue: Issue, global_id: str | None, body: dict[str, Any]
    ) -> tuple[int, bool]:
        """Jira's upsert: a link with the same ``globalId`` is replaced, else one is added.
        Returns the link's id and whether it was created."""
        with self.lock:
            existing = issue.remote_links.get(global_id) if global_id else None
            if existing is not None:
                link_id = int(existing["id"])
                self.remote_links_updated[issue.key] += 1
                created = False
            else:
                link_id = self._next_remote_link
                self._next_remote_link += 1
                self.remote_links_created[issue.key] += 1
                created = True
            name = global_id or f"id={link_id}"
            issue.remote_links[name] = {**body, "id": link_id, "globalId": global_id}
            return link_id, created

    def comments_of(self, issue: Issue) -> list[Comment]:
        with self.lock:
            return [c for c in self.comments.values() if c.issue == issue.key]
