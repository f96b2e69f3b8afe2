"""Mirroring a key result into one Linear project update, edited in place.

A project update is Linear's status post on a project: a Markdown body and a health
(``onTrack``/``atRisk``/``offTrack``) that Linear shows as the project's health. Each key result
gets exactly one update per project: the first push creates it, every later push edits it.

How we find our update again without the stored ref (a crash between the push and the store):
the body ends with a footer holding ``okrsync:kr=<key result id>`` in inline code. Linear
re-serialises bodies through its editor, which would drop an HTML comment and may escape ``_`` or
``*`` in plain text; inline code survives verbatim, and we also strip backslash escapes before
matching. The sink pages through the project's ``projectUpdates`` looking for that marker
before it creates anything.

Creating is never retried blindly: after a timeout or a 5xx on ``projectUpdateCreate`` (Linear
may have created it and lost the answer) the sink looks for its marker before trying again.

A stale key result (no source confirmed it within its ``stale_after``) gets a quoted warning under
its title, "⚠️ Stale — last confirmed <time>"; health still follows the status (staleness is
not a project's health), and the next fresh push edits the warning away.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connectors.linear.graphql_client import LinearBase, expect, relay_pages
from connectors.linear.models import Health, LinearConnection, LinearProjectUpdateMirror
from okrsync.errors import RetriableError, TargetNotFoundError, VendorResponseError
from okrsync.sdk.http_connector import SubjectSink
from okrsync.sdk.models import KeyResultUpdate, PushResult, Status

UPDATES_PAGE = 50  # bodies are long; 50 a page keeps a page's complexity modest
MAX_UPDATE_PAGES = 40

UPDATE_FIELDS = "id body health url project { id }"

PROJECT_BY_NAME = """
query OkrsyncProjectByName($filter: ProjectFilter) {
  projects(filter: $filter, first: 2) { nodes { id name } }
}
""".strip()

PROJECT_UPDATES = f"""
query OkrsyncProjectUpdates($id: String!, $first: Int!, $after: String) {{
  project(id: $id) {{
    id
    projectUpdates(first: $first, after: $after) {{
      nodes {{ {UPDATE_FIELDS} }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}
""".strip()

PROJECT_UPDATE = f"""
query OkrsyncProjectUpdate($id: String!) {{
  projectUpdate(id: $id) {{ {UPDATE_FIELDS} archivedAt }}
}}
""".strip()

CREATE = f"""
mutation OkrsyncProjectUpdateCreate($input: ProjectUpdateCreateInput!) {{
  projectUpdateCreate(input: $input) {{ success projectUpdate {{ {UPDATE_FIELDS} }} }}
}}
""".strip()

EDIT = f"""
mutation OkrsyncProjectUpdateEdit($id: String!, $input: ProjectUpdateUpdateInput!) {{
  projectUpdateUpdate(id: $id, input: $input) {{ success projectUpdate {{ {UPDATE_FIELDS} }} }}
}}
""".strip()

DOCUMENTS = (PROJECT_BY_NAME, PROJECT_UPDATES, PROJECT_UPDATE, CREATE, EDIT)

HEALTH: dict[Status, Health] = {
    Status.ON_TRACK: "onTrack",
    Status.AT_RISK: "atRisk",
    Status.OFF_TRACK: "offTrack",
}
STATUS_TEXT = {
    Status.ON_TRACK: "On track",
    Status.AT_RISK: "At risk",
    Status.OFF_TRACK: "Off track",
    Status.NO_DATA: "No data",
}
BAR_CELLS = 20


def marker(key_result_id: str) -> str:
    return f"okrsync:kr={key_result_id}"


def has_marker(body: str, key_result_id: str) -> bool:
    """Whether ``body`` carries this key result's marker (and not a longer id's)."""
    text = body.replace("\\", "")
    pattern = re.escape(marker(key_result_id)) + r"(?![\w.:/-])"
    return re.search(pattern, text) is not None


def health_for(status: Status, mirror: LinearProjectUpdateMirror) -> Health | None:
    """The health to set; ``None`` leaves it as it is (``no_data_health: unchanged``)."""
    if status is Status.NO_DATA:
        return None if mirror.no_data_health == "unchanged" else mirror.no_data_health
    return HEALTH[status]


def _number(text: str, unit: str | None) -> str:
    """A number as :meth:`KeyResultUpdate.display` wrote it, with its unit."""
    if unit in ("%", "percent"):
        return f"{text}%"
    return f"{text} {unit}" if unit else text


def _percent(progress: Decimal) -> str:
    pct = (progress * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    text = format(pct, "f")
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"


def _utc_text(at: datetime) -> str:
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M UTC")


def stale_line(update: KeyResultUpdate) -> str | None:
    """A quoted warning while no source has confirmed the value in time (None when fresh)."""
    if not update.stale:
        return None
    if update.checked_at is None:
        return "> ⚠️ **Stale** — no source has confirmed this value"
    return f"> ⚠️ **Stale** — last confirmed {_utc_text(update.checked_at)}"


def render_body(update: KeyResultUpdate) -> str:
    """The update's Markdown body: title, progress bar, value against target, status, marker."""
    lines = [f"**{update.key_result_title}**", ""]
    stale = stale_line(update)
    if stale is not None:
        lines += [stale, ""]
    lines.append(f"Objective: {update.objective_title} · cycle {update.cycle_id}")
    lines.append("")
    if update.progress is not None and update.progress_display is not None:
        filled = int((update.progress_display * BAR_CELLS).to_integral_value(ROUND_HALF_UP))
        bar = "█" * filled + "░" * (BAR_CELLS - filled)
        lines.append(f"`{bar}` **{_percent(update.progress)}** · {STATUS_TEXT[update.status]}")
    else:
        lines.append(f"No progress yet · {STATUS_TEXT[update.status]}")
    lines += ["", "| | |", "|---|---|"]
    value = update.display(update.value)
    lines.append(f"| Value | {'—' if value is None else _number(value, update.unit)} |")
    target = update.display(update.target)
    if target is not None:
        lines.append(f"| Target | {_number(target, update.unit)} |")
    start = update.display(update.start)
    if start is not None:
        lines.append(f"| Start | {_number(start, update.unit)} |")
    lines.append(f"| Status | {STATUS_TEXT[update.status]} |")
    observed = update.observed_at.strftime("%Y-%m-%d %H:%M UTC")
    lines += ["", f"_Updated by okrsync, observed {observed}_ · `{marker(update.key_result_id)}`"]
    return "\n".join(lines)


def _same_body(left: str, right: str) -> bool:
    """Bodies equal up to what Linear's editor normalises (trailing space, escapes)."""

    def norm(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.replace("\\", "").strip().splitlines())

    return norm(left) == norm(right)


class LinearSink(LinearBase, SubjectSink[LinearConnection, LinearProjectUpdateMirror]):
    """One project update per key result, edited in place."""

    mirror_model = LinearProjectUpdateMirror

    def __init__(self, name: str, config: LinearConnection) -> None:
        super().__init__(name, config)
        self._project_ids: dict[str, str] = {}

    def describe(self, mirror: LinearProjectUpdateMirror) -> str:
        return f"{self.name}: project update on Linear {mirror.target()}"

    def mirror_name(self, mirror: LinearProjectUpdateMirror) -> str:
        return mirror.target()

    async def push_to(
        self,
        update: KeyResultUpdate,
        mirror: LinearProjectUpdateMirror,
        previous_ref: str | None,
        subject: str,
    ) -> PushResult:
        project_id = await self._project_id(mirror, subject)
        body = render_body(update)
        health = health_for(update.status, mirror)
        if previous_ref:
            known = await self._read_update(previous_ref, subject)
            if known is not None and _project_of(known) == project_id:
                return await self._settle(known, body, health, subject)
        found = await self._find_marked(project_id, update.key_result_id, subject)
        if found is not None:
            return await self._settle(found, body, health, subject)
        return await self._create(project_id, update.key_result_id, body, health, subject)

    async def _project_id(self, mirror: LinearProjectUpdateMirror, subject: str) -> str:
        if mirror.project_id is not None:
            return mirror.project_id
        name = mirror.project
        assert name is not None
        if name in self._project_ids:
            return self._project_ids[name]
        answer = await self.graphql.execute(
            PROJECT_BY_NAME, {"filter": {"name": {"eq": name}}}, subject=subject
        )
        projects = expect(answer.data.get("projects"), dict, "projects", subject)
        nodes = expect(projects.get("nodes"), list, "projects.nodes", subject)
        if not nodes:
            raise TargetNotFoundError(f"Linear has no project named {name!r}", subject=subject)
        if len(nodes) > 1:
            raise TargetNotFoundError(
                f"several Linear projects are named {name!r}; use project_id instead",
                subject=subject,
            )
        project_id = str(expect(nodes[0], dict, "project", subject).get("id"))
        self._project_ids[name] = project_id
        return project_id

    async def _read_update(self, ref: str, subject: str) -> dict[str, Any] | None:
        """The update a stored ref names, or ``None`` when it is gone or archived."""
        try:
            answer = await self.graphql.execute(PROJECT_UPDATE, {"id": ref}, subject=subject)
        except TargetNotFoundError:
            return None
        found = answer.data.get("projectUpdate")
        if not isinstance(found, dict) or found.get("archivedAt"):
            return None
        return found

    async def _find_marked(
        self, project_id: str, key_result_id: str, subject: str
    ) -> dict[str, Any] | None:
        pages = relay_pages("projectUpdates", max_pages=MAX_UPDATE_PAGES, subject=subject)
        while not pages.finished:
            answer = await self.graphql.execute(
                PROJECT_UPDATES,
                {"id": project_id, "first": UPDATES_PAGE, "after": pages.token},
                subject=subject,
            )
            project = expect(answer.data.get("project"), dict, "project", subject)
            updates = expect(project.get("projectUpdates"), dict, "projectUpdates", subject)
            for node in expect(updates.get("nodes"), list, "projectUpdates.nodes", subject):
                if isinstance(node, dict) and has_marker(str(node.get("body", "")), key_result_id):
                    return node
            pages.advance(updates)
        return None

    async def _settle(
        self, found: dict[str, Any], body: str, health: Health | None, subject: str
    ) -> PushResult:
        """Edit ``found`` to the new state, or leave it when it already shows it."""
        update_id = str(found.get("id"))
        same_health = health is None or found.get("health") == health
        if _same_body(str(found.get("body", "")), body) and same_health:
            return _result(found, "unchanged")
        changes: dict[str, Any] = {"body": body}
        if health is not None:
            changes["health"] = health
        answer = await self.graphql.execute(
            EDIT, {"id": update_id, "input": changes}, subject=subject
        )
        return _result(_payload(answer.data, "projectUpdateUpdate", subject), "edited")

    async def _create(
        self,
        project_id: str,
        key_result_id: str,
        body: str,
        health: Health | None,
        subject: str,
    ) -> PushResult:
        fields: dict[str, Any] = {"projectId": project_id, "body": body}
        if health is not None:
            fields["health"] = health
        try:
            answer = await self.graphql.execute(
                CREATE, {"input": fields}, subject=subject, retry=False
            )
        except RetriableError:
            # Linear may have created it and lost the answer: look before anyone tries again.
            landed = await self._find_marked(project_id, key_result_id, subject)
            if landed is None:
                raise
            return await self._settle(landed, body, health, subject)
        return _result(_payload(answer.data, "projectUpdateCreate", subject), "created")


def _project_of(found: dict[str, Any]) -> str | None:
    project = found.get("project")
    return str(project.get("id")) if isinstance(project, dict) else None


def _payload(data: dict[str, Any], field: str, subject: str) -> dict[str, Any]:
    payload = expect(data.get(field), dict, field, subject)
    if payload.get("success") is not True:
        raise VendorResponseError(f"Linear answered {field} with success: false", subject=subject)
    return dict(expect(payload.get("projectUpdate"), dict, f"{field}.projectUpdate", subject))


def _result(found: dict[str, Any], action: str) -> PushResult:
    return PushResult(
        ref=str(found.get("id")),
        detail={"action": action, "url": found.get("url"), "health": found.get("health")},
    )
