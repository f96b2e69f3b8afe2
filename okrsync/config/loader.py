"""Turning a YAML file into a checked :class:`Config`, or into every reason it cannot be one.

The loader reads the whole document in one pass and keeps going after a problem, so that a user
fixing a config sees all of its mistakes at once, each with file, line and key path. Connector
specific fields are checked by the connector's own pydantic models; their errors are translated
into the same form, without ever quoting a value given to a connection (it may be a secret).
"""

from __future__ import annotations

import difflib
import keyword
import os
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from okrsync.config.models import (
    DEFAULT_SCHEDULE,
    DURATION_PATTERN,
    ID_PATTERN,
    Config,
    ConfigDocument,
    CycleDef,
    CycleDocument,
    DefaultsDocument,
    KeyResultDef,
    KeyResultDocument,
    MetricCommon,
    MetricDef,
    MirrorCommon,
    MirrorDef,
    ObjectiveDef,
    ObjectiveDocument,
    field_names,
)
from okrsync.config.references import SECRET_SECTION, ReferenceResolver
from okrsync.config.yaml_source import KeyPath, YamlDocument, format_path, read_yaml
from okrsync.engine.expressions import Expression
from okrsync.engine.progress import KRKind, TargetSpec
from okrsync.engine.schedule import Schedule
from okrsync.errors import ConfigError, ConfigErrors, ExpressionError, ScheduleError
from okrsync.sdk.connector import ConnectionConfig, Connector, MirrorSpec, QuerySpec

SUPPORTED_VERSION = 1
DEFAULT_SECRETS_DIR = Path("/run/secrets")
_ID = re.compile(ID_PATTERN)
_DURATION = re.compile(DURATION_PATTERN)
_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_REDACTED = "***"
_MIN_SCRUB = 4  # shorter secrets would mangle every message they happen to occur in


