"""Local fakes of vendor APIs on loopback sockets, with fault injection and a request log."""

from okrsync.sandbox.faults import (
    Fault,
    FaultInjector,
    FaultKind,
    FaultMiddleware,
    RequestLog,
    RequestRecord,
)
from okrsync.sandbox.server import Sandbox, SandboxServer

__all__ = [
    "Fault",
    "FaultInjector",
    "FaultKind",
    "FaultMiddleware",
    "RequestLog",
    "RequestRecord",
    "Sandbox",
    "SandboxServer",
]
