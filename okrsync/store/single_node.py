"""SQLite is the single-node store: one daemon per file, enforced by an exclusive file lock.

PostgreSQL replicas share work through row leases; two daemons on one SQLite file would both
fetch and push everything, so the second refuses to start instead.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from okrsync.errors import StoreError
from okrsync.store.db import normalise_url


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


@contextmanager
def daemon_lock(url: str) -> Iterator[bool]:
    """Hold ``<store>.daemon.lock`` while a daemon runs on a SQLite store; no-op elsewhere.

    Yields whether this daemon is now the store's only one (so it may take over every lease).
    """
    path = sqlite_path(url)
    if path is None:
        yield False
        return
    lock_path = path.with_name(path.name + ".daemon.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 100, 0).decode(errors="replace").strip() or "another process"
            raise StoreError(
                f"another okrsync daemon ({holder}) is running on the SQLite store {path}; "
                "SQLite is single-node: stop it, or use PostgreSQL to run several replicas"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield True
    finally:
        os.close(fd)
