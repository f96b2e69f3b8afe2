"""Wiring one okrsync process: settings → plugins → config → store → connections → services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from okrsync.config import Config, load_config
from okrsync.engine.dispatcher import Dispatcher
from okrsync.engine.runtime import Connections
from okrsync.engine.sync import SyncService
from okrsync.plugins import Registry, load_registry
from okrsync.redaction import Redactor
from okrsync.settings import Settings, digest_key
from okrsync.store.budget_ledger import ledger_for
from okrsync.store.db import make_engine, session_scope, upgrade
from okrsync.store.definitions import DefinitionChanges, sync_definitions
from okrsync.store.identity import InstanceIdentity, stable_instance_id

DEFINITIONS_LOCK = 0x6F6B7264  # "okrd": held while a replica upserts definitions


def utc_now() -> datetime:
    return datetime.now(UTC)


def load(settings: Settings, registry: Registry, path: Path | None = None) -> Config:
    return load_config(
        path or settings.config, registry.connectors, secrets_dir=settings.secrets_dir
    )


def apply_definitions(
    engine: Engine, config: Config, now: datetime, *, digest_key: bytes | None = None
) -> DefinitionChanges:
    """Upsert ``config``'s definitions; replicas doing it together take turns (PostgreSQL)."""
    with session_scope(engine) as session:
        if engine.dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": DEFINITIONS_LOCK})
        return sync_definitions(session, config, now, digest_key=digest_key)


@dataclass
class App:
    settings: Settings
    registry: Registry
    config: Config
    engine: Engine
    redactor: Redactor
    connections: Connections
    dispatcher: Dispatcher
    sync: SyncService
    clock: Callable[[], datetime]
    identity: InstanceIdentity

    @property
    def instance_id(self) -> str:
        return self.identity.instance_id

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        config: Config | None = None,
        registry: Registry | None = None,
        redactor: Redactor | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> App:
        registry = registry or load_registry()
        config = config or load(settings, registry)
        redactor = redactor or Redactor()
        redactor.add(config.secret_values())
        redactor.add([settings.database_url.get_secret_value()])
        engine = make_engine(settings.database_url.get_secret_value())
        upgrade(engine)
        if settings.instance_id:
            identity = InstanceIdentity(settings.instance_id)
        else:
            url = settings.database_url.get_secret_value()
            identity = InstanceIdentity.claim(engine, stable_instance_id(url, settings.config))
        instance_id = identity.instance_id
        connections = Connections(config, dict(registry.connectors), ledger=ledger_for(engine))
        mirrors = {m.key: m for kr in config.key_results() for m in kr.mirrors}
        mirrors.update({m.key: m for objective in config.objectives for m in objective.mirrors})
        sources = {metric.connection for metric in config.metrics.values()}
        mirror_only = {
            m.connection: config.connection_types[m.connection]
            for m in mirrors.values()
            if m.connection not in sources
        }
        dispatcher = Dispatcher(
            engine,
            sink_for=connections.sink,
            mirrors=mirrors,
            redactor=redactor,
            owner=instance_id,
            lease=timedelta(seconds=settings.lease_seconds),
            max_attempts=settings.dispatch_max_attempts,
            batch=settings.dispatch_batch,
            clock=clock,
            mirror_only=mirror_only,
            push_timeout=timedelta(seconds=settings.push_timeout_seconds),
        )
        sync = SyncService(
            engine,
            config,
            connections,
            redactor=redactor,
            clock=clock,
            instance_id=instance_id,
            dispatcher=dispatcher,
        )
        return cls(
            settings,
            registry,
            config,
            engine,
            redactor,
            connections,
            dispatcher,
            sync,
            clock,
            identity,
        )

    def apply_definitions(self) -> DefinitionChanges:
        """Upsert the config's definitions; replicas starting together take turns (PostgreSQL)."""
        return apply_definitions(
            self.engine, self.config, self.clock(), digest_key=digest_key(self.settings)
        )

    async def aclose(self) -> None:
        await self.connections.aclose()
        self.identity.release()
        self.engine.dispose()
