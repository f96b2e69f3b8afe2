"""Turning a YAML file into a checked :class:`Config`, or into every reason it cannot be one.

The loader reads the whole document in one pass and keeps going after a problem, so that a user
fixing a config sees all of its mistakes at once, each with file, line and key path. The steps:
parse the YAML (:mod:`.yaml_source`), resolve ``${…}`` references (:mod:`.references`), then read
each section (:mod:`.sections`, :mod:`.objectives`) with the value readers (:mod:`.readers`),
checking what one section names against what another declares (:mod:`.crossrefs`). Whatever goes
wrong is reported with its secrets scrubbed (:mod:`.reporting`).

The garbage collector is paused for the whole load: a config's values and definitions form no
reference cycles and stay alive until the load ends, so every collection it would run walks them
for nothing (a third of the checking time at 10,000 key results).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from okrsync.config.check_ins import default_grading
from okrsync.config.crossrefs import CrossReferences
from okrsync.config.cycles import CURRENT, CyclesReader, default_close_after
from okrsync.config.models import Config, ConfigDocument, field_names
from okrsync.config.objectives import ObjectivesReader
from okrsync.config.readers import ValueReader
from okrsync.config.references import ReferenceResolver
from okrsync.config.reporting import MISSING, error_order, kind_of, scrub, show_value, suggest
from okrsync.config.sections import read_connections, read_defaults, read_metrics
from okrsync.config.yaml_source import collector_paused, read_yaml
from okrsync.errors import ConfigError, ConfigErrors
from okrsync.sdk.connector import Connector

SUPPORTED_VERSION = 1
DEFAULT_SECRETS_DIR = Path("/run/secrets")


def load_config(
    path: Path,
    connectors: Mapping[str, Connector],
    *,
    environ: Mapping[str, str] | None = None,
    secrets_dir: Path | None = None,
    today: date | None = None,
) -> Config:
    """Read and check the config at ``path``; raise :class:`ConfigErrors` listing every problem.

    ``today`` (default: the UTC date now) is the day cycle series are expanded and
    ``cycle: current`` is resolved for."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigErrors(
            [ConfigError(f"cannot read the config: {reason}", file=str(path))]
        ) from None
    with collector_paused():
        return _load(
            text,
            connectors,
            filename=str(path),
            source=path,
            environ=environ,
            secrets_dir=secrets_dir,
            today=today,
        )


def load_config_text(
    text: str,
    connectors: Mapping[str, Connector],
    *,
    filename: str = "<config>",
    environ: Mapping[str, str] | None = None,
    secrets_dir: Path | None = None,
    today: date | None = None,
) -> Config:
    """Like :func:`load_config`, for config text that did not come from a file."""
    with collector_paused():
        return _load(
            text,
            connectors,
            filename=filename,
            source=None,
            environ=environ,
            secrets_dir=secrets_dir,
            today=today,
        )


def _load(
    text: str,
    connectors: Mapping[str, Connector],
    *,
    filename: str,
    source: Path | None,
    environ: Mapping[str, str] | None,
    secrets_dir: Path | None,
    today: date | None = None,
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
                    f"…), got {kind_of(document.data)}",
                    file=filename,
                    line=1,
                )
            ]
        )
    resolution = ReferenceResolver(env, secrets_dir).resolve(document.data)
    read = ValueReader(filename, document, resolution.referenced)
    refs = CrossReferences(read, connectors)
    for path, message in resolution.problems:
        read.problem(path, message)
    # a value whose reference could not be resolved has been reported: say nothing more about it
    read.quiet.update(path for path, _ in resolution.problems)
    day = today if today is not None else datetime.now(UTC).date()
    config = _check(read, refs, resolution.data, resolution.secrets, source, day)
    if read.errors or config is None:
        secrets = set(resolution.secrets)
        for connection in refs.connections.values():
            secrets.update(connection.secret_values())
        raise ConfigErrors(scrub(sorted(read.errors, key=error_order), secrets))
    return config


def _check(
    read: ValueReader,
    refs: CrossReferences,
    data: dict[str, Any],
    reference_secrets: list[str],
    source: Path | None,
    today: date,
) -> Config | None:
    """The whole document, section after section; ``None`` if anything is wrong."""
    _check_top_level(read, data)
    default_schedule, default_stale = read_defaults(read, data.get("defaults"))
    connections = read_connections(read, refs, data.get("connections"))
    cycle_reader = CyclesReader(read, refs, today)
    cycles = cycle_reader.section(data.get("cycles"), default_close_after(data.get("defaults")))
    metrics = read_metrics(read, refs, data.get("metrics"), default_schedule)
    grading = default_grading(data.get("defaults"))
    objectives = ObjectivesReader(read, refs, default_stale, grading).section(
        data.get("objectives")
    )
    if read.errors or objectives is None:
        return None
    if cycle_reader.current is not None:  # objectives that follow the series
        objectives = tuple(
            dataclasses.replace(o, cycle=cycle_reader.current, follows_series=True)
            if o.cycle == CURRENT
            else o
            for o in objectives
        )
    return Config(
        version=SUPPORTED_VERSION,
        source=source,
        connections=connections,
        connection_types=dict(refs.connection_types),
        cycles=cycles,
        metrics=metrics,
        objectives=objectives,
        reference_secrets=tuple(dict.fromkeys(s for s in reference_secrets if s)),
        fetch_deadlines=dict(refs.fetch_deadlines),
        followed_series=cycle_reader.followed if cycle_reader.current is not None else None,
    )


def _check_top_level(read: ValueReader, data: dict[str, Any]) -> None:
    """Only known sections (or ``x-`` keys), and a version this okrsync reads."""
    allowed = field_names(ConfigDocument)
    for key in data:
        if key not in allowed and not key.startswith("x-"):
            hint = suggest(key, allowed) or (
                f"; the sections are {', '.join(allowed)} (keys starting with 'x-' are "
                "ignored, e.g. to hold YAML anchors)"
            )
            read.problem((key,), f"unknown key {key!r}{hint}")
    version = data.get("version", MISSING)
    if version is MISSING or version is None:
        read.problem(("version",), "missing required key 'version'; this format is `version: 1`")
    elif isinstance(version, bool) or version != SUPPORTED_VERSION:
        read.problem(
            ("version",),
            f"unsupported version {show_value(version)}; "
            f"this okrsync reads version {SUPPORTED_VERSION}",
        )
