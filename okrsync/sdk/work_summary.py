"""The work behind a key result as a mirror receives it: counts by state and what was just done.

:class:`~okrsync.sdk.models.KeyResultUpdate` carries one (``work``) when the key result has
linked work (a ``work`` entry in the config whose items are in the store); a sink shows
:meth:`WorkSummary.line` beside the number and links the items of ``done_recently``.

``done_recently`` are the items done since the state the mirror shows was recorded: the payload
is built when the delivery is queued, from the creation time of the delivery the mirror last
showed, so a push never misses an item done between two pushes (the outbox may supersede queued
states, never the one shown). An item can be named by two pushes when a state is queued while an
earlier one is still on its way; never by none. A mirror that has shown nothing yet is told of
the items done in the last :data:`FIRST_PUSH_WINDOW_DAYS` days.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

FIRST_PUSH_WINDOW_DAYS = 7  # okrsync.domain.work_window.FIRST_PUSH_WINDOW
"""How far back a mirror's first push looks for items done."""

MAX_DONE_LISTED = 10
"""Items named in ``done_recently`` at most (the newest); ``done_recently_total`` counts all."""


def web_url(url: str | None) -> str | None:
    """``url`` when it is an http(s) address with a host, else None: a tracker's url is linked
    only then, so a ``javascript:`` or ``data:`` url in a vendor's answer is never followed."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


class WorkLink(BaseModel):
    """One item done, as a message links it."""

    model_config = ConfigDict(frozen=True)

    connection: str
    key: str
    title: str
    url: str | None = None
    done_at: datetime | None = None


class WorkSummary(BaseModel):
    """The linked (not unlinked) work items of a key result, counted by state."""

    model_config = ConfigDict(frozen=True)

    todo: int = 0
    in_progress: int = 0
    done: int = 0
    done_since: datetime | None = None  # ``done_recently`` are the items done after this
    done_recently: tuple[WorkLink, ...] = ()  # newest first, at most MAX_DONE_LISTED
    done_recently_total: int = 0

    @property
    def total(self) -> int:
        return self.todo + self.in_progress + self.done

    def line(self) -> str:
        """``work: 12 done · 5 in progress · 3 to do``, the line messages show."""
        return f"work: {self.done} done · {self.in_progress} in progress · {self.todo} to do"

    def more_done(self) -> int:
        """Items done since ``done_since`` that ``done_recently`` does not name."""
        return max(0, self.done_recently_total - len(self.done_recently))
