"""``work:`` entries: the tracker queries that list the issues, PRs and epics behind a key result.

An entry names a connection whose connector can list work (its ``work_model``), says whether
okrsync should keep a link back to the key result on each item (``backlink``), how often it is
re-read (``schedule``), and gives the rest in the tracker's own query language (``jql``,
``search``, ``filter``), checked by the connector's model. Text may use ``{cycle_start}`` and
``{cycle_end}``, filled from the objective's cycle when the query is asked; any other ``{name}``
is refused here, whatever the connector, so a typo never reaches a tracker.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from okrsync.config.crossrefs import CrossReferences
from okrsync.config.entries import distinct_entries
from okrsync.config.fields import RequiredText, ScheduleText, Toggle, listed
from okrsync.config.pydantic_errors import check, validate
from okrsync.config.reporting import Reporter
from okrsync.config.yaml_source import KeyPath
from okrsync.domain.schedule import Schedule
from okrsync.sdk.work import WorkQuery

DEFAULT_WORK_SCHEDULE = "every 10m"
"""How often a ``work`` entry is read when it gives no ``schedule``: an incremental read (only
items changed since the last one), so cheap; tracker webhooks refresh sooner."""

CYCLE_PLACEHOLDERS = frozenset({"cycle_start", "cycle_end"})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


@dataclass(frozen=True)
class WorkDef:
    """One ``work`` entry of a key result (``key_result_id`` set) or of an objective."""

    key: str  # stable: owner, connection and the query's digest
    connection: str
    spec: WorkQuery  # an instance of the connection's connector ``work_model``
    backlink: bool
    schedule: Schedule
    objective_id: str
    key_result_id: str | None = None
    line: int | None = None

    @property
    def owner(self) -> str:
        """``kr:<id>`` or ``objective:<id>``: what the entry's items are linked to."""
        if self.key_result_id is not None:
            return f"kr:{self.key_result_id}"
        return f"objective:{self.objective_id}"

    @staticmethod
    def make_key(owner: str, connection: str, spec: WorkQuery) -> str:
        payload = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return f"{owner}/{connection}/" + hashlib.sha256(payload.encode()).hexdigest()[:12]


class WorkCommon(BaseModel):
    """The fields every ``work`` entry has; the others are its connector's query fields."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    connection: RequiredText = Field(
        description="Name of the connection (a work tracker: jira, github, linear) to ask."
    )
    backlink: Toggle = Field(
        default=False,
        description="Keep a link to the key result on each item (Jira remote link, GitHub "
        "label, Linear attachment), updated when its progress or status changes.",
    )
    schedule: ScheduleText = Field(
        default=None,
        description=f"How often to re-read changed items; default '{DEFAULT_WORK_SCHEDULE}'. "
        "Tracker webhooks refresh sooner.",
    )


Works = Annotated[list[dict[str, Any]], listed("work")]
"""Work entries as written: each checked by :class:`WorkCommon` and its connector's work model."""

_COMMON_FIELDS = frozenset(WorkCommon.model_fields)


def unknown_placeholders(value: object) -> list[str]:
    """The ``{name}`` placeholders anywhere in ``value`` (strings, lists, mappings) that are not
    cycle placeholders, in order of appearance. Pure."""
    found: list[str] = []
    for text in _strings(value):
        for match in _PLACEHOLDER.finditer(text):
            if match.group(1) not in CYCLE_PLACEHOLDERS and match.group(0) not in found:
                found.append(match.group(0))
    return found


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


class WorkReader:
    """Reads the ``work`` list of one key result or objective against the declared connections."""

    def __init__(self, read: Reporter, refs: CrossReferences) -> None:
        self.read = read
        self.refs = refs

    def entries(
        self,
        path: KeyPath,
        items: list[dict[str, Any]],
        objective_id: str,
        key_result_id: str | None,
    ) -> tuple[WorkDef, ...] | None:
        return distinct_entries(
            self.read,
            path,
            items,
            lambda where, item: self.entry(where, item, objective_id, key_result_id),
            "the same work query is listed twice here",
        )

    def entry(
        self, where: KeyPath, item: Any, objective_id: str, key_result_id: str | None
    ) -> WorkDef | None:
        read = self.read
        if not isinstance(item, dict):
            read.problem(where, "a work entry is a mapping: {connection: …, <query fields>}")
            return None
        common_fields = {k: v for k, v in item.items() if k in _COMMON_FIELDS}
        common, problems = check(WorkCommon, common_fields)
        connection_problems = [p for p in problems if p[0][:1] == ("connection",)]
        for loc, message in connection_problems:
            read.problem((*where, *loc), message)
        if connection_problems:
            return None
        connection = str(item["connection"] if common is None else common.connection)
        model = self.refs.work_model_for(where, connection)
        if model is None:
            return None
        query_fields = {k: v for k, v in item.items() if k not in _COMMON_FIELDS}
        bad = False
        for key, value in query_fields.items():
            unknown = unknown_placeholders(value)
            if unknown:
                read.problem(
                    (*where, key),
                    f"unknown placeholder(s) {', '.join(unknown)}; only {{cycle_start}} and "
                    "{cycle_end} exist",
                )
                bad = True
        spec = validate(read, where, model, query_fields, secret=False, also_allowed=_COMMON_FIELDS)
        for loc, message in problems:
            read.problem((*where, *loc), message)
        if not isinstance(spec, WorkQuery) or common is None or bad:
            return None
        if common.backlink and key_result_id is None:
            read.problem(
                (*where, "backlink"),
                "backlink: true is for a key result's work (each item links to one key result); "
                "move this entry under the key result it serves",
            )
            return None
        owner = f"kr:{key_result_id}" if key_result_id is not None else f"objective:{objective_id}"
        return WorkDef(
            key=WorkDef.make_key(owner, common.connection, spec),
            connection=common.connection,
            spec=spec,
            backlink=common.backlink,
            schedule=common.schedule or Schedule.parse(DEFAULT_WORK_SCHEDULE),
            objective_id=objective_id,
            key_result_id=key_result_id,
            line=read.line(where),
        )
