"""The API's converters are :mod:`okrsync.read_models.from_store`, shared with the CLI."""

from __future__ import annotations

from okrsync.read_models.from_store import (
    connection,
    decimal_text,
    delivery,
    key_result,
    measurement,
    objective,
    run,
)

__all__ = [
    "connection",
    "decimal_text",
    "delivery",
    "key_result",
    "measurement",
    "objective",
    "run",
]
