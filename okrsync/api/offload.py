"""The HTTP handlers' way off the event loop: :func:`okrsync.store.offload.in_thread`, the one
bounded thread pool every store call made from async code goes through (the daemon's too)."""

from __future__ import annotations

from okrsync.store.offload import STORE_THREADS, in_thread

__all__ = ["STORE_THREADS", "in_thread"]
