"""Check-ins from a chat app, and reminders sent to it: what a connector offers, what the core asks.

A connection whose live instance is a :class:`ChatCheckIns` (Slack's) lets people check in from
the chat app: the core serves ``POST /hooks/{connection}/commands`` (the slash command) and
``POST /hooks/{connection}/interactions`` (the form they submit) and hands the raw requests to the
connection, which verifies them, reads the vendor's payloads and opens its form. The core never
sees the vendor's wire format; the connector never touches the store. Reminders go the same way:
the core decides who is reminded of what (:mod:`okrsync.engine.reminders`), the connection says
it in its own words (:meth:`ChatCheckIns.send_reminder`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatUser:
    """Who sent a command or a form: the vendor's user id, their handle and, when the vendor
    told it, their e-mail address (the core matches objectives' owners against all three)."""

    id: str
    name: str | None = None
    email: str | None = None

    def names(self) -> frozenset[str]:
        """Every name an objective's ``owner`` may use for this person (case-insensitive)."""
        return frozenset(n.lower() for n in (self.id, self.name, self.email) if n)


@dataclass(frozen=True)
class Command:
    """A slash command: who typed it, the text after it, and the vendor's handle to open a form."""

    user: ChatUser
    text: str
    trigger_id: str


@dataclass(frozen=True)
class KeyResultChoice:
    """A key result a person may check in on, as the form offers it."""

    id: str
    title: str
    objective_title: str
    current: str | None  # the current value, shown as a hint; None when there is none yet


@dataclass(frozen=True)
class Submission:
    """A submitted check-in form, as typed: the core validates the fields."""

    user: ChatUser
    key_result_id: str | None
    value: str | None
    confidence: str | None
    note: str | None


FIELDS = ("key_result", "value", "confidence", "note")
"""The form's fields, as :meth:`ChatCheckIns.refuse` names them."""


@dataclass(frozen=True)
class ReminderLine:
    key_result_id: str
    title: str
    reason: str  # "no check-in since 2026-12-07 09:00 UTC", "stale since …"


@dataclass(frozen=True)
class Reminder:
    """One message: ``owner``'s key results that want a check-in."""

    channel: str
    owner: str | None
    lines: tuple[ReminderLine, ...]


@runtime_checkable
class ChatCheckIns(Protocol):
    """A connection people check in from. Every method but the two sends is pure and quick."""

    def verify_request(self, headers: Mapping[str, str], body: bytes, now: float) -> bool:
        """Whether the request really comes from the vendor for this app (signature, time);
        False as well when the connection has no secret to check it with."""
        ...

    @property
    def accepts_requests(self) -> bool:
        """Whether the connection is set up to receive requests (has its signing secret)."""
        ...

    def read_command(self, body: bytes) -> Command | None:
        """The slash command in a verified body; None when it is not one."""
        ...

    def read_submission(self, body: bytes) -> Submission | None:
        """The check-in form in a verified interaction body; None for any other interaction."""
        ...

    def refuse(self, errors: Mapping[str, str]) -> dict[str, object]:
        """The answer that shows ``errors`` (by field of :data:`FIELDS`) on the open form."""
        ...

    async def open_check_in(self, command: Command, choices: Sequence[KeyResultChoice]) -> None:
        """Open the check-in form for ``command``'s user, offering ``choices``."""
        ...

    async def identify(self, user: ChatUser) -> ChatUser:
        """``user`` with what the vendor knows of them (their e-mail address) added."""
        ...

    async def send_reminder(self, reminder: Reminder) -> None:
        """Post ``reminder`` in its channel."""
        ...
