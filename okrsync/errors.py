"""Every exception okrsync raises, ordered by what the caller should do about it.

The order is the recovery order: configuration errors stop a command before anything runs;
connector errors are caught per connection and never stop the other connections; within those,
a ``RetriableError`` is worth another attempt, a ``CredentialsError`` may be fixed by refreshing
a token once, and the rest are reported on the connection (or the mirror) until a human acts.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class Blame(StrEnum):
    """Who has to act for the error to go away."""

    CONFIG = "config"  # the user's YAML, query or credentials
    TRANSIENT = "transient"  # network or vendor hiccup: time fixes it
    VENDOR = "vendor"  # the vendor answered something it should not have


class OkrsyncError(Exception):
    """Base of every error okrsync raises on purpose."""

    blame: Blame = Blame.CONFIG


# --- 1. configuration: fatal before anything runs -------------------------------------------


class ConfigError(OkrsyncError):
    """A config file is wrong. Carries where, so the CLI can print file, line and key path."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(self.render())

    def render(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        if self.key:
            return f"{where}: {self.key}: {self.message}"
        return f"{where}: {self.message}"


class SettingsError(ConfigError):
    """An ``OKRSYNC_*`` setting (environment or secrets file) has a value okrsync cannot use."""

    def render(self) -> str:
        return self.message


class ConfigErrors(OkrsyncError):
    """Several config errors found in one pass; reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.render() for e in errors))


class ExpressionError(OkrsyncError):
    """A key result's ``value:`` expression is malformed or uses something not allowed."""

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        self.message = message
        self.offset = offset
        super().__init__(message)


class ScheduleError(OkrsyncError):
    """A schedule string is neither ``every <duration>`` nor a valid cron expression."""


class PluginError(OkrsyncError):
    """A connector plugin could not be loaded or does not offer what the config asks of it."""


class StoreError(OkrsyncError):
    """The store is unreachable or its schema is not at the expected revision."""

    blame = Blame.TRANSIENT


# --- 2. connector errors: caught per connection ----------------------------------------------


class ConnectorError(OkrsyncError):
    """Something went wrong talking to one external system.

    ``connection`` is the configured name, ``subject`` the metric or mirror concerned (when known),
    so that a message can tell the user exactly which piece of their config to look at.
    """

    blame = Blame.VENDOR

    def __init__(
        self,
        message: str,
        *,
        connection: str | None = None,
        subject: str | None = None,
        status_code: int | None = None,
        blame: Blame | None = None,
    ) -> None:
        self.message = message
        self.connection = connection
        self.subject = subject
        self.status_code = status_code
        if blame is not None:
            self.blame = blame
        super().__init__(self.render())

    def render(self) -> str:
        parts = []
        if self.connection:
            parts.append(f"connection {self.connection!r}")
        if self.subject:
            parts.append(self.subject)
        prefix = ", ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message

    def for_subject(self, connection: str, subject: str | None = None) -> Self:
        """A copy of this error named after the connection (and metric or mirror) it concerns;
        names it already had are kept.

        A copy, never this error changed in place: one failure of a whole connection is named
        once per query it fails, and each reading must name its own metric, not the first one's.
        """
        cls = type(self)
        named = cls.__new__(cls)  # not cls(...): subclasses' constructors differ
        named.__dict__.update(self.__dict__)
        named.__cause__, named.__context__ = self.__cause__, self.__context__
        named.__suppress_context__ = self.__suppress_context__
        named.__traceback__ = self.__traceback__
        named.connection = self.connection or connection
        named.subject = self.subject or subject
        named.args = (named.render(),)
        return named


class RetriableError(ConnectorError):
    """Transient: the same request may succeed later (5xx, timeouts, resets)."""

    blame = Blame.TRANSIENT


class RateLimitedError(RetriableError):
    """The vendor asked us to slow down; ``retry_after`` seconds when it said so."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class FetchDeadlineError(RetriableError):
    """A connection gave no answer within its ``fetch_deadline``: the fetch was abandoned so
    that the connection's next pass (and nobody else's) is not held by it."""

    def __init__(
        self, deadline: float, *, connection: str | None = None, subject: str | None = None
    ) -> None:
        self.deadline = deadline
        super().__init__(
            f"no answer within {deadline:g}s (the connection's fetch_deadline)",
            connection=connection,
            subject=subject,
        )


class QuotaExhaustedError(ConnectorError):
    """Our own call budget for this connection is spent: pause, do not fail."""

    blame = Blame.TRANSIENT

    def __init__(self, message: str, *, resume_at: float | None = None, **kw: object) -> None:
        self.resume_at = resume_at
        super().__init__(message, **kw)  # type: ignore[arg-type]


class CredentialsError(ConnectorError):
    """401/403: the connection's credentials were rejected (after one refresh, where possible)."""

    blame = Blame.CONFIG


class QueryError(ConnectorError):
    """The vendor rejected the query itself (bad JQL, SOQL, SQL): the metric must be fixed."""

    blame = Blame.CONFIG


class TargetNotFoundError(ConnectorError):
    """A mirror's target (issue, channel, field) does not exist or is not reachable."""

    blame = Blame.CONFIG


class VendorResponseError(ConnectorError):
    """The vendor answered something we cannot read: HTML, truncated JSON, a wrong shape."""

    blame = Blame.VENDOR


class EvaluationError(OkrsyncError):
    """An expression could not be computed from the readings (e.g. division by zero)."""

    blame = Blame.VENDOR
