"""Which replica this process is: an instance id that survives restarts.

Leases (metric claims, deliveries, mirrors) name their owner. With an id that changes on every
start (the pid), a daemon restarted after a crash is a stranger to its own leases and waits them
out (120 s by default). The default id is therefore the host plus a digest of the store and the
config, the same after every restart of the same deployment on the same host; at start the daemon
frees the leases held under it (see ``okrsync run``).

Two processes of one deployment on one host would share that id. On PostgreSQL the process that
runs under an id holds a session advisory lock on it for its whole life (the server drops it when
the process dies, however it dies); a second process finds the lock taken and adds its pid, so it
never touches the first one's leases. On SQLite only one daemon runs per store file (see
:mod:`okrsync.store.single_node`), which frees every lease at start anyway.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from okrsync.store.db import normalise_url


def stable_instance_id(database_url: str, config_path: Path, host: str | None = None) -> str:
    """``host:digest`` of the store URL (without its password) and the config file's path."""
    store = make_url(normalise_url(database_url)).render_as_string(hide_password=True)
    identity = f"{store}\n{config_path.expanduser().resolve()}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    return f"{host or socket.gethostname()}:{digest}"


def advisory_key(instance_id: str) -> int:
    """A signed 64-bit key for ``pg_try_advisory_lock``, derived from the id."""
    return int.from_bytes(hashlib.sha256(instance_id.encode()).digest()[:8], "big", signed=True)


class InstanceIdentity:
    """The id this process runs under, and on PostgreSQL the connection holding its lock."""

    def __init__(self, instance_id: str, holder: Connection | None = None) -> None:
        self.instance_id = instance_id
        self._holder = holder

    @classmethod
    def claim(cls, engine: Engine, wanted: str) -> InstanceIdentity:
        """Run under ``wanted`` unless a live process already does; then under ``wanted:pid``."""
        if engine.dialect.name != "postgresql":
            return cls(wanted)
        holder = engine.connect()
        try:
            taken = holder.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": advisory_key(wanted)}
            ).scalar_one()
            holder.commit()
        except BaseException:
            holder.close()
            raise
        if taken:
            return cls(wanted, holder)
        holder.close()  # it holds nothing: back to the pool
        return cls(f"{wanted}:{os.getpid()}")

    def release(self) -> None:
        """Give the id up (closing the session drops its advisory lock)."""
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.invalidate()  # the session itself ends: a pooled one would keep the lock
            holder.close()
