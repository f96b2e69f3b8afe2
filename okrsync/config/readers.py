"""Reading one YAML value as what the config means by it: a mapping, an id, a number, a date …

YAML hands us loosely typed scalars (``2026`` for a title, ``"1_000"`` for a number, a ``date``
for ``2026-10-01``); the readers here coerce them to exact types (``Decimal``, ``date``,
``timedelta``, :class:`Schedule`) or report, at the value's key path, what was expected instead.
A reader given :data:`MISSING` (a required key already reported absent) says nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from okrsync.config.fields import ID_PATTERN, parse_duration
from okrsync.config.reporting import MISSING, Reporter, kind_of, suggest
from okrsync.config.yaml_source import KeyPath
from okrsync.engine.schedule import Schedule
from okrsync.errors import ScheduleError

_ID = re.compile(ID_PATTERN)


class ValueReader(Reporter):
    """A :class:`Reporter` that reads values, reporting each one that is not what it should be."""

    def mapping(self, path: KeyPath, value: object, what: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.problem(path, f"expected {what} (a mapping of keys), got {kind_of(value)}")
        return None

    def sequence(self, path: KeyPath, value: object, what: str) -> list[Any] | None:
        if isinstance(value, list):
            return value
        self.problem(
            path,
            f"expected {what} (a list of items, each starting with '- '), got {kind_of(value)}",
        )
        return None

    def known_keys(
        self, path: KeyPath, mapping: Mapping[str, Any], allowed: Collection[str]
    ) -> None:
        for key in mapping:
            if key not in allowed:
                self.problem((*path, key), f"unknown key {key!r}{suggest(key, allowed)}")

    def required(self, path: KeyPath, mapping: Mapping[str, Any], key: str) -> Any:
        if key not in mapping or mapping[key] is None:
            self.problem((*path, key), f"missing required key {key!r}")
            return MISSING
        return mapping[key]

    def text(self, path: KeyPath, value: object, *, required: bool = False) -> str | None:
        if value is MISSING:
            return None
        if value is None and not required:
            return None
        if isinstance(value, str):
            if required and not value.strip():
                self.problem(path, "must not be empty")
                return None
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # ``title: 2026`` is meant as text
        self.problem(path, f"expected a string, got {self.show(path, value)}")
        return None

    def identifier(self, path: KeyPath, value: object, what: str) -> str | None:
        if value is MISSING:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.problem(path, f"expected {what} (a string), got {self.show(path, value)}")
            return None
        if not _ID.fullmatch(value):
            self.problem(
                path,
                f"{what} {value!r} is not valid: use letters, digits and _ . : - "
                "(starting with a letter or digit)",
            )
            return None
        return value

    def number(self, path: KeyPath, value: object) -> Decimal | None:
        if value is None or value is MISSING:
            return None
        if isinstance(value, bool | dict | list | date):
            self.problem(path, f"expected a number, got {self.show(path, value)}")
            return None
        if isinstance(value, int):
            return Decimal(value)
        text = str(value).strip().replace("_", "") if isinstance(value, str) else str(value)
        try:
            number = Decimal(text)
        except (InvalidOperation, ValueError):
            self.problem(path, f"expected a number, got {self.show(path, value)}")
            return None
        if not number.is_finite():
            self.problem(path, f"expected a finite number, got {self.show(path, value)}")
            return None
        return number

    def day(self, path: KeyPath, value: object) -> date | None:
        if value is MISSING:
            return None
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        self.problem(path, f"expected a date like 2026-10-01, got {self.show(path, value)}")
        return None

    def duration(self, path: KeyPath, value: object) -> timedelta | None:
        if value is None or value is MISSING:
            return None
        parsed = parse_duration(value) if isinstance(value, str) else None
        if parsed is None:
            self.problem(
                path,
                f"expected a duration like 30s, 15m, 2h, 1d or 1h30m, got {self.show(path, value)}",
            )
        return parsed

    def schedule(self, path: KeyPath, value: object) -> Schedule | None:
        if not isinstance(value, str):
            self.problem(
                path,
                "expected a schedule like 'every 15m' or a cron expression like '*/10 * * * *', "
                f"got {self.show(path, value)}",
            )
            return None
        try:
            return Schedule.parse(value)
        except ScheduleError as exc:
            self.problem(path, str(exc))
            return None
