"""A sandbox Linear: ``POST /graphql`` answered by graphql-core over Linear's real schema.

Every request is parsed and validated against Linear's published SDL (``contracts/schema.graphql``,
package data beside this module), then *executed* against that same schema with hand-written
resolvers over in-memory data — graphql-core's default resolver calls a root method or reads a
dict key per field. Executing on the full schema rather than a subset means
the answer's shape (non-null fields, enum values, ``@include``, variable coercion) is exactly
what the schema promises, and a field the fake does not implement resolves to an error rather
than to fiction. The schema (1.2 MB) is built once per process and cached.

Implemented: ``teams``, ``projects``, ``issueLabels``, ``issues`` (cursor pagination over
``IssueFilter``: comparators ``eq/neq/in/nin/gt/gte/lt/lte/null/eqIgnoreCase``, ``and``/``or``,
relations ``team``/``project``/``state``, the label collection with ``some``/``every``),
``project(id).projectUpdates``, ``projectUpdate(id)``, ``projectUpdateCreate`` and
``projectUpdateUpdate``; for work tracking ``issue(id)`` (an id or an identifier such as
``ENG-7``), issue fields ``url``, ``updatedAt``, ``completedAt``, ``canceledAt``, ``assignee``
and the ``labels``/``attachments`` connections, and ``attachmentCreate`` (an upsert: the same
``url`` on the same issue updates the attachment) and ``attachmentDelete``.
:meth:`LinearData.change` edits an issue as a person would (moving ``updatedAt``), so tests can
change a state or move an issue out of a filter.

Wire behaviour copied from Linear: a personal API key is sent bare (``Bearer <key>`` is refused
with Linear's own hint), OAuth tokens as ``Bearer``; errors are ``{"errors": [{message,
extensions: {code, type, userPresentableMessage}}]}``; authentication and rate-limit errors come
with HTTP 400 (RATELIMITED carries ``statusCode: 429`` in its extensions, as observed in real
traffic); an unknown entity is HTTP 200 with ``data: null``. Every answer carries
``X-RateLimit-Requests-*``, ``X-RateLimit-Complexity-*`` (resets in epoch milliseconds) and
``X-Complexity``. Unverified guesses, kept conservative: ``first`` above 250 is refused with
INVALID_INPUT; ``projectUpdates`` lists newest first.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    build_schema,
    execute_sync,
    parse,
    validate,
)
from graphql.language import DocumentNode, IntValueNode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.linear.webhooks import SIGNATURE_HEADER, linear_signature

# Linear's SDL ships with the package (its source and licence: contracts/SOURCE.md beside it)
SCHEMA_PATH = Path(__file__).resolve().parent / "contracts" / "schema.graphql"
API_KEY = "lin_api_sandboxKey0123456789abcdefghijklmnopqrstu"
MAX_FIRST = 250
DEFAULT_FIRST = 50
ANCHOR = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)  # the fake's "now" for its data


@cache
def load_schema(path: Path = SCHEMA_PATH) -> GraphQLSchema:
    """Linear's schema, built once per process (about a second for 1.2 MB of SDL)."""
    return build_schema(path.read_text(encoding="utf-8"))


def linear_error(message: str, code: str, kind: str, user: str | None = None) -> GraphQLError:
    extensions: dict[str, Any] = {"code": code, "type": kind, "userError": True}
    extensions["userPresentableMessage"] = user or message
    return GraphQLError(message, extensions=extensions)


