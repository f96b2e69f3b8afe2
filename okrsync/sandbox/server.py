"""Serving sandbox fakes on real loopback sockets, from a background thread.

Tests, ``okrsync demo`` and the benchmarks talk to the fakes over TCP, exactly as they talk to the
vendor: the whole httpx stack (connection pool, timeouts, protocol errors) is exercised, which an
in-process transport would skip. Each fake gets its own uvicorn server and event loop in a thread,
so a synchronous test or a CLI command can use it as easily as an async one.

The port is bound here, before uvicorn starts (port 0 = any free port), so the URL is known
without parsing logs and two fakes can never race for the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

from okrsync.sandbox.faults import (
    FaultInjector,
    FaultMiddleware,
    RequestLog,
    RequestRecord,
    install_log_filter,
)

STARTUP_TIMEOUT = 10.0
GRACEFUL_STOP = 0.3  # then requests still in flight are cancelled: a fake has nothing to flush
CANCELLED_STOP = 0.6
FORCED_STOP = 1.0


class _ThreadedUvicorn(uvicorn.Server):
    """Uvicorn without signal handling: signals belong to the main thread's program."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class SandboxServer:
    """One fake (any ASGI app) behind fault injection, served on ``host:port``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        name: str = "fake",
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        # Optional TLS, for vendor clients that only speak https (simple-salesforce): with a
        # certificate the fake serves https and ``url`` says so; the test trusts the issuing CA.
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile = ssl_keyfile
        self.faults = FaultInjector()
        self.log = RequestLog()
        self.app = FaultMiddleware(app, faults=self.faults, log=self.log)
        self._server: _ThreadedUvicorn | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` when serving TLS), once started."""
        if self._url is None:
            raise RuntimeError(f"sandbox {self.name!r} is not started")
        return self._url

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request the fake received (admin routes excluded), oldest first."""
        return self.log.snapshot()

    def reset(self) -> None:
        """Forget armed faults and recorded requests, e.g. between two tests."""
        self.faults.clear()
        self.log.clear()

    def start(self) -> Self:
        """Serve the fake; returns once it accepts connections."""
        if self._thread is not None:
            return self
        install_log_filter()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY on accepted connections only then
        # (without it every small answer waits ~40 ms for the client's delayed ACK)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            http="h11",  # the TRUNCATED fault relies on how h11 ends a response
            loop="asyncio",
            lifespan="auto",
            log_level="warning",
            log_config=None,  # leave the process's logging configuration alone
            access_log=False,
            proxy_headers=False,  # the peer is the socket's (okrsync.api.principal relies on it)
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
        )
        server = _ThreadedUvicorn(config)
        self._server, self._socket, self._failure = server, sock, None
        self._thread = threading.Thread(
            target=self._serve, args=(server, sock), name=f"sandbox-{self.name}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                failure = self._failure
                self.stop()
                raise RuntimeError(f"sandbox {self.name!r} failed to start") from failure
            time.sleep(0.002)
        host = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        scheme = "https" if self.ssl_certfile is not None else "http"
        self._url = f"{scheme}://{host}:{port}"
        return self

    def _serve(self, server: _ThreadedUvicorn, sock: socket.socket) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        try:
            asyncio.run(serve())
        except BaseException as exc:  # SystemExit from a failed startup, too
            self._failure = exc
        finally:
            self._loop = None

    def begin_stop(self) -> None:
        """Ask the server to stop without waiting, so several fakes can wind down together."""
        if self._server is not None:
            self._server.should_exit = True

    def stop(self) -> None:
        """Stop serving and join the thread; quick even with requests in flight."""
        server, thread, sock = self._server, self._thread, self._socket
        self._server = self._thread = self._socket = None
        self._url = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(GRACEFUL_STOP)
        loop = self._loop
        if thread.is_alive() and loop is not None:
            # Cancel what is still running (a LATENCY or TIMEOUT fault, a slow fake) rather than
            # uvicorn's force_exit, which would skip the app's lifespan shutdown.
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_cancel_all, server)
            thread.join(CANCELLED_STOP)
        if thread.is_alive():
            server.force_exit = True
            thread.join(FORCED_STOP)
        if sock is not None:
            sock.close()
        if thread.is_alive():
            raise RuntimeError(f"sandbox {self.name!r} did not stop")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _cancel_all(server: uvicorn.Server) -> None:
    for task in list(server.server_state.tasks):
        task.cancel()


class Sandbox:
    """Several fakes at once, each on its own port (a demo needs Jira, Salesforce and Slack)."""

    def __init__(self, apps: Mapping[str, ASGIApp]) -> None:
        self.servers = {name: SandboxServer(app, name=name) for name, app in apps.items()}

    def __getitem__(self, name: str) -> SandboxServer:
        return self.servers[name]

    @property
    def urls(self) -> dict[str, str]:
        return {name: server.url for name, server in self.servers.items()}

    def start(self) -> Self:
        try:
            for server in self.servers.values():
                server.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every fake, even when one of them fails to stop; then report that failure."""
        failures: list[Exception] = []
        for server in self.servers.values():
            server.begin_stop()
        for server in self.servers.values():
            try:
                server.stop()
            except Exception as exc:  # the others must still be stopped
                failures.append(exc)
        if failures:
            raise failures[0]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
