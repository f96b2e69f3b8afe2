"""The connections' non-secret fields as applied last, so ``plan`` can show a connection's edit
(a webhook's ``url``, Jira's ``base_url`` …) as ``~ connections:NAME`` with ``-``/``+`` lines.

Secrets are never stored nor shown. A secret brought by a ``${…}`` reference into an ordinary
field (a password inside a URL) is masked before the text is kept. A ``SecretStr`` field is left
out, unless ``OKRSYNC_SECRET_DIGEST_KEY`` is set: then its HMAC-SHA256 under that key is kept
(the key is never in the store, so a copy of the store cannot test guesses of a password), and a
digest that differs shows as ``secret: (secret changed)``, never the digest itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, SecretStr
from sqlmodel import Session, select

from okrsync.config import Config
from okrsync.domain.definition_diff import Definition, field_diff
from okrsync.redaction import Redactor
from okrsync.store.metric_definitions import rows_named
from okrsync.store.tables import ConnectionDefinitionRow

ConnectionDefinitions = dict[str, dict[str, str | None]]

DIGEST = "hmac-sha256:"  # a kept field's text starting so is a secret's keyed digest


def connection_definitions(
    config: Config, digest_key: bytes | None = None
) -> ConnectionDefinitions:
    """Each connection's fields as text, by dotted name (``auth.user``): secrets masked, or
    with ``digest_key`` their keyed digests. Pure."""
    redactor = Redactor(config.secret_values())
    shown: ConnectionDefinitions = {}
    for name, connection in sorted(config.connections.items()):
        fields: dict[str, str | None] = {}
        _flatten(connection, "", fields)
        shown[name] = {}
        for key, value in fields.items():
            if isinstance(value, SecretStr):
                if digest_key is not None:
                    shown[name][key] = _digest(digest_key, name, key, value)
            else:
                shown[name][key] = None if value is None else redactor.redact(value)
    return shown


def _digest(key: bytes, connection: str, field: str, secret: SecretStr) -> str:
    message = "\0".join((connection, field, secret.get_secret_value())).encode()
    return DIGEST + hmac.new(key, message, hashlib.sha256).hexdigest()


def connection_diff(before: Definition, after: Definition) -> list[str]:
    """:func:`field_diff` of the plain fields; a secret's digest only as ``(secret changed)``."""
    lines = field_diff(
        {k: v for k, v in before.items() if not _is_digest(v)},
        {k: v for k, v in after.items() if not _is_digest(v)},
    )
    for name in dict.fromkeys([*before, *after]):
        old, new = before.get(name), after.get(name)
        if (_is_digest(old) or _is_digest(new)) and old != new:
            lines.append(f"{name}: (secret changed)")
    return lines


def _is_digest(value: str | None) -> bool:
    return value is not None and value.startswith(DIGEST)


def without_digests(definitions: ConnectionDefinitions) -> ConnectionDefinitions:
    """The definitions without secrets' digests (compared only when a digest key is set)."""
    return {
        name: {k: v for k, v in fields.items() if not _is_digest(v)}
        for name, fields in definitions.items()
    }


def _flatten(value: Any, prefix: str, into: dict[str, Any]) -> None:
    if isinstance(value, SecretStr):
        into[prefix] = value  # told apart by the caller: masked or digested, never kept
        return
    if isinstance(value, BaseModel):
        items: Iterable[tuple[str, Any]] = (
            (k, getattr(value, k)) for k in type(value).model_fields
        )
    elif isinstance(value, dict):
        items = ((str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        into[prefix] = _text(value)
        return
    for key, item in items:
        _flatten(item, f"{prefix}.{key}" if prefix else key, into)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return str(value)


def recorded_connections(session: Session) -> ConnectionDefinitions:
    """The connections' fields applied last, by name; empty when none were ever applied."""
    return {
        row.name: {str(k): None if v is None else str(v) for k, v in row.fields.items()}
        for row in session.exec(
            select(ConnectionDefinitionRow).order_by(ConnectionDefinitionRow.name)
        )
    }


def record_connections(
    session: Session,
    wanted: ConnectionDefinitions,
    added: Sequence[str],
    changed: Sequence[str],
    removed: Sequence[str],
    now: datetime,
) -> None:
    """Insert the added connections' fields, update the changed ones, delete the removed ones."""
    rows = rows_named(session, ConnectionDefinitionRow, [*changed, *removed])
    rows.update((name, ConnectionDefinitionRow(name=name, applied_at=now)) for name in added)
    for name in [*added, *changed]:
        row = rows[name]
        row.fields = dict(wanted[name])
        row.applied_at = now
        session.add(row)
    for name in removed:
        session.delete(rows[name])
