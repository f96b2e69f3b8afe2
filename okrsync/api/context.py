"""What every HTTP handler needs from the running process, and okrsync's error answer shape.

The HTTP side never reaches into the CLI or globals: it is handed an :class:`ApiContext` built
from the process's :class:`~okrsync.app.App` (and its daemon, when one runs), so tests build the
same application around a store of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine
from starlette.responses import JSONResponse

from okrsync.config import Config
from okrsync.engine.runtime import Connections
from okrsync.engine.sync import RunReport, SyncService
from okrsync.engine.work_sync import WorkSync
from okrsync.redaction import Redactor
from okrsync.settings import Settings

if TYPE_CHECKING:
    from okrsync.app import App
    from okrsync.engine.daemon import Daemon


class RunRequester(Protocol):
    def __call__(
        self,
        *,
        metrics: Collection[str] | None = None,
        key_results: Collection[str] | None = None,
        trigger: str = "webhook",
    ) -> asyncio.Future[RunReport]: ...


@dataclass
class BackgroundRuns:
    """Runs started straight on the sync service, for an API served without a daemon (tests).

    Like the daemon's requested runs they record values without delivering: without a daemon,
    the outbox waits for the next ``okrsync sync`` or daemon.
    """

    sync: SyncService
    _tasks: set[asyncio.Task[RunReport]] = field(default_factory=set)

    def __call__(
        self,
        *,
        metrics: Collection[str] | None = None,
        key_results: Collection[str] | None = None,
        trigger: str = "webhook",
    ) -> asyncio.Future[RunReport]:
        task = asyncio.ensure_future(
            self.sync.run_once(
                metrics=metrics, key_results=key_results, trigger=trigger, dispatch=False
            )
        )
        self._tasks.add(task)  # keep a reference until it ends, or it may be collected
        task.add_done_callback(self._tasks.discard)
        return task


@dataclass
class ApiContext:
    settings: Settings
    config: Config
    engine: Engine
    redactor: Redactor
    clock: Callable[[], datetime]
    request_run: RunRequester
    connections: Connections | None = None
    daemon: Daemon | None = None
    work: WorkSync | None = None  # refreshes linked work on a tracker's webhook

    @classmethod
    def from_app(cls, app: App, daemon: Daemon | None = None) -> ApiContext:
        requester: RunRequester = (
            daemon.request_run if daemon is not None else BackgroundRuns(app.sync)
        )
        if app.settings.api_token is not None:
            app.redactor.add([app.settings.api_token.get_secret_value()])
        return cls(
            settings=app.settings,
            config=app.config,
            engine=app.engine,
            redactor=app.redactor,
            clock=app.clock,
            request_run=requester,
            connections=app.connections,
            daemon=daemon,
            work=daemon.work if daemon is not None else WorkSync.from_sync(app.sync),
        )


def error_response(
    status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """``{"error": "...", "detail": ...}``: the one error shape of every okrsync endpoint."""
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)
