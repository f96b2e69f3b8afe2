"""Serving the HTTP app inside the daemon's event loop.

uvicorn runs as one more task of ``okrsync run``: it must not install signal handlers of its own
(okrsync's SIGTERM/SIGINT handling stops the scheduler, the dispatcher and the server together),
so both the old (``install_signal_handlers``) and the new (``capture_signals``, uvicorn ≥ 0.29)
hooks are neutralised. The socket is bound before anything starts, so a taken port is a clear
error at startup and port 0 picks a free one.

While it serves, the interpreter's thread switch interval is 1 ms instead of 5 ms
(:data:`SWITCH_INTERVAL`): the store's worker threads build pages and scrapes while holding the
interpreter lock, and the event loop, after each of its waits, waits for that lock up to one
interval; ``benchmarks/read_side.py`` (``--switch-interval``) measures ``/healthz`` and the loop's
lag under load with either.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Generator

import structlog
import uvicorn
from starlette.types import ASGIApp

from okrsync.errors import OkrsyncError

log = structlog.get_logger()

STOP_GRACE = 5  # seconds in-flight requests get after the stop signal
SWITCH_INTERVAL = 0.001  # seconds; see the module docstring


class _EmbeddedUvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return None


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY on accepted connections only then
    # (without it every small answer waits ~40 ms for the client's delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OkrsyncError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class HttpServer:
    """The API on a bound socket; ``start`` returns once it accepts connections."""

    def __init__(
        self, app: ASGIApp, sock: socket.socket, *, switch_interval: float = SWITCH_INTERVAL
    ) -> None:
        self.sock = sock
        self.switch_interval = switch_interval
        self._interval_before: float | None = None
        config = uvicorn.Config(
            app,
            loop="asyncio",
            lifespan="on",
            log_config=None,  # okrsync configures logging
            access_log=False,
            timeout_graceful_shutdown=STOP_GRACE,
            # the peer is the socket's: never an X-Forwarded-For (a trusted proxy is told apart
            # by its address, okrsync.api.principal)
            proxy_headers=False,
        )
        self.server = _EmbeddedUvicorn(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        self._interval_before = sys.getswitchinterval()
        sys.setswitchinterval(self.switch_interval)
        self._task = asyncio.create_task(self.server.serve(sockets=[self.sock]), name="http")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise OkrsyncError("the HTTP server stopped during startup")
            await asyncio.sleep(0.01)
        host, port = self.address
        log.info("http_started", host=host, port=port)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE + 2)
        except TimeoutError:
            self.server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            self.sock.close()
            if self._interval_before is not None:
                sys.setswitchinterval(self._interval_before)
                self._interval_before = None
        log.info("http_stopped")
