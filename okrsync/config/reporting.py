"""How a problem in a config is reported: where it is, how a value is quoted, what is redacted.

Every check in the package reports through one :class:`Reporter`, which turns a key path into
file, line and key, stays quiet about values that are already explained, and never quotes a
value that a ``${…}`` reference brought into ``connections``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from okrsync.config.references import SECRET_SECTION
from okrsync.config.yaml_source import KeyPath, YamlDocument, format_path
from okrsync.errors import ConfigError

MISSING: Any = object()
"""What a reader returns for a required key that is absent (and has already been reported)."""

_REDACTED = "***"
_MIN_SCRUB = 4  # shorter secrets would mangle every message they happen to occur in


class Reporter:
    """Collects the problems found in one document, each placed at its file, line and key."""

    def __init__(self, filename: str, document: YamlDocument, referenced: set[KeyPath]) -> None:
        self.filename = filename
        self.document = document
        self.referenced = referenced
        self.errors: list[ConfigError] = []
        self.quiet: set[KeyPath] = set()

    def problem(self, path: KeyPath, message: str) -> None:
        if path in self.quiet:
            return
        self.errors.append(
            ConfigError(
                message,
                file=self.filename,
                line=self.document.line(path),
                key=format_path(path) or None,
            )
        )

    def show(self, path: KeyPath, value: object) -> str:
        """``value`` as a message may quote it: never a secret that came from a reference."""
        if path and path[0] == SECRET_SECTION and path in self.referenced:
            return "a value from a ${…} reference"
        return show_value(value)

    def line(self, path: KeyPath) -> int:
        return self.document.line(path)


def kind_of(value: object) -> str:
    """What sort of YAML value ``value`` is, as a message names it."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, date):
        return "a date"
    return "a string"


def show_value(value: object) -> str:
    """A value as an error message quotes it: short, and in YAML's spelling."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(shown)
    return str(value)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt ``word``, if one is close enough."""
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def suggest(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` to end a message with, or nothing when no candidate is close."""
    match = did_you_mean(word, candidates)
    return f"; did you mean {match!r}?" if match else ""


def error_order(error: ConfigError) -> tuple[int, str]:
    return (error.line or 0, error.key or "")


def scrub(errors: list[ConfigError], secrets: Iterable[str]) -> list[ConfigError]:
    """Last line of defence: no secret value survives in a message, whoever wrote it."""
    ordered = sorted((s for s in set(secrets) if len(s) >= _MIN_SCRUB), key=len, reverse=True)
    if not ordered:
        return errors
    cleaned: list[ConfigError] = []
    for error in errors:
        message = error.message
        for secret in ordered:
            message = message.replace(secret, _REDACTED)
        cleaned.append(ConfigError(message, file=error.file, line=error.line, key=error.key))
    return cleaned
