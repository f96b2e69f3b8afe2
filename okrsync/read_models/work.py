"""The work linked to a key result or objective (issue 15), as the API answers it and
``okrsync work --json`` prints it: the same models in both places."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from okrsync.read_models.models import Model

State = Literal["todo", "in_progress", "done"]


class WorkItem(Model):
    connection: str = Field(description="The tracker connection that lists the item.")
    key: str = Field(description="The tracker's own key: OKR-13, acme/shop#42, ENG-7.")
    title: str
    state: State = Field(description="From the tracker's status category: todo, in_progress, done.")
    url: str | None
    assignee: str | None
    labels: list[str]
    updated_at: datetime | None
    done_at: datetime | None = Field(description="When the item reached done, if it has.")
    first_linked_at: datetime = Field(description="When a `work` query first listed the item.")
    unlinked_at: datetime | None = Field(
        description="When the item left its query (listed only with `unlinked=true`)."
    )
    key_result: str | None = Field(description="The key result whose `work` entry links it.")
    objective: str | None = Field(description="The objective whose own `work` entry links it.")


class WorkSummary(Model):
    """The linked items (never the unlinked ones) counted by state."""

    todo: int
    in_progress: int
    done: int
    total: int
    done_this_week: int = Field(description="Done since Monday 00:00 UTC of this week.")
    week_start: datetime


class KeyResultWork(Model):
    """``okrsync work KR --json``: a key result's work items and their summary."""

    key_result: str
    items: list[WorkItem]
    summary: WorkSummary


class ObjectiveWork(Model):
    """``okrsync work --objective O --json``: an objective's own work and its key results'."""

    objective: str
    items: list[WorkItem]
    summary: WorkSummary