def load_config(
    path: Path,
    connectors: Mapping[str, Connector],
    *,
    environ: Mapping[str, str] | None = None,
    secrets_dir: Path | None = None,
) -> Config:
    """Read and check the config at ``path``; raise :class:`ConfigErrors` listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigErrors(
            [ConfigError(f"cannot read the config: {reason}", file=str(path))]
        ) from None
    return _load(
        text, connectors, filename=str(path), source=path, environ=environ, secrets_dir=secrets_dir
    )


def load_config_text(
    text: str,
    connectors: Mapping[str, Connector],
    *,
    filename: str = "<config>",
    environ: Mapping[str, str] | None = None,
    secrets_dir: Path | None = None,
) -> Config:
    """Like :func:`load_config`, for config text that did not come from a file."""
    return _load(
        text, connectors, filename=filename, source=None, environ=environ, secrets_dir=secrets_dir
    )


def _load(
    text: str,
    connectors: Mapping[str, Connector],
    *,
    filename: str,
    source: Path | None,
    environ: Mapping[str, str] | None,
    secrets_dir: Path | None,
) -> Config:
    env = os.environ if environ is None else environ
    if secrets_dir is None:
        secrets_dir = Path(env.get("OKRSYNC_SECRETS_DIR") or DEFAULT_SECRETS_DIR)
    document = read_yaml(text, filename=filename)
    if not isinstance(document.data, dict):
        raise ConfigErrors(
            [
                ConfigError(
                    f"the top level must be a mapping of sections (version, connections, metrics, "
                    f"…), got {_kind_of(document.data)}",
                    file=filename,
                    line=1,
                )
            ]
        )
    resolution = ReferenceResolver(env, secrets_dir).resolve(document.data)
    checker = _Checker(filename, document, connectors, resolution.referenced, source)
    for path, message in resolution.problems:
        checker.problem(path, message)
    # a value whose reference could not be resolved has been reported: say nothing more about it
    checker.quiet.update(path for path, _ in resolution.problems)
    config = checker.check(resolution.data, resolution.secrets)
    if checker.errors or config is None:
        secrets = set(resolution.secrets)
        for connection in checker.connections.values():
            secrets.update(connection.secret_values())
        raise ConfigErrors(_scrub(sorted(checker.errors, key=_error_order), secrets))
    return config


def _error_order(error: ConfigError) -> tuple[int, str]:
    return (error.line or 0, error.key or "")


def _scrub(errors: list[ConfigError], secrets: Iterable[str]) -> list[ConfigError]:
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


# --- small helpers ------------------------------------------------------------------------------


def _kind_of(value: object) -> str:
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


def _show(value: object) -> str:
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


def _suggest(word: str, candidates: Iterable[str]) -> str:
    match = did_you_mean(word, candidates)
    return f"; did you mean {match!r}?" if match else ""


def parse_duration(text: str) -> timedelta | None:
    """``30s``, ``15m``, ``2h``, ``1d``, ``1h30m`` → a positive timedelta; ``None`` if malformed."""
    compact = text.strip().replace(" ", "")
    match = _DURATION.fullmatch(compact)
    if not compact or match is None:
        return None
    seconds = 0
    for part in match.groups():
        if part:
            seconds += int(part[:-1]) * _DURATION_UNITS[part[-1]]
    if seconds <= 0:
        return None
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        return None


_MISSING: Any = object()


class _Checker:
    """Walks the resolved data once, building definitions and collecting problems."""

    def __init__(
        self,
        filename: str,
        document: YamlDocument,
        connectors: Mapping[str, Connector],
        referenced: set[KeyPath],
        source: Path | None,
    ) -> None:
        self.filename = filename
        self.document = document
        self.connectors = connectors
        self.referenced = referenced
        self.source = source
        self.errors: list[ConfigError] = []
        self.connections: dict[str, ConnectionConfig] = {}
        self.connection_types: dict[str, str] = {}
        self.declared_connections: set[str] = set()
        self.declared_metrics: set[str] = set()
        # a section that is not even a mapping cannot tell what it declares: stay quiet about it
        self.connections_readable = True
        self.metrics_readable = True
        self.declared_cycles: set[str] | None = set()  # None: the section is unreadable
        self.quiet: set[KeyPath] = set()

    # -- reporting ------------------------------------------------------------------------------

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
        if path and path[0] == SECRET_SECTION and path in self.referenced:
            return "a value from a ${…} reference"
        return _show(value)

    # -- generic readers -------------------------------------------------------------------------

    def mapping(self, path: KeyPath, value: object, what: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.problem(path, f"expected {what} (a mapping of keys), got {_kind_of(value)}")
        return None

    def sequence(self, path: KeyPath, value: object, what: str) -> list[Any] | None:
        if isinstance(value, list):
            return value
        self.problem(
            path,
            f"expected {what} (a list of items, each starting with '- '), got {_kind_of(value)}",
        )
        return None

    def known_keys(
        self, path: KeyPath, mapping: Mapping[str, Any], allowed: Collection[str]
    ) -> None:
        for key in mapping:
            if key not in allowed:
                self.problem((*path, key), f"unknown key {key!r}{_suggest(key, allowed)}")

    def required(self, path: KeyPath, mapping: Mapping[str, Any], key: str) -> Any:
        if key not in mapping or mapping[key] is None:
            self.problem((*path, key), f"missing required key {key!r}")
            return _MISSING
        return mapping[key]

    def text(self, path: KeyPath, value: object, *, required: bool = False) -> str | None:
        if value is _MISSING:
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
        if value is _MISSING:
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
        if value is None or value is _MISSING:
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

    def weight(self, path: KeyPath, value: object) -> Decimal | None:
        if value is None or value is _MISSING:
            return Decimal(1)
        number = self.number(path, value)
        if number is not None and number <= 0:
            self.problem(path, f"weight must be greater than 0, got {number}")
            return None
        return number

    def day(self, path: KeyPath, value: object) -> date | None:
        if value is _MISSING:
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
        if value is None or value is _MISSING:
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

    def pydantic(
        self,
        path: KeyPath,
        model: type[BaseModel],
        data: dict[str, Any],
        *,
        secret: bool,
        also_allowed: Collection[str] = (),
    ) -> BaseModel | None:
        """Validate with a connector's model; its errors become ours, secrets left out."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False, include_context=True):
                loc = tuple(part for part in error["loc"])
                where: KeyPath = (*path, *loc)
                message = self._pydantic_message(model, loc, error, data, secret, also_allowed)
                self.problem(where, message)
            return None

    def _pydantic_message(
        self,
        model: type[BaseModel],
        loc: tuple[str | int, ...],
        error: Any,
        data: dict[str, Any],
        secret: bool,
        also_allowed: Collection[str],
    ) -> str:
        kind = str(error["type"])
        name = loc[-1] if loc else ""
        if kind == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1])
            if len(loc) == 1:
                allowed = [*allowed, *also_allowed]
            return f"unknown key {name!r}{_suggest(str(name), allowed)}"
        if kind == "missing":
            return f"missing required key {name!r}"
        friendly = {
            "string_type": "expected a string",
            "int_type": "expected a whole number",
            "int_parsing": "expected a whole number",
            "int_from_float": "expected a whole number",
            "float_type": "expected a number",
            "float_parsing": "expected a number",
            "decimal_parsing": "expected a number",
            "decimal_type": "expected a number",
            "bool_type": "expected true or false",
            "bool_parsing": "expected true or false",
            "dict_type": "expected a mapping",
            "model_type": "expected a mapping",
            "model_attributes_type": "expected a mapping",
            "list_type": "expected a list",
        }.get(kind)
        message = friendly or str(error["msg"])
        if friendly and not secret:
            value = _value_at(data, loc)
            if value is not _MISSING:
                message += f", got {_show(value)}"
        return message

    # -- the document ----------------------------------------------------------------------------

    def check(self, data: dict[str, Any], reference_secrets: list[str]) -> Config | None:
        allowed = field_names(ConfigDocument)
        for key in data:
            if key not in allowed and not key.startswith("x-"):
                hint = _suggest(key, allowed) or (
                    f"; the sections are {', '.join(allowed)} (keys starting with 'x-' are "
                    "ignored, e.g. to hold YAML anchors)"
                )
                self.problem((key,), f"unknown key {key!r}{hint}")
        version = data.get("version", _MISSING)
        if version is _MISSING or version is None:
            self.problem(
                ("version",), "missing required key 'version'; this format is `version: 1`"
            )
        elif isinstance(version, bool) or version != SUPPORTED_VERSION:
            self.problem(
                ("version",),
                f"unsupported version {_show(version)}; "
                f"this okrsync reads version {SUPPORTED_VERSION}",
            )

        default_schedule, default_stale = self.defaults(data.get("defaults"))
        connections = self.connections_section(data.get("connections"))
        cycles = self.cycles_section(data.get("cycles"))
        metrics = self.metrics_section(data.get("metrics"), default_schedule)
        objectives = self.objectives_section(data.get("objectives"), cycles, metrics, default_stale)
        if self.errors or objectives is None:
            return None
        return Config(
            version=SUPPORTED_VERSION,
            source=self.source,
            connections=connections,
            connection_types=dict(self.connection_types),
            cycles=cycles,
            metrics=metrics,
            objectives=objectives,
            reference_secrets=tuple(dict.fromkeys(s for s in reference_secrets if s)),
        )

    def defaults(self, value: object) -> tuple[Schedule | None, timedelta | None]:
        path: KeyPath = ("defaults",)
        if value is None:
            return self.schedule(path, DEFAULT_SCHEDULE), None
        mapping = self.mapping(path, value, "defaults")
        if mapping is None:
            return None, None
        self.known_keys(path, mapping, field_names(DefaultsDocument))
        raw_schedule = mapping.get("schedule")
        schedule = (
            self.schedule((*path, "schedule"), raw_schedule)
            if raw_schedule is not None
            else self.schedule(path, DEFAULT_SCHEDULE)
        )
        return schedule, self.duration((*path, "stale_after"), mapping.get("stale_after"))

    def connections_section(self, value: object) -> dict[str, ConnectionConfig]:
        path: KeyPath = ("connections",)
        if value is None:
            return {}
        section = self.mapping(path, value, "connections")
        if section is None:
            self.connections_readable = False
            return {}
        installed = sorted(self.connectors)
        for name, body in section.items():
            where = (*path, name)
            self.declared_connections.add(name)
            self.identifier(where, name, "connection name")
            mapping = self.mapping(where, body, f"the settings of connection {name!r}")
            if mapping is None:
                continue
            kind = mapping.get("type")
            if kind is None:
                self.problem(
                    (*where, "type"),
                    "missing required key 'type'; installed connection types: "
                    + ", ".join(installed),
                )
                continue
            if not isinstance(kind, str) or kind not in self.connectors:
                shown = self.show((*where, "type"), kind)
                hint = did_you_mean(str(kind), installed)
                self.problem(
                    (*where, "type"),
                    f"unknown connection type {shown}; installed: {', '.join(installed) or 'none'}"
                    + (f" (did you mean {hint!r}?)" if hint else ""),
                )
                continue
            self.connection_types[name] = kind
            model = self.connectors[kind].connection_model
            validated = self.pydantic(where, model, mapping, secret=True)
            if isinstance(validated, ConnectionConfig):
                self.connections[name] = validated
        return self.connections

    def cycles_section(self, value: object) -> dict[str, CycleDef]:
        path: KeyPath = ("cycles",)
        cycles: dict[str, CycleDef] = {}
        if value is None:
            return cycles
        items = self.sequence(path, value, "cycles")
        if items is None:
            self.declared_cycles = None
            return cycles
        first_seen: dict[str, int] = {}
        for index, item in enumerate(items):
            where = (*path, index)
            mapping = self.mapping(where, item, "a cycle with id, start and end")
            if mapping is None:
                continue
            self.known_keys(where, mapping, field_names(CycleDocument))
            raw_id = self.required(where, mapping, "id")
            cycle_id = self.identifier((*where, "id"), raw_id, "cycle id")
            if self.declared_cycles is not None and raw_id is not _MISSING:
                self.declared_cycles.add(str(raw_id))
            start = self.day((*where, "start"), self.required(where, mapping, "start"))
            end = self.day((*where, "end"), self.required(where, mapping, "end"))
            if cycle_id is not None:
                if cycle_id in first_seen:
                    self.problem(
                        (*where, "id"),
                        f"duplicate cycle id {cycle_id!r} "
                        f"(first defined on line {first_seen[cycle_id]})",
                    )
                    continue
                first_seen[cycle_id] = self.document.line((*where, "id"))
            if start is not None and end is not None and end < start:
                self.problem(
                    (*where, "end"),
                    f"cycle ends ({end.isoformat()}) before it starts ({start.isoformat()})",
                )
                continue
            if cycle_id is not None and start is not None and end is not None:
                cycles[cycle_id] = CycleDef(cycle_id, start, end)
        return cycles

    def metrics_section(
        self, value: object, default_schedule: Schedule | None
    ) -> dict[str, MetricDef]:
        path: KeyPath = ("metrics",)
        metrics: dict[str, MetricDef] = {}
        if value is None:
            return metrics
        section = self.mapping(path, value, "metrics (a mapping of metric name to its query)")
        if section is None:
            self.metrics_readable = False
            return metrics
        self.declared_metrics.update(section)
        common = field_names(MetricCommon)
        for name, body in section.items():
            where = (*path, name)
            if not name.isidentifier() or keyword.iskeyword(name):
                self.problem(
                    where,
                    f"metric name {name!r} is not usable in expressions: use letters, digits and "
                    "underscores, not starting with a digit, and not a Python keyword",
                )
            mapping = self.mapping(where, body, f"the query of metric {name!r}")
            if mapping is None:
                continue
            connection = self.text(
                (*where, "connection"), self.required(where, mapping, "connection")
            )
            raw_schedule = mapping.get("schedule")
            schedule = (
                self.schedule((*where, "schedule"), raw_schedule)
                if raw_schedule is not None
                else default_schedule
            )
            query_fields = {k: v for k, v in mapping.items() if k not in common}
            model = self.query_model_for(where, connection)
            if model is None:
                continue
            spec = self.pydantic(where, model, query_fields, secret=False, also_allowed=common)
            if isinstance(spec, QuerySpec) and connection is not None and schedule is not None:
                metrics[name] = MetricDef(
                    name, connection, schedule, spec, self.document.line(where)
                )
        return metrics

    def query_model_for(self, where: KeyPath, connection: str | None) -> type[QuerySpec] | None:
        if connection is None:
            return None
        at = (*where, "connection")
        if connection not in self.declared_connections:
            if not self.connections_readable:
                return None
            self.problem(
                at,
                f"unknown connection {connection!r}"
                + _suggest(connection, self.declared_connections),
            )
            return None
        kind = self.connection_types.get(connection)
        if kind is None:
            return None  # the connection itself is wrong, and already reported
        model = self.connectors[kind].query_model
        if model is None:
            self.problem(
                at,
                f"connection {connection!r} ({kind}) cannot be a metric's source: "
                f"{kind} connections only receive updates",
            )
        return model

    def mirror_model_for(self, where: KeyPath, connection: str | None) -> type[MirrorSpec] | None:
        if connection is None:
            return None
        at = (*where, "connection")
        if connection not in self.declared_connections:
            if not self.connections_readable:
                return None
            self.problem(
                at,
                f"unknown connection {connection!r}"
                + _suggest(connection, self.declared_connections),
            )
            return None
        kind = self.connection_types.get(connection)
        if kind is None:
            return None
        model = self.connectors[kind].mirror_model
        if model is None:
            self.problem(
                at,
                f"connection {connection!r} ({kind}) cannot be a mirror: "
                f"{kind} connections only provide metrics",
            )
        return model

    def objectives_section(
        self,
        value: object,
        cycles: Mapping[str, CycleDef],
        metrics: Mapping[str, MetricDef],
        default_stale: timedelta | None,
    ) -> tuple[ObjectiveDef, ...] | None:
        path: KeyPath = ("objectives",)
        if value is None:
            return ()
        items = self.sequence(path, value, "objectives")
        if items is None:
            return None
        objectives: list[ObjectiveDef] = []
        objective_lines: dict[str, int] = {}
        parents: dict[str, tuple[str, KeyPath]] = {}
        kr_lines: dict[str, int] = {}
        declared_cycles = self.declared_cycles
        for index, item in enumerate(items):
            where = (*path, index)
            mapping = self.mapping(where, item, "an objective")
            if mapping is None:
                continue
            self.known_keys(where, mapping, field_names(ObjectiveDocument))
            objective_id = self.identifier(
                (*where, "id"), self.required(where, mapping, "id"), "objective id"
            )
            title = self.text(
                (*where, "title"), self.required(where, mapping, "title"), required=True
            )
            cycle = self.text((*where, "cycle"), self.required(where, mapping, "cycle"))
            if cycle is not None and declared_cycles is not None and cycle not in declared_cycles:
                self.problem(
                    (*where, "cycle"),
                    f"unknown cycle {cycle!r}{_suggest(cycle, declared_cycles)}"
                    + ("" if declared_cycles else "; define it under 'cycles:'"),
                )
            owner = self.text((*where, "owner"), mapping.get("owner"))
            parent = self.text((*where, "parent"), mapping.get("parent"))
            description = self.text((*where, "description"), mapping.get("description"))
            weight = self.weight((*where, "weight"), mapping.get("weight"))
            if objective_id is not None:
                if objective_id in objective_lines:
                    self.problem(
                        (*where, "id"),
                        f"duplicate objective id {objective_id!r} "
                        f"(first defined on line {objective_lines[objective_id]})",
                    )
                    objective_id = None
                else:
                    objective_lines[objective_id] = self.document.line((*where, "id"))
                    if parent is not None:
                        parents[objective_id] = (parent, (*where, "parent"))
            key_results = self.key_results(
                (*where, "key_results"),
                mapping.get("key_results"),
                objective_id or "",
                default_stale,
                kr_lines,
            )
            if (
                objective_id is not None
                and title is not None
                and cycle is not None
                and weight is not None
                and key_results is not None
            ):
                objectives.append(
                    ObjectiveDef(
                        id=objective_id,
                        title=title,
                        cycle=cycle,
                        owner=owner,
                        parent=parent,
                        weight=weight,
                        description=description,
                        key_results=key_results,
                        line=self.document.line(where),
                    )
                )
        self.check_parents(parents, objective_lines)
        return tuple(objectives)

    def check_parents(
        self, parents: Mapping[str, tuple[str, KeyPath]], known: Mapping[str, int]
    ) -> None:
        reported: set[str] = set()
        for child, (parent, where) in parents.items():
            if parent == child:
                self.problem(where, f"objective {child!r} cannot be its own parent")
                reported.add(child)
                continue
            if parent not in known:
                self.problem(where, f"unknown parent objective {parent!r}{_suggest(parent, known)}")
                continue
            chain = [child]
            current = parent
            while current in parents and current not in chain:
                chain.append(current)
                current = parents[current][0]
            if current == child and child not in reported:
                reported.update(chain)
                loop = " → ".join([*chain, child])
                self.problem(
                    where, f"parents form a cycle: {loop}; an objective cannot serve itself"
                )

    def key_results(
        self,
        path: KeyPath,
        value: object,
        objective_id: str,
        default_stale: timedelta | None,
        kr_lines: dict[str, int],
    ) -> tuple[KeyResultDef, ...] | None:
        if value is None:
            return ()
        items = self.sequence(path, value, "key_results")
        if items is None:
            return None
        results: list[KeyResultDef] = []
        complete = True
        for index, item in enumerate(items):
            kr = self.key_result((*path, index), item, objective_id, default_stale, kr_lines)
            if kr is None:
                complete = False
            else:
                results.append(kr)
        return tuple(results) if complete else None

    def key_result(
        self,
        where: KeyPath,
        item: object,
        objective_id: str,
        default_stale: timedelta | None,
        kr_lines: dict[str, int],
    ) -> KeyResultDef | None:
        mapping = self.mapping(where, item, "a key result")
        if mapping is None:
            return None
        before = len(self.errors)
        self.known_keys(where, mapping, field_names(KeyResultDocument))
        kr_id = self.identifier(
            (*where, "id"), self.required(where, mapping, "id"), "key result id"
        )
        if kr_id is not None:
            if kr_id in kr_lines:
                self.problem(
                    (*where, "id"),
                    f"duplicate key result id {kr_id!r} (first defined on line {kr_lines[kr_id]}); "
                    "key result ids must be unique across all objectives",
                )
            else:
                kr_lines[kr_id] = self.document.line((*where, "id"))
        title = self.text((*where, "title"), self.required(where, mapping, "title"), required=True)
        metric, expression = self.measure(where, mapping)
        kind = self.kind(where, mapping)
        numbers = {
            name: self.number((*where, name), mapping.get(name))
            for name in ("start", "target", "low", "high")
        }
        numbers_ok = all(
            numbers[name] is not None or mapping.get(name) is None
            for name in ("start", "target", "low", "high")
        )
        target_spec: TargetSpec | None = None
        unknown_keys = any(key not in field_names(KeyResultDocument) for key in mapping)
        if kind is not None and numbers_ok:
            target_spec = TargetSpec(
                kind=kind,
                start=numbers["start"],
                target=numbers["target"],
                low=numbers["low"],
                high=numbers["high"],
            )
            if not unknown_keys:  # a misspelt ``targt`` already explains a missing target
                for sentence in target_spec.problems():
                    self.problem(where, sentence)
        unit = self.text((*where, "unit"), mapping.get("unit"))
        weight = self.weight((*where, "weight"), mapping.get("weight"))
        stale_after = default_stale
        if mapping.get("stale_after") is not None:
            stale_after = self.duration((*where, "stale_after"), mapping.get("stale_after"))
        mirrors = self.mirrors((*where, "mirrors"), mapping.get("mirrors"), kr_id or "")
        if (
            len(self.errors) > before
            or kr_id is None
            or title is None
            or kind is None
            or target_spec is None
            or weight is None
            or mirrors is None
        ):
            return None
        return KeyResultDef(
            id=kr_id,
            objective_id=objective_id,
            title=title,
            metric=metric,
            value=expression,
            kind=kind,
            target_spec=target_spec,
            start=numbers["start"],
            target=numbers["target"],
            low=numbers["low"],
            high=numbers["high"],
            unit=unit,
            weight=weight,
            stale_after=stale_after,
            mirrors=mirrors,
            line=self.document.line(where),
        )

    def measure(
        self, where: KeyPath, mapping: Mapping[str, Any]
    ) -> tuple[str | None, Expression | None]:
        raw_metric = mapping.get("metric")
        raw_value = mapping.get("value")
        if raw_metric is not None and raw_value is not None:
            self.problem(
                where,
                "give either 'metric' or 'value', not both: 'metric' names one metric, "
                "'value' computes an expression of metrics",
            )
            return None, None
        if raw_metric is None and raw_value is None:
            self.problem(
                where,
                "missing 'metric' or 'value': name the metric this key result follows, or give "
                "an expression of metrics such as 'won / (won + lost) * 100'",
            )
            return None, None
        if raw_metric is not None:
            metric = self.text((*where, "metric"), raw_metric)
            if metric is not None and metric not in self.declared_metrics:
                if not self.metrics_readable:
                    return None, None
                self.problem(
                    (*where, "metric"),
                    f"unknown metric {metric!r}{_suggest(metric, self.declared_metrics)}"
                    + ("" if self.declared_metrics else "; define it under 'metrics:'"),
                )
                return None, None
            return metric, None
        at = (*where, "value")
        if not isinstance(raw_value, str):
            self.problem(
                at, f"expected an expression of metrics (a string), got {_show(raw_value)}"
            )
            return None, None
        try:
            expression = Expression.parse(raw_value)
        except ExpressionError as exc:
            column = f" at character {exc.offset + 1}" if exc.offset is not None else ""
            self.problem(at, f"value expression {raw_value!r}{column}: {exc.message}")
            return None, None
        unknown = sorted(expression.names - self.declared_metrics) if self.metrics_readable else []
        for name in unknown:
            self.problem(
                at,
                f"unknown metric {name!r} in value expression"
                + _suggest(name, self.declared_metrics),
            )
        if not expression.names:
            self.problem(
                at, f"the value expression {raw_value!r} uses no metric, so it never changes"
            )
        if unknown or not expression.names:
            return None, None
        return None, expression

    def kind(self, where: KeyPath, mapping: Mapping[str, Any]) -> KRKind | None:
        raw = self.required(where, mapping, "kind")
        if raw is _MISSING:
            return None
        choices = [k.value for k in KRKind]
        if isinstance(raw, str) and raw in choices:
            return KRKind(raw)
        self.problem(
            (*where, "kind"),
            f"unknown kind {_show(raw)}{_suggest(str(raw), choices)} "
            f"(choose one of {', '.join(choices)})",
        )
        return None

    def mirrors(self, path: KeyPath, value: object, kr_id: str) -> tuple[MirrorDef, ...] | None:
        if value is None:
            return ()
        items = self.sequence(path, value, "mirrors")
        if items is None:
            return None
        mirrors: list[MirrorDef] = []
        seen: set[str] = set()
        complete = True
        common = field_names(MirrorCommon)
        for index, item in enumerate(items):
            where = (*path, index)
            mapping = self.mapping(where, item, "a mirror (at least its connection)")
            if mapping is None:
                complete = False
                continue
            connection = self.text(
                (*where, "connection"), self.required(where, mapping, "connection")
            )
            model = self.mirror_model_for(where, connection)
            if model is None or connection is None:
                complete = False
                continue
            fields = {k: v for k, v in mapping.items() if k not in common}
            spec = self.pydantic(where, model, fields, secret=False, also_allowed=common)
            if not isinstance(spec, MirrorSpec):
                complete = False
                continue
            mirror = MirrorDef(connection, spec, MirrorDef.make_key(kr_id, connection, spec))
            if mirror.key in seen:
                self.problem(where, "the same mirror is listed twice for this key result")
                complete = False
                continue
            seen.add(mirror.key)
            mirrors.append(mirror)
        return tuple(mirrors) if complete else None


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The field names of the (sub)model found at ``loc`` inside ``model``, as best we can."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            return []
        current = _model_in(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        names = list(current.model_fields)
        names += [f.alias for f in current.model_fields.values() if f.alias]
        return names
    return []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _value_at(data: Any, loc: tuple[str | int, ...]) -> Any:
    current = data
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            current = current[part]
        else:
            return _MISSING
    return current
