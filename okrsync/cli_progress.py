"""What a command is doing while it works, on a terminal: a spinner, its step and the time taken.

``sync`` and ``plan`` print nothing until they are done, which on a slow vendor looks like a hang.
On a terminal they show this line on stderr meanwhile (transient: it is gone when they finish);
piped, redirected or with ``--json`` nothing is drawn, so logs and machine output stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

Step = Callable[[str], None]
"""Tells the display what is being done now."""


def wanted(*, json_out: bool = False, stream: Any = None) -> bool:
    """A display only for a person watching: a terminal, and not ``--json``."""
    out = stream if stream is not None else sys.stderr
    isatty = getattr(out, "isatty", None)
    return not json_out and callable(isatty) and bool(isatty())


@contextmanager
def activity(description: str, *, enabled: bool, console: Console | None = None) -> Iterator[Step]:
    """A transient spinner line showing ``description`` (changed by the yielded step function)."""
    if not enabled:
        yield _quiet
        return
    display = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=True,
    )
    with display, _logs_above():
        task = display.add_task(description, total=None)

        def step(text: str) -> None:
            display.update(task, description=text)

        yield step


@contextmanager
def _logs_above() -> Iterator[None]:
    """Log lines printed above the spinner, not glued to its end.

    The display swaps ``sys.stderr`` for a proxy that prints above it; structlog holds the file
    it was configured with, so for as long as the display shows it writes to the proxy instead.
    """
    import structlog

    before = structlog.get_config()["logger_factory"]
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    try:
        yield
    finally:
        structlog.configure(logger_factory=before)


def _quiet(_text: str) -> None:
    return None