def not_found(entity: str) -> GraphQLError:
    return linear_error(
        f"Entity not found: {entity}",
        "INVALID_INPUT",
        "invalid input",
        f"Could not find referenced {entity}.",
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the workspace ------------------------------------------------------------------------------

STATE_NAMES: tuple[tuple[str, str], ...] = (
    ("Triage", "triage"),
    ("Backlog", "backlog"),
    ("Todo", "unstarted"),
    ("In Progress", "started"),
    ("In Review", "started"),
    ("Done", "completed"),
    ("Canceled", "canceled"),
    ("Duplicate", "canceled"),
)
TEAMS = (("ENG", "Engineering"), ("DES", "Design"), ("OPS", "Operations"))
PROJECTS = ("Checkout revamp", "Mobile app v2", "Reliability")
LABELS = ("Bug", "Feature", "Improvement", "Tech debt")
ESTIMATES = (None, 0, 1, 2, 3, 5, 8)


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class LinearData:
    """The fake's workspace; sinks change it, tests read it."""

    teams: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    projects: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)  # project updates, oldest first
    created_per_project: Counter[str] = field(default_factory=Counter)
    edits: Counter[str] = field(default_factory=Counter)
    attachments: list[dict[str, Any]] = field(default_factory=list)  # on issues, oldest first
    attachments_created: Counter[str] = field(default_factory=Counter)  # per issue identifier
    attachments_updated: Counter[str] = field(default_factory=Counter)
    lock: threading.RLock = field(default_factory=threading.RLock)
    rng: random.Random = field(default_factory=lambda: random.Random(7))  # noqa: S311 - fake data

    @classmethod
    def seeded(cls, issues: int = 200, seed: int = 7) -> LinearData:
        data = cls(rng=random.Random(seed))  # noqa: S311 - fake data
        rng = data.rng
        for key, name in TEAMS:
            team = {"id": _id(rng), "key": key, "name": name}
            data.teams.append(team)
            for state_name, kind in STATE_NAMES:
                data.states.append({"id": _id(rng), "name": state_name, "type": kind, "team": team})
        data.labels = [{"id": _id(rng), "name": name} for name in LABELS]
        for name in PROJECTS:
            slug = name.lower().replace(" ", "-")
            project_id = _id(rng)
            data.projects.append(
                {
                    "id": project_id,
                    "name": name,
                    "url": f"https://linear.app/okrsync-demo/project/{slug}-{project_id[:12]}",
                }
            )
        start = datetime(2026, 7, 1, tzinfo=UTC)
        for number in range(1, issues + 1):
            team = data.teams[rng.randrange(len(data.teams))]
            states = [s for s in data.states if s["team"] is team]
            state = states[rng.randrange(len(states))]
            created = start + timedelta(minutes=rng.randrange(0, 170 * 24 * 60))
            completed = None
            if state["type"] == "completed":
                done = created + timedelta(hours=rng.randrange(2, 30 * 24))
                completed = _iso(min(done, ANCHOR))
            chosen = [label for label in data.labels if rng.random() < 0.3]
            project_index = rng.randrange(len(PROJECTS) + 1)
            project = data.projects[project_index] if project_index < len(PROJECTS) else None
            identifier = f"{team['key']}-{number}"
            canceled = None
            if state["type"] == "canceled":
                canceled = _iso(min(created + timedelta(days=3), ANCHOR))
            data.issues.append(
                {
                    "id": _id(rng),
                    "identifier": identifier,
                    "title": f"Issue {number}",
                    "estimate": ESTIMATES[rng.randrange(len(ESTIMATES))],
                    "createdAt": _iso(created),
                    "completedAt": completed,
                    "canceledAt": canceled,
                    "updatedAt": completed or canceled or _iso(created),
                    "archivedAt": _iso(ANCHOR) if rng.random() < 0.03 else None,
                    "url": f"https://linear.app/okrsync-demo/issue/{identifier.lower()}",
                    "assignee": None,
                    "team": team,
                    "state": state,
                    "project": project,
                    "labels": chosen,
                }
            )
        return data

    # -- helpers for tests and resolvers

    def team(self, key: str) -> dict[str, Any]:
        return next(t for t in self.teams if t["key"] == key)

    def project_named(self, name: str) -> dict[str, Any]:
        return next(p for p in self.projects if p["name"] == name)

    def issue(self, id_or_identifier: str) -> dict[str, Any] | None:
        """An issue by its id or its identifier (``ENG-7``), as Linear's ``issue(id:)`` finds it."""
        wanted = id_or_identifier.upper()
        return next(
            (i for i in self.issues if i["id"] == id_or_identifier or i["identifier"] == wanted),
            None,
        )

    def change(self, identifier: str, *, at: datetime | None = None, **changes: Any) -> None:
        """Edit an issue as a person would: ``state`` (a state name of its team), ``labels``
        (names), ``team`` (a key), ``assignee`` (a name) or any other field; ``updatedAt``
        moves to ``at`` (default now), a completed or canceled state sets its time."""
        moment = _iso(at or datetime.now(UTC))
        with self.lock:
            issue = self.issue(identifier)
            if issue is None:
                raise KeyError(identifier)
            for name, value in changes.items():
                if name == "team":
                    issue["team"] = self.team(value)
                    value = None
                elif name == "state":
                    issue["state"] = next(
                        s for s in self.states if s["team"] is issue["team"] and s["name"] == value
                    )
                    kind = issue["state"]["type"]
                    issue["completedAt"] = moment if kind == "completed" else None
                    issue["canceledAt"] = moment if kind == "canceled" else None
                elif name == "labels":
                    issue["labels"] = [label for label in self.labels if label["name"] in value]
                elif name == "assignee":
                    issue["assignee"] = (
                        None
                        if value is None
                        else {"id": f"user-{value.lower()}", "name": value, "displayName": value}
                    )
                else:
                    issue[name] = value
            issue["updatedAt"] = moment

    def put_attachment(self, issue: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
        """Linear's upsert: the attachment with the same ``url`` on the issue is updated,
        else one is created."""
        now = _iso(datetime.now(UTC))
        with self.lock:
            existing = next(
                (
                    a
                    for a in self.attachments
                    if a["issue"]["id"] == issue["id"] and a["url"] == fields["url"]
                ),
                None,
            )
            if existing is not None:
                for name in ("title", "subtitle", "metadata"):
                    if fields.get(name) is not None:
                        existing[name] = fields[name]
                existing["updatedAt"] = now
                self.attachments_updated[issue["identifier"]] += 1
                return existing
            attachment = {
                "id": _id(self.rng),
                "url": fields["url"],
                "title": fields["title"],
                "subtitle": fields.get("subtitle"),
                "metadata": fields.get("metadata") or {},
                "groupBySource": bool(fields.get("groupBySource")),
                "createdAt": now,
                "updatedAt": now,
                "archivedAt": None,
                "issue": issue,
            }
            self.attachments.append(attachment)
            self.attachments_created[issue["identifier"]] += 1
            return attachment

    def attachments_on(self, identifier: str) -> list[dict[str, Any]]:
        with self.lock:
            return [a for a in self.attachments if a["issue"]["identifier"] == identifier]

    def updates_on(self, project_id: str) -> list[dict[str, Any]]:
        return [u for u in self.updates if u["project"]["id"] == project_id]

    def add_update(self, project_id: str, body: str, health: str = "onTrack") -> dict[str, Any]:
        """A project update posted by someone (or, through the mutation, by the connector)."""
        project = next((p for p in self.projects if p["id"] == project_id), None)
        if project is None:
            raise not_found("Project")
        now = _iso(datetime.now(UTC))
        update_id = _id(self.rng)
        update = {
            "id": update_id,
            "body": body,
            "health": health,
            "url": f"{project['url']}/updates#project-update-{update_id[:8]}",
            "createdAt": now,
            "updatedAt": now,
            "editedAt": None,
            "archivedAt": None,
            "project": project,
            "user": {"id": "user-1", "name": "Sandbox User", "email": "sandbox@example.com"},
        }
        self.updates.append(update)
        return update

    def add_people_updates(self, project_id: str, count: int) -> None:
        for index in range(count):
            self.add_update(project_id, f"Weekly update {index + 1}: shipping as planned.")


# --- filtering ----------------------------------------------------------------------------------

_DURATION = re.compile(r"^(-)?P(\d+)([DW])$")


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    match = _DURATION.fullmatch(value)
    if match:
        days = int(match.group(2)) * (7 if match.group(3) == "W" else 1)
        delta = timedelta(days=days)
        return datetime.now(UTC) - delta if match.group(1) else datetime.now(UTC) + delta
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _compare(value: Any, operator: str, operand: Any) -> bool:
    if operator == "null":
        return (value is None) is bool(operand)
    if value is None:
        return operator in ("neq", "nin")
    left, right = value, operand
    if operator in ("gt", "gte", "lt", "lte") or (
        isinstance(value, str) and _moment(value) and _moment(operand)
    ):
        left_moment, right_moment = _moment(value), _moment(operand)
        if left_moment is not None and right_moment is not None:
            left, right = left_moment, right_moment
    match operator:
        case "eq":
            return bool(left == right)
        case "neq":
            return bool(left != right)
        case "in":
            return value in (operand or [])
        case "nin":
            return value not in (operand or [])
        case "eqIgnoreCase":
            return str(value).lower() == str(operand).lower()
        case "gt":
            return bool(left > right)
        case "gte":
            return bool(left >= right)
        case "lt":
            return bool(left < right)
        case "lte":
            return bool(left <= right)
    raise linear_error(
        f"Comparator {operator} is not supported by the sandbox", "INVALID_INPUT", "invalid input"
    )


def matches(entity: Mapping[str, Any], filter_: Mapping[str, Any] | None) -> bool:
    """Whether ``entity`` passes a Linear filter object (``IssueFilter``, ``TeamFilter``…)."""
    for key, condition in (filter_ or {}).items():
        if condition is None:
            continue
        if key == "and":
            if not all(matches(entity, part) for part in condition):
                return False
        elif key == "or":
            if not any(matches(entity, part) for part in condition):
                return False
        elif not _matches_value(entity.get(key), condition):
            return False
    return True


def _matches_value(value: Any, condition: Mapping[str, Any]) -> bool:
    if isinstance(value, list):  # a collection filter, e.g. labels
        rest = {k: v for k, v in condition.items() if k not in ("some", "every", "null")}
        if "null" in condition and (not value) is not bool(condition["null"]):
            return False
        if condition.get("some") is not None and not any(
            matches(item, condition["some"]) for item in value
        ):
            return False
        if condition.get("every") is not None and not all(
            matches(item, condition["every"]) for item in value
        ):
            return False
        return not rest or any(matches(item, rest) for item in value)
    if isinstance(value, Mapping):  # a relation
        if "null" in condition and condition["null"] is True:
            return False
        return matches(value, {k: v for k, v in condition.items() if k != "null"})
    if value is None and any(isinstance(v, Mapping) for v in condition.values()):
        return False  # a relation filter on an absent relation
    return all(_compare(value, op, operand) for op, operand in condition.items())


def _page(
    items: Sequence[dict[str, Any]],
    first: int | None,
    after: str | None,
    node: Callable[[dict[str, Any]], dict[str, Any]] = dict,
) -> dict[str, Any]:
    size = DEFAULT_FIRST if first is None else first
    if not 0 < size <= MAX_FIRST:
        raise linear_error(
            f"first must be between 1 and {MAX_FIRST}", "INVALID_INPUT", "invalid input"
        )
    start = 0
    if after is not None:
        index = next((i for i, item in enumerate(items) if item["id"] == after), None)
        if index is None:
            raise linear_error("Invalid cursor", "INVALID_INPUT", "invalid input")
        start = index + 1
    chunk = list(items[start : start + size])
    return {
        "nodes": [node(item) for item in chunk],
        "pageInfo": {
            "hasNextPage": start + size < len(items),
            "hasPreviousPage": start > 0,
            "startCursor": chunk[0]["id"] if chunk else None,
            "endCursor": chunk[-1]["id"] if chunk else None,
        },
    }


# --- resolvers ----------------------------------------------------------------------------------


class Root:
    """Query and mutation root: graphql-core calls a method per root field it is asked for."""

    def __init__(self, data: LinearData) -> None:
        self.data = data

    def teams(self, info: Any, **args: Any) -> dict[str, Any]:
        found = [t for t in self.data.teams if matches(t, args.get("filter"))]
        return _page(found, args.get("first"), args.get("after"))

    def projects(self, info: Any, **args: Any) -> dict[str, Any]:
        found = [p for p in self.data.projects if matches(p, args.get("filter"))]
        return _page(found, args.get("first"), args.get("after"), self._project)

    def issueLabels(self, info: Any, **args: Any) -> dict[str, Any]:
        found = [label for label in self.data.labels if matches(label, args.get("filter"))]
        return _page(found, args.get("first"), args.get("after"))

    def issues(self, info: Any, **args: Any) -> dict[str, Any]:
        archived = bool(args.get("includeArchived"))
        found = [
            issue
            for issue in self.data.issues
            if (archived or issue["archivedAt"] is None) and matches(issue, args.get("filter"))
        ]
        return _page(found, args.get("first"), args.get("after"), self._issue)

    def issue(self, info: Any, id: str) -> dict[str, Any]:
        found = self.data.issue(id)
        if found is None:
            raise not_found("Issue")
        return self._issue(found)

    def _issue(self, issue: dict[str, Any]) -> dict[str, Any]:
        """An issue as the schema shows it: ``labels`` and ``attachments`` are connections."""

        def labels(info: Any, **args: Any) -> dict[str, Any]:
            found = [label for label in issue["labels"] if matches(label, args.get("filter"))]
            return _page(found, args.get("first"), args.get("after"))

        def attachments(info: Any, **args: Any) -> dict[str, Any]:
            found = [
                self._attachment(a)
                for a in self.data.attachments_on(issue["identifier"])
                if matches(a, args.get("filter"))
            ]
            return _page(found, args.get("first"), args.get("after"))

        return {**issue, "labels": labels, "attachments": attachments}

    def _attachment(self, attachment: dict[str, Any]) -> dict[str, Any]:
        return {**attachment, "issue": self._issue(attachment["issue"])}

    def attachmentCreate(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        issue = self.data.issue(input["issueId"])
        if issue is None:
            raise not_found("Issue")
        attachment = self.data.put_attachment(issue, input)
        return {
            "success": True,
            "lastSyncId": float(len(self.data.attachments)),
            "attachment": self._attachment(attachment),
        }

    def attachmentDelete(self, info: Any, id: str) -> dict[str, Any]:
        with self.data.lock:
            found = next((a for a in self.data.attachments if a["id"] == id), None)
            if found is None:
                raise not_found("Attachment")
            self.data.attachments.remove(found)
        return {"success": True, "entityId": id, "lastSyncId": float(len(self.data.attachments))}

    def project(self, info: Any, id: str) -> dict[str, Any]:
        for project in self.data.projects:
            if project["id"] == id:
                return self._project(project)
        raise not_found("Project")

    def _project(self, project: dict[str, Any]) -> dict[str, Any]:
        def project_updates(info: Any, **args: Any) -> dict[str, Any]:
            mine = [
                u
                for u in reversed(self.data.updates_on(project["id"]))
                if args.get("includeArchived") or u["archivedAt"] is None
            ]
            return _page(mine, args.get("first"), args.get("after"))

        return {**project, "projectUpdates": project_updates}

    def projectUpdate(self, info: Any, id: str, **_: Any) -> dict[str, Any]:
        for update in self.data.updates:
            if update["id"] == id:
                return update
        raise not_found("ProjectUpdate")

    def projectUpdateCreate(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        with self.data.lock:
            update = self.data.add_update(
                input["projectId"], input.get("body") or "", input.get("health") or "onTrack"
            )
            self.data.created_per_project[input["projectId"]] += 1
        return {
            "success": True,
            "lastSyncId": float(len(self.data.updates)),
            "projectUpdate": update,
        }

    def projectUpdateUpdate(
        self,
        info: Any,
        id: str,
        input: dict[str, Any],
    ) -> dict[str, Any]:
        with self.data.lock:
            update = self.projectUpdate(info, id)
            if input.get("body") is not None:
                update["body"] = input["body"]
            if input.get("health") is not None:
                update["health"] = input["health"]
            update["updatedAt"] = update["editedAt"] = _iso(datetime.now(UTC))
            self.data.edits[id] += 1
        return {
            "success": True,
            "lastSyncId": float(len(self.data.updates)),
            "projectUpdate": update,
        }


# --- webhooks -----------------------------------------------------------------------------------


def webhook_delivery(
    secret: str,
    issue: Mapping[str, Any],
    *,
    action: str = "update",
    sent_at: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Linear POSTs for an issue event, signed as Linear signs it
    (``Linear-Signature``: hex HMAC-SHA256 of the body; ``webhookTimestamp`` in ms inside it)."""
    moment = sent_at or datetime.now(UTC)
    data = {
        "id": issue["id"],
        "identifier": issue["identifier"],
        "title": issue["title"],
        "url": issue["url"],
        "updatedAt": issue["updatedAt"],
        "stateId": issue["state"]["id"],
        "teamId": issue["team"]["id"],
        "labelIds": [label["id"] for label in issue["labels"]],
    }
    payload = {
        "action": action,
        "type": "Issue",
        "actor": {"id": "user-1", "type": "user", "name": "Sandbox User"},
        "createdAt": _iso(moment),
        "data": data,
        "url": issue["url"],
        "organizationId": "org-sandbox",
        "webhookTimestamp": int(moment.timestamp() * 1000),
        "webhookId": "webhook-sandbox",
    }
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Linear-Delivery": str(uuid.uuid4()),
        "Linear-Event": "Issue",
        SIGNATURE_HEADER: linear_signature(secret, body),
    }
    return body, headers


# --- rate limits and complexity -----------------------------------------------------------------


@dataclass
class Bucket:
    """A fixed-window stand-in for Linear's leaky bucket: ``limit`` per ``window`` seconds."""

    limit: int
    window: float
    used: float = 0.0
    started: float = field(default_factory=time.time)

    def take(self, amount: float) -> bool:
        now = time.time()
        if now - self.started >= self.window:
            self.started, self.used = now, 0.0
        if self.used + amount > self.limit:
            return False
        self.used += amount
        return True

    def headers(self, name: str) -> dict[str, str]:
        reset_ms = int((self.started + self.window) * 1000)
        return {
            f"X-RateLimit-{name}-Limit": str(self.limit),
            f"X-RateLimit-{name}-Remaining": str(max(0, math.floor(self.limit - self.used))),
            f"X-RateLimit-{name}-Reset": str(reset_ms),
        }


def complexity(document: DocumentNode, variables: Mapping[str, Any]) -> int:
    """Linear's scoring, roughly: 0.1 a scalar, 1 an object, children times ``first``."""

    def first_of(node: FieldNode) -> int:
        for argument in node.arguments or ():
            if argument.name.value == "first":
                if isinstance(argument.value, IntValueNode):
                    return int(argument.value.value)
                if isinstance(argument.value, VariableNode):
                    value = variables.get(argument.value.name.value)
                    return int(value) if isinstance(value, int) else DEFAULT_FIRST
        return 1

    def cost(selection_set: SelectionSetNode | None) -> float:
        total = 0.0
        for selection in selection_set.selections if selection_set else ():
            if not isinstance(selection, FieldNode):
                total += 1
            elif selection.selection_set is None:
                total += 0.1
            else:
                total += 1 + first_of(selection) * cost(selection.selection_set)
        return total

    return math.ceil(
        sum(
            cost(d.selection_set)
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
        )
    )


# --- the app ------------------------------------------------------------------------------------


def _error_body(error: GraphQLError | Mapping[str, Any]) -> dict[str, Any]:
    return {"errors": [error.formatted if isinstance(error, GraphQLError) else dict(error)]}


def linear_app(
    *,
    api_key: str = API_KEY,
    oauth_token: str | None = None,
    data: LinearData | None = None,
    requests_per_hour: int = 5000,
    complexity_per_hour: int = 250_000,
    window: float = 3600.0,
    schema_path: Path = SCHEMA_PATH,
) -> Starlette:
    """The fake; ``app.state.data`` is its workspace. Small limits/window exercise throttling."""
    schema = load_schema(schema_path)
    workspace = data if data is not None else LinearData.seeded()
    root = Root(workspace)
    requests = Bucket(requests_per_hour, window)
    points = Bucket(complexity_per_hour, window)
    lock = threading.Lock()

    def answer(body: dict[str, Any], status: int = 200, cost: int = 0) -> Response:
        headers = {**requests.headers("Requests"), **points.headers("Complexity")}
        headers["X-Complexity"] = str(cost)
        return JSONResponse(body, status_code=status, headers=headers)

    def refuse(message: str, code: str, kind: str, user: str, status: int = 400) -> Response:
        extensions = {"code": code, "type": kind, "userError": True}
        extensions["userPresentableMessage"] = user
        if code == "RATELIMITED":
            extensions["statusCode"] = 429
        return answer(_error_body({"message": message, "extensions": extensions}), status)

    def authenticated(header: str) -> Response | None:
        if oauth_token is not None and header == f"Bearer {oauth_token}":
            return None
        if header == api_key:
            return None
        if header == f"Bearer {api_key}":
            return refuse(
                "It looks like you're trying to use an API key as a Bearer token. Remove the "
                "Bearer prefix from the Authorization header.",
                "AUTHENTICATION_ERROR",
                "authentication error",
                "Remove the Bearer prefix from the Authorization header.",
            )
        return refuse(
            "Authentication required, not authenticated",
            "AUTHENTICATION_ERROR",
            "authentication error",
            "You need to authenticate to access this operation.",
        )

    async def graphql_endpoint(request: Request) -> Response:
        denied = authenticated(request.headers.get("authorization", ""))
        if denied is not None:
            return denied
        with lock:
            allowed = requests.take(1)
        if not allowed:
            return refuse("Rate limit exceeded", "RATELIMITED", "ratelimited", "Too many requests.")
        try:
            payload = json.loads(await request.body())
            source = payload["query"]
            variables = payload.get("variables") or {}
            if not isinstance(source, str) or not isinstance(variables, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return refuse(
                "POST body must be JSON with a 'query' string",
                "BAD_REQUEST",
                "invalid input",
                "Invalid request.",
            )
        try:
            document = parse(source)
        except GraphQLSyntaxError as exc:
            error: dict[str, Any] = dict(exc.formatted)
            error["extensions"] = {"code": "GRAPHQL_PARSE_FAILED", "type": "graphql error"}
            return answer(_error_body(error), 400)
        problems = validate(schema, document)
        if problems:
            errors = [
                {
                    **p.formatted,
                    "extensions": {"code": "GRAPHQL_VALIDATION_FAILED", "type": "graphql error"},
                }
                for p in problems
            ]
            return answer({"errors": errors}, 400)
        cost = complexity(document, variables)
        with lock:
            affordable = points.take(cost)
        if not affordable:
            return refuse(
                "Rate limit exceeded: query complexity",
                "RATELIMITED",
                "ratelimited",
                "Too many requests.",
            )
        result = execute_sync(
            schema,
            document,
            root_value=root,
            variable_values=variables,
            operation_name=payload.get("operationName"),
        )
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        return answer(body, 200, cost)

    app = Starlette(routes=[Route("/graphql", graphql_endpoint, methods=["POST"])])
    app.state.data = workspace
    app.state.schema = schema
    return app
