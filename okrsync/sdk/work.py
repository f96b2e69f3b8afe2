"""Work trackers: connectors that can list the issues, PRs and epics behind a key result.

A key result (or objective) names its work in the config with the tracker's own query language::

    work:
      - connection: jira
        jql: "parent = OKR-12"
        backlink: true

A connector whose live connection subclasses :class:`WorkTracker` declares ``work_model`` (the
fields of one ``work`` entry beside ``connection`` and ``backlink``, e.g. ``jql``). The core
validates each entry against it, stores what :meth:`WorkTracker.list_work` answers, reads only
what changed since the last read (``since``), reconciles the whole membership now and then with
:meth:`WorkTracker.list_work_keys` (ids only, cheap), and, when ``backlink: true``, keeps one
link per item and key result in the tracker (:meth:`WorkTracker.put_backlink`).

States come from the vendor's status *category* (Jira ``statusCategory.key``, GitHub ``state`` /
``merged``, Linear ``state.type``), never from status names, which each team renames.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from okrsync.sdk.models import CycleWindow, Status


class WorkState(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class WorkQuery(BaseModel):
    """One ``work`` entry's tracker-specific fields; connectors subclass it (``jql`` …).

    Text fields may use ``{cycle_start}`` / ``{cycle_end}`` as metric queries do.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def query_text(self) -> str:
        """The query as a person reads it, for ``plan``, logs and the dashboard."""
        return self.model_dump_json()


@dataclass(frozen=True)
class WorkItem:
    """One issue, pull request or epic as the tracker reports it now."""

    key: str  # the tracker's own key: "OKR-13", "acme/shop#42", "ENG-7"
    title: str
    state: WorkState
    url: str | None = None
    assignee: str | None = None
    labels: tuple[str, ...] = ()
    updated_at: datetime | None = None
    done_at: datetime | None = None  # when it reached ``done`` (resolution date, merged/closed at)


@dataclass(frozen=True)
class WorkPages:
    """The most items one request answers: with fields (:meth:`WorkTracker.list_work`) and ids
    only (:meth:`WorkTracker.list_work_keys`)."""

    items: int
    keys: int


@dataclass(frozen=True)
class Backlink:
    """What a tracker item should show about the key result it serves."""

    key_result_id: str
    key_result_title: str
    progress_display: Decimal | None  # percent, clamped for display
    status: Status
    url: str | None  # the key result's page on okrsync's dashboard, when its address is known

    @property
    def global_id(self) -> str:
        """A stable id naming the key result, so a repeated link updates instead of adding."""
        return f"okrsync:key-result:{self.key_result_id}"

    @property
    def title(self) -> str:
        progress = "no data" if self.progress_display is None else f"{self.progress_display:.0f}%"
        return f"OKR: {self.key_result_title} ({progress}, {self.status.value.replace('_', ' ')})"


class WorkTracker(ABC):
    """Mixin for a live connection that can list work items and keep backlinks on them."""

    work_model: ClassVar[type[WorkQuery]]

    @abstractmethod
    async def list_work(
        self, query: WorkQuery, cycle: CycleWindow, since: datetime | None
    ) -> Sequence[WorkItem]:
        """Items the query matches; with ``since``, only those updated at or after it."""

    @abstractmethod
    async def list_work_keys(self, query: WorkQuery, cycle: CycleWindow) -> Sequence[str]:
        """The keys of every item the query matches now: the cheap reconciliation read."""

    def work_pages(self) -> WorkPages | None:
        """Page sizes of this connection's reads, so a reconciliation of an entry that fits them
        is one full read instead of changes plus ids (no more requests). Default ``None``:
        unknown, always changes plus ids."""
        return None

    async def put_backlink(self, item: str, link: Backlink, ref: str | None) -> str | None:
        """Create or update (idempotently) the link on ``item``; returns the reference to keep
        (remote link id, label name, attachment id). Default: the tracker keeps no backlinks."""
        raise NotImplementedError(f"{type(self).__name__} keeps no backlinks")

    async def remove_backlink(self, item: str, link: Backlink, ref: str | None) -> None:
        """Take the link off ``item`` (it left the query); a link already gone is not an error."""
        raise NotImplementedError(f"{type(self).__name__} keeps no backlinks")


def vendor_time(value: object) -> datetime | None:
    """An ISO-8601 timestamp from a tracker's answer (``Z`` or an offset), or ``None`` for a
    missing, empty or unreadable one: a bad date on one item must not fail the whole read."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
